#include "detr_head.h"

#include <algorithm>
#include <array>
#include <functional>

#include <gtest/gtest.h>

#include "unitrain/errors.h"
#include "unitrain/nn/matcher.h"

namespace unitrain::heads {
namespace {

DetrHeadOptions tiny() { return DetrHeadOptions().in_dim(8).num_classes(4); }

// Two images: two boxes and one box.
Batch detection_batch() {
  Batch batch;
  batch.task = "coco";
  batch.size = 2;
  batch.boxes = {torch::tensor({{0.3f, 0.3f, 0.2f, 0.2f}, {0.7f, 0.6f, 0.3f, 0.4f}}),
                 torch::tensor({{0.5f, 0.5f, 0.5f, 0.5f}})};
  batch.classes = {torch::tensor({1, 3}, torch::kLong), torch::tensor({0}, torch::kLong)};
  batch.orig_size = torch::tensor({{100, 200}, {50, 50}}, torch::kLong);
  return batch;
}

TEST(DetrHead, ShapesLossNamesAndBackward) {
  torch::manual_seed(0);
  DetrHead head(tiny());
  auto decoder_out = torch::randn({3, 2, 6, 8}, torch::requires_grad());
  auto out = head->run(decoder_out, detection_batch(), true);
  EXPECT_EQ(out.outputs.at("pred_logits").sizes(), (std::vector<int64_t>{2, 6, 5}));
  EXPECT_EQ(out.outputs.at("pred_boxes").sizes(), (std::vector<int64_t>{2, 6, 4}));
  std::vector<std::string> names;
  for (const auto& [name, loss] : out.losses) {
    names.push_back(name);
    EXPECT_EQ(loss.dim(), 0) << name;
    EXPECT_TRUE(torch::isfinite(loss).item<bool>()) << name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"loss_bbox", "loss_bbox_0", "loss_bbox_1", "loss_ce",
                                             "loss_ce_0", "loss_ce_1", "loss_giou", "loss_giou_0",
                                             "loss_giou_1"}));
  torch::Tensor total = torch::zeros({});
  for (const auto& [name, loss] : out.losses) total = total + loss;
  total.backward();
  EXPECT_GT(decoder_out.grad()[0].abs().sum().item<float>(), 0.0f);  // aux layer gets gradient
  for (const auto& item : head->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
  }
}

// GIoU of two cxcywh boxes, written out.
double giou(const torch::Tensor& a, const torch::Tensor& b) {
  auto corners = [](const torch::Tensor& t) {
    const double cx = t[0].item<double>(), cy = t[1].item<double>(), w = t[2].item<double>(),
                 h = t[3].item<double>();
    return std::array<double, 4>{cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2};
  };
  const auto p = corners(a), q = corners(b);
  const double iw = std::max(0.0, std::min(p[2], q[2]) - std::max(p[0], q[0]));
  const double ih = std::max(0.0, std::min(p[3], q[3]) - std::max(p[1], q[1]));
  const double inter = iw * ih;
  const double area_p = (p[2] - p[0]) * (p[3] - p[1]), area_q = (q[2] - q[0]) * (q[3] - q[1]);
  const double uni = area_p + area_q - inter;
  const double hull = (std::max(p[2], q[2]) - std::min(p[0], q[0])) *
                      (std::max(p[3], q[3]) - std::min(p[1], q[1]));
  return inter / uni - (hull - uni) / hull;
}

// The DETR loss by hand on the head's own outputs: the matching by brute force over the
// full cost (-p_class + 5 L1 - 2 GIoU, non-zero logits), cross-entropy weighted by
// eos_coef for no-object (PyTorch's weighted mean), L1 and 1 - GIoU over the batch's box
// count, each times its coefficient.
TEST(DetrHead, LossValuesByHand) {
  torch::manual_seed(7);
  const double eos = 0.1;
  DetrHead head(tiny().aux_loss(false).eos_coef(eos));
  const auto decoder_out = torch::randn({1, 2, 3, 8}) * 2;
  const auto batch = detection_batch();
  const auto out = head->run(decoder_out, batch, true);
  const auto logits = out.outputs.at("pred_logits"), boxes = out.outputs.at("pred_boxes");
  const auto prob = logits.softmax(-1), log_prob = logits.log_softmax(-1);
  const int64_t queries = 3, no_object = 4;
  double ce_sum = 0, weight_sum = 0, l1 = 0, giou_loss = 0;
  for (int64_t i = 0; i < 2; ++i) {
    const auto& targets = batch.boxes[i];
    const auto& classes = batch.classes[i];
    const int64_t n = targets.size(0);
    // Every injective map of the n targets onto the 3 queries.
    std::vector<int64_t> best;
    double best_cost = 1e30;
    std::vector<int64_t> pick(n);
    std::function<void(int64_t)> search = [&](int64_t t) {
      if (t == n) {
        double cost = 0;
        for (int64_t j = 0; j < n; ++j) {
          const auto c = classes[j].item<int64_t>();
          cost += -prob[i][pick[j]][c].item<double>() +
                  5 * (boxes[i][pick[j]] - targets[j]).abs().sum().item<double>() -
                  2 * giou(boxes[i][pick[j]], targets[j]);
        }
        if (cost < best_cost) best_cost = cost, best = pick;
        return;
      }
      for (int64_t q = 0; q < queries; ++q) {
        if (std::find(pick.begin(), pick.begin() + t, q) != pick.begin() + t) continue;
        pick[t] = q;
        search(t + 1);
      }
    };
    search(0);
    for (int64_t q = 0; q < queries; ++q) {
      int64_t target_class = no_object;
      for (int64_t j = 0; j < n; ++j) {
        if (best[j] == q) target_class = classes[j].item<int64_t>();
      }
      const double w = target_class == no_object ? eos : 1.0;
      ce_sum += -w * log_prob[i][q][target_class].item<double>();
      weight_sum += w;
    }
    for (int64_t j = 0; j < n; ++j) {
      l1 += (boxes[i][best[j]] - targets[j]).abs().sum().item<double>();
      giou_loss += 1 - giou(boxes[i][best[j]], targets[j]);
    }
  }
  const double num_boxes = 3;
  EXPECT_NEAR(out.losses.at("loss_ce").item<double>(), ce_sum / weight_sum, 1e-5);
  EXPECT_NEAR(out.losses.at("loss_bbox").item<double>(), 5 * l1 / num_boxes, 1e-5);
  EXPECT_NEAR(out.losses.at("loss_giou").item<double>(), 2 * giou_loss / num_boxes, 1e-5);
}

TEST(DetrHead, NoAuxLossGivesFinalLayerOnly) {
  DetrHead head(tiny().aux_loss(false));
  auto out = head->run(torch::randn({3, 2, 6, 8}), detection_batch(), true);
  EXPECT_EQ(out.losses.size(), 3u);
  EXPECT_EQ(out.losses.count("loss_ce_0"), 0u);
}

TEST(DetrHead, BatchedMatcherEqualsPerImage) {
  torch::manual_seed(1);
  const int64_t b = 4, q = 7, c = 6;
  auto logits = torch::randn({b, q, c + 1});
  auto boxes = torch::rand({b, q, 4}) * 0.5 + 0.1;
  std::vector<torch::Tensor> classes, targets;
  for (int64_t n : {3, 0, 7, 1}) {
    classes.push_back(torch::randint(0, c, {n}, torch::kLong));
    targets.push_back(torch::rand({n, 4}) * 0.5 + 0.1);
  }
  auto batched = nn::hungarian_match(logits, boxes, classes, targets);
  ASSERT_EQ(batched.size(), 4u);
  for (int64_t i = 0; i < b; ++i) {
    auto single = nn::hungarian_match(logits.narrow(0, i, 1), boxes.narrow(0, i, 1), {classes[i]},
                                      {targets[i]});
    EXPECT_TRUE(torch::equal(batched[i].pred, single[0].pred)) << "image " << i;
    EXPECT_TRUE(torch::equal(batched[i].target, single[0].target)) << "image " << i;
    EXPECT_EQ(batched[i].pred.numel(), std::min<int64_t>(q, classes[i].numel()));
  }
}

TEST(DetrHead, MatcherFindsExactBoxes) {
  // Query 2 predicts target 1 exactly and query 0 target 0; the others are far away.
  auto logits = torch::zeros({1, 4, 3});
  auto targets = torch::tensor({{0.2f, 0.2f, 0.1f, 0.1f}, {0.8f, 0.7f, 0.2f, 0.2f}});
  auto boxes = torch::tensor({{{0.2f, 0.2f, 0.1f, 0.1f},
                               {0.5f, 0.9f, 0.05f, 0.05f},
                               {0.8f, 0.7f, 0.2f, 0.2f},
                               {0.9f, 0.1f, 0.05f, 0.05f}}});
  auto m = nn::hungarian_match(logits, boxes, {torch::tensor({0, 1}, torch::kLong)}, {targets});
  EXPECT_TRUE(torch::equal(m[0].pred, torch::tensor({0, 2}, torch::kLong)));
  EXPECT_TRUE(torch::equal(m[0].target, torch::tensor({0, 1}, torch::kLong)));
}

TEST(DetrHead, OneToManyRepeatsTargetsUpToTheQueryCount) {
  auto logits = torch::randn({1, 6, 3});
  auto boxes = torch::rand({1, 6, 4}) * 0.5 + 0.1;
  std::vector<torch::Tensor> classes = {torch::tensor({0, 1}, torch::kLong)};
  std::vector<torch::Tensor> targets = {torch::rand({2, 4}) * 0.5 + 0.1};
  nn::HungarianMatcherOptions options;
  options.target_repeats = 3;
  auto m = nn::hungarian_match(logits, boxes, classes, targets, options);
  ASSERT_EQ(m[0].pred.numel(), 6);
  EXPECT_EQ(m[0].target.eq(0).sum().item<int64_t>(), 3);
  EXPECT_EQ(m[0].target.eq(1).sum().item<int64_t>(), 3);
  options.target_repeats = 5;  // capped at 6 / 2 = 3
  EXPECT_EQ(nn::hungarian_match(logits, boxes, classes, targets, options)[0].pred.numel(), 6);

  DetrHead head(tiny().one_to_many_repeats(2));
  auto out = head->run(torch::randn({2, 2, 6, 8}), detection_batch(), true);
  EXPECT_TRUE(torch::isfinite(out.losses.at("loss_bbox_0")).item<bool>());
}

TEST(DetrHead, SgdStepOnBoxLossMovesTowardTheTarget) {
  torch::manual_seed(3);
  DetrHead head(tiny().aux_loss(false));
  auto decoder_out = torch::randn({1, 2, 6, 8});
  auto batch = detection_batch();
  torch::optim::SGD sgd(head->parameters(), torch::optim::SGDOptions(0.01));
  auto before = head->run(decoder_out, batch, true).losses.at("loss_bbox");
  sgd.zero_grad();
  before.backward();
  sgd.step();
  auto after = head->run(decoder_out, batch, true).losses.at("loss_bbox");
  EXPECT_LT(after.item<float>(), before.item<float>());
}

TEST(DetrHead, EmptyTargetsGiveOnlyNoObjectCrossEntropy) {
  DetrHead head(tiny().aux_loss(false));
  auto decoder_out = torch::randn({1, 2, 5, 8}, torch::requires_grad());
  Batch batch;
  batch.boxes = {torch::zeros({0, 4}), torch::zeros({0, 4})};
  batch.classes = {torch::zeros({0}, torch::kLong), torch::zeros({0}, torch::kLong)};
  auto out = head->run(decoder_out, batch, true);
  EXPECT_EQ(out.losses.at("loss_bbox").item<float>(), 0.0f);
  EXPECT_EQ(out.losses.at("loss_giou").item<float>(), 0.0f);
  // All queries target "no object" with the same weight: the plain mean of -log p.
  auto log_probs = out.outputs.at("pred_logits").log_softmax(-1).select(-1, 4);
  EXPECT_NEAR(out.losses.at("loss_ce").item<float>(), (-log_probs.mean()).item<float>(), 1e-5);
  out.losses.at("loss_ce").backward();
  EXPECT_TRUE(decoder_out.grad().defined());
}

TEST(DetrHead, AttributeLoss) {
  torch::manual_seed(4);
  DetrHead head(tiny().num_attributes(5).attribute_hidden_dim(7).attribute_class_embed_dim(3));
  auto batch = detection_batch();
  batch.attributes = {torch::tensor({{1, 4, -1}, {-1, -1, -1}}, torch::kLong),
                      torch::tensor({{0, -1, -1}}, torch::kLong)};
  auto out = head->run(torch::randn({2, 2, 6, 8}), batch, true);
  EXPECT_EQ(out.outputs.at("pred_attributes").sizes(), (std::vector<int64_t>{2, 6, 5}));
  ASSERT_EQ(out.losses.count("loss_attr"), 1u);
  EXPECT_EQ(out.losses.count("loss_attr_0"), 0u);
  auto loss = out.losses.at("loss_attr");
  EXPECT_TRUE(torch::isfinite(loss).item<bool>());
  loss.backward();
  EXPECT_TRUE(head->named_parameters()["attribute_fc1.weight"].grad().defined());

  batch.attributes.clear();
  EXPECT_THROW(head->run(torch::randn({2, 2, 6, 8}), batch, true), DataError);
}

TEST(DetrHead, PredictScalesBoxesToTheOriginalImage) {
  DetrHead head(tiny());
  HeadOutput output;
  // Image 0: query 0 is class 2 with high confidence, query 1 mostly no-object.
  auto logits = torch::full({2, 2, 5}, -10.0f);
  logits[0][0][2] = 5.0f;
  logits[0][1][4] = 5.0f;
  logits[0][1][1] = 0.0f;
  output.outputs["pred_logits"] = logits;
  output.outputs["pred_boxes"] = torch::tensor({0.5f, 0.5f, 0.2f, 0.4f}).expand({2, 2, 4}).clone();
  auto predictions = head->predict(output, detection_batch());
  ASSERT_EQ(predictions.detections.size(), 2u);
  ASSERT_EQ(predictions.detections[0].size(), 2u);
  const auto& best = predictions.detections[0][0];
  EXPECT_EQ(best.label, 2);
  EXPECT_NEAR(best.score, torch::softmax(logits[0][0], -1)[2].item<float>(), 1e-6);
  // orig_size (h, w) = (100, 200): xyxy (0.4, 0.3, 0.6, 0.7) * (200, 100, 200, 100).
  EXPECT_NEAR(best.x0, 80.0f, 1e-4);
  EXPECT_NEAR(best.y0, 30.0f, 1e-4);
  EXPECT_NEAR(best.x1, 120.0f, 1e-4);
  EXPECT_NEAR(best.y1, 70.0f, 1e-4);
  EXPECT_LT(predictions.detections[0][1].score, best.score);
  EXPECT_EQ(predictions.detections[0][1].label, 1);

  DetrHead strict(tiny().score_threshold(0.5));
  EXPECT_EQ(strict->predict(output, detection_batch()).detections[0].size(), 1u);
}

TEST(DetrHead, BadClassIdsNameTheRecord) {
  DetrHead head(tiny());
  auto batch = detection_batch();
  batch.sources = {"instances_val2017.json:7", "instances_val2017.json:9"};
  batch.classes[1] = torch::tensor({4}, torch::kLong);
  try {
    head->run(torch::randn({1, 2, 6, 8}), batch, true);
    FAIL();
  } catch (const DataError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("instances_val2017.json:9"), std::string::npos) << message;
    EXPECT_NE(message.find("[0, 3]"), std::string::npos) << message;
  }
}

TEST(DetrHead, OptionsJsonRoundTrip) {
  auto defaults = nlohmann::json::parse(kDetrHeadDefaults);
  EXPECT_EQ(to_json(detr_head_options_from_json(nlohmann::json::object())), defaults);
  auto json = defaults;
  json["num_classes"] = 1600;
  json["num_attributes"] = 400;
  json["aux_loss"] = false;
  EXPECT_EQ(to_json(detr_head_options_from_json(json)), json);
  EXPECT_THROW(detr_head_options_from_json({{"one_to_many_repeats", 0}}), ConfigError);
}

}  // namespace
}  // namespace unitrain::heads
