// Starting components from other code's weights through "init_from": parity with
// torchvision on files Debian's python3-torchvision writes, complete maps for the real key
// lists of DETR and bert-base-uncased onto unit_8task's components, and the reports and
// errors a user sees.
#include <algorithm>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "plugins/encoders/image/resnet.h"
#include "test_util.h"
#include "unitrain/checkpoint.h"
#include "unitrain/config.h"
#include "unitrain/errors.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"
#include "unitrain/weights/importer.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

const std::string kFixtures = std::string(UNITRAIN_TEST_FIXTURE_DIR) + "/good";
const fs::path kWeights = fs::path(UNITRAIN_SOURCE_DIR) / "tests/fixtures/weights";

// torchvision's files and features, written once per test binary by Debian's
// python3-torchvision (scripts/setup.sh installs it).
const fs::path& torchvision_dir() {
  static test::TempDir dir;
  static bool made = [] {
    auto result = test::run_command("/usr/bin/python3 '" +
                                    (kWeights / "torchvision_features.py").string() + "' '" +
                                    dir.path().string() + "'");
    EXPECT_EQ(result.status, 0) << "python3-torchvision could not write the reference files "
                                   "(scripts/setup.sh installs it):\n"
                                << result.output;
    return result.status == 0;
  }();
  (void)made;
  return dir.path();
}

torch::Tensor feature(const std::string& name) {
  static const auto file = weights::read_tensor_file(torchvision_dir() / "features.pth");
  for (const auto& [n, t] : file.tensors) {
    if (n == name) return t;
  }
  ADD_FAILURE() << "features.pth has no " << name;
  return {};
}

// A key list fixture ("name d0 d1 ..." lines) as tensors of those shapes (expanded
// zeros: shapes are what the maps check).
Tensors key_list(const std::string& file) {
  std::ifstream in(kWeights / file);
  EXPECT_TRUE(in) << file;
  Tensors tensors;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    std::vector<int64_t> shape;
    for (int64_t d; fields >> d;) shape.push_back(d);
    tensors.emplace_back(name, torch::zeros({1}).expand(shape));
  }
  return tensors;
}

json unit_8task_block(const std::string& pointer) {
  std::ifstream in(fs::path(UNITRAIN_SOURCE_DIR) / "experiments/unit_8task.json");
  auto block = json::parse(in).at(json::json_pointer(pointer));
  block.erase("type");
  block.erase("init_from");
  return block;
}

class PretrainedWeights : public ::testing::Test {
 protected:
  void SetUp() override { registry_.load_default_search_path({{kFixtures, "the test fixtures"}}); }

  // A component created through its plugin, with its own state.
  std::shared_ptr<PluginObject> create(const std::string& kind, const std::string& type,
                                       const json& options) {
    return registry_.create(kind, type, options, "test");
  }

  static weights::ImportPlan plan(const PluginObject& object, const weights::ImportContext& context,
                                  const Tensors& file, const std::vector<std::string>& skip = {}) {
    const auto& module = dynamic_cast<const torch::nn::Module&>(object);
    const auto* importer = dynamic_cast<const weights::WeightImporter*>(&object);
    EXPECT_NE(importer, nullptr);
    Tensors own;
    for (const auto& entry : state_dict(module)) own.emplace_back(entry.key(), entry.value());
    return weights::plan_import(importer->weight_map(context), file, own, skip);
  }

  static std::vector<std::string> unexpected(const weights::ImportPlan& p) {
    std::vector<std::string> names;
    for (const auto& n : p.known) {
      if (!p.consumed.count(n) && !p.ignored.count(n)) names.push_back(n);
    }
    return names;
  }

  // An experiment of one detection task on the image encoder `image` (JSON), written to
  // the temp folder.
  Experiment image_experiment(const json& image, const json& model_extra = json::object()) {
    json j = {{"name", "pretrained"},
              {"plugin_dirs", {kFixtures}},
              {"model",
               {{"encoders", {{"image", image}}},
                {"decoder", {{"type", "unit_decoder"}, {"d_model", 16}, {"num_layers", 1},
                             {"num_heads", 2}, {"dim_feedforward", 32}}},
                {"heads", {{"coco", {{"type", "detr"}, {"in_dim", 16}, {"num_classes", 3}}}}}}},
              {"tasks",
               {{"coco", {{"dataset", {{"type", "test_dataset"}}}, {"encoders", {"image"}},
                          {"num_queries", 4}}}}}};
    j["model"].update(model_extra);
    const auto file = dir_ / "pretrained.json";
    test::write_file(file, j.dump(2));
    auto experiment = load_experiment(file);
    validate_experiment(experiment, &registry_);
    return experiment;
  }

  static json image_block(int64_t depth, const json& init, const std::string& return_layer = "layer4",
                          bool dilation = false) {
    return {{"type", "image"}, {"depth", depth},       {"return_layer", return_layer},
            {"dilation", dilation}, {"hidden_dim", 16}, {"num_layers", 1},
            {"num_heads", 2},  {"dim_feedforward", 32}, {"output_dim", 16},
            {"init_from", init}};
  }

  // The backbone of a built model's image encoder run on torchvision's input, through a
  // ResNet of the same options that takes the encoder's backbone weights.
  static torch::Tensor backbone_features(UnitModel& model, const image::ResNetOptions& options) {
    image::ResNet resnet(options);
    StateDict state;
    for (const auto& entry : state_dict(*model->encoder("image"))) {
      const std::string prefix = "backbone.";
      if (entry.key().rfind(prefix, 0) == 0) state.insert(entry.key().substr(prefix.size()), entry.value());
    }
    load_state_dict(*resnet, state, "test");
    torch::NoGradGuard no_grad;
    return resnet->forward(feature("input"));
  }

  static void expect_close(const torch::Tensor& ours, const torch::Tensor& reference) {
    ASSERT_EQ(ours.sizes(), reference.sizes());
    const double scale = reference.abs().max().item<double>();
    const double diff = (ours - reference).abs().max().item<double>();
    EXPECT_GT(scale, 0.0);
    EXPECT_LE(diff, 1e-4 * std::max(1.0, scale)) << "max |diff| " << diff << " at scale " << scale;
  }

  test::TempDir dir_;
  Registry registry_;
};

TEST_F(PretrainedWeights, TorchvisionResNetsMatchTorchvisionFeatures) {
  struct Case {
    int64_t depth;
    std::string file, layer, reference;
    bool dilation;
  };
  for (const Case& c : {Case{18, "resnet18.pth", "layer4", "resnet18.layer4", false},
                        Case{50, "resnet50.pth", "layer4", "resnet50.layer4", false},
                        Case{50, "resnet50_legacy.pth", "layer4", "resnet50.layer4", false},
                        Case{50, "resnet50.pth", "layer4", "resnet50_dc5.layer4", true}}) {
    SCOPED_TRACE(c.file + " " + c.reference);
    const json init = {{"file", (torchvision_dir() / c.file).string()},
                       {"format", "torchvision_resnet"}};
    auto experiment = image_experiment(image_block(c.depth, init, c.layer, c.dilation));
    UnitModel model(experiment, registry_factory(registry_));
    ASSERT_EQ(model->import_reports().size(), 1u);
    const auto& report = model->import_reports()[0];
    EXPECT_TRUE(report.clean()) << report.summary(true);
    // Every tensor of torchvision's but fc and the BatchNorms' num_batches_tracked.
    const int64_t batch_norms = c.depth == 18 ? 20 : 53;
    const auto file = weights::read_tensor_file(torchvision_dir() / c.file);
    EXPECT_EQ(static_cast<int64_t>(report.loaded),
              static_cast<int64_t>(file.tensors.size()) - 2 - batch_norms);
    auto features = backbone_features(
        model, image::ResNetOptions().depth(c.depth).dilation(c.dilation).return_layer(4));
    expect_close(features, feature(c.reference));
  }
}

TEST_F(PretrainedWeights, ShallowerReturnLayerSkipsTheRest) {
  // layer4 of the file has no place in a layer3 backbone: strict says so, skip takes it out.
  const auto file = (torchvision_dir() / "resnet18.pth").string();
  json init = {{"file", file}, {"format", "torchvision_resnet"}};
  const auto message = test::error_of<Error>([&] {
    UnitModel model(image_experiment(image_block(18, init, "layer3")), registry_factory(registry_));
  });
  EXPECT_NE(message.find("pretrained.json:/model/encoders/image/init_from"), std::string::npos) << message;
  EXPECT_NE(message.find("unexpected: layer4.0.bn1.bias"), std::string::npos) << message;
  EXPECT_NE(message.find("\"skip\""), std::string::npos) << message;

  init["skip"] = {"layer4.*"};
  UnitModel model(image_experiment(image_block(18, init, "layer3")), registry_factory(registry_));
  const auto& report = model->import_reports().at(0);
  EXPECT_TRUE(report.clean()) << report.summary(true);
  EXPECT_EQ(report.skipped, 0u);         // the backbone has no layer4
  EXPECT_EQ(report.skipped_file, 30u);   // layer4 of the file (num_batches_tracked included)
  expect_close(backbone_features(model, image::ResNetOptions().depth(18).return_layer(3)),
               feature("resnet18.layer3"));
}

TEST_F(PretrainedWeights, WrongFileForTheComponentListsTheOffenders) {
  // A ResNet-50 file on a ResNet-18: other shapes and unexpected names, then what the file holds.
  const json init = {{"file", (torchvision_dir() / "resnet50.pth").string()},
                     {"format", "torchvision_resnet"}};
  const auto message = test::error_of<Error>([&] {
    UnitModel model(image_experiment(image_block(18, init)), registry_factory(registry_));
  });
  EXPECT_NE(message.find("does not fit encoders/image"), std::string::npos) << message;
  EXPECT_NE(message.find("of another shape: backbone.layer1.0.conv1.weight <- layer1.0.conv1.weight: "
                         "file [64, 64, 1, 1], here [64, 64, 3, 3]"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("unexpected: "), std::string::npos) << message;
  EXPECT_NE(message.find("The file holds 320 tensors"), std::string::npos) << message;

  // Not strict: what fits is loaded (the stem), the rest reported.
  json loose = init;
  loose["strict"] = false;
  UnitModel model(image_experiment(image_block(18, loose)), registry_factory(registry_));
  const auto& report = model->import_reports().at(0);
  EXPECT_GT(report.loaded, 0u);
  EXPECT_FALSE(report.mismatched.empty());
  EXPECT_NE(report.summary(false).find("of another shape"), std::string::npos);
}

TEST_F(PretrainedWeights, FileThatIsNotAStateDict) {
  const auto load = [&](const std::string& name) {
    const json init = {{"file", (torchvision_dir() / name).string()}, {"format", "torchvision_resnet"}};
    return test::error_of<Error>([&] {
      UnitModel model(image_experiment(image_block(18, init)), registry_factory(registry_));
    });
  };
  auto message = load("list.pth");
  EXPECT_NE(message.find("list.pth' (torch.save (zip)) holds no tensor: it is not a state dict "
                         "(names to tensors); it holds 0 = 1; 1 = 2.5; 2 = \"three\""),
            std::string::npos)
      << message;
  message = load("tensor.pth");
  EXPECT_NE(message.find("does not fit encoders/image"), std::string::npos) << message;
  EXPECT_NE(message.find("no tensor of the file is one this map reads"), std::string::npos) << message;
  EXPECT_NE(message.find("The file holds 1 tensors:  [4]"), std::string::npos) << message;
}

TEST_F(PretrainedWeights, FormatTheComponentCannotReadIsAConfigError) {
  const json init = {{"file", (torchvision_dir() / "resnet18.pth").string()}, {"format", "hf_bert"}};
  const auto message = test::error_of<Error>([&] {
    UnitModel model(image_experiment(image_block(18, init)), registry_factory(registry_));
  });
  EXPECT_NE(message.find("/model/encoders/image/init_from/format: encoder 'encoders/image' (image) "
                         "cannot read \"hf_bert\" weights; it reads unitrain, torchvision_resnet, "
                         "detr, mmf_unit"),
            std::string::npos)
      << message;
}

TEST_F(PretrainedWeights, InitFromBlockIsChecked) {
  const auto where = [&](const json& init) {
    return test::error_of<Error>([&] { image_experiment(image_block(18, init)); });
  };
  auto message = where({{"file", "x.pth"}, {"format", "torchvison_resnet"}});
  EXPECT_NE(message.find("/model/encoders/image/init_from/format: unknown format "
                         "\"torchvison_resnet\"; expected one of torchvision_resnet"),
            std::string::npos)
      << message;
  message = where({{"file", "x.pth"}, {"stict", false}});
  EXPECT_NE(message.find("/init_from/stict: unknown key 'stict'; valid keys: strict"),
            std::string::npos)
      << message;
  message = where({{"format", "detr"}});
  EXPECT_NE(message.find("/init_from/file: expected the weights file"), std::string::npos) << message;
  message = where({{"file", "x.pth"}, {"format", "mmf_unit"}});
  EXPECT_NE(message.find("put it on the model, as /model/init_from"), std::string::npos) << message;
  message = where({{"file", "x.pth"}, {"skip", "fc.*"}});
  EXPECT_NE(message.find("/init_from/skip: expected a list of name globs"), std::string::npos) << message;
}

TEST_F(PretrainedWeights, MissingFileNamesThePlace) {
  const json init = {{"file", "no/such/detr.pth"}, {"format", "detr"}};
  const auto message = test::error_of<Error>([&] {
    UnitModel model(image_experiment(image_block(18, init)), registry_factory(registry_));
  });
  EXPECT_NE(message.find("pretrained.json:/model/encoders/image/init_from"), std::string::npos) << message;
  EXPECT_NE(message.find("no/such/detr.pth"), std::string::npos) << message;
}

TEST_F(PretrainedWeights, DetrKeyListsMapCompletelyOntoUnit8TaskImageEncoder) {
  auto encoder = create("encoder", "image", unit_8task_block("/model/encoders/image"));
  weights::ImportContext context;
  context.format = "detr";
  context.component = "encoders/image";
  for (const std::string file : {"detr-r50.keys", "detr-r50-dc5.keys"}) {
    SCOPED_TRACE(file);
    const auto keys = key_list(file);
    ASSERT_EQ(keys.size(), 458u);
    const auto p = plan(*encoder, context, keys);
    EXPECT_TRUE(p.missing.empty()) << p.missing.size() << " missing, e.g. " << p.missing[0].first;
    EXPECT_TRUE(p.mismatched.empty()) << p.mismatched[0].target;
    EXPECT_TRUE(unexpected(p).empty()) << unexpected(p)[0];
    // Backbone (53 convolutions, 53 frozen BatchNorms of 4), input_proj (2), six encoder
    // layers (12 each).
    EXPECT_EQ(p.loaded.size(), 265u + 2u + 72u);
    // What DETR does not have: the task token and the projections to the decoder width.
    EXPECT_EQ(p.kept, (std::vector<std::string>{"task_embeddings.weight", "output_proj.weight",
                                                "output_proj.bias", "pos_proj.weight",
                                                "pos_proj.bias"}));
  }
}

TEST_F(PretrainedWeights, BertKeyListMapsCompletelyOntoUnit8TaskTextEncoder) {
  auto encoder = create("encoder", "text", unit_8task_block("/model/encoders/text"));
  weights::ImportContext context;
  context.format = "hf_bert";
  context.component = "encoders/text";
  const auto keys = key_list("bert-base-uncased.keys");
  ASSERT_EQ(keys.size(), 207u);
  const auto p = plan(*encoder, context, keys);
  EXPECT_TRUE(p.missing.empty()) << p.missing[0].first << " wants " << p.missing[0].second;
  EXPECT_TRUE(p.mismatched.empty()) << p.mismatched[0].target;
  EXPECT_TRUE(unexpected(p).empty()) << unexpected(p)[0];
  // Embeddings (3 + LayerNorm 2) and 12 layers of 12 tensors (q, k, v fused into 2).
  EXPECT_EQ(p.loaded.size(), 5u + 12u * 12u);
  EXPECT_EQ(p.ignored.size(), 2u + 8u);  // pooler, cls.*
  // BertModel as save_pretrained writes it today: no prefix, weight/bias, position_ids.
  Tensors modern;
  for (const auto& [name, t] : keys) {
    if (name.rfind("bert.", 0) != 0) continue;
    auto n = name.substr(5);
    for (const auto& [from, to] : {std::pair<std::string, std::string>{".gamma", ".weight"}, {".beta", ".bias"}}) {
      if (n.size() > from.size() && n.compare(n.size() - from.size(), from.size(), from) == 0) {
        n = n.substr(0, n.size() - from.size()) + to;
      }
    }
    modern.emplace_back(n, t);
  }
  modern.emplace_back("embeddings.position_ids", torch::zeros({1, 512}, torch::kLong));
  const auto q = plan(*encoder, context, modern);
  EXPECT_TRUE(q.missing.empty() && q.mismatched.empty() && unexpected(q).empty());
  EXPECT_EQ(q.loaded.size(), 5u + 12u * 12u);
}

TEST_F(PretrainedWeights, BertQueryKeyValueFuseInOrder) {
  auto encoder = create("encoder", "text",
                        {{"vocab_size", 11}, {"hidden_dim", 4}, {"num_layers", 1}, {"num_heads", 2},
                         {"intermediate_dim", 8}, {"max_position", 6}, {"output_dim", 4}});
  weights::ImportContext context;
  context.format = "hf_bert";
  Tensors file;
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, float>>{{"query", 1.f}, {"key", 2.f}, {"value", 3.f}}) {
    file.emplace_back("bert.encoder.layer.0.attention.self." + name + ".weight",
                      torch::full({4, 4}, value));
    file.emplace_back("bert.encoder.layer.0.attention.self." + name + ".bias", torch::full({4}, value));
  }
  const auto p = plan(*encoder, context, file);
  const auto& weight = p.loaded.at("encoder.layers.0.self_attn.in_proj_weight");
  const auto& bias = p.loaded.at("encoder.layers.0.self_attn.in_proj_bias");
  for (int64_t part = 0; part < 3; ++part) {
    EXPECT_TRUE(weight.narrow(0, 4 * part, 4).eq(part + 1.0).all().item<bool>()) << part;
    EXPECT_TRUE(bias.narrow(0, 4 * part, 4).eq(part + 1.0).all().item<bool>()) << part;
  }
}

TEST_F(PretrainedWeights, DetrDecoderAndHeadWithCocoClassRows) {
  // A DETR-sized decoder and an 80-class COCO head take DETR's decoder, queries and
  // heads; class rows come from DETR's category-id rows.
  auto decoder_object = create("decoder", "unit_decoder",
                               {{"d_model", 256}, {"num_layers", 6}, {"num_heads", 8},
                                {"dim_feedforward", 2048}});
  auto decoder = std::dynamic_pointer_cast<Decoder>(decoder_object);
  decoder->add_task("coco", 100);
  decoder->add_task("vqa2", 25);
  weights::ImportContext context;
  context.format = "detr";
  context.component = "decoder";
  context.component_tasks = {"coco", "vqa2"};
  context.task_names = {{"coco", "coco"}};
  auto keys = key_list("detr-r50.keys");
  auto p = plan(*decoder_object, context, keys);
  EXPECT_TRUE(p.missing.empty() && p.mismatched.empty() && unexpected(p).empty());
  EXPECT_EQ(p.loaded.size(), 6u * 18u + 2u + 1u);  // layers, final norm, coco's queries
  EXPECT_EQ(p.kept, (std::vector<std::string>{"queries.vqa2.weight"}));

  auto head = create("head", "detr", {{"in_dim", 256}, {"num_classes", 80}});
  context.component = "heads/coco";
  context.component_tasks = {"coco"};
  for (auto& [name, t] : keys) {
    if (name == "class_embed.weight") t = torch::arange(92, torch::kFloat).unsqueeze(1).expand({92, 256});
    if (name == "class_embed.bias") t = torch::arange(92, torch::kFloat);
  }
  p = plan(*head, context, keys);
  EXPECT_TRUE(p.missing.empty() && p.mismatched.empty() && unexpected(p).empty());
  EXPECT_EQ(p.loaded.size(), 2u + 6u);
  const auto bias = p.loaded.at("class_embed.bias");
  ASSERT_EQ(bias.size(0), 81);
  EXPECT_EQ(bias[0].item<float>(), 1.f);    // person
  EXPECT_EQ(bias[11].item<float>(), 13.f);  // stop sign (id 12 is unused)
  EXPECT_EQ(bias[79].item<float>(), 90.f);  // toothbrush
  EXPECT_EQ(bias[80].item<float>(), 91.f);  // no-object
  EXPECT_EQ(p.loaded.at("class_embed.weight")[11][7].item<float>(), 13.f);
}

TEST_F(PretrainedWeights, WeightsInspectAndConvert) {
  const auto file = (torchvision_dir() / "resnet18.pth").string();
  auto result = test::run_unitrain("weights inspect '" + file + "'");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("torch.save (zip), 122 tensors"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("names look like \"torchvision_resnet\""), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("layer1.0.conv1.weight"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("[64, 64, 3, 3]"), std::string::npos) << result.output;

  auto experiment = image_experiment(image_block(18, "unused.pt"));
  auto json_text = test::read_file(experiment.file);
  auto j = json::parse(json_text);
  j["model"]["encoders"]["image"].erase("init_from");
  test::write_file(experiment.file, j.dump());
  const auto out = dir_ / "image.pt";
  result = test::run_unitrain("weights convert '" + file + "' --format torchvision_resnet --experiment '" +
                              experiment.file.string() + "' --component encoders/image --out '" +
                              out.string() + "'");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("wrote encoders/image (100 tensors from the file)"), std::string::npos)
      << result.output;
  // The archive is an ordinary init_from file: the backbone equals torchvision's.
  j["model"]["encoders"]["image"]["init_from"] = out.string();
  test::write_file(experiment.file, j.dump());
  auto converted = load_experiment(experiment.file);
  validate_experiment(converted, &registry_);
  UnitModel model(converted, registry_factory(registry_));
  expect_close(backbone_features(model, image::ResNetOptions().depth(18)), feature("resnet18.layer4"));
}

}  // namespace
}  // namespace unitrain

namespace unitrain {
namespace {

// A small UniT (image + text encoders with task tokens, shared decoder, two classifiers,
// one detector) and an MMF UniT checkpoint of it, named as mmf/models/unit/ names its
// modules: the state's of a model with the other seed, written in MMF's layout by hand.
json mmf_experiment(const json& init) {
  return {
      {"name", "mmf"},
      {"plugin_dirs", {kFixtures}},
      {"model",
       {{"init_from", init},
        {"encoders",
         {{"image", {{"type", "image"}, {"depth", 18}, {"width", 8}, {"layers", {1, 1, 1, 1}},
                     {"return_layer", "layer3"}, {"hidden_dim", 16}, {"num_layers", 1},
                     {"num_heads", 2}, {"dim_feedforward", 32}, {"task_token", true},
                     {"output_dim", 32}}},
          {"text", {{"type", "text"}, {"vocab_size", 60}, {"hidden_dim", 32}, {"num_layers", 1},
                    {"num_heads", 4}, {"intermediate_dim", 64}, {"max_position", 16},
                    {"task_token", true}, {"output_dim", 32}}}}},
        {"decoder", {{"type", "unit_decoder"}, {"d_model", 32}, {"num_layers", 2}, {"num_heads", 4},
                     {"dim_feedforward", 64}}},
        {"heads",
         {{"snli_ve", {{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", 3}}},
          {"vqa2", {{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", 7}, {"loss", "soft_bce"}}},
          {"coco", {{"type", "detr"}, {"in_dim", 32}, {"num_classes", 5}}}}}}},
      {"tasks",
       {{"snli_ve", {{"dataset", {{"type", "test_dataset"}}}, {"encoders", {"image", "text"}}, {"num_queries", 2}}},
        {"vqa2", {{"dataset", {{"type", "test_dataset"}}}, {"encoders", {"image", "text"}}, {"num_queries", 3}}},
        {"coco", {{"dataset", {{"type", "test_dataset"}}}, {"encoders", {"image"}}, {"num_queries", 8}}}}}};
}

// MMF's names for our state (dataset names and task_idx as MMF's UniT configs).
Tensors mmf_state(const StateDict& ours) {
  const std::map<std::string, std::pair<std::string, std::string>> datasets = {
      {"coco", {"detection", "detection_coco"}},
      {"snli_ve", {"vl", "visual_entailment"}},
      {"vqa2", {"vl", "vqa2"}}};
  Tensors out;
  auto put = [&](const std::string& name, const torch::Tensor& t) { out.emplace_back(name, t.clone()); };
  auto starts = [](const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; };
  for (const auto& entry : ours) {
    const std::string& n = entry.key();
    const torch::Tensor& t = entry.value();
    if (starts(n, "encoder_image.")) {
      auto rest = n.substr(14);
      if (starts(rest, "backbone.")) put("unit_base_model.backbone.0.body." + rest.substr(9), t);
      else if (starts(rest, "input_proj.")) put("unit_base_model." + rest, t);
      else if (starts(rest, "encoder.")) put("unit_base_model.transformer." + rest, t);
      else if (rest == "task_embeddings.weight") {
        // MMF's rows: coco 0, vqa2 3, visual_entailment 9; ours: coco 0, snli_ve 1, vqa2 2.
        auto rows = t.clone();
        rows[3] = t[2];
        rows[9] = t[1];
        rows[1] = rows[2] = torch::full_like(t[0], 7.0);
        put("unit_base_model.transformer.task_embeddings_enc.weight", rows);
      } else if (starts(rest, "output_proj.")) put("unit_base_model.transformer.enc2dec_proj." + rest.substr(12), t);
      else if (starts(rest, "pos_proj.")) put("unit_base_model.transformer.pos_embed_proj." + rest.substr(9), t);
      else ADD_FAILURE() << n;
    } else if (starts(n, "encoder_text.")) {
      auto rest = n.substr(13);
      const std::string bert = "bert_model.module.";
      if (starts(rest, "embeddings.")) {
        auto e = rest.substr(11);
        if (starts(e, "layer_norm.")) e = "LayerNorm." + e.substr(11);
        put(bert + "embeddings." + e, t);
        put("bert_model.embeddings." + e, t);
      } else if (starts(rest, "encoder.layers.0.")) {
        auto l = rest.substr(17);
        const std::string layer = bert + "encoder.layer.0.";
        if (starts(l, "self_attn.in_proj_")) {
          const auto part = l.substr(18);  // weight / bias
          const auto qkv = t.chunk(3, 0);
          put(layer + "attention.self.query." + part, qkv[0]);
          put(layer + "attention.self.key." + part, qkv[1]);
          put(layer + "attention.self.value." + part, qkv[2]);
        } else if (starts(l, "self_attn.out_proj.")) put(layer + "attention.output.dense." + l.substr(19), t);
        else if (starts(l, "norm1.")) put(layer + "attention.output.LayerNorm." + l.substr(6), t);
        else if (starts(l, "linear1.")) put(layer + "intermediate.dense." + l.substr(8), t);
        else if (starts(l, "linear2.")) put(layer + "output.dense." + l.substr(8), t);
        else if (starts(l, "norm2.")) put(layer + "output.LayerNorm." + l.substr(6), t);
        else ADD_FAILURE() << n;
      } else if (rest == "task_embeddings.weight") {
        auto rows = t.clone();
        rows[3] = t[2];
        rows[9] = t[1];
        put("task_embeddings_lang.weight", rows);
      } else if (starts(rest, "projection.")) put("bert_projection." + rest.substr(11), t);
      else if (starts(rest, "pos_projection.")) put("bert_pos_projection." + rest.substr(15), t);
      else ADD_FAILURE() << n;
    } else if (starts(n, "decoder.")) {
      auto rest = n.substr(8);
      if (starts(rest, "decoder.")) {
        put("unit_base_model.transformer.decoder." + rest.substr(8), t);
        for (const auto& [task, d] : datasets) {
          put("unit_base_model.transformer.decoders." + d.first + "." + d.second + "." + rest.substr(8), t);
        }
      } else if (starts(rest, "queries.")) {
        const auto task = rest.substr(8, rest.find('.', 8) - 8);
        const auto& d = datasets.at(task);
        put("unit_base_model.query_embeds." + d.first + "." + d.second + ".weight", t);
      } else ADD_FAILURE() << n;
    } else if (starts(n, "head_coco.")) {
      auto rest = n.substr(10);
      if (starts(rest, "class_embed.")) put("class_embeds.detection_coco." + rest.substr(12), t);
      else if (starts(rest, "bbox_embed.")) put("bbox_embeds.detection_coco.layers." + rest.substr(11), t);
      else ADD_FAILURE() << n;
    } else if (starts(n, "head_")) {
      const auto task = n.substr(5, n.find('.') - 5);
      const auto rest = n.substr(n.find('.') + 1);
      const auto& d = datasets.at(task);
      const auto prefix = "classifiers." + d.first + "." + d.second + ".";
      if (starts(rest, "fc1.")) put(prefix + "0.dense." + rest.substr(4), t);
      else if (starts(rest, "norm.")) put(prefix + "0.LayerNorm." + rest.substr(5), t);
      else if (starts(rest, "fc2.")) put(prefix + "1." + rest.substr(4), t);
      else ADD_FAILURE() << n;
    } else {
      ADD_FAILURE() << n;
    }
  }
  put("det_losses.detection_coco.empty_weight", torch::ones({6}));
  put("bert_model.module.pooler.dense.weight", torch::zeros({32, 32}));
  put("bert_model.module.pooler.dense.bias", torch::zeros({32}));
  return out;
}

TEST_F(PretrainedWeights, MmfUnitCheckpointLoadsTheWholeModel) {
  const auto file = dir_ / "unit_final.pth";
  const auto experiment_file = dir_ / "mmf.json";
  // Our tasks' MMF names are the defaults; the file is written by the other seed's model.
  auto j = mmf_experiment({{"file", file.string()}, {"format", "mmf_unit"}});
  test::write_file(experiment_file, j.dump());
  auto experiment = load_experiment(experiment_file);
  validate_experiment(experiment, &registry_);
  torch::manual_seed(1);
  UnitModel source(experiment, registry_factory(registry_), /*load_init_from=*/false);
  const auto mmf = mmf_state(state_dict(*source));
  weights::write_safetensors(file, mmf);

  torch::manual_seed(2);
  UnitModel model(experiment, registry_factory(registry_));
  const auto& whole = model->import_reports().at(0);
  EXPECT_EQ(whole.component, "model");
  EXPECT_TRUE(whole.clean()) << whole.summary(true);
  for (const auto& r : model->import_reports()) EXPECT_TRUE(r.clean()) << r.summary(true);
  // Every tensor the model has came from the file: equal to the source model's.
  const auto expected = state_dict(*source);
  for (const auto& entry : state_dict(*model)) {
    const auto& want = expected.at(entry.key());
    if (entry.key().find("task_embeddings") != std::string::npos) {
      // Our rows of the three tasks; the other rows are the file's.
      EXPECT_TRUE(torch::equal(entry.value().narrow(0, 0, 3), want.narrow(0, 0, 3))) << entry.key();
      EXPECT_TRUE(torch::equal(entry.value()[3], want[2])) << entry.key();
      continue;
    }
    EXPECT_TRUE(torch::equal(entry.value(), want)) << entry.key();
  }

  // A checkpoint of another model: a dataset we lack, and a missing head.
  auto extra = mmf;
  extra.emplace_back("classifiers.vl.hateful_memes.1.weight", torch::zeros({2, 32}));
  extra.erase(std::remove_if(extra.begin(), extra.end(),
                             [](const auto& p) { return p.first.rfind("classifiers.vl.vqa2.", 0) == 0; }),
              extra.end());
  weights::write_safetensors(file, extra);
  const auto message = test::error_of<Error>([&] { UnitModel m(experiment, registry_factory(registry_)); });
  EXPECT_NE(message.find("mmf.json:/model/init_from"), std::string::npos) << message;
  EXPECT_NE(message.find("does not fit model"), std::string::npos) << message;
  EXPECT_NE(message.find("heads/vqa2: fc1.weight (wants classifiers.vl.vqa2.0.dense.weight)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("unexpected: classifiers.vl.hateful_memes.1.weight"), std::string::npos)
      << message;
}

}  // namespace
}  // namespace unitrain
