// The restricted unpickler: see pickle_reader.h. Opcodes follow CPython's
// Lib/pickletools.py; the stack discipline (a MARK fences off what TUPLE, SETITEMS and
// APPENDS take) is that of the C unpickler.
#include "pickle_reader.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "unitrain/errors.h"

namespace unitrain::weights {
namespace {

using Kind = PickleValue::Kind;

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt:
    case Kind::kBigInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kBytes: return "bytes";
    case Kind::kList: return "list";
    case Kind::kTuple: return "tuple";
    case Kind::kDict: return "dict";
    case Kind::kTensor: return "tensor";
    case Kind::kStorage: return "storage";
    case Kind::kGlobal: return "global";
    case Kind::kObject: return "object";
  }
  return "?";
}

class Machine {
 public:
  Machine(const char* data, size_t size, size_t begin, const std::string& where)
      : data_(data), size_(size), pos_(begin), where_(where) {}

  Pickle run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw CheckpointError(fmt::format("{}: byte {}: {}", where_, op_pos_, what));
  }
  const char* take(uint64_t n, const char* what);
  uint64_t read_le(int bytes, const char* what);
  PickleValue* make(Kind kind);
  PickleValue* pop(const char* op);
  PickleValue* top(const char* op);
  std::vector<PickleValue*> pop_mark(const char* op);
  void push_string(Kind kind, uint64_t length, const char* op);
  void push_long(uint64_t length);
  void set_item(PickleValue* dict, PickleValue* key, PickleValue* value, const char* op);
  void append(PickleValue* list, PickleValue* item, const char* op);
  PickleValue* reduce(PickleValue* callable, PickleValue* args);
  PickleValue* rebuild_tensor(const PickleValue& args);
  PickleValue* persistent_load(const PickleValue& pid);

  const char* data_;
  size_t size_;
  size_t pos_;
  size_t op_pos_ = 0;
  std::string where_;
  Pickle out_;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
  // Per dict: the position of each key ("s<str>" or "i<int>"), so a repeated key
  // replaces its value in place as in Python.
  std::unordered_map<const PickleValue*, std::unordered_map<std::string, size_t>> keys_;
};

const char* Machine::take(uint64_t n, const char* what) {
  if (n > size_ - pos_) {
    fail(fmt::format("truncated: {} needs {} bytes, {} left", what, n, size_ - pos_));
  }
  const char* p = data_ + pos_;
  pos_ += n;
  return p;
}

uint64_t Machine::read_le(int bytes, const char* what) {
  const auto* p = reinterpret_cast<const unsigned char*>(take(bytes, what));
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

PickleValue* Machine::make(Kind kind) {
  out_.arena.push_back(std::make_unique<PickleValue>());
  out_.arena.back()->kind = kind;
  return out_.arena.back().get();
}

PickleValue* Machine::pop(const char* op) {
  const size_t fence = marks_.empty() ? 0 : marks_.back();
  if (stack_.size() <= fence) fail(fmt::format("{}: stack underflow", op));
  PickleValue* v = stack_.back();
  stack_.pop_back();
  return v;
}

PickleValue* Machine::top(const char* op) {
  const size_t fence = marks_.empty() ? 0 : marks_.back();
  if (stack_.size() <= fence) fail(fmt::format("{}: stack underflow", op));
  return stack_.back();
}

std::vector<PickleValue*> Machine::pop_mark(const char* op) {
  if (marks_.empty()) fail(fmt::format("{}: no MARK on the stack", op));
  const size_t mark = marks_.back();
  marks_.pop_back();
  std::vector<PickleValue*> items(stack_.begin() + mark, stack_.end());
  stack_.resize(mark);
  return items;
}

void Machine::push_string(Kind kind, uint64_t length, const char* op) {
  const char* p = take(length, op);
  PickleValue* v = make(kind);
  v->text.assign(p, length);
  stack_.push_back(v);
}

void Machine::push_long(uint64_t length) {
  const auto* p = reinterpret_cast<const unsigned char*>(take(length, "LONG"));
  const bool negative = length > 0 && (p[length - 1] & 0x80) != 0;
  // It fits an int64 when every byte above the 8th only repeats the sign.
  bool fits = true;
  for (uint64_t i = 8; i < length; ++i) fits = fits && p[i] == (negative ? 0xff : 0x00);
  if (length > 8 && fits) fits = ((p[7] & 0x80) != 0) == negative;
  PickleValue* v = make(fits ? Kind::kInt : Kind::kBigInt);
  if (fits) {
    uint64_t u = negative ? ~uint64_t{0} : 0;
    for (uint64_t i = 0; i < std::min<uint64_t>(length, 8); ++i) {
      u &= ~(uint64_t{0xff} << (8 * i));
      u |= uint64_t{p[i]} << (8 * i);
    }
    v->integer = static_cast<int64_t>(u);
  } else {
    v->text.assign(reinterpret_cast<const char*>(p), length);
    double magnitude = 0;  // of the unsigned reading, then corrected for the sign
    for (uint64_t i = length; i-- > 0;) magnitude = magnitude * 256 + p[i];
    v->real = negative ? magnitude - std::ldexp(1.0, static_cast<int>(8 * length)) : magnitude;
  }
  stack_.push_back(v);
}

void Machine::set_item(PickleValue* dict, PickleValue* key, PickleValue* value, const char* op) {
  if (dict->kind == Kind::kObject) return;  // an opaque object's __setitem__: not run
  if (dict->kind != Kind::kDict)
    fail(fmt::format("{} on a {}, expected a dict", op, kind_name(dict->kind)));
  if (key->kind != Kind::kString && key->kind != Kind::kInt && key->kind != Kind::kBool) {
    fail(fmt::format("{}: dict key of type {} (only str and int keys are supported)", op,
                     kind_name(key->kind)));
  }
  const std::string id = (key->kind == Kind::kString ? "s" : "i") + key_name(*key);
  auto& index = keys_[dict];
  auto [it, inserted] = index.emplace(id, dict->entries.size());
  if (inserted) {
    dict->entries.emplace_back(key, value);
  } else {
    dict->entries[it->second].second = value;
  }
}

void Machine::append(PickleValue* list, PickleValue* item, const char* op) {
  if (list->kind == Kind::kObject) return;
  if (list->kind != Kind::kList)
    fail(fmt::format("{} on a {}, expected a list", op, kind_name(list->kind)));
  list->items.push_back(item);
}

PickleValue* Machine::persistent_load(const PickleValue& pid) {
  const auto& f = pid.items;
  const bool shaped = pid.kind == Kind::kTuple && (f.size() == 5 || f.size() == 6) &&
                      f[0]->kind == Kind::kString && f[0]->text == "storage" &&
                      f[1]->kind == Kind::kGlobal &&
                      (f[2]->kind == Kind::kString || f[2]->kind == Kind::kInt) &&
                      f[3]->kind == Kind::kString && f[4]->kind == Kind::kInt;
  if (!shaped) {
    fail("BINPERSID: expected a persistent id ('storage', storage_type, key, location, numel)");
  }
  if (f.size() == 6 && f[5]->kind != Kind::kNone) {
    fail("BINPERSID: storage views (a view_metadata in the persistent id) are not supported");
  }
  StorageRef ref;
  if (!storage_dtype(f[1]->text, &ref.dtype)) {
    fail(fmt::format("BINPERSID: unknown storage type '{}' (expected torch.<Type>Storage)",
                     f[1]->text));
  }
  ref.key = f[2]->kind == Kind::kString ? f[2]->text : std::to_string(f[2]->integer);
  ref.location = f[3]->text;
  ref.numel = f[4]->integer;
  if (ref.numel < 0)
    fail(fmt::format("BINPERSID: storage '{}' has {} elements", ref.key, ref.numel));
  auto [it, inserted] = out_.storages.emplace(ref.key, ref);
  if (!inserted && (it->second.dtype != ref.dtype || it->second.numel != ref.numel)) {
    fail(fmt::format("BINPERSID: storage '{}' is named again with a different type or size",
                     ref.key));
  }
  PickleValue* v = make(Kind::kStorage);
  v->storage = ref;
  return v;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, meta]).
PickleValue* Machine::rebuild_tensor(const PickleValue& args) {
  const auto& a = args.items;
  auto int_tuple = [](const PickleValue* v) {
    if (v->kind != Kind::kTuple) return false;
    for (const PickleValue* x : v->items) {
      if (x->kind != Kind::kInt) return false;
    }
    return true;
  };
  if (a.size() < 4 || a[0]->kind != Kind::kStorage || a[1]->kind != Kind::kInt ||
      !int_tuple(a[2]) || !int_tuple(a[3]) || a[2]->items.size() != a[3]->items.size()) {
    fail(
        "REDUCE: _rebuild_tensor_v2 expects (storage, offset, size tuple, stride tuple of the "
        "same length, ...)");
  }
  const StorageRef& storage = a[0]->storage;
  PickleValue* v = make(Kind::kTensor);
  TensorRef& t = v->tensor;
  t.storage_key = storage.key;
  t.dtype = storage.dtype;
  t.offset = a[1]->integer;
  t.position = op_pos_;
  // The last element the view touches must lie in the storage; overflow is an error too.
  bool ok = t.offset >= 0;
  int64_t numel = 1, last = t.offset;
  for (size_t i = 0; i < a[2]->items.size(); ++i) {
    const int64_t size = a[2]->items[i]->integer, stride = a[3]->items[i]->integer;
    t.sizes.push_back(size);
    t.strides.push_back(stride);
    int64_t span = 0;
    ok = ok && size >= 0 && stride >= 0 && !__builtin_mul_overflow(numel, size, &numel) &&
         (size == 0 || (!__builtin_mul_overflow(size - 1, stride, &span) &&
                        !__builtin_add_overflow(last, span, &last)));
  }
  if (!ok || (numel > 0 && last >= storage.numel)) {
    fail(fmt::format(
        "REDUCE: a tensor of size {} stride {} at offset {} does not fit its storage "
        "'{}' of {} elements",
        fmt::join(t.sizes, ","), fmt::join(t.strides, ","), t.offset, storage.key, storage.numel));
  }
  return v;
}

PickleValue* Machine::reduce(PickleValue* callable, PickleValue* args) {
  if (callable->kind == Kind::kObject) return callable;
  if (callable->kind != Kind::kGlobal || args->kind != Kind::kTuple) {
    fail(fmt::format("REDUCE: expected a global and an argument tuple, found a {} and a {}",
                     kind_name(callable->kind), kind_name(args->kind)));
  }
  const std::string& name = callable->text;
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
    return rebuild_tensor(*args);
  }
  if (name == "torch._utils._rebuild_parameter" ||
      name == "torch._utils._rebuild_parameter_with_state") {
    if (args->items.empty() || args->items[0]->kind != Kind::kTensor) {
      fail(fmt::format("REDUCE: {} expects a tensor first", name));
    }
    return const_cast<PickleValue*>(args->items[0]);
  }
  if (name == "collections.OrderedDict" && args->items.empty()) return make(Kind::kDict);
  PickleValue* object = make(Kind::kObject);
  object->text = name;
  return object;
}

Pickle Machine::run() {
  while (true) {
    op_pos_ = pos_;
    if (pos_ == size_) fail("truncated: the pickle ends before its STOP opcode");
    const auto op = static_cast<unsigned char>(*take(1, "an opcode"));
    switch (op) {
      case 0x80: {  // PROTO
        const uint64_t protocol = read_le(1, "PROTO");
        if (protocol > 5)
          fail(fmt::format("PROTO: unsupported pickle protocol {} (expected 2 to 5)", protocol));
        break;
      }
      case 0x95: {  // FRAME: frames are contiguous here, only the length is checked
        const uint64_t length = read_le(8, "FRAME");
        if (length > size_ - pos_)
          fail(fmt::format("truncated: FRAME of {} bytes, {} left", length, size_ - pos_));
        break;
      }
      case '.': {  // STOP
        out_.root = pop("STOP");
        out_.end = pos_;
        return std::move(out_);
      }
      case 'c': {  // GLOBAL "module\nname\n"
        std::string parts[2];
        for (std::string& part : parts) {
          const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
          if (nl == nullptr) fail("truncated: GLOBAL has no end of line");
          const size_t length = static_cast<const char*>(nl) - (data_ + pos_);
          part.assign(take(length + 1, "GLOBAL"), length);
        }
        PickleValue* v = make(Kind::kGlobal);
        v->text = parts[0] + "." + parts[1];
        stack_.push_back(v);
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        PickleValue* name = pop("STACK_GLOBAL");
        PickleValue* module = pop("STACK_GLOBAL");
        if (name->kind != Kind::kString || module->kind != Kind::kString) {
          fail("STACK_GLOBAL: expected a module and a name string");
        }
        PickleValue* v = make(Kind::kGlobal);
        v->text = module->text + "." + name->text;
        stack_.push_back(v);
        break;
      }
      case 'q': memo_[read_le(1, "BINPUT")] = top("BINPUT"); break;
      case 'r': memo_[read_le(4, "LONG_BINPUT")] = top("LONG_BINPUT"); break;
      case 0x94: memo_[memo_.size()] = top("MEMOIZE"); break;
      case 'h':
      case 'j': {  // BINGET, LONG_BINGET
        const uint64_t index = read_le(op == 'h' ? 1 : 4, "BINGET");
        auto it = memo_.find(index);
        if (it == memo_.end()) fail(fmt::format("BINGET: memo index {} was never stored", index));
        stack_.push_back(it->second);
        break;
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0': pop("POP"); break;
      case '1': pop_mark("POP_MARK"); break;
      case '2': stack_.push_back(top("DUP")); break;
      case '}': stack_.push_back(make(Kind::kDict)); break;
      case ']': stack_.push_back(make(Kind::kList)); break;
      case ')': stack_.push_back(make(Kind::kTuple)); break;
      case 0x8f: {  // EMPTY_SET: sets are not built
        PickleValue* v = make(Kind::kObject);
        v->text = "builtins.set";
        stack_.push_back(v);
        break;
      }
      case 0x90:
        pop_mark("ADDITEMS");
        top("ADDITEMS");
        break;
      case 0x91: {  // FROZENSET
        pop_mark("FROZENSET");
        PickleValue* v = make(Kind::kObject);
        v->text = "builtins.frozenset";
        stack_.push_back(v);
        break;
      }
      case 't':
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE, TUPLE1, TUPLE2, TUPLE3
        PickleValue* v = make(Kind::kTuple);
        if (op == 't') {
          for (PickleValue* item : pop_mark("TUPLE")) v->items.push_back(item);
        } else {
          const int n = op - 0x84;
          v->items.resize(n);
          for (int i = n - 1; i >= 0; --i) v->items[i] = pop("TUPLE1/2/3");
        }
        stack_.push_back(v);
        break;
      }
      case 's': {  // SETITEM
        PickleValue* value = pop("SETITEM");
        PickleValue* key = pop("SETITEM");
        set_item(top("SETITEM"), key, value, "SETITEM");
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<PickleValue*> items = pop_mark("SETITEMS");
        if (items.size() % 2 != 0) fail("SETITEMS: an odd number of keys and values");
        PickleValue* dict = top("SETITEMS");
        for (size_t i = 0; i < items.size(); i += 2)
          set_item(dict, items[i], items[i + 1], "SETITEMS");
        break;
      }
      case 'a': {  // APPEND
        PickleValue* item = pop("APPEND");
        append(top("APPEND"), item, "APPEND");
        break;
      }
      case 'e': {  // APPENDS
        std::vector<PickleValue*> items = pop_mark("APPENDS");
        PickleValue* list = top("APPENDS");
        for (PickleValue* item : items) append(list, item, "APPENDS");
        break;
      }
      case 'J': {  // BININT
        PickleValue* v = make(Kind::kInt);
        v->integer = static_cast<int32_t>(read_le(4, "BININT"));
        stack_.push_back(v);
        break;
      }
      case 'K':
      case 'M': {  // BININT1, BININT2
        PickleValue* v = make(Kind::kInt);
        v->integer = static_cast<int64_t>(read_le(op == 'K' ? 1 : 2, "BININT1/2"));
        stack_.push_back(v);
        break;
      }
      case 0x8a: push_long(read_le(1, "LONG1")); break;
      case 0x8b: {
        const auto length = static_cast<int32_t>(read_le(4, "LONG4"));
        if (length < 0) fail("LONG4: negative length");
        push_long(static_cast<uint64_t>(length));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const auto* p = reinterpret_cast<const unsigned char*>(take(8, "BINFLOAT"));
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        PickleValue* v = make(Kind::kFloat);
        std::memcpy(&v->real, &bits, sizeof(bits));
        stack_.push_back(v);
        break;
      }
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        PickleValue* v = make(Kind::kBool);
        v->boolean = op == 0x88;
        stack_.push_back(v);
        break;
      }
      case 'N': stack_.push_back(make(Kind::kNone)); break;
      case 'X': push_string(Kind::kString, read_le(4, "BINUNICODE"), "BINUNICODE"); break;
      case 0x8c:
        push_string(Kind::kString, read_le(1, "SHORT_BINUNICODE"), "SHORT_BINUNICODE");
        break;
      case 0x8d: push_string(Kind::kString, read_le(8, "BINUNICODE8"), "BINUNICODE8"); break;
      case 'U': push_string(Kind::kString, read_le(1, "SHORT_BINSTRING"), "SHORT_BINSTRING"); break;
      case 'T': {
        const auto length = static_cast<int32_t>(read_le(4, "BINSTRING"));
        if (length < 0) fail("BINSTRING: negative length");
        push_string(Kind::kString, static_cast<uint64_t>(length), "BINSTRING");
        break;
      }
      case 'C': push_string(Kind::kBytes, read_le(1, "SHORT_BINBYTES"), "SHORT_BINBYTES"); break;
      case 'B': push_string(Kind::kBytes, read_le(4, "BINBYTES"), "BINBYTES"); break;
      case 0x8e: push_string(Kind::kBytes, read_le(8, "BINBYTES8"), "BINBYTES8"); break;
      case 'R': {  // REDUCE
        PickleValue* args = pop("REDUCE");
        PickleValue* callable = pop("REDUCE");
        stack_.push_back(reduce(callable, args));
        break;
      }
      case 0x81:
      case 0x92: {                         // NEWOBJ, NEWOBJ_EX: cls.__new__(cls, *args) is not run
        if (op == 0x92) pop("NEWOBJ_EX");  // kwargs
        pop("NEWOBJ");                     // args
        PickleValue* cls = pop("NEWOBJ");
        if (cls->kind != Kind::kGlobal)
          fail(fmt::format("NEWOBJ on a {}, expected a class", kind_name(cls->kind)));
        PickleValue* v = make(cls->text == "collections.OrderedDict" ? Kind::kDict : Kind::kObject);
        if (v->kind == Kind::kObject) v->text = cls->text;
        stack_.push_back(v);
        break;
      }
      case 'b': {  // BUILD: the state (a dict's _metadata, an object's __dict__) is dropped
        pop("BUILD");
        top("BUILD");
        break;
      }
      case 'Q': stack_.push_back(persistent_load(*pop("BINPERSID"))); break;
      default: fail(fmt::format("unknown or unsupported pickle opcode 0x{:02x}", op));
    }
  }
}

}  // namespace

Pickle read_pickle(const char* data, size_t size, size_t begin, const std::string& where) {
  if (begin > size) {
    throw CheckpointError(
        fmt::format("{}: byte {}: no pickle there (data ends at {})", where, begin, size));
  }
  return Machine(data, size, begin, where).run();
}

std::string key_name(const PickleValue& key) {
  if (key.kind == Kind::kString) return key.text;
  return std::to_string(key.kind == Kind::kInt ? key.integer : int64_t{key.boolean});
}

bool storage_dtype(const std::string& class_name, c10::ScalarType* dtype) {
  static const std::unordered_map<std::string, c10::ScalarType> kTypes = {
      {"Double", c10::kDouble},
      {"Float", c10::kFloat},
      {"Half", c10::kHalf},
      {"BFloat16", c10::kBFloat16},
      {"Long", c10::kLong},
      {"Int", c10::kInt},
      {"Short", c10::kShort},
      {"Char", c10::kChar},
      {"Byte", c10::kByte},
      {"Bool", c10::kBool},
      {"ComplexFloat", c10::kComplexFloat},
      {"ComplexDouble", c10::kComplexDouble}};
  std::string name = class_name;
  for (const char* prefix : {"torch.cuda.", "torch."}) {
    if (name.rfind(prefix, 0) == 0) {
      name = name.substr(std::strlen(prefix));
      break;
    }
  }
  const std::string suffix = "Storage";
  if (name.size() <= suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  auto it = kTypes.find(name.substr(0, name.size() - suffix.size()));
  if (it == kTypes.end()) return false;
  *dtype = it->second;
  return true;
}

}  // namespace unitrain::weights
