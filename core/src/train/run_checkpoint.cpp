// Saving a run's state durably, and restoring it for an exact resume.
#include "train/run_checkpoint.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include "unitrain/checkpoint.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "train/durable_file.h"
#include "train/run_folder.h"

namespace unitrain::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kTrainerStateKey = "trainer";
constexpr const char* kOptimizerKey = "optimizer";
constexpr const char* kTorchRngKey = "torch_rng";
constexpr const char* kCudaRngKey = "cuda_rng";  // one state per CUDA device, when there are any

// The file just written reads back as a checkpoint of a trainer (a full disk or a
// failing device can leave a file that saved without error but does not load).
void verify_checkpoint(const fs::path& file, const fs::path& folder, int64_t step) {
  try {
    torch::serialize::InputArchive archive = open_checkpoint(file);
    c10::IValue format, state;
    if (!archive.try_read("format", format) || !format.isString() ||
        format.toStringRef() != kCheckpointFormat ||
        !archive.try_read(kTrainerStateKey, state) || !state.isString()) {
      throw CheckpointError(fmt::format("{}: no format or trainer state entry", file.string()));
    }
  } catch (const CheckpointError& e) {
    throw CheckpointError(fmt::format(
        "step {}: the checkpoint just written does not read back ({}); last.pt and the older "
        "checkpoints were kept; check the disk of '{}'",
        step, e.what(), folder.string()));
  }
}

// Step files after the current step belong to a run that was resumed from an older
// checkpoint: they are left alone (and replaced when this run reaches their step), so
// they neither push this run's own checkpoints out nor get deleted by it.
void prune_checkpoints(const fs::path& folder, int64_t step, int64_t keep_checkpoints) {
  std::vector<fs::path> steps;
  const std::string newest = fmt::format("step_{:08}.pt", step);
  for (const auto& item : fs::directory_iterator(folder)) {
    const auto name = item.path().filename().string();
    if (name.rfind("step_", 0) == 0 && item.path().extension() == ".pt" && name <= newest) {
      steps.push_back(item.path());
    }
  }
  std::sort(steps.begin(), steps.end());
  // The newest one is last.pt's twin; keep it plus keep_checkpoints more.
  const auto keep = static_cast<size_t>(keep_checkpoints) + 1;
  for (size_t i = 0; i + keep < steps.size(); ++i) fs::remove(steps[i]);
}

std::vector<data::LoaderState> restore(torch::serialize::InputArchive& archive,
                                       const std::string& where, RunSetup& setup,
                                       RunState& run) {
  read_model_state(archive, *setup.model, where);
  c10::IValue state_text;
  if (!archive.try_read(kTrainerStateKey, state_text) || !state_text.isString()) {
    throw CheckpointError(fmt::format("{}: has no trainer state (a model-only file, e.g. from "
                                      "'unitrain export'?); cannot resume from it", where));
  }
  json state;
  try {
    state = json::parse(state_text.toStringRef());
    run.step = state.at("step").get<int64_t>();
    run.task_rng.load_state(state.at("task_rng"));
    run.scheduler->load_state(state.at("scheduler"));
    if (run.combiner) {
      if (!state.contains("combine")) {
        throw CheckpointError(fmt::format("{}: has no combine rule state (it was saved by a run "
                                          "with one task per update); cannot resume it with "
                                          "/step/combine", where));
      }
      run.combiner->load_state(state.at("combine"));
    }
    // A checkpoint of a run without float16 starts the scale afresh.
    if (run.loss_scaler && state.contains("loss_scale")) run.loss_scaler->load_state(state.at("loss_scale"));
  } catch (const json::exception& e) {
    throw CheckpointError(fmt::format("{}: malformed trainer state: {}", where, e.what()));
  }
  torch::serialize::InputArchive optimizer_archive;
  try {
    archive.read(kOptimizerKey, optimizer_archive);
    run.optimization.optimizer->load(optimizer_archive);
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("{}: optimizer state does not fit this model: {}", where,
                                      e.what_without_backtrace()));
  }
  torch::Tensor rng_state;
  if (archive.try_read(kTorchRngKey, rng_state)) {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng_state);
  }
  c10::IValue cuda_states;
  if (torch::cuda::is_available() && archive.try_read(kCudaRngKey, cuda_states) &&
      cuda_states.isTensorList()) {
    // Resumed on fewer devices: the states of those that exist.
    const auto states = cuda_states.toTensorVector();
    const auto devices = static_cast<size_t>(torch::cuda::device_count());
    for (size_t i = 0; i < std::min(states.size(), devices); ++i) {
      at::Generator generator = at::globalContext().defaultGenerator(
          torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(states[i]);
    }
  }
  std::vector<data::LoaderState> loaders;
  for (const auto& t : setup.tasks) {
    if (!state.at("loaders").contains(t.name)) {
      throw CheckpointError(fmt::format("{}: no data position for task '{}' (the checkpoint is "
                                        "of another experiment)", where, t.name));
    }
    const json& s = state["loaders"][t.name];
    // Resumed with another world size: continue at the last global batch boundary of
    // the new size at or before the saved position (a few samples are read again).
    const int64_t global_batch =
        t.batch_size * (setup.parallel ? setup.parallel->world_size() : 1);
    const int64_t position = s.at("position").get<int64_t>();
    loaders.push_back({s.at("epoch").get<int64_t>(), position / global_batch * global_batch});
  }
  return loaders;
}

}  // namespace

// NOTE: a crash at any point leaves last.pt and every step file either complete or as
// before: each file is synced before its rename and the folder after it, and older
// checkpoints are deleted only once the new file has been read back.
void save_run_checkpoint(const fs::path& run_dir, const RunSetup& setup, const RunState& run,
                         int64_t keep_checkpoints) {
  const fs::path folder = run_dir / kCheckpointFolder;
  fs::create_directories(folder);
  torch::serialize::OutputArchive archive;
  write_model_state(archive, *setup.model, setup.experiment.json);
  std::map<std::string, LabelSpace> labels;
  for (const auto& t : setup.tasks) labels[t.name] = t.train->labels();
  write_label_spaces(archive, labels);
  torch::serialize::OutputArchive optimizer_archive;
  run.optimization.optimizer->save(optimizer_archive);
  archive.write(kOptimizerKey, optimizer_archive);
  json state = {{"step", run.step},
                {"task_rng", run.task_rng.state()},
                {"scheduler", run.scheduler->state()},
                {"loaders", json::object()}};
  if (run.combiner) state["combine"] = run.combiner->state();
  if (run.loss_scaler) state["loss_scale"] = run.loss_scaler->state();
  for (const auto& t : setup.tasks) {
    auto s = t.loader->state();
    state["loaders"][t.name] = {{"epoch", s.epoch}, {"position", s.position}};
  }
  archive.write(kTrainerStateKey, c10::IValue(json_text(state)));
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    archive.write(kTorchRngKey, generator.get_state());
  }
  // Dropout on a CUDA device draws from that device's generator.
  if (torch::cuda::is_available()) {
    c10::List<torch::Tensor> states;
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i) {
      at::Generator generator = at::globalContext().defaultGenerator(
          torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(generator.mutex());
      states.push_back(generator.get_state());
    }
    archive.write(kCudaRngKey, c10::IValue(states));
  }
  const fs::path file = folder / fmt::format("step_{:08}.pt", run.step);
  const fs::path tmp = file.string() + ".tmp";
  try {
    write_durably(file, [&](const fs::path& path) { save_archive(archive, path); });
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
    throw CheckpointError(fmt::format(
        "step {}: {}; last.pt and the older checkpoints were kept", run.step,
        torch_error ? torch_error->what_without_backtrace() : e.what()));
  }
  verify_checkpoint(file, folder, run.step);
  // last.pt: a hard link to the newest step file, swapped in atomically.
  const fs::path last_tmp = folder / "last.pt.tmp";
  std::error_code ec;
  fs::remove(last_tmp, ec);
  fs::create_hard_link(file, last_tmp, ec);
  if (ec) {
    fs::copy_file(file, last_tmp, fs::copy_options::overwrite_existing);
    sync_file(last_tmp);
  }
  fs::rename(last_tmp, folder / "last.pt");
  sync_folder(folder);
  prune_checkpoints(folder, run.step, keep_checkpoints);
}

std::vector<data::LoaderState> restore_run_checkpoint(const fs::path& run_or_checkpoint,
                                                      RunSetup& setup, RunState& run) {
  OpenedCheckpoint opened = open_resume_checkpoint(run_or_checkpoint, std::cerr);
  const std::string where = opened.file.string();
  try {
    return restore(opened.archive, where, setup, run);
  } catch (const CheckpointError&) {
    throw;
  } catch (const c10::Error& e) {
    throw CheckpointError(
        fmt::format("{}: cannot resume from it: {}", where, e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw CheckpointError(fmt::format("{}: cannot resume from it: {}", where, e.what()));
  }
}

}  // namespace unitrain::train
