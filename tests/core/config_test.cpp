// Experiment files: includes, overrides, origins and every schema error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_util.h"
#include "unitrain/config.h"
#include "unitrain/json_text.h"
#include "unitrain/registry.h"

namespace unitrain {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

Registry& fixture_registry() {
  static Registry* registry = [] {
    auto* r = new Registry();
    r->load_directory(test::fixture("good"));
    r->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
    return r;
  }();
  return *registry;
}

// A valid experiment on the test plugins.
const char* kValid = R"({
  "name": "t",
  "model": {
    "encoders": {"text": {"type": "test_encoder"}},
    "decoder": {"type": "test_decoder"},
    "heads": {"vqa2": {"type": "test_head", "num_labels": 3}}
  },
  "tasks": {"vqa2": {"dataset": {"type": "test_dataset"}, "encoders": ["text"]}}
})";

std::string config_error(const std::function<void()>& f) { return test::error_of<ConfigError>(f); }

std::string validate_error(const std::filesystem::path& file,
                           const std::vector<std::string>& overrides = {}) {
  return config_error([&] {
    Experiment e = load_experiment(file, overrides);
    validate_experiment(e, &fixture_registry());
  });
}

TEST(Experiment, ValidFillsSchemaAndPluginDefaults) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  Experiment e = load_experiment(dir / "x.json");
  validate_experiment(e, &fixture_registry());
  EXPECT_EQ(e.json["seed"], 0);
  EXPECT_EQ(e.json["device"], "cpu");
  EXPECT_EQ(e.json["model"]["heads"]["vqa2"],
            json::parse(R"({"type": "test_head", "in_dim": 16, "num_labels": 3})"));
  EXPECT_EQ(e.json["tasks"]["vqa2"]["num_queries"], 25);
  EXPECT_EQ(e.json["training"]["clip_grad_norm"], 0.1);
  EXPECT_EQ(e.json["model"]["share_decoders"], true);
}

// An experiment without a "scheduler" block gets the scheduler a loaded plugin library
// names as the default (task_schedulers: ratios); the core names none itself.
TEST(Experiment, SchedulerDefaultIsTheOneAPluginLibraryNames) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  Experiment e = load_experiment(dir / "x.json");
  validate_experiment(e, &fixture_registry());
  EXPECT_EQ(e.json["scheduler"], json::parse(R"({"type": "ratios"})"));

  Registry without_schedulers;
  without_schedulers.load_directory(test::fixture("good"));
  Experiment bare = load_experiment(dir / "x.json");
  const std::string message = config_error([&] { validate_experiment(bare, &without_schedulers); });
  EXPECT_THAT(message, HasSubstr("no \"scheduler\" block, and no loaded plugin library names a "
                                 "default scheduler"));

  Registry other_default;
  other_default.load_directory(test::fixture("good"));
  other_default.load_directory(test::fixture("default_scheduler"));
  Experiment first = load_experiment(dir / "x.json");
  validate_experiment(first, &other_default);
  EXPECT_EQ(first.json["scheduler"]["type"], "test_first_task");
}

TEST(Experiment, IncludesMergeDeeplyAndLaterWins) {
  test::TempDir dir;
  test::write_file(dir / "base/a.json", R"({"seed": 1, "training": {"lr": 0.1, "max_steps": 5}})");
  test::write_file(dir / "base/b.json", R"({"seed": 2, "training": {"lr": 0.2}})");
  test::write_file(dir / "x.json", R"({"include": ["base/a.json", "base/b.json"], "training": {"max_steps": 9}, "name": "x"})");
  Experiment e = load_experiment(dir / "x.json");
  EXPECT_EQ(e.json["seed"], 2);
  EXPECT_EQ(e.json["training"], json::parse(R"({"lr": 0.2, "max_steps": 9})"));
  EXPECT_FALSE(e.json.contains("include"));
  EXPECT_EQ(e.where("/seed"), (dir / "base/b.json").string() + ":/seed");
  EXPECT_EQ(e.where("/training/max_steps"), (dir / "x.json").string() + ":/training/max_steps");
}

TEST(Experiment, NestedIncludeIsRelativeToTheIncludingFile) {
  test::TempDir dir;
  test::write_file(dir / "a/b/inner.json", R"({"seed": 7})");
  test::write_file(dir / "a/outer.json", R"({"include": "b/inner.json"})");
  test::write_file(dir / "x.json", R"({"include": "a/outer.json", "name": "x"})");
  EXPECT_EQ(load_experiment(dir / "x.json").json["seed"], 7);
}

TEST(Experiment, OverridesParseJsonOrFallBackToString) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  Experiment e = load_experiment(dir / "x.json", {"training.lr=0.5", "name=run one",
                                                  "tasks.vqa2.encoders=[\"text\"]", "seed=3"});
  EXPECT_EQ(e.json["training"]["lr"], 0.5);
  EXPECT_EQ(e.json["name"], "run one");
  EXPECT_EQ(e.json["seed"], 3);
  EXPECT_EQ(e.where("/training/lr"), "--set training.lr:/training/lr");
  validate_experiment(e, &fixture_registry());
}

TEST(Experiment, ExpandsEnvironmentVariablesAndExperimentDir) {
  test::TempDir dir;
  setenv("UNITRAIN_TEST_DATA", "/data/x", 1);
  unsetenv("UNITRAIN_TEST_UNSET");
  test::write_file(dir / "sub/x.json", R"({"name": "${UNITRAIN_TEST_DATA}/coco",
    "description": "${UNITRAIN_TEST_UNSET:-${EXPERIMENT_DIR}/toy}", "output_dir": "$HOME"})");
  Experiment e = load_experiment(dir / "sub/x.json");
  EXPECT_EQ(e.json["name"], "/data/x/coco");
  EXPECT_EQ(e.json["description"], (dir / "sub").string() + "/toy");
  EXPECT_EQ(e.json["output_dir"], "$HOME");  // only ${...} is expanded
  test::write_file(dir / "y.json", R"({"name": "${UNITRAIN_TEST_UNSET}"})");
  EXPECT_THAT(config_error([&] { load_experiment(dir / "y.json"); }),
              HasSubstr(":/name: environment variable 'UNITRAIN_TEST_UNSET' is not set"));
}

TEST(Experiment, MalformedOverride) {
  EXPECT_THAT(config_error([] {
                test::TempDir dir;
                test::write_file(dir / "x.json", kValid);
                load_experiment(dir / "x.json", {"training.lr"});
              }),
              HasSubstr("--set 'training.lr': expected KEY.PATH=VALUE"));
}

TEST(ExperimentErrors, SyntaxErrorGivesFileLineColumn) {
  test::TempDir dir;
  test::write_file(dir / "x.json", "{\n  \"name\": \"x\",\n  \"seed\": 1,,\n}\n");
  auto message = validate_error(dir / "x.json");
  EXPECT_THAT(message, HasSubstr((dir / "x.json").string() + ":3:13: JSON syntax error"));
}

TEST(ExperimentErrors, NumberOutOfRangeGivesFileLineColumn) {
  test::TempDir dir;
  test::write_file(dir / "x.json", "{\n  \"name\": \"x\",\n  \"seed\": 1e999\n}\n");
  auto message = validate_error(dir / "x.json");
  // Column 15: the number's last digit.
  EXPECT_THAT(message, HasSubstr((dir / "x.json").string() +
                                 ":3:15: JSON syntax error: number overflow parsing '1e999'"));
  // An override that does not parse as JSON is a string, whatever the parser's reason.
  test::write_file(dir / "y.json", kValid);
  Experiment e = load_experiment(dir / "y.json", {"description=1e999"});
  EXPECT_EQ(e.json["description"], "1e999");
}

TEST(ExperimentErrors, UnknownKeyNamesFilePointerAndValidKeys) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  auto message = validate_error(dir / "x.json", {"model.heads.vqa2.hidden_dim=3"});
  EXPECT_THAT(message, HasSubstr(":/model/heads/vqa2/hidden_dim: unknown key 'hidden_dim'; valid keys: in_dim, num_labels"));
}

TEST(ExperimentErrors, UnknownKeyInIncludedFileNamesThatFile) {
  test::TempDir dir;
  test::write_file(dir / "base.json", R"({"model": {"heads": {"vqa2": {"hidden_dim": 3}}}})");
  json valid = json::parse(kValid);
  valid["include"] = "base.json";
  test::write_file(dir / "x.json", valid.dump());
  auto message = validate_error(dir / "x.json");
  EXPECT_THAT(message, HasSubstr((dir / "base.json").string() + ":/model/heads/vqa2/hidden_dim: unknown key"));
}

TEST(ExperimentErrors, MisspelledTopLevelKeySuggestsNearest) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  auto message = validate_error(dir / "x.json", {"trainig.lr=1"});
  EXPECT_THAT(message, HasSubstr(":/trainig: unknown key 'trainig'; valid keys: training,"));
}

TEST(ExperimentErrors, DataWorkersAndPrefetchOutOfRange) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  EXPECT_THAT(validate_error(dir / "x.json", {"data.workers=-2"}),
              HasSubstr("/data/workers: expected 0 (one budget from the available cores) or a "
                        "positive number of threads per task, found -2"));
  EXPECT_THAT(validate_error(dir / "x.json", {"data.prefetch=0"}),
              HasSubstr("/data/prefetch: expected a positive integer, found 0"));
  EXPECT_THAT(validate_error(dir / "x.json", {"data.max_queued_mb=-1"}),
              HasSubstr("/data/max_queued_mb: expected 0 (an eighth of the memory, 256 MiB to "
                        "4 GiB) or a positive number of MiB, found -1"));
  EXPECT_THAT(validate_error(dir / "x.json", {"data.max_queued_mb=\"big\""}),
              HasSubstr("/data/max_queued_mb"));
  EXPECT_THAT(validate_error(dir / "x.json", {"data.worker_nice=20"}),
              HasSubstr("/data/worker_nice: expected an integer from 0 (the training thread's "
                        "priority) to 19 (the lowest), found 20"));
  EXPECT_THAT(validate_error(dir / "x.json", {"data.worker_nice=-1"}), HasSubstr("/data/worker_nice"));
}

TEST(ExperimentErrors, UnknownTrainingKey) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  auto message = validate_error(dir / "x.json", {"training.max_step=1"});
  EXPECT_THAT(message, HasSubstr("--set training.max_step:/training/max_step: unknown key 'max_step'; valid keys: max_steps"));
}

TEST(ExperimentErrors, WrongType) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  EXPECT_THAT(validate_error(dir / "x.json", {"seed=\"one\""}),
              HasSubstr("--set seed:/seed: expected an integer, found \"one\""));
  EXPECT_THAT(validate_error(dir / "x.json", {"tasks.vqa2.batch_size=2.5"}),
              HasSubstr(":/tasks/vqa2/batch_size: expected an integer, found 2.5"));
  EXPECT_THAT(validate_error(dir / "x.json", {"training.lr=\"fast\""}),
              HasSubstr(":/training/lr: expected a number, found a string \"fast\""));
}

TEST(ExperimentErrors, MissingRequiredKey) {
  test::TempDir dir;
  json e = json::parse(kValid);
  e["tasks"]["vqa2"].erase("dataset");
  test::write_file(dir / "x.json", e.dump());
  EXPECT_THAT(validate_error(dir / "x.json"),
              HasSubstr((dir / "x.json").string() + ":/tasks/vqa2: missing required key 'dataset'"));
  e = json::parse(kValid);
  e.erase("name");
  test::write_file(dir / "y.json", e.dump());
  EXPECT_THAT(validate_error(dir / "y.json"), HasSubstr(":/: missing required key 'name'"));
}

TEST(ExperimentErrors, TaskWithoutHead) {
  test::TempDir dir;
  json e = json::parse(kValid);
  e["model"]["heads"] = json::object();
  test::write_file(dir / "x.json", e.dump());
  EXPECT_THAT(validate_error(dir / "x.json"),
              HasSubstr(":/model/heads: missing required key 'vqa2' (every task needs a head)"));
}

TEST(ExperimentErrors, UnknownPluginListsRegisteredOnesNearestFirst) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  auto message = validate_error(dir / "x.json", {"model.heads.vqa2.type=test_haed"});
  EXPECT_THAT(message, HasSubstr(":/model/heads/vqa2/type: unknown head 'test_haed'; registered heads: test_head"));
}

TEST(ExperimentErrors, UnknownEncoderName) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  auto message = validate_error(dir / "x.json", {"tasks.vqa2.encoders=[\"txt\"]"});
  EXPECT_THAT(message, HasSubstr(":/tasks/vqa2/encoders/0: unknown encoder 'txt'; encoders in /model/encoders: text"));
}

TEST(ExperimentErrors, ObjectsFromNamesATask) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  auto message = validate_error(dir / "x.json", {"tasks.vqa2.objects_from=coco"});
  EXPECT_THAT(message, HasSubstr(":/tasks/vqa2/objects_from: expected the name of another task "
                                 "(vqa2), found \"coco\""));
}

TEST(ExperimentErrors, ObjectsBoxesIsABooleanWithObjectsFrom) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  auto message = validate_error(dir / "x.json", {"tasks.vqa2.objects_boxes=1"});
  EXPECT_THAT(message, HasSubstr(":/tasks/vqa2/objects_boxes: expected true or false, found 1"));
  message = validate_error(dir / "x.json", {"tasks.vqa2.objects_boxes=true"});
  EXPECT_THAT(message, HasSubstr(":/tasks/vqa2/objects_boxes: needs objects_from (the task "
                                 "whose boxes it reads)"));
}

TEST(ExperimentErrors, IncludeCycle) {
  test::TempDir dir;
  test::write_file(dir / "a.json", R"({"include": "b.json"})");
  test::write_file(dir / "b.json", R"({"include": "a.json"})");
  auto message = validate_error(dir / "a.json");
  EXPECT_THAT(message, HasSubstr("include cycle: a.json -> b.json -> a.json"));
}

TEST(ExperimentErrors, MissingIncludeFile) {
  test::TempDir dir;
  test::write_file(dir / "x.json", R"({"include": ["nope.json"], "name": "x"})");
  auto message = validate_error(dir / "x.json");
  EXPECT_THAT(message, HasSubstr((dir / "x.json").string() + ":/include/0: included file 'nope.json' not found"));
}

TEST(ExperimentErrors, MissingExperimentFile) {
  EXPECT_THAT(validate_error("/nonexistent/x.json"), HasSubstr("experiment file not found: '/nonexistent/x.json'"));
}

TEST(ValidateCli, PrintsResolvedJsonAndExitsZero) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  auto result = test::run_unitrain("--plugin-dir " + test::fixture("good") + " validate " +
                                   (dir / "x.json").string() + " --set training.lr=0.25");
  ASSERT_EQ(result.status, 0) << result.output;
  auto resolved = json::parse(result.output);
  EXPECT_EQ(resolved["training"]["lr"], 0.25);
  EXPECT_EQ(resolved["model"]["decoder"]["dim"], 16);
}

// Invalid UTF-8 from the command line (or any user file) is printed replaced, not thrown.
TEST(ValidateCli, InvalidUtf8InASetValueIsPrintedReplaced) {
  test::TempDir dir;
  test::write_file(dir / "x.json", kValid);
  auto result = test::run_unitrain("--plugin-dir " + test::fixture("good") + " validate " +
                                   (dir / "x.json").string() + " --set \"description=$(printf 'caf\\303 \\377')\"");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(json::parse(result.output)["description"], "caf\xef\xbf\xbd \xef\xbf\xbd");
}

TEST(JsonText, ReplacesInvalidUtf8AndCutsOnCodePointBoundaries) {
  EXPECT_EQ(json_text(json{{"k", "ok \xe2\x82"}}), "{\"k\":\"ok \xef\xbf\xbd\"}");
  EXPECT_EQ(json_text(json::array({1, 2}), 2), "[\n  1,\n  2\n]");
  const std::string euro = "ab\xe2\x82\xac";  // "ab€": the euro sign is 3 bytes
  EXPECT_EQ(utf8_prefix(euro, 5), euro);
  EXPECT_EQ(utf8_prefix(euro, 4), "ab");
  EXPECT_EQ(utf8_prefix(euro, 3), "ab");
  EXPECT_EQ(utf8_prefix(euro, 2), "ab");
  EXPECT_EQ(utf8_prefix(euro, 1), "a");
  EXPECT_EQ(shorten("abcdefgh", 8), "abcdefgh");
  EXPECT_EQ(shorten("abcdefghi", 8), "abcde...");
  EXPECT_EQ(shorten("abcd\xe2\x82\xacxyz", 9), "abcd...");  // never half a euro sign
}

TEST(ValidateCli, ErrorsArePrefixedAndExitNonZero) {
  test::TempDir dir;
  test::write_file(dir / "x.json", "{\"name\": ");
  auto result = test::run_unitrain("--plugin-dir " + test::fixture("good") + " validate " +
                                   (dir / "x.json").string());
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.output.rfind("error: " + (dir / "x.json").string() + ":1:10: JSON syntax error", 0), 0u)
      << result.output;
}

TEST(ValidateCli, PluginDirsAreRelativeToTheExperiment) {
  test::TempDir dir;
  json e = json::parse(kValid);
  std::filesystem::create_directories(dir / "exp");
  std::filesystem::copy(test::fixture("good"), dir / "exp/my_plugins");
  e["plugin_dirs"] = {"my_plugins"};
  test::write_file(dir / "exp/x.json", e.dump());
  auto result = test::run_unitrain("validate " + (dir / "exp/x.json").string());
  EXPECT_EQ(result.status, 0) << result.output;
}

// A plugin folder named in an included file is relative to that file, as a folder named
// in the top file is relative to the top file.
TEST(ValidateCli, PluginDirsInAnIncludedFileAreRelativeToThatFile) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "common");
  std::filesystem::copy(test::fixture("good"), dir / "common/my_plugins");
  test::write_file(dir / "common/plugins.json", R"({"plugin_dirs": ["my_plugins"]})");
  json e = json::parse(kValid);
  e["include"] = "common/plugins.json";
  test::write_file(dir / "x.json", e.dump());
  auto result = test::run_unitrain("validate " + (dir / "x.json").string());
  EXPECT_EQ(result.status, 0) << result.output;
  // The same folder named with --set is relative to the current folder.
  auto set = test::run_unitrain("validate " + (dir / "x.json").string() + " --set 'plugin_dirs=[\"" +
                                (dir / "common/my_plugins").string() + "\"]'");
  EXPECT_EQ(set.status, 0) << set.output;
  auto wrong = test::run_unitrain("validate " + (dir / "x.json").string() +
                                  " --set 'plugin_dirs=[\"my_plugins\"]'");
  EXPECT_EQ(wrong.status, 1) << wrong.output;
}

// null removes a key: an included component dropped by the including file or --set.
TEST(Experiment, NullRemovesAnIncludedKey) {
  test::TempDir dir;
  json base = json::parse(kValid);
  base["model"]["encoders"]["image"] = {{"type", "test_encoder"}, {"modality", "image"}};
  test::write_file(dir / "base.json", base.dump());
  test::write_file(dir / "x.json", R"({"include": "base.json", "model": {"encoders": {"image": null}}})");
  Experiment e = load_experiment(dir / "x.json");
  EXPECT_FALSE(e.json["model"]["encoders"].contains("image")) << e.json.dump();
  EXPECT_TRUE(e.json["model"]["encoders"].contains("text"));
  validate_experiment(e, &fixture_registry());

  test::write_file(dir / "y.json", R"({"include": "base.json"})");
  Experiment set = load_experiment(dir / "y.json", {"model.encoders.image=null", "nothing.here=null"});
  EXPECT_FALSE(set.json["model"]["encoders"].contains("image")) << set.json.dump();
  EXPECT_FALSE(set.json.contains("nothing"));
  validate_experiment(set, &fixture_registry());
  // Removing what a task reads is reported where the task names it.
  EXPECT_THAT(validate_error(dir / "y.json", {"model.encoders.text=null"}),
              HasSubstr(":/tasks/vqa2/encoders/0: unknown encoder 'text'"));
}

}  // namespace
}  // namespace unitrain
