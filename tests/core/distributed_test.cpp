// Data-parallel training through c10d (Gloo on loopback), end to end with the CLI:
// 2 ranks equal 1 process with their batches combined (classification, detection),
// resume, sharded evaluation, divergence, a killed rank, and the launch errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "test_util.h"
#include "unitrain/checkpoint.h"
#include "unitrain/dataset.h"
#include "unitrain/registry.h"
#include "unitrain/toy/toy_suite.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

// A loopback TCP socket bound to a free port (held open while it lives).
class BoundPort {
 public:
  BoundPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(fd_, 1);
    socklen_t length = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~BoundPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

int free_port() { return BoundPort().port(); }

class Distributed : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    toy::ToySuiteOptions options;
    options.seed = 5;
    options.images = 40;  // 32 train, 8 val
    options.text_examples = 60;  // 48 train rows
    options.image_size = 64;
    toy::make_toy_suite(*dir_ / "toy", options);
    // Never deleted (plugin libraries are never unloaded), held where LeakSanitizer sees it.
    static Registry* registry = new Registry();
    registry->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
    num_answers_ = static_cast<int64_t>(
        registry->create_as<Dataset>("dataset", "vqa2", vqa2_dataset(), "distributed_test")
            ->labels()
            .names.size());
  }

  static json vqa2_dataset() {
    return {{"root", toy("vqa2")}, {"tokenizer", {{"vocab", toy("vocab.txt")}}},
            {"answer_min_count", 1}, {"image", {{"min_size", 64}, {"max_size", 64}}}};
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string toy(const std::string& part) { return (*dir_ / "toy" / part).string(); }

  // A tiny UniT on the toy suite with the given tasks ("sst2", "coco", "vg", "vqa2"), dropout 0,
  // a loss logged every step, a constant learning rate.
  static fs::path experiment(const std::string& name, const std::vector<std::string>& tasks,
                             int64_t steps, const json& extra = json::object()) {
    const json tokenizer = {{"vocab", toy("vocab.txt")}};
    const json image = {{"min_size", 64}, {"max_size", 64}};
    json heads = json::object(), task_specs = json::object();
    for (const auto& task : tasks) {
      if (task == "sst2") {
        heads[task] = {{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", 2},
                       {"dropout", 0.0}};
        task_specs[task] = {{"dataset",
                             {{"type", "glue"}, {"task", "sst2"}, {"root", toy("glue/SST-2")},
                              {"tokenizer", tokenizer}, {"max_length", 24}}},
                            {"encoders", {"text"}}, {"num_queries", 1}, {"batch_size", 4},
                            {"val_split", "dev"}};
      } else if (task == "coco") {
        heads[task] = {{"type", "detr"}, {"in_dim", 32}, {"num_classes", 9}};
        task_specs[task] = {{"dataset", {{"type", "coco_detection"}, {"root", toy("coco")},
                                         {"image", image}}},
                            {"encoders", {"image"}}, {"num_queries", 6}, {"batch_size", 2}};
      } else if (task == "vg") {
        // Attributes (normalised by the boxes that have one) and one-to-many matching
        // on the auxiliary layer (normalised by the matched pairs).
        heads[task] = {{"type", "detr"}, {"in_dim", 32}, {"num_classes", 3},
                       {"num_attributes", 6}, {"attribute_hidden_dim", 16},
                       {"attribute_class_embed_dim", 8}, {"one_to_many_repeats", 2}};
        task_specs[task] = {{"dataset", {{"type", "vg_detection"}, {"root", toy("vg")},
                                         {"num_attributes", 6}, {"image", image}}},
                            {"encoders", {"image"}}, {"num_queries", 6}, {"batch_size", 2}};
      } else {
        heads[task] = {{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", num_answers_},
                       {"loss", "soft_bce"}, {"dropout", 0.0}};
        json dataset = vqa2_dataset();
        dataset["type"] = "vqa2";
        task_specs[task] = {{"dataset", dataset}, {"encoders", {"image", "text"}},
                            {"num_queries", 2}, {"batch_size", 2}};
      }
    }
    json e = {
        {"name", name},
        {"seed", 4},
        {"threads", 1},
        {"model",
         {{"encoders",
           {{"image",
             {{"type", "image"}, {"depth", 18}, {"width", 8}, {"layers", {1, 1, 1, 1}},
              {"return_layer", "layer3"}, {"trainable_layers", 5}, {"hidden_dim", 16},
              {"num_layers", 1}, {"num_heads", 2}, {"dim_feedforward", 32}, {"dropout", 0.0},
              {"output_dim", 32}}},
            {"text",
             {{"type", "text"}, {"tokenizer", tokenizer}, {"hidden_dim", 32}, {"num_layers", 1},
              {"num_heads", 4}, {"intermediate_dim", 64}, {"max_position", 32}, {"dropout", 0.0},
              {"attention_dropout", 0.0}, {"output_dim", 32}}}}},
          {"decoder",
           {{"type", "unit_decoder"}, {"d_model", 32}, {"num_layers", 2}, {"num_heads", 4},
            {"dim_feedforward", 64}, {"dropout", 0.0}}},
          {"heads", heads}}},
        {"tasks", task_specs},
        {"scheduler", {{"type", "round_robin"}}},
        {"training",
         {{"max_steps", steps}, {"lr", 1e-3}, {"backbone_lr", 1e-3}, {"lr_schedule", "constant"},
          {"clip_grad_norm", 1.0}, {"log_every", 1}, {"eval_max_batches", 1}}},
        {"data", {{"workers", 1}, {"prefetch", 2}}},
        {"distributed", {{"timeout_s", 20}}}};
    e.merge_patch(extra);
    const fs::path file = *dir_ / (name + ".json");
    test::write_file(file, e.dump(2));
    return file;
  }

  static test::CommandResult train(const fs::path& file, const fs::path& out,
                                   const std::string& args = "") {
    return test::run_unitrain("train '" + file.string() + "' --out '" + out.string() + "' " + args);
  }

  // Logged training losses, step by step (the metrics.jsonl lines with a "loss").
  static std::vector<double> losses(const fs::path& run) {
    std::vector<double> out;
    std::ifstream in(run / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const json j = json::parse(line);
      if (j.contains("loss")) out.push_back(j["loss"].get<double>());
    }
    return out;
  }

  // Largest difference between the two checkpoints' parameters, over the components.
  static double parameter_difference(const fs::path& a, const fs::path& b,
                                     const std::vector<std::string>& components) {
    double most = 0;
    for (const auto& component : components) {
      const auto x = export_component(a / "checkpoints" / "last.pt", component).state;
      const auto y = export_component(b / "checkpoints" / "last.pt", component).state;
      EXPECT_EQ(x.size(), y.size()) << component;
      for (const auto& item : x) {
        most = std::max(most, (item.value() - y.at(item.key())).abs().max().item<double>());
      }
    }
    return most;
  }

  // Two ranks with per-rank batch B against one process with batch 2B, on the same samples.
  void expect_two_ranks_equal_one_process(const std::string& task, const std::string& batch_key,
                                          int64_t batch, const std::vector<std::string>& parts,
                                          const json& extra = json::object()) {
    const auto file = experiment("equal_" + task, {task}, 50, extra);
    const fs::path one = *dir_ / ("one_" + task), two = *dir_ / ("two_" + task);
    auto single = train(file, one, "--set " + batch_key + "=" + std::to_string(2 * batch));
    ASSERT_EQ(single.status, 0) << single.output;
    auto pair = train(file, two, "--nproc-per-node 2");
    ASSERT_EQ(pair.status, 0) << pair.output;
    const auto a = losses(one), b = losses(two);
    ASSERT_EQ(a.size(), 50u);
    ASSERT_EQ(b.size(), 50u);
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_NEAR(a[i], b[i], 1e-5 * std::max(1.0, std::abs(a[i]))) << task << " step " << i + 1;
    }
    EXPECT_LT(parameter_difference(one, two, parts), 1e-5) << task;
    // Only rank 0 wrote into the run folder: one progress stream, one metrics file.
    EXPECT_TRUE(fs::exists(two / "eval.json"));
    // throughput.json: the time in collectives, a part of the phases, is 0 in one process.
    const json one_process = json::parse(test::read_file(one / "throughput.json")).at("all");
    const json group = json::parse(test::read_file(two / "throughput.json")).at("all");
    EXPECT_EQ(one_process.at("collectives").get<double>(), 0.0);
    const double in_collectives = group.at("collectives").get<double>();
    double phases = 0;
    for (const auto& [name, seconds] : group.at("phases").items()) phases += seconds.get<double>();
    EXPECT_GT(in_collectives, 0.0);
    EXPECT_LT(in_collectives, phases);
  }

  static test::TempDir* dir_;
  static int64_t num_answers_;
};

test::TempDir* Distributed::dir_ = nullptr;
int64_t Distributed::num_answers_ = 0;

TEST_F(Distributed, TwoRanksEqualOneProcessWithTheirBatchesClassification) {
  expect_two_ranks_equal_one_process("sst2", "tasks.sst2.batch_size", 4,
                                     {"encoders/text", "decoder", "heads/sst2"},
                                     {{"training", {{"lr", 1e-4}}}});
}

// DETR normalises by the number of boxes (and the no-object weights) of the whole
// global batch, so the averaged gradient is one process's.
TEST_F(Distributed, TwoRanksEqualOneProcessWithTheirBatchesDetection) {
  // Both at lr 1e-4: at 1e-3 the float rounding of the two sums (~1e-7) grows through
  // AdamW (which divides by small gradients) past 1e-5 in 30-50 steps, and flips a
  // near-tied Hungarian match after ~25 steps.
  expect_two_ranks_equal_one_process("coco", "tasks.coco.batch_size", 2,
                                     {"encoders/image", "decoder", "heads/coco"},
                                     {{"training", {{"lr", 1e-4}, {"backbone_lr", 1e-4}}}});
}

// Visual Genome's attribute loss is normalised by the boxes with attributes over the
// global batch, and the one-to-many auxiliary layer by the matched pairs over it.
TEST_F(Distributed, TwoRanksEqualOneProcessWithTheirBatchesAttributes) {
  expect_two_ranks_equal_one_process("vg", "tasks.vg.batch_size", 2,
                                     {"encoders/image", "decoder", "heads/vg"},
                                     {{"training", {{"lr", 1e-4}, {"backbone_lr", 1e-4}}}});
}

// Multi-task updates combine after the all-reduce: each task's gradient is the global
// batch's on every rank, so PCGrad's projections (and the rule's draws) are one
// process's with both ranks' batches.
TEST_F(Distributed, MultiTaskUpdatesCombineTheAveragedGradients) {
  const json extra = {{"training", {{"lr", 1e-4}, {"backbone_lr", 1e-4}}},
                      {"step", {{"tasks", "all"}, {"combine", {{"type", "pcgrad"}}}}}};
  const auto file = experiment("multitask_pcgrad", {"sst2", "vqa2"}, 20, extra);
  const fs::path one = *dir_ / "one_multitask", two = *dir_ / "two_multitask";
  auto single = train(file, one, "--set tasks.sst2.batch_size=8 --set tasks.vqa2.batch_size=4");
  ASSERT_EQ(single.status, 0) << single.output;
  auto pair = train(file, two, "--nproc-per-node 2");
  ASSERT_EQ(pair.status, 0) << pair.output;
  const auto a = losses(one), b = losses(two);
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], 1e-5 * std::max(1.0, std::abs(a[i]))) << "step " << i + 1;
  }
  EXPECT_LT(parameter_difference(one, two, {"encoders/text", "encoders/image", "decoder",
                                            "heads/sst2", "heads/vqa2"}),
            1e-5);
}

// Uncertainty sampling draws the task from the ranks' mean entropies: the ranks agree
// (the task check of every update would stop them otherwise).
TEST_F(Distributed, UncertaintySamplingAgreesOnTheTask) {
  const auto file = experiment("uncertainty_pair", {"sst2", "vqa2"}, 8,
                               {{"scheduler", {{"type", "uncertainty"}}}});
  auto result = train(file, *dir_ / "uncertainty_run", "--nproc-per-node 2");
  EXPECT_EQ(result.status, 0) << result.output;
}

TEST_F(Distributed, ResumedPairEqualsAStraightRunBitForBit) {
  const auto file = experiment("resume", {"sst2", "coco"}, 20);
  const fs::path straight = *dir_ / "resume_straight", resumed = *dir_ / "resume_split";
  auto full = train(file, straight, "--nproc-per-node 2");
  ASSERT_EQ(full.status, 0) << full.output;
  auto first = train(file, resumed, "--nproc-per-node 2 --set training.max_steps=10");
  ASSERT_EQ(first.status, 0) << first.output;
  auto second = test::run_unitrain("train '" + file.string() + "' --resume '" + resumed.string() +
                                   "' --nproc-per-node 2");
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_EQ(losses(straight), losses(resumed));
  EXPECT_EQ(parameter_difference(straight, resumed,
                                 {"encoders/text", "encoders/image", "decoder", "heads/sst2",
                                  "heads/coco"}),
            0.0);
}

TEST_F(Distributed, TwoRankEvaluationEqualsOneRank) {
  const auto file = experiment("eval", {"coco", "vqa2"}, 6,
                               {{"training", {{"eval_max_batches", 0}}}});
  const fs::path run = *dir_ / "eval_run";
  auto trained = train(file, run);
  ASSERT_EQ(trained.status, 0) << trained.output;
  const std::string eval = "eval '" + file.string() + "' --checkpoint '" + run.string() + "'";
  auto one = test::run_unitrain(eval + " --out '" + (*dir_ / "eval1.json").string() + "'");
  ASSERT_EQ(one.status, 0) << one.output;
  auto two = test::run_unitrain(eval + " --nproc-per-node 2 --out '" +
                                (*dir_ / "eval2.json").string() + "'");
  ASSERT_EQ(two.status, 0) << two.output;
  const json a = json::parse(test::read_file(*dir_ / "eval1.json"));
  const json b = json::parse(test::read_file(*dir_ / "eval2.json"));
  ASSERT_TRUE(a["coco"].contains("ap")) << a.dump();
  ASSERT_TRUE(a["vqa2"].contains("vqa_accuracy")) << a.dump();
  for (const auto& [task, metrics] : a.items()) {
    for (const auto& [metric, value] : metrics.items()) {
      if (!value.is_number()) continue;
      EXPECT_NEAR(value.get<double>(), b[task][metric].get<double>(), 1e-6) << task << " " << metric;
    }
  }
}

TEST_F(Distributed, DivergingTaskSequencesStopEveryRankWithTheirTasks) {
  const auto file = experiment(
      "diverge", {"sst2", "coco"}, 30,
      {{"plugin_dirs", {test::fixture("rank_seeded")}}, {"scheduler", {{"type", "test_rank_seeded"}}}});
  auto result = train(file, *dir_ / "diverge_run", "--nproc-per-node 2");
  EXPECT_NE(result.status, 0);
  EXPECT_THAT(result.output, HasSubstr("the ranks diverged (rank 0: task '"));
  EXPECT_THAT(result.output, HasSubstr("rank 1: task '"));
  EXPECT_THAT(result.output, HasSubstr("a scheduler may not use its own randomness"));
}

// A scheduler that follows the losses (SchedulerFeedback) is told the mean over the
// ranks, so both ranks draw the same tasks: the run passes the per-step task check.
TEST_F(Distributed, SchedulerFeedbackIsTheSameOnEveryRank) {
  const auto file = experiment(
      "feedback", {"sst2", "coco"}, 12,
      {{"plugin_dirs", {test::fixture("feedback")}}, {"scheduler", {{"type", "test_loss_greedy"}}}});
  auto result = train(file, *dir_ / "feedback_run", "--nproc-per-node 2");
  EXPECT_EQ(result.status, 0) << result.output;
}

TEST_F(Distributed, RanksWithDifferentExperimentsNameTheKey) {
  const auto file = experiment("mismatch", {"sst2"}, 5);
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                          std::to_string(free_port()) + " ";
  const std::string cmd = std::string("'") + UNITRAIN_TEST_BINARY + "' train '" + file.string() +
                          "' --out '" + (*dir_ / "mismatch_run").string() + "'";
  auto result = test::run_command("(RANK=1 " + env + cmd + " --set training.lr=0.002 & " +
                                  "RANK=0 " + env + cmd + " --set training.lr=0.001; wait $!; " +
                                  "s0=$?; wait; echo status=$s0)");
  EXPECT_THAT(result.output, HasSubstr("error: rank 0: rank 1's experiment or plugin set differs "
                                       "from rank 0's at /experiment/training/lr (rank 0: 0.001, "
                                       "rank 1: 0.002)"));
  EXPECT_THAT(result.output, HasSubstr("error: rank 1: rank 1's experiment"));
}

// A command started in a process group of its own; the group is killed when this goes
// out of scope, so that a failing test leaves nothing running.
class Spawned {
 public:
  explicit Spawned(const std::string& command) {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    setpgid(pid_, pid_);
  }
  ~Spawned() {
    kill(-pid_, SIGKILL);
    if (!done_) waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  // The exit status once it ended within `seconds`, else nullopt.
  std::optional<int> wait_for(double seconds) {
    const auto limit = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    while (std::chrono::steady_clock::now() < limit) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        done_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
  bool done_ = false;
};

TEST_F(Distributed, KilledRankStopsTheOthersAndLeavesNoProcess) {
  const auto file = experiment("killed", {"sst2"}, 5000, {{"training", {{"log_every", 5}}}});
  const fs::path run = *dir_ / "killed_run", log = *dir_ / "killed.log";
  Spawned launcher("'" + std::string(UNITRAIN_TEST_BINARY) + "' train '" + file.string() +
                   "' --out '" + run.string() + "' --nproc-per-node 2 > '" + log.string() +
                   "' 2>&1");
  // Wait for training to start (a few logged steps), then find rank 1.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (losses(run).size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(losses(run).size(), 2u) << test::read_file(log);
  auto children = test::run_command("pgrep -P " + std::to_string(launcher.pid()));
  std::vector<int> pids;
  std::istringstream in(children.output);
  for (int pid; in >> pid;) pids.push_back(pid);
  ASSERT_EQ(pids.size(), 2u) << children.output;
  int rank1 = -1;
  for (int pid : pids) {
    const std::string env = test::read_file("/proc/" + std::to_string(pid) + "/environ");
    if (env.find(std::string("\0RANK=1\0", 8)) != std::string::npos) rank1 = pid;
  }
  ASSERT_GT(rank1, 0);
  kill(rank1, SIGKILL);
  // The others stop at their next collective, well within timeout_s (20).
  const auto status = launcher.wait_for(25);
  ASSERT_TRUE(status.has_value()) << "the launcher did not stop: " << test::read_file(log);
  EXPECT_NE(*status, 0);
  const std::string output = test::read_file(log);
  EXPECT_THAT(output, HasSubstr("error: rank 1 (pid " + std::to_string(rank1) +
                                ") was killed by SIGKILL"));
  EXPECT_THAT(output, HasSubstr("error: rank 0: lost the process group during "));
  for (int pid : pids) EXPECT_NE(kill(pid, 0), 0) << "rank pid " << pid << " is still alive";
}

TEST_F(Distributed, LaunchErrorsAreClear) {
  const auto file = experiment("errors", {"sst2"}, 2, {{"distributed", {{"timeout_s", 3}}}});
  {
    BoundPort taken;
    auto result = train(file, *dir_ / "errors_run",
                        "--nproc-per-node 2 --master-port " + std::to_string(taken.port()));
    EXPECT_NE(result.status, 0);
    EXPECT_THAT(result.output, HasSubstr("cannot host the rendezvous on 127.0.0.1:" +
                                         std::to_string(taken.port())));
    EXPECT_THAT(result.output, HasSubstr("--master-port"));
  }
  {
    // Rank 1 alone: nobody hosts the store.
    const auto start = std::chrono::steady_clock::now();
    auto result = test::run_command("RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                                    std::to_string(free_port()) + " '" + UNITRAIN_TEST_BINARY +
                                    "' train '" + file.string() + "' --out '" +
                                    (*dir_ / "errors_run2").string() + "'");
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_NE(result.status, 0);
    EXPECT_THAT(result.output, HasSubstr("error: rank 1: group of 2 (master 127.0.0.1:"));
    EXPECT_THAT(result.output, HasSubstr("cannot reach the rendezvous store"));
    EXPECT_LT(seconds, 30.0);
  }
  {
    auto result = train(file, *dir_ / "errors_run3",
                        "--nproc-per-node 2 --set distributed.backend=nccl");
    EXPECT_NE(result.status, 0);
    EXPECT_THAT(result.output, HasSubstr("distributed.backend \"nccl\" needs a LibTorch built with "
                                         "CUDA and NCCL"));
  }
  {
    auto result = test::run_unitrain("validate '" + file.string() +
                                      "' --set distributed.backend=mpi");
    EXPECT_NE(result.status, 0);
    EXPECT_THAT(result.output, HasSubstr(":/distributed/backend: unknown backend \"mpi\"; "
                                       "valid: auto, gloo, nccl"));
  }
}

}  // namespace
}  // namespace unitrain
