#include "unit_decoder.h"

#include <algorithm>

#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/options.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace unitrain::decoders {
using options::key_path;
using options::read;

UnitDecoderOptions unit_decoder_options_from_json(const nlohmann::json& j,
                                                  const std::string& where) {
  UnitDecoderOptions o;
  read(j, where, "d_model", o.d_model());
  read(j, where, "num_layers", o.num_layers());
  read(j, where, "num_heads", o.num_heads());
  read(j, where, "dim_feedforward", o.dim_feedforward());
  read(j, where, "dropout", o.dropout());
  read(j, where, "activation", o.activation());
  read(j, where, "return_intermediate", o.return_intermediate());
  if (j.contains("borrow_queries")) {
    const auto& b = j.at("borrow_queries");
    const std::string at = key_path(where, "borrow_queries");
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
      o.borrow_queries()[task] = other.get<std::string>();
    }
  }
  read(j, where, "fusion_layers", o.fusion_layers());
  read(j, where, "fusion_tasks", o.fusion_tasks());
  if (o.fusion_layers() < 0) {
    throw ConfigError(key_path(where, "fusion_layers") + ": must be >= 0");
  }
  if (o.fusion_layers() > 0 && o.fusion_tasks().empty()) {
    throw ConfigError(key_path(where, "fusion_tasks") +
                      ": fusion_layers is " + std::to_string(o.fusion_layers()) +
                      " but no task is listed to use them");
  }
  if (o.fusion_layers() == 0 && !o.fusion_tasks().empty()) {
    throw ConfigError(key_path(where, "fusion_layers") +
                      ": fusion_tasks lists tasks but fusion_layers is 0");
  }
  if (o.d_model() < 1) throw ConfigError(key_path(where, "d_model") + ": must be positive");
  if (o.num_layers() < 1) throw ConfigError(key_path(where, "num_layers") + ": must be >= 1");
  if (o.num_heads() < 1 || o.d_model() % o.num_heads() != 0) {
    throw ConfigError(key_path(where, "num_heads") + ": must divide d_model (" +
                      std::to_string(o.d_model()) + "), got " + std::to_string(o.num_heads()));
  }
  if (o.dim_feedforward() < 1) {
    throw ConfigError(key_path(where, "dim_feedforward") + ": must be positive");
  }
  if (o.dropout() < 0 || o.dropout() >= 1) {
    throw ConfigError(key_path(where, "dropout") + ": must be in [0, 1)");
  }
  if (o.activation() != "relu" && o.activation() != "gelu") {
    throw ConfigError(key_path(where, "activation") + ": unknown \"" + o.activation() +
                      "\" (valid: \"relu\", \"gelu\")");
  }
  return o;
}

nlohmann::json to_json(const UnitDecoderOptions& o) {
  return {{"d_model", o.d_model()},
          {"num_layers", o.num_layers()},
          {"num_heads", o.num_heads()},
          {"dim_feedforward", o.dim_feedforward()},
          {"dropout", o.dropout()},
          {"activation", o.activation()},
          {"return_intermediate", o.return_intermediate()},
          {"borrow_queries", o.borrow_queries()},
          {"fusion_layers", o.fusion_layers()},
          {"fusion_tasks", o.fusion_tasks()}};
}

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

namespace {

// Every key with its default; the host rejects keys not listed here.
constexpr const char* kDefaultsJson = R"({
  "d_model": 768, "num_layers": 6, "num_heads": 8, "dim_feedforward": 2048,
  "dropout": 0.1, "activation": "relu", "return_intermediate": true, "borrow_queries": {},
  "fusion_layers": 0, "fusion_tasks": []
})";

std::shared_ptr<unitrain::Decoder> make_unit_decoder(const nlohmann::json& options) {
  auto o = unitrain::decoders::unit_decoder_options_from_json(options, "");
  return std::make_shared<unitrain::decoders::UnitDecoderImpl>(o);
}

}  // namespace

UNITRAIN_PLUGIN(kUnitDecoder, unitrain::Decoder, "decoder", "unit_decoder", "0.1.0",
                "DETR post-norm decoder with per-task learned queries (UniT)", kDefaultsJson,
                kReadme, make_unit_decoder);
UNITRAIN_EXPORT_PLUGINS(&kUnitDecoder);
