// Multi-task updates: drawing the tasks, keeping their gradients apart, combining them.
#include "train/multitask_step.h"

#include <cmath>
#include <set>

#include <fmt/format.h>

#include "unitrain/errors.h"

namespace unitrain::train {
using json = nlohmann::json;

MultitaskStep::MultitaskStep(StepOptions options, std::shared_ptr<GradientCombiner> combiner,
                             std::vector<std::string> task_names)
    : options_(std::move(options)), combiner_(std::move(combiner)), task_names_(std::move(task_names)) {
  combiner_->setup(task_names_);
}

std::vector<size_t> MultitaskStep::draw(TaskScheduler& scheduler, TaskRng& rng, int64_t step) const {
  const size_t n = task_names_.size();
  std::vector<size_t> tasks;
  if (options_.tasks == 0) {
    for (size_t i = 0; i < n; ++i) tasks.push_back(i);
    return tasks;
  }
  const auto k = static_cast<size_t>(options_.tasks);
  std::set<size_t> seen;
  // NOTE: repeated draws are dropped, so tasks enter an update with the scheduler's
  // probabilities conditioned on not being drawn yet (sampling without replacement).
  const size_t limit = 1000 * k;
  for (size_t draws = 0; tasks.size() < k; ++draws) {
    if (draws == limit) {
      std::vector<std::string> names;
      for (size_t t : tasks) names.push_back(task_names_.at(t));
      throw TrainingError(fmt::format(
          "step {}: the scheduler drew only {} distinct task(s) ({}) in {} draws, and /step/tasks "
          "asks for {}: lower /step/tasks or give every task a probability above 0",
          step, tasks.size(), fmt::join(names, ", "), limit, k));
    }
    const size_t t = scheduler.next(rng);
    if (seen.insert(t).second) tasks.push_back(t);
  }
  return tasks;
}

void MultitaskStep::begin() { rows_.clear(); }

void MultitaskStep::capture(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> row(parameters.size());
  for (size_t i = 0; i < parameters.size(); ++i) {
    torch::Tensor p = parameters[i];
    row[i] = p.grad();
    p.mutable_grad() = torch::Tensor();
  }
  rows_.push_back(std::move(row));
}

json MultitaskStep::finish(int64_t step, const std::vector<size_t>& tasks,
                           const std::vector<double>& losses,
                           const std::vector<torch::Tensor>& parameters, TaskRng& rng) {
  TORCH_CHECK(rows_.size() == tasks.size(), "multi-task update: ", rows_.size(),
              " captured gradients for ", tasks.size(), " tasks");
  const size_t k = tasks.size();
  std::vector<size_t> shared;  // parameter indices touched by more than one task
  std::vector<bool> is_shared(parameters.size(), false);
  for (size_t i = 0; i < parameters.size(); ++i) {
    int touched = 0;
    for (const auto& row : rows_) touched += row[i].defined() ? 1 : 0;
    if (touched > 1) {
      shared.push_back(i);
      is_shared[i] = true;
    }
  }
  int64_t width = 0;
  for (size_t i : shared) width += parameters[i].numel();
  const auto options = parameters.empty() ? torch::TensorOptions(torch::kFloat32)
                                          : parameters.front().options();
  torch::Tensor matrix = torch::zeros({static_cast<int64_t>(k), width}, options);
  for (size_t r = 0; r < k; ++r) {
    int64_t offset = 0;
    for (size_t i : shared) {
      const int64_t n = parameters[i].numel();
      if (rows_[r][i].defined()) matrix[r].narrow(0, offset, n).copy_(rows_[r][i].reshape({-1}));
      offset += n;
    }
  }
  TaskGradients input;
  input.tasks = tasks;
  input.losses = losses;
  input.shared = matrix;
  input.step = step;
  const CombinedGradient combined = combiner_->combine(input, rng);
  if (!combined.shared.defined() || combined.shared.numel() != width ||
      combined.task_scale.size() != k) {
    throw TrainingError(fmt::format(
        "step {}: combine rule '{}' returned a gradient of {} values and {} task scales; "
        "expected {} and {}",
        step, options_.combine, combined.shared.defined() ? combined.shared.numel() : 0,
        combined.task_scale.size(), width, k));
  }
  int64_t offset = 0;
  for (size_t i : shared) {
    torch::Tensor p = parameters[i];
    const int64_t n = p.numel();
    p.mutable_grad() = combined.shared.narrow(0, offset, n).view_as(p).clone();
    offset += n;
  }
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (is_shared[i]) continue;
    for (size_t r = 0; r < k; ++r) {
      if (!rows_[r][i].defined()) continue;
      torch::Tensor p = parameters[i];
      const double scale = combined.task_scale[r];
      p.mutable_grad() = scale == 1.0 ? rows_[r][i] : rows_[r][i] * scale;
    }
  }
  rows_.clear();

  json log = json::object();
  const json diagnostics = combiner_->diagnostics();
  if (!diagnostics.empty()) log["combine"] = diagnostics;
  if (options_.cosine_every > 0 && (step + 1) % options_.cosine_every == 0 && k > 1) {
    std::vector<std::string> names;
    for (size_t t : tasks) names.push_back(task_names_.at(t));
    log["grad_cosine"] = gradient_cosines(matrix, names);
  }
  return log;
}

json gradient_cosines(const torch::Tensor& gradients, const std::vector<std::string>& row_names) {
  const torch::Tensor gram = gradients.mm(gradients.t()).to(torch::kCPU, torch::kFloat64);
  json out = json::object();
  const auto k = static_cast<int64_t>(row_names.size());
  for (int64_t a = 0; a < k; ++a) {
    for (int64_t b = a + 1; b < k; ++b) {
      const double norms = std::sqrt(gram[a][a].item<double>() * gram[b][b].item<double>());
      out[row_names[a] + "|" + row_names[b]] = norms > 0 ? gram[a][b].item<double>() / norms : 0.0;
    }
  }
  return out;
}

}  // namespace unitrain::train
