// `unitrain eval --predictions DIR` end to end: a tiny UniT model (real plugins) trained
// a few steps on the toy suite's COCO, VQAv2, QQP, MNLI and SNLI-VE, evaluated through
// the CLI. Each official result file is checked field by field against the dataset
// files, and each task's metric recomputed from the written file alone (with the
// annotation files) equals the one eval printed. The test split (files without labels)
// and a two-rank evaluation write the same records.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include <fmt/format.h>

#include "../../plugins/datasets/vqa2/answer_normalization.h"
#include "test_util.h"
#include "tiny_model.h"
#include "unitrain/metrics.h"
#include "unitrain/toy/toy_suite.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

// Rows of a TSV file with a header: column name -> value.
std::vector<std::map<std::string, std::string>> read_tsv(const fs::path& file) {
  std::vector<std::vector<std::string>> lines;
  std::string text = test::read_file(file);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::vector<std::string> fields;
    size_t field_start = start;
    while (true) {
      const size_t tab = text.find('\t', field_start);
      if (tab == std::string::npos || tab > end) {
        fields.push_back(text.substr(field_start, end - field_start));
        break;
      }
      fields.push_back(text.substr(field_start, tab - field_start));
      field_start = tab + 1;
    }
    lines.push_back(fields);
    start = end + 1;
  }
  std::vector<std::map<std::string, std::string>> rows;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::map<std::string, std::string> row;
    for (size_t c = 0; c < lines[0].size() && c < lines[i].size(); ++c) row[lines[0][c]] = lines[i][c];
    rows.push_back(row);
  }
  return rows;
}

std::string first_line(const fs::path& file) {
  const std::string text = test::read_file(file);
  return text.substr(0, text.find('\n'));
}

// Writes `rows` with `columns` (in that order) as a TSV file with a header.
void write_tsv(const fs::path& file, const std::vector<std::string>& columns,
               const std::vector<std::map<std::string, std::string>>& rows) {
  std::string text;
  for (size_t c = 0; c < columns.size(); ++c) text += (c ? "\t" : "") + columns[c];
  text += "\n";
  for (const auto& row : rows) {
    for (size_t c = 0; c < columns.size(); ++c) text += (c ? "\t" : "") + row.at(columns[c]);
    text += "\n";
  }
  test::write_file(file, text);
}

std::vector<json> read_json_lines(const fs::path& file) {
  std::vector<json> out;
  std::istringstream in(test::read_file(file));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

class ResultFiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const fs::path toy = *dir_ / "toy";
    toy::ToySuiteOptions options;
    options.seed = 5;
    options.images = 20;
    options.text_examples = 60;
    options.image_size = 64;
    toy::make_toy_suite(toy, options);
    write_test_splits(toy);

    const json tokenizer = {{"vocab", (toy / "vocab.txt").string()}};
    const json image = {{"min_size", 64}, {"max_size", 96}};
    const json vqa2 = {{"type", "vqa2"}, {"root", (toy / "vqa2").string()}, {"tokenizer", tokenizer},
                       {"answer_min_count", 1}, {"image", image},
                       {"images", {{"test", "val2014"}}},
                       {"image_prefix", {{"test", "COCO_val2014_"}}}};
    // The answer vocabulary the dataset builds (answer_min_count 1 over train).
    const json train_answers = json::parse(test::read_file(toy / "vqa2/v2_mscoco_train2014_annotations.json"));
    for (const auto& a : train_answers["annotations"]) {
      answers_.insert(vqa::normalize_answer(a["multiple_choice_answer"].get<std::string>()));
    }
    num_answers_ = static_cast<int64_t>(answers_.size());
    auto classifier = [](int64_t labels) {
      return json{{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", labels}};
    };
    json vqa_head = classifier(num_answers_);
    vqa_head["loss"] = "soft_bce";
    const json e = {
        {"name", "result_files_test"},
        {"seed", 4},
        {"model",
         {{"encoders",
           {{"image", test::tiny_image_encoder(32)}, {"text", test::tiny_text_encoder(tokenizer, 32)}}},
          {"decoder", test::tiny_decoder(32)},
          {"heads",
           {{"coco", {{"type", "detr"}, {"in_dim", 32}, {"num_classes", 9}}},
            {"vqa2", vqa_head},
            {"qqp", classifier(2)},
            {"mnli", classifier(3)},
            {"snli_ve", classifier(3)}}}}},
        {"tasks",
         {{"coco",
           {{"dataset",
             {{"type", "coco_detection"}, {"root", (toy / "coco").string()}, {"image", image},
              {"annotations", {{"test", "annotations/image_info_test2017.json"}}},
              {"images", {{"test", "val2017"}}}}},
            {"encoders", {"image"}}, {"num_queries", 6}, {"batch_size", 2}}},
          {"vqa2", {{"dataset", vqa2}, {"encoders", {"image", "text"}}, {"num_queries", 2}, {"batch_size", 3}}},
          {"qqp",
           {{"dataset",
             {{"type", "glue"}, {"task", "qqp"}, {"root", (toy / "glue/QQP").string()},
              {"tokenizer", tokenizer}, {"max_length", 32}}},
            {"encoders", {"text"}}, {"num_queries", 1}, {"batch_size", 4}, {"val_split", "dev"}}},
          {"mnli",
           {{"dataset",
             {{"type", "glue"}, {"task", "mnli"}, {"root", (toy / "glue/MNLI").string()},
              {"files", {{"dev", "dev_mismatched.tsv"}, {"test", "test_mismatched.tsv"}}},
              {"tokenizer", tokenizer}, {"max_length", 32}}},
            {"encoders", {"text"}}, {"num_queries", 1}, {"batch_size", 4}, {"val_split", "dev"}}},
          {"snli_ve",
           {{"dataset",
             {{"type", "snli_ve"}, {"root", (toy / "snli_ve").string()}, {"tokenizer", tokenizer},
              {"image", image}, {"files", {{"test", "snli_ve_test.jsonl"}}}}},
            {"encoders", {"image", "text"}}, {"num_queries", 1}, {"batch_size", 3}, {"val_split", "dev"}}}}},
        {"training", {{"max_steps", 5}, {"eval_max_batches", 1}}},
        {"data", {{"workers", 1}, {"prefetch", 1}}}};
    test::write_file(*dir_ / "exp.json", e.dump(2));
    auto trained = test::run_unitrain("train '" + (*dir_ / "exp.json").string() + "' --out '" +
                                      (*dir_ / "run").string() + "'");
    ASSERT_EQ(trained.status, 0) << trained.output;
    val_ = new test::CommandResult(eval("", *dir_ / "val", *dir_ / "val_metrics.json"));
  }
  static void TearDownTestSuite() {
    delete val_;
    delete dir_;
  }

  // Test splits made from the validation files, without their labels.
  static void write_test_splits(const fs::path& toy) {
    json coco = json::parse(test::read_file(toy / "coco/annotations/instances_val2017.json"));
    coco.erase("annotations");
    test::write_file(toy / "coco/annotations/image_info_test2017.json", coco.dump());
    json questions = json::parse(test::read_file(toy / "vqa2/v2_OpenEnded_mscoco_val2014_questions.json"));
    test::write_file(toy / "vqa2/v2_OpenEnded_mscoco_test2015_questions.json", questions.dump());
    write_tsv(toy / "glue/QQP/test.tsv", {"id", "question1", "question2"}, read_tsv(toy / "glue/QQP/dev.tsv"));
    write_tsv(toy / "glue/MNLI/test_mismatched.tsv", {"index", "sentence1", "sentence2"},
              read_tsv(toy / "glue/MNLI/dev_mismatched.tsv"));
    std::string snli_test;
    for (json line : read_json_lines(toy / "snli_ve/snli_ve_dev.jsonl")) {
      line.erase("gold_label");
      snli_test += line.dump() + "\n";
    }
    test::write_file(toy / "snli_ve/snli_ve_test.jsonl", snli_test);
  }

  static test::CommandResult eval(const std::string& args, const fs::path& predictions,
                                  const fs::path& metrics) {
    return test::run_unitrain("eval '" + (*dir_ / "exp.json").string() + "' --checkpoint '" +
                              (*dir_ / "run").string() + "' --predictions '" + predictions.string() +
                              "' --out '" + metrics.string() + "' " + args);
  }

  static json val_metrics() { return json::parse(test::read_file(*dir_ / "val_metrics.json")); }
  static fs::path toy(const std::string& file) { return *dir_ / "toy" / file; }

  static test::TempDir* dir_;
  static test::CommandResult* val_;
  static std::set<std::string> answers_;
  static int64_t num_answers_;
};

test::TempDir* ResultFiles::dir_ = nullptr;
test::CommandResult* ResultFiles::val_ = nullptr;
std::set<std::string> ResultFiles::answers_;
int64_t ResultFiles::num_answers_ = 0;

TEST_F(ResultFiles, EvalNamesEveryFileItWrites) {
  ASSERT_EQ(val_->status, 0) << val_->output;
  for (const std::string file : {"coco_val_results.json", "vqa2_val_results.json", "QQP.tsv",
                                 "MNLI-mm.tsv", "snli_ve_dev_results.jsonl"}) {
    EXPECT_TRUE(fs::is_regular_file(*dir_ / "val" / file)) << file;
    EXPECT_THAT(val_->output, HasSubstr((*dir_ / "val" / file).string())) << file;
  }
  EXPECT_FALSE(fs::exists(*dir_ / "val/QQP.tsv.tmp"));
}

// pycocotools' loadRes format, with the annotation file's category and image ids; COCO
// AP recomputed from the file and the annotations equals eval's.
TEST_F(ResultFiles, CocoResultsGiveEvalsAp) {
  ASSERT_EQ(val_->status, 0) << val_->output;
  const json results = json::parse(test::read_file(*dir_ / "val/coco_val_results.json"));
  const json gt = json::parse(test::read_file(toy("coco/annotations/instances_val2017.json")));
  std::map<int64_t, int64_t> label_of;  // category id -> contiguous label (ids sorted)
  for (const auto& c : gt["categories"]) label_of[c["id"].get<int64_t>()] = 0;
  int64_t next = 0;
  for (auto& [id, label] : label_of) label = next++;
  std::map<int64_t, size_t> image_index;
  std::map<int64_t, std::pair<double, double>> image_size;  // id -> (w, h)
  for (const auto& image : gt["images"]) {
    const int64_t id = image["id"];
    image_index.emplace(id, image_index.size());
    image_size[id] = {image["width"].get<double>(), image["height"].get<double>()};
  }
  std::vector<std::vector<Detection>> detections(image_index.size());
  std::vector<std::vector<GroundTruthBox>> ground_truth(image_index.size());
  ASSERT_TRUE(results.is_array());
  // Every image gets the head's 6 queries, one result each.
  ASSERT_EQ(results.size(), 6 * image_index.size());
  for (const auto& r : results) {
    std::set<std::string> keys;
    for (const auto& [key, value] : r.items()) keys.insert(key);
    EXPECT_EQ(keys, (std::set<std::string>{"image_id", "category_id", "bbox", "score"}));
    ASSERT_TRUE(r["image_id"].is_number_integer());
    ASSERT_TRUE(r["category_id"].is_number_integer());
    ASSERT_TRUE(image_index.count(r["image_id"])) << r.dump();
    ASSERT_TRUE(label_of.count(r["category_id"])) << "not a category id of the file: " << r.dump();
    ASSERT_EQ(r["bbox"].size(), 4u);
    const double x = r["bbox"][0], y = r["bbox"][1], w = r["bbox"][2], h = r["bbox"][3];
    const auto [width, height] = image_size[r["image_id"]];
    EXPECT_GE(x, 0);
    EXPECT_GE(y, 0);
    EXPECT_GE(w, 0);
    EXPECT_GE(h, 0);
    EXPECT_LE(x + w, width + 1e-3);  // original pixels, not the 64-px input
    EXPECT_LE(y + h, height + 1e-3);
    Detection d;
    d.x0 = static_cast<float>(x);
    d.y0 = static_cast<float>(y);
    d.x1 = static_cast<float>(x + w);
    d.y1 = static_cast<float>(y + h);
    d.score = r["score"].get<float>();
    d.label = label_of[r["category_id"]];
    detections[image_index[r["image_id"]]].push_back(d);
  }
  for (const auto& a : gt["annotations"]) {
    const auto [width, height] = image_size[a["image_id"]];
    const double x = a["bbox"][0], y = a["bbox"][1], w = a["bbox"][2], h = a["bbox"][3];
    GroundTruthBox box;
    box.x0 = static_cast<float>(std::clamp(x, 0.0, width));
    box.y0 = static_cast<float>(std::clamp(y, 0.0, height));
    box.x1 = static_cast<float>(std::clamp(x + w, 0.0, width));
    box.y1 = static_cast<float>(std::clamp(y + h, 0.0, height));
    box.label = label_of[a["category_id"]];
    ground_truth[image_index[a["image_id"]]].push_back(box);
  }
  const DetectionApResult ap = detection_ap(detections, ground_truth);
  const json printed = val_metrics()["coco"];
  EXPECT_NEAR(ap.ap, printed["ap"].get<double>(), 1e-6);
  EXPECT_NEAR(ap.ap50, printed["ap50"].get<double>(), 1e-6);
}

// [{"question_id", "answer"}] for every question in file order; the official VQA
// accuracy of the answers against the annotations equals eval's.
TEST_F(ResultFiles, VqaResultsGiveEvalsAccuracy) {
  ASSERT_EQ(val_->status, 0) << val_->output;
  const json results = json::parse(test::read_file(*dir_ / "val/vqa2_val_results.json"));
  const json questions = json::parse(test::read_file(toy("vqa2/v2_OpenEnded_mscoco_val2014_questions.json")));
  const json annotations = json::parse(test::read_file(toy("vqa2/v2_mscoco_val2014_annotations.json")));
  ASSERT_EQ(results.size(), questions["questions"].size());
  std::map<int64_t, std::vector<std::string>> given;
  for (const auto& a : annotations["annotations"]) {
    for (const auto& answer : a["answers"]) {
      given[a["question_id"]].push_back(vqa::normalize_answer(answer["answer"].get<std::string>()));
    }
  }
  double sum = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const json& r = results[i];
    EXPECT_EQ(r.size(), 2u) << r.dump();
    EXPECT_EQ(r["question_id"], questions["questions"][i]["question_id"]);
    ASSERT_TRUE(r["answer"].is_string());
    EXPECT_TRUE(answers_.count(r["answer"])) << "not an answer of the vocabulary: " << r.dump();
    sum += vqa_answer_score(r["answer"], given.at(r["question_id"]));
  }
  EXPECT_NEAR(sum / results.size(), val_metrics()["vqa2"]["vqa_accuracy"].get<double>(), 1e-6);
}

// QQP.tsv: "index\tprediction", QQP's id column, 0/1; its accuracy and F1 equal eval's.
TEST_F(ResultFiles, GlueQqpSubmissionGivesEvalsAccuracy) {
  ASSERT_EQ(val_->status, 0) << val_->output;
  EXPECT_EQ(first_line(*dir_ / "val/QQP.tsv"), "index\tprediction");
  const auto rows = read_tsv(*dir_ / "val/QQP.tsv");
  const auto dev = read_tsv(toy("glue/QQP/dev.tsv"));
  ASSERT_EQ(rows.size(), dev.size());
  std::vector<int64_t> predicted, target;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].at("index"), dev[i].at("id"));
    const std::string p = rows[i].at("prediction");
    ASSERT_TRUE(p == "0" || p == "1") << p;
    predicted.push_back(std::stoll(p));
    target.push_back(std::stoll(dev[i].at("is_duplicate")));
  }
  const json printed = val_metrics()["qqp"];
  EXPECT_DOUBLE_EQ(accuracy(predicted, target), printed["accuracy"].get<double>());
  EXPECT_DOUBLE_EQ(f1_score(predicted, target, 1), printed["f1"].get<double>());
}

// MNLI-mm.tsv (the mismatched file): MNLI's index column and label strings.
TEST_F(ResultFiles, GlueMnliSubmissionUsesLabelNames) {
  ASSERT_EQ(val_->status, 0) << val_->output;
  EXPECT_FALSE(fs::exists(*dir_ / "val/MNLI-m.tsv"));
  const auto rows = read_tsv(*dir_ / "val/MNLI-mm.tsv");
  const auto dev = read_tsv(toy("glue/MNLI/dev_mismatched.tsv"));
  std::vector<const std::map<std::string, std::string>*> labelled;
  for (const auto& row : dev) {
    if (row.at("gold_label") != "-") labelled.push_back(&row);
  }
  ASSERT_EQ(rows.size(), labelled.size());
  const std::vector<std::string> names = {"entailment", "neutral", "contradiction"};
  std::vector<int64_t> predicted, target;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].at("index"), labelled[i]->at("index"));
    const auto p = std::find(names.begin(), names.end(), rows[i].at("prediction"));
    ASSERT_NE(p, names.end()) << rows[i].at("prediction");
    predicted.push_back(p - names.begin());
    target.push_back(std::find(names.begin(), names.end(), labelled[i]->at("gold_label")) - names.begin());
  }
  EXPECT_DOUBLE_EQ(accuracy(predicted, target), val_metrics()["mnli"]["accuracy"].get<double>());
}

// One JSON line per record: line, pairID, image, prediction; accuracy equals eval's.
TEST_F(ResultFiles, SnliVeLinesGiveEvalsAccuracy) {
  ASSERT_EQ(val_->status, 0) << val_->output;
  const auto results = read_json_lines(*dir_ / "val/snli_ve_dev_results.jsonl");
  const auto dev = read_json_lines(toy("snli_ve/snli_ve_dev.jsonl"));
  ASSERT_EQ(results.size(), dev.size());
  const std::vector<std::string> names = {"entailment", "neutral", "contradiction"};
  std::vector<int64_t> predicted, target;
  for (size_t i = 0; i < results.size(); ++i) {
    const json& r = results[i];
    EXPECT_EQ(r["line"], static_cast<int64_t>(i + 1));
    if (dev[i].contains("pairID")) {
      EXPECT_EQ(r["pairID"], dev[i]["pairID"]);
    }
    const std::string image = dev[i].contains("Flikr30kID") ? dev[i]["Flikr30kID"].get<std::string>()
                                                            : dev[i]["Flickr30K_ID"].get<std::string>() + ".jpg";
    EXPECT_EQ(r["image"], image);
    const auto p = std::find(names.begin(), names.end(), r["prediction"].get<std::string>());
    ASSERT_NE(p, names.end()) << r.dump();
    predicted.push_back(p - names.begin());
    target.push_back(std::find(names.begin(), names.end(), dev[i]["gold_label"].get<std::string>()) - names.begin());
  }
  EXPECT_DOUBLE_EQ(accuracy(predicted, target), val_metrics()["snli_ve"]["accuracy"].get<double>());
}

// --split test on files without labels (COCO image info, VQA questions alone, GLUE test
// TSVs): every record gets a result, the same as its labelled twin in the val files.
TEST_F(ResultFiles, TestSplitWithoutLabels) {
  ASSERT_EQ(val_->status, 0) << val_->output;
  auto result = eval("--split test", *dir_ / "test", *dir_ / "test_metrics.json");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(first_line(*dir_ / "test/QQP.tsv"), "index\tprediction");
  EXPECT_EQ(test::read_file(*dir_ / "test/QQP.tsv"), test::read_file(*dir_ / "val/QQP.tsv"));
  // MNLI's test rows are all written: none is left out for a "-" gold label.
  const auto mnli = read_tsv(*dir_ / "test/MNLI-mm.tsv");
  const auto mnli_dev = read_tsv(toy("glue/MNLI/dev_mismatched.tsv"));
  ASSERT_EQ(mnli.size(), mnli_dev.size());
  for (size_t i = 0; i < mnli.size(); ++i) EXPECT_EQ(mnli[i].at("index"), mnli_dev[i].at("index"));
  const json vqa = json::parse(test::read_file(*dir_ / "test/vqa2_test_results.json"));
  const json vqa_val = json::parse(test::read_file(*dir_ / "val/vqa2_val_results.json"));
  ASSERT_EQ(vqa.size(), vqa_val.size());
  for (size_t i = 0; i < vqa.size(); ++i) EXPECT_EQ(vqa[i]["question_id"], vqa_val[i]["question_id"]);
  // SNLI-VE: a test file without gold labels; every line answered as in dev.
  const auto snli = read_json_lines(*dir_ / "test/snli_ve_test_results.jsonl");
  const auto snli_dev = read_json_lines(*dir_ / "val/snli_ve_dev_results.jsonl");
  ASSERT_EQ(snli.size(), snli_dev.size());
  for (size_t i = 0; i < snli.size(); ++i) {
    EXPECT_EQ(snli[i]["line"], snli_dev[i]["line"]);
    EXPECT_EQ(snli[i]["prediction"], snli_dev[i]["prediction"]);
  }
  const json coco = json::parse(test::read_file(*dir_ / "test/coco_test_results.json"));
  const json coco_val = json::parse(test::read_file(*dir_ / "val/coco_val_results.json"));
  ASSERT_EQ(coco.size(), coco_val.size());
  for (size_t i = 0; i < coco.size(); ++i) {
    EXPECT_EQ(coco[i]["image_id"], coco_val[i]["image_id"]);
    EXPECT_EQ(coco[i]["category_id"], coco_val[i]["category_id"]);
  }
}

// Two ranks: rank 0 writes every rank's records once, in file order.
TEST_F(ResultFiles, TwoRanksWriteEveryRecordOnceInOrder) {
  ASSERT_EQ(val_->status, 0) << val_->output;
  auto result = eval("--nproc-per-node 2", *dir_ / "two", *dir_ / "two_metrics.json");
  ASSERT_EQ(result.status, 0) << result.output;
  const auto one = read_tsv(*dir_ / "val/QQP.tsv");
  const auto two = read_tsv(*dir_ / "two/QQP.tsv");
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(one[i].at("index"), two[i].at("index"));
  const json vqa_one = json::parse(test::read_file(*dir_ / "val/vqa2_val_results.json"));
  const json vqa_two = json::parse(test::read_file(*dir_ / "two/vqa2_val_results.json"));
  ASSERT_EQ(vqa_one.size(), vqa_two.size());
  for (size_t i = 0; i < vqa_one.size(); ++i) EXPECT_EQ(vqa_one[i]["question_id"], vqa_two[i]["question_id"]);
  const json coco_one = json::parse(test::read_file(*dir_ / "val/coco_val_results.json"));
  const json coco_two = json::parse(test::read_file(*dir_ / "two/coco_val_results.json"));
  ASSERT_EQ(coco_one.size(), coco_two.size());
  for (size_t i = 0; i < coco_one.size(); ++i) {
    EXPECT_EQ(coco_one[i]["image_id"], coco_two[i]["image_id"]);
    EXPECT_NEAR(coco_one[i]["score"].get<double>(), coco_two[i]["score"].get<double>(), 1e-4);
  }
}

TEST_F(ResultFiles, UnwritableFolderNamesIt) {
  ASSERT_EQ(val_->status, 0) << val_->output;
  test::write_file(*dir_ / "a_file", "x");
  auto result = eval("--max-batches 1", *dir_ / "a_file/sub", *dir_ / "bad_metrics.json");
  EXPECT_NE(result.status, 0);
  EXPECT_THAT(result.output, HasSubstr((*dir_ / "a_file/sub").string()));
}

}  // namespace
}  // namespace unitrain
