// Every toy-suite file read through its dataset plugin, with the plugins' default file
// names: every record decodes, the record counts match the manifest, detection records
// carry their boxes and no text token is [UNK]. A plugin that is not built is skipped
// with a message naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "unitrain/dataset.h"
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

}  // namespace
}  // namespace unitrain::toy
