// Small configurations of the real model plugins, for tests that train on the toy
// suite: a ResNet-18 of one block per stage up to layer3 (width 8) under a one-layer
// image transformer, a one-layer BERT and a UniT decoder, each `d` wide (heads d / 8,
// feed-forward 2d). `extra` keys are set over them (dropout, layers, ...).
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace unitrain::test {

inline nlohmann::json with(nlohmann::json block, const nlohmann::json& extra) {
  block.update(extra);
  return block;
}

inline nlohmann::json tiny_image_encoder(int64_t d, const nlohmann::json& extra = nlohmann::json::object()) {
  return with({{"type", "image"}, {"depth", 18}, {"width", 8}, {"layers", {1, 1, 1, 1}},
               {"return_layer", "layer3"}, {"hidden_dim", 16}, {"num_layers", 1}, {"num_heads", 2},
               {"dim_feedforward", 32}, {"output_dim", d}},
              extra);
}

// `tokenizer`: the tokenizer block ({"vocab": ...}) whose vocabulary sizes the embedding.
inline nlohmann::json tiny_text_encoder(const nlohmann::json& tokenizer, int64_t d,
                                        const nlohmann::json& extra = nlohmann::json::object()) {
  return with({{"type", "text"}, {"tokenizer", tokenizer}, {"hidden_dim", d}, {"num_layers", 1},
               {"num_heads", d / 8}, {"intermediate_dim", 2 * d}, {"max_position", 32}, {"output_dim", d}},
              extra);
}

inline nlohmann::json tiny_decoder(int64_t d, const nlohmann::json& extra = nlohmann::json::object()) {
  return with({{"type", "unit_decoder"}, {"d_model", d}, {"num_layers", 1}, {"num_heads", d / 8},
               {"dim_feedforward", 2 * d}},
              extra);
}

}  // namespace unitrain::test
