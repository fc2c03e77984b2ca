// The text encoder's name maps for Hugging Face BERT and MMF's UniT.
#include <stdexcept>

#include "text_encoder.h"

namespace unitrain::text {

namespace {

// Hugging Face's BertModel names (modeling_bert.py) onto ours, after the prefix of the
// file's BertModel is gone. A BERT layer is our post-norm GELU encoder layer with q, k
// and v as one in_proj.
void add_bert(weights::WeightMap& map) {
  const std::string layer = "encoder.layer.{n}.";
  const std::string ours = "encoder.layers.{n}.";
  map.copy("embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight")
      .copy("embeddings.position_embeddings.weight", "embeddings.position_embeddings.weight")
      .copy("embeddings.token_type_embeddings.weight", "embeddings.token_type_embeddings.weight")
      .copy("embeddings.LayerNorm.*", "embeddings.layer_norm.*");
  for (const char* p : {"weight", "bias"}) {
    const std::string part = p;
    map.fuse({layer + "attention.self.query." + part, layer + "attention.self.key." + part,
              layer + "attention.self.value." + part},
             ours + "self_attn.in_proj_" + part);
  }
  map.copy(layer + "attention.output.dense.*", ours + "self_attn.out_proj.*")
      .copy(layer + "attention.output.LayerNorm.*", ours + "norm1.*")
      .copy(layer + "intermediate.dense.*", ours + "linear1.*")
      .copy(layer + "output.dense.*", ours + "linear2.*")
      .copy(layer + "output.LayerNorm.*", ours + "norm2.*")
      .ignore("embeddings.position_ids", "a buffer of 0..max_position-1")
      .ignore("pooler.*", "UniT reads the hidden states, not the pooled output")
      .ignore("cls.*", "the pre-training heads (masked LM, next sentence)")
      .rename_last("gamma", "weight")
      .rename_last("beta", "bias");
}

}  // namespace

std::vector<std::string> TextEncoderImpl::weight_formats() const { return {"hf_bert", "mmf_unit"}; }

weights::WeightMap TextEncoderImpl::weight_map(const weights::ImportContext& context) const {
  weights::WeightMap map;
  if (context.format == "hf_bert") {
    // BertModel files have no prefix, BertForPreTraining / BertFor* files "bert.".
    map.strip_prefix("bert.");
    add_bert(map);
    return map;
  }
  if (context.format == "mmf_unit") {
    // MMF's TransformerEncoder holds the Hugging Face model as "module" and the same
    // embeddings again as "embeddings".
    map.strip_prefix("bert_model.module.");
    add_bert(map);
    map.ignore("bert_model.embeddings.*", "bert_model.module.embeddings again")
        .copy("bert_projection.*", "projection.*")
        .copy("bert_pos_projection.*", "pos_projection.*")
        .custom({"task_embeddings_lang.weight"}, "task_embeddings.weight",
                weights::task_rows(context), "rows reordered from MMF's task_idx to ours");
    return map;
  }
  throw std::invalid_argument("text encoder: no weight map for format '" + context.format + "'");
}

}  // namespace unitrain::text
