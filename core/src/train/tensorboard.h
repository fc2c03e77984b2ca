// TensorBoard event files (RUN/tensorboard/events.out.tfevents.<time>.<host>), written
// without TensorFlow or protobuf: the record framing and the few Event fields that
// scalars need are encoded here. docs/report.md gives the format and the tags.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace unitrain::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses it.
uint32_t crc32c(std::string_view bytes);
// TFRecord's masked CRC: ((c >> 15) | (c << 17)) + 0xa282ead8.
uint32_t masked_crc32c(std::string_view bytes);

// One TFRecord: u64 little-endian length, masked CRC of those 8 bytes, the data, masked
// CRC of the data.
std::string tfrecord(std::string_view data);

// Serialized Event protos (tensorflow/core/util/event.proto).
// The first Event of a file: {wall_time = 1, file_version = 3 "brain.Event:2"}.
std::string file_version_event(double wall_time);
// {wall_time, step = 2, summary = 5 {value = 1 {tag = 1, simple_value = 2}...}}.
using Scalars = std::vector<std::pair<std::string, float>>;
std::string scalars_event(double wall_time, int64_t step, const Scalars& scalars);
// {wall_time, step, session_log = 6 {status = 1 START}}: TensorBoard drops the events
// of later steps it read before (a run resumed from a checkpoint trains them again).
std::string session_start_event(double wall_time, int64_t step);

// The scalars of one metrics.jsonl line: a training line gives loss/<task>, each named
// loss as loss/<task>/<name>, lr, grad_norm and samples_per_s; an evaluation line
// gives eval/<task>/<metric>. Other lines give none.
Scalars tensorboard_scalars(const nlohmann::json& line);

// Appends events to a new file in a folder. Closed (events dropped) until open().
class EventFileWriter {
 public:
  // Creates `dir` and a new events.out.tfevents.<unix seconds>.<hostname> in it (".N"
  // appended when that name exists), and writes the file_version event. A run resumed
  // at step `resumed_at` (>= 0) also writes a session start at that step.
  void open(const std::filesystem::path& dir, int64_t resumed_at = -1);
  bool is_open() const { return out_.is_open(); }
  const std::filesystem::path& file() const { return file_; }
  // Writes one event with `scalars` at `step` (nothing when `scalars` is empty) and
  // flushes it, so that TensorBoard sees the run while it trains.
  void write(int64_t step, const Scalars& scalars);

 private:
  std::filesystem::path file_;
  std::ofstream out_;
};

}  // namespace unitrain::train
