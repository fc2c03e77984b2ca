// Images per second through the data path: JPEG decode, resize/flip/normalize, collate,
// for 1 and 2 loader workers, at 64x64 and 800x1333 (COCO-sized) images. The images are
// generated in a temp dir and read through the COCO-style reader. Prints a table and
// the 2-worker/1-worker ratio of each size.
//
//   unitrain_data_bench [epochs=3]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "unitrain/data/coco_style.h"
#include "unitrain/data/loader.h"

namespace {

using unitrain::data::CocoStyleDataset;
using unitrain::data::CocoStyleOptions;

// Writes `count` noisy JPEGs of width x height and an instances file listing them.
CocoStyleOptions make_images(const std::filesystem::path& dir, int count, int width, int height) {
  std::filesystem::create_directories(dir / "images");
  nlohmann::json instances = {{"images", nlohmann::json::array()},
                              {"annotations", nlohmann::json::array()},
                              {"categories", {{{"id", 1}, {"name", "thing"}}}}};
  cv::RNG rng(7);
  for (int i = 0; i < count; ++i) {
    cv::Mat image(height, width, CV_8UC3);
    rng.fill(image, cv::RNG::UNIFORM, 0, 255);
    const std::string name = std::to_string(i) + ".jpg";
    cv::imwrite((dir / "images" / name).string(), image);
    instances["images"].push_back({{"id", i}, {"file_name", name}, {"width", width}, {"height", height}});
    instances["annotations"].push_back({{"id", i}, {"image_id", i}, {"category_id", 1},
                                        {"bbox", {width / 4, height / 4, width / 2, height / 2}}});
  }
  std::FILE* f = std::fopen((dir / "instances.json").c_str(), "w");
  std::fputs(instances.dump().c_str(), f);
  std::fclose(f);
  CocoStyleOptions options;
  options.annotations = dir / "instances.json";
  options.images = dir / "images";
  // DETR's training transform: random shorter side up to the image's own, flips.
  options.image.min_size = std::min(width, height);
  options.image.max_size = std::max(width, height);
  options.image.train_min_sizes = {options.image.min_size * 3 / 4, options.image.min_size};
  options.image.hflip = 0.5;
  options.image.augment = true;
  return options;
}

double images_per_second(const std::shared_ptr<CocoStyleDataset>& dataset, int workers, int epochs) {
  unitrain::data::LoaderOptions options;
  options.batch_size = 4;
  options.num_workers = workers;
  options.task = "bench";
  unitrain::data::DataLoader loader(dataset, options);
  loader.next();  // warm-up: thread start, first decode
  const int64_t batches = epochs * loader.batches_per_epoch();
  int64_t images = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < batches; ++i) images += loader.next()->size;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(images) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  const int epochs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  const auto root = std::filesystem::temp_directory_path() /
                    ("unitrain_data_bench_" + std::to_string(::getpid()));
  struct Size {
    int width, height, count;
  };
  std::printf("%-10s %8s %14s %14s %8s\n", "image", "images", "1 worker/s", "2 workers/s", "ratio");
  for (const Size size : {Size{64, 64, 64}, Size{1333, 800, 16}}) {
    const auto dir = root / (std::to_string(size.width) + "x" + std::to_string(size.height));
    auto dataset = std::make_shared<CocoStyleDataset>(make_images(dir, size.count, size.width, size.height));
    const double one = images_per_second(dataset, 1, epochs);
    const double two = images_per_second(dataset, 2, epochs);
    std::printf("%4dx%-5d %8d %14.1f %14.1f %8.2f\n", size.height, size.width, size.count, one, two,
                two / one);
  }
  std::filesystem::remove_all(root);
  return 0;
}
