// TensorBoard event files: CRC-32C against published check values, the record framing
// and the Event encoding against bytes worked out by hand from the format, and a run's
// files read back by a reader written here from the format description and by Debian's
// python3-protobuf (with a message descriptor built in the script, no TensorFlow).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "test_util.h"
#include "train/tensorboard.h"
#include "unitrain/config.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"
#include "unitrain/trainer.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

// --- an independent reader ---------------------------------------------------------

// CRC-32C bit by bit (no table), as RFC 3720 B.4 describes it.
uint32_t crc32c_bitwise(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t masked(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

template <typename T>
T little_endian(const std::string& bytes, size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof(T));
  return value;
}

struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::map<std::string, float> scalars;
  int64_t session_status = 0;
};

uint64_t varint(const std::string& b, size_t& at) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const auto byte = static_cast<uint8_t>(b.at(at++));
    v |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return v;
  }
}

// Calls f(field, wire_type, payload or varint value) for each field of a message.
template <typename F>
void fields(const std::string& message, F f) {
  size_t at = 0;
  while (at < message.size()) {
    const uint64_t key = varint(message, at);
    const int field = static_cast<int>(key >> 3), type = static_cast<int>(key & 7);
    if (type == 0) {
      f(field, type, std::string(), varint(message, at));
    } else if (type == 1 || type == 5) {
      const size_t n = type == 1 ? 8 : 4;
      f(field, type, message.substr(at, n), 0);
      at += n;
    } else if (type == 2) {
      const uint64_t n = varint(message, at);
      f(field, type, message.substr(at, n), 0);
      at += n;
    } else {
      ADD_FAILURE() << "wire type " << type;
      return;
    }
  }
}

Event decode_event(const std::string& data) {
  Event e;
  fields(data, [&](int field, int, const std::string& payload, uint64_t v) {
    if (field == 1) e.wall_time = little_endian<double>(payload, 0);
    if (field == 2) e.step = static_cast<int64_t>(v);
    if (field == 3) e.file_version = payload;
    if (field == 6) {
      fields(payload, [&](int f, int, const std::string&, uint64_t s) {
        if (f == 1) e.session_status = static_cast<int64_t>(s);
      });
    }
    if (field == 5) {
      fields(payload, [&](int f, int, const std::string& value, uint64_t) {
        if (f != 1) return;
        std::string tag;
        float simple = NAN;
        fields(value, [&](int vf, int, const std::string& p, uint64_t) {
          if (vf == 1) tag = p;
          if (vf == 2) simple = little_endian<float>(p, 0);
        });
        e.scalars[tag] = simple;
      });
    }
  });
  return e;
}

// Every record of an event file, CRCs checked.
std::vector<Event> read_events(const fs::path& file) {
  const std::string bytes = test::read_file(file);
  std::vector<Event> events;
  size_t at = 0;
  while (at < bytes.size()) {
    EXPECT_GE(bytes.size() - at, 16u) << "torn record at byte " << at;
    if (bytes.size() - at < 16) break;
    const std::string length_bytes = bytes.substr(at, 8);
    const auto length = little_endian<uint64_t>(bytes, at);
    EXPECT_EQ(little_endian<uint32_t>(bytes, at + 8), masked(crc32c_bitwise(length_bytes)));
    const std::string data = bytes.substr(at + 12, length);
    EXPECT_EQ(little_endian<uint32_t>(bytes, at + 12 + length), masked(crc32c_bitwise(data)));
    events.push_back(decode_event(data));
    at += 16 + length;
  }
  return events;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string hex(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
  return out;
}

// --- CRC and encoding ---------------------------------------------------------------

// The check values of CRC-32C (RFC 3720 B.4 and the CRC catalogue).
TEST(Tensorboard, Crc32cKnownVectors) {
  EXPECT_EQ(train::crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(train::crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(train::crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(train::crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(train::crc32c(""), 0u);
  // Rotated right by 15: 0x2507C60D; plus 0xa282ead8 (mod 2^32).
  EXPECT_EQ(train::masked_crc32c("123456789"), 0xC78AB0E5u);
}

// The first record of every event file: 24 bytes of Event. Its length and length CRC
// (18 00.. a3 7f 4b 22) are the bytes every TensorFlow / tensorboardX file starts with.
TEST(Tensorboard, FileVersionRecordBytes) {
  const std::string event = train::file_version_event(1.5);
  // field 1 fixed64 (0x09) 1.5 = 0x3FF8000000000000; field 3 bytes (0x1a) of 13.
  EXPECT_EQ(hex(event), "09000000000000f83f1a0d" + hex("brain.Event:2"));
  const std::string record = train::tfrecord(event);
  ASSERT_EQ(record.size(), 8u + 4 + 24 + 4);
  EXPECT_EQ(hex(record.substr(0, 12)), "1800000000000000a37f4b22");
  EXPECT_EQ(record.substr(12, 24), event);
  EXPECT_EQ(little_endian<uint32_t>(record, 36), masked(crc32c_bitwise(event)));
}

TEST(Tensorboard, ScalarEventBytes) {
  const std::string event = train::scalars_event(2.0, 300, {{"lr", 0.5f}});
  // wall_time 2.0; step 300 = varint ac 02; summary (0x2a, 11 bytes) { value (0x0a, 9
  // bytes) { tag (0x0a, 2) "lr", simple_value (0x15) 0.5f = 0x3f000000 } }.
  EXPECT_EQ(hex(event), "090000000000000040" "10ac02" "2a0b" "0a09" "0a02" + hex("lr") + "150000003f");
  const Event decoded = decode_event(event);
  EXPECT_EQ(decoded.step, 300);
  EXPECT_EQ(decoded.scalars.at("lr"), 0.5f);
  // A session start (resume): session_log (0x32, 2 bytes) { status (0x08) START = 1 }.
  EXPECT_EQ(hex(train::session_start_event(2.0, 7)), "090000000000000040" "1007" "32020801");
}

TEST(Tensorboard, TagsOfMetricsLines) {
  const auto training = train::tensorboard_scalars(json::parse(
      R"({"step": 4, "task": "vqa2", "loss": 1.5, "lr": 0.25, "grad_norm": 3.0,
          "samples_per_s": 10.0, "loss_bce": 1.5})"));
  // The task's loss first, then the other keys in the line's (sorted) order.
  const train::Scalars want = {{"loss/vqa2", 1.5f}, {"grad_norm", 3.0f},
                               {"loss/vqa2/loss_bce", 1.5f}, {"lr", 0.25f},
                               {"samples_per_s", 10.0f}};
  EXPECT_EQ(training, want);
  const auto eval = train::tensorboard_scalars(
      json::parse(R"({"step": 4, "eval": {"coco": {"ap": 0.25, "ap50": 0.5}, "sst2": {"accuracy": 1}}})"));
  const train::Scalars want_eval = {{"eval/coco/ap", 0.25f}, {"eval/coco/ap50", 0.5f},
                                    {"eval/sst2/accuracy", 1.0f}};
  EXPECT_EQ(eval, want_eval);
  EXPECT_TRUE(train::tensorboard_scalars(json::parse(R"({"step": 4, "skipped": {}})")).empty());
}

// --- a run's files --------------------------------------------------------------------

Registry& registry() {
  static Registry* registry = [] {
    auto* r = new Registry();  // leaked: plugin libraries are never unloaded
    r->load_directory(test::fixture("good"));
    r->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
    return r;
  }();
  return *registry;
}

json two_task_experiment(int64_t max_steps) {
  json j = json::parse(R"({
    "name": "tensorboard_test", "seed": 3, "threads": 1,
    "model": {
      "encoders": {"text": {"type": "test_encoder", "modality": "text", "dim": 16}},
      "decoder": {"type": "test_decoder", "dim": 16},
      "heads": {"short": {"type": "test_head", "in_dim": 16, "num_labels": 2},
                "long": {"type": "test_head", "in_dim": 16, "num_labels": 2}}
    },
    "tasks": {
      "short": {"dataset": {"type": "test_dataset", "size": 64, "length": 7},
                "encoders": ["text"], "num_queries": 1, "batch_size": 16, "ratio": 0.7},
      "long": {"dataset": {"type": "test_dataset", "size": 64, "length": 15},
               "encoders": ["text"], "num_queries": 1, "batch_size": 8, "ratio": 0.3}
    },
    "training": {"max_steps": 6, "lr": 1e-2, "clip_grad_norm": 1.0, "log_every": 1,
                 "eval_every": 3},
    "data": {"workers": 1, "prefetch": 2},
    "log": {"tensorboard": true}
  })");
  j["training"]["max_steps"] = max_steps;
  return j;
}

Experiment experiment(const test::TempDir& dir, const json& j, const std::string& name) {
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

std::vector<json> metrics_lines(const fs::path& run) {
  std::vector<json> lines;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

// Every scalar of metrics.jsonl is in the event file, at its step, with its value as a
// float; the file starts with the file_version event.
void expect_events_match_metrics(const std::vector<Event>& events, const std::vector<json>& lines,
                                 int64_t from_step) {
  std::map<std::pair<int64_t, std::string>, float> written;
  for (const auto& e : events) {
    for (const auto& [tag, v] : e.scalars) written[{e.step, tag}] = v;
  }
  size_t expected = 0;
  for (const auto& line : lines) {
    if (line["step"].get<int64_t>() <= from_step) continue;
    for (const auto& [tag, value] : train::tensorboard_scalars(line)) {
      ++expected;
      const auto it = written.find({line["step"].get<int64_t>(), tag});
      ASSERT_NE(it, written.end()) << tag << " at step " << line["step"];
      EXPECT_EQ(it->second, value) << tag;
    }
  }
  EXPECT_EQ(written.size(), expected);
}

TEST(Tensorboard, RunWritesEventsOfEveryLineAndResumeAddsAFile) {
  test::TempDir dir;
  const fs::path run = dir / "run";
  Trainer(experiment(dir, two_task_experiment(6), "exp.json"), registry(), quiet(run)).train();
  ASSERT_TRUE(fs::is_directory(run / "tensorboard"));
  auto files = event_files(run / "tensorboard");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_THAT(files[0].filename().string(), ::testing::StartsWith("events.out.tfevents."));
  std::vector<Event> events = read_events(files[0]);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_TRUE(events[0].scalars.empty());
  const auto lines = metrics_lines(run);
  expect_events_match_metrics({events.begin() + 1, events.end()}, lines, -1);
  // 6 training lines with loss/<task>, lr and grad_norm; evaluations at 3 and 6.
  int64_t evaluations = 0, losses = 0;
  for (const auto& e : events) {
    evaluations += e.scalars.count("eval/short/accuracy");
    losses += e.scalars.count("loss/short") + e.scalars.count("loss/long");
    if (e.scalars.count("lr")) EXPECT_GT(e.scalars.at("lr"), 0.0f);
  }
  EXPECT_EQ(evaluations, 2);
  EXPECT_EQ(losses, 6);

  // Resumed to step 8: a second file, a session start at step 6, then steps 7 and 8.
  Trainer(experiment(dir, two_task_experiment(8), "exp8.json"), registry(), quiet(run, true)).train();
  files = event_files(run / "tensorboard");
  ASSERT_EQ(files.size(), 2u);
  // Names sort by their unix time (then a ".N" suffix): the first file is as it was.
  EXPECT_EQ(read_events(files[0]).size(), events.size());
  const fs::path second = files[1];
  const std::vector<Event> resumed = read_events(second);
  ASSERT_GE(resumed.size(), 3u);
  EXPECT_EQ(resumed[0].file_version, "brain.Event:2");
  EXPECT_EQ(resumed[1].session_status, 1);
  EXPECT_EQ(resumed[1].step, 6);
  expect_events_match_metrics({resumed.begin() + 2, resumed.end()}, metrics_lines(run), 6);
}

TEST(Tensorboard, OffByDefaultAndUnknownKeyIsAnError) {
  test::TempDir dir;
  json j = two_task_experiment(1);
  j.erase("log");
  const fs::path run = dir / "run";
  Trainer(experiment(dir, j, "exp.json"), registry(), quiet(run)).train();
  EXPECT_FALSE(fs::exists(run / "tensorboard"));
  EXPECT_TRUE(fs::exists(run / "tasks.json"));

  j["log"] = {{"tensorbord", true}};
  const std::string error = test::error_of<ConfigError>([&] { experiment(dir, j, "bad.json"); });
  EXPECT_THAT(error, HasSubstr("bad.json:/log/tensorbord: unknown key 'tensorbord'; valid keys: "
                               "tensorboard, report"));
  j["log"] = {{"tensorboard", "yes"}};
  EXPECT_THAT(test::error_of<ConfigError>([&] { experiment(dir, j, "bad2.json"); }),
              HasSubstr("bad2.json:/log/tensorboard: expected"));
}

// --force starts the folder over: the old event files, tasks.json and report.html go.
TEST(Tensorboard, ForceRemovesTheOldRunsFiles) {
  test::TempDir dir;
  const fs::path run = dir / "run";
  const Experiment e = experiment(dir, two_task_experiment(2), "exp.json");
  Trainer(e, registry(), quiet(run)).train();
  test::write_file(run / "report.html", "old");
  test::write_file(run / "tensorboard/events.out.tfevents.1.old", "old");
  TrainerConfig force = quiet(run);
  force.force = true;
  Trainer(e, registry(), force).train();
  EXPECT_FALSE(fs::exists(run / "report.html"));
  const auto files = event_files(run / "tensorboard");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_events(files[0]).front().file_version, "brain.Event:2");
  EXPECT_TRUE(fs::exists(run / "tasks.json"));
}

// Debian's python3-protobuf parses the file with an Event descriptor built in the script
// (field numbers from tensorflow/core/util/event.proto and summary.proto) and checks the
// record CRCs with its own CRC-32C.
TEST(Tensorboard, PythonProtobufReadsTheScalars) {
  if (test::run_command("/usr/bin/python3 -c 'import google.protobuf'").status != 0) {
    GTEST_SKIP() << "Debian's python3-protobuf is not installed (scripts/setup.sh installs it)";
  }
  test::TempDir dir;
  const fs::path run = dir / "run";
  Trainer(experiment(dir, two_task_experiment(4), "exp.json"), registry(), quiet(run)).train();
  const auto files = event_files(run / "tensorboard");
  ASSERT_EQ(files.size(), 1u);
  const auto result = test::run_command(
      "/usr/bin/python3 '" UNITRAIN_SOURCE_DIR "/tests/core/read_tfevents.py' '" +
      files[0].string() + "'");
  ASSERT_EQ(result.status, 0) << result.output;
  const json read = json::parse(result.output);
  ASSERT_TRUE(read.is_array());
  EXPECT_EQ(read[0]["file_version"], "brain.Event:2");
  std::vector<Event> mine = read_events(files[0]);
  ASSERT_EQ(read.size(), mine.size());
  for (size_t i = 1; i < mine.size(); ++i) {
    EXPECT_EQ(read[i]["step"].get<int64_t>(), mine[i].step);
    EXPECT_DOUBLE_EQ(read[i]["wall_time"].get<double>(), mine[i].wall_time);
    std::map<std::string, float> scalars;
    for (const auto& [tag, v] : read[i]["scalars"].items()) scalars[tag] = v.get<float>();
    EXPECT_EQ(scalars, mine[i].scalars);
  }
  // And the values are metrics.jsonl's.
  std::vector<Event> from_python;
  for (size_t i = 1; i < read.size(); ++i) {
    Event e;
    e.step = read[i]["step"];
    for (const auto& [tag, v] : read[i]["scalars"].items()) e.scalars[tag] = v.get<float>();
    from_python.push_back(e);
  }
  expect_events_match_metrics(from_python, metrics_lines(run), -1);
}

}  // namespace
}  // namespace unitrain
