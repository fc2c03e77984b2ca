#include "unit_decoder.h"

#include <algorithm>

#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/options.h"
#include "unitrain/plugin.h"

namespace unitrain::decoders {
namespace {

using options::key_path;

// borrow_queries: {"task": "another task"}, with messages that say what a value means.
void check_borrowing(const nlohmann::json& b, const std::string& at) {
  if (!b.is_object()) {
    throw ConfigError(at + ": expected an object {\"task\": \"task whose queries it borrows\"}, "
                      "found " + json_text(b));
  }
  for (const auto& [task, other] : b.items()) {
    if (!other.is_string() || other.get<std::string>().empty()) {
      throw ConfigError(at + "/" + task + ": expected the name of another task, found " +
                        json_text(other));
    }
    if (other.get<std::string>() == task) {
      throw ConfigError(at + "/" + task + ": a task cannot borrow its own queries");
    }
  }
}

// The checks between options, after each is read.
void check_together(const UnitDecoderOptions& o, const nlohmann::json&, const std::string& where) {
  if (o.fusion_layers() > 0 && o.fusion_tasks().empty()) {
    throw ConfigError(key_path(where, "fusion_tasks") +
                      ": fusion_layers is " + std::to_string(o.fusion_layers()) +
                      " but no task is listed to use them");
  }
  if (o.fusion_layers() == 0 && !o.fusion_tasks().empty()) {
    throw ConfigError(key_path(where, "fusion_layers") +
                      ": fusion_tasks lists tasks but fusion_layers is 0");
  }
  options::check_divides(where, "num_heads", o.num_heads(), "d_model", o.d_model());
}

}  // namespace

const options::OptionSet<UnitDecoderOptions>& unit_decoder_option_set() {
  using options::at_least;
  static const auto set =
      options::OptionSet<UnitDecoderOptions>()
          .add(UNITRAIN_OPTION(d_model), "width of queries and memory (the encoders' `output_dim`)",
               at_least(1))
          .add(UNITRAIN_OPTION(num_layers), "decoder layers", at_least(1))
          .add(UNITRAIN_OPTION(num_heads), "attention heads (divides `d_model`)", at_least(1))
          .add(UNITRAIN_OPTION(dim_feedforward), "feed-forward width", at_least(1))
          .add(UNITRAIN_OPTION(dropout), "dropout in attention and feed-forward",
               options::in_range(0, 1))
          .add(UNITRAIN_OPTION(activation), "`\"relu\"` (DETR) or `\"gelu\"`",
               options::one_of({"relu", "gelu"}))
          .add(UNITRAIN_OPTION(return_intermediate),
               "return every layer's output (auxiliary losses) or only the last (L = 1)")
          .add(UNITRAIN_OPTION(borrow_queries),
               "task -> another task of the same (shared) decoder whose query table is appended, "
               "detached, after the task's own queries when the task is decoded; Q is then own + "
               "borrowed, own first (heads that pool `first` read the task's own query); decoding "
               "any task fails with a ConfigError when a task named here has no queries in this "
               "decoder",
               options::check(check_borrowing))
          .add(UNITRAIN_OPTION(fusion_layers),
               "post-norm encoder layers (the decoder's width, heads and feed-forward) run over "
               "the memory of the tasks in `fusion_tasks` before decoding; the memory's position "
               "embedding is added to queries and keys; shared by those tasks",
               at_least(0))
          .add(UNITRAIN_OPTION(fusion_tasks),
               "tasks whose memory goes through the fusion layers; needs `fusion_layers` > 0 and "
               "the reverse; decoding fails with a ConfigError when one has no queries in this "
               "decoder")
          .validate(check_together);
  return set;
}

UnitDecoderOptions unit_decoder_options_from_json(const nlohmann::json& j,
                                                  const std::string& where) {
  return unit_decoder_option_set().parse(j, where);
}

nlohmann::json to_json(const UnitDecoderOptions& o) { return unit_decoder_option_set().to_json(o); }

UnitDecoderImpl::UnitDecoderImpl(const UnitDecoderOptions& options_) : options(options_) {
  reset();
}

void UnitDecoderImpl::reset() {
  auto layer = unitrain::nn::TransformerLayerOptions(options.d_model(), options.num_heads())
                   .dim_feedforward(options.dim_feedforward())
                   .dropout(options.dropout())
                   .activation(options.activation());
  decoder = register_module(
      "decoder", unitrain::nn::TransformerDecoder(
                     unitrain::nn::TransformerDecoderOptions(layer, options.num_layers())
                         .final_norm(true)
                         .return_intermediate(options.return_intermediate())));
  unitrain::nn::xavier_uniform_matrices(*decoder);
  if (options.fusion_layers() > 0) {
    fusion = register_module(
        "fusion", unitrain::nn::TransformerEncoder(
                      unitrain::nn::TransformerEncoderOptions(layer, options.fusion_layers())));
    unitrain::nn::xavier_uniform_matrices(*fusion);
  }
  queries = register_module("queries", torch::nn::ModuleDict());
  for (const auto& [task, num_queries] : tasks_) {
    queries->update({{task, torch::nn::Embedding(num_queries, options.d_model()).ptr()}});
  }
}

void UnitDecoderImpl::add_task(const std::string& task, int64_t num_queries) {
  if (task.empty() || task.find('.') != std::string::npos) {
    throw ConfigError("unit_decoder: task name \"" + task +
                      "\" must be non-empty and contain no '.' (it names parameters)");
  }
  if (num_queries < 1) {
    throw ConfigError("unit_decoder: task \"" + task + "\" needs num_queries >= 1, got " +
                      std::to_string(num_queries));
  }
  for (const auto& [name, n] : tasks_) {
    if (name != task) continue;
    if (n == num_queries) return;
    throw ConfigError("unit_decoder: task \"" + task + "\" already has " + std::to_string(n) +
                      " queries; cannot add it again with " + std::to_string(num_queries));
  }
  tasks_.emplace_back(task, num_queries);
  auto table = torch::nn::Embedding(num_queries, options.d_model());
  // Follow the decoder's device and dtype when tasks are added after a move.
  if (auto p = decoder->parameters(); !p.empty()) {
    table->to(p.front().device(), p.front().scalar_type());
  }
  queries->update({{task, table.ptr()}});
}

std::vector<std::string> UnitDecoderImpl::tasks() const {
  std::vector<std::string> names;
  for (const auto& item : tasks_) names.push_back(item.first);
  return names;
}

torch::Tensor UnitDecoderImpl::decode(const std::string& task, const EncoderOutput& memory) {
  if (!queries->contains(task)) {
    std::string known;
    for (const auto& name : tasks()) known += (known.empty() ? "" : ", ") + name;
    throw ConfigError("unit_decoder: no queries for task \"" + task + "\" (added: " +
                      (known.empty() ? "none" : known) + ")");
  }
  const auto& m = memory.memory;
  TORCH_CHECK(m.defined() && m.dim() == 3 && m.size(2) == options.d_model(),
              "unit_decoder: memory must be [B, S, ", options.d_model(), "], got ",
              m.defined() ? m.sizes() : torch::IntArrayRef{});
  const int64_t batch = m.size(0);
  if (memory.mask.defined()) {
    TORCH_CHECK(memory.mask.dim() == 2 && memory.mask.size(0) == batch &&
                    memory.mask.size(1) == m.size(1),
                "unit_decoder: mask must be [B, S] = [", batch, ", ", m.size(1), "], got ",
                memory.mask.sizes());
  }
  if (memory.pos.defined()) {
    TORCH_CHECK(memory.pos.sizes() == m.sizes(), "unit_decoder: pos must match memory ",
                m.sizes(), ", got ", memory.pos.sizes());
  }
  auto src = m.transpose(0, 1);  // [S, B, D]
  auto pos = memory.pos.defined() ? memory.pos.transpose(0, 1) : torch::Tensor();
  // Every entry is checked, so a misspelt task fails at the first decode of any task.
  for (const auto& [borrower, lender] : options.borrow_queries()) {
    for (const std::string& name : {borrower, lender}) {
      if (queries->contains(name)) continue;
      throw ConfigError("unit_decoder: borrow_queries/" + borrower + ": task \"" + name +
                        "\" has no queries in this decoder (borrowing needs a decoder shared "
                        "by both tasks)");
    }
  }
  for (const auto& name : options.fusion_tasks()) {
    if (queries->contains(name)) continue;
    throw ConfigError("unit_decoder: fusion_tasks: task \"" + name +
                      "\" has no queries in this decoder");
  }
  const auto& fused = options.fusion_tasks();
  if (std::find(fused.begin(), fused.end(), task) != fused.end()) {
    src = fusion(src, memory.mask, pos);
  }
  auto table = queries[task]->as<torch::nn::Embedding>()->weight;  // [Q, D]
  if (auto b = options.borrow_queries().find(task); b != options.borrow_queries().end()) {
    // Detached: the borrowed table keeps learning from its own task only.
    table = torch::cat({table, queries[b->second]->as<torch::nn::Embedding>()->weight.detach()});
  }
  auto query_pos = table.unsqueeze(1).expand({-1, batch, -1});    // [Q, B, D]
  auto tgt = torch::zeros_like(query_pos);
  auto out = decoder(tgt, src, memory.mask, pos, query_pos);  // [L, Q, B, D]
  return out.transpose(1, 2);                                 // [L, B, Q, D]
}

}  // namespace unitrain::decoders
