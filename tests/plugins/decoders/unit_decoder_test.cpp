// The `unit_decoder` plugin, created through the registry.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "plugins/plugin_loader.h"
#include "unitrain/decoder.h"
#include "unitrain/errors.h"
#include "unitrain/nn/transformer.h"

namespace {

using Json = nlohmann::json;

Json tiny(Json overrides = Json::object()) {
  Json o = {{"d_model", 16}, {"num_layers", 3}, {"num_heads", 4}, {"dim_feedforward", 32},
            {"dropout", 0.0}};
  o.update(overrides);
  return o;
}

std::shared_ptr<unitrain::Decoder> make(const Json& options, uint64_t seed = 0) {
  torch::manual_seed(seed);
  return unitrain::test::create_plugin<unitrain::Decoder>("unitrain_unit_decoder", "decoder",
                                                          "unit_decoder", options);
}

unitrain::EncoderOutput memory(int64_t b, int64_t s, int64_t d) {
  unitrain::EncoderOutput m;
  m.memory = torch::randn({b, s, d});
  m.pos = torch::randn({b, s, d});
  m.mask = torch::zeros({b, s}, torch::kBool);
  return m;
}

// The message of the error that creating a decoder from tiny(overrides) throws.
std::string creation_error(const Json& overrides) {
  try {
    make(tiny(overrides));
  } catch (const unitrain::Error& e) {
    return e.what();
  }
  return "no error";
}

// The message of the ConfigError that decoding `task` throws.
std::string decode_error(const std::shared_ptr<unitrain::Decoder>& decoder,
                         const std::string& task) {
  try {
    decoder->decode(task, memory(1, 3, 16));
  } catch (const unitrain::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

// The target starts at zeros and attention biases start at zero, so the first
// layer's self-attention sees all-zero values at initialization: its in_proj and
// out_proj weights and norm1's weight get no gradient on the first step (as in DETR).
bool zero_at_init(const std::string& name) {
  return name == "decoder.layers.0.self_attn.in_proj_weight" ||
         name == "decoder.layers.0.self_attn.out_proj.weight" ||
         name == "decoder.layers.0.norm1.weight";
}

TEST(UnitDecoder, ShapesAndBackward) {
  auto decoder = make(tiny());
  EXPECT_EQ(decoder->d_model(), 16);
  decoder->add_task("vqa2", 5);
  decoder->add_task("coco", 7);
  auto m = memory(2, 9, 16);
  m.memory.requires_grad_(true);
  auto out = decoder->decode("vqa2", m);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 2, 5, 16}));
  EXPECT_EQ(decoder->decode("coco", m).size(2), 7);

  (out * torch::randn_like(out)).sum().backward();
  for (const auto& p : decoder->named_parameters()) {
    if (p.key() == "queries.coco.weight") {
      EXPECT_FALSE(p.value().grad().defined());
      continue;
    }
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    if (zero_at_init(p.key())) continue;
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  EXPECT_GT(m.memory.grad().abs().sum().item<double>(), 0.0);
}

TEST(UnitDecoder, StateDictNamesAreStable) {
  auto decoder = make(tiny());
  decoder->add_task("vqa2", 5);
  decoder->add_task("coco", 7);
  std::vector<std::string> names;
  for (const auto& p : decoder->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names.front(), "decoder.layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(names[names.size() - 2], "queries.vqa2.weight");
  EXPECT_EQ(names.back(), "queries.coco.weight");
  auto params = decoder->named_parameters();
  EXPECT_TRUE(params.contains("decoder.layers.2.multihead_attn.out_proj.weight"));
  EXPECT_TRUE(params.contains("decoder.norm.weight"));
  EXPECT_EQ(params["queries.coco.weight"].sizes(), (std::vector<int64_t>{7, 16}));
}

TEST(UnitDecoder, PaddedMemoryIsIgnored) {
  auto decoder = make(tiny());
  decoder->add_task("vqa2", 4);
  decoder->eval();
  torch::NoGradGuard no_grad;
  auto m = memory(2, 6, 16);
  m.mask[0].slice(0, 4) = true;
  auto reference = decoder->decode("vqa2", m);

  auto garbage = m;
  garbage.memory = m.memory.clone();
  garbage.pos = m.pos.clone();
  garbage.memory[0].slice(0, 4).normal_(0, 100);
  garbage.pos[0].slice(0, 4).normal_(0, 100);
  EXPECT_TRUE(torch::allclose(decoder->decode("vqa2", garbage), reference, 1e-5, 1e-5));

  // Sample 0 alone with only its 4 valid positions.
  unitrain::EncoderOutput alone;
  alone.memory = m.memory.slice(0, 0, 1).slice(1, 0, 4);
  alone.pos = m.pos.slice(0, 0, 1).slice(1, 0, 4);
  EXPECT_TRUE(torch::allclose(decoder->decode("vqa2", alone), reference.slice(1, 0, 1), 1e-5, 1e-5));
}

TEST(UnitDecoder, LastLayerOnly) {
  auto all = make(tiny(), 7);
  auto last = make(tiny({{"return_intermediate", false}}), 7);
  all->add_task("t", 3);
  last->add_task("t", 3);
  all->eval();
  last->eval();
  last->named_parameters()["queries.t.weight"].detach().copy_(
      all->named_parameters()["queries.t.weight"].detach());
  auto m = memory(1, 4, 16);
  auto a = all->decode("t", m), b = last->decode("t", m);
  EXPECT_EQ(b.sizes(), (std::vector<int64_t>{1, 1, 3, 16}));
  EXPECT_TRUE(torch::allclose(b[0], a[2], 1e-6, 1e-6));
}

TEST(UnitDecoder, CloneKeepsQueryTables) {
  auto decoder = make(tiny());
  decoder->add_task("vqa2", 4);
  decoder->eval();
  auto copy = std::dynamic_pointer_cast<unitrain::Decoder>(decoder->clone());
  ASSERT_TRUE(copy);
  copy->eval();
  auto m = memory(2, 5, 16);
  EXPECT_TRUE(torch::allclose(copy->decode("vqa2", m), decoder->decode("vqa2", m), 1e-6, 1e-6));
}

TEST(UnitDecoder, TaskErrors) {
  auto decoder = make(tiny());
  decoder->add_task("vqa2", 4);
  EXPECT_NO_THROW(decoder->add_task("vqa2", 4));
  EXPECT_THROW(decoder->add_task("vqa2", 5), unitrain::ConfigError);
  EXPECT_THROW(decoder->add_task("a.b", 5), unitrain::ConfigError);
  try {
    decoder->decode("coco", memory(1, 3, 16));
    FAIL() << "expected ConfigError";
  } catch (const unitrain::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("vqa2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(decoder->decode("vqa2", memory(1, 3, 8)), c10::Error);
  EXPECT_THROW(make(tiny({{"num_heads", 5}})), unitrain::Error);
  EXPECT_THROW(make(tiny({{"activation", "swish"}})), unitrain::Error);
}

TEST(UnitDecoder, BorrowedQueriesFollowTheOwnAndGetNoGradient) {
  auto decoder = make(tiny({{"borrow_queries", {{"vqa2", "coco"}}}}));
  decoder->add_task("vqa2", 2);
  decoder->add_task("coco", 3);
  auto m = memory(2, 9, 16);
  auto out = decoder->decode("vqa2", m);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 2, 5, 16}));
  EXPECT_EQ(decoder->decode("coco", m).size(2), 3);  // coco borrows nothing

  // Exactly a decode of one table holding vqa2's queries, then coco's.
  auto both = make(tiny());
  both->add_task("both", 5);
  {
    torch::NoGradGuard no_grad;
    auto from = decoder->named_parameters();
    auto to = both->named_parameters();
    for (auto& p : to) {
      if (p.key() == "queries.both.weight") {
        p.value().copy_(torch::cat({from["queries.vqa2.weight"], from["queries.coco.weight"]}));
      } else {
        p.value().copy_(from[p.key()]);
      }
    }
  }
  EXPECT_TRUE(torch::allclose(both->decode("both", m), out, 1e-6, 1e-6));
  // The borrowed queries change what the own ones compute (through self-attention).
  auto own = make(tiny());
  own->add_task("vqa2", 2);
  {
    torch::NoGradGuard no_grad;
    auto from = decoder->named_parameters();
    for (auto& p : own->named_parameters()) p.value().copy_(from[p.key()]);
  }
  EXPECT_FALSE(torch::allclose(own->decode("vqa2", m), out.narrow(2, 0, 2), 1e-4, 1e-4));

  // No gradient reaches the borrowed table from the borrowing task.
  out.sum().backward();
  auto params = decoder->named_parameters();
  EXPECT_GT(params["queries.vqa2.weight"].grad().abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(params["queries.coco.weight"].grad().defined());
}

TEST(UnitDecoder, BorrowQueriesErrors) {
  const auto message = [](const Json& borrow) {
    return creation_error({{"borrow_queries", borrow}});
  };
  EXPECT_NE(message({{"vqa2", "vqa2"}})
                .find("borrow_queries/vqa2: a task cannot borrow its own queries"),
            std::string::npos);
  EXPECT_NE(message({{"vqa2", 3}})
                .find("borrow_queries/vqa2: expected the name of another task, found 3"),
            std::string::npos);
  EXPECT_NE(message(Json::array()).find("borrow_queries: expected an object"), std::string::npos);

  auto decoder = make(tiny({{"borrow_queries", {{"vqa2", "coco"}}}}));
  decoder->add_task("vqa2", 2);
  const auto no_lender = decode_error(decoder, "vqa2");
  EXPECT_NE(no_lender.find("borrow_queries/vqa2: task \"coco\" has no queries in this decoder"),
            std::string::npos)
      << no_lender;
  // A misspelt borrower fails too, whichever task is decoded.
  auto typo = make(tiny({{"borrow_queries", {{"vqa", "coco"}}}}));
  typo->add_task("vqa2", 2);
  typo->add_task("coco", 3);
  const auto misspelt = decode_error(typo, "coco");
  EXPECT_NE(misspelt.find("borrow_queries/vqa: task \"vqa\" has no queries"), std::string::npos)
      << misspelt;
}

TEST(UnitDecoder, FusionLayersEncodeTheMemoryOfTheListedTasksOnly) {
  auto decoder = make(tiny({{"fusion_layers", 2}, {"fusion_tasks", {"vqa2"}}}));
  decoder->add_task("vqa2", 2);
  decoder->add_task("coco", 3);
  auto m = memory(2, 9, 16);
  m.mask.index_put_({1, torch::indexing::Slice(6)}, true);  // sample 1: 3 padded positions

  // The same decoder without fusion, and the fusion stack on its own, with equal weights.
  auto plain = make(tiny());
  plain->add_task("vqa2", 2);
  plain->add_task("coco", 3);
  auto layer = unitrain::nn::TransformerLayerOptions(16, 4).dim_feedforward(32).dropout(0.0);
  unitrain::nn::TransformerEncoder fusion(unitrain::nn::TransformerEncoderOptions(layer, 2));
  {
    torch::NoGradGuard no_grad;
    auto from = decoder->named_parameters();
    for (auto& p : plain->named_parameters()) p.value().copy_(from[p.key()]);
    for (auto& p : fusion->named_parameters()) p.value().copy_(from["fusion." + p.key()]);
  }
  EXPECT_EQ(decoder->named_parameters().size(),
            plain->named_parameters().size() + fusion->named_parameters().size());

  unitrain::EncoderOutput fused = m;
  fused.memory = fusion(m.memory.transpose(0, 1), m.mask, m.pos.transpose(0, 1)).transpose(0, 1);
  auto out = decoder->decode("vqa2", m);
  EXPECT_TRUE(torch::allclose(out, plain->decode("vqa2", fused), 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(out, plain->decode("vqa2", m), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(decoder->decode("coco", m), plain->decode("coco", m), 1e-6, 1e-6));

  // Padded positions change nothing, in the fusion layers as in the decoder.
  auto changed = m;
  changed.memory = m.memory.clone();
  changed.memory.index_put_({1, torch::indexing::Slice(6)}, 100.0);
  EXPECT_TRUE(torch::allclose(decoder->decode("vqa2", changed), out, 1e-5, 1e-5));

  // The fusion layers learn from the fused task and not from the others.
  const auto fusion_grad = [&](const std::string& task) {
    decoder->zero_grad();
    decoder->decode(task, m).sum().backward();
    double total = 0;
    for (const auto& p : decoder->named_parameters()) {
      if (p.key().rfind("fusion.", 0) == 0 && p.value().grad().defined()) {
        total += p.value().grad().abs().sum().item<double>();
      }
    }
    return total;
  };
  EXPECT_GT(fusion_grad("vqa2"), 0.0);
  EXPECT_EQ(fusion_grad("coco"), 0.0);
}

TEST(UnitDecoder, FusionErrors) {
  const auto message = creation_error;
  EXPECT_NE(message({{"fusion_layers", 1}}).find(
                "fusion_tasks: fusion_layers is 1 but no task is listed to use them"),
            std::string::npos);
  EXPECT_NE(message({{"fusion_tasks", {"vqa2"}}}).find(
                "fusion_layers: fusion_tasks lists tasks but fusion_layers is 0"),
            std::string::npos);
  EXPECT_NE(message({{"fusion_layers", -1}, {"fusion_tasks", {"vqa2"}}})
                .find("fusion_layers: must be >= 0"),
            std::string::npos);
  const auto not_a_list = message({{"fusion_layers", 1}, {"fusion_tasks", "vqa2"}});
  EXPECT_NE(not_a_list.find("fusion_tasks"), std::string::npos) << not_a_list;
  EXPECT_NE(not_a_list.find("\"vqa2\""), std::string::npos) << not_a_list;

  auto typo = make(tiny({{"fusion_layers", 1}, {"fusion_tasks", {"vqa"}}}));
  typo->add_task("vqa2", 2);
  const auto misspelt = decode_error(typo, "vqa2");
  EXPECT_NE(misspelt.find("fusion_tasks: task \"vqa\" has no queries in this decoder"),
            std::string::npos)
      << misspelt;
}

}  // namespace
