// read_tensor_file and write_safetensors: safetensors round trips and every broken header;
// torch.save files (zip and legacy) written here by Debian's Python with torch, compared
// byte for byte with a reference that the same script writes as safetensors; hand-built
// legacy files for each way a pickle can be broken; unitrain archives.
#include "unitrain/weights/tensor_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <random>

#include "test_util.h"
#include "unitrain/errors.h"

namespace unitrain::weights {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace std::string_literals;
using test::error_of;
using test::TempDir;

TensorFile read_ok(const fs::path& file) {
  try {
    return read_tensor_file(file);
  } catch (const CheckpointError& e) {
    ADD_FAILURE() << e.what();
    return {};
  }
}

std::string read_error(const fs::path& file) {
  return error_of<CheckpointError>([&] { read_tensor_file(file); });
}

// Same names in the same order, same dtypes, shapes and bytes; compact CPU tensors.
void expect_same_tensors(const TensorFile& got, const TensorFile& want) {
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (size_t i = 0; i < got.tensors.size(); ++i) {
    const auto& [name, t] = got.tensors[i];
    const torch::Tensor& w = want.tensors[i].second;
    ASSERT_EQ(name, want.tensors[i].first);
    ASSERT_EQ(t.scalar_type(), w.scalar_type()) << name;
    ASSERT_EQ(t.sizes(), w.sizes()) << name;
    EXPECT_TRUE(t.is_contiguous() && t.device().is_cpu()) << name;
    EXPECT_EQ(t.storage().nbytes(), t.nbytes()) << name << " does not own compact memory";
    if (t.nbytes() == 0) continue;  // an empty tensor may have no data pointer at all
    EXPECT_EQ(std::memcmp(t.data_ptr(), w.contiguous().data_ptr(), t.nbytes()), 0) << name;
  }
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// ---------------------------------------------------------------------------------------
// safetensors

std::vector<std::pair<std::string, torch::Tensor>> every_dtype() {
  torch::manual_seed(3);
  return {{"f64", torch::randn({2, 3}, torch::kDouble)},
          {"f32", torch::randn({4}, torch::kFloat)},
          {"f16", torch::randn({3, 1}).to(torch::kHalf)},
          {"bf16", torch::randn({5}).to(torch::kBFloat16)},
          {"i64", torch::arange(-3, 3, torch::kLong) * int64_t{1'000'000'000'000}},
          {"i32", torch::arange(-4, 4, torch::kInt) * 100'000},
          {"i16", torch::arange(-5, 5, torch::kShort) * 1000},
          {"i8", torch::arange(-128, 128, 37, torch::kChar)},
          {"u8", torch::arange(200, 256, 11, torch::kByte)},
          {"bool", torch::tensor({true, false, true})},
          {"scalar", torch::tensor(2.5)},
          {"empty", torch::zeros({0, 3})}};
}

TEST(Safetensors, EveryDtypeRoundTripsExactly) {
  TempDir dir;
  auto tensors = every_dtype();
  write_safetensors(dir / "all.safetensors", tensors, {{"format", "pt"}, {"note", "x"}});
  EXPECT_EQ(detect_format(dir / "all.safetensors"), FileFormat::kSafetensors);
  TensorFile file = read_ok(dir / "all.safetensors");
  EXPECT_EQ(file.format, FileFormat::kSafetensors);
  TensorFile want;
  want.tensors = tensors;
  expect_same_tensors(file, want);
  EXPECT_EQ(file.values, (nlohmann::json{{"format", "pt"}, {"note", "x"}}));
}

TEST(Safetensors, WritesTheLibraryLayout) {
  TempDir dir;
  write_safetensors(dir / "a.safetensors",
                    {{"b", torch::tensor({1.0f, 2.0f})}, {"a", torch::tensor({int16_t{7}})}},
                    {{"k", "v"}});
  const std::string header =
      R"({"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"I16","shape":[1],"data_offsets":[8,10]}})";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  float b[2] = {1, 2};
  const std::string data = std::string(reinterpret_cast<const char*>(b), 8) + "\x07\x00"s;
  EXPECT_EQ(test::read_file(dir / "a.safetensors"), u64_le(padded.size()) + padded + data);
}

TEST(Safetensors, ReadsAHandBuiltFile) {
  TempDir dir;
  // Header padded with spaces, tensors listed out of buffer order.
  const std::string header = R"({"y":{"dtype":"I16","shape":[2],"data_offsets":[4,8]},)"
                             R"("x":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}}   )";
  test::write_file(dir / "h.safetensors",
                   u64_le(header.size()) + header + "\x01\x02\x03\x04\xff\xff\x10\x00"s);
  TensorFile file = read_ok(dir / "h.safetensors");
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.tensors[0].first, "y");
  EXPECT_TRUE(torch::equal(file.tensors[0].second, torch::tensor({int16_t{-1}, int16_t{16}})));
  EXPECT_EQ(file.tensors[1].first, "x");
  EXPECT_TRUE(torch::equal(file.tensors[1].second,
                           torch::tensor({1, 2, 3, 4}, torch::kByte).reshape({2, 2})));
}

// A safetensors file with `header` and a zeroed data buffer of `buffer` bytes.
std::string broken(const TempDir& dir, const std::string& header, size_t buffer) {
  const fs::path file = dir / "x.safetensors";
  test::write_file(file, u64_le(header.size()) + header + std::string(buffer, '\0'));
  return read_error(file);
}

TEST(Safetensors, TruncatedLengthPrefixIsNotAWeightsFile) {
  TempDir dir;
  test::write_file(dir / "x.safetensors", "\x10\x00\x00"s);
  EXPECT_THAT(read_error(dir / "x.safetensors"),
              HasSubstr("x.safetensors: not a weights file (expected a "
                        "torch.save zip or legacy file, safetensors or a "
                        "unitrain archive); it starts with 10 00 00"));
}

TEST(Safetensors, HeaderLongerThanTheFile) {
  TempDir dir;
  test::write_file(dir / "x.safetensors", u64_le(1000) + R"({"a":1})");
  EXPECT_THAT(read_error(dir / "x.safetensors"),
              HasSubstr("x.safetensors: safetensors header length 1000 is more than the 7 bytes "
                        "after the length"));
  test::write_file(dir / "x.safetensors", u64_le(uint64_t{1} << 62) + R"({"a":1})");
  EXPECT_THAT(read_error(dir / "x.safetensors"), HasSubstr("is over the limit of 100000000 bytes"));
}

TEST(Safetensors, HeaderThatIsNotJson) {
  TempDir dir;
  EXPECT_THAT(broken(dir, "{not json}", 0),
              HasSubstr("x.safetensors: safetensors header is not valid JSON"));
}

TEST(Safetensors, UnknownDtype) {
  TempDir dir;
  EXPECT_THAT(
      broken(dir, R"({"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", 1),
      HasSubstr(
          "x.safetensors: tensor 'a': unknown dtype \"F8\"; valid dtypes: F64, F32, F16, BF16, "
          "I64, I32, I16, I8, U8, BOOL"));
}

TEST(Safetensors, OffsetsThatDoNotHoldTheShape) {
  TempDir dir;
  EXPECT_THAT(
      broken(dir, R"({"a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})", 12),
      HasSubstr(
          "x.safetensors: tensor 'a.weight': data_offsets [0, 12] hold 12 bytes but F32 [2, 3] "
          "needs 24"));
  EXPECT_THAT(
      broken(dir, R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
             4),
      HasSubstr("hold 4 bytes but F32 [4294967296, 4294967296] needs more than 2^64"));
}

TEST(Safetensors, EndBeyondTheBuffer) {
  TempDir dir;
  EXPECT_THAT(
      broken(dir, R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
      HasSubstr(
          "x.safetensors: tensor 'a': data_offsets [0, 16] end beyond the data buffer of 8 bytes"));
  EXPECT_THAT(
      broken(dir, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8),
      HasSubstr(
          "tensor 'a': data_offsets must be [begin, end] with 0 <= begin <= end, found [8,4]"));
}

TEST(Safetensors, OverlappingTensors) {
  TempDir dir;
  EXPECT_THAT(broken(dir,
                     R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                     12),
              HasSubstr("x.safetensors: tensors 'a' [0, 8] and 'b' [4, 12] overlap"));
}

TEST(Safetensors, BytesThatBelongToNoTensor) {
  TempDir dir;
  EXPECT_THAT(broken(dir, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
              HasSubstr("x.safetensors: bytes [0, 4) of the data buffer belong to no tensor"));
  EXPECT_THAT(broken(dir, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8),
              HasSubstr("x.safetensors: bytes [4, 8) of the data buffer belong to no tensor"));
}

std::string fmt_header(const std::string& shape) {
  return R"({"a":{"dtype":"U8","shape":)" + shape + R"(,"data_offsets":[0,4]}})";
}

TEST(Safetensors, ShapeThatIsNotNonNegativeIntegers) {
  TempDir dir;
  for (const char* shape : {"[-1]", "[2.5]", "[\"2\"]", "3"}) {
    EXPECT_THAT(
        broken(dir, fmt_header(shape), 4),
        HasSubstr(
            std::string("x.safetensors: tensor 'a': shape must be a list of non-negative integers, "
                        "found ") +
            shape));
  }
}

TEST(Safetensors, EntriesWithUnknownKeysOrBadMetadata) {
  TempDir dir;
  EXPECT_THAT(broken(dir, R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", 1),
              HasSubstr("tensor 'a': unknown key 'x'; valid keys: dtype, shape, data_offsets"));
  EXPECT_THAT(broken(dir, R"({"a":{"dtype":"U8","shape":[1]}})", 1),
              HasSubstr("tensor 'a': no 'data_offsets'"));
  EXPECT_THAT(broken(dir, R"({"__metadata__":{"k":1}})", 0),
              HasSubstr("__metadata__ 'k' is 1, expected a string"));
}

// ---------------------------------------------------------------------------------------
// Format detection

TEST(TensorFile, MissingFile) {
  TempDir dir;
  EXPECT_EQ(read_error(dir / "nope.pth"), (dir / "nope.pth").string() + ": no such file");
}

TEST(TensorFile, RandomBytesAreNotAWeightsFile) {
  TempDir dir;
  std::mt19937 engine(11);
  std::string bytes(300, '\0'), hex;
  for (char& c : bytes) c = static_cast<char>(engine() & 0xff);
  bytes[0] = 0x13;  // not 'P' nor a pickle's PROTO
  bytes[8] = 0x00;  // not a safetensors header's '{'
  for (int i = 0; i < 16; ++i) {
    char b[4];
    std::snprintf(b, sizeof(b), "%s%02x", i == 0 ? "" : " ", static_cast<unsigned char>(bytes[i]));
    hex += b;
  }
  test::write_file(dir / "r.bin", bytes);
  EXPECT_EQ(read_error(dir / "r.bin"),
            (dir / "r.bin").string() +
                ": not a weights file (expected a torch.save zip or legacy file, "
                "safetensors or a unitrain archive); it starts with " +
                hex);
  test::write_file(dir / "e.bin", "");
  EXPECT_THAT(read_error(dir / "e.bin"), HasSubstr("unitrain archive); it is empty"));
}

TEST(TensorFile, FormatNames) {
  EXPECT_STREQ(format_name(FileFormat::kTorchZip), "torch.save (zip)");
  EXPECT_STREQ(format_name(FileFormat::kTorchLegacy), "torch.save (legacy)");
  EXPECT_STREQ(format_name(FileFormat::kSafetensors), "safetensors");
  EXPECT_STREQ(format_name(FileFormat::kUnitrain), "unitrain");
}

// ---------------------------------------------------------------------------------------
// unitrain archives (torch::serialize)

TEST(TensorFile, ReadsUnitrainComponentsAndCheckpoints) {
  TempDir dir;
  c10::Dict<std::string, torch::Tensor> state;
  state.insert("fc1.weight", torch::randn({3, 2}));
  state.insert("fc1.bias", torch::arange(3, torch::kFloat));
  for (const char* key : {"state", "model"}) {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(std::string("unitrain.x.v1")));
    archive.write(key, c10::IValue(state));
    archive.save_to((dir / (std::string(key) + ".pt")).string());
    TensorFile file = read_ok(dir / (std::string(key) + ".pt"));
    EXPECT_EQ(file.format, FileFormat::kUnitrain);
    EXPECT_EQ(file.values, (nlohmann::json{{"format", "unitrain.x.v1"}}));
    const std::string prefix = std::string(key) == "model" ? "model." : "";
    TensorFile want;
    want.tensors = {{prefix + "fc1.weight", state.at("fc1.weight")},
                    {prefix + "fc1.bias", state.at("fc1.bias")}};
    expect_same_tensors(file, want);
  }
  torch::serialize::OutputArchive other;
  other.write("format", c10::IValue(std::string("something")));
  other.save_to((dir / "other.pt").string());
  EXPECT_THAT(read_error(dir / "other.pt"),
              HasSubstr("neither 'state' (an exported component) nor 'model'"));
}

// ---------------------------------------------------------------------------------------
// Hand-built legacy files: magic number, protocol 1001, sys_info, the object, the keys.

std::string u32_le(uint32_t v) { return u64_le(v).substr(0, 4); }
std::string str_op(const std::string& s) { return "X" + u32_le(s.size()) + s; }
const std::string kHead = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."s +
                          "\x80\x02M\xe9\x03."s + "\x80\x02}"s + str_op("little_endian") +
                          "\x88s."s;
// A float storage '0' of `numel` elements viewed as size (n,) stride (1,) at `offset`.
std::string tensor_op(int numel, int offset, int n) {
  return "ctorch._utils\n_rebuild_tensor_v2\n((" + str_op("storage") + "ctorch\nFloatStorage\n" +
         str_op("0") + str_op("cpu") + "K" + std::string(1, char(numel)) + "tQK" +
         std::string(1, char(offset)) + "K" + std::string(1, char(n)) + "\x85K\x01\x85\x89)tR";
}

fs::path legacy(const TempDir& dir, const std::string& object,
                const std::string& tail = "\x80\x02]."s) {
  test::write_file(dir / "l.pth", kHead + object + tail);
  return dir / "l.pth";
}

TEST(TorchLegacy, ReadsAHandBuiltFile) {
  TempDir dir;
  float data[4] = {1, 2, 3, 4};
  const std::string storage = u64_le(4) + std::string(reinterpret_cast<const char*>(data), 16);
  const auto file = legacy(dir, "\x80\x02}"s + str_op("w") + tensor_op(4, 1, 3) + "s.",
                           "\x80\x02]"s + str_op("0") + "a." + storage);
  EXPECT_EQ(detect_format(file), FileFormat::kTorchLegacy);
  TensorFile got = read_ok(file);
  ASSERT_EQ(got.tensors.size(), 1u);
  EXPECT_EQ(got.tensors[0].first, "w");
  EXPECT_TRUE(torch::equal(got.tensors[0].second, torch::tensor({2.0f, 3.0f, 4.0f})));

  legacy(dir, "\x80\x02}"s + str_op("w") + tensor_op(4, 1, 3) + "s.",
         "\x80\x02]"s + str_op("0") + "a." + u64_le(3) + storage.substr(8));
  EXPECT_THAT(read_error(file), HasSubstr("storage '0' has 3 elements, the pickle says 4"));
  legacy(dir, "\x80\x02}"s + str_op("w") + tensor_op(4, 1, 3) + "s.",
         "\x80\x02]"s + str_op("0") + "a." + storage.substr(0, 20));
  EXPECT_THAT(read_error(file), HasSubstr("truncated: storage '0' needs 16 bytes, 12 left"));
}

TEST(TorchLegacy, EveryBrokenPickleNamesItsByte) {
  TempDir dir;
  const size_t at = kHead.size();  // where the object pickle starts
  auto error = [&](const std::string& object, const std::string& tail = "\x80\x02]."s) {
    return read_error(legacy(dir, object, tail));
  };
  auto where = [&](size_t offset) {
    return (dir / "l.pth").string() + ": byte " + std::to_string(at + offset) + ": ";
  };
  EXPECT_THAT(error("\x80\x02\xff."s),
              HasSubstr(where(2) + "unknown or unsupported pickle opcode 0xff"));
  EXPECT_THAT(error("\x80\x02X\x10\x00\x00\x00"
                    "abc"s,
                    ""),
              HasSubstr(where(2) + "truncated: BINUNICODE needs 16 bytes, 3 left"));
  EXPECT_THAT(error("\x80\x02]"s, ""),
              HasSubstr(where(3) + "truncated: the pickle ends before its STOP opcode"));
  EXPECT_THAT(error("\x80\x02K\x01s."s), HasSubstr(where(4) + "SETITEM: stack underflow"));
  EXPECT_THAT(error("\x80\x02}(."s),
              HasSubstr(where(4) + "STOP: stack underflow"));  // the MARK fences off the dict
  EXPECT_THAT(error("\x80\x02h\x05."s),
              HasSubstr(where(2) + "BINGET: memo index 5 was never stored"));
  EXPECT_THAT(error("\x80\x02}"s + str_op("w") + tensor_op(4, 2, 3) + "s."),
              HasSubstr("REDUCE: a tensor of size 3 stride 1 at offset 2 does not fit its storage "
                        "'0' of 4 elements"));
  EXPECT_THAT(error("\x80\x02]q\x00h\x00"
                    "a."s),
              HasSubstr("is nested deeper than 64 levels (or the pickle has a cycle)"));
  EXPECT_THAT(error("\x80\x02}"s + str_op("w") + tensor_op(4, 0, 3) + "s."),
              HasSubstr("storage '0' is used but not in the list of storage keys"));
  EXPECT_THAT(error("\x80\x02" + str_op("x") + "Q."),
              HasSubstr(where(2 + 6) + "BINPERSID: expected a persistent id"));
}

TEST(TorchLegacy, OtherClassesAreOpaqueAndNeverRun) {
  TempDir dir;
  const fs::path marker = dir / "ran";
  // {"run": os.system("touch ran"), "ns": argparse.Namespace() with BUILD, "n": 2**70}
  const std::string object = "\x80\x02}("s + str_op("run") + "cos\nsystem\n" +
                             str_op("touch " + marker.string()) + "\x85R" + str_op("ns") +
                             "cargparse\nNamespace\n)\x81}" + str_op("lr") +
                             "G?\xf0\x00\x00\x00\x00\x00\x00"
                             "sb"s +
                             str_op("n") + "\x8a\x09" + std::string(8, '\0') + "\x40u.";
  TensorFile got = read_ok(legacy(dir, object));
  EXPECT_FALSE(fs::exists(marker));
  EXPECT_EQ(got.values["run"], (nlohmann::json{{"__class__", "os.system"}}));
  EXPECT_EQ(got.values["ns"], (nlohmann::json{{"__class__", "argparse.Namespace"}}));
  EXPECT_EQ(got.values["n"].get<double>(), std::ldexp(1.0, 70));
}

// ---------------------------------------------------------------------------------------
// Files written by torch.save; each X.pth comes with X_legacy.pth and X.ref, the flattened
// tensors written as safetensors by the script itself.

constexpr const char* kScript = R"PY(
import argparse, collections, json, os, struct, sys
import torch, torchvision

out = sys.argv[1]
torch.manual_seed(0)
NAMES = {torch.float64: 'F64', torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16',
         torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8',
         torch.uint8: 'U8', torch.bool: 'BOOL'}

def flat(obj, prefix, acc):
    join = lambda k: f'{prefix}.{k}' if prefix else str(k)
    if isinstance(obj, dict):
        for k, v in obj.items(): flat(v, join(k), acc)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj): flat(v, join(i), acc)
    elif isinstance(obj, torch.Tensor):
        acc.append((prefix, obj))

def write_reference(path, obj):
    acc, header, blobs, offset = [], {}, [], 0
    flat(obj, '', acc)
    for name, t in acc:
        b = t.detach().clone().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {'dtype': NAMES[t.dtype], 'shape': list(t.shape),
                        'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))

def save(name, obj):
    torch.save(obj, os.path.join(out, name + '.pth'))
    torch.save(obj, os.path.join(out, name + '_legacy.pth'), _use_new_zipfile_serialization=False)
    write_reference(os.path.join(out, name + '.ref'), obj)

save('resnet18', torchvision.models.resnet18().state_dict())

model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                            torch.nn.Linear(4 * 6 * 6, 5))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
model(torch.randn(2, 3, 8, 8)).sum().backward()
optimizer.step()
save('detr', {'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
              'args': argparse.Namespace(lr=1e-4, backbone='resnet50'), 'epoch': 3})

base = torch.arange(10, dtype=torch.float32)
save('dtypes', {
    'f64': torch.randn(2, 2, dtype=torch.float64), 'f32': torch.randn(3, 4),
    'f16': torch.randn(5).half(), 'bf16': torch.randn(2, 3).bfloat16(),
    'i64': torch.arange(-3, 3) * 10**12, 'i32': torch.arange(4, dtype=torch.int32),
    'i16': torch.arange(3, dtype=torch.int16), 'i8': torch.arange(-2, 2, dtype=torch.int8),
    'bool': torch.tensor([True, False, True]), 'u8': torch.arange(250, 256, dtype=torch.uint8),
    'transposed': torch.randn(3, 4).t(), 'shared': [base[2:5], base[4:].view(2, 3)],
    'expanded': torch.tensor([1.0, 2.0]).expand(3, 2), 'scalar': torch.tensor(7.5),
    'empty': torch.zeros(0, 3), 'param': torch.nn.Parameter(torch.ones(2)),
    'name': 'x', 'flag': True, 'none': None, 'ratio': 0.25, 'big': 2**70, 'neg': -5,
    'large': 2**40})
)PY";

class TorchSave : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    python_ = test::run_command("/usr/bin/python3 -c 'import torch, torchvision'").status == 0;
    if (!python_) return;
    dir_ = new TempDir;
    test::write_file(*dir_ / "write.py", kScript);
    const auto result = test::run_command("/usr/bin/python3 '" + (*dir_ / "write.py").string() +
                                          "' '" + dir_->path().string() + "'");
    written_ = result.status == 0;
    if (!written_) std::cerr << "write.py failed:\n" << result.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override {
    if (!python_) {
      GTEST_SKIP() << "/usr/bin/python3 cannot import torch and torchvision";
    }
    ASSERT_TRUE(written_);
  }
  static fs::path file(const std::string& name) { return *dir_ / name; }

  // Both formats of `name` hold exactly the tensors of its reference.
  static void expect_like_reference(const std::string& name) {
    const TensorFile want = read_ok(file(name + ".ref"));
    ASSERT_FALSE(want.tensors.empty());
    for (const auto& [suffix, format] :
         {std::pair<std::string, FileFormat>{".pth", FileFormat::kTorchZip},
          {"_legacy.pth", FileFormat::kTorchLegacy}}) {
      SCOPED_TRACE(name + suffix);
      const TensorFile got = read_ok(file(name + suffix));
      EXPECT_EQ(got.format, format);
      expect_same_tensors(got, want);
    }
  }

  static bool python_;
  static TempDir* dir_;
  static bool written_;
};
bool TorchSave::python_ = false;
TempDir* TorchSave::dir_ = nullptr;
bool TorchSave::written_ = false;

TEST_F(TorchSave, ResnetStateDict) {
  expect_like_reference("resnet18");
  const TensorFile got = read_ok(file("resnet18.pth"));
  EXPECT_EQ(got.tensors.size(), 122u);
  EXPECT_EQ(got.tensors.front().first, "conv1.weight");
  EXPECT_EQ(got.values, nlohmann::json::object()) << "the _metadata attribute is dropped";
}

TEST_F(TorchSave, DetrLikeCheckpoint) {
  expect_like_reference("detr");
  for (const char* suffix : {".pth", "_legacy.pth"}) {
    const TensorFile got = read_ok(file(std::string("detr") + suffix));
    EXPECT_EQ(got.tensors.front().first, "model.0.weight");
    EXPECT_EQ(got.values["args"], (nlohmann::json{{"__class__", "argparse.Namespace"}}));
    EXPECT_EQ(got.values["epoch"], 3);
    EXPECT_EQ(got.values["optimizer.param_groups.0.lr"], 1e-4);
    EXPECT_EQ(got.values["optimizer.param_groups.0.betas.1"], 0.999);
    EXPECT_EQ(got.values["optimizer.param_groups.0.params.3"], 3);
    bool has_moment = false;
    for (const auto& [name, t] : got.tensors)
      has_moment = has_moment || name == "optimizer.state.0.exp_avg";
    EXPECT_TRUE(has_moment);
  }
}

TEST_F(TorchSave, DtypesViewsAndSharedStorages) {
  expect_like_reference("dtypes");
  for (const char* suffix : {".pth", "_legacy.pth"}) {
    const TensorFile got = read_ok(file(std::string("dtypes") + suffix));
    EXPECT_EQ(got.values, (nlohmann::json{{"name", "x"},
                                          {"flag", true},
                                          {"none", nullptr},
                                          {"ratio", 0.25},
                                          {"big", std::ldexp(1.0, 70)},
                                          {"neg", -5},
                                          {"large", int64_t{1} << 40}}));
    std::map<std::string, torch::Tensor> by_name(got.tensors.begin(), got.tensors.end());
    EXPECT_TRUE(torch::equal(by_name.at("shared.0"), torch::tensor({2.0f, 3.0f, 4.0f})));
    EXPECT_TRUE(
        torch::equal(by_name.at("shared.1"), torch::arange(4, 10, torch::kFloat).view({2, 3})));
    EXPECT_NE(by_name.at("shared.0").data_ptr(), by_name.at("shared.1").data_ptr());
    EXPECT_TRUE(torch::equal(by_name.at("expanded"), torch::tensor({1.0f, 2.0f}).expand({3, 2})));
  }
}

TEST_F(TorchSave, TruncatedFilesAreErrors) {
  for (const char* name : {"detr.pth", "detr_legacy.pth"}) {
    const std::string bytes = test::read_file(file(name));
    for (size_t keep : {bytes.size() / 2, bytes.size() - 7}) {
      test::write_file(file("cut.pth"), bytes.substr(0, keep));
      EXPECT_THAT(read_error(file("cut.pth")), HasSubstr(file("cut.pth").string() + ": "))
          << name << " " << keep;
    }
  }
  const std::string legacy = test::read_file(file("detr_legacy.pth"));
  test::write_file(file("cut.pth"), legacy.substr(0, legacy.size() - 7));
  EXPECT_THAT(read_error(file("cut.pth")), HasSubstr(": truncated: "));
}

}  // namespace
}  // namespace unitrain::weights
