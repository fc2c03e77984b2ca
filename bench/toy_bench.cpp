// Time to write the toy suite for several image counts (GLUE rows fixed at 1000 per
// task). Prints one table; the ratio column is seconds per image relative to the
// smallest run, so it shows how generation scales.
//   toy_bench [DIR]   (default: a folder under the system temp directory, removed after)
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "unitrain/toy/toy_suite.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const fs::path root = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "unitrain_toy_bench";
  std::printf("%8s %10s %12s %8s\n", "images", "seconds", "ms/image", "ratio");
  double base = 0;
  for (int64_t images : {100, 500, 2000}) {
    const fs::path dir = root / std::to_string(images);
    fs::remove_all(dir);
    unitrain::toy::ToySuiteOptions options;
    options.images = images;
    const auto start = std::chrono::steady_clock::now();
    unitrain::toy::make_toy_suite(dir, options);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double per_image = 1000.0 * seconds / static_cast<double>(images);
    if (base == 0) base = per_image;
    std::printf("%8lld %10.2f %12.3f %8.2f\n", static_cast<long long>(images), seconds, per_image,
                per_image / base);
    fs::remove_all(dir);
  }
  if (argc <= 1) fs::remove_all(root);
  return 0;
}
