// A restricted Python unpickler (protocols 2-5) for the pickles torch.save writes.
//
// It builds a tree of plain values (None, bool, int, float, str, bytes, list, tuple,
// dict) plus tensor descriptions; any other class becomes an opaque object holding its
// "module.Name". Nothing is ever called or executed: REDUCE, NEWOBJ and BUILD on an
// unknown class only produce an opaque value. Tensors are not read here: a tensor is a
// view (offset, sizes, strides) on a storage named by a key, and the caller supplies the
// storage bytes afterwards (zip records, or the legacy file's trailing data).
//
// Every malformed input throws CheckpointError "WHERE: byte N: ...".
#pragma once

#include <c10/core/ScalarType.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace unitrain::weights {

// A storage as a persistent id names it: ('storage', torch.FloatStorage, key, location,
// numel). Tensors with the same key share it.
struct StorageRef {
  std::string key;
  c10::ScalarType dtype = c10::ScalarType::Float;
  int64_t numel = 0;     // elements, of `dtype`
  std::string location;  // "cpu", "cuda:0", ...: everything is read onto the CPU
};

// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...): checked against
// the storage's numel when it is built.
struct TensorRef {
  std::string storage_key;
  c10::ScalarType dtype = c10::ScalarType::Float;
  int64_t offset = 0;  // elements
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  size_t position = 0;  // byte of the REDUCE that built it, for messages
};

struct PickleValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kBigInt,
    kFloat,
    kString,
    kBytes,
    kList,
    kTuple,
    kDict,
    kTensor,
    kStorage,
    kGlobal,
    kObject
  };
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  // kFloat; kBigInt keeps its nearest double here (the exact bytes are in `text`).
  double real = 0;
  // kString, kBytes; kBigInt: the LONG1/LONG4 two's-complement little-endian bytes;
  // kGlobal, kObject: the class or function, "module.Name".
  std::string text;
  std::vector<const PickleValue*> items;                                   // list, tuple
  std::vector<std::pair<const PickleValue*, const PickleValue*>> entries;  // dict, in order
  TensorRef tensor;
  StorageRef storage;
};

// The values of one pickle. Values are owned by `arena` and point at each other with raw
// pointers: a pickle may make cycles (a list appended to itself through the memo), which
// neither leak nor recurse on destruction this way.
struct Pickle {
  std::vector<std::unique_ptr<PickleValue>> arena;
  const PickleValue* root = nullptr;
  size_t end = 0;                              // the byte just after STOP
  std::map<std::string, StorageRef> storages;  // by key, every storage a tensor uses
};

// Unpickles the pickle that starts at data[begin], reading nothing at or past data[size].
// `where` starts every error message (e.g. "model.pth: data.pkl").
Pickle read_pickle(const char* data, size_t size, size_t begin, const std::string& where);

// A dict key (str, int or bool: the only kinds read_pickle lets into a dict) as a flat
// name: a str as it is, an int in decimal.
std::string key_name(const PickleValue& key);

// The dtype of a storage class name ("torch.FloatStorage", "torch.cuda.HalfStorage");
// false for any other name.
bool storage_dtype(const std::string& class_name, c10::ScalarType* dtype);

}  // namespace unitrain::weights
