// The `text` encoder plugin, created through the registry.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "plugins/plugin_loader.h"
#include "unitrain/encoder.h"
#include "unitrain/errors.h"

namespace {

using Json = nlohmann::json;

Json tiny(Json overrides = Json::object()) {
  Json o = {{"vocab_size", 50},      {"hidden_dim", 16}, {"num_layers", 2},
            {"num_heads", 4},        {"intermediate_dim", 32}, {"max_position", 20},
            {"dropout", 0.0},        {"attention_dropout", 0.0}, {"output_dim", 24}};
  o.update(overrides);
  return o;
}

std::shared_ptr<unitrain::Encoder> make(const Json& options, uint64_t seed = 0) {
  torch::manual_seed(seed);
  return unitrain::test::create_plugin<unitrain::Encoder>("unitrain_text", "encoder", "text",
                                                          options);
}

// Sample 0 has 3 real tokens then padding; sample 1 fills all `length` positions.
unitrain::Batch text_batch(int64_t length, int64_t garbage_id = 0) {
  unitrain::Batch batch;
  batch.task = "vqa2";
  batch.size = 2;
  batch.input_ids = torch::randint(1, 50, {2, length}, torch::kLong);
  batch.input_ids[0].slice(0, 3).fill_(garbage_id);
  batch.segment_ids = torch::zeros({2, length}, torch::kLong);
  batch.segment_ids[1].slice(0, 2) = 1;
  batch.text_mask = torch::zeros({2, length}, torch::kBool);
  batch.text_mask[0].slice(0, 3) = true;
  return batch;
}

TEST(TextEncoder, ShapesAndBackward) {
  auto encoder = make(tiny());
  EXPECT_EQ(encoder->modality(), "text");
  EXPECT_EQ(encoder->output_dim(), 24);
  auto batch = text_batch(7);
  auto out = encoder->encode(batch, 0);
  EXPECT_EQ(out.memory.sizes(), (std::vector<int64_t>{2, 7, 24}));
  EXPECT_EQ(out.pos.sizes(), (std::vector<int64_t>{2, 7, 24}));
  EXPECT_TRUE(torch::equal(out.mask, batch.text_mask));

  ((out.memory * torch::randn_like(out.memory)).sum() + (out.pos * out.pos).sum()).backward();
  for (const auto& p : encoder->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  auto names = encoder->named_parameters();
  for (const char* name : {"embeddings.word_embeddings.weight", "embeddings.layer_norm.weight",
                           "encoder.layers.1.linear1.weight", "projection.weight",
                           "pos_projection.weight"}) {
    EXPECT_TRUE(names.contains(name)) << name;
  }
}

TEST(TextEncoder, PaddingDoesNotChangeValidPositions) {
  auto encoder = make(tiny());
  encoder->eval();
  torch::NoGradGuard no_grad;
  auto batch = text_batch(7);
  auto reference = encoder->encode(batch, 0);

  // Garbage ids and segments in sample 0's padding, and 4 more padded positions.
  unitrain::Batch longer = batch;
  longer.input_ids = torch::cat({batch.input_ids, torch::randint(1, 50, {2, 4}, torch::kLong)}, 1);
  longer.input_ids[0].slice(0, 3).random_(1, 50);
  longer.segment_ids = torch::cat({batch.segment_ids, torch::ones({2, 4}, torch::kLong)}, 1);
  longer.text_mask = torch::ones({2, 11}, torch::kBool);
  longer.text_mask[0].slice(0, 0, 3) = false;
  longer.text_mask[1].slice(0, 0, 7) = false;
  auto out = encoder->encode(longer, 0);
  EXPECT_TRUE(torch::allclose(out.memory[0].slice(0, 0, 3), reference.memory[0].slice(0, 0, 3),
                              1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out.memory[1].slice(0, 0, 7), reference.memory[1], 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out.pos.slice(1, 0, 7), reference.pos, 1e-6, 1e-6));
}

TEST(TextEncoder, KeepOnlyClsGivesOnePosition) {
  auto batch = text_batch(7);
  auto full = make(tiny(), 3);
  auto cls = make(tiny({{"keep_only_cls", true}}), 3);
  full->eval();
  cls->eval();
  auto a = full->encode(batch, 0), b = cls->encode(batch, 0);
  EXPECT_EQ(b.memory.sizes(), (std::vector<int64_t>{2, 1, 24}));
  EXPECT_EQ(b.mask.sizes(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(b.pos.sizes(), (std::vector<int64_t>{2, 1, 24}));
  EXPECT_TRUE(torch::allclose(b.memory, a.memory.slice(1, 0, 1), 1e-5, 1e-5));
}

TEST(TextEncoder, TaskToken) {
  auto batch = text_batch(7);
  auto kept = make(tiny({{"task_token", true}, {"keep_task_token", true}, {"max_tasks", 8}}));
  kept->eval();
  auto out = kept->encode(batch, 2);
  EXPECT_EQ(out.memory.sizes(), (std::vector<int64_t>{2, 8, 24}));
  EXPECT_FALSE(out.mask.select(1, 0).any().item<bool>());
  EXPECT_TRUE(torch::equal(out.mask.slice(1, 1), batch.text_mask));
  EXPECT_EQ(out.pos.select(1, 0).abs().sum().item<double>(), 0.0);

  auto dropped = make(tiny({{"task_token", true}, {"max_tasks", 8}}));
  dropped->eval();
  auto a = dropped->encode(batch, 0), b = dropped->encode(batch, 5);
  EXPECT_EQ(a.memory.sizes(), (std::vector<int64_t>{2, 7, 24}));
  EXPECT_FALSE(torch::allclose(a.memory, b.memory));
}

TEST(TextEncoder, TokenizerSetsVocabularySize) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("unitrain_text_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto vocab = (dir / "vocab.txt").string();
  {
    std::ofstream out(vocab);
    for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat"}) out << t << "\n";
  }
  auto encoder = make(tiny({{"tokenizer", {{"vocab", vocab}}}}));
  EXPECT_EQ(encoder->named_parameters()["embeddings.word_embeddings.weight"].size(0), 7);
  EXPECT_THROW(make(tiny({{"tokenizer", {{"vocab", (dir / "missing.txt").string()}}}})),
               unitrain::Error);
  std::filesystem::remove_all(dir);
}

TEST(TextEncoder, TooLongInputIsRejected) {
  auto encoder = make(tiny());
  try {
    encoder->encode(text_batch(21), 0);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_position 20"), std::string::npos) << e.what();
  }
}

TEST(TextEncoder, FullSizeIsBertBase) {
  auto encoder = make(Json::object());
  int64_t bert = 0;
  for (const auto& p : encoder->named_parameters()) {
    if (p.key().rfind("embeddings.", 0) == 0 || p.key().rfind("encoder.", 0) == 0) {
      bert += p.value().numel();
    }
  }
  // bert-base-uncased without its pooler (590,592 parameters).
  EXPECT_EQ(bert, 109482240 - 590592);
}

}  // namespace
