#include "mlp_classifier.h"

#include <gtest/gtest.h>

#include "unitrain/errors.h"

namespace unitrain::heads {
namespace {

MlpClassifierHead make(const std::string& loss, int64_t labels = 5) {
  return MlpClassifierHead(MlpClassifierOptions(labels).in_dim(8).hidden_dim(6).loss(loss).dropout(0.0));
}

TEST(MlpClassifier, ShapesAndCrossEntropyBackward) {
  auto head = make("cross_entropy");
  auto decoder_out = torch::randn({2, 3, 4, 8}, torch::requires_grad());  // [L, B, Q, D]
  Batch batch;
  batch.labels = torch::tensor({0, 4, 2}, torch::kLong);
  auto out = head->run(decoder_out, batch, true);
  ASSERT_EQ(out.outputs.at("logits").sizes(), (std::vector<int64_t>{3, 5}));
  ASSERT_EQ(out.losses.size(), 1u);
  auto loss = out.losses.at("loss_ce");
  EXPECT_TRUE(torch::isfinite(loss).item<bool>());
  loss.backward();
  // Only query 0 of the last layer is read.
  auto grad = decoder_out.grad();
  EXPECT_GT(grad[1].select(1, 0).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(grad[0].abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(grad[1].narrow(1, 1, 3).abs().sum().item<float>(), 0.0f);
  for (const auto& p : head->parameters()) EXPECT_TRUE(p.grad().defined());
}

TEST(MlpClassifier, MeanPoolReadsEveryQueryOfTheLastLayer) {
  auto head = MlpClassifierHead(
      MlpClassifierOptions(5).in_dim(8).hidden_dim(6).dropout(0.0).pool("mean"));
  auto decoder_out = torch::randn({2, 3, 4, 8}, torch::requires_grad());  // [L, B, Q, D]
  Batch batch;
  batch.labels = torch::tensor({0, 4, 2}, torch::kLong);
  auto out = head->run(decoder_out, batch, true);
  out.losses.at("loss_ce").backward();
  // The mean spreads the gradient equally over the queries of the last layer.
  auto grad = decoder_out.grad();
  EXPECT_EQ(grad[0].abs().sum().item<float>(), 0.0f);
  for (int64_t q = 1; q < 4; ++q) {
    EXPECT_TRUE(torch::allclose(grad[1].select(1, q), grad[1].select(1, 0))) << q;
  }
  EXPECT_GT(grad[1].abs().sum().item<float>(), 0.0f);
  // Same logits as the "first" head applied to the mean as a single query.
  auto first = MlpClassifierHead(MlpClassifierOptions(5).in_dim(8).hidden_dim(6).dropout(0.0));
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < head->parameters().size(); ++i) {
    first->parameters()[i].copy_(head->parameters()[i]);
  }
  auto mean_as_query = decoder_out.detach().mean(2, /*keepdim=*/true);  // [L, B, 1, D]
  EXPECT_TRUE(torch::allclose(first->run(mean_as_query, batch, false).outputs.at("logits"),
                              out.outputs.at("logits")));
}

TEST(MlpClassifier, CrossEntropyEqualsLogSoftmaxByHand) {
  auto head = make("cross_entropy");
  head->eval();
  auto decoder_out = torch::randn({1, 2, 1, 8});
  Batch batch;
  batch.labels = torch::tensor({1, 3}, torch::kLong);
  auto out = head->run(decoder_out, batch, true);
  auto log_probs = out.outputs.at("logits").log_softmax(-1);
  auto expected = -(log_probs[0][1] + log_probs[1][3]) / 2;
  EXPECT_NEAR(out.losses.at("loss_ce").item<float>(), expected.item<float>(), 1e-5);
}

TEST(MlpClassifier, SoftBceIsMeanTimesNumLabels) {
  auto head = make("soft_bce", 4);
  auto decoder_out = torch::randn({1, 2, 3, 8});
  Batch batch;
  batch.soft_labels = torch::tensor({{0.0f, 0.3f, 1.0f, 0.0f}, {0.6f, 0.0f, 0.0f, 0.9f}});
  auto out = head->run(decoder_out, batch, true);
  auto logits = out.outputs.at("logits");
  auto x = logits, y = batch.soft_labels;
  // BCE with logits written out: max(x,0) - x*y + log(1 + exp(-|x|)).
  auto elementwise = x.clamp_min(0) - x * y + torch::log1p(torch::exp(-x.abs()));
  EXPECT_NEAR(out.losses.at("loss_bce").item<float>(), (elementwise.mean() * 4).item<float>(), 1e-5);
  out.losses.at("loss_bce").backward();
}

TEST(MlpClassifier, PredictScoresAreProbabilities) {
  auto head = make("cross_entropy");
  auto decoder_out = torch::randn({1, 3, 2, 8});
  Batch batch;
  auto out = head->run(decoder_out, batch, false);
  EXPECT_TRUE(out.losses.empty());
  auto predictions = head->predict(out, batch);
  EXPECT_TRUE(torch::allclose(predictions.scores.sum(-1), torch::ones({3})));
  EXPECT_TRUE(torch::equal(predictions.labels, out.outputs.at("logits").argmax(-1)));

  auto bce = make("soft_bce");
  auto bce_out = bce->run(decoder_out, batch, false);
  EXPECT_TRUE(torch::allclose(bce->predict(bce_out, batch).scores, bce_out.outputs.at("logits").sigmoid()));
}

TEST(MlpClassifier, HiddenDimZeroMeansInDim) {
  MlpClassifierHead head(MlpClassifierOptions(3).in_dim(8));
  auto params = head->named_parameters();
  EXPECT_EQ(params["fc1.weight"].sizes(), (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(params["fc2.weight"].sizes(), (std::vector<int64_t>{3, 8}));
  EXPECT_EQ(params.size(), 6u);
}

TEST(MlpClassifier, OptionsJsonRoundTrip) {
  auto json = mlp_classifier_option_set().defaults();
  json["num_labels"] = 3129;
  json["loss"] = "soft_bce";
  auto options = mlp_classifier_options_from_json(json);
  EXPECT_EQ(options.num_labels(), 3129);
  EXPECT_EQ(to_json(options), json);
  EXPECT_EQ(to_json(mlp_classifier_options_from_json(nlohmann::json::object())),
            mlp_classifier_option_set().defaults());
}

TEST(MlpClassifier, RejectsUnknownLoss) {
  try {
    mlp_classifier_options_from_json({{"loss", "focal"}}, "x.json:/model/heads/vqa2");
    FAIL();
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("x.json:/model/heads/vqa2"), std::string::npos) << message;
    EXPECT_NE(message.find("\"focal\""), std::string::npos) << message;
    EXPECT_NE(message.find("soft_bce"), std::string::npos) << message;
  }
  try {
    mlp_classifier_options_from_json({{"pool", "max"}}, "x.json:/model/heads/vqa2");
    FAIL();
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("x.json:/model/heads/vqa2: pool is \"max\"; expected one of \"first\", \"mean\""),
              std::string::npos)
        << message;
  }
}

TEST(MlpClassifier, MissingOrBadTargetsAreDataErrors) {
  auto head = make("cross_entropy");
  auto decoder_out = torch::randn({1, 2, 1, 8});
  Batch batch;
  batch.task = "snli_ve";
  EXPECT_THROW(head->run(decoder_out, batch, true), DataError);
  batch.labels = torch::tensor({0, 5}, torch::kLong);
  try {
    head->run(decoder_out, batch, true);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("[0, 4]"), std::string::npos) << e.what();
  }
  auto bce = make("soft_bce");
  EXPECT_THROW(bce->run(decoder_out, batch, true), DataError);
}

}  // namespace
}  // namespace unitrain::heads
