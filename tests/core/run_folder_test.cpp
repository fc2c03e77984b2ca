// Durable checkpoints and run folders (issue 20, items 7-10): a failed checkpoint write
// keeps the older ones, a non-finite gradient stops before the update, a run refuses an
// old run's folder and a folder another process holds, and resume accepts a file, falls
// back past an unreadable last.pt and names the file in every error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>

#include <torch/cuda.h>
#include <torch/script.h>

#include "test_util.h"
#include "unitrain/checkpoint.h"
#include "unitrain/config.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"
#include "unitrain/trainer.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using test::error_of;

Registry& registry() {
  static Registry* registry = [] {
    auto* r = new Registry();  // leaked: plugin libraries are never unloaded
    r->load_directory(test::fixture("good"));
    r->load_directory(test::fixture("nan"));
    r->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
    return r;
  }();
  return *registry;
}

// trainer_test's one-task experiment: a checkpoint every 2 steps, all of them kept.
json base_experiment() {
  return json::parse(R"({
    "name": "run_folder_test", "seed": 3, "threads": 1,
    "model": {
      "encoders": {"text": {"type": "test_encoder", "modality": "text", "dim": 16}},
      "decoder": {"type": "test_decoder", "dim": 16},
      "heads": {"majority": {"type": "test_head", "in_dim": 16, "num_labels": 2}}
    },
    "tasks": {
      "majority": {"dataset": {"type": "test_dataset", "size": 64, "length": 7},
                   "encoders": ["text"], "num_queries": 1, "batch_size": 16}
    },
    "training": {"max_steps": 6, "lr": 1e-2, "clip_grad_norm": 1.0, "log_every": 1,
                 "checkpoint_every": 2, "keep_checkpoints": 10},
    "data": {"workers": 1, "prefetch": 2}
  })");
}

Experiment experiment(const test::TempDir& dir, const json& j, const std::string& name = "exp.json") {
  test::write_file(dir / name, j.dump(2));
  Experiment e = load_experiment(dir / name);
  validate_experiment(e, &registry());
  return e;
}

TrainerConfig quiet(const fs::path& run_dir, bool resume = false) {
  TrainerConfig config;
  config.run_dir = run_dir;
  config.resume = resume;
  config.console = false;
  return config;
}

std::string plugins() { return "--plugin-dir '" + test::fixture("good") + "' "; }

std::string quoted(const fs::path& path) { return "'" + path.string() + "'"; }

// --- 7. checkpoints are written durably ------------------------------------------

// A checkpoint that cannot be written (here: over the file size limit, as on a full
// disk) stops the run with the step and file, and leaves last.pt and the older
// checkpoints as they were: the run resumes from them.
TEST(RunFolder, FailedCheckpointWriteKeepsTheOlderCheckpoints) {
  test::TempDir dir;
  json j = base_experiment();
  j["training"]["max_steps"] = 2;
  const Experiment e = experiment(dir, j);
  const fs::path run = dir / "run";
  Trainer(e, registry(), quiet(run)).train();
  const std::string before = test::read_file(run / "checkpoints/last.pt");
  const auto size = static_cast<int64_t>(before.size());
  ASSERT_GT(size, 8 * 1024);  // else the limit below would also stop the small files

  j["training"]["max_steps"] = 4;
  test::write_file(dir / "exp4.json", j.dump(2));
  // ulimit -f counts 1024-byte blocks in bash; SIGXFSZ ignored, so write() fails EFBIG.
  auto resumed = test::run_command("trap '' XFSZ; ulimit -f " + std::to_string(size / 1024 / 2) +
                                   "; '" + UNITRAIN_TEST_BINARY + "' " + plugins() + "train " +
                                   quoted(dir / "exp4.json") + " --resume " + quoted(run));
  EXPECT_EQ(resumed.status, 1) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("error: step 4: cannot write '" +
                                        (run / "checkpoints/step_00000004.pt.tmp").string()));
  EXPECT_THAT(resumed.output, HasSubstr("last.pt and the older checkpoints were kept"));
  EXPECT_FALSE(fs::exists(run / "checkpoints/step_00000004.pt.tmp"));
  EXPECT_FALSE(fs::exists(run / "checkpoints/step_00000004.pt"));
  EXPECT_EQ(test::read_file(run / "checkpoints/last.pt"), before);
  EXPECT_TRUE(fs::exists(run / "checkpoints/step_00000002.pt"));

  Trainer again(experiment(dir, j, "exp4b.json"), registry(), quiet(run, true));
  again.train();
  EXPECT_EQ(again.history().front().step, 2);
  EXPECT_EQ(again.step(), 4);
}

// --- 8. non-finite gradients -----------------------------------------------------

// inf_grad_head's loss stays finite while its weight's gradient turns inf at step 3:
// the run stops there, naming the step, task and parameter, before any update, so the
// weights are those of the last checkpoint (step 2) and finite.
TEST(RunFolder, NonFiniteGradientStopsBeforeTheUpdate) {
  test::TempDir dir;
  json j = base_experiment();
  j["model"]["heads"]["majority"] = {{"type", "inf_grad_head"}, {"inf_grad_after_steps", 3}};
  j["training"]["checkpoint_every"] = 1;
  const Experiment e = experiment(dir, j);
  Trainer trainer(e, registry(), quiet(dir / "run"));
  const std::string message = error_of<TrainingError>([&] { trainer.train(); });
  EXPECT_THAT(message, HasSubstr("step 3: the gradient of task 'majority' is not finite (norm inf)"
                                 " although its loss is: parameter 'head_majority.fc.weight' has "
                                 "32 of 32 non-finite values (first: inf); no update was applied"));
  EXPECT_EQ(trainer.step(), 3);
  EXPECT_EQ(find_checkpoint(dir / "run").filename(), "last.pt");
  EXPECT_FALSE(fs::exists(dir / "run/checkpoints/step_00000004.pt"));

  Trainer saved(e, registry(), quiet(dir / "other"));
  saved.load_weights(dir / "run/checkpoints/step_00000003.pt");
  auto expected = saved.model().named_parameters();
  for (const auto& item : trainer.model().named_parameters()) {
    EXPECT_TRUE(item.value().isfinite().all().item<bool>()) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), expected[item.key()])) << item.key();
  }
}

// --- 9. run folders ----------------------------------------------------------------

// A new run in an old run's folder fails and names what is there; --force starts over:
// the old run's files go, other files stay, and metrics.jsonl holds the new run only.
TEST(RunFolder, NonEmptyFolderNeedsResumeOrForce) {
  test::TempDir dir;
  json j = base_experiment();
  const Experiment e = experiment(dir, j);
  const fs::path run = dir / "run";
  Trainer(e, registry(), quiet(run)).train();
  test::write_file(run / "notes.txt", "mine");

  const std::string message =
      error_of<TrainingError>([&] { Trainer(e, registry(), quiet(run)).train(); });
  EXPECT_THAT(message, HasSubstr(run.string() + ": the run folder is not empty (holds "
                                 "checkpoints/, eval.json, experiment.resolved.json, "
                                 "metrics.jsonl, notes.txt, tasks.json, throughput.json); expected a "
                                 "new or "
                                 "empty folder. Continue that run with --resume " + run.string() +
                                 ", start over in it with --force"));

  j["training"]["max_steps"] = 2;
  TrainerConfig force = quiet(run);
  force.force = true;
  Trainer(experiment(dir, j, "short.json"), registry(), force).train();
  EXPECT_EQ(test::read_file(run / "notes.txt"), "mine");
  EXPECT_FALSE(fs::exists(run / "checkpoints/step_00000006.pt"));
  EXPECT_TRUE(fs::exists(run / "checkpoints/step_00000002.pt"));
  std::ifstream in(run / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(in, line);) {
    ++lines;
    EXPECT_LE(json::parse(line).at("step").get<int64_t>(), 2) << line;
  }
  EXPECT_EQ(lines, 3);  // steps 1 and 2, the final evaluation
}

TEST(RunFolder, TrainCommandRefusesAnOldRunsFolder) {
  test::TempDir dir;
  json j = base_experiment();
  j["training"]["max_steps"] = 2;
  test::write_file(dir / "exp.json", j.dump());
  const std::string train = plugins() + "train " + quoted(dir / "exp.json") + " --out " +
                            quoted(dir / "run");
  ASSERT_EQ(test::run_unitrain(train).status, 0);
  auto again = test::run_unitrain(train);
  EXPECT_EQ(again.status, 1) << again.output;
  EXPECT_THAT(again.output,
              HasSubstr("error: " + (dir / "run").string() + ": the run folder is not empty"));
  auto forced = test::run_unitrain(train + " --force");
  EXPECT_EQ(forced.status, 0) << forced.output;
  auto both = test::run_unitrain(train + " --force --resume " + quoted(dir / "run"));
  EXPECT_EQ(both.status, 1);
  EXPECT_THAT(both.output, HasSubstr("error: --resume and --force"));
}

// A folder locked by another process (this one, as a second `unitrain train` would)
// is refused with the folder and that process's pid, even when it is empty.
TEST(RunFolder, LockedFolderNamesTheOtherProcess) {
  test::TempDir dir;
  json j = base_experiment();
  j["training"]["max_steps"] = 2;
  test::write_file(dir / "exp.json", j.dump());
  const fs::path run = dir / "run";
  fs::create_directories(run);
  const int fd = ::open((run / "run.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string pid = std::to_string(::getpid());
  ASSERT_EQ(::write(fd, (pid + "\n").data(), pid.size() + 1), static_cast<ssize_t>(pid.size() + 1));

  auto locked = test::run_unitrain(plugins() + "train " + quoted(dir / "exp.json") + " --out " +
                                   quoted(run));
  EXPECT_EQ(locked.status, 1) << locked.output;
  EXPECT_THAT(locked.output,
              HasSubstr("error: " + run.string() + ": the run folder is in use by another "
                        "unitrain process (pid " + pid + ", lock file '" +
                        (run / "run.lock").string() + "')"));
  EXPECT_FALSE(fs::exists(run / "metrics.jsonl"));

  ::close(fd);  // released: the same command now runs (the stale run.lock is ignored)
  auto free = test::run_unitrain(plugins() + "train " + quoted(dir / "exp.json") + " --out " +
                                 quoted(run));
  EXPECT_EQ(free.status, 0) << free.output;
}

// Two runs started in the same second get two folders.
TEST(RunFolder, DefaultRunFoldersAreClaimed) {
  test::TempDir dir;
  const Experiment e = experiment(dir, base_experiment());
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  std::vector<fs::path> made;
  for (int i = 0; i < 3; ++i) made.push_back(default_run_dir(e));
  fs::current_path(cwd);
  EXPECT_NE(made[0], made[1]);
  EXPECT_NE(made[1], made[2]);
  EXPECT_NE(made[0], made[2]);
  for (const auto& folder : made) {
    EXPECT_TRUE(fs::is_directory(dir / folder.string())) << folder;
    EXPECT_THAT(folder.string(), HasSubstr("runs/run_folder_test-"));
  }
}

// --- 10. resume --------------------------------------------------------------------

class SixStepRun : public ::testing::Test {
 protected:
  void SetUp() override {
    json j = base_experiment();
    experiment_ = experiment(dir_, j);
    Trainer(experiment_, registry(), quiet(run_)).train();
    j["training"]["max_steps"] = 8;
    longer_ = experiment(dir_, j, "longer.json");
  }
  test::TempDir dir_;
  fs::path run_ = dir_ / "run";
  Experiment experiment_, longer_;
};

// last.pt and step 6 torn (last.pt made a file of its own first, as a copy would be):
// resume says so and continues from step 4.
TEST_F(SixStepRun, UnreadableLastFallsBackToTheNewestStepFileThatReads) {
  const fs::path last = run_ / "checkpoints/last.pt";
  fs::remove(last);
  test::write_file(last, "torn");
  fs::resize_file(run_ / "checkpoints/step_00000006.pt", 100);

  testing::internal::CaptureStderr();
  Trainer resumed(longer_, registry(), quiet(run_, true));
  resumed.train();
  const std::string notes = testing::internal::GetCapturedStderr();
  EXPECT_THAT(notes, HasSubstr("resume: " + last.string() + ": not a readable checkpoint"));
  EXPECT_THAT(notes, HasSubstr("resume: " + (run_ / "checkpoints/step_00000006.pt").string() +
                               ": not readable either, skipped"));
  EXPECT_THAT(notes, HasSubstr("; resuming from " + (run_ / "checkpoints/step_00000004.pt").string() +
                               ", the newest step checkpoint that reads"));
  EXPECT_EQ(resumed.history().front().step, 4);
  EXPECT_EQ(resumed.step(), 8);
  // The new step 6 replaced the torn one.
  EXPECT_NO_THROW(open_checkpoint(run_ / "checkpoints/step_00000006.pt"));
}

// --resume FILE continues that run from an older step; the run's newer checkpoints
// stay until it reaches them, and only its own older ones are pruned.
TEST_F(SixStepRun, ResumeFromACheckpointFile) {
  test::write_file(dir_ / "longer.json", longer_.json.dump());
  const fs::path step2 = run_ / "checkpoints/step_00000002.pt";
  auto resumed = test::run_unitrain(plugins() + "train " + quoted(dir_ / "longer.json") +
                                    " --resume " + quoted(step2));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("run folder: " + run_.string()));
  const auto lines = [&] {
    std::ifstream in(run_ / "metrics.jsonl");
    std::vector<json> steps;
    for (std::string line; std::getline(in, line);) steps.push_back(json::parse(line));
    return steps;
  }();
  // Steps 1 and 2 of the first run, then steps 3..8 and the evaluation: the first run's
  // steps 3..6 and its evaluation, trained again, were left out.
  ASSERT_EQ(lines.size(), 9u);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(lines[i].at("step"), i + 1);
  EXPECT_TRUE(lines[8].contains("eval"));
  EXPECT_THAT(resumed.output, HasSubstr("resume: " + (run_ / "metrics.jsonl").string() +
                                        ": 5 line(s) after step 2 left out"));
  EXPECT_TRUE(fs::exists(run_ / "checkpoints/step_00000008.pt"));

  auto outside = test::run_unitrain(plugins() + "train " + quoted(dir_ / "longer.json") +
                                    " --resume " + quoted(dir_ / "copy.pt"));
  EXPECT_EQ(outside.status, 1);
  EXPECT_THAT(outside.output, HasSubstr("no such run folder or checkpoint file"));
  fs::copy_file(step2, dir_ / "copy.pt");
  auto no_out = test::run_unitrain(plugins() + "train " + quoted(dir_ / "longer.json") +
                                   " --resume " + quoted(dir_ / "copy.pt"));
  EXPECT_EQ(no_out.status, 1);
  EXPECT_THAT(no_out.output, HasSubstr("error: --resume '" + (dir_ / "copy.pt").string() +
                                       "': the file is not in a run folder's checkpoints/; name "
                                       "the folder to continue in with --out"));
  auto with_out = test::run_unitrain(plugins() + "train " + quoted(dir_ / "longer.json") +
                                     " --resume " + quoted(dir_ / "copy.pt") + " --out " +
                                     quoted(dir_ / "new"));
  EXPECT_EQ(with_out.status, 0) << with_out.output;
  EXPECT_TRUE(fs::exists(dir_ / "new/checkpoints/step_00000008.pt"));
}

// A run resumed through the CLI from its step-4 file, after it had gone on to step 8,
// leaves the metrics.jsonl it had: the same lines (losses, learning rates, gradient
// norms, the evaluation) bit for bit, each step once.
TEST_F(SixStepRun, ResumedRunLogsWhatAStraightRunLogs) {
  test::write_file(dir_ / "longer.json", longer_.json.dump());
  const fs::path run = dir_ / "straight";
  auto straight = test::run_unitrain(plugins() + "train " + quoted(dir_ / "longer.json") + " --out " +
                                     quoted(run));
  ASSERT_EQ(straight.status, 0) << straight.output;
  auto read = [](const fs::path& file) {
    std::ifstream in(file);
    std::vector<json> lines;
    for (std::string line; std::getline(in, line);) {
      json entry = json::parse(line);
      entry.erase("samples_per_s");  // wall-clock
      lines.push_back(entry);
    }
    return lines;
  };
  const auto expected = read(run / "metrics.jsonl");
  ASSERT_EQ(expected.size(), 9u);  // steps 1..8 and the evaluation
  auto resumed = test::run_unitrain(plugins() + "train " + quoted(dir_ / "longer.json") + " --resume " +
                                    quoted(run / "checkpoints/step_00000004.pt"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr(": 5 line(s) after step 4 left out"));
  EXPECT_EQ(read(run / "metrics.jsonl"), expected);
}

// An entry that torch reads but the trainer cannot use (a generator state of the wrong
// size) is a CheckpointError naming the file, not a raw c10::Error.
TEST_F(SixStepRun, UnusableEntryIsACheckpointErrorNamingTheFile) {
  const fs::path last = run_ / "checkpoints/last.pt";
  torch::jit::Module archive = torch::jit::load(last.string());
  archive.setattr("torch_rng", torch::zeros({3}, torch::kUInt8));
  fs::remove(last);
  archive.save(last.string());
  const std::string message =
      error_of<CheckpointError>([&] { Trainer(longer_, registry(), quiet(run_, true)).train(); });
  EXPECT_THAT(message, HasSubstr(last.string() + ": cannot resume from it: "));
}

// With CUDA, checkpoints hold every device's generator state and resume restores it.
TEST_F(SixStepRun, CudaGeneratorStatesAreRestored_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::serialize::InputArchive archive = open_checkpoint(run_ / "checkpoints/last.pt");
  c10::IValue states;
  ASSERT_TRUE(archive.try_read("cuda_rng", states));
  ASSERT_TRUE(states.isTensorList());
  const auto saved = states.toTensorVector();
  ASSERT_EQ(saved.size(), torch::cuda::device_count());
  torch::cuda::manual_seed_all(12345);
  json j = longer_.json;
  j["training"]["max_steps"] = 6;  // nothing to train: the state is the restored one
  Trainer resumed(experiment(dir_, j, "same.json"), registry(), quiet(run_, true));
  resumed.train();
  at::Generator generator = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, 0));
  EXPECT_TRUE(torch::equal(generator.get_state(), saved[0]));
}

}  // namespace
}  // namespace unitrain
