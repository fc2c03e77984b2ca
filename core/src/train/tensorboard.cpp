// TensorBoard event files: TFRecord framing and a hand-written protobuf encoding of the
// Event fields that scalar summaries use.
#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <type_traits>

#include <fmt/format.h>

#include "unitrain/errors.h"

namespace unitrain::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::array<uint32_t, 256>& crc32c_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// Protobuf wire format: field key = (number << 3) | wire type.
enum WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (field << 3) | type); }

template <typename T>
void put_little_endian(std::string& out, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  // x86 and ARM Linux are little-endian; a big-endian host would reverse here.
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "event files are little-endian");
  out.append(reinterpret_cast<const char*>(bytes), sizeof(T));
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

std::string event_head(double wall_time, int64_t step) {
  std::string event;
  put_key(event, 1, kFixed64);  // wall_time
  put_little_endian(event, wall_time);
  put_key(event, 2, kVarint);  // step (int64: negative values take 10 bytes)
  put_varint(event, static_cast<uint64_t>(step));
  return event;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  const auto& table = crc32c_table();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
  std::string length;
  put_little_endian(length, static_cast<uint64_t>(data.size()));
  std::string record = length;
  put_little_endian(record, masked_crc32c(length));
  record.append(data);
  put_little_endian(record, masked_crc32c(data));
  return record;
}

std::string file_version_event(double wall_time) {
  std::string event;
  put_key(event, 1, kFixed64);
  put_little_endian(event, wall_time);
  put_bytes(event, 3, "brain.Event:2");
  return event;
}

std::string scalars_event(double wall_time, int64_t step, const Scalars& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(v, 1, tag);
    put_key(v, 2, kFixed32);  // simple_value
    put_little_endian(v, value);
    put_bytes(summary, 1, v);
  }
  std::string event = event_head(wall_time, step);
  put_bytes(event, 5, summary);
  return event;
}

std::string session_start_event(double wall_time, int64_t step) {
  std::string session_log;
  put_key(session_log, 1, kVarint);  // status
  put_varint(session_log, 1);        // START
  std::string event = event_head(wall_time, step);
  put_bytes(event, 6, session_log);
  return event;
}

Scalars tensorboard_scalars(const json& line) {
  Scalars out;
  if (!line.is_object()) return out;
  auto number = [](const json& v) { return v.is_number() ? static_cast<float>(v.get<double>()) : NAN; };
  if (line.contains("eval") && line["eval"].is_object()) {
    for (const auto& [task, metrics] : line["eval"].items()) {
      if (!metrics.is_object()) continue;
      for (const auto& [metric, value] : metrics.items()) {
        if (value.is_number()) out.emplace_back("eval/" + task + "/" + metric, number(value));
      }
    }
    return out;
  }
  if (!line.contains("task") || !line["task"].is_string() || !line.contains("loss")) return out;
  const std::string task = line["task"].get<std::string>();
  out.emplace_back("loss/" + task, number(line["loss"]));
  for (const auto& [key, value] : line.items()) {
    if (key == "step" || key == "task" || key == "loss" || !value.is_number()) continue;
    if (key == "lr" || key == "grad_norm" || key == "samples_per_s") {
      out.emplace_back(key, number(value));  // of the run, not of the line's task
    } else {
      out.emplace_back("loss/" + task + "/" + key, number(value));  // a head's named loss
    }
  }
  return out;
}

void EventFileWriter::open(const fs::path& dir, int64_t resumed_at) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw TrainingError(fmt::format("cannot create the TensorBoard folder '{}': {}", dir.string(),
                                    ec.message()));
  }
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  const double now = unix_seconds();
  const std::string base =
      fmt::format("events.out.tfevents.{}.{}", static_cast<int64_t>(now), host);
  file_ = dir / base;
  for (int n = 1; fs::exists(file_, ec); ++n) file_ = dir / fmt::format("{}.{}", base, n);
  out_.open(file_, std::ios::binary | std::ios::trunc);
  if (!out_) throw TrainingError(fmt::format("cannot write '{}'", file_.string()));
  out_ << tfrecord(file_version_event(now));
  if (resumed_at >= 0) out_ << tfrecord(session_start_event(now, resumed_at));
  out_.flush();
}

void EventFileWriter::write(int64_t step, const Scalars& scalars) {
  if (!out_.is_open() || scalars.empty()) return;
  out_ << tfrecord(scalars_event(unix_seconds(), step, scalars)) << std::flush;
}

}  // namespace unitrain::train
