// Official result files: what a benchmark's reference evaluator or submission server
// reads (COCO detection JSON, VQA results JSON, GLUE submission TSVs...). The formats
// are described in docs/results.md.
//
// A dataset that knows its benchmark's format implements ResultFiles next to Dataset
// (a mixin found by dynamic_cast, as TokenVocabulary is): the record identities a
// result file needs (image ids, question ids, a TSV's index column, original category
// ids, label names) stay inside the dataset. `unitrain eval --predictions DIR` asks
// each task's evaluation split for a ResultWriter, feeds it every batch of the pass and
// writes the files; a dataset without the mixin writes none.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "unitrain/batch.h"

namespace unitrain {

// Accumulates one evaluation pass over one split and writes its result files.
class ResultWriter {
 public:
  virtual ~ResultWriter() = default;
  // Every batch of the pass, in file order; each item is identified by
  // Batch::record_ids (the Sample::record_id its dataset gave). In a data-parallel
  // evaluation rank 0 adds every rank's batches. Tensors may be on any device.
  virtual void add(const Predictions& predictions, const Batch& batch) = 0;
  // Writes the files into `dir` (it exists) and returns their paths. `task` is the
  // experiment's task name, for file names that must not collide between tasks.
  // Throws DataError naming the file when one cannot be written.
  virtual std::vector<std::filesystem::path> write(const std::filesystem::path& dir,
                                                   const std::string& task) const = 0;
};

// The Dataset mixin: a fresh writer for one pass over this split.
class ResultFiles {
 public:
  virtual ~ResultFiles() = default;
  virtual std::unique_ptr<ResultWriter> result_writer() const = 0;
};

// Writes `text` to `file` through FILE.tmp and a rename, so that a reader never sees a
// torn file. DataError "cannot write 'FILE': reason" on failure.
void write_result_file(const std::filesystem::path& file, const std::string& text);

// The predicted label id of each item of a classification batch (Predictions::labels),
// paired with its Batch::record_ids entry, in batch order.
std::vector<std::pair<int64_t, int64_t>> predicted_labels(const Predictions& predictions,
                                                          const Batch& batch);

}  // namespace unitrain
