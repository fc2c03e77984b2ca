// The plugin loader and registry: real .so files, one test per failure mode.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include "test_util.h"
#include "unitrain/decoder.h"
#include "unitrain/encoder.h"
#include "unitrain/head.h"
#include "unitrain/dataset.h"
#include "unitrain/registry.h"

namespace unitrain {
namespace {

using ::testing::HasSubstr;
using test::fixture;
using test::error_of;

std::string lib(const std::string& folder, const std::string& name) {
  return fixture(folder) + "/lib" + name + ".so";
}
std::string good_lib() { return lib("good", "unitrain_test_plugins"); }

TEST(Registry, LoadsEveryKindFromOneLibrary) {
  Registry registry;
  registry.load_file(good_lib());
  auto all = registry.list();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(registry.kinds(), (std::vector<std::string>{"dataset", "decoder", "encoder", "head"}));
  const PluginInfo& head = registry.find("head", "test_head");
  EXPECT_EQ(head.version, "0.1.0");
  EXPECT_EQ(head.file, good_lib());
  EXPECT_EQ(head.defaults, nlohmann::json::parse(R"({"in_dim": 16, "num_labels": 2})"));
  EXPECT_EQ(head.abi_major, UNITRAIN_ABI_MAJOR);
}

TEST(Registry, LoadingTheSameFileTwiceIsANoOp) {
  Registry registry;
  registry.load_file(good_lib());
  registry.load_file(good_lib());
  EXPECT_EQ(registry.list().size(), 4u);
}

TEST(Registry, CreatesWorkingModulesThroughInterfaces) {
  Registry registry;
  registry.load_directory(fixture("good"));
  auto encoder = registry.create_as<Encoder>("encoder", "test_encoder", {{"dim", 8}}, "t.json:/e");
  auto decoder = registry.create_as<Decoder>("decoder", "test_decoder", {{"dim", 8}}, "t.json:/d");
  auto head = registry.create_as<Head>("head", "test_head", {{"in_dim", 8}, {"num_labels", 3}}, "t.json:/h");
  decoder->add_task("t", 2);
  Batch batch;
  batch.input_ids = torch::tensor({{1, 2, 3}, {3, 2, 0}});
  batch.text_mask = torch::tensor({{false, false, false}, {false, false, true}});
  batch.labels = torch::tensor({0, 2});
  batch.size = 2;
  auto memory = encoder->encode(batch, 0);
  EXPECT_EQ(memory.memory.sizes(), (std::vector<int64_t>{2, 3, 8}));
  auto out = head->run(decoder->decode("t", memory), batch, true);
  EXPECT_EQ(out.outputs.at("logits").sizes(), (std::vector<int64_t>{2, 3}));
  out.losses.at("loss_ce").backward();
  ASSERT_TRUE(head->parameters()[0].grad().defined());
  EXPECT_GT(encoder->parameters()[0].grad().abs().sum().item<double>(), 0.0);
}

TEST(Registry, OptionsAreMergedOverDefaults) {
  Registry registry;
  registry.load_file(good_lib());
  auto options = registry.resolve_options("head", "test_head", {{"num_labels", 5}}, "x.json:/model/heads/a");
  EXPECT_EQ(options, nlohmann::json::parse(R"({"in_dim": 16, "num_labels": 5})"));
}

TEST(Registry, UnknownOptionKeyNamesPointerAndValidKeys) {
  Registry registry;
  registry.load_file(good_lib());
  auto message = error_of<ConfigError>([&] {
    registry.resolve_options("head", "test_head", {{"hidden_dim", 5}}, "x.json:/model/heads/vqa2");
  });
  EXPECT_THAT(message, HasSubstr("x.json:/model/heads/vqa2/hidden_dim: unknown key 'hidden_dim'"));
  EXPECT_THAT(message, HasSubstr("valid keys: in_dim, num_labels"));
}

TEST(Registry, WrongOptionTypeIsRejected) {
  Registry registry;
  registry.load_file(good_lib());
  auto message = error_of<ConfigError>([&] {
    registry.resolve_options("head", "test_head", {{"num_labels", "two"}}, "x.json:/model/heads/a");
  });
  EXPECT_THAT(message, HasSubstr("x.json:/model/heads/a/num_labels: expected an integer, found a string \"two\""));
}

TEST(Registry, UnknownNameListsRegisteredOnesNearestFirst) {
  Registry registry;
  registry.load_file(good_lib());
  registry.load_file(lib("throwing", "unitrain_fixture_throwing"));
  auto message = error_of<RegistryError>([&] { registry.find("head", "test_haed"); });
  EXPECT_THAT(message, HasSubstr("unknown head 'test_haed'; registered heads: test_head, throwing_head"));
}

TEST(Registry, UnknownNameSaysWhichFoldersWereSearched) {
  Registry registry;
  registry.load_file(good_lib());
  EXPECT_THAT(error_of<RegistryError>([&] { registry.find("head", "nope"); }),
              HasSubstr("registered heads: test_head (no plugin folder was searched)"));
  const auto folder = test::fixture("good");
  registry.load_directory(folder, "--plugin-dir");
  EXPECT_THAT(error_of<RegistryError>([&] { registry.find("head", "nope"); }),
              HasSubstr("(plugin folders searched: " + folder + " (--plugin-dir))"));
  EXPECT_THAT(error_of<RegistryError>([&] { registry.find("sampler", "nope"); }),
              HasSubstr("unknown sampler 'nope': no sampler plugins are registered (plugin folders "
                        "searched: " + folder + " (--plugin-dir); add a folder with --plugin-dir"));
}

TEST(Registry, FactoryExceptionMessageIsPassedThrough) {
  Registry registry;
  registry.load_file(lib("throwing", "unitrain_fixture_throwing"));
  auto message = error_of<RegistryError>([&] {
    registry.create("head", "throwing_head", nlohmann::json::object(), "x.json:/model/heads/a");
  });
  EXPECT_THAT(message, HasSubstr("x.json:/model/heads/a: head 'throwing_head'"));
  EXPECT_THAT(message, HasSubstr("cannot open weights file 'missing.bin'"));
}

TEST(Registry, FactoryErrorFromInvalidOptionValue) {
  Registry registry;
  registry.load_file(good_lib());
  auto message = error_of<RegistryError>([&] {
    registry.create("encoder", "test_encoder", {{"modality", "audio"}}, "x.json:/model/encoders/a");
  });
  EXPECT_THAT(message, HasSubstr("modality must be \"text\" or \"image\", got \"audio\""));
}

TEST(Registry, DuplicateKindAndNameNamesBothFiles) {
  Registry registry;
  registry.load_file(good_lib());
  auto message = error_of<RegistryError>(
      [&] { registry.load_file(lib("duplicate", "unitrain_fixture_duplicate")); });
  EXPECT_THAT(message, HasSubstr("duplicate plugin: head 'test_head'"));
  EXPECT_THAT(message, HasSubstr(good_lib()));
  EXPECT_THAT(message, HasSubstr(lib("duplicate", "unitrain_fixture_duplicate")));
}

TEST(PluginLoad, MissingFile) {
  Registry registry;
  auto message = error_of<PluginLoadError>([&] { registry.load_file("/nonexistent/libx.so"); });
  EXPECT_THAT(message, HasSubstr("plugin file not found: '/nonexistent/libx.so'"));
}

TEST(PluginLoad, NotASharedLibrary) {
  test::TempDir dir;
  test::write_file(dir / "libfake.so", "this is text, not ELF");
  Registry registry;
  auto message = error_of<PluginLoadError>([&] { registry.load_file(dir / "libfake.so"); });
  EXPECT_THAT(message, HasSubstr("is not a shared library"));
  EXPECT_THAT(message, HasSubstr("libfake.so"));
}

TEST(PluginLoad, TruncatedLibraryReportsDlerror) {
  test::TempDir dir;
  auto bytes = test::read_file(good_lib());
  test::write_file(dir / "libtruncated.so", bytes.substr(0, 200));
  Registry registry;
  auto message = error_of<PluginLoadError>([&] { registry.load_file(dir / "libtruncated.so"); });
  EXPECT_THAT(message, HasSubstr("cannot load plugin library"));
  EXPECT_THAT(message, HasSubstr("libtruncated.so"));
}

TEST(PluginLoad, NoEntryPoint) {
  Registry registry;
  auto message = error_of<PluginLoadError>(
      [&] { registry.load_file(lib("no_entry", "unitrain_fixture_no_entry")); });
  EXPECT_THAT(message, HasSubstr("is not a unitrain plugin"));
  EXPECT_THAT(message, HasSubstr("unitrain_plugin_list_v1"));
}

TEST(PluginLoad, UndefinedSymbolFailsAtLoadTime) {
  Registry registry;
  auto message = error_of<PluginLoadError>(
      [&] { registry.load_file(lib("undefined_symbol", "unitrain_fixture_undefined_symbol")); });
  EXPECT_THAT(message, HasSubstr("undefined symbol: unitrain_fixture_function_that_does_not_exist"));
}

TEST(PluginLoad, AbiMajorMismatch) {
  Registry registry;
  auto message = error_of<PluginLoadError>(
      [&] { registry.load_file(lib("abi_major", "unitrain_fixture_abi_major")); });
  EXPECT_THAT(message, HasSubstr("uses plugin ABI 99.0, but this unitrain uses ABI 2.0"));
}

// A library may name one of its plugins as the default of that kind (the scheduler an
// experiment without a "scheduler" block gets); a kind has one default.
TEST(PluginDefaults, ALibraryNamesTheDefaultOfAKind) {
  Registry registry;
  EXPECT_FALSE(registry.default_plugin("scheduler").has_value());
  registry.load_file(std::string(UNITRAIN_TEST_PLUGIN_DIR) + "/libunitrain_task_schedulers.so");
  EXPECT_EQ(registry.default_plugin("scheduler"), std::optional<std::string>("ratios"));
  EXPECT_FALSE(registry.default_plugin("head").has_value());
  registry.load_file(good_lib());  // names no default: nothing changes
  EXPECT_EQ(registry.default_plugin("scheduler"), std::optional<std::string>("ratios"));

  const auto other = lib("default_scheduler", "unitrain_fixture_default_scheduler");
  auto message = error_of<RegistryError>([&] { registry.load_file(other); });
  EXPECT_THAT(message, HasSubstr("two default schedulers"));
  EXPECT_THAT(message, HasSubstr("libunitrain_task_schedulers.so' names 'ratios'"));
  EXPECT_THAT(message, HasSubstr(other + "' names 'test_first_task'"));
  EXPECT_FALSE(registry.contains("scheduler", "test_first_task"));  // refused whole

  Registry alone;
  alone.load_file(other);
  EXPECT_EQ(alone.default_plugin("scheduler"), std::optional<std::string>("test_first_task"));
}

TEST(PluginDefaults, ADefaultTheLibraryDoesNotDefineIsRefused) {
  Registry registry;
  const auto file = lib("foreign_default", "unitrain_fixture_foreign_default");
  auto message = error_of<PluginLoadError>([&] { registry.load_file(file); });
  EXPECT_THAT(message, HasSubstr("names scheduler 'ratios' as the default scheduler, but "
                                 "defines no scheduler of that name"));
  EXPECT_FALSE(registry.default_plugin("scheduler").has_value());
}

TEST(PluginLoad, AnotherLibtorchInstance) {
  Registry registry;
  auto file = lib("other_torch", "unitrain_fixture_other_torch");
  auto message = error_of<PluginLoadError>([&] { registry.load_file(file); });
  EXPECT_THAT(message, HasSubstr("was built against another libtorch"));
  EXPECT_THAT(message, HasSubstr(file));
}

TEST(PluginLoad, AnotherLibtorchVersion) {
  Registry registry;
  auto message = error_of<PluginLoadError>(
      [&] { registry.load_file(lib("other_torch_version", "unitrain_fixture_other_torch_version")); });
  EXPECT_THAT(message, HasSubstr("was built against LibTorch 1.4"));
}

TEST(PluginLoad, MissingDirectory) {
  Registry registry;
  auto message = error_of<PluginLoadError>([&] { registry.load_directory("/nonexistent/dir"); });
  EXPECT_THAT(message, HasSubstr("plugin directory not found: '/nonexistent/dir'"));
}

// --- trust: loading a plugin runs its code ------------------------------------------

// A copy of the good test library in a fresh folder of this user.
struct CopiedPlugin {
  test::TempDir dir;
  std::filesystem::path folder = dir / "plugins";
  std::filesystem::path file = folder / "libunitrain_test_plugins.so";
  CopiedPlugin() {
    std::filesystem::create_directories(folder);
    std::filesystem::copy_file(good_lib(), file);
  }
};

TEST(PluginTrust, OwnFilesInOwnFoldersLoad) {
  CopiedPlugin copy;
  Registry registry;
  registry.load_directory(copy.folder);
  EXPECT_TRUE(registry.contains("head", "test_head"));
}

TEST(PluginTrust, WorldWritableFileIsRefused) {
  CopiedPlugin copy;
  std::filesystem::permissions(copy.file, std::filesystem::perms::others_write,
                               std::filesystem::perm_options::add);
  Registry registry;
  auto message = error_of<PluginLoadError>([&] { registry.load_file(copy.file); });
  EXPECT_THAT(message, HasSubstr("refusing to load plugin '" + copy.file.string() + "': '" +
                                 copy.file.string() + "' is world-writable (mode 0757)"));
  EXPECT_THAT(message, HasSubstr("chmod o-w '" + copy.file.string() + "'"));
  EXPECT_FALSE(registry.contains("head", "test_head"));
}

TEST(PluginTrust, WorldWritableFolderIsRefusedEvenWithTheStickyBit) {
  CopiedPlugin copy;
  std::filesystem::permissions(copy.folder, std::filesystem::perms::others_all,
                               std::filesystem::perm_options::add);
  Registry registry;
  auto message = error_of<PluginLoadError>([&] { registry.load_directory(copy.folder); });
  EXPECT_THAT(message, HasSubstr("refusing to load plugins from '" + copy.folder.string() +
                                 "': '" + copy.folder.string() + "' is world-writable (mode 0757)"));
  // The file in it: anyone could have replaced it.
  auto file = error_of<PluginLoadError>([&] { registry.load_file(copy.file); });
  EXPECT_THAT(file, HasSubstr("refusing to load plugin '" + copy.file.string() + "'"));

  // With the sticky bit others cannot replace the file (it loads), but they could still
  // add libraries to the folder (it is refused).
  std::filesystem::permissions(copy.folder, std::filesystem::perms::sticky_bit,
                               std::filesystem::perm_options::add);
  EXPECT_THAT(error_of<PluginLoadError>([&] { registry.load_directory(copy.folder); }),
              HasSubstr("mode 1757"));
  registry.load_file(copy.file);
  EXPECT_TRUE(registry.contains("head", "test_head"));
}

TEST(PluginTrust, SymbolicLinkFromAWorldWritableFolderIsRefused) {
  CopiedPlugin copy;
  const auto open_folder = copy.dir / "open";
  std::filesystem::create_directories(open_folder);
  std::filesystem::permissions(open_folder, std::filesystem::perms::all);
  std::filesystem::create_symlink(copy.file, open_folder / "libevil.so");
  Registry registry;
  auto message = error_of<PluginLoadError>([&] { registry.load_file(open_folder / "libevil.so"); });
  EXPECT_THAT(message, HasSubstr("'" + open_folder.string() + "' is world-writable"));
}

TEST(PluginTrust, FilesOfAnotherUserAreRefused) {
  CopiedPlugin copy;
  if (::chown(copy.file.c_str(), 65534, 65534) != 0) {
    GTEST_SKIP() << "cannot give a file to uid 65534 (needs root)";
  }
  Registry registry;
  auto message = error_of<PluginLoadError>([&] { registry.load_file(copy.file); });
  EXPECT_THAT(message, HasSubstr("' is owned by uid 65534"));
  EXPECT_THAT(message, HasSubstr("not by you (uid " + std::to_string(::geteuid()) + ") or root"));
}

TEST(PluginTrust, RelativePluginPathEntriesAreRefused) {
  auto result = test::run_command("UNITRAIN_PLUGIN_PATH=plugins:/tmp '" +
                                  std::string(UNITRAIN_TEST_BINARY) + "' plugins");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("error: UNITRAIN_PLUGIN_PATH entry 'plugins' is a relative "
                                       "path: it would load plugins from whatever folder unitrain "
                                       "is started in; give an absolute path"));
}

// The CLI turns each of these into "error: ..." on stderr and a non-zero status.
TEST(PluginCli, ErrorsArePrefixedAndExitNonZero) {
  for (const std::string folder : {"no_entry", "abi_major", "other_torch", "undefined_symbol"}) {
    auto result = test::run_unitrain("--plugin-dir " + fixture(folder) + " plugins");
    EXPECT_EQ(result.status, 1) << folder;
    EXPECT_EQ(result.output.rfind("error: ", 0), 0u) << result.output;
  }
  auto missing = test::run_unitrain("--plugin /nonexistent/libx.so plugins");
  EXPECT_EQ(missing.status, 1);
  EXPECT_THAT(missing.output, HasSubstr("error: plugin file not found"));
}

TEST(PluginCli, ListsPluginsAsJson) {
  auto result = test::run_unitrain("--plugin-dir " + fixture("good") + " plugins --json --kind head");
  ASSERT_EQ(result.status, 0) << result.output;
  auto list = nlohmann::json::parse(result.output);
  ASSERT_TRUE(list.is_array());
  bool found = false;
  for (const auto& p : list) {
    EXPECT_EQ(p["kind"], "head");
    for (const char* key : {"kind", "name", "version", "file", "origin", "description"}) {
      EXPECT_TRUE(p.contains(key)) << key;
    }
    if (p["name"] == "test_head") {
      found = true;
      EXPECT_EQ(p["origin"], "--plugin-dir");
    }
  }
  EXPECT_TRUE(found);
}

// Each plugin says where it came from and why that place was searched.
TEST(PluginCli, SaysWhyEachLibraryWasLoaded) {
  const std::string good = fixture("good");
  auto table = test::run_unitrain("--plugin-dir " + good + " plugins");
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("  (from --plugin-dir)"));
  // The real plugins of this build tree come from its plugin folder.
  EXPECT_THAT(table.output,
              HasSubstr("  (from the build's plugin folder (no installed one beside the executable))"));
  auto show = test::run_unitrain("--plugin " + good_lib() + " plugins show test_head");
  ASSERT_EQ(show.status, 0) << show.output;
  EXPECT_THAT(show.output, HasSubstr("(" + good_lib() + ")  (from --plugin)"));
  auto env = test::run_command("UNITRAIN_PLUGIN_PATH='" + good + "' '" UNITRAIN_TEST_BINARY +
                               std::string("' plugins --json --kind head"));
  ASSERT_EQ(env.status, 0) << env.output;
  bool found = false;
  for (const auto& p : nlohmann::json::parse(env.output)) {
    if (p["name"] != "test_head") continue;
    found = true;
    EXPECT_EQ(p["origin"], "UNITRAIN_PLUGIN_PATH");
  }
  EXPECT_TRUE(found) << env.output;
  // A program that loads a library without saying why leaves the origin empty.
  Registry registry;
  registry.load_file(good_lib());
  EXPECT_EQ(registry.find("head", "test_head").origin, "");
}

TEST(PluginCli, ShowPrintsDefaultsAndReadme) {
  auto result = test::run_unitrain("--plugin-dir " + fixture("good") + " plugins show test_head");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("\"num_labels\": 2"));
  EXPECT_THAT(result.output, HasSubstr("A linear layer on the first query"));
  auto unknown = test::run_unitrain("--plugin-dir " + fixture("good") + " plugins show test_haed");
  EXPECT_EQ(unknown.status, 1);
  EXPECT_THAT(unknown.output, HasSubstr("error: no plugin named 'test_haed'; registered: test_head"));
}

TEST(PluginCli, VersionAndHelp) {
  auto version = test::run_unitrain("--version");
  EXPECT_EQ(version.status, 0);
  EXPECT_THAT(version.output, HasSubstr("unitrain 0.1.0"));
  for (const std::string sub : {"plugins", "validate", "plugins show"}) {
    auto help = test::run_unitrain(sub + " --help");
    EXPECT_EQ(help.status, 0) << sub;
    EXPECT_THAT(help.output, HasSubstr("Usage:")) << sub;
  }
}

}  // namespace
}  // namespace unitrain
