// Metrics: exact values worked out by hand (COCO AP as pycocotools computes it, VQA
// accuracy, accuracy, F1) and the evaluators built on them.
#include <gtest/gtest.h>

#include "train/reports.h"
#include "unitrain/errors.h"
#include "unitrain/metrics.h"

namespace unitrain {
namespace {

Detection det(float x0, float y0, float x1, float y1, float score, int64_t label = 0) {
  Detection d;
  d.x0 = x0;
  d.y0 = y0;
  d.x1 = x1;
  d.y1 = y1;
  d.score = score;
  d.label = label;
  return d;
}

GroundTruthBox gt(float x0, float y0, float x1, float y1, int64_t label = 0) {
  return GroundTruthBox{x0, y0, x1, y1, label};
}

TEST(BoxIou, KnownValues) {
  EXPECT_DOUBLE_EQ(box_iou(0, 0, 10, 10, 0, 0, 10, 10), 1.0);
  EXPECT_DOUBLE_EQ(box_iou(0, 0, 10, 10, 0, 0, 10, 5), 0.5);      // 50 / 100
  EXPECT_DOUBLE_EQ(box_iou(0, 0, 10, 10, 5, 0, 15, 10), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(box_iou(0, 0, 10, 10, 10, 0, 20, 10), 0.0);    // touching edges
  EXPECT_DOUBLE_EQ(box_iou(0, 0, 0, 0, 0, 0, 0, 0), 0.0);         // empty union
}

TEST(CocoThresholds, AreNumpyLinspace) {
  const auto& t = coco_iou_thresholds();
  ASSERT_EQ(t.size(), 10u);
  EXPECT_EQ(t.front(), 0.5);
  EXPECT_EQ(t.back(), 0.95);
  for (size_t i = 0; i < t.size(); ++i) EXPECT_NEAR(t[i], 0.5 + 0.05 * i, 1e-12);
  const auto& r = coco_recall_thresholds();
  ASSERT_EQ(r.size(), 101u);
  EXPECT_EQ(r.front(), 0.0);
  EXPECT_EQ(r.back(), 1.0);
  // numpy computes point i as i * 0.01: point 70 is 0.7000000000000001, not 0.7.
  EXPECT_GT(r[70], 0.7);
  EXPECT_EQ(r[25], 0.25);
  EXPECT_EQ(r[50], 0.5);
  EXPECT_EQ(r[75], 0.75);
}

TEST(DetectionAp, PerfectDetectionsGiveOne) {
  const std::vector<std::vector<GroundTruthBox>> truth = {
      {gt(0, 0, 10, 10, 0), gt(20, 20, 40, 50, 1)}, {gt(5, 5, 9, 9, 0)}};
  const std::vector<std::vector<Detection>> dets = {
      {det(20, 20, 40, 50, 0.3f, 1), det(0, 0, 10, 10, 0.9f, 0)}, {det(5, 5, 9, 9, 0.5f, 0)}};
  const DetectionApResult r = detection_ap(dets, truth);
  EXPECT_EQ(r.ap, 1.0);
  EXPECT_EQ(r.ap50, 1.0);
  EXPECT_EQ(r.ap75, 1.0);
  EXPECT_EQ(r.num_categories, 2);
  EXPECT_EQ(r.num_images, 2);
}

// One category, four ground-truth boxes G1, G2 (image 0) and G3, G4 (image 1). Every
// detection either equals a box (IoU 1) or overlaps none (IoU 0), so all ten IoU
// thresholds give the same curve and AP = AP50.
//   score  image  box          outcome   cum TP  cum FP  recall  precision  monotone
//   0.9    0      = G1         hit       1       0       .25     1          1
//   0.8    0      = G1         duplicate 1       1       .25     1/2        2/3
//   0.7    1      = G3         hit       2       1       .50     2/3        2/3
//   0.6    1      nothing      miss (FP) 2       2       .50     1/2        3/5
//   0.5    0      = G2         hit       3       2       .75     3/5        3/5
// G4 is never found. Recall points (first row with recall >= r):
//   r = .00 ... .25  (26 points) -> row 1 -> 1
//   r = .26 ... .50  (25 points) -> row 3 -> 2/3
//   r = .51 ... .75  (25 points) -> row 5 -> 3/5
//   r = .76 ... 1.0  (25 points) -> beyond the last recall -> 0
// AP = (26 + 25 * 2/3 + 25 * 3/5) / 101 = (26 + 50/3 + 15) / 101 = 173 / 303.
TEST(DetectionAp, HitsMissesAndDuplicatesMatchHandComputedCurve) {
  const std::vector<std::vector<GroundTruthBox>> truth = {
      {gt(0, 0, 10, 10), gt(50, 50, 70, 60)}, {gt(10, 10, 30, 30), gt(60, 0, 80, 20)}};
  const std::vector<std::vector<Detection>> dets = {
      {det(50, 50, 70, 60, 0.5f), det(0, 0, 10, 10, 0.8f), det(0, 0, 10, 10, 0.9f)},
      {det(10, 10, 30, 30, 0.7f), det(100, 100, 120, 120, 0.6f)}};
  const DetectionApResult r = detection_ap(dets, truth);
  EXPECT_NEAR(r.ap, 173.0 / 303.0, 1e-12);
  EXPECT_NEAR(r.ap50, 173.0 / 303.0, 1e-12);
  for (double v : r.ap_per_threshold) EXPECT_NEAR(v, 173.0 / 303.0, 1e-12);
}

// Ten ground-truth boxes, seven found by the seven highest-scoring detections and
// nothing else detected: recall reaches exactly 7/10 at precision 1. Recall point 70
// is 0.7000000000000001 (numpy's linspace), just above 0.7, so pycocotools samples
// only points 0..69 at precision 1: AP = 70 / 101, not 71 / 101.
TEST(DetectionAp, RecallOnAThresholdFollowsPycocotoolsRounding) {
  std::vector<std::vector<GroundTruthBox>> truth(1);
  std::vector<std::vector<Detection>> dets(1);
  for (int i = 0; i < 10; ++i) {
    const float x = 20.0f * i;
    truth[0].push_back(gt(x, 0, x + 10, 10));
    if (i < 7) dets[0].push_back(det(x, 0, x + 10, 10, 0.9f - 0.01f * i));
  }
  const DetectionApResult r = detection_ap(dets, truth);
  EXPECT_NEAR(r.ap, 70.0 / 101.0, 1e-12);
}

// One box found at IoU 0.72: a hit at thresholds .50 .55 .60 .65 .70 (AP 1 each), a
// false positive at .75 ... .95 (AP 0 each). AP = 5/10, AP50 = 1, AP75 = 0.
TEST(DetectionAp, ApAveragesIouThresholdsWhereAp50DoesNot) {
  const std::vector<std::vector<GroundTruthBox>> truth = {{gt(0, 0, 10, 10)}};
  const std::vector<std::vector<Detection>> dets = {{det(0, 0, 10, 7.2f, 0.9f)}};
  const DetectionApResult r = detection_ap(dets, truth);
  EXPECT_NEAR(r.ap, 0.5, 1e-12);
  EXPECT_EQ(r.ap50, 1.0);
  EXPECT_EQ(r.ap75, 0.0);
  const std::vector<double> expected = {1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
  EXPECT_EQ(r.ap_per_threshold, expected);
}

// IoU exactly 0.5 counts as a hit at threshold .50 (pycocotools skips only IoU < t).
TEST(DetectionAp, IouEqualToThresholdIsAHit) {
  const std::vector<std::vector<GroundTruthBox>> truth = {{gt(0, 0, 10, 10)}};
  const std::vector<std::vector<Detection>> dets = {{det(0, 0, 10, 5, 0.9f)}};
  const DetectionApResult r = detection_ap(dets, truth);
  EXPECT_EQ(r.ap50, 1.0);
  EXPECT_NEAR(r.ap, 0.1, 1e-12);
}

// Category 0 found perfectly (AP 1), category 1 has ground truth but no detection
// (AP 0), category 2 has detections but no ground truth (left out of the mean).
TEST(DetectionAp, AveragesOverCategoriesWithGroundTruth) {
  const std::vector<std::vector<GroundTruthBox>> truth = {{gt(0, 0, 10, 10, 0)},
                                                          {gt(0, 0, 10, 10, 1)}};
  const std::vector<std::vector<Detection>> dets = {
      {det(0, 0, 10, 10, 0.9f, 0), det(30, 30, 40, 40, 0.8f, 2)}, {}};
  const DetectionApResult r = detection_ap(dets, truth);
  EXPECT_EQ(r.num_categories, 2);
  EXPECT_NEAR(r.ap, 0.5, 1e-12);
  EXPECT_NEAR(r.ap50, 0.5, 1e-12);
}

// One box; a false positive (0.9) outranks the true hit (0.8).
//   all kept: rows (FP, TP): recall 0, 1; precision 0, 1/2 -> monotone 1/2, 1/2;
//             every recall point -> 1/2, AP = 1/2.
//   max_detections 1: only the FP: recall 0, precision 0; point r = 0 reads row 1
//             (recall 0 >= 0) -> 0, the rest are beyond -> 0, AP = 0.
TEST(DetectionAp, MaxDetectionsKeepsTheHighestScores) {
  const std::vector<std::vector<GroundTruthBox>> truth = {{gt(0, 0, 10, 10)}};
  const std::vector<std::vector<Detection>> dets = {
      {det(0, 0, 10, 10, 0.8f), det(50, 50, 60, 60, 0.9f)}};
  EXPECT_NEAR(detection_ap(dets, truth).ap, 0.5, 1e-12);
  DetectionApOptions options;
  options.max_detections = 1;
  EXPECT_EQ(detection_ap(dets, truth, options).ap, 0.0);
}

// A detection takes the unmatched box it overlaps most, not the first one listed.
// A = (0,0)-(10,10), B = (3,0)-(13,10); d1 (0.9) equals B and overlaps A at 70/130 = .54;
// d2 (0.8) = (-3,0)-(7,10) overlaps A at 70/130 = .54 and B at 40/160 = .25.
//   t = .50: d1 -> B (IoU 1), d2 -> A (.54): two hits, AP 1. (Taking the first box
//            listed, d1 -> A would leave d2 without a match: AP 51/101.)
//   t >= .55: d1 -> B, d2 misses: recall .5, .5; precision 1, 1/2 -> monotone 1, 1/2;
//            points .00 ... .50 (51) -> 1, the rest -> 0: AP 51/101 at each of 9 thresholds.
// AP = (1 + 9 * 51/101) / 10 = 560 / 1010 = 56/101.
TEST(DetectionAp, GreedyMatchingTakesTheBestIou) {
  const std::vector<std::vector<GroundTruthBox>> truth = {{gt(0, 0, 10, 10), gt(3, 0, 13, 10)}};
  const std::vector<std::vector<Detection>> dets = {
      {det(3, 0, 13, 10, 0.9f), det(-3, 0, 7, 10, 0.8f)}};
  const DetectionApResult r = detection_ap(dets, truth);
  EXPECT_EQ(r.ap50, 1.0);
  EXPECT_NEAR(r.ap_per_threshold[1], 51.0 / 101.0, 1e-12);
  EXPECT_NEAR(r.ap, 56.0 / 101.0, 1e-12);
}

TEST(DetectionAp, NoGroundTruthGivesZeroAndMismatchedSizesThrow) {
  const DetectionApResult r = detection_ap({{det(0, 0, 1, 1, 1.0f)}}, {{}});
  EXPECT_EQ(r.ap, 0.0);
  EXPECT_EQ(r.num_categories, 0);
  EXPECT_THROW(detection_ap({{}, {}}, {{}}), Error);
}

TEST(GroundTruthPixels, ConvertsNormalizedCxcywh) {
  // Image 50 high, 100 wide; box (10, 5) - (30, 25) px = cx .2, cy .3, w .2, h .4.
  const auto boxes = torch::tensor({{0.2f, 0.3f, 0.2f, 0.4f}});
  const auto classes = torch::tensor({int64_t{3}});
  const auto out = ground_truth_pixels(boxes, classes, 50, 100);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NEAR(out[0].x0, 10, 1e-4);
  EXPECT_NEAR(out[0].y0, 5, 1e-4);
  EXPECT_NEAR(out[0].x1, 30, 1e-4);
  EXPECT_NEAR(out[0].y1, 25, 1e-4);
  EXPECT_EQ(out[0].label, 3);
}

// 10 annotators, k of whom gave the answer: leave-one-out mean of min(1, matches / 3).
//   k=1: 9 subsets keep the match (1/3), 1 loses it (0): 9/3 / 10 = .3
//   k=2: 8 x 2/3 + 2 x 1/3 = 18/3 -> .6;  k=3: 7 x 1 + 3 x 2/3 = 9 -> .9;  k=4: 10 x 1 -> 1
TEST(VqaAccuracy, LeaveOneOutScores) {
  auto annotators = [](int k) {
    std::vector<std::string> a(10, "no");
    for (int i = 0; i < k; ++i) a[i] = "yes";
    return a;
  };
  const double expected[] = {0.0, 0.3, 0.6, 0.9, 1.0, 1.0};
  for (int k = 0; k <= 5; ++k) {
    EXPECT_NEAR(vqa_answer_score("yes", annotators(k)), expected[k], 1e-12) << "k=" << k;
  }
  EXPECT_EQ(vqa_answer_score("yes", {}), 0.0);
}

TEST(VqaAccuracy, MeanSoftScoreOfPrediction) {
  const auto soft = torch::tensor({{1.0f, 0.0f, 0.0f}, {0.0f, 0.3f, 0.6f}, {0.9f, 0.0f, 0.0f}});
  const auto predicted = torch::tensor({int64_t{0}, int64_t{2}, int64_t{1}});
  EXPECT_NEAR(vqa_accuracy(predicted, soft), (1.0 + 0.6 + 0.0) / 3.0, 1e-6);
  EXPECT_THROW(vqa_accuracy(torch::tensor({int64_t{3}}), soft.slice(0, 0, 1)), c10::Error);
}

TEST(Classification, Accuracy) {
  EXPECT_DOUBLE_EQ(accuracy({1, 0, 1, 1}, {1, 1, 1, 0}), 0.5);
  EXPECT_DOUBLE_EQ(accuracy({2, 2, 2}, {2, 2, 2}), 1.0);
  EXPECT_EQ(accuracy({}, {}), 0.0);
  EXPECT_THROW(accuracy({1}, {}), Error);
}

// Positive class 1: TP at 0 and 4, FP at 1, FN at 2 -> F1 = 2*2 / (2*2 + 1 + 1) = 2/3.
TEST(Classification, F1OfPositiveClass) {
  EXPECT_DOUBLE_EQ(f1_score({1, 1, 0, 0, 1}, {1, 0, 1, 0, 1}, 1), 2.0 / 3.0);
  // Class 0: TP at 3, FP at 2, FN at 1 -> 2 / 4.
  EXPECT_DOUBLE_EQ(f1_score({1, 1, 0, 0, 1}, {1, 0, 1, 0, 1}, 0), 0.5);
  EXPECT_EQ(f1_score({0, 0}, {0, 0}, 1), 0.0);  // no positives anywhere
}

Batch classification_batch(std::vector<int64_t> labels) {
  Batch batch;
  batch.task = "qqp";
  batch.size = static_cast<int64_t>(labels.size());
  batch.labels = torch::tensor(labels);
  return batch;
}

TEST(Evaluators, ClassificationAccumulatesAndSkipsUnlabelled) {
  LabelSpace space{"classification", {"not_duplicate", "duplicate"}, 0};
  auto evaluator = make_evaluator(space, nlohmann::json{{"f1_positive", "duplicate"}});
  Predictions p1;
  p1.labels = torch::tensor({int64_t{1}, int64_t{1}, int64_t{0}});
  evaluator->add(p1, classification_batch({1, 0, -1}));
  Predictions p2;
  p2.labels = torch::tensor({int64_t{0}, int64_t{1}});
  evaluator->add(p2, classification_batch({1, 1}));
  // Kept pairs (pred, target): (1,1) (1,0) (0,1) (1,1): accuracy 2/4; TP 2, FP 1, FN 1.
  const nlohmann::json m = evaluator->compute();
  EXPECT_DOUBLE_EQ(m.at("accuracy").get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(m.at("f1").get<double>(), 2.0 / 3.0);
  EXPECT_EQ(m.begin().key(), "accuracy");  // the headline comes first
}

// A test split's batches carry no labels (collate leaves Batch.labels / soft_labels
// undefined): they are not scored, and the labelled batches' metric is unchanged.
TEST(Evaluators, BatchesWithoutLabelsAreNotScored) {
  auto classification = make_evaluator(LabelSpace{"classification", {"a", "b"}, 0});
  Predictions predictions;
  predictions.labels = torch::tensor({int64_t{1}, int64_t{0}});
  Batch unlabelled;
  unlabelled.size = 2;
  classification->add(predictions, unlabelled);
  EXPECT_DOUBLE_EQ(classification->compute().at("accuracy").get<double>(), 0.0);
  classification->add(predictions, classification_batch({1, 1}));
  EXPECT_DOUBLE_EQ(classification->compute().at("accuracy").get<double>(), 0.5);

  auto vqa = make_evaluator(LabelSpace{"vqa", {"yes", "no"}, 0});
  vqa->add(predictions, unlabelled);
  Batch answered;
  answered.size = 2;
  answered.soft_labels = torch::tensor({{0.0f, 1.0f}, {0.6f, 0.0f}});
  vqa->add(predictions, answered);
  EXPECT_DOUBLE_EQ(vqa->compute().at("vqa_accuracy").get<double>(), (1.0 + 0.6f) / 2);
}

TEST(Evaluators, VqaAveragesOverBatches) {
  auto evaluator = make_evaluator(LabelSpace{"vqa", {"yes", "no"}, 0}, nlohmann::json::object());
  Batch b1;
  b1.size = 1;
  b1.soft_labels = torch::tensor({{0.3f, 1.0f}});
  Predictions p1;
  p1.labels = torch::tensor({int64_t{0}});
  evaluator->add(p1, b1);
  Batch b2;
  b2.size = 2;
  b2.soft_labels = torch::tensor({{0.0f, 1.0f}, {0.9f, 0.0f}});
  Predictions p2;
  p2.labels = torch::tensor({int64_t{1}, int64_t{0}});
  evaluator->add(p2, b2);
  EXPECT_NEAR(evaluator->compute().at("vqa_accuracy").get<double>(), (0.3 + 1.0 + 0.9) / 3,
              1e-6);
}

TEST(Evaluators, DetectionConvertsGroundTruthToOriginalPixels) {
  auto evaluator = make_evaluator(LabelSpace{"detection", {"a", "b"}, 0}, nlohmann::json{});
  Batch batch;
  batch.task = "coco";
  batch.size = 2;
  batch.orig_size = torch::tensor({{50, 100}, {200, 200}}, torch::kLong);
  batch.boxes = {torch::tensor({{0.2f, 0.3f, 0.2f, 0.4f}}), torch::tensor({{0.5f, 0.5f, 0.5f, 0.5f}})};
  batch.classes = {torch::tensor({int64_t{0}}), torch::tensor({int64_t{1}})};
  Predictions predictions;
  predictions.detections = {{det(10, 5, 30, 25, 0.9f, 0)}, {det(50, 50, 150, 150, 0.7f, 1)}};
  evaluator->add(predictions, batch);
  const nlohmann::json m = evaluator->compute();
  EXPECT_EQ(m.begin().key(), "ap");
  EXPECT_NEAR(m.at("ap").get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(m.at("ap50").get<double>(), 1.0, 1e-12);
}

TEST(Evaluators, FactoryErrorsNameTheProblem) {
  try {
    make_evaluator(LabelSpace{"segmentation", {}, 0}, nlohmann::json{});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'segmentation'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("classification, vqa, detection"), std::string::npos);
  }
  try {
    make_evaluator(LabelSpace{"classification", {"no", "yes"}, 0},
                   nlohmann::json{{"f1_positive", "maybe"}});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'maybe' is not a label; labels: no, yes"),
              std::string::npos)
        << e.what();
  }
  try {
    evaluator_options_from_json(nlohmann::json{{"max_dets", 10}}, "exp.json:/tasks/coco/eval");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("exp.json:/tasks/coco/eval: unknown evaluator option "
                                         "'max_dets'; valid options: f1_positive, max_detections"),
              std::string::npos)
        << e.what();
  }
}

// Scores captions: its headline is "meteor", not its alphabetically first metric, and
// a random caption's meteor is about 0.125 whatever the labels.
class CaptionEvaluator : public Evaluator {
 public:
  void add(const Predictions&, const Batch&) override {}
  nlohmann::json compute() const override { return {{"bleu", 0.25}, {"meteor", 0.5}}; }
  std::string headline(const nlohmann::json&) const override { return "meteor"; }
  double chance_level(const LabelSpace&) const override { return 0.125; }
  // BLEU under METEOR, with its own chance level.
  std::vector<std::pair<std::string, double>> table_rows(const nlohmann::json&,
                                                         const LabelSpace&) const override {
    return {{"bleu", 0.04}};
  }
};

// An evaluator that states neither: the defaults.
class PlainEvaluator : public Evaluator {
 public:
  void add(const Predictions&, const Batch&) override {}
  nlohmann::json compute() const override { return {{"b", 1.0}, {"a", 0.5}}; }
};

class CaptionDataset : public Dataset {
 public:
  int64_t size() const override { return 0; }
  Sample get(int64_t, uint64_t) const override { return {}; }
  LabelSpace labels() const override { return {"classification", {"a", "b"}, 0}; }
  std::unique_ptr<Evaluator> evaluator() const override {
    return std::make_unique<CaptionEvaluator>();
  }
};

TEST(Headline, TheEvaluatorNamesItsHeadlineAndChanceLevel) {
  std::vector<train::TaskData> tasks(1);
  tasks[0].name = "captions";
  tasks[0].eval = std::make_shared<CaptionDataset>();
  EXPECT_EQ(train::chance_level(tasks[0]), 0.125);
  const nlohmann::json result = {{"captions", CaptionEvaluator().compute()}};
  EXPECT_EQ(train::eval_table(result, tasks),
            "task         metric            value   chance\n"
            "captions     meteor            0.500    0.125\n"
            "             bleu              0.250    0.040\n");
}

// The table's further rows come from the evaluator (table_rows), never from the label
// space's kind: COCO-style detection gives AP50 under AP; the others nothing.
TEST(Headline, DetectionShowsAp50UnderAp) {
  const nlohmann::json metrics = {{"ap", 0.25}, {"ap50", 0.5}, {"ap75", 0.125}};
  const LabelSpace boxes{"detection", {"cat"}, 0};
  EXPECT_EQ(DetectionEvaluator().table_rows(metrics, boxes),
            (std::vector<std::pair<std::string, double>>{{"ap50", 0.0}}));
  EXPECT_TRUE(DetectionEvaluator().table_rows({{"ap", 0.25}}, boxes).empty());
  EXPECT_TRUE(ClassificationEvaluator(1).table_rows({{"accuracy", 0.5}, {"f1", 0.25}},
                                                    {"classification", {"a", "b"}, 0})
                  .empty());
  EXPECT_TRUE(PlainEvaluator().table_rows({{"b", 1.0}}, {"vqa", {"yes"}, 0}).empty());
}

TEST(Headline, DefaultsAreTheFirstMetricAndOneOverTheLabels) {
  PlainEvaluator plain;
  EXPECT_EQ(plain.headline(plain.compute()), "a");
  EXPECT_EQ(plain.headline(nlohmann::json::object()), "");
  EXPECT_EQ(plain.chance_level({"classification", {"x", "y", "z", "w"}, 0}), 0.25);
  EXPECT_EQ(plain.chance_level({"vqa", {"yes", "no"}, 0}), 0.5);
  EXPECT_EQ(plain.chance_level({"detection", {"cat", "dog"}, 0}), 0.0);
  EXPECT_EQ(plain.chance_level({"classification", {}, 0}), 0.0);
  // The built-in evaluators name theirs.
  EXPECT_EQ(ClassificationEvaluator(1).headline({{"accuracy", 0.5}, {"f1", 0.25}}), "accuracy");
  EXPECT_EQ(VqaEvaluator().headline({{"vqa_accuracy", 0.5}}), "vqa_accuracy");
  EXPECT_EQ(DetectionEvaluator().headline({{"ap", 0.5}, {"ap50", 0.75}, {"ap75", 0.5}}), "ap");
  EXPECT_EQ(DetectionEvaluator().chance_level({"detection", {"cat"}, 0}), 0.0);
}

}  // namespace
}  // namespace unitrain
