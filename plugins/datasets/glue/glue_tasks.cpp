#include "glue_tasks.h"

namespace unitrain::glue {

// NOTE: CoLA's files have no header row and STS-B's label is a real-valued score;
// both need more than a table entry (a column index list, a regression label space).
const std::vector<GlueTask>& glue_tasks() {
  static const std::vector<GlueTask> tasks = {
      {"mnli", "sentence1", "sentence2", "gold_label",
       {"entailment", "neutral", "contradiction"}, {"-"}, -1, "MNLI"},
      {"mrpc", "#1 String", "#2 String", "Quality", {"0", "1"}, {}, 1, "MRPC"},
      {"qnli", "question", "sentence", "label", {"entailment", "not_entailment"}, {}, -1, "QNLI"},
      {"qqp", "question1", "question2", "is_duplicate", {"0", "1"}, {}, 1, "QQP"},
      {"rte", "sentence1", "sentence2", "label", {"entailment", "not_entailment"}, {}, -1, "RTE"},
      {"sst2", "sentence", "", "label", {"0", "1"}, {}, -1, "SST-2"},
      {"wnli", "sentence1", "sentence2", "label", {"0", "1"}, {}, -1, "WNLI"},
  };
  return tasks;
}

const GlueTask* find_glue_task(const std::string& name) {
  for (const auto& task : glue_tasks()) {
    if (task.name == name) return &task;
  }
  return nullptr;
}

std::string glue_task_names() {
  std::string names;
  for (const auto& task : glue_tasks()) names += (names.empty() ? "" : ", ") + task.name;
  return names;
}

}  // namespace unitrain::glue
