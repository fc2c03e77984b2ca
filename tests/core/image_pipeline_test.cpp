#include "unitrain/data/image_pipeline.h"

#include <set>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "plugins/datasets/dataset_test_util.h"

namespace unitrain::data {
namespace {

using testing::data_error_of;
using testing::TempDir;

cv::Mat gradient(int width, int height) {
  cv::Mat rgb(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(10 * x), static_cast<uchar>(20 * y), 7);
    }
  }
  return rgb;
}

ImageTransformOptions no_resize() {
  ImageTransformOptions o;
  o.min_size = 0;
  o.max_size = 0;
  return o;
}

TEST(ResizedSize, ShorterSideToMinSizeWithLongerSideCapped) {
  EXPECT_EQ(resized_size(480, 640, 800, 1333), (std::pair<int64_t, int64_t>{800, 1066}));
  EXPECT_EQ(resized_size(640, 480, 800, 1333), (std::pair<int64_t, int64_t>{1066, 800}));
  // 1000/100 * 800 > 1333: the shorter side shrinks to round(1333 * 100 / 1000) = 133.
  EXPECT_EQ(resized_size(100, 1000, 800, 1333), (std::pair<int64_t, int64_t>{133, 1330}));
  EXPECT_EQ(resized_size(100, 1000, 0, 1333), (std::pair<int64_t, int64_t>{100, 1000}));
}

TEST(ResizedSize, ExtremeAspectRatioKeepsOnePixelAndTheLongSideWithinMaxSize) {
  // round(1333 * 1 / 4000) = 0: the short side would vanish.
  EXPECT_EQ(resized_size(1, 4000, 800, 1333), (std::pair<int64_t, int64_t>{1, 1333}));
  EXPECT_EQ(resized_size(4000, 1, 800, 1333), (std::pair<int64_t, int64_t>{1333, 1}));
  ImageTransformOptions o;
  o.min_size = 800;
  o.max_size = 1333;
  const auto out = ImageTransform(o).apply(gradient(4000, 1), torch::Tensor(), 0);
  EXPECT_EQ(out.image.sizes(), (std::vector<int64_t>{3, 1, 1333}));
}

TEST(ImageTransform, NormalizesWithImageNetMeanAndStd) {
  const auto out = ImageTransform(no_resize()).apply(gradient(8, 4), torch::Tensor(), 0);
  ASSERT_EQ(out.image.sizes(), (std::vector<int64_t>{3, 4, 8}));
  EXPECT_FALSE(out.boxes.defined());
  // Pixel (x=3, y=2) is RGB (30, 40, 7).
  EXPECT_NEAR(out.image[0][2][3].item<float>(), (30 / 255.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(out.image[1][2][3].item<float>(), (40 / 255.0 - 0.456) / 0.224, 1e-5);
  EXPECT_NEAR(out.image[2][2][3].item<float>(), (7 / 255.0 - 0.406) / 0.225, 1e-5);
}

TEST(ImageTransform, HorizontalFlipMovesImageAndBoxes) {
  auto o = no_resize();
  o.augment = true;
  o.hflip = 1.0;
  const auto boxes = torch::tensor({{1.f, 1.f, 3.f, 2.f}});
  const auto out = ImageTransform(o).apply(gradient(8, 4), boxes, 123);
  // x0, x1 = 8 - 3, 8 - 1 -> cxcywh (6/8, 1.5/4, 2/8, 1/4).
  EXPECT_TRUE(torch::allclose(out.boxes, torch::tensor({{0.75f, 0.375f, 0.25f, 0.25f}})))
      << out.boxes;
  // Output column 0 holds input column 7 (R = 70).
  EXPECT_NEAR(out.image[0][0][0].item<float>(), (70 / 255.0 - 0.485) / 0.229, 1e-5);
  EXPECT_TRUE(out.flipped);
  o.hflip = 0.0;
  EXPECT_FALSE(ImageTransform(o).apply(gradient(8, 4), boxes, 123).flipped);
}

TEST(ImageTransform, NoAugmentationOutsideTraining) {
  auto o = no_resize();
  o.hflip = 1.0;
  o.train_min_sizes = {2};
  const auto boxes = torch::tensor({{1.f, 1.f, 3.f, 2.f}});
  const auto out = ImageTransform(o).apply(gradient(8, 4), boxes, 5);
  EXPECT_EQ(out.image.size(1), 4);
  EXPECT_TRUE(torch::allclose(out.boxes, torch::tensor({{0.25f, 0.375f, 0.25f, 0.25f}})));
}

TEST(ImageTransform, RandomResizeDependsOnlyOnTheSeedAndKeepsNormalizedBoxes) {
  ImageTransformOptions o;
  o.augment = true;
  o.train_min_sizes = {4, 8};
  o.max_size = 100;
  const ImageTransform transform(o);
  const auto boxes = torch::tensor({{2.f, 1.f, 6.f, 3.f}});
  std::set<int64_t> heights;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    const auto a = transform.apply(gradient(16, 8), boxes, seed);
    const auto b = transform.apply(gradient(16, 8), boxes, seed);
    EXPECT_TRUE(torch::equal(a.image, b.image));
    heights.insert(a.image.size(1));
    EXPECT_EQ(a.image.size(2), 2 * a.image.size(1));
    EXPECT_TRUE(torch::allclose(a.boxes, torch::tensor({{0.25f, 0.25f, 0.25f, 0.25f}})));
  }
  EXPECT_EQ(heights, (std::set<int64_t>{4, 8}));
}

TEST(ImagePath, EscapesAreRejected) {
  const std::filesystem::path root = "/data/images";
  EXPECT_EQ(resolve_image_path(root, "a/../b.jpg", "x"), root / "b.jpg");
  EXPECT_EQ(resolve_image_path(root, "sub/c.jpg", "x"), root / "sub/c.jpg");
  for (const std::string bad : {"../secret.jpg", "a/../../b.jpg", "/etc/passwd", ""}) {
    const std::string message =
        data_error_of([&] { resolve_image_path(root, bad, "ann.json: images[2]"); });
    EXPECT_NE(message.find("ann.json: images[2]: image path '" + bad +
                           "' escapes the image root '/data/images'"),
              std::string::npos)
        << message;
  }
}

TEST(DecodeImage, MissingAndCorruptFilesNameThePath) {
  TempDir dir;
  const auto missing = dir / "missing.jpg";
  std::string message = data_error_of([&] { decode_image(missing); });
  EXPECT_NE(message.find("image file '" + missing.string() + "' does not exist"), std::string::npos)
      << message;
  const auto corrupt = dir / "corrupt.jpg";
  testing::write_file(corrupt, "this is not a JPEG");
  message = data_error_of([&] { decode_image(corrupt); });
  EXPECT_NE(message.find("cannot decode image file '" + corrupt.string() + "'"), std::string::npos)
      << message;
}

TEST(DecodeImage, ReadsRgb) {
  TempDir dir;
  const auto file = dir / "a.png";
  testing::write_image(file, 5, 3, 40);  // BGR on disk: B = x + y + 40
  const cv::Mat rgb = decode_image(file);
  ASSERT_EQ(rgb.cols, 5);
  ASSERT_EQ(rgb.rows, 3);
  EXPECT_EQ(rgb.at<cv::Vec3b>(1, 2)[2], 43);  // blue is the third RGB channel
  EXPECT_EQ(rgb.at<cv::Vec3b>(1, 2)[0], 128);
}

TEST(ImageTransformOptions, JsonRoundTripAndErrors) {
  ImageTransformOptions o;
  o.min_size = 600;
  o.train_min_sizes = {480, 512};
  o.hflip = 0.5;
  o.augment = true;
  const auto back =
      image_transform_options_from_json(image_transform_options_to_json(o), {}, "x");
  EXPECT_EQ(image_transform_options_to_json(back), image_transform_options_to_json(o));

  // Keys left out keep the given defaults; "augment": null leaves it to the split.
  ImageTransformOptions defaults;
  defaults.augment = true;
  defaults.hflip = 0.25;
  const auto read = image_transform_options_from_json({{"augment", nullptr}}, defaults, "x");
  EXPECT_FALSE(read.augment.has_value());
  EXPECT_EQ(read.hflip, 0.25);
  EXPECT_TRUE(for_split(read, "train2017").augment.value());
  EXPECT_FALSE(for_split(read, "val").augment.value());
  EXPECT_TRUE(for_split(defaults, "val").augment.value());  // set: kept whatever the split
  try {
    image_transform_options_from_json({{"train_min_sizes", {480, 0}}}, {}, "x");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("x/train_min_sizes/1: sizes must be > 0, found 0"),
              std::string::npos)
        << e.what();
  }
  try {
    image_transform_options_from_json({{"std", {0.2, 0.2, 0}}}, {}, "x");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("x/std: expected 3 numbers (R, G, B) > 0"),
              std::string::npos)
        << e.what();
  }
  try {
    image_transform_options_from_json({{"hflip", 2}}, {}, "e.json:/tasks/coco/dataset/image");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "e.json:/tasks/coco/dataset/image/hflip: must be in [0, 1], got 2"),
              std::string::npos)
        << e.what();
  }
  try {
    image_transform_options_from_json({{"min_sizes", 2}}, {}, "x");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("x/min_sizes: unknown key 'min_sizes'; valid keys: min_size"),
              std::string::npos)
        << e.what();
  }
}

TEST(SwapWords, WholeWordsIgnoringCaseKeepingTheirCase) {
  const WordPairs pairs = {{"left", "right"}};
  EXPECT_EQ(swap_words("Is the Left one LEFT of the right-hand leftover? left.", pairs),
            "Is the Right one RIGHT of the left-hand leftover? right.");
  EXPECT_EQ(swap_words("right", pairs), "left");
  EXPECT_EQ(swap_words("nothing to swap", pairs), "nothing to swap");
  EXPECT_EQ(swap_words("left", {}), "left");
  // Several pairs; each word swaps once, whatever the order of the pairs.
  EXPECT_EQ(swap_words("east of the left tree", {{"east", "west"}, {"left", "right"}}),
            "west of the right tree");
}

TEST(SwapWords, PairsFromJsonAndTheirErrors) {
  EXPECT_EQ(word_pairs_from_json(nlohmann::json::parse(R"([["Left", "right"]])"), "x"),
            (WordPairs{{"left", "right"}}));
  EXPECT_EQ(word_pairs_to_json({{"left", "right"}}),
            nlohmann::json::parse(R"([["left", "right"]])"));
  EXPECT_TRUE(word_pairs_from_json(nlohmann::json::array(), "x").empty());
  const auto message = [](const char* text) {
    try {
      word_pairs_from_json(nlohmann::json::parse(text), "e.json:/tasks/vqa2/dataset/flip_swap");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(R"("left")"),
            "e.json:/tasks/vqa2/dataset/flip_swap: not an array; expected pairs of words such as "
            "[[\"left\", \"right\"]], found \"left\"");
  EXPECT_NE(message(R"([["left"]])").find("flip_swap: entry 0 is not a pair of strings"),
            std::string::npos);
  EXPECT_NE(message(R"([["left", "to the right"]])")
                .find("entry 0: 'to the right' is not a word of letters and digits"),
            std::string::npos);
  EXPECT_NE(message(R"([["left", "right"], ["up", "LEFT"]])")
                .find("entry 1: 'LEFT' appears in more than one place"),
            std::string::npos);
}

}  // namespace
}  // namespace unitrain::data
