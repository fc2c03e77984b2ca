// torch.save files (zip and legacy) and unitrain's torch::serialize archives.
//
// zip (PyTorch >= 1.6): <name>/data.pkl is the pickled object, whose persistent ids name
// storages stored as records <name>/data/<key>, raw little-endian bytes.
// legacy: five pickles in a row (magic number, protocol version 1001, sys_info, the
// object, the sorted list of storage keys), then per key an int64 element count and the
// raw bytes. Only the unpickler knows where a pickle ends, so the file is mapped and
// read in place.
#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <set>

#include "pickle_reader.h"
#include "readers.h"
#include "unitrain/errors.h"

namespace unitrain::weights::detail {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Kind = PickleValue::Kind;

// 0x1950a86a20f9469cfc6c as LONG1 writes it (little-endian).
constexpr unsigned char kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                          0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kLegacyProtocol = 1001;
// Deeper nesting than any checkpoint has; also what stops a cyclic pickle.
constexpr int kMaxDepth = 64;

// Turns the unpickled tree into flat names (see tensor_file.h), building each tensor as a
// compact copy of its view on the storage.
class Flattener {
 public:
  Flattener(TensorFile& out, const std::map<std::string, torch::Tensor>& storages)
      : out_(out), storages_(storages) {}

  void add(const PickleValue& v, const std::string& name, int depth) {
    if (depth > kMaxDepth) {
      fail(fmt::format("'{}' is nested deeper than {} levels (or the pickle has a cycle)", name,
                       kMaxDepth));
    }
    auto child = [&](const std::string& key) { return name.empty() ? key : name + "." + key; };
    switch (v.kind) {
      case Kind::kDict:
        for (const auto& [key, value] : v.entries) {
          add(*value, child(key_name(*key)), depth + 1);
        }
        return;
      case Kind::kList:
      case Kind::kTuple:
        for (size_t i = 0; i < v.items.size(); ++i)
          add(*v.items[i], child(std::to_string(i)), depth + 1);
        return;
      case Kind::kTensor:
        claim(name);
        out_.tensors.emplace_back(name, build(v.tensor));
        return;
      case Kind::kNone: value(name, nullptr); return;
      case Kind::kBool: value(name, v.boolean); return;
      case Kind::kInt: value(name, v.integer); return;
      case Kind::kBigInt:
      case Kind::kFloat: value(name, v.real); return;
      case Kind::kString: value(name, v.text); return;
      case Kind::kBytes: value(name, json{{"__class__", "builtins.bytes"}}); return;
      case Kind::kStorage: value(name, json{{"__class__", "torch.storage"}}); return;
      case Kind::kGlobal:
      case Kind::kObject: value(name, json{{"__class__", v.text}}); return;
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw CheckpointError(fmt::format("{}: {}", out_.file.string(), what));
  }
  void claim(const std::string& name) {
    if (!names_.insert(name).second) fail(fmt::format("two entries have the flat name '{}'", name));
  }
  void value(const std::string& name, json v) {
    claim(name);
    out_.values[name] = std::move(v);
  }
  torch::Tensor build(const TensorRef& ref) const {
    // The unpickler checked the view against the storage's numel, the readers the bytes.
    const torch::Tensor& storage = storages_.at(ref.storage_key);
    // The usual case, a tensor that is its whole storage in row-major order, is the
    // storage's memory itself; a part of a storage or another order is copied out.
    int64_t numel = 1, expected = 1;
    bool row_major = true;
    for (size_t d = ref.sizes.size(); d-- > 0;) {
      if (ref.sizes[d] != 1 && ref.strides[d] != expected) row_major = false;
      expected *= ref.sizes[d];
      numel *= ref.sizes[d];
    }
    if (ref.offset == 0 && row_major && numel == storage.numel()) return storage.view(ref.sizes);
    return storage.as_strided(ref.sizes, ref.strides, ref.offset)
        .clone(at::MemoryFormat::Contiguous);
  }

  TensorFile& out_;
  const std::map<std::string, torch::Tensor>& storages_;
  std::set<std::string> names_;
};

// Bytes a storage of `ref.numel` elements needs; CheckpointError on overflow.
uint64_t storage_bytes(const StorageRef& ref, const std::string& where) {
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(ref.numel), c10::elementSize(ref.dtype),
                             &bytes)) {
    throw CheckpointError(
        fmt::format("{}: storage '{}' of {} elements is too large", where, ref.key, ref.numel));
  }
  return bytes;
}

std::unique_ptr<caffe2::serialize::PyTorchStreamReader> open_zip(const fs::path& file) {
  try {
    return std::make_unique<caffe2::serialize::PyTorchStreamReader>(file.string());
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("{}: not a readable torch.save zip archive: {}",
                                      file.string(), e.what_without_backtrace()));
  }
}

std::tuple<at::DataPtr, size_t> get_record(caffe2::serialize::PyTorchStreamReader& zip,
                                           const std::string& name, const fs::path& file) {
  try {
    if (!zip.hasRecord(name)) {
      throw CheckpointError(
          fmt::format("{}: the zip archive has no record '{}'", file.string(), name));
    }
    return zip.getRecord(name);
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("{}: cannot read record '{}' of the zip archive: {}",
                                      file.string(), name, e.what_without_backtrace()));
  }
}

// A read-only mapping of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const fs::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      if (fd >= 0) ::close(fd);
      throw CheckpointError(
          fmt::format("{}: cannot open: {}", file.string(), std::strerror(errno)));
    }
    size_ = static_cast<size_t>(st.st_size);
    void* p = size_ == 0 ? nullptr : ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED)
      throw CheckpointError(fmt::format("{}: cannot map: {}", file.string(), std::strerror(errno)));
    data_ = static_cast<const char*>(p);
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const char* data() const { return data_; }
  size_t size() const { return size_; }
  // Drops the whole pages of [offset, offset + bytes) from this process's memory once they
  // are copied (they are read again from the file if touched): the mapping would else hold
  // a second copy of every storage until the end.
  void release(size_t offset, size_t bytes) const {
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(data_) + offset;
    const auto first = (begin + page - 1) / page * page, last = (begin + bytes) / page * page;
    if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

bool is_legacy_magic(const PickleValue& v) {
  return v.kind == Kind::kBigInt && v.text.size() == sizeof(kLegacyMagic) &&
         std::memcmp(v.text.data(), kLegacyMagic, sizeof(kLegacyMagic)) == 0;
}

const PickleValue* dict_get(const PickleValue& dict, const std::string& key) {
  for (const auto& [k, v] : dict.entries) {
    if (k->kind == Kind::kString && k->text == key) return v;
  }
  return nullptr;
}

}  // namespace

bool starts_with_legacy_magic(const char* head, size_t size) {
  try {
    return is_legacy_magic(*read_pickle(head, size, 0, "").root);
  } catch (const CheckpointError&) {
    return false;
  }
}

bool is_torchscript_zip(const fs::path& file) {
  try {
    return caffe2::serialize::PyTorchStreamReader(file.string()).hasRecord("constants.pkl");
  } catch (const c10::Error&) {
    return false;  // read_torch_zip reports what is wrong with it
  }
}

TensorFile read_torch_zip(const fs::path& file) {
  const std::string where = file.string();
  auto zip = open_zip(file);
  auto [pkl, pkl_size] = get_record(*zip, "data.pkl", file);
  const Pickle pickle =
      read_pickle(static_cast<const char*>(pkl.get()), pkl_size, 0, where + ": data.pkl");
  std::map<std::string, torch::Tensor> storages;
  std::error_code ec;
  const uint64_t file_size = fs::file_size(file, ec);
  for (const auto& [key, ref] : pickle.storages) {
    const std::string name = "data/" + key;
    const uint64_t expected = storage_bytes(ref, where);
    if (expected > file_size) {  // records are stored uncompressed
      throw CheckpointError(
          fmt::format("{}: storage '{}' of {} {} elements needs {} bytes, more than the file's {}",
                      where, key, ref.numel, c10::toString(ref.dtype), expected, file_size));
    }
    auto [data, size] = get_record(*zip, name, file);
    if (size != expected) {
      throw CheckpointError(
          fmt::format("{}: record '{}' holds {} bytes but its storage of {} {} elements needs {}",
                      where, name, size, ref.numel, c10::toString(ref.dtype), expected));
    }
    // The tensor owns the record's memory: no copy.
    auto owner = std::make_shared<at::DataPtr>(std::move(data));
    storages[key] = ref.numel == 0
                        ? torch::empty({0}, ref.dtype)
                        : torch::from_blob(owner->get(), {ref.numel}, [owner](void*) mutable { owner.reset(); },
                                           torch::dtype(ref.dtype));
  }
  TensorFile out;
  out.file = file;
  out.format = FileFormat::kTorchZip;
  Flattener(out, storages).add(*pickle.root, "", 0);
  return out;
}

TensorFile read_torch_legacy(const fs::path& file) {
  const std::string where = file.string();
  const MappedFile map(file);
  size_t pos = 0;
  auto next = [&] {
    Pickle p = read_pickle(map.data(), map.size(), pos, where);
    pos = p.end;
    return p;
  };
  if (!is_legacy_magic(*next().root)) {
    throw CheckpointError(
        fmt::format("{}: not a legacy torch.save file (its first pickle is not the magic "
                    "number 0x1950a86a20f9469cfc6c)",
                    where));
  }
  const Pickle version = next();
  if (version.root->kind != Kind::kInt || version.root->integer != kLegacyProtocol) {
    throw CheckpointError(fmt::format("{}: legacy protocol version is not {} (the second pickle)",
                                      where, kLegacyProtocol));
  }
  const Pickle sys_info = next();
  const PickleValue* little =
      sys_info.root->kind == Kind::kDict ? dict_get(*sys_info.root, "little_endian") : nullptr;
  if (little == nullptr || little->kind != Kind::kBool || !little->boolean) {
    throw CheckpointError(
        fmt::format("{}: sys_info (the third pickle) does not say little_endian=True; "
                    "only little-endian files are supported",
                    where));
  }
  const Pickle object = next();
  const size_t keys_at = pos;
  const Pickle keys = next();
  if (keys.root->kind != Kind::kList) {
    throw CheckpointError(fmt::format(
        "{}: byte {}: expected the list of storage keys, found another pickle", where, keys_at));
  }
  std::map<std::string, torch::Tensor> storages;
  for (const PickleValue* key : keys.root->items) {
    if (key->kind != Kind::kString) {
      throw CheckpointError(
          fmt::format("{}: byte {}: a storage key is not a string", where, keys_at));
    }
    auto it = object.storages.find(key->text);
    if (it == object.storages.end() || storages.count(key->text) != 0) {
      throw CheckpointError(fmt::format("{}: byte {}: storage key '{}' is {} in the saved object",
                                        where, keys_at, key->text,
                                        it == object.storages.end() ? "not used" : "repeated"));
    }
    const StorageRef& ref = it->second;
    if (map.size() - pos < 8) {
      throw CheckpointError(
          fmt::format("{}: byte {}: truncated: the element count of storage '{}' is missing", where,
                      pos, ref.key));
    }
    int64_t count = 0;
    std::memcpy(&count, map.data() + pos, 8);  // NOTE: a little-endian host, like the file
    if (count != ref.numel) {
      throw CheckpointError(
          fmt::format("{}: byte {}: storage '{}' has {} elements, the pickle says {}", where, pos,
                      ref.key, count, ref.numel));
    }
    pos += 8;
    const uint64_t bytes = storage_bytes(ref, where);
    if (bytes > map.size() - pos) {
      throw CheckpointError(
          fmt::format("{}: byte {}: truncated: storage '{}' needs {} bytes, {} left", where, pos,
                      ref.key, bytes, map.size() - pos));
    }
    torch::Tensor storage = torch::empty({ref.numel}, torch::dtype(ref.dtype));
    if (bytes > 0) std::memcpy(storage.data_ptr(), map.data() + pos, bytes);
    map.release(pos, bytes);
    pos += bytes;
    storages[ref.key] = storage;
  }
  for (const auto& [key, ref] : object.storages) {
    if (storages.count(key) == 0) {
      throw CheckpointError(
          fmt::format("{}: storage '{}' is used but not in the list of storage keys", where, key));
    }
  }
  TensorFile out;
  out.file = file;
  out.format = FileFormat::kTorchLegacy;
  Flattener(out, storages).add(*object.root, "", 0);
  return out;
}

TensorFile read_unitrain_archive(const fs::path& file) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string());
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("{}: not a readable unitrain archive: {}", file.string(),
                                      e.what_without_backtrace()));
  }
  TensorFile out;
  out.file = file;
  out.format = FileFormat::kUnitrain;
  for (const char* key : {"format", "component", "kind", "type", "options", "experiment"}) {
    c10::IValue v;
    if (archive.try_read(key, v) && v.isString()) out.values[key] = v.toStringRef();
  }
  bool found = false;
  // An exported component's "state" keeps its names; a checkpoint's "model" is prefixed.
  for (const auto& [key, prefix] :
       {std::pair<const char*, const char*>{"state", ""}, {"model", "model."}}) {
    c10::IValue v;
    if (!archive.try_read(key, v) || !v.isGenericDict()) continue;
    found = true;
    for (const auto& entry : v.toGenericDict()) {
      if (!entry.key().isString() || !entry.value().isTensor()) {
        throw CheckpointError(
            fmt::format("{}: entry '{}' is not a Dict[str, Tensor]", file.string(), key));
      }
      out.tensors.emplace_back(prefix + entry.key().toStringRef(),
                               entry.value().toTensor().contiguous());
    }
  }
  if (!found) {
    throw CheckpointError(
        fmt::format("{}: a TorchScript archive with neither 'state' (an exported component) nor "
                    "'model' (a unitrain checkpoint) entry",
                    file.string()));
  }
  return out;
}

}  // namespace unitrain::weights::detail
