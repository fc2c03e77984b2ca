#include <fmt/format.h>
#include <gtest/gtest.h>

#include "answer_normalization.h"
#include "plugins/datasets/dataset_test_util.h"
#include "vqa2_dataset.h"
#include "vqa2_plugin.h"

namespace unitrain::vqa {
namespace {

using nlohmann::json;
using testing::data_error_of;
using testing::TempDir;
using testing::write_file;
using testing::write_image;

TEST(AnswerNormalization, FollowsTheOfficialEvaluator) {
  EXPECT_EQ(normalize_answer("Two."), "2");
  EXPECT_EQ(normalize_answer("the dog"), "dog");
  EXPECT_EQ(normalize_answer("A  Man's hat"), "man's hat");
  EXPECT_EQ(normalize_answer("yes!"), "yes");
  EXPECT_EQ(normalize_answer(" ten\n"), "10");
  EXPECT_EQ(normalize_answer("none"), "0");
  EXPECT_EQ(normalize_answer("dont"), "don't");
  EXPECT_EQ(normalize_answer("couldnt've"), "couldn't've");
  EXPECT_EQ(normalize_answer("couldn'tve"), "couldn't've");
  EXPECT_EQ(normalize_answer("im"), "im");  // the official key is "Im": never matches
  EXPECT_EQ(normalize_answer("3.5"), "3.5");
  EXPECT_EQ(normalize_answer("1,000"), "1000");  // digit-comma-digit: punctuation deleted
  EXPECT_EQ(normalize_answer("red/white"), "red white");  // not next to a space: a space
  EXPECT_EQ(normalize_answer("red / white"), "red white");
  EXPECT_EQ(normalize_answer("t-shirt"), "t shirt");
  EXPECT_EQ(normalize_answer("an apple"), "apple");
  EXPECT_EQ(process_punctuation("end. of"), "end of");
}

// VQA files for split "train2014": questions, annotations (10 answers each) and images.
struct VqaFiles {
  TempDir dir;
  json questions = json::parse(R"({"questions": []})");
  json annotations = json::parse(R"({"annotations": []})");

  void add(int64_t qid, int64_t image_id, const std::string& question,
           const std::vector<std::string>& answers, const std::string& mc = "") {
    questions["questions"].push_back(
        {{"image_id", image_id}, {"question", question}, {"question_id", qid}});
    json list = json::array();
    for (size_t i = 0; i < answers.size(); ++i) {
      list.push_back({{"answer", answers[i]}, {"answer_confidence", "yes"}, {"answer_id", i + 1}});
    }
    annotations["annotations"].push_back(
        {{"question_id", qid}, {"image_id", image_id}, {"question_type", "what"},
         {"answer_type", "other"}, {"multiple_choice_answer", mc.empty() ? answers[0] : mc},
         {"answers", list}});
    const auto image = dir / fmt::format("train2014/COCO_train2014_{:012d}.jpg", image_id);
    if (!std::filesystem::exists(image)) write_image(image, 12, 8);
  }

  Vqa2Options options(const std::vector<std::string>& answers,
                      data::OnBadRecord policy = data::OnBadRecord::kError) {
    Vqa2Options o;
    o.split = "train";
    o.questions = dir / "v2_OpenEnded_mscoco_train2014_questions.json";
    o.annotations = dir / "v2_mscoco_train2014_annotations.json";
    write_file(o.questions, questions.dump());
    write_file(o.annotations, annotations.dump());
    o.images = dir / "train2014";
    o.image_prefix = "COCO_train2014_";
    o.answers = std::make_shared<std::vector<std::string>>(answers);
    o.tokenizer = testing::make_test_tokenizer(dir);
    o.image.min_size = 16;
    o.on_bad_record = policy;
    return o;
  }
};

TEST(Vqa2Dataset, SoftScoresForEveryNumberOfMatchingAnnotators) {
  VqaFiles files;
  for (int k = 0; k <= 10; ++k) {
    std::vector<std::string> answers(10, "No");
    for (int i = 0; i < k; ++i) answers[i] = "yes";
    files.add(100 + k, 7, "is the dog there?", answers);
  }
  Vqa2Dataset ds(files.options({"yes", "no"}));
  ASSERT_EQ(ds.size(), 11);
  const std::vector<float> expected = {0, 0.3f, 0.6f, 0.9f, 1, 1, 1, 1, 1, 1, 1};
  for (int k = 0; k <= 10; ++k) {
    const Sample s = ds.get(k, 0);
    ASSERT_EQ(s.soft_label.sizes(), (std::vector<int64_t>{2}));
    EXPECT_NEAR(s.soft_label[0].item<float>(), expected[k], 1e-6) << "k = " << k;
    EXPECT_NEAR(s.soft_label[1].item<float>(), expected[10 - k], 1e-6) << "k = " << k;
    EXPECT_EQ(s.record_id, 100 + k);
  }
  EXPECT_EQ(ds.get(10, 0).label, 0);
  EXPECT_EQ(ds.get(0, 0).label, 1);
}

TEST(Vqa2Dataset, QuestionImageAndTokens) {
  VqaFiles files;
  files.add(1, 42, "What is the color?", std::vector<std::string>(10, "Two."));
  Vqa2Dataset ds(files.options({"yes", "2"}));
  const Sample s = ds.get(0, 0);
  EXPECT_EQ(s.input_ids, (std::vector<int64_t>{2, 5, 6, 7, 8, 16, 3}));
  EXPECT_EQ(s.image.sizes(), (std::vector<int64_t>{3, 16, 24}));
  EXPECT_EQ(s.image_id, 42);
  EXPECT_EQ(s.orig_height, 8);
  EXPECT_NEAR(s.soft_label[1].item<float>(), 1.0, 1e-6);  // "Two." normalizes to "2"
  EXPECT_EQ(s.label, 1);
  EXPECT_EQ(ds.labels().kind, "vqa");

  auto evaluator = ds.evaluator();
  Predictions predictions;
  predictions.labels = torch::tensor({1}, torch::kInt64);
  evaluator->add(predictions, collate({s}, "vqa2"));
  EXPECT_NEAR(evaluator->compute().at("vqa_accuracy").get<double>(), 1.0, 1e-6);
}

TEST(Vqa2Dataset, FlippedImageSwapsLeftAndRightInQuestionAndAnswers) {
  VqaFiles files;
  std::vector<std::string> answers(10, "left");
  answers[9] = "right";  // one annotator disagrees: scores left 1, right 0.3
  files.add(1, 42, "Is the dog on the left or the right?", answers);
  files.add(2, 42, "Is the cat on the left?", std::vector<std::string>(10, "yes"));
  auto options = files.options({"left", "right", "yes"});
  const Vqa2Dataset plain(options);
  options.image.augment = true;
  options.image.hflip = 1.0;
  const Vqa2Dataset flipping(options);

  const Sample a = plain.get(0, 0);
  const Sample b = flipping.get(0, 0);
  EXPECT_TRUE(torch::equal(b.image, a.image.flip({2})));
  EXPECT_EQ(b.input_ids,
            options.tokenizer->encode("Is the dog on the right or the left?").input_ids);
  EXPECT_NE(b.input_ids, a.input_ids);
  EXPECT_NEAR(a.soft_label[0].item<float>(), 1.0, 1e-6);
  EXPECT_NEAR(a.soft_label[1].item<float>(), 0.3, 1e-6);
  EXPECT_EQ(a.label, 0);
  EXPECT_NEAR(b.soft_label[0].item<float>(), 0.3, 1e-6);
  EXPECT_NEAR(b.soft_label[1].item<float>(), 1.0, 1e-6);
  EXPECT_EQ(b.label, 1);
  // Other answers stay.
  const Sample c = flipping.get(1, 0);
  EXPECT_EQ(c.label, 2);
  EXPECT_EQ(c.input_ids, options.tokenizer->encode("Is the cat on the right?").input_ids);

  // A swapped answer outside the vocabulary cannot be scored.
  auto narrow = files.options({"left", "yes"});
  narrow.image.augment = true;
  narrow.image.hflip = 1.0;
  const Sample d = Vqa2Dataset(narrow).get(0, 0);
  EXPECT_EQ(d.soft_label.sum().item<float>(), 0.0f);
  EXPECT_EQ(d.label, -1);

  // No swapping when the pairs are empty.
  options.flip_swap.clear();
  EXPECT_EQ(Vqa2Dataset(options).get(0, 0).label, 0);
}

TEST(Vqa2Dataset, VocabularyFromNormalizedMultipleChoiceAnswers) {
  TempDir dir;
  json annotations = {{"annotations", json::array()}};
  for (const char* mc : {"Two.", "2", "the dog", "dog", "dog", "cat"}) {
    annotations["annotations"].push_back({{"question_id", 1}, {"multiple_choice_answer", mc}});
  }
  write_file(dir / "a.json", annotations.dump());
  const auto vocabulary = vqa2_answer_vocabulary({dir / "a.json"}, 2);
  EXPECT_EQ(*vocabulary, (std::vector<std::string>{"dog", "2"}));
  // The same files give the same (shared) vocabulary.
  EXPECT_EQ(vqa2_answer_vocabulary({dir / "a.json"}, 2).get(), vocabulary.get());

  write_file(dir / "answers.txt", "yes\nno\n\n2\n");
  const std::string message = data_error_of([&] { read_answer_file(dir / "answers.txt"); });
  EXPECT_NE(message.find("answers.txt:3: blank line in the answer vocabulary"), std::string::npos)
      << message;
}

TEST(Vqa2Dataset, EmptyQuestionIsABadRecord) {
  VqaFiles files;
  files.add(1, 5, "what is it?", std::vector<std::string>(10, "yes"));
  files.add(2, 5, "  ", std::vector<std::string>(10, "yes"));
  auto options = files.options({"yes"});
  const std::string message = data_error_of([&] { Vqa2Dataset ds(options); });
  EXPECT_NE(message.find(options.questions.string() +
                         ": questions[1] (question_id 2): field 'question': the question is empty"),
            std::string::npos)
      << message;
}

TEST(Vqa2Dataset, MissingAnnotationAndImageAreBadRecordsCountedWhenSkipped) {
  VqaFiles files;
  files.add(1, 5, "what is it?", std::vector<std::string>(10, "yes"));
  files.add(2, 6, "what is it?", std::vector<std::string>(10, "yes"));
  files.add(3, 7, "", std::vector<std::string>(10, "yes"));
  files.questions["questions"].push_back({{"image_id", 5}, {"question", "why?"}, {"question_id", 4}});
  std::filesystem::remove(files.dir / "train2014/COCO_train2014_000000000006.jpg");
  auto options = files.options({"yes"});
  std::string message = data_error_of([&] { Vqa2Dataset ds(options); });
  EXPECT_NE(message.find("questions[1] (question_id 2): field 'image_id': image file '"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("COCO_train2014_000000000006.jpg' does not exist"), std::string::npos);

  Vqa2Dataset ds(files.options({"yes"}, data::OnBadRecord::kSkip));
  EXPECT_EQ(ds.size(), 1);
  EXPECT_EQ(ds.skipped(), (json{{"empty_question", 1}, {"missing_annotation", 1}, {"missing_image", 1}}));
}

TEST(Vqa2Dataset, TestSplitHasNoAnswers) {
  VqaFiles files;
  files.add(1, 5, "what is it?", std::vector<std::string>(10, "yes"));
  auto options = files.options({"yes"});
  options.annotations.clear();
  Vqa2Dataset ds(options);
  const Sample s = ds.get(0, 0);
  EXPECT_FALSE(s.soft_label.defined());
  EXPECT_EQ(s.label, -1);
}

TEST(Vqa2Plugin, OfficialFileNamesAndVocabularyFromTheTrainSplit) {
  VqaFiles files;
  files.add(1, 5, "what is it?", std::vector<std::string>(10, "yes"));
  files.add(2, 5, "is it?", std::vector<std::string>(10, "no"), "no");
  files.add(3, 5, "is it?", std::vector<std::string>(10, "no"), "no");
  files.options({"unused"});  // writes the train files
  // The val split: same content, official val names.
  const auto root = files.dir.path();
  std::filesystem::copy(root / "v2_OpenEnded_mscoco_train2014_questions.json",
                        root / "v2_OpenEnded_mscoco_val2014_questions.json");
  std::filesystem::copy(root / "v2_mscoco_train2014_annotations.json",
                        root / "v2_mscoco_val2014_annotations.json");
  std::filesystem::create_directories(root / "val2014");
  std::filesystem::copy(root / "train2014/COCO_train2014_000000000005.jpg",
                        root / "val2014/COCO_val2014_000000000005.jpg");
  auto ds = make_vqa2({{"split", "val"},
                       {"root", root.string()},
                       {"answer_min_count", 2},
                       {"tokenizer", {{"vocab", (root / "vocab.txt").string()}}}});
  EXPECT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->labels().names, (std::vector<std::string>{"no"}));
  EXPECT_NEAR(ds->get(1, 0).soft_label[0].item<float>(), 1.0, 1e-6);
}

}  // namespace
}  // namespace unitrain::vqa
