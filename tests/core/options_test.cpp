// The option declaration (unitrain/options.h): one declaration per option gives the
// defaults, the parsing with its messages, to_json and the README table.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/arg.h>

#include <optional>

#include "unitrain/options.h"

namespace unitrain {
namespace {

using ::testing::HasSubstr;

using Aliases = std::map<std::string, std::string>;

struct ToyOptions {
  explicit ToyOptions(int64_t num_labels) : num_labels_(num_labels) {}
  TORCH_ARG(int64_t, width) = 8;
  TORCH_ARG(int64_t, num_labels);
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, activation) = "relu";
  TORCH_ARG(std::vector<int64_t>, layers) = {};
  TORCH_ARG(Aliases, aliases);
};

const options::OptionSet<ToyOptions>& toy_option_set() {
  static const auto set =
      options::OptionSet<ToyOptions>(ToyOptions(/*num_labels=*/2))
          .add(UNITRAIN_OPTION(width), "hidden width", options::at_least(1))
          .add(UNITRAIN_OPTION(num_labels), "classes | labels", options::at_least(1))
          .add(UNITRAIN_OPTION(dropout), "dropout on the input", options::in_range(0, 1))
          .add(UNITRAIN_OPTION(bias), "Linear layers with bias")
          .add(UNITRAIN_OPTION(activation), "`\"relu\"` or `\"gelu\"`",
               options::one_of({"relu", "gelu"}))
          .add(UNITRAIN_OPTION(layers), "blocks per stage")
          .add(UNITRAIN_OPTION(aliases), "label -> label")
          .add_json("tokenizer", nullptr, "object or null", "read by the factory")
          .validate([](const ToyOptions& o, const nlohmann::json&, const std::string& where) {
            if (o.width() % 2 != 0) {
              throw ConfigError(options::key_path(where, "width") + ": must be even");
            }
          });
  return set;
}

// The message of the ConfigError that parsing `json` throws.
std::string parse_error(const nlohmann::json& json) {
  try {
    toy_option_set().parse(json, "x.json:/model/heads/toy");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Options, DefaultsComeFromThePrototype) {
  const auto expected = nlohmann::json::parse(R"({
    "width": 8, "num_labels": 2, "dropout": 0.1, "bias": true, "activation": "relu",
    "layers": [], "aliases": {}, "tokenizer": null})");
  EXPECT_EQ(toy_option_set().defaults(), expected);
  EXPECT_EQ(nlohmann::json::parse(toy_option_set().defaults_json()), expected);
  // The descriptor keeps the text's address: it stays put.
  EXPECT_EQ(toy_option_set().defaults_json().c_str(), toy_option_set().defaults_json().c_str());
}

TEST(Options, ParseReadsGivenKeysAndKeepsDefaults) {
  auto o = toy_option_set().parse({{"width", 16}, {"dropout", 0}, {"layers", {1, 2}},
                                   {"aliases", {{"a", "b"}}}, {"tokenizer", {{"vocab", "v"}}}});
  EXPECT_EQ(o.width(), 16);
  EXPECT_EQ(o.num_labels(), 2);
  EXPECT_EQ(o.dropout(), 0.0);  // an integer where a float is declared is fine
  EXPECT_EQ(o.layers(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(o.aliases().at("a"), "b");
  EXPECT_EQ(o.activation(), "relu");
}

TEST(Options, WrongTypeNamesThePathWhatWasExpectedAndWhatWasGiven) {
  EXPECT_EQ(parse_error({{"width", "8"}}),
            "x.json:/model/heads/toy/width: expected an integer, found a string \"8\"");
  EXPECT_EQ(parse_error({{"width", 8.5}}),
            "x.json:/model/heads/toy/width: expected an integer, found a number 8.5");
  EXPECT_EQ(parse_error({{"bias", 1}}),
            "x.json:/model/heads/toy/bias: expected a boolean, found an integer 1");
  EXPECT_EQ(parse_error({{"layers", {1, "two"}}}),
            "x.json:/model/heads/toy/layers/1: expected an integer, found a string \"two\"");
  EXPECT_EQ(parse_error({{"layers", 3}}),
            "x.json:/model/heads/toy/layers: expected an array of integers, found an integer 3");
  EXPECT_EQ(parse_error({{"aliases", {{"a", 3}}}}),
            "x.json:/model/heads/toy/aliases/a: expected a string, found an integer 3");
  EXPECT_EQ(parse_error(nlohmann::json::array()),
            "x.json:/model/heads/toy: expected an object of options, found an array []");
}

TEST(Options, UnknownKeyListsTheValidOnes) {
  EXPECT_THAT(parse_error({{"widht", 8}}),
              HasSubstr("x.json:/model/heads/toy/widht: unknown key 'widht'; valid keys: width, "
                        "num_labels, dropout"));
}

TEST(Options, RuleViolationsNameTheKeyTheRuleAndTheValue) {
  EXPECT_EQ(parse_error({{"width", 0}}), "x.json:/model/heads/toy/width: must be >= 1, got 0");
  EXPECT_EQ(parse_error({{"dropout", 1.0}}),
            "x.json:/model/heads/toy/dropout: must be in [0, 1), got 1.0");
  EXPECT_EQ(parse_error({{"activation", "tanh"}}),
            "x.json:/model/heads/toy/activation: expected one of \"relu\", \"gelu\", got \"tanh\"");
  EXPECT_EQ(parse_error({{"width", 7}}), "x.json:/model/heads/toy/width: must be even");
  // Without a `where`, the path is the key.
  EXPECT_THROW(toy_option_set().parse({{"width", 0}}), ConfigError);
  try {
    toy_option_set().parse({{"width", 0}});
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "width: must be >= 1, got 0");
  }
}

TEST(Options, RuleBoundsSayWhetherTheyAreIncluded) {
  struct Rate {
    TORCH_ARG(double, lr) = 0.1;
    TORCH_ARG(double, keep) = 0.5;
    TORCH_ARG(int64_t, layers) = 3;
  };
  static const auto set = options::OptionSet<Rate>()
                              .add(UNITRAIN_OPTION(lr), "step size", options::above(0))
                              .add(UNITRAIN_OPTION(keep), "share kept", options::above_up_to(0, 1))
                              .add(UNITRAIN_OPTION(layers), "layers", options::between(0, 5));
  auto error = [](const nlohmann::json& json) {
    try {
      set.parse(json);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error({{"lr", 0}}), "lr: must be > 0, got 0.0");
  EXPECT_EQ(error({{"keep", 0.0}}), "keep: must be in (0, 1], got 0.0");
  EXPECT_EQ(error({{"keep", 1}}), "no error");
  EXPECT_EQ(error({{"layers", 6}}), "layers: must be in [0, 5], got 6");
  EXPECT_EQ(error({{"layers", 5}, {"lr", 1e-9}}), "no error");
}

TEST(Options, CheckDividesNamesBothOptions) {
  EXPECT_NO_THROW(options::check_divides("x.json:/d", "num_heads", 8, "d_model", 768));
  try {
    options::check_divides("x.json:/d", "num_heads", 5, "d_model", 768);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "x.json:/d/num_heads: must divide d_model (768), got 5");
  }
  EXPECT_THROW(options::check_divides("", "num_heads", 0, "d_model", 768), ConfigError);
}

TEST(Options, ToJsonRoundTrip) {
  auto json = toy_option_set().to_json(ToyOptions(5).width(32).activation("gelu").layers({1, 1}));
  EXPECT_EQ(json.at("num_labels"), 5);
  EXPECT_FALSE(json.contains("tokenizer"));  // not a field
  EXPECT_EQ(toy_option_set().to_json(toy_option_set().parse(json)), json);
  auto defaults = toy_option_set().defaults();
  defaults.erase("tokenizer");
  EXPECT_EQ(toy_option_set().to_json(toy_option_set().parse(nlohmann::json::object())), defaults);
}

TEST(Options, MarkdownTable) {
  EXPECT_EQ(toy_option_set().markdown(),
            "| key | type | default | meaning |\n"
            "|-----|------|---------|---------|\n"
            "| `width` | int | 8 | hidden width |\n"
            "| `num_labels` | int | 2 | classes \\| labels |\n"
            "| `dropout` | float | 0.1 | dropout on the input |\n"
            "| `bias` | bool | true | Linear layers with bias |\n"
            "| `activation` | string | `\"relu\"` | `\"relu\"` or `\"gelu\"` |\n"
            "| `layers` | array of ints | `[]` | blocks per stage |\n"
            "| `aliases` | object of strings | `{}` | label -> label |\n"
            "| `tokenizer` | object or null | `null` | read by the factory |\n");
}

// A nested block (a dataset's "image"): a plain struct whose own set declares its keys.
struct Transform {
  int64_t size = 800;
  std::optional<bool> augment;
  nlohmann::json pairs = nlohmann::json::array();
};

const options::OptionSet<Transform>& transform_option_set() {
  static const auto set =
      options::OptionSet<Transform>()
          .add(UNITRAIN_FIELD(size), "shorter side", options::at_least(1))
          .add(UNITRAIN_FIELD(augment), "null: from the split")
          .add(UNITRAIN_FIELD(pairs), "word pairs",
               options::typed("array of pairs",
                              options::check([](const nlohmann::json& v, const std::string& path) {
                                if (!v.is_array()) throw ConfigError(path + ": expected pairs");
                              })))
          .validate([](const Transform& t, const nlohmann::json&, const std::string& where) {
            if (t.size == 13) throw ConfigError(options::key_path(where, "size") + ": unlucky");
          });
  return set;
}

struct Reader {
  std::string split = "train";
  Transform image;  // this reader's defaults differ from the group's own
  Reader() { image.size = 600; }
};

const options::OptionSet<Reader>& reader_option_set() {
  static const auto set =
      options::OptionSet<Reader>()
          .add(UNITRAIN_FIELD(split), "the split")
          .add_group("image", [](auto& o) -> auto& { return o.image; }, transform_option_set(),
                     "the transform");
  return set;
}

TEST(OptionGroups, DefaultsAreTheParentsAndNested) {
  EXPECT_EQ(reader_option_set().defaults(),
            nlohmann::json::parse(
                R"({"split": "train", "image": {"size": 600, "augment": null, "pairs": []}})"));
}

TEST(OptionGroups, KeysLeftOutKeepTheParentsDefaults) {
  const Reader r = reader_option_set().parse({{"image", {{"augment", true}}}}, "e.json:/d");
  EXPECT_EQ(r.image.size, 600);
  EXPECT_EQ(r.image.augment, std::optional<bool>(true));
  const Reader unset = reader_option_set().parse({{"image", {{"augment", nullptr}}}});
  EXPECT_FALSE(unset.image.augment.has_value());
  EXPECT_EQ(reader_option_set().to_json(r)["image"],
            nlohmann::json::parse(R"({"size": 600, "augment": true, "pairs": []})"));
  EXPECT_EQ(reader_option_set().to_json(reader_option_set().parse(reader_option_set().to_json(r))),
            reader_option_set().to_json(r));
}

TEST(OptionGroups, MessagesNameTheNestedKey) {
  auto error = [](const nlohmann::json& json) {
    try {
      reader_option_set().parse(json, "e.json:/tasks/coco/dataset");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error({{"image", {{"sise", 1}}}}),
              HasSubstr("e.json:/tasks/coco/dataset/image/sise: unknown key 'sise'; valid keys: "
                        "size, augment, pairs"));
  EXPECT_THAT(error({{"image", {{"size", 0}}}}),
              HasSubstr("e.json:/tasks/coco/dataset/image/size: must be >= 1, got 0"));
  EXPECT_THAT(error({{"image", {{"augment", "yes"}}}}),
              HasSubstr("e.json:/tasks/coco/dataset/image/augment: expected a boolean, found a "
                        "string \"yes\""));
  EXPECT_THAT(error({{"image", {{"pairs", 3}}}}),
              HasSubstr("e.json:/tasks/coco/dataset/image/pairs: expected pairs"));
  EXPECT_THAT(error({{"image", {{"size", 13}}}}),
              HasSubstr("e.json:/tasks/coco/dataset/image/size: unlucky"));
  EXPECT_THAT(error({{"image", 5}}),
              HasSubstr("e.json:/tasks/coco/dataset/image: expected an object of options"));
}

TEST(OptionGroups, MarkdownHasOneRowPerNestedKeyWithTheParentsDefaults) {
  EXPECT_EQ(reader_option_set().markdown(),
            "| key | type | default | meaning |\n"
            "|-----|------|---------|---------|\n"
            "| `split` | string | `\"train\"` | the split |\n"
            "| `image` | object |  | the transform |\n"
            "| `image/size` | int | 600 | shorter side |\n"
            "| `image/augment` | bool or null | `null` | null: from the split |\n"
            "| `image/pairs` | array of pairs | `[]` | word pairs |\n");
}

}  // namespace
}  // namespace unitrain
