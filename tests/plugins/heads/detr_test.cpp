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

// The DETR loss of one decoder layer by hand, from that layer's logits [B, Q, C+1] and
// boxes [B, Q, 4]: each image's targets, repeated `repeats` times (at most Q / n, as
// the one-to-many matcher), matched by brute force over the full cost (-p_class + 5 L1
// - 2 GIoU); cross-entropy weighted by eos_coef for no-object (PyTorch's weighted mean);
// L1 and 1 - GIoU summed over the matched pairs and divided by their count (by the
// number of targets when repeats is 1), each times its coefficient.
struct HandLosses {
  double ce = 0, bbox = 0, giou = 0;
  std::vector<std::vector<int64_t>> target_of;  // per image and query: matched target or -1
};

HandLosses hand_losses(const torch::Tensor& logits, const torch::Tensor& boxes, const Batch& batch,
                       double eos, int64_t repeats = 1) {
  const auto prob = logits.softmax(-1), log_prob = logits.log_softmax(-1);
  const int64_t images = logits.size(0), queries = logits.size(1), no_object = logits.size(2) - 1;
  HandLosses out;
  double ce_sum = 0, weight_sum = 0, l1 = 0, giou_loss = 0, pairs = 0;
  for (int64_t i = 0; i < images; ++i) {
    const auto& targets = batch.boxes[i];
    const auto& classes = batch.classes[i];
    const int64_t n = targets.size(0);
    const int64_t r = n == 0 ? 1 : std::max<int64_t>(1, std::min(repeats, queries / n));
    std::vector<int64_t> list;  // target index of each entry to match
    for (int64_t k = 0; k < r; ++k) {
      for (int64_t j = 0; j < n; ++j) list.push_back(j);
    }
    const auto t_count = static_cast<int64_t>(list.size());
    // Every injective map of the entries onto the queries.
    std::vector<int64_t> best, pick(t_count);
    double best_cost = 1e30;
    std::function<void(int64_t)> search = [&](int64_t t) {
      if (t == t_count) {
        double cost = 0;
        for (int64_t e = 0; e < t_count; ++e) {
          const int64_t j = list[e];
          cost += -prob[i][pick[e]][classes[j].item<int64_t>()].item<double>() +
                  5 * (boxes[i][pick[e]] - targets[j]).abs().sum().item<double>() -
                  2 * giou(boxes[i][pick[e]], targets[j]);
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
    std::vector<int64_t> target_of(queries, -1);
    for (int64_t e = 0; e < t_count; ++e) target_of[best[e]] = list[e];
    for (int64_t q = 0; q < queries; ++q) {
      const int64_t target_class = target_of[q] < 0 ? no_object : classes[target_of[q]].item<int64_t>();
      const double w = target_class == no_object ? eos : 1.0;
      ce_sum += -w * log_prob[i][q][target_class].item<double>();
      weight_sum += w;
      if (target_of[q] < 0) continue;
      l1 += (boxes[i][q] - targets[target_of[q]]).abs().sum().item<double>();
      giou_loss += 1 - giou(boxes[i][q], targets[target_of[q]]);
      pairs += 1;
    }
    out.target_of.push_back(target_of);
  }
  out.ce = ce_sum / weight_sum;
  out.bbox = 5 * l1 / pairs;
  out.giou = 2 * giou_loss / pairs;
  return out;
}

void expect_losses(const HeadOutput& out, const std::string& suffix, const HandLosses& hand) {
  EXPECT_NEAR(out.losses.at("loss_ce" + suffix).item<double>(), hand.ce, 1e-5) << suffix;
  EXPECT_NEAR(out.losses.at("loss_bbox" + suffix).item<double>(), hand.bbox, 1e-5) << suffix;
  EXPECT_NEAR(out.losses.at("loss_giou" + suffix).item<double>(), hand.giou, 1e-5) << suffix;
}

TEST(DetrHead, LossValuesByHand) {
  torch::manual_seed(7);
  const double eos = 0.1;
  DetrHead head(tiny().aux_loss(false).eos_coef(eos));
  const auto decoder_out = torch::randn({1, 2, 3, 8}) * 2;
  const auto batch = detection_batch();
  const auto out = head->run(decoder_out, batch, true);
  expect_losses(out, "", hand_losses(out.outputs.at("pred_logits"), out.outputs.at("pred_boxes"), batch, eos));
}

// Every decoder layer but the last gets its own matching and losses (suffix _l), here
// one-to-many: each target repeated twice (image 1: 2 x 2 = 4 entries on 4 queries),
// the box losses divided by the matched pairs (6). The last layer stays one-to-one.
TEST(DetrHead, AuxLossesPerLayerWithOneToManyByHand) {
  torch::manual_seed(11);
  const double eos = 0.2;
  DetrHead head(tiny().eos_coef(eos).one_to_many_repeats(2));
  const auto decoder_out = torch::randn({3, 2, 4, 8}) * 2;
  const auto batch = detection_batch();
  const auto out = head->run(decoder_out, batch, true);
  for (int64_t l = 0; l < 3; ++l) {
    // The layer's own predictions: the head's outputs on that layer alone.
    const auto layer = head->run(decoder_out.narrow(0, l, 1), batch, /*with_loss=*/false);
    const bool last = l == 2;
    const auto hand = hand_losses(layer.outputs.at("pred_logits"), layer.outputs.at("pred_boxes"), batch, eos,
                                  last ? 1 : 2);
    expect_losses(out, last ? "" : "_" + std::to_string(l), hand);
    if (!last) {
      // Every query of image 0 is matched (2 targets x 2), and image 1's target twice.
      EXPECT_EQ(std::count(hand.target_of[0].begin(), hand.target_of[0].end(), -1), 0);
      EXPECT_EQ(std::count(hand.target_of[1].begin(), hand.target_of[1].end(), 0), 2);
    }
  }
  EXPECT_EQ(out.losses.size(), 9u);
}

// Visual Genome's attribute loss by hand: for each box matched on the last layer, the
// attribute MLP on [query output, embedding of the target class], BCE with logits
// against the multi-hot of its attribute ids averaged over the attributes, then averaged
// over the boxes that have at least one attribute.
TEST(DetrHead, AttributeLossByHand) {
  torch::manual_seed(5);
  const int64_t attributes = 5;
  DetrHead head(tiny().aux_loss(false).num_attributes(attributes).attribute_hidden_dim(7)
                    .attribute_class_embed_dim(3).attribute_loss_coef(0.7));
  auto batch = detection_batch();
  // Image 0: box 0 has attributes 1 and 4, box 1 none; image 1: box 0 has attribute 0.
  batch.attributes = {torch::tensor({{1, 4, -1}, {-1, -1, -1}}, torch::kLong),
                      torch::tensor({{0, -1, -1}}, torch::kLong)};
  const auto decoder_out = torch::randn({1, 2, 3, 8}) * 2;
  const auto out = head->run(decoder_out, batch, true);
  const auto hand = hand_losses(out.outputs.at("pred_logits"), out.outputs.at("pred_boxes"), batch, 0.1);

  auto params = head->named_parameters();
  const auto embed = params["attribute_class_embed.weight"];
  double sum = 0, boxes_with_attributes = 0;
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t q = 0; q < 3; ++q) {
      const int64_t j = hand.target_of[i][q];
      if (j < 0) continue;
      const auto ids = batch.attributes[i][j];
      if (ids.ge(0).sum().item<int64_t>() == 0) continue;  // no attribute: not counted
      const auto x = torch::cat({decoder_out[0][i][q], embed[batch.classes[i][j].item<int64_t>()]});
      const auto hidden = torch::relu(torch::matmul(params["attribute_fc1.weight"], x) + params["attribute_fc1.bias"]);
      const auto logits = torch::matmul(params["attribute_fc2.weight"], hidden) + params["attribute_fc2.bias"];
      double bce = 0;
      for (int64_t a = 0; a < attributes; ++a) {
        const double z = logits[a].item<double>();
        const double y = ids.eq(a).any().item<bool>() ? 1.0 : 0.0;
        const double p = 1 / (1 + std::exp(-z));
        bce += -(y * std::log(p) + (1 - y) * std::log(1 - p));
      }
      sum += bce / attributes;
      boxes_with_attributes += 1;
    }
  }
  ASSERT_EQ(boxes_with_attributes, 2);
  EXPECT_NEAR(out.losses.at("loss_attr").item<double>(), 0.7 * sum / boxes_with_attributes, 1e-5);
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
  auto defaults = detr_head_option_set().defaults();
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
