// Name maps: how the tensors of a file written by other code (torchvision, DETR, Hugging
// Face BERT, MMF's UniT) become the parameters and buffers of a unitrain component.
//
// A map is a table of rules read top to bottom. Names are dotted; in a pattern a
// segment "{x}" stands for any one segment and binds x, and a last segment "*" stands for
// one or more segments. A rule names the component's tensor (its state-dict name) and
// the file tensor(s) it is made of:
//
//   WeightMap map;
//   map.copy("backbone.0.body.*", "backbone.*")        // file name -> own name
//      .fuse({"layer.{n}.query.{p}", "layer.{n}.key.{p}", "layer.{n}.value.{p}"},
//            "layers.{n}.self_attn.in_proj_{p}")        // concatenated along dim 0
//      .ignore("fc.*");                                 // in the file, never wanted
//
// For each of the component's tensors the first rule whose target pattern matches decides
// where it comes from; a tensor no rule targets is not provided by the format and keeps
// its initialisation. A file tensor that some rule's source pattern matches but that no
// tensor took is unexpected; one that no rule mentions belongs to other components.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace unitrain::weights {

// Placeholder bindings of a match: {"n": "3", "*": "layer1.0.conv1.weight"}.
using Bindings = std::map<std::string, std::string>;

// Makes the component's tensor from the file tensors of a rule (in the rule's source
// order) and the component's own current value (for its shape and for rows the file
// does not provide). Returns an undefined tensor when the file's tensors do not fit;
// the import then reports the shapes as a mismatch.
using Combine = std::function<torch::Tensor(const std::vector<torch::Tensor>& sources,
                                            const torch::Tensor& own, const Bindings& bindings)>;

struct WeightRule {
  std::vector<std::string> sources;  // file name patterns
  std::string target;                // own name pattern
  Combine combine;                   // null: one source, copied as is
  std::string note;                  // shown in the table ("q, k, v concatenated")
};

class WeightMap {
 public:
  // target <- source, unchanged.
  WeightMap& copy(const std::string& source, const std::string& target);
  // target <- cat(sources, dim 0), e.g. separate q/k/v projections into in_proj.
  WeightMap& fuse(const std::vector<std::string>& sources, const std::string& target);
  // target <- combine(sources...): a transform (rows reordered, a class remapped).
  WeightMap& custom(const std::vector<std::string>& sources, const std::string& target,
                    Combine combine, const std::string& note);
  // File names matching the glob `source` (see glob_match) are known and not wanted
  // (never unexpected), e.g. "fc.*", "*.num_batches_tracked".
  WeightMap& ignore(const std::string& source, const std::string& note = "");
  // Before matching, a file name that starts with `prefix` loses it (first that applies),
  // e.g. "bert." so that BertModel and BertFor* files both read.
  WeightMap& strip_prefix(const std::string& prefix);
  // Before matching, a last segment `from` reads as `to` (old BERT uploads name LayerNorm
  // parameters gamma/beta).
  WeightMap& rename_last(const std::string& from, const std::string& to);

  const std::vector<WeightRule>& rules() const { return rules_; }
  const std::vector<std::pair<std::string, std::string>>& ignored() const { return ignored_; }

  // The name a file tensor is matched under (prefixes stripped, last segment renamed).
  std::string normalize(const std::string& file_name) const;
  // The table for docs and `unitrain weights map`: one line per rule, "source -> target".
  std::string table() const;

 private:
  std::vector<WeightRule> rules_;
  std::vector<std::pair<std::string, std::string>> ignored_;  // pattern, note
  std::vector<std::string> prefixes_;
  std::vector<std::pair<std::string, std::string>> last_renames_;
};

// Matches a dotted `name` against `pattern` ({x} = one segment, trailing * = the rest).
bool match_pattern(const std::string& pattern, const std::string& name, Bindings* bindings);
// `pattern` with its placeholders replaced from `bindings`.
std::string fill_pattern(const std::string& pattern, const Bindings& bindings);
// Shell-style glob over the whole name: '*' matches any run of characters (dots
// included), '?' one character. For "skip".
bool glob_match(const std::string& glob, const std::string& name);

// What an import found, by name.
struct ImportPlan {
  struct Mismatch {
    std::string target, source;
    std::vector<int64_t> file_shape, own_shape;
  };
  std::map<std::string, torch::Tensor> loaded;                       // own name -> value
  std::map<std::string, std::string> loaded_from;                    // own name -> file name(s)
  std::vector<std::string> kept;                                     // own names the format lacks
  std::vector<std::pair<std::string, std::string>> missing;          // own name, file name(s) absent
  std::vector<Mismatch> mismatched;
  std::vector<std::string> skipped;       // own names "skip" leaves (or whose sources it leaves) as initialised
  std::vector<std::string> skipped_file;  // file names "skip" leaves out
  std::set<std::string> consumed;                                    // file names used
  std::set<std::string> known;                                       // file names a rule or ignore mentions
  std::set<std::string> ignored;                                     // file names ignored by the map
};

// Plans the import of `file` (file names as read, e.g. after taking the "model" entry)
// into `own` (the component's state dict). `skip` globs are matched against own names and
// file names (original and normalized).
ImportPlan plan_import(const WeightMap& map,
                       const std::vector<std::pair<std::string, torch::Tensor>>& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& own,
                       const std::vector<std::string>& skip);

}  // namespace unitrain::weights
