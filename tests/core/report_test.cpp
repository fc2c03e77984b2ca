// The run report (unitrain report, and report.html at the end of train): what it reads
// from a run folder, its errors, a page with nothing to fetch that headless Chromium
// draws without a script error, two runs overlaid; the console's progress line and
// evaluation tables.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "../../plugins/datasets/vqa2/answer_normalization.h"
#include "report/detection_examples.h"
#include "report/run_report.h"
#include "test_util.h"
#include "tiny_model.h"
#include "train/reports.h"
#include "unitrain/metrics.h"
#include "unitrain/registry.h"
#include "unitrain/toy/toy_suite.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

std::string shell_quoted(const fs::path& path) { return "'" + path.string() + "'"; }

// Two tasks sampled 0.7 / 0.3 by the ratios scheduler, a line every step, evaluations
// at steps 3 and 6.
json two_task_experiment() {
  return json::parse(R"({
    "name": "report_test", "seed": 3, "threads": 1,
    "model": {
      "encoders": {"text": {"type": "test_encoder", "modality": "text", "dim": 16}},
      "decoder": {"type": "test_decoder", "dim": 16},
      "heads": {"short": {"type": "test_head", "in_dim": 16, "num_labels": 2},
                "long": {"type": "test_head", "in_dim": 16, "num_labels": 2}}
    },
    "tasks": {
      "short": {"dataset": {"type": "test_dataset", "size": 64, "length": 7},
                "encoders": ["text"], "num_queries": 1, "batch_size": 16, "ratio": 0.7},
      "long": {"dataset": {"type": "test_dataset", "size": 64, "length": 15},
               "encoders": ["text"], "num_queries": 1, "batch_size": 8, "ratio": 0.3}
    },
    "training": {"max_steps": 6, "lr": 1e-2, "clip_grad_norm": 1.0, "log_every": 1,
                 "eval_every": 3},
    "data": {"workers": 1, "prefetch": 2}
  })");
}

// Trains `j` through the CLI into `run`; returns the output.
std::string train(const test::TempDir& dir, const json& j, const fs::path& run) {
  const fs::path file = dir / (run.filename().string() + ".json");
  test::write_file(file, j.dump(2));
  const auto result = test::run_unitrain("--plugin-dir " + shell_quoted(test::fixture("good")) + " train " +
                                         shell_quoted(file) + " --out " + shell_quoted(run));
  EXPECT_EQ(result.status, 0) << result.output;
  return result.output;
}

json read_json(const fs::path& file) { return json::parse(test::read_file(file)); }

// One trained run shared by the tests (training is the slow part).
class Report : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    output_ = new std::string(train(*dir_, two_task_experiment(), run()));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete output_;
  }
  static fs::path run() { return *dir_ / "run"; }
  static test::TempDir* dir_;
  static std::string* output_;
};
test::TempDir* Report::dir_ = nullptr;
std::string* Report::output_ = nullptr;

TEST_F(Report, TrainWritesTheReportAndPrintsEachEvaluation) {
  EXPECT_TRUE(fs::is_regular_file(run() / "report.html"));
  EXPECT_THAT(*output_, HasSubstr("report: " + (run() / "report.html").string()));
  EXPECT_THAT(*output_, ::testing::ContainsRegex("evaluation at step 3\ntask +metric +value +chance\n"
                                                 "long +accuracy +[0-9.]+ +0\\.500\n"));
  EXPECT_THAT(*output_, HasSubstr("evaluation at step 6\n"));
  // Not a terminal: the progress lines of every log_every step, without a bar.
  EXPECT_THAT(*output_, ::testing::ContainsRegex("\nstep 6/6  [0-9.]+ it/s  ETA 00:00 \\|"));
  EXPECT_THAT(*output_, Not(HasSubstr("\r")));
}

TEST_F(Report, ReadRunHoldsTheRunsValues) {
  const json data = report::read_run(run());
  EXPECT_EQ(data["name"], "run");
  EXPECT_EQ(data["experiment"], "report_test");
  EXPECT_EQ(data["tasks"], json({"long", "short"}));
  // Every training line, in order, under its task; lr and grad_norm of every line.
  json loss = json::object(), lr = json::array();
  std::ifstream in(run() / "metrics.jsonl");
  int64_t training_lines = 0;
  for (std::string text; std::getline(in, text);) {
    const json line = json::parse(text);
    if (!line.contains("task")) continue;
    ++training_lines;
    loss[line["task"].get<std::string>()].push_back({line["step"], line["loss"]});
    lr.push_back({line["step"], line["lr"]});
  }
  EXPECT_EQ(training_lines, 6);
  EXPECT_EQ(data["loss"], loss);
  EXPECT_EQ(data["lr"], lr);
  EXPECT_EQ(data["grad_norm"].size(), 6u);
  // Evaluations at 3 and 6, the last one eval.json's.
  const json final_eval = read_json(run() / "eval.json");
  for (const std::string task : {"short", "long"}) {
    ASSERT_EQ(data["eval"][task]["accuracy"].size(), 2u);
    EXPECT_EQ(data["eval"][task]["accuracy"][0][0], 3);
    EXPECT_EQ(data["eval"][task]["accuracy"][1][0], 6);
    EXPECT_EQ(data["eval"][task]["accuracy"][1][1], final_eval[task]["accuracy"]);
    EXPECT_EQ(data["chance"][task], 0.5);
  }
  EXPECT_EQ(data["final"], final_eval);
  // Shares: throughput.json's; targets: the ratios scheduler's 0.7 / 0.3.
  const json throughput = read_json(run() / "throughput.json");
  EXPECT_EQ(data["share"]["short"]["actual"], throughput["short"]["share"]);
  EXPECT_DOUBLE_EQ(data["share"]["short"]["target"].get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(data["share"]["long"]["target"].get<double>(), 0.3);
  // Milliseconds per update of each phase.
  const double steps = throughput["long"]["steps"].get<double>();
  ASSERT_GT(steps, 0);
  EXPECT_DOUBLE_EQ(data["throughput"]["long"]["forward"].get<double>(),
                   1000.0 * throughput["long"]["phases"]["forward"].get<double>() / steps);
  EXPECT_EQ(data["skipped"], 0);
  const json tasks = read_json(run() / "tasks.json");
  EXPECT_EQ(tasks["short"]["label_kind"], "classification");
  EXPECT_EQ(tasks["short"]["num_labels"], 2);
}

TEST_F(Report, PageNeedsNoNetwork) {
  const std::string page = test::read_file(run() / "report.html");
  EXPECT_THAT(page, ::testing::StartsWith("<!DOCTYPE html>"));
  EXPECT_THAT(page, Not(HasSubstr("<link")));
  EXPECT_THAT(page, Not(HasSubstr(" src=")));
  EXPECT_THAT(page, Not(HasSubstr("https://")));
  EXPECT_THAT(page, Not(HasSubstr("@import")));
  // The only URL is the SVG namespace, which names and fetches nothing.
  std::string rest = page;
  for (size_t at; (at = rest.find("http://")) != std::string::npos; rest = rest.substr(at + 7)) {
    EXPECT_EQ(rest.substr(at, 26), "http://www.w3.org/2000/svg");
  }
}

// A name holding "</script>" stays inside the data element.
TEST_F(Report, DataCannotCloseItsScriptElement) {
  json data = report::read_run(run());
  data["name"] = "</script><script>alert(1)</script>";
  const std::string page = report::report_html({data});
  EXPECT_THAT(page, Not(HasSubstr("</script><script>alert")));
  EXPECT_THAT(page, HasSubstr("\\u003c/script>"));
}

TEST(ReportErrors, NameTheFolderAndLine) {
  test::TempDir dir;
  auto result = test::run_unitrain("report " + shell_quoted(dir / "nothing"));
  EXPECT_EQ(result.status, 1);
  EXPECT_THAT(result.output, HasSubstr("error: '" + (dir / "nothing").string() + "': no such run folder"));
  result = test::run_unitrain("report " + shell_quoted(dir.path()));
  EXPECT_EQ(result.status, 1);
  EXPECT_THAT(result.output, HasSubstr("': not a run folder (no metrics.jsonl"));

  test::write_file(dir / "metrics.jsonl",
                   "{\"step\": 1, \"task\": \"a\", \"loss\": 2.0}\nnot json\n{\"step\": 2, \"task\": \"a\", \"loss\": 1.0}\n");
  result = test::run_unitrain("report " + shell_quoted(dir.path()));
  EXPECT_EQ(result.status, 1);
  EXPECT_THAT(result.output, HasSubstr("error: " + (dir / "metrics.jsonl").string() +
                                       ":2: expected a JSON object, found 'not json'"));
  // A last line torn by a crash is left out.
  test::write_file(dir / "metrics.jsonl",
                   "{\"step\": 1, \"task\": \"a\", \"loss\": 2.0}\n{\"step\": 2, \"ta");
  const json data = report::read_run(dir.path());
  EXPECT_EQ(data["loss"]["a"], json::parse("[[1, 2.0]]"));
  test::write_file(dir / "eval.json", "{");
  EXPECT_THAT(test::error_of<report::ReportError>([&] { report::read_run(dir.path()); }),
              HasSubstr((dir / "eval.json").string() + ": not valid JSON"));
}

// A folder whose files name different tasks or hold odd values (an older run, a hand
// edit, another tool) is read without a crash: what is missing is left out.
TEST(ReportErrors, FilesThatDisagreeAreReadSafely) {
  test::TempDir dir;
  test::write_file(dir / "metrics.jsonl",
                   "{\"step\": 1, \"task\": \"x\", \"loss\": 2.0, \"lr\": 0.1}\n"
                   "{\"step\": 2, \"task\": \"a\", \"loss\": 1.0}\n");
  test::write_file(dir / "experiment.resolved.json",
                   R"({"name": "e", "scheduler": {"type": "ratios"}, "tasks": {"a": {"ratio": 2}, "b": 7}})");
  test::write_file(dir / "tasks.json", R"({"x": 5, "a": {"chance": 0.5, "target_share": "high"}})");
  test::write_file(dir / "throughput.json", R"({"x": 3, "a": {"steps": 1, "share": 0.5, "phases": 4}})");
  const json data = report::read_run(dir.path());
  EXPECT_EQ(data["tasks"], json::parse(R"(["a", "b", "x"])"));
  EXPECT_EQ(data["share"]["a"]["actual"], 0.5);
  // tasks.json records no number for a: no target (the report never guesses a scheduler's
  // distribution from its name).
  EXPECT_TRUE(data["share"]["a"]["target"].is_null());
  EXPECT_TRUE(data["share"]["x"]["actual"].is_null());
  EXPECT_TRUE(data["share"]["x"]["target"].is_null());
  EXPECT_EQ(data["throughput"]["a"]["data"], 0.0);
  EXPECT_FALSE(data["throughput"].contains("x"));
  EXPECT_EQ(data["chance"], json::parse(R"({"a": 0.5})"));
}

// --- in a browser -----------------------------------------------------------------------

struct Rendered {
  std::string status, errors;
  int64_t expected = -1, drawn = -1;
};

// The <body> attributes the page sets once it has drawn, from Chromium's DOM dump.
Rendered render(const fs::path& page) {
  const auto result = test::run_command(
      "(timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
      "--user-data-dir=" + shell_quoted(page.parent_path() / "chromium-profile") +
      " --dump-dom --virtual-time-budget=5000 " + shell_quoted("file://" + page.string()) +
      " 2>/dev/null)");
  EXPECT_EQ(result.status, 0) << result.output;
  Rendered r;
  std::smatch m;
  const std::string& dom = result.output;
  if (std::regex_search(dom, m, std::regex("<body[^>]*>"))) {
    const std::string body = m.str();
    auto attribute = [&body](const std::string& name) {
      std::smatch a;
      return std::regex_search(body, a, std::regex(name + "=\"([^\"]*)\"")) ? a[1].str() : "";
    };
    r.status = attribute("data-status");
    r.errors = attribute("data-errors");
    const std::string expected = attribute("data-charts-expected"), drawn = attribute("data-charts-drawn");
    if (!expected.empty()) r.expected = std::stoll(expected);
    if (!drawn.empty()) r.drawn = std::stoll(drawn);
  } else {
    ADD_FAILURE() << "no <body> in Chromium's output: " << dom.substr(0, 500);
  }
  return r;
}

bool have_chromium() { return test::run_command("command -v chromium").status == 0; }

// 2 loss charts, lr, grad_norm, one accuracy chart per task, sampling and throughput.
constexpr int64_t kChartsOfTheRun = 8;

TEST_F(Report, ChromiumDrawsEveryChart) {
  if (!have_chromium()) GTEST_SKIP() << "Debian's chromium is not installed (scripts/setup.sh installs it)";
  const Rendered r = render(run() / "report.html");
  EXPECT_EQ(r.status, "done");
  EXPECT_EQ(r.errors, "");
  EXPECT_EQ(r.expected, kChartsOfTheRun);
  EXPECT_EQ(r.drawn, kChartsOfTheRun);
}

// A second run (one task, as a single-task baseline) overlaid on the first: compare.html
// in the first folder, or --out.
TEST_F(Report, TwoRunsOverlaid) {
  json single = two_task_experiment();
  single["tasks"].erase("long");
  single["model"]["heads"].erase("long");
  single["training"]["max_steps"] = 9;
  const fs::path other = *dir_ / "single";
  train(*dir_, single, other);

  auto result = test::run_unitrain("report " + shell_quoted(run()) + " " + shell_quoted(other));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(result.output, (run() / "compare.html").string() + "\n");
  const std::string page = test::read_file(run() / "compare.html");
  EXPECT_THAT(page, HasSubstr("<title>unitrain report: run vs single</title>"));
  result = test::run_unitrain("report " + shell_quoted(run()) + " " + shell_quoted(other) + " --out " +
                              shell_quoted(*dir_ / "both.html"));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(test::read_file(*dir_ / "both.html"), page);

  if (!have_chromium()) GTEST_SKIP() << "Debian's chromium is not installed (scripts/setup.sh installs it)";
  const Rendered r = render(run() / "compare.html");
  EXPECT_EQ(r.status, "done");
  EXPECT_EQ(r.errors, "");
  // The union of the tasks: the same charts, each with both runs' lines.
  EXPECT_EQ(r.expected, kChartsOfTheRun);
  EXPECT_EQ(r.drawn, kChartsOfTheRun);
}

// A run of multi-task updates (docs/multitask.md): each update's line gives every task
// its loss point (no "long+short" series), and the logged gradient cosines get a chart
// of their own with the conflict line at 0.
TEST_F(Report, MultiTaskUpdatesAndGradientCosines) {
  json j = two_task_experiment();
  j["step"] = {{"tasks", "all"}, {"cosine_every", 2}};
  const fs::path multitask = *dir_ / "multitask";
  train(*dir_, j, multitask);
  const json data = report::read_run(multitask);
  EXPECT_FALSE(data["loss"].contains("long+short")) << data["loss"].dump();
  ASSERT_TRUE(data["loss"].contains("short"));
  std::vector<int64_t> steps;
  for (const auto& point : data["loss"]["short"]) steps.push_back(point[0].get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(data["loss"]["long"].size(), 6u);
  EXPECT_EQ(data["lr"].size(), 6u);
  ASSERT_EQ(data["grad_cosine"].size(), 1u) << data["grad_cosine"].dump();
  const json& cosines = data["grad_cosine"]["long|short"];
  ASSERT_EQ(cosines.size(), 3u);
  EXPECT_EQ(cosines[0][0].get<int64_t>(), 2);
  for (const auto& point : cosines) {
    EXPECT_GE(point[1].get<double>(), -1.0);
    EXPECT_LE(point[1].get<double>(), 1.0);
  }
  if (!have_chromium()) GTEST_SKIP() << "Debian's chromium is not installed (scripts/setup.sh installs it)";
  const Rendered r = render(multitask / "report.html");
  EXPECT_EQ(r.status, "done");
  EXPECT_EQ(r.errors, "");
  EXPECT_EQ(r.expected, kChartsOfTheRun + 1);
  EXPECT_EQ(r.drawn, kChartsOfTheRun + 1);
}

// A script error is seen: the test above would fail on a broken page.
TEST(ReportPage, ChromiumReportsAScriptError) {
  if (!have_chromium()) GTEST_SKIP() << "Debian's chromium is not installed (scripts/setup.sh installs it)";
  test::TempDir dir;
  json run = json::parse(R"({"name": "x", "folder": "x", "experiment": "", "tasks": ["a"],
    "loss": {"a": [[1, 2.0]]}, "lr": [], "grad_norm": [], "eval": {}, "chance": {},
    "share": {}, "share_source": "", "throughput": {}, "final": {}, "skipped": 0})");
  test::write_file(dir / "ok.html", report::report_html({run}));
  Rendered r = render(dir / "ok.html");
  EXPECT_EQ(r.status, "done");
  EXPECT_EQ(r.errors, "");
  EXPECT_EQ(r.drawn, 5);  // loss, lr, grad_norm, sampling, throughput
  run["lr"] = 7;  // not a series: the script stops with a TypeError
  test::write_file(dir / "broken.html", report::report_html({run}));
  r = render(dir / "broken.html");
  EXPECT_THAT(r.errors, HasSubstr("TypeError"));
  EXPECT_EQ(r.status, "loading");
}

// --- detection examples ------------------------------------------------------------------

// A tiny DETR trained 2 steps on the toy suite's COCO: the report shows its first val
// images with the annotations' boxes and the model's predictions.
TEST(ReportExamples, DetectionImagesWithTrueAndPredictedBoxes) {
  test::TempDir dir;
  const fs::path toy = dir / "toy";
  toy::ToySuiteOptions options;
  options.seed = 3;
  options.images = 12;
  options.text_examples = 20;
  options.image_size = 64;
  toy::make_toy_suite(toy, options);
  const json image = {{"min_size", 64}, {"max_size", 96}};
  const json e = {
      {"name", "examples"},
      {"seed", 2},
      {"model",
       {{"encoders", {{"image", test::tiny_image_encoder(32)}}},
        {"decoder", test::tiny_decoder(32)},
        {"heads", {{"coco", {{"type", "detr"}, {"in_dim", 32}, {"num_classes", 9}}}}}}},
      {"tasks",
       {{"coco",
         {{"dataset", {{"type", "coco_detection"}, {"root", (toy / "coco").string()}, {"image", image}}},
          {"encoders", {"image"}}, {"num_queries", 6}, {"batch_size", 2}}}}},
      {"training", {{"max_steps", 2}, {"eval_max_batches", 1}}},
      {"data", {{"workers", 1}, {"prefetch", 1}}}};
  const fs::path run = dir / "run";
  train(dir, e, run);

  // As the page gets them: the images and boxes of the run's checkpoint.
  static const bool loaded = [] {
    Registry::global().load_directory(UNITRAIN_TEST_PLUGIN_DIR);  // as `unitrain` does
    return true;
  }();
  ASSERT_TRUE(loaded);
  const json examples = report::detection_examples(run, 4, 3);
  ASSERT_TRUE(examples.contains("coco")) << examples.dump().substr(0, 300);
  const json annotations = json::parse(test::read_file(toy / "coco/annotations/instances_val2017.json"));
  ASSERT_GE(annotations["images"].size(), 2u);
  EXPECT_EQ(examples["coco"].size(), std::min<size_t>(4, annotations["images"].size()));
  std::map<int64_t, std::string> names;
  for (const auto& c : annotations["categories"]) names[c["id"]] = c["name"];
  for (const auto& example : examples["coco"]) {
    EXPECT_THAT(example["image"].get<std::string>(), ::testing::StartsWith("data:image/jpeg;base64,/9j/"));
    // True boxes: the annotations' [x, y, w, h] as fractions of the image, with names.
    const int64_t id = example["image_id"];
    double width = 0, height = 0;
    for (const auto& im : annotations["images"]) {
      if (im["id"] == id) width = im["width"], height = im["height"];
    }
    ASSERT_GT(width, 0);
    std::vector<std::vector<double>> want, got;
    std::multiset<std::string> want_names, got_names;
    for (const auto& a : annotations["annotations"]) {
      if (a["image_id"] != id || a.value("iscrowd", 0) != 0) continue;
      const auto& b = a["bbox"];
      want.push_back({b[0].get<double>() / width, b[1].get<double>() / height,
                      (b[0].get<double>() + b[2].get<double>()) / width,
                      (b[1].get<double>() + b[3].get<double>()) / height});
      want_names.insert(names[a["category_id"]]);
    }
    for (const auto& t : example["truth"]) {
      got.push_back({t[0], t[1], t[2], t[3]});
      got_names.insert(t[4].get<std::string>());
    }
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      for (int k = 0; k < 4; ++k) EXPECT_NEAR(got[i][k], want[i][k], 1e-5);
    }
    EXPECT_EQ(got_names, want_names);
    // Predictions: the 3 best of the 6 queries, best first.
    ASSERT_EQ(example["predicted"].size(), 3u);
    for (size_t i = 1; i < 3; ++i) {
      EXPECT_GE(example["predicted"][i - 1][5].get<double>(), example["predicted"][i][5].get<double>());
    }
  }

  // train wrote the report with them; Chromium draws them as one more chart.
  const std::string page = test::read_file(run / "report.html");
  EXPECT_THAT(page, HasSubstr("data:image/jpeg;base64,"));
  EXPECT_THAT(page, Not(HasSubstr("\"examples_error\":")));
  if (!have_chromium()) GTEST_SKIP() << "Debian's chromium is not installed (scripts/setup.sh installs it)";
  const Rendered r = render(run / "report.html");
  EXPECT_EQ(r.status, "done");
  EXPECT_EQ(r.errors, "");
  // loss, lr, grad_norm, ap/ap50/ap75, sampling, throughput, examples.
  EXPECT_EQ(r.expected, 9);
  EXPECT_EQ(r.drawn, 9);
}

// A tiny UniT trained 2 steps on the toy suite's VQAv2 and SNLI-VE: the report shows the
// first val records of each with the question or hypothesis as the file has it, the
// model's answer and the true answers.
TEST(ReportExamples, VqaAndSnliVeWithQuestionPredictionAndAnswer) {
  test::TempDir dir;
  const fs::path toy = dir / "toy";
  toy::ToySuiteOptions options;
  options.seed = 4;
  options.images = 12;
  options.text_examples = 20;
  options.image_size = 64;
  toy::make_toy_suite(toy, options);
  const json tokenizer = {{"vocab", (toy / "vocab.txt").string()}};
  const json image = {{"min_size", 64}, {"max_size", 96}};
  // The answer vocabulary the dataset builds (answer_min_count 1 over train).
  std::set<std::string> vocabulary;
  const json train_annotations = json::parse(test::read_file(toy / "vqa2/v2_mscoco_train2014_annotations.json"));
  for (const auto& a : train_annotations["annotations"]) {
    vocabulary.insert(vqa::normalize_answer(a["multiple_choice_answer"].get<std::string>()));
  }
  auto classifier = [](int64_t labels) {
    return json{{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", labels}};
  };
  json vqa_head = classifier(static_cast<int64_t>(vocabulary.size()));
  vqa_head["loss"] = "soft_bce";
  const json e = {
      {"name", "answer_examples"},
      {"seed", 2},
      {"model",
       {{"encoders", {{"image", test::tiny_image_encoder(32)}, {"text", test::tiny_text_encoder(tokenizer, 32)}}},
        {"decoder", test::tiny_decoder(32)},
        {"heads", {{"vqa2", vqa_head}, {"snli_ve", classifier(3)}}}}},
      {"tasks",
       {{"vqa2",
         {{"dataset",
           {{"type", "vqa2"}, {"root", (toy / "vqa2").string()}, {"tokenizer", tokenizer},
            {"answer_min_count", 1}, {"image", image}}},
          {"encoders", {"image", "text"}}, {"num_queries", 2}, {"batch_size", 3}}},
        {"snli_ve",
         {{"dataset",
           {{"type", "snli_ve"}, {"root", (toy / "snli_ve").string()}, {"tokenizer", tokenizer}, {"image", image}}},
          {"encoders", {"image", "text"}}, {"num_queries", 1}, {"batch_size", 3}, {"val_split", "dev"}}}}},
      {"training", {{"max_steps", 2}, {"eval_max_batches", 1}}},
      {"data", {{"workers", 1}, {"prefetch", 1}}}};
  const fs::path run = dir / "run";
  train(dir, e, run);

  static const bool loaded = [] {
    Registry::global().load_directory(UNITRAIN_TEST_PLUGIN_DIR);  // as `unitrain` does
    return true;
  }();
  ASSERT_TRUE(loaded);
  const json examples = report::answer_examples(run, 4);
  ASSERT_EQ(examples.size(), 2u) << examples.dump().substr(0, 300);
  auto check_common = [](const json& example, const std::set<std::string>& names) {
    EXPECT_THAT(example["image"].get<std::string>(), ::testing::StartsWith("data:image/jpeg;base64,/9j/"));
    EXPECT_GT(example["width"].get<int64_t>(), 0);
    EXPECT_GT(example["height"].get<int64_t>(), 0);
    ASSERT_EQ(example["predicted"].size(), 2u);
    EXPECT_EQ(names.count(example["predicted"][0].get<std::string>()), 1u) << example["predicted"];
    const double score = example["predicted"][1];
    EXPECT_GE(score, 0.0);
    EXPECT_LE(score, 1.0);
  };

  // VQAv2: the val questions in file order; the true answers are the annotators'
  // answers in the vocabulary with the official leave-one-out scores, best first.
  const json questions = json::parse(test::read_file(toy / "vqa2/v2_OpenEnded_mscoco_val2014_questions.json"));
  const json annotations = json::parse(test::read_file(toy / "vqa2/v2_mscoco_val2014_annotations.json"));
  ASSERT_TRUE(examples.contains("vqa2"));
  ASSERT_EQ(examples["vqa2"].size(), std::min<size_t>(4, questions["questions"].size()));
  for (size_t i = 0; i < examples["vqa2"].size(); ++i) {
    const json& example = examples["vqa2"][i];
    const json& q = questions["questions"][i];
    EXPECT_EQ(example["record_id"], q["question_id"]);
    EXPECT_EQ(example["text"], q["question"]);
    check_common(example, vocabulary);
    std::vector<std::string> given;
    for (const auto& a : annotations["annotations"]) {
      if (a["question_id"] != q["question_id"]) continue;
      for (const auto& answer : a["answers"]) given.push_back(vqa::normalize_answer(answer["answer"].get<std::string>()));
    }
    ASSERT_EQ(given.size(), 10u);
    std::map<std::string, double> want, got;
    for (const auto& answer : given) {
      if (vocabulary.count(answer)) want[answer] = vqa_answer_score(answer, given);
    }
    for (const auto& t : example["truth"]) got[t[0].get<std::string>()] = t[1];
    ASSERT_EQ(got.size(), want.size()) << example["truth"];
    for (const auto& [answer, score] : want) EXPECT_NEAR(got[answer], score, 1e-6) << answer;
    for (size_t k = 1; k < example["truth"].size(); ++k) {
      EXPECT_GE(example["truth"][k - 1][1].get<double>(), example["truth"][k][1].get<double>());
    }
  }

  // SNLI-VE: the dev lines in order, the hypothesis and the gold label.
  const std::set<std::string> labels = {"entailment", "neutral", "contradiction"};
  std::vector<json> lines;
  std::istringstream dev(test::read_file(toy / "snli_ve/snli_ve_dev.jsonl"));
  for (std::string line; std::getline(dev, line);) {
    if (!line.empty()) lines.push_back(json::parse(line));
  }
  ASSERT_TRUE(examples.contains("snli_ve"));
  ASSERT_EQ(examples["snli_ve"].size(), std::min<size_t>(4, lines.size()));
  for (size_t i = 0; i < examples["snli_ve"].size(); ++i) {
    const json& example = examples["snli_ve"][i];
    EXPECT_EQ(example["text"], lines[i]["sentence2"]);
    check_common(example, labels);
    EXPECT_EQ(example["truth"], json::array({json::array({lines[i]["gold_label"], 1.0})}));
  }

  // train wrote the report with them (6 a task); Chromium draws one chart a task more.
  const std::string page = test::read_file(run / "report.html");
  EXPECT_THAT(page, HasSubstr("\"answer_examples\":{"));
  EXPECT_THAT(page, HasSubstr(json(questions["questions"][0]["question"]).dump()));
  EXPECT_THAT(page, Not(HasSubstr("\"examples_error\":")));
  if (!have_chromium()) GTEST_SKIP() << "Debian's chromium is not installed (scripts/setup.sh installs it)";
  const Rendered r = render(run / "report.html");
  EXPECT_EQ(r.status, "done");
  EXPECT_EQ(r.errors, "");
  // The two-task run's charts (kChartsOfTheRun) and one answer-examples chart a task.
  EXPECT_EQ(r.expected, kChartsOfTheRun + 2);
  EXPECT_EQ(r.drawn, kChartsOfTheRun + 2);
}

// Without a checkpoint the page says why it has no images and draws the rest.
TEST_F(Report, ExamplesErrorIsShownNotFatal) {
  test::TempDir dir;
  for (const char* name : {"metrics.jsonl", "experiment.resolved.json", "eval.json", "tasks.json",
                           "throughput.json"}) {
    fs::copy_file(run() / name, dir / name);
  }
  const auto result = test::run_unitrain("--plugin-dir " + shell_quoted(test::fixture("good")) +
                                         " report " + shell_quoted(dir.path()));
  ASSERT_EQ(result.status, 0) << result.output;
  const std::string page = test::read_file(dir / "report.html");
  EXPECT_THAT(page, HasSubstr("\"examples_error\":\""));
  EXPECT_THAT(page, HasSubstr("checkpoint"));
}

// --- the console --------------------------------------------------------------------------

TEST(Console, ProgressText) {
  const std::vector<std::pair<std::string, double>> losses = {{"vqa2", 1.23456},
                                                              {"a_very_long_name", 0.5}};
  // ETA: 5 steps at 2 it/s = 2.5 s, shown rounded.
  EXPECT_EQ(train::progress_text(5, 10, 2.0, losses, 10, 0),
            "[#####-----] step 5/10  2.00 it/s  ETA 00:03 | vqa2 1.235 a_very_long_name 0.500");
  EXPECT_EQ(train::progress_text(5, 10, 2.0, losses, 0, 0),
            "step 5/10  2.00 it/s  ETA 00:03 | vqa2 1.235 a_very_long_name 0.500");
  // In 72 columns: names cut to 8 characters; in fewer, what does not fit is left out.
  EXPECT_EQ(train::progress_text(5, 10, 2.0, losses, 10, 72),
            "[#####-----] step 5/10  2.00 it/s  ETA 00:03 | vqa2 1.235 a_very_l 0.500");
  EXPECT_EQ(train::progress_text(5, 10, 2.0, losses, 10, 71),
            "[#####-----] step 5/10  2.00 it/s  ETA 00:03 | vqa2 1.235");
  EXPECT_EQ(train::progress_text(5, 10, 2.0, losses, 10, 20), "[#####-----] step 5/");
  EXPECT_EQ(train::progress_text(10, 10, 0.0, {}, 4, 0), "[####] step 10/10  0.00 it/s  ETA --:-- |");
  EXPECT_EQ(train::progress_text(3700 * 2, 10000, 2.0, {}, 0, 0),
            "step 7400/10000  2.00 it/s  ETA 21:40 |");
  EXPECT_EQ(train::progress_text(0, 20000, 2.0, {}, 0, 0), "step 0/20000  2.00 it/s  ETA 2:46:40 |");
}

// On a terminal (a pseudo-terminal here) the line is redrawn in place: "\r" and clear to
// the end of the line, with a bar; each evaluation's table clears it first.
TEST_F(Report, TerminalRedrawsOneLine) {
  json j = two_task_experiment();
  const fs::path file = *dir_ / "tty.json";
  test::write_file(file, j.dump(2));
  int master = -1;
  winsize size{};
  size.ws_col = 100;
  size.ws_row = 40;
  const pid_t pid = forkpty(&master, nullptr, nullptr, &size);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string plugin_dir = test::fixture("good"), exp = file.string(),
                      out = (*dir_ / "tty").string();
    execl(UNITRAIN_TEST_BINARY, UNITRAIN_TEST_BINARY, "--plugin-dir", plugin_dir.c_str(), "train",
          exp.c_str(), "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string output;
  char buffer[4096];
  for (ssize_t n; (n = read(master, buffer, sizeof(buffer))) > 0;) output.append(buffer, n);
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_THAT(output, ::testing::ContainsRegex(
                          "\r\033\\[K\\[#+-*\\] step 1/6  [0-9.]+ it/s  ETA [0-9:-]+ \\| (short|long) [0-9.]+"));
  EXPECT_THAT(output, HasSubstr("\r\033[K[####################] step 6/6"));
  EXPECT_THAT(output, HasSubstr("\r\033[Kevaluation at step 3\r\n"));  // the tty turns \n into \r\n
  // No line is wider than the terminal.
  std::string line;
  for (char c : output) {
    if (c == '\r' || c == '\n') {
      EXPECT_LT(line.size(), 100u + 4) << line;  // + the clear-line escape
      line.clear();
    } else {
      line += c;
    }
  }
}

}  // namespace
}  // namespace unitrain
