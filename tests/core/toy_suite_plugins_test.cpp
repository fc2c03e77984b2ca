// Every toy-suite file read through its dataset plugin, with the plugins' default file
// names: every record decodes, the record counts match the manifest, detection records
// carry their boxes and no text token is [UNK]. A plugin that is not built is skipped
// with a message naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "unitrain/data/image_pipeline.h"
#include "unitrain/dataset.h"
#include "unitrain/prepare.h"
#include "unitrain/registry.h"
#include "unitrain/toy/toy_suite.h"

namespace unitrain::toy {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kUnknownTokenId = 1;  // vocab.txt: [PAD] [UNK] [CLS] [SEP] [MASK] ...

class ToySuitePluginsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("unitrain_toy_plugins_test_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    ToySuiteOptions options;
    options.seed = 3;
    options.images = 20;
    options.text_examples = 60;
    options.image_size = 64;
    make_toy_suite(root_, options);
    std::ifstream in(root_ / "manifest.json");
    manifest_ = json::parse(in);
    registry_ = new Registry();
    registry_->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
  }
  static void TearDownTestSuite() {
    fs::remove_all(root_);
    // NOTE: the registry is leaked on purpose: plugin libraries are never unloaded.
  }

  // Creates dataset `name` for `split`; null when the plugin is not loaded.
  std::shared_ptr<Dataset> open(const std::string& name, json options, const std::string& split) {
    if (!registry_->contains("dataset", name)) return nullptr;
    options["split"] = split;
    return registry_->create_as<Dataset>("dataset", name, options, "toy/" + name + "/" + split);
  }

  static json tokenizer() { return {{"vocab", (root_ / "vocab.txt").string()}}; }
  static json small_images() { return {{"min_size", 64}, {"max_size", 128}}; }
  static int64_t count(const std::string& dataset, const std::string& split,
                       const std::string& key) {
    return manifest_["datasets"][dataset]["counts"][split][key].get<int64_t>();
  }

  // Reads every record; checks text tokens and detection targets.
  static void read_all(const Dataset& dataset, const std::string& what) {
    ASSERT_GT(dataset.size(), 0) << what;
    int64_t labelled = 0;
    for (int64_t i = 0; i < dataset.size(); ++i) {
      const Sample sample = dataset.get(i, 0);
      for (int64_t id : sample.input_ids) {
        ASSERT_NE(id, kUnknownTokenId) << what << " record " << i << " (" << sample.source
                                       << ") has an [UNK] token";
      }
      labelled += sample.label >= 0 || sample.soft_label.defined() || sample.boxes.defined();
      if (sample.boxes.defined()) {
        ASSERT_GT(sample.boxes.size(0), 0) << what << " record " << i;
        ASSERT_TRUE((sample.boxes >= 0).all().item<bool>()) << what << " record " << i;
        ASSERT_TRUE((sample.boxes <= 1).all().item<bool>()) << what << " record " << i;
      }
    }
    EXPECT_EQ(labelled, dataset.size()) << what << ": every record has a target";
  }

  static fs::path root_;
  static json manifest_;
  static Registry* registry_;
};

fs::path ToySuitePluginsTest::root_;
json ToySuitePluginsTest::manifest_;
Registry* ToySuitePluginsTest::registry_ = nullptr;

// Every dataset plugin is built with the tests: one that does not open is a failure.
#define OPEN_OR_FAIL(var, name, options, split)                                       \
  auto var = open(name, options, split);                                              \
  ASSERT_TRUE(var) << "dataset plugin '" << name << "' did not load";

TEST_F(ToySuitePluginsTest, CocoDetection) {
  for (const std::string split : {"train", "val"}) {
    OPEN_OR_FAIL(d, "coco_detection",
                 (json{{"root", (root_ / "coco").string()}, {"image", small_images()}}), split);
    EXPECT_EQ(d->size(), count("coco", split, "images"));
    EXPECT_EQ(d->labels().names.size(), 9u);
    read_all(*d, "coco " + split);
  }
}

TEST_F(ToySuitePluginsTest, VgDetection) {
  for (const std::string split : {"train", "val"}) {
    OPEN_OR_FAIL(d, "vg_detection",
                 (json{{"root", (root_ / "vg").string()}, {"image", small_images()}}), split);
    EXPECT_EQ(d->size(), count("vg", split, "images"));
    EXPECT_EQ(d->labels().names.size(), 3u);
    read_all(*d, "vg " + split);
  }
}

TEST_F(ToySuitePluginsTest, Vqa2) {
  for (const std::string split : {"train", "val"}) {
    OPEN_OR_FAIL(d, "vqa2",
                 (json{{"root", (root_ / "vqa2").string()},
                       {"tokenizer", tokenizer()},
                       {"answer_min_count", 1},
                       {"image", small_images()}}),
                 split);
    EXPECT_EQ(d->size(), count("vqa2", split, "questions"));
    read_all(*d, "vqa2 " + split);
  }
}

TEST_F(ToySuitePluginsTest, SnliVe) {
  for (const std::string split : {"train", "dev"}) {
    OPEN_OR_FAIL(d, "snli_ve",
                 (json{{"root", (root_ / "snli_ve").string()},
                       {"tokenizer", tokenizer()},
                       {"image", small_images()}}),
                 split);
    EXPECT_EQ(d->size(), count("snli_ve", split, "pairs"));
    read_all(*d, "snli_ve " + split);
  }
}

TEST_F(ToySuitePluginsTest, Glue) {
  const std::vector<std::tuple<std::string, std::string, std::string>> files = {
      {"qnli", "QNLI", "train"},         {"qnli", "QNLI", "dev"},
      {"qqp", "QQP", "train"},           {"qqp", "QQP", "dev"},
      {"sst2", "SST-2", "train"},        {"sst2", "SST-2", "dev"},
      {"mnli", "MNLI", "train"},         {"mnli", "MNLI", "dev_matched"},
      {"mnli", "MNLI", "dev_mismatched"}};
  for (const auto& [task, folder, split] : files) {
    OPEN_OR_FAIL(d, "glue",
                 (json{{"task", task},
                       {"root", (root_ / "glue" / folder).string()},
                       {"tokenizer", tokenizer()}}),
                 split);
    const json& counts = manifest_["datasets"][task]["counts"][split];
    const int64_t unlabelled = counts["labels"].value("-", int64_t{0});  // MNLI "-" rows
    EXPECT_EQ(d->size(), counts["rows"].get<int64_t>() - unlabelled) << task << " " << split;
    read_all(*d, task + " " + split);
  }
}

// A dataset's preparer (unitrain/prepare.h, what `predict` uses) gives for a record's raw
// inputs the sample the dataset gives for that evaluation record: the same image tensor
// and original size, the same token and segment ids.
class Preparers : public ToySuitePluginsTest {
 protected:
  // The preparer built from the dataset block `options`; null when not registered.
  std::shared_ptr<InputPreparer> preparer(const std::string& name, const json& options) {
    if (!registry_->contains("preparer", name)) return nullptr;
    return registry_->create_as<InputPreparer>("preparer", name, options, "toy/" + name);
  }

  static void expect_same(const Sample& prepared, const Sample& record) {
    ASSERT_EQ(prepared.image.defined(), record.image.defined());
    if (record.image.defined()) {
      EXPECT_TRUE(torch::equal(prepared.image, record.image));
      EXPECT_EQ(prepared.orig_height, record.orig_height);
      EXPECT_EQ(prepared.orig_width, record.orig_width);
    }
    EXPECT_EQ(prepared.input_ids, record.input_ids);
    EXPECT_EQ(prepared.segment_ids, record.segment_ids);
  }

  // The cells of line `line` (0 = the header) of a TSV file.
  static std::vector<std::string> tsv_line(const fs::path& file, int line) {
    std::ifstream in(file);
    std::string text;
    for (int i = 0; i <= line; ++i) std::getline(in, text);
    std::vector<std::string> cells;
    std::stringstream stream(text);
    for (std::string cell; std::getline(stream, cell, '\t');) cells.push_back(cell);
    return cells;
  }
};

TEST_F(Preparers, CocoImageAsTheValRecord) {
  const json options = {{"root", (root_ / "coco").string()}, {"image", small_images()}};
  OPEN_OR_FAIL(d, "coco_detection", options, "val");
  auto p = preparer("coco_detection", options);
  ASSERT_TRUE(p) << "coco_detection registers no preparer";
  EXPECT_TRUE(p->reads_image());
  EXPECT_FALSE(p->reads_text());
  // The transform it applies (the report undoes its normalization): the block's, without
  // augmentation.
  ASSERT_NE(p->image_transform(), nullptr);
  EXPECT_EQ(p->image_transform()->min_size, 64);
  EXPECT_EQ(p->image_transform()->max_size, 128);
  EXPECT_EQ(p->image_transform()->augment, std::optional<bool>(false));
  std::ifstream in(root_ / "coco/annotations/instances_val2017.json");
  const json instances = json::parse(in);
  RawInput input;
  input.rgb = data::decode_image(root_ / "coco/val2017" /
                                 instances["images"][0]["file_name"].get<std::string>());
  expect_same(p->prepare(input), d->get(0, 0));
}

TEST_F(Preparers, SnliVeImageAndHypothesisAsTheDevRecord) {
  const json options = {{"root", (root_ / "snli_ve").string()},
                        {"tokenizer", tokenizer()},
                        {"image", small_images()}};
  OPEN_OR_FAIL(d, "snli_ve", options, "dev");
  auto p = preparer("snli_ve", options);
  ASSERT_TRUE(p) << "snli_ve registers no preparer";
  std::ifstream in(root_ / "snli_ve/snli_ve_dev.jsonl");
  std::string line;
  std::getline(in, line);
  const json record = json::parse(line);
  RawInput input;
  input.rgb = data::decode_image(root_ / "snli_ve/flickr30k_images" /
                                 (record["Flickr30K_ID"].get<std::string>() + ".jpg"));
  input.text = record["sentence2"].get<std::string>();
  const Sample prepared = p->prepare(input);
  EXPECT_FALSE(prepared.input_ids.empty());
  expect_same(prepared, d->get(0, 0));
}

TEST_F(Preparers, GluePairsAndSingleSentencesAsTheirRecords) {
  for (const auto& [task, folder] : std::vector<std::pair<std::string, std::string>>{
           {"qnli", "QNLI"}, {"sst2", "SST-2"}}) {
    const json options = {{"task", task},
                          {"root", (root_ / "glue" / folder).string()},
                          {"tokenizer", tokenizer()},
                          {"max_length", 20}};
    OPEN_OR_FAIL(d, "glue", options, "dev");
    auto p = preparer("glue", options);
    ASSERT_TRUE(p) << "glue registers no preparer";
    EXPECT_FALSE(p->reads_image());
    EXPECT_EQ(p->image_transform(), nullptr);
    const auto cells = tsv_line(root_ / "glue" / folder / "dev.tsv", 1);
    RawInput input;
    input.text = task == "qnli" ? cells.at(1) : cells.at(0);
    if (task == "qnli") input.text_b = cells.at(2);
    const Sample prepared = p->prepare(input);
    if (task == "qnli") {
      EXPECT_EQ(prepared.segment_ids.back(), 1) << "the pair's second text is segment 1";
    }
    expect_same(prepared, d->get(0, 0));
  }
}

}  // namespace
}  // namespace unitrain::toy
