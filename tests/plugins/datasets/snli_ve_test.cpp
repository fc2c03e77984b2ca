#include "snli_ve_dataset.h"

#include <gtest/gtest.h>

#include "plugins/datasets/dataset_test_util.h"

namespace unitrain::snli_ve {
namespace {

using nlohmann::json;
using testing::data_error_of;
using testing::TempDir;
using testing::write_file;
using testing::write_image;

struct SnliFiles {
  TempDir dir;
  SnliVeOptions options(const std::string& text, data::OnBadRecord policy = data::OnBadRecord::kError) {
    write_image(dir / "flickr/1000092795.jpg", 10, 6);
    write_image(dir / "flickr/36979.jpg", 6, 10);
    SnliVeOptions o;
    o.file = dir / "snli_ve_train.jsonl";
    write_file(o.file, text);
    o.images = dir / "flickr";
    o.tokenizer = testing::make_test_tokenizer(dir);
    o.image.min_size = 0;
    o.image.max_size = 0;
    o.on_bad_record = policy;
    return o;
  }
};

std::string line(const json& j) { return j.dump() + "\n"; }

TEST(SnliVeDataset, ReadsBothImageKeySpellingsAndLabels) {
  SnliFiles files;
  const std::string text =
      line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", "a man riding a horse."},
            {"gold_label", "entailment"}, {"pairID", "x"}}) +
      line({{"Flickr30K_ID", "36979"}, {"sentence2", "a cat"}, {"gold_label", "neutral"}}) +
      "\n" +  // blank lines are ignored
      line({{"Flickr30K_ID", 36979}, {"sentence2", "a dog"}, {"gold_label", "contradiction"}});
  SnliVeDataset ds(files.options(text));
  ASSERT_EQ(ds.size(), 3);
  const Sample a = ds.get(0, 0);
  EXPECT_EQ(a.input_ids, (std::vector<int64_t>{2, 12, 13, 14, 12, 15, 17, 3}));
  EXPECT_EQ(a.label, 0);
  EXPECT_EQ(a.image_id, 1000092795);
  EXPECT_EQ(a.image.sizes(), (std::vector<int64_t>{3, 6, 10}));
  const Sample b = ds.get(1, 0);
  EXPECT_EQ(b.label, 1);
  EXPECT_EQ(b.image_id, 36979);
  EXPECT_EQ(b.image.sizes(), (std::vector<int64_t>{3, 10, 6}));
  EXPECT_EQ(ds.get(2, 0).label, 2);
  EXPECT_EQ(ds.get(2, 0).record_id, 4);  // line number
  EXPECT_EQ(ds.labels().names, (std::vector<std::string>{"entailment", "neutral", "contradiction"}));
}

TEST(SnliVeDataset, FlippedImageSwapsLeftAndRightInTheHypothesis) {
  SnliFiles files;
  auto options = files.options(line({{"Flikr30kID", "1000092795.jpg"},
                                      {"sentence2", "a dog on the left."},
                                      {"gold_label", "entailment"}}));
  const SnliVeDataset plain(options);
  options.image.augment = true;
  options.image.hflip = 1.0;
  const Sample s = SnliVeDataset(options).get(0, 0);
  EXPECT_EQ(s.input_ids, options.tokenizer->encode("a dog on the right.").input_ids);
  EXPECT_EQ(s.label, 0);
  EXPECT_TRUE(torch::equal(s.image, plain.get(0, 0).image.flip({2})));
}

TEST(SnliVeDataset, MalformedJsonLineNamesTheLine) {
  SnliFiles files;
  const std::string text =
      line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", "a man"}, {"gold_label", "entailment"}}) +
      "{\"Flikr30kID\": \"1000092795.jpg\", \"sentence2\": \n";
  auto options = files.options(text);
  const std::string message = data_error_of([&] { SnliVeDataset ds(options); });
  EXPECT_NE(message.find(options.file.string() + ":2:"), std::string::npos) << message;
  EXPECT_NE(message.find("malformed JSON line"), std::string::npos) << message;
}

TEST(SnliVeDataset, NumberOutOfRangeIsAMalformedLine) {
  const std::string good =
      line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", "a man"}, {"gold_label", "entailment"}});
  const std::string bad =
      "{\"Flikr30kID\": \"1000092795.jpg\", \"sentence2\": \"a man\", \"score\": 1e999}";
  const std::string text = good + bad + "\n" + good;
  SnliFiles files;
  auto options = files.options(text);
  const std::string message = data_error_of([&] { SnliVeDataset ds(options); });
  // Line 2, at the number's last digit.
  const std::string where =
      options.file.string() + ":2:" + std::to_string(bad.find("1e999") + 5) + ": malformed JSON";
  EXPECT_NE(message.find(where), std::string::npos) << message;
  EXPECT_NE(message.find("number overflow parsing '1e999'"), std::string::npos) << message;

  SnliFiles skipping;
  SnliVeDataset ds(skipping.options(text, data::OnBadRecord::kSkip));
  EXPECT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.skipped(), (json{{"malformed_json", 1}}));
}

TEST(SnliVeDataset, UnknownLabelStringIsABadRecord) {
  SnliFiles files;
  auto options = files.options(
      line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", "a man"}, {"gold_label", "maybe"}}));
  const std::string message = data_error_of([&] { SnliVeDataset ds(options); });
  EXPECT_NE(message.find(options.file.string() +
                         ":1: field 'gold_label': 'maybe' is not a label (entailment, neutral, "
                         "contradiction)"),
            std::string::npos)
      << message;
}

// Test splits may have no gold label (files for result submission); other splits may not.
TEST(SnliVeDataset, OnlyATestSplitMayLeaveOutTheGoldLabel) {
  SnliFiles files;
  auto options = files.options(line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", "a man"}}) +
                               line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", "a dog"},
                                     {"gold_label", "neutral"}}));
  options.split = "test";
  SnliVeDataset test(options);
  ASSERT_EQ(test.size(), 2);
  EXPECT_EQ(test.get(0, 0).label, -1);
  EXPECT_EQ(test.get(1, 0).label, 1);
  options.split = "dev";
  const std::string message = data_error_of([&] { SnliVeDataset dev(options); });
  EXPECT_NE(message.find(options.file.string() + ":1: field 'gold_label'"), std::string::npos) << message;
}

TEST(SnliVeDataset, PathEscapeAndMissingImageAreBadRecords) {
  SnliFiles files;
  auto options = files.options(
      line({{"Flikr30kID", "../1000092795.jpg"}, {"sentence2", "a man"}, {"gold_label", "neutral"}}));
  std::string message = data_error_of([&] { SnliVeDataset ds(options); });
  EXPECT_NE(message.find(":1: field 'Flikr30kID': image path '../1000092795.jpg' escapes the image root"),
            std::string::npos)
      << message;
  SnliFiles other;
  options = other.options(
      line({{"Flickr30K_ID", "555"}, {"sentence2", "a man"}, {"gold_label", "neutral"}}));
  message = data_error_of([&] { SnliVeDataset ds(options); });
  EXPECT_NE(message.find("555.jpg' does not exist"), std::string::npos) << message;
}

TEST(SnliVeDataset, SkipModeCountsByReason) {
  SnliFiles files;
  const std::string text =
      line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", "a man"}, {"gold_label", "entailment"}}) +
      "not json\n" +
      line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", ""}, {"gold_label", "neutral"}}) +
      line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", "a man"}, {"gold_label", "-"}}) +
      line({{"sentence2", "a man"}, {"gold_label", "neutral"}}) +
      line({{"Flikr30kID", "1000092795.jpg"}, {"sentence2", "a man"}, {"gold_label", "yes"}});
  SnliVeDataset ds(files.options(text, data::OnBadRecord::kSkip));
  EXPECT_EQ(ds.size(), 1);
  EXPECT_EQ(ds.skipped(), (json{{"empty_text", 1}, {"malformed_json", 1}, {"missing_field", 1},
                                {"no_gold_label", 1}, {"unknown_label", 1}}));
}

}  // namespace
}  // namespace unitrain::snli_ve
