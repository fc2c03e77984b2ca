#include "coco_detection_plugin.h"

#include <gtest/gtest.h>

#include "plugins/datasets/dataset_test_util.h"

namespace unitrain::coco {
namespace {

using nlohmann::json;
using testing::data_error_of;
using testing::TempDir;
using testing::write_file;
using testing::write_image;

// Two images (40x30 and 20x20 in a subfolder), categories with ids 1, 3, 90.
json instances() {
  return json::parse(R"({
    "images": [{"id": 10, "file_name": "a.jpg", "width": 40, "height": 30},
               {"id": 11, "file_name": "sub/b.png", "width": 20, "height": 20}],
    "annotations": [
      {"id": 1, "image_id": 10, "category_id": 90, "bbox": [4, 3, 10, 6], "iscrowd": 0, "area": 60},
      {"id": 2, "image_id": 10, "category_id": 1, "bbox": [0, 0, 40, 30], "iscrowd": 1, "area": 1},
      {"id": 3, "image_id": 10, "category_id": 3, "bbox": [35, 25, 10, 10], "iscrowd": 0, "area": 25},
      {"id": 4, "image_id": 11, "category_id": 3, "bbox": [2, 2, 4, 4], "iscrowd": 0, "area": 16}],
    "categories": [{"id": 90, "name": "toothbrush", "supercategory": "x"},
                   {"id": 1, "name": "person", "supercategory": "x"},
                   {"id": 3, "name": "car", "supercategory": "x"}]
  })");
}

struct CocoFiles {
  TempDir dir;
  data::CocoStyleOptions options;

  explicit CocoFiles(const json& j, data::OnBadRecord policy = data::OnBadRecord::kError) {
    write_image(dir / "images/a.jpg", 40, 30);
    write_image(dir / "images/sub/b.png", 20, 20);
    options.annotations = dir / "instances.json";
    options.images = dir / "images";
    options.image.min_size = 0;  // keep sizes: boxes are easy to check
    options.image.max_size = 0;
    options.on_bad_record = policy;
    write_file(options.annotations, j.dump(1));
  }
  std::string file() const { return options.annotations.string(); }
};

TEST(CocoDetection, ContiguousLabelsCrowdDroppedBoxesNormalized) {
  CocoFiles files(instances());
  data::CocoStyleDataset ds(files.options);
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.labels().kind, "detection");
  EXPECT_EQ(ds.labels().names, (std::vector<std::string>{"person", "car", "toothbrush"}));
  EXPECT_EQ(ds.category_id(0), 1);
  EXPECT_EQ(ds.category_id(2), 90);
  EXPECT_EQ(ds.num_annotations(), 3);
  EXPECT_EQ(ds.skipped(), (json{{"iscrowd", 1}}));

  const Sample s = ds.get(0, 0);
  EXPECT_EQ(s.image.sizes(), (std::vector<int64_t>{3, 30, 40}));
  EXPECT_EQ(s.image_id, 10);
  EXPECT_EQ(s.orig_height, 30);
  EXPECT_EQ(s.orig_width, 40);
  EXPECT_TRUE(torch::equal(s.classes, torch::tensor({2, 1}, torch::kInt64)));
  // [4, 3, 10, 6] -> cxcywh (9/40, 6/30, 10/40, 6/30); [35, 25, 10, 10] is clamped to
  // [35, 25, 40, 30] -> (37.5/40, 27.5/30, 5/40, 5/30).
  const auto expected = torch::tensor({{9 / 40.f, 6 / 30.f, 10 / 40.f, 6 / 30.f},
                                       {37.5f / 40, 27.5f / 30, 5 / 40.f, 5 / 30.f}});
  EXPECT_TRUE(torch::allclose(s.boxes, expected)) << s.boxes;
  EXPECT_FALSE(s.attributes.defined());
  EXPECT_EQ(ds.get(1, 0).image.sizes(), (std::vector<int64_t>{3, 20, 20}));
}

TEST(CocoDetection, EvaluatorScoresPerfectDetections) {
  CocoFiles files(instances());
  data::CocoStyleDataset ds(files.options);
  const Batch batch = collate({ds.get(0, 0), ds.get(1, 0)}, "coco");
  Predictions predictions;
  predictions.detections = {{{4, 3, 14, 9, 0.9f, 2}, {35, 25, 40, 30, 0.8f, 1}},
                            {{2, 2, 6, 6, 0.7f, 1}}};
  auto evaluator = ds.evaluator();
  evaluator->add(predictions, batch);
  EXPECT_NEAR(evaluator->compute().at("ap").get<double>(), 1.0, 1e-6);
}

void expect_error(json j, const std::string& expected) {
  CocoFiles files(j);
  const std::string message = data_error_of([&] { data::CocoStyleDataset ds(files.options); });
  EXPECT_NE(message.find(files.file() + ": " + expected), std::string::npos) << message;
}

TEST(CocoDetection, UnknownCategoryIdIsABadRecord) {
  auto j = instances();
  j["annotations"][3]["category_id"] = 7;
  expect_error(j, "annotations[3] (id 4): field 'category_id': category id 7 is not in "
                  "'categories' (3 categories, ids 1..90)");
}

TEST(CocoDetection, NonPositiveBoxSizeIsABadRecord) {
  auto j = instances();
  j["annotations"][0]["bbox"] = {4, 3, 0, 6};
  expect_error(j, "annotations[0] (id 1): field 'bbox': width and height must be > 0, found [4,3,0,6]");
}

TEST(CocoDetection, BoxOutsideTheImageIsABadRecord) {
  auto j = instances();
  j["annotations"][0]["bbox"] = {45, 3, 5, 6};
  expect_error(j, "annotations[0] (id 1): field 'bbox': [45,3,5,6] lies outside the 40x30 image 10");
}

TEST(CocoDetection, PathEscapeIsABadRecord) {
  auto j = instances();
  j["images"][1]["file_name"] = "../b.png";
  expect_error(j, "images[1] (id 11): field 'file_name': image path '../b.png' escapes the image root");
}

TEST(CocoDetection, MissingImageFileIsABadRecord) {
  auto j = instances();
  j["images"][1]["file_name"] = "nowhere.jpg";
  expect_error(j, "images[1] (id 11): field 'file_name': image file '");
}

TEST(CocoDetection, MissingFieldIsABadRecord) {
  auto j = instances();
  j["images"][0].erase("width");
  expect_error(j, "images[0] (id 10): field 'width': missing");
}

TEST(CocoDetection, MalformedJsonNamesLineAndColumn) {
  CocoFiles files(instances());
  write_file(files.options.annotations, "{\n  \"images\": [\n    {\"id\": 1,,}\n");
  const std::string message = data_error_of([&] { data::CocoStyleDataset ds(files.options); });
  EXPECT_NE(message.find(files.file() + ":3:14: malformed JSON in annotations file"),
            std::string::npos)
      << message;
}

TEST(CocoDetection, CorruptOrResizedImageFailsAtDecodeWithThePath) {
  CocoFiles files(instances());
  write_file(files.dir / "images/a.jpg", "not a jpeg");
  data::CocoStyleDataset ds(files.options);
  std::string message = data_error_of([&] { ds.get(0, 0); });
  EXPECT_NE(message.find("cannot decode image file '" + (files.dir / "images/a.jpg").string()),
            std::string::npos)
      << message;
  write_image(files.dir / "images/a.jpg", 50, 30);
  message = data_error_of([&] { ds.get(0, 0); });
  EXPECT_NE(message.find("is 50x30 (width x height) but the annotations say 40x30"),
            std::string::npos)
      << message;
}

// An image that breaks after the split was opened is a BadRecordError carrying the
// policy and the reason, so the loader can leave it out under "skip".
TEST(CocoDetection, ImageBrokenAfterOpeningIsABadRecordAtReadTime) {
  for (auto policy : {data::OnBadRecord::kError, data::OnBadRecord::kSkip}) {
    CocoFiles files(instances(), policy);
    data::CocoStyleDataset ds(files.options);
    const auto jpeg = files.dir / "images/a.jpg";
    const std::string bytes = test::read_file(jpeg);
    struct Case {
      std::string content, reason, message;
    };
    const std::vector<Case> cases = {
        {bytes.substr(0, bytes.size() / 2), "truncated_image", "is a truncated JPEG"},
        {"not a jpeg", "corrupt_image", "cannot decode image file"},
        {"", "corrupt_image", "cannot decode image file"}};
    for (const auto& c : cases) {
      write_file(jpeg, c.content);
      try {
        ds.get(0, 0);
        ADD_FAILURE() << "expected a BadRecordError for " << c.reason;
      } catch (const data::BadRecordError& e) {
        const std::string message = e.what();
        EXPECT_EQ(e.reason(), c.reason);
        EXPECT_EQ(e.skip(), policy == data::OnBadRecord::kSkip);
        EXPECT_NE(message.find(files.file() + ": image id 10: "), std::string::npos) << message;
        EXPECT_NE(message.find(c.message), std::string::npos) << message;
        EXPECT_NE(message.find(jpeg.string()), std::string::npos) << message;
        EXPECT_EQ(message.find("on_bad_record") != std::string::npos,
                  policy == data::OnBadRecord::kError)
            << message;
      }
    }
    std::filesystem::remove(jpeg);
    try {
      ds.get(0, 0);
      ADD_FAILURE() << "expected a BadRecordError for a removed image";
    } catch (const data::BadRecordError& e) {
      EXPECT_EQ(e.reason(), "missing_image");
    }
    // A JPEG with bytes after its end-of-image marker is still whole.
    write_file(jpeg, bytes + std::string(100, '\0'));
    EXPECT_EQ(ds.get(0, 0).image.size(2), 40);
  }
}

TEST(CocoDetection, SkipModeCountsEachReason) {
  auto j = instances();
  j["annotations"][0]["category_id"] = 7;                 // unknown_category
  j["annotations"][3]["bbox"] = {2, 2, -1, 4};             // bad_bbox
  j["images"].push_back({{"id", 12}, {"file_name", "../c.jpg"}, {"width", 5}, {"height", 5}});
  j["images"].push_back({{"id", 13}, {"file_name", "gone.jpg"}, {"width", 5}, {"height", 5}});
  j["annotations"].push_back({{"id", 9}, {"image_id", 13}, {"category_id", 1}, {"bbox", {1, 1, 2, 2}}});
  CocoFiles files(j, data::OnBadRecord::kSkip);
  data::CocoStyleDataset ds(files.options);
  EXPECT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.num_annotations(), 1);
  EXPECT_EQ(ds.skipped(), (json{{"annotations_of_skipped_images", 1},
                                {"bad_bbox", 1},
                                {"iscrowd", 1},
                                {"missing_image", 1},
                                {"unknown_category", 1},
                                {"unsafe_path", 1}}));
  EXPECT_EQ(ds.get(1, 0).boxes.size(0), 0);  // image 11 lost its only box
}

TEST(CocoDetectionPlugin, StandardFileNamesUnderRoot) {
  CocoFiles files(instances());
  std::filesystem::create_directories(files.dir / "annotations");
  std::filesystem::copy(files.options.annotations, files.dir / "annotations/instances_val2017.json");
  std::filesystem::rename(files.dir / "images", files.dir / "val2017");
  auto ds = make_coco_detection(
      {{"split", "val"}, {"root", files.dir.path().string()}, {"image", {{"min_size", 60}}}});
  ASSERT_EQ(ds->size(), 2);
  const Sample s = ds->get(0, 0);
  EXPECT_EQ(s.image.sizes(), (std::vector<int64_t>{3, 60, 80}));  // val: no augmentation
}

// The block is declared once (plugin.cpp): its defaults hold the nested image and
// evaluator groups with DETR's detection transform, and errors name the nested key.
TEST(CocoDetectionPlugin, OptionsAreDeclaredOnceWithNestedGroups) {
  auto message = [](const json& options) {
    try {
      make_coco_detection(options);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no ConfigError");
  };
  EXPECT_NE(message({{"image", {{"hflip", 2}}}})
                .find("coco_detection/image/hflip: must be in [0, 1], got 2"),
            std::string::npos);
  EXPECT_NE(message({{"evaluator", {{"max_detections", 0}}}})
                .find("coco_detection/evaluator/max_detections: must be >= 1, got 0"),
            std::string::npos);
  EXPECT_NE(message({{"evaluator", {{"f1_positive", 1}}}})
                .find("coco_detection/evaluator/f1_positive: unknown key 'f1_positive'; valid "
                      "keys: max_detections"),
            std::string::npos);
  EXPECT_NE(message({{"on_bad_record", "ignore"}})
                .find("coco_detection/on_bad_record: on_bad_record must be \"error\" or "
                      "\"skip\""),
            std::string::npos);

  CocoFiles files(instances());
  const auto train = coco_options_from_json(
      {{"annotations", {{"train", files.options.annotations.string()}}},
       {"images", {{"train", files.options.images.string()}}}},
      "x");
  EXPECT_EQ(train.image.train_min_sizes.size(), 11u);  // DETR's 480..800
  EXPECT_EQ(train.image.hflip, 0.5);
  EXPECT_EQ(train.image.augment, std::optional<bool>(true));  // resolved from the split
  EXPECT_EQ(train.evaluator.max_detections, 100);
  EXPECT_EQ(train.on_bad_record, data::OnBadRecord::kError);
  const auto val = coco_options_from_json({{"split", "val"}, {"root", "/data/coco"}}, "x");
  EXPECT_EQ(val.annotations, "/data/coco/annotations/instances_val2017.json");
  EXPECT_EQ(val.images, "/data/coco/val2017");
  EXPECT_EQ(val.image.augment, std::optional<bool>(false));
}

}  // namespace
}  // namespace unitrain::coco
