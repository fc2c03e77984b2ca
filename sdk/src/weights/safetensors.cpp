// safetensors: u64 little-endian N, N bytes of JSON (space padded), then the data buffer.
// The whole header is checked before any tensor byte is read, as the safetensors library
// does: known dtypes, sizes that fit the buffer, no overlaps, no unclaimed bytes.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include "readers.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"

namespace unitrain::weights {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

struct Dtype {
  const char* name;
  c10::ScalarType type;
};
constexpr Dtype kDtypes[] = {{"F64", c10::kDouble},    {"F32", c10::kFloat}, {"F16", c10::kHalf},
                             {"BF16", c10::kBFloat16}, {"I64", c10::kLong},  {"I32", c10::kInt},
                             {"I16", c10::kShort},     {"I8", c10::kChar},   {"U8", c10::kByte},
                             {"BOOL", c10::kBool}};
constexpr const char* kDtypeList = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";
// The safetensors library's own limit: a header is a table of contents, not data.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct Entry {
  std::string name;
  const Dtype* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// The header entry of tensor `name`, checked against a data buffer of `buffer` bytes.
Entry parse_entry(const std::string& where, const std::string& name, const ordered_json& info,
                  uint64_t buffer) {
  auto fail = [&](const std::string& what) {
    throw CheckpointError(fmt::format("{}: tensor '{}': {}", where, name, what));
  };
  if (!info.is_object())
    fail(fmt::format("expected an object with dtype, shape and data_offsets, found {}",
                     json_text(info)));
  for (const auto& [key, value] : info.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail(fmt::format("unknown key '{}'; valid keys: dtype, shape, data_offsets", key));
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!info.contains(key)) fail(fmt::format("no '{}'", key));
  }
  Entry e;
  e.name = name;
  const ordered_json& dtype = info["dtype"];
  for (const Dtype& d : kDtypes) {
    if (dtype.is_string() && dtype.get<std::string>() == d.name) e.dtype = &d;
  }
  if (e.dtype == nullptr)
    fail(fmt::format("unknown dtype {}; valid dtypes: {}", json_text(dtype), kDtypeList));
  const ordered_json& shape = info["shape"];
  bool shape_ok = shape.is_array();
  for (const auto& d : shape) {
    shape_ok = shape_ok && d.is_number_unsigned() &&
               d.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (shape_ok) e.shape.push_back(d.get<int64_t>());
  }
  if (!shape_ok)
    fail(fmt::format("shape must be a list of non-negative integers, found {}", json_text(shape)));
  const ordered_json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned() || offsets[0].get<uint64_t>() > offsets[1].get<uint64_t>()) {
    fail(fmt::format("data_offsets must be [begin, end] with 0 <= begin <= end, found {}",
                     json_text(offsets)));
  }
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  if (e.end > buffer) {
    fail(fmt::format("data_offsets [{}, {}] end beyond the data buffer of {} bytes", e.begin, e.end,
                     buffer));
  }
  uint64_t needed = c10::elementSize(e.dtype->type);
  bool overflow = false;
  for (int64_t d : e.shape)
    overflow = overflow || __builtin_mul_overflow(needed, static_cast<uint64_t>(d), &needed);
  if (overflow || e.end - e.begin != needed) {
    fail(fmt::format("data_offsets [{}, {}] hold {} bytes but {} [{}] needs {}", e.begin, e.end,
                     e.end - e.begin, e.dtype->name, fmt::join(e.shape, ", "),
                     overflow ? std::string("more than 2^64") : std::to_string(needed)));
  }
  return e;
}

// Every byte of the buffer belongs to exactly one tensor (empty tensors aside).
void check_layout(const std::string& where, std::vector<const Entry*> entries, uint64_t buffer) {
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [](const Entry* e) { return e->begin == e->end; }),
                entries.end());
  std::sort(entries.begin(), entries.end(),
            [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : entries) {
    if (e->begin < covered) {
      throw CheckpointError(fmt::format("{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap",
                                        where, previous->name, previous->begin, previous->end,
                                        e->name, e->begin, e->end));
    }
    if (e->begin > covered) {
      throw CheckpointError(fmt::format("{}: bytes [{}, {}) of the data buffer belong to no tensor",
                                        where, covered, e->begin));
    }
    covered = e->end;
    previous = e;
  }
  if (covered != buffer) {
    throw CheckpointError(fmt::format("{}: bytes [{}, {}) of the data buffer belong to no tensor",
                                      where, covered, buffer));
  }
}

}  // namespace

namespace detail {

TensorFile read_safetensors(const fs::path& file) {
  const std::string where = file.string();
  std::ifstream in(file, std::ios::binary);
  std::error_code ec;
  const uint64_t file_size = fs::file_size(file, ec);
  if (!in || ec) throw CheckpointError(fmt::format("{}: cannot open", where));
  unsigned char prefix[8] = {};
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(prefix), 8)) {
    throw CheckpointError(fmt::format(
        "{}: safetensors file of {} bytes has no 8-byte header length", where, file_size));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | prefix[i];
  if (n > kMaxHeaderBytes) {
    throw CheckpointError(
        fmt::format("{}: safetensors header length {} is over the limit of {} bytes", where, n,
                    kMaxHeaderBytes));
  }
  if (n > file_size - 8) {
    throw CheckpointError(
        fmt::format("{}: safetensors header length {} is more than the {} bytes after the length",
                    where, n, file_size - 8));
  }
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n))) {
    throw CheckpointError(fmt::format("{}: cannot read the {}-byte header", where, n));
  }
  ordered_json header;
  try {
    header = ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(
        fmt::format("{}: safetensors header is not valid JSON: {}", where, e.what()));
  }
  if (!header.is_object()) {
    throw CheckpointError(fmt::format("{}: safetensors header is a JSON {}, expected an object",
                                      where, header.type_name()));
  }
  const uint64_t buffer = file_size - 8 - n;
  TensorFile out;
  out.file = file;
  out.format = FileFormat::kSafetensors;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name != kMetadataKey) {
      entries.push_back(parse_entry(where, name, info, buffer));
      continue;
    }
    if (!info.is_object())
      throw CheckpointError(fmt::format("{}: __metadata__ is not an object", where));
    for (const auto& [key, value] : info.items()) {
      if (!value.is_string()) {
        throw CheckpointError(fmt::format("{}: __metadata__ '{}' is {}, expected a string", where,
                                          key, json_text(value)));
      }
      out.values[key] = value.get<std::string>();
    }
  }
  std::vector<const Entry*> pointers;
  for (const Entry& e : entries) pointers.push_back(&e);
  check_layout(where, pointers, buffer);
  for (const Entry& e : entries) {
    torch::Tensor t = torch::empty(e.shape, torch::dtype(e.dtype->type));
    in.seekg(static_cast<std::streamoff>(8 + n + e.begin));
    if (e.end > e.begin &&
        !in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.end - e.begin))) {
      throw CheckpointError(
          fmt::format("{}: tensor '{}': cannot read its {} bytes", where, e.name, e.end - e.begin));
    }
    out.tensors.emplace_back(e.name, t);
  }
  return out;
}

}  // namespace detail

void write_safetensors(const fs::path& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string where = file.string();
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const Dtype* dtype = nullptr;
    for (const Dtype& d : kDtypes) {
      if (d.type == tensor.scalar_type()) dtype = &d;
    }
    if (dtype == nullptr) {
      throw CheckpointError(fmt::format("{}: tensor '{}' has dtype {}; safetensors dtypes: {}",
                                        where, name, c10::toString(tensor.scalar_type()),
                                        kDtypeList));
    }
    if (name == kMetadataKey || header.contains(name)) {
      throw CheckpointError(fmt::format("{}: tensor name '{}' is {}", where, name,
                                        name == kMetadataKey ? "reserved" : "given twice"));
    }
    data.push_back(tensor.cpu().contiguous());
    const uint64_t bytes = data.back().nbytes();
    header[name] = {{"dtype", dtype->name},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = json_text(header);
  text.append((8 - text.size() % 8) % 8, ' ');  // the buffer starts 8-byte aligned
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  char prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = static_cast<char>((uint64_t{text.size()} >> (8 * i)) & 0xff);
  out.write(prefix, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const torch::Tensor& t : data) {
    out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  }
  out.close();
  if (!out) throw CheckpointError(fmt::format("{}: cannot write", where));
}

}  // namespace unitrain::weights
