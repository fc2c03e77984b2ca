// The GLUE tasks the glue plugin reads: which TSV columns hold the texts and the label,
// and the label strings. Adding a task with a header row is one entry in glue_tasks.cpp.
#pragma once

#include <string>
#include <vector>

namespace unitrain::glue {

struct GlueTask {
  std::string name;
  std::string text_a;  // column of the first text
  std::string text_b;  // column of the second text; empty for single-sentence tasks
  std::string label;   // column of the label; test files lack it
  std::vector<std::string> labels;  // label strings, by label id
  // Label strings that mark an example without a label (MNLI's "-"): left out and
  // counted under "no_gold_label" whatever on_bad_record says.
  std::vector<std::string> unlabeled;
  // The class whose F1 the evaluator also reports (QQP, MRPC); -1 for none.
  int64_t f1_positive = -1;
  // The GLUE server's name for the task's submission file (<name>.tsv); MNLI adds "-m"
  // or "-mm" by the file it reads (matched or mismatched).
  std::string submission;
};

// Every known task, in name order.
const std::vector<GlueTask>& glue_tasks();
// The task called `name`, or nullptr.
const GlueTask* find_glue_task(const std::string& name);
// "mnli, mrpc, qnli, ..." for messages.
std::string glue_task_names();

}  // namespace unitrain::glue
