// DETR-style transformer layers, stacks and the sine position embedding.
#include <cmath>
#include <functional>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "unitrain/nn/batched_matmul.h"
#include "unitrain/nn/transformer.h"

namespace nn = unitrain::nn;

namespace {

nn::TransformerLayerOptions tiny_layer() {
  return nn::TransformerLayerOptions(16, 4).dim_feedforward(32).dropout(0.0);
}

void expect_all_grads(torch::nn::Module& module) {
  for (const auto& p : module.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    // DETR's zero target: the first self-attention sees all-zero values at init
    // (zero biases), so these weights get no gradient on the first step.
    if (p.key() == "layers.0.self_attn.in_proj_weight" ||
        p.key() == "layers.0.self_attn.out_proj.weight" || p.key() == "layers.0.norm1.weight") {
      continue;
    }
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(MultiheadAttention, MatchesLibTorchWithPaddingMask) {
  torch::manual_seed(0);
  nn::MultiheadAttention ours(nn::MultiheadAttentionOptions(16, 4));
  torch::nn::MultiheadAttention reference(torch::nn::MultiheadAttentionOptions(16, 4));
  {
    torch::NoGradGuard no_grad;
    reference->in_proj_weight.copy_(ours->in_proj_weight);
    reference->in_proj_bias.copy_(ours->in_proj_bias);
    reference->out_proj->weight.copy_(ours->out_proj->weight);
    reference->out_proj->bias.copy_(ours->out_proj->bias);
  }
  auto q = torch::randn({5, 2, 16}), k = torch::randn({7, 2, 16}), v = torch::randn({7, 2, 16});
  auto mask = torch::zeros({2, 7}, torch::kBool);
  mask[1].slice(0, 4) = true;
  auto expected = std::get<0>(reference->forward(q, k, v, mask));
  EXPECT_TRUE(torch::allclose(ours->forward(q, k, v, mask), expected, 1e-5, 1e-6));
  // The fused q/k projection of self-attention gives the same result.
  auto x = torch::randn({7, 2, 16}), pos = torch::randn({7, 2, 16});
  EXPECT_TRUE(torch::allclose(ours->forward_self(x + pos, x, mask),
                              ours->forward(x + pos, x + pos, x, mask), 1e-5, 1e-6));
}

TEST(MultiheadAttention, NamesMatchPyTorch) {
  nn::MultiheadAttention attn(nn::MultiheadAttentionOptions(8, 2));
  auto params = attn->named_parameters();
  for (const char* name : {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}) {
    EXPECT_TRUE(params.contains(name)) << name;
  }
  EXPECT_THROW(nn::MultiheadAttention(nn::MultiheadAttentionOptions(10, 4)), c10::Error);
}

TEST(TransformerEncoderLayer, ShapeAndBackward) {
  torch::manual_seed(0);
  nn::TransformerEncoderLayer layer(tiny_layer());
  auto src = torch::randn({6, 3, 16}), pos = torch::randn({6, 3, 16});
  auto out = layer->forward(src, {}, pos);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{6, 3, 16}));
  (out * torch::randn_like(out)).sum().backward();
  expect_all_grads(*layer);
}

TEST(TransformerEncoder, PaddedPositionsDoNotChangeValidOutputs) {
  torch::manual_seed(0);
  nn::TransformerEncoder encoder(nn::TransformerEncoderOptions(tiny_layer(), 2));
  encoder->eval();
  auto src = torch::randn({6, 2, 16}), pos = torch::randn({6, 2, 16});
  auto mask = torch::zeros({2, 6}, torch::kBool);
  mask[0].slice(0, 4) = true;  // sample 0 has 4 valid positions
  auto out = encoder->forward(src, mask, pos);

  auto garbage = src.clone(), garbage_pos = pos.clone();
  garbage.slice(0, 4).select(1, 0).normal_(0, 100);
  garbage_pos.slice(0, 4).select(1, 0).normal_(0, 100);
  auto out2 = encoder->forward(garbage, mask, garbage_pos);
  EXPECT_TRUE(torch::allclose(out.slice(0, 0, 4).select(1, 0), out2.slice(0, 0, 4).select(1, 0),
                              1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out.select(1, 1), out2.select(1, 1), 1e-5, 1e-5));

  // Sample 0 alone and unpadded gives the same valid outputs.
  auto alone = encoder->forward(src.slice(0, 0, 4).slice(1, 0, 1), {},
                                pos.slice(0, 0, 4).slice(1, 0, 1));
  EXPECT_TRUE(torch::allclose(alone.select(1, 0), out.slice(0, 0, 4).select(1, 0), 1e-5, 1e-5));
}

TEST(TransformerEncoder, FinalNormIsOptional) {
  nn::TransformerEncoder plain(nn::TransformerEncoderOptions(tiny_layer(), 2));
  nn::TransformerEncoder normed(nn::TransformerEncoderOptions(tiny_layer(), 2).final_norm(true));
  EXPECT_FALSE(plain->named_parameters().contains("norm.weight"));
  EXPECT_TRUE(normed->named_parameters().contains("norm.weight"));
  EXPECT_TRUE(plain->named_parameters().contains("layers.1.linear2.weight"));
}

TEST(TransformerDecoder, ReturnsEveryLayerAndRespectsMemoryPadding) {
  torch::manual_seed(0);
  nn::TransformerDecoder decoder(nn::TransformerDecoderOptions(tiny_layer(), 3));
  auto tgt = torch::zeros({4, 2, 16}), query_pos = torch::randn({4, 2, 16});
  auto memory = torch::randn({5, 2, 16}), pos = torch::randn({5, 2, 16});
  auto mask = torch::zeros({2, 5}, torch::kBool);
  mask[1].slice(0, 3) = true;
  auto out = decoder->forward(tgt, memory, mask, pos, query_pos);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 4, 2, 16}));
  (out * torch::randn_like(out)).sum().backward();
  expect_all_grads(*decoder);

  decoder->eval();
  torch::NoGradGuard no_grad;
  auto reference = decoder->forward(tgt, memory, mask, pos, query_pos);
  auto garbage = memory.clone();
  garbage.slice(0, 3).select(1, 1).fill_(1e3);
  auto out2 = decoder->forward(tgt, garbage, mask, pos, query_pos);
  EXPECT_TRUE(torch::allclose(reference, out2, 1e-5, 1e-5));

  // Without intermediates: only the last layer, identical to the last intermediate.
  nn::TransformerDecoder last_only(
      nn::TransformerDecoderOptions(tiny_layer(), 3).return_intermediate(false));
  last_only->eval();
  for (auto& p : last_only->named_parameters()) {
    p.value().copy_(decoder->named_parameters()[p.key()]);
  }
  auto last = last_only->forward(tgt, memory, mask, pos, query_pos);
  EXPECT_EQ(last.sizes(), (std::vector<int64_t>{1, 4, 2, 16}));
  EXPECT_TRUE(torch::allclose(last[0], reference[2], 1e-6, 1e-6));
}

TEST(TransformerLayer, UnknownActivationIsRejected) {
  EXPECT_THROW(nn::TransformerEncoderLayer(tiny_layer().activation("swish")), c10::Error);
  EXPECT_NO_THROW(nn::TransformerEncoderLayer(tiny_layer().activation("gelu")));
}

TEST(PositionEmbeddingSine, KnownValues) {
  auto mask = torch::zeros({1, 2, 3}, torch::kBool);
  auto pos = nn::position_embedding_sine(mask, nn::PositionEmbeddingSineOptions().num_pos_feats(4));
  ASSERT_EQ(pos.sizes(), (std::vector<int64_t>{1, 8, 2, 3}));
  const double two_pi = 2 * 3.14159265358979323846, eps = 1e-6;
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      const double y = (i + 1) / (2 + eps) * two_pi, x = (j + 1) / (3 + eps) * two_pi;
      // Frequencies 10000^(2*floor(k/2)/4) = 1, 1, 100, 100.
      const double expected[8] = {std::sin(y), std::cos(y), std::sin(y / 100), std::cos(y / 100),
                                  std::sin(x), std::cos(x), std::sin(x / 100), std::cos(x / 100)};
      for (int64_t c = 0; c < 8; ++c) {
        EXPECT_NEAR(pos[0][c][i][j].item<double>(), expected[c], 1e-5) << c << " " << i << " " << j;
      }
    }
  }
}

TEST(PositionEmbeddingSine, ValidPositionsIgnorePadding) {
  auto small = nn::position_embedding_sine(torch::zeros({1, 3, 4}, torch::kBool));
  auto mask = torch::zeros({1, 5, 7}, torch::kBool);
  mask.slice(1, 3) = true;
  mask.slice(2, 4) = true;
  auto padded = nn::position_embedding_sine(mask);
  EXPECT_EQ(padded.size(1), 256);
  EXPECT_TRUE(torch::allclose(padded.slice(2, 0, 3).slice(3, 0, 4), small, 1e-6, 1e-6));
}

// batched_matmul against torch::bmm on every operand layout attention produces:
// contiguous, transposed views, a broadcast (stride-0) batch, strided slices, a head
// split, and size-1 dimensions; values and the gradients of both leaves.
TEST(BatchedMatmul, MatchesBmmOnEveryLayoutWithGradients) {
  using View = std::function<torch::Tensor(const torch::Tensor&)>;
  const View same = [](const torch::Tensor& t) { return t; };
  const View transposed = [](const torch::Tensor& t) { return t.transpose(1, 2); };
  struct Case {
    const char* name;
    std::vector<int64_t> a_leaf, b_leaf;
    View a_view, b_view;
  };
  const std::vector<Case> cases = {
      {"contiguous", {6, 5, 7}, {6, 7, 4}, same, same},
      {"b transposed", {6, 5, 7}, {6, 4, 7}, same, transposed},
      {"a transposed", {6, 7, 5}, {6, 7, 4}, transposed, same},
      {"both transposed", {6, 7, 5}, {6, 4, 7}, transposed, transposed},
      {"broadcast batch", {1, 5, 7}, {6, 7, 4},
       [](const torch::Tensor& t) { return t.expand({6, 5, 7}); }, same},
      {"strided slices", {6, 5, 14}, {6, 14, 4},
       [](const torch::Tensor& t) { return t.slice(2, 0, 14, 2); },
       [](const torch::Tensor& t) { return t.slice(1, 0, 14, 2); }},
      {"head split", {5, 6, 8}, {12, 4, 5},
       [](const torch::Tensor& t) { return t.view({5, 12, 4}).transpose(0, 1); }, same},
      {"k = 1", {6, 5, 1}, {6, 1, 4}, same, same},
      {"n = 1", {6, 5, 7}, {6, 1, 7}, same, transposed},
      {"m = 1", {6, 1, 7}, {6, 7, 4}, same, same},
  };
  torch::manual_seed(3);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto a = torch::randn(c.a_leaf), b = torch::randn(c.b_leaf);
    auto a_ref = a.clone().requires_grad_(), b_ref = b.clone().requires_grad_();
    auto a_new = a.clone().requires_grad_(), b_new = b.clone().requires_grad_();
    auto expected = torch::bmm(c.a_view(a_ref), c.b_view(b_ref));
    auto actual = nn::batched_matmul(c.a_view(a_new), c.b_view(b_new));
    ASSERT_EQ(actual.sizes(), expected.sizes());
    EXPECT_TRUE(torch::allclose(actual, expected, 1e-5, 1e-5));
    const auto weight = torch::randn_like(expected);
    (expected * weight).sum().backward();
    (actual * weight).sum().backward();
    EXPECT_TRUE(torch::allclose(a_new.grad(), a_ref.grad(), 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(b_new.grad(), b_ref.grad(), 1e-5, 1e-5));
  }
}

TEST(BatchedMatmul, SecondOrderGradientsMatchBmm) {
  torch::manual_seed(4);
  auto a = torch::randn({3, 4, 5}, torch::requires_grad());
  auto b = torch::randn({3, 6, 5}, torch::requires_grad());  // used transposed
  auto a_ref = a.detach().clone().requires_grad_();
  auto b_ref = b.detach().clone().requires_grad_();
  const auto weight = torch::randn({3, 4, 6});
  auto out = (nn::batched_matmul(a, b.transpose(1, 2)) * weight).sum();
  auto ref = (torch::bmm(a_ref, b_ref.transpose(1, 2)) * weight).sum();
  auto grads = torch::autograd::grad({out}, {a, b}, {}, /*retain_graph=*/true,
                                     /*create_graph=*/true);
  auto grads_ref = torch::autograd::grad({ref}, {a_ref, b_ref}, {}, true, true);
  EXPECT_TRUE(torch::allclose(grads[0], grads_ref[0], 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(grads[1], grads_ref[1], 1e-5, 1e-5));
  // d/db of sum(grad_a^2): the backward itself is differentiable.
  auto second = torch::autograd::grad({grads[0].pow(2).sum()}, {b});
  auto second_ref = torch::autograd::grad({grads_ref[0].pow(2).sum()}, {b_ref});
  EXPECT_TRUE(torch::allclose(second[0], second_ref[0], 1e-4, 1e-4));
}

TEST(BatchedMatmul, OtherDtypesEmptyShapesAndBadShapes) {
  auto a = torch::randn({2, 3, 4}, torch::kFloat64), b = torch::randn({2, 4, 5}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(nn::batched_matmul(a, b), torch::bmm(a, b)));
  auto empty = nn::batched_matmul(torch::randn({2, 3, 0}), torch::randn({2, 0, 5}));
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{2, 3, 5}));
  EXPECT_EQ(empty.abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(nn::batched_matmul(torch::randn({0, 3, 4}), torch::randn({0, 4, 5})).sizes(),
            (std::vector<int64_t>{0, 3, 5}));
  try {
    nn::batched_matmul(torch::randn({2, 3, 4}), torch::randn({2, 5, 4}));
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected [G, M, K] and [G, K, N]"), std::string::npos)
        << e.what();
  }
}

}  // namespace

namespace {

// Copies every parameter of `from` into the same-named parameter of `to` (post-norm
// DETR layers and LibTorch's layers share PyTorch's names).
void copy_parameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto target = to.named_parameters();
  for (const auto& p : from.named_parameters()) {
    ASSERT_TRUE(target.contains(p.key())) << p.key();
    target[p.key()].copy_(p.value());
  }
  EXPECT_EQ(target.size(), from.named_parameters().size());
}

}  // namespace

TEST(TransformerEncoderLayer, MatchesLibTorchWithoutPositions) {
  torch::manual_seed(1);
  nn::TransformerEncoderLayer ours(tiny_layer());
  torch::nn::TransformerEncoderLayer reference(
      torch::nn::TransformerEncoderLayerOptions(16, 4).dim_feedforward(32).dropout(0.0));
  copy_parameters(*ours, *reference);
  auto src = torch::randn({6, 3, 16});
  auto mask = torch::zeros({3, 6}, torch::kBool);
  mask[2].slice(0, 4) = true;
  auto expected = reference->forward(src, {}, mask);
  auto got = ours->forward(src, mask);
  EXPECT_LE((got - expected).abs().max().item<double>(), 1e-5);
}

TEST(TransformerDecoderLayer, MatchesLibTorchWithoutPositions) {
  torch::manual_seed(2);
  nn::TransformerDecoderLayer ours(tiny_layer());
  torch::nn::TransformerDecoderLayer reference(
      torch::nn::TransformerDecoderLayerOptions(16, 4).dim_feedforward(32).dropout(0.0));
  copy_parameters(*ours, *reference);
  auto tgt = torch::randn({4, 3, 16}), memory = torch::randn({7, 3, 16});
  auto mask = torch::zeros({3, 7}, torch::kBool);
  mask[1].slice(0, 5) = true;
  auto expected = reference->forward(tgt, memory, {}, {}, {}, mask);
  auto got = ours->forward(tgt, memory, mask);
  EXPECT_LE((got - expected).abs().max().item<double>(), 1e-5);
}

// DETR's layers add the position embedding to queries and keys, never to values: a
// reference written with LibTorch's attention and the layer's own sub-modules.
TEST(TransformerLayers, PositionsReachQueriesAndKeysOnly) {
  torch::manual_seed(3);
  auto attention = [](nn::MultiheadAttentionImpl& ours, const torch::Tensor& q,
                      const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& mask) {
    torch::nn::MultiheadAttention reference(torch::nn::MultiheadAttentionOptions(16, 4));
    torch::NoGradGuard no_grad;
    reference->in_proj_weight.copy_(ours.in_proj_weight);
    reference->in_proj_bias.copy_(ours.in_proj_bias);
    reference->out_proj->weight.copy_(ours.out_proj->weight);
    reference->out_proj->bias.copy_(ours.out_proj->bias);
    return std::get<0>(reference->forward(q, k, v, mask.defined() ? mask : torch::Tensor()));
  };
  auto ffn = [](torch::nn::Linear l1, torch::nn::Linear l2, const torch::Tensor& x) {
    return l2(torch::relu(l1(x)));
  };
  {
    nn::TransformerEncoderLayer layer(tiny_layer());
    auto src = torch::randn({6, 2, 16}), pos = torch::randn({6, 2, 16});
    auto mask = torch::zeros({2, 6}, torch::kBool);
    mask[0].slice(0, 5) = true;
    torch::NoGradGuard no_grad;
    auto x = layer->norm1(src + attention(*layer->self_attn, src + pos, src + pos, src, mask));
    auto expected = layer->norm2(x + ffn(layer->linear1, layer->linear2, x));
    const double diff = (layer->forward(src, mask, pos) - expected).abs().max().item<double>();
    EXPECT_LE(diff, 1e-5);
  }
  {
    nn::TransformerDecoderLayer layer(tiny_layer());
    auto tgt = torch::randn({4, 2, 16}), query_pos = torch::randn({4, 2, 16});
    auto memory = torch::randn({7, 2, 16}), pos = torch::randn({7, 2, 16});
    auto mask = torch::zeros({2, 7}, torch::kBool);
    mask[1].slice(0, 3) = true;
    torch::NoGradGuard no_grad;
    auto x = layer->norm1(tgt + attention(*layer->self_attn, tgt + query_pos, tgt + query_pos, tgt, {}));
    x = layer->norm2(x + attention(*layer->multihead_attn, x + query_pos, memory + pos, memory, mask));
    auto expected = layer->norm3(x + ffn(layer->linear1, layer->linear2, x));
    const double diff =
        (layer->forward(tgt, memory, mask, pos, query_pos) - expected).abs().max().item<double>();
    EXPECT_LE(diff, 1e-5);
  }
}
