// The toy suite: deterministic bytes, every file in its format, balanced labels,
// boxes inside their images, every word in vocab.txt.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "unitrain/errors.h"
#include "unitrain/toy/toy_suite.h"

namespace unitrain::toy {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

json read_json(const fs::path& path) { return json::parse(read(path)); }

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(text);
  while (std::getline(in, field, separator)) out.push_back(field);
  return out;
}

struct Tsv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

Tsv read_tsv(const fs::path& path) {
  Tsv tsv;
  const std::vector<std::string> lines = split(read(path), '\n');
  EXPECT_FALSE(lines.empty()) << path;
  if (lines.empty()) return tsv;
  tsv.header = split(lines[0], '\t');
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> fields = split(lines[i], '\t');
    EXPECT_EQ(fields.size(), tsv.header.size()) << path << " line " << i + 1;
    tsv.rows.push_back(std::move(fields));
  }
  return tsv;
}

// Relative path -> bytes of every file under `dir`.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      files[fs::relative(entry.path(), dir).string()] = read(entry.path());
    }
  }
  return files;
}

// Counts of each label must differ by at most `slack`.
void expect_balanced(const std::map<std::string, int>& counts, size_t num_labels, int slack,
                     const std::string& what) {
  EXPECT_EQ(counts.size(), num_labels) << what;
  int lo = 1 << 30, hi = 0;
  for (const auto& [label, count] : counts) {
    lo = std::min(lo, count);
    hi = std::max(hi, count);
  }
  EXPECT_LE(hi - lo, slack) << what;
}

class ToySuiteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("unitrain_toy_suite_test_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    options_.seed = 7;
    options_.images = 30;
    options_.text_examples = 90;
    options_.image_size = 64;
    make_toy_suite(root_ / "a", options_);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static fs::path dir() { return root_ / "a"; }

  static fs::path root_;
  static ToySuiteOptions options_;
};

fs::path ToySuiteTest::root_;
ToySuiteOptions ToySuiteTest::options_;

TEST_F(ToySuiteTest, SameSeedGivesIdenticalBytesAnotherSeedDoesNot) {
  make_toy_suite(root_ / "b", options_);
  ToySuiteOptions other = options_;
  other.seed = 8;
  make_toy_suite(root_ / "c", other);
  const auto a = snapshot(root_ / "a");
  const auto b = snapshot(root_ / "b");
  const auto c = snapshot(root_ / "c");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, bytes] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(bytes == b.at(name)) << name << " differs between two runs with one seed";
  }
  for (const char* name : {"coco/annotations/instances_train2017.json", "glue/SST-2/train.tsv",
                           "vqa2/v2_mscoco_train2014_annotations.json",
                           "snli_ve/snli_ve_train.jsonl", "coco/train2017/000000000100.jpg"}) {
    ASSERT_TRUE(c.count(name)) << name;
    EXPECT_NE(a.at(name), c.at(name)) << name << " is the same for seeds 7 and 8";
  }
}

TEST_F(ToySuiteTest, CocoFilesAreCocoAndBoxesLieInsideTheirImages) {
  std::map<std::string, int> per_category;
  int64_t images = 0;
  for (const std::string part : {"train", "val"}) {
    const json coco = read_json(dir() / ("coco/annotations/instances_" + part + "2017.json"));
    for (const char* key : {"info", "licenses", "images", "annotations", "categories"}) {
      ASSERT_TRUE(coco.contains(key)) << part << ": " << key;
    }
    std::set<int64_t> category_ids;
    for (const auto& c : coco["categories"]) category_ids.insert(c.at("id").get<int64_t>());
    EXPECT_EQ(category_ids.size(), 9u);
    EXPECT_FALSE(category_ids.count(1)) << "category ids should not start at 1";
    EXPECT_NE(*category_ids.rbegin(), 9) << "category ids should not be contiguous";

    std::map<int64_t, std::pair<int64_t, int64_t>> sizes;  // id -> (w, h)
    for (const auto& image : coco["images"]) {
      const auto id = image.at("id").get<int64_t>();
      const std::string file_name = image.at("file_name");
      char expected[32];
      std::snprintf(expected, sizeof(expected), "%012lld.jpg", static_cast<long long>(id));
      EXPECT_EQ(file_name, expected);
      const cv::Mat decoded = cv::imread((dir() / ("coco/" + part + "2017") / file_name).string());
      ASSERT_FALSE(decoded.empty()) << file_name;
      EXPECT_EQ(decoded.cols, image.at("width").get<int64_t>());
      EXPECT_EQ(decoded.rows, image.at("height").get<int64_t>());
      sizes[id] = {decoded.cols, decoded.rows};
      ++images;
    }
    std::set<int64_t> annotation_ids;
    for (const auto& a : coco["annotations"]) {
      EXPECT_TRUE(annotation_ids.insert(a.at("id").get<int64_t>()).second);
      EXPECT_EQ(a.at("iscrowd"), 0);
      EXPECT_TRUE(category_ids.count(a.at("category_id").get<int64_t>()));
      ASSERT_TRUE(sizes.count(a.at("image_id").get<int64_t>()));
      const auto [w, h] = sizes.at(a.at("image_id").get<int64_t>());
      const auto box = a.at("bbox").get<std::vector<double>>();
      ASSERT_EQ(box.size(), 4u);
      EXPECT_GE(box[0], 0);
      EXPECT_GE(box[1], 0);
      EXPECT_GT(box[2], 1);
      EXPECT_GT(box[3], 1);
      EXPECT_LE(box[0] + box[2], w);
      EXPECT_LE(box[1] + box[3], h);
      EXPECT_GT(a.at("area").get<double>(), 0);
      EXPECT_LE(a.at("area").get<double>(), box[2] * box[3]);
      EXPECT_TRUE(a.at("segmentation").is_array());
      ++per_category[std::to_string(a.at("category_id").get<int64_t>())];
    }
  }
  EXPECT_EQ(images, options_.images);
  // Classes are dealt from shuffled decks of 9: counts differ by at most a few.
  expect_balanced(per_category, 9, 3, "COCO categories");
}

TEST_F(ToySuiteTest, VisualGenomeAnnotationsCarrySixteenAttributeIds) {
  for (const std::string part : {"train", "val"}) {
    const json vg =
        read_json(dir() / ("vg/annotations/instances_" + part + "_split_by_coco_2017.json"));
    std::set<int64_t> attribute_ids;
    for (const auto& a : vg.at("attributes")) attribute_ids.insert(a.at("id").get<int64_t>());
    for (const auto& image : vg.at("images")) {
      EXPECT_TRUE(fs::exists(dir() / "vg/images" / image.at("file_name").get<std::string>()));
    }
    ASSERT_FALSE(vg.at("annotations").empty());
    for (const auto& a : vg.at("annotations")) {
      const auto ids = a.at("attribute_ids_max16").get<std::vector<int64_t>>();
      ASSERT_EQ(ids.size(), 16u);
      EXPECT_TRUE(attribute_ids.count(ids[0]));  // colour
      EXPECT_TRUE(attribute_ids.count(ids[1]));  // size
      for (size_t k = 2; k < 16; ++k) EXPECT_EQ(ids[k], -1);
    }
  }
}

TEST_F(ToySuiteTest, VqaQuestionsAndAnnotationsMatch) {
  std::map<std::string, int> yes_no;
  for (const std::string part : {"train2014", "val2014"}) {
    const json q = read_json(dir() / ("vqa2/v2_OpenEnded_mscoco_" + part + "_questions.json"));
    const json a = read_json(dir() / ("vqa2/v2_mscoco_" + part + "_annotations.json"));
    ASSERT_EQ(q.at("questions").size(), a.at("annotations").size());
    for (size_t i = 0; i < q["questions"].size(); ++i) {
      const json& question = q["questions"][i];
      const json& annotation = a["annotations"][i];
      EXPECT_EQ(question.at("question_id"), annotation.at("question_id"));
      EXPECT_EQ(question.at("image_id"), annotation.at("image_id"));
      EXPECT_FALSE(question.at("question").get<std::string>().empty());
      for (const char* key : {"question_type", "multiple_choice_answer", "answer_type"}) {
        EXPECT_TRUE(annotation.at(key).is_string()) << key;
      }
      ASSERT_EQ(annotation.at("answers").size(), 10u);
      for (const auto& answer : annotation["answers"]) {
        EXPECT_TRUE(answer.at("answer").is_string());
        EXPECT_TRUE(answer.at("answer_confidence").is_string());
        EXPECT_TRUE(answer.at("answer_id").is_number_integer());
      }
      char image[64];
      std::snprintf(image, sizeof(image), "COCO_%s_%012lld.jpg", part.c_str(),
                    static_cast<long long>(question.at("image_id").get<int64_t>()));
      EXPECT_TRUE(fs::exists(dir() / "vqa2" / part / image)) << image;
      if (annotation["answer_type"] == "yes/no") ++yes_no[annotation["multiple_choice_answer"]];
    }
  }
  // Yes and no alternate; annotator noise may flip a majority now and then.
  ASSERT_EQ(yes_no.size(), 2u);
  EXPECT_LE(std::abs(yes_no["yes"] - yes_no["no"]), 4);
}

TEST_F(ToySuiteTest, SnliVeLinesUseBothImageKeySpellingsAndBalancedLabels) {
  for (const std::string part : {"train", "dev"}) {
    std::map<std::string, int> labels;
    for (const std::string& line : split(read(dir() / ("snli_ve/snli_ve_" + part + ".jsonl")), '\n')) {
      const json record = json::parse(line);
      ++labels[record.at("gold_label").get<std::string>()];
      EXPECT_TRUE(record.at("sentence2").is_string());
      std::string image;
      if (part == "train") {
        image = record.at("Flikr30kID").get<std::string>();
        EXPECT_EQ(image.substr(image.size() - 4), ".jpg");
      } else {
        image = record.at("Flickr30K_ID").get<std::string>() + ".jpg";
      }
      EXPECT_TRUE(fs::exists(dir() / "snli_ve/flickr30k_images" / image)) << image;
    }
    expect_balanced(labels, 3, 0, "SNLI-VE " + part);
  }
}

TEST_F(ToySuiteTest, GlueFilesHaveTheRealHeadersAndBalancedLabels) {
  const std::vector<std::string> mnli_common = {
      "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
      "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1"};
  std::vector<std::string> mnli_train = mnli_common, mnli_dev = mnli_common;
  mnli_train.push_back("gold_label");
  for (const char* c : {"label2", "label3", "label4", "label5", "gold_label"}) mnli_dev.push_back(c);
  struct File {
    std::string path;
    std::vector<std::string> header;
    std::set<std::string> labels;
  };
  const std::set<std::string> nli = {"entailment", "neutral", "contradiction"};
  const std::vector<File> files = {
      {"QNLI/train.tsv", {"index", "question", "sentence", "label"}, {"entailment", "not_entailment"}},
      {"QNLI/dev.tsv", {"index", "question", "sentence", "label"}, {"entailment", "not_entailment"}},
      {"MNLI/train.tsv", mnli_train, nli},
      {"MNLI/dev_matched.tsv", mnli_dev, nli},
      {"MNLI/dev_mismatched.tsv", mnli_dev, nli},
      {"QQP/train.tsv", {"id", "qid1", "qid2", "question1", "question2", "is_duplicate"}, {"0", "1"}},
      {"QQP/dev.tsv", {"id", "qid1", "qid2", "question1", "question2", "is_duplicate"}, {"0", "1"}},
      {"SST-2/train.tsv", {"sentence", "label"}, {"0", "1"}},
      {"SST-2/dev.tsv", {"sentence", "label"}, {"0", "1"}}};
  for (const File& file : files) {
    const Tsv tsv = read_tsv(dir() / "glue" / file.path);
    EXPECT_EQ(tsv.header, file.header) << file.path;
    ASSERT_FALSE(tsv.rows.empty()) << file.path;
    std::map<std::string, int> counts;
    int unlabelled = 0;
    for (const auto& row : tsv.rows) {
      for (const auto& field : row) {
        EXPECT_FALSE(field.empty()) << file.path;
        EXPECT_EQ(field.find('"'), std::string::npos) << file.path;
      }
      const std::string& label = row.back();
      if (label == "-") {
        ++unlabelled;  // MNLI dev pairs without a majority
        continue;
      }
      EXPECT_TRUE(file.labels.count(label)) << file.path << ": " << label;
      ++counts[label];
    }
    EXPECT_EQ(unlabelled > 0, file.path.rfind("MNLI/dev", 0) == 0) << file.path;
    expect_balanced(counts, file.labels.size(), 1, file.path);
  }
}

// An uncased BERT basic tokenizer's view: lower case, split on whitespace, every ASCII
// punctuation character a word of its own.
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string word;
  for (unsigned char c : text) {
    if (std::isspace(c) || std::ispunct(c)) {
      if (!word.empty()) out.push_back(word);
      word.clear();
      if (std::ispunct(c)) out.emplace_back(1, static_cast<char>(c));
    } else {
      word.push_back(static_cast<char>(std::tolower(c)));
    }
  }
  if (!word.empty()) out.push_back(word);
  return out;
}

TEST_F(ToySuiteTest, VocabularyCoversEveryWordOfEveryTextField) {
  const std::vector<std::string> vocab = split(read(dir() / "vocab.txt"), '\n');
  ASSERT_GE(vocab.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(vocab.begin(), vocab.begin() + 5),
            (std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}));
  const std::set<std::string> known(vocab.begin(), vocab.end());
  EXPECT_EQ(known.size(), vocab.size()) << "vocab.txt has duplicate lines";

  std::vector<std::string> texts;
  for (const std::string part : {"train2014", "val2014"}) {
    // Held in a variable: a range-for over a member of a temporary reads freed memory.
    const json file = read_json(dir() / ("vqa2/v2_OpenEnded_mscoco_" + part + "_questions.json"));
    for (const auto& q : file["questions"]) texts.push_back(q.at("question"));
  }
  for (const std::string part : {"train", "dev"}) {
    for (const std::string& line :
         split(read(dir() / ("snli_ve/snli_ve_" + part + ".jsonl")), '\n')) {
      const json record = json::parse(line);
      texts.push_back(record.at("sentence1"));
      texts.push_back(record.at("sentence2"));
    }
  }
  const std::vector<std::pair<std::string, std::vector<size_t>>> glue = {
      {"QNLI/train.tsv", {1, 2}},         {"QNLI/dev.tsv", {1, 2}},
      {"MNLI/train.tsv", {8, 9}},         {"MNLI/dev_matched.tsv", {8, 9}},
      {"MNLI/dev_mismatched.tsv", {8, 9}}, {"QQP/train.tsv", {3, 4}},
      {"QQP/dev.tsv", {3, 4}},            {"SST-2/train.tsv", {0}},
      {"SST-2/dev.tsv", {0}}};
  for (const auto& [file, columns] : glue) {
    for (const auto& row : read_tsv(dir() / "glue" / file).rows) {
      for (size_t column : columns) texts.push_back(row.at(column));
    }
  }
  size_t checked = 0;
  for (const std::string& text : texts) {
    for (const std::string& word : words_of(text)) {
      EXPECT_TRUE(known.count(word)) << "'" << word << "' of \"" << text << "\" is not in vocab.txt";
      ++checked;
    }
  }
  EXPECT_GT(checked, 1000u);
}

TEST_F(ToySuiteTest, ManifestListsEveryDataset) {
  const json manifest = read_json(dir() / "manifest.json");
  for (const char* name : {"coco", "vg", "vqa2", "snli_ve", "qnli", "mnli", "qqp", "sst2"}) {
    EXPECT_TRUE(manifest.at("datasets").contains(name)) << name;
  }
  EXPECT_EQ(manifest.at("options").at("seed"), 7);
  EXPECT_TRUE(fs::exists(dir() / "README.md"));
}

TEST_F(ToySuiteTest, IsCurrentOnlyForTheSameOptionsAndVersion) {
  EXPECT_TRUE(toy_suite_is_current(dir(), options_));
  ToySuiteOptions other = options_;
  other.questions_per_image += 1;
  EXPECT_FALSE(toy_suite_is_current(dir(), other));
  other = options_;
  other.val_fraction = 0.25;
  EXPECT_FALSE(toy_suite_is_current(dir(), other));
  EXPECT_FALSE(toy_suite_is_current(root_ / "missing", options_));

  // An older generator's manifest, or a broken one, is not current.
  const fs::path old = root_ / "old";
  fs::create_directories(old);
  json manifest = read_json(dir() / "manifest.json");
  EXPECT_EQ(manifest.at("version"), kToySuiteVersion);
  manifest["version"] = kToySuiteVersion - 1;
  std::ofstream(old / "manifest.json") << manifest.dump();
  EXPECT_FALSE(toy_suite_is_current(old, options_));
  std::ofstream(old / "manifest.json") << "{ not json";
  EXPECT_FALSE(toy_suite_is_current(old, options_));
}

TEST(ToySuiteOptions, InvalidOptionsNameTheProblem) {
  ToySuiteOptions options;
  options.images = 1;
  try {
    make_toy_suite(fs::temp_directory_path() / "unitrain_toy_never_written", options);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("images is 1, expected >= 2"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(fs::temp_directory_path() / "unitrain_toy_never_written"));
}

}  // namespace
}  // namespace unitrain::toy
