// UnitModel with small encoders and a small decoder defined here, and the real heads.
#include "unitrain/model.h"

#include <gtest/gtest.h>

#include "detr_head.h"
#include "mlp_classifier.h"
#include "test_util.h"
#include "unitrain/checkpoint.h"
#include "unitrain/errors.h"
#include "unitrain/sizes.h"

namespace unitrain {
namespace {

using json = nlohmann::json;
using torch::indexing::None;
using torch::indexing::Slice;

// Patches of 4x4 pixels -> memory [B, S, dim]; a task token per task.
class PatchEncoder : public Encoder {
 public:
  explicit PatchEncoder(int64_t dim) : dim_(dim) {
    proj_ = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, dim, 4).stride(4)));
    task_token_ = register_module("task_token", torch::nn::Embedding(8, dim));
  }
  std::string modality() const override { return "image"; }
  int64_t output_dim() const override { return dim_; }
  EncoderOutput encode(const Batch& batch, int64_t task_index) override {
    auto x = proj_(batch.image).flatten(2).transpose(1, 2);  // [B, S, D]
    x = x + task_token_(torch::full({1}, task_index, torch::kLong));
    auto mask = batch.image_mask.index({Slice(), Slice(None, None, 4), Slice(None, None, 4)}).flatten(1);
    return {x, mask, torch::zeros_like(x)};
  }

 private:
  int64_t dim_;
  torch::nn::Conv2d proj_{nullptr};
  torch::nn::Embedding task_token_{nullptr};
};

class TokenEncoder : public Encoder {
 public:
  explicit TokenEncoder(int64_t dim) : dim_(dim) {
    embed_ = register_module("embed", torch::nn::Embedding(50, dim));
  }
  std::string modality() const override { return "text"; }
  int64_t output_dim() const override { return dim_; }
  EncoderOutput encode(const Batch& batch, int64_t) override {
    auto x = embed_(batch.input_ids);
    return {x, batch.text_mask, x * 0.5};
  }

 private:
  int64_t dim_;
  torch::nn::Embedding embed_{nullptr};
};

// Two "layers": queries plus the masked mean of the memory, through two Linears.
class MeanDecoder : public Decoder {
 public:
  explicit MeanDecoder(int64_t d) : d_(d) {
    first_ = register_module("first", torch::nn::Linear(d, d));
    second_ = register_module("second", torch::nn::Linear(d, d));
  }
  int64_t d_model() const override { return d_; }
  void add_task(const std::string& task, int64_t num_queries) override {
    queries_[task] = register_parameter("query_" + task, torch::randn({num_queries, d_}));
  }
  torch::Tensor decode(const std::string& task, const EncoderOutput& m) override {
    auto keep = (~m.mask).unsqueeze(-1).to(m.memory.scalar_type());
    auto mean = ((m.memory + m.pos) * keep).sum(1) / keep.sum(1).clamp_min(1.0);  // [B, D]
    auto h1 = torch::tanh(first_(queries_.at(task).unsqueeze(0) + mean.unsqueeze(1)));
    auto h2 = torch::tanh(second_(h1) + mean.unsqueeze(1));
    return torch::stack({h1, h2});  // [2, B, Q, D]
  }

 private:
  int64_t d_;
  torch::nn::Linear first_{nullptr}, second_{nullptr};
  std::map<std::string, torch::Tensor> queries_;
};

// A head whose input option is "width", not "in_dim", and whose boxes are its output
// "corners_free" [B, Q, 4]: the model learns both through InputWidth and BoxOutput.
class WidthHead : public Head, public InputWidth, public BoxOutput {
 public:
  explicit WidthHead(int64_t width) : width_(width) {
    box_ = register_module("box", torch::nn::Linear(width, 4));
  }
  int64_t input_width() const override { return width_; }
  std::string input_width_option() const override { return "width"; }
  torch::Tensor boxes(const HeadOutput& output) const override {
    return output.outputs.at("corners_free");
  }
  HeadOutput run(const torch::Tensor& decoder_out, const Batch&, bool) override {
    HeadOutput out;
    out.outputs["corners_free"] = box_(decoder_out[-1]).sigmoid();  // [B, Q, 4]
    return out;
  }
  Predictions predict(const HeadOutput&, const Batch&) override { return {}; }

 private:
  int64_t width_;
  torch::nn::Linear box_{nullptr};
};

std::shared_ptr<PluginObject> test_factory(const std::string& kind, const std::string& type,
                                           const json& options, const std::string& where) {
  if (type == "patch") return std::make_shared<PatchEncoder>(options.at("dim").get<int64_t>());
  if (type == "token") return std::make_shared<TokenEncoder>(options.at("dim").get<int64_t>());
  if (type == "mean") return std::make_shared<MeanDecoder>(options.at("d_model").get<int64_t>());
  if (type == "width_head") return std::make_shared<WidthHead>(options.at("width").get<int64_t>());
  if (type == "mlp_classifier") {
    auto merged = heads::mlp_classifier_option_set().defaults();
    merged.update(options);
    return heads::make_mlp_classifier_head(merged);
  }
  if (type == "detr") {
    auto merged = heads::detr_head_option_set().defaults();
    merged.update(options);
    return heads::make_detr_head(merged);
  }
  throw RegistryError(where + ": no " + kind + " named '" + type + "'");
}

json experiment_json() {
  return json::parse(R"({
    "name": "tiny",
    "model": {
      "encoders": {"image": {"type": "patch", "dim": 16}, "text": {"type": "token", "dim": 16}},
      "decoder": {"type": "mean", "d_model": 16},
      "share_decoders": true,
      "heads": {
        "snli": {"type": "mlp_classifier", "in_dim": 16, "num_labels": 3, "dropout": 0.0},
        "vqa": {"type": "mlp_classifier", "in_dim": 16, "num_labels": 5, "loss": "soft_bce", "dropout": 0.0},
        "coco": {"type": "detr", "in_dim": 16, "num_classes": 4}
      }
    },
    "tasks": {
      "snli": {"encoders": ["image", "text"], "num_queries": 2},
      "vqa": {"encoders": ["text", "image"], "num_queries": 3},
      "coco": {"encoders": ["image"], "num_queries": 6}
    }
  })");
}

Experiment experiment_from(json j, const std::filesystem::path& dir = "/tmp") {
  Experiment e;
  e.file = dir / "tiny.json";
  e.json = std::move(j);
  return e;
}

Batch make_batch(const std::string& task) {
  Batch b;
  b.task = task;
  b.size = 2;
  b.image = torch::randn({2, 3, 8, 12});
  b.image_mask = torch::zeros({2, 8, 12}, torch::kBool);
  b.image_mask.index_put_({1, Slice(), Slice(8, None)}, true);
  b.orig_size = torch::tensor({{80, 120}, {40, 40}}, torch::kLong);
  b.input_ids = torch::randint(1, 50, {2, 5}, torch::kLong);
  b.text_mask = torch::zeros({2, 5}, torch::kBool);
  b.text_mask.index_put_({0, Slice(3, None)}, true);
  b.labels = torch::tensor({2, 0}, torch::kLong);
  b.soft_labels = torch::tensor({{0.0f, 1.0f, 0.3f, 0.0f, 0.0f}, {0.6f, 0.0f, 0.0f, 0.0f, 0.9f}});
  b.boxes = {torch::tensor({{0.5f, 0.5f, 0.3f, 0.3f}}), torch::tensor({{0.2f, 0.3f, 0.1f, 0.2f}, {0.7f, 0.7f, 0.2f, 0.2f}})};
  b.classes = {torch::tensor({1}, torch::kLong), torch::tensor({0, 3}, torch::kLong)};
  return b;
}

torch::Tensor total_loss(const HeadOutput& out) {
  torch::Tensor total = torch::zeros({});
  for (const auto& [name, loss] : out.losses) total = total + loss;
  return total;
}

TEST(UnitModel, ForwardAndBackwardForEveryTask) {
  torch::manual_seed(0);
  UnitModel model(experiment_from(experiment_json()), test_factory);
  for (const auto& task : {"snli", "vqa", "coco"}) {
    model->zero_grad();
    auto out = model->forward(task, make_batch(task));
    auto loss = total_loss(out);
    ASSERT_TRUE(torch::isfinite(loss).item<bool>()) << task;
    loss.backward();
    for (const auto& item : model->component(std::string("heads/") + task)->named_parameters()) {
      ASSERT_TRUE(item.value().grad().defined()) << task << " " << item.key();
    }
    EXPECT_TRUE(model->component("encoders/image")->named_parameters()["proj.weight"].grad().defined());
  }
  auto snli = model->forward("snli", make_batch("snli"));
  EXPECT_EQ(snli.outputs.at("logits").sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(snli.losses.count("loss_ce"), 1u);
  auto vqa = model->forward("vqa", make_batch("vqa"));
  EXPECT_EQ(vqa.losses.count("loss_bce"), 1u);
  auto coco = model->forward("coco", make_batch("coco"));
  EXPECT_EQ(coco.outputs.at("pred_boxes").sizes(), (std::vector<int64_t>{2, 6, 4}));
  EXPECT_EQ(coco.losses.count("loss_giou_0"), 1u);
  auto predictions = model->predict("coco", coco, make_batch("coco"));
  EXPECT_EQ(predictions.detections.size(), 2u);
  // The text encoder gets no gradient from the image-only task.
  model->zero_grad();
  total_loss(model->forward("coco", make_batch("coco"))).backward();
  auto text_grad = model->component("encoders/text")->named_parameters()["embed.weight"].grad();
  EXPECT_TRUE(!text_grad.defined() || text_grad.abs().sum().item<float>() == 0.0f);
}

TEST(UnitModel, ConcatenatesMemoryInTaskOrder) {
  UnitModel model(experiment_from(experiment_json()), test_factory);
  auto batch = make_batch("vqa");
  auto memory = model->encode("vqa", batch);
  // text (5 tokens) then image (2 x 3 patches).
  EXPECT_EQ(memory.memory.sizes(), (std::vector<int64_t>{2, 11, 16}));
  EXPECT_EQ(memory.mask.sizes(), (std::vector<int64_t>{2, 11}));
  EXPECT_TRUE(torch::equal(memory.mask.narrow(1, 0, 5), batch.text_mask));
  EXPECT_EQ(memory.mask[1].narrow(0, 5, 6).sum().item<int64_t>(), 2);  // padded patches
  EXPECT_EQ(model->tasks(), (std::vector<std::string>{"coco", "snli", "vqa"}));
  EXPECT_EQ(model->task_index("snli"), 1);
}

TEST(UnitModel, ObjectsFromAppendsTheSourceTasksDecodedQueries) {
  torch::manual_seed(0);
  auto j = experiment_json();
  j["tasks"]["vqa"]["encoders"] = {"text"};
  j["tasks"]["vqa"]["objects_from"] = "coco";
  UnitModel model(experiment_from(j), test_factory);
  auto batch = make_batch("vqa");
  auto memory = model->encode("vqa", batch);
  // text (5 tokens), then coco's 6 decoded queries.
  EXPECT_EQ(memory.memory.sizes(), (std::vector<int64_t>{2, 11, 16}));
  EXPECT_TRUE(torch::equal(memory.mask.narrow(1, 0, 5), batch.text_mask));
  EXPECT_FALSE(memory.mask.narrow(1, 5, 6).any().item<bool>());
  EXPECT_EQ(memory.pos.narrow(1, 5, 6).abs().sum().item<float>(), 0.0f);
  // The objects are coco's last decoder layer on coco's own encoding of the batch
  // (coco's encoders and task token), whatever task reads them.
  auto coco = model->decoder("coco")->decode("coco", model->encode("coco", batch)).select(0, -1);
  EXPECT_TRUE(torch::allclose(memory.memory.narrow(1, 5, 6), coco));
  EXPECT_TRUE(torch::allclose(memory.memory.narrow(1, 0, 5), model->encode("snli", batch)
                                                                  .memory.narrow(1, 6, 5)))
      << "the text part is the task's own encoding";

  // The reading task's loss trains its own path only: no gradient reaches the image
  // encoder (used by coco alone here) or coco's queries.
  model->zero_grad();
  total_loss(model->forward("vqa", batch)).backward();
  const auto has_grad = [&](const std::string& component, const std::string& parameter) {
    auto g = model->component(component)->named_parameters()[parameter].grad();
    return g.defined() && g.abs().sum().item<float>() > 0.0f;
  };
  EXPECT_FALSE(has_grad("encoders/image", "proj.weight"));
  EXPECT_FALSE(has_grad("decoder", "query_coco"));
  EXPECT_TRUE(has_grad("decoder", "query_vqa"));
  EXPECT_TRUE(has_grad("encoders/text", "embed.weight"));
  EXPECT_TRUE(has_grad("heads/vqa", "fc1.weight"));
}

TEST(UnitModel, ObjectsBoxesEmbedSlotsWithTheSourcesPredictedBoxes) {
  torch::manual_seed(0);
  auto j = experiment_json();
  j["tasks"]["vqa"]["encoders"] = {"text"};
  j["tasks"]["vqa"]["objects_from"] = "coco";
  j["tasks"]["vqa"]["objects_boxes"] = true;
  UnitModel model(experiment_from(j), test_factory);
  auto batch = make_batch("vqa");
  auto memory = model->encode("vqa", batch);
  EXPECT_EQ(memory.memory.sizes(), (std::vector<int64_t>{2, 11, 16}));

  // (LayerNorm(W_f slot) + LayerNorm(W_b box)) / 2 with coco's slots and coco's boxes.
  auto decoded = model->decoder("coco")->decode("coco", model->encode("coco", batch));
  auto slots = decoded.select(0, -1);
  auto boxes = model->head("coco")->run(decoded, batch, false).outputs.at("pred_boxes");
  auto p = model->named_children()["objects_vqa"]->named_parameters();
  const auto norm = [&](const torch::Tensor& x, const std::string& name) {
    return torch::layer_norm(x, {16}, p[name + ".weight"], p[name + ".bias"]);
  };
  auto expected = (norm(torch::linear(slots, p["feature.weight"], p["feature.bias"]),
                        "feature_norm") +
                   norm(torch::linear(boxes, p["box.weight"], p["box.bias"]), "box_norm")) / 2;
  EXPECT_TRUE(torch::allclose(memory.memory.narrow(1, 5, 6), expected, 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(memory.memory.narrow(1, 5, 6), slots));

  // The embedding learns from the reading task; coco's head and encoders do not.
  model->zero_grad();
  total_loss(model->forward("vqa", batch)).backward();
  const auto grad_sum = [&](const std::string& module, const std::string& parameter) {
    auto g = model->named_children()[module]->named_parameters()[parameter].grad();
    return g.defined() ? g.abs().sum().item<float>() : 0.0f;
  };
  EXPECT_GT(grad_sum("objects_vqa", "box.weight"), 0.0f);
  EXPECT_GT(grad_sum("objects_vqa", "feature.weight"), 0.0f);
  for (const auto& item : model->component("heads/coco")->named_parameters()) {
    EXPECT_EQ(grad_sum("head_coco", item.key()), 0.0f) << item.key();
  }
  EXPECT_EQ(grad_sum("encoder_image", "proj.weight"), 0.0f);
  // Part of the model's parameters (optimizer, checkpoints), not a component.
  EXPECT_EQ(model->component_names().size(), 6u);
  int64_t embed_parameters = 0;
  for (const auto& t : model->named_children()["objects_vqa"]->parameters()) {
    embed_parameters += t.numel();
  }
  EXPECT_EQ(embed_parameters, (16 * 16 + 16) + (4 * 16 + 16) + 2 * (16 + 16));  // W_f, W_b, 2 norms
  EXPECT_EQ(model->parameter_count(),
            UnitModel(experiment_from(experiment_json()), test_factory)->parameter_count() +
                embed_parameters);
  EXPECT_EQ(model->other_parameter_counts(),
            (std::map<std::string, int64_t>{{"objects_vqa", embed_parameters}}));
  const auto summary = model_summary(*model, 0);
  EXPECT_NE(summary.find("objects_vqa"), std::string::npos) << summary;
  EXPECT_NE(summary.find("416"), std::string::npos) << summary;
}

TEST(UnitModel, ObjectsBoxesNeedAHeadWithBoxes) {
  auto j = experiment_json();
  j["tasks"]["vqa"]["objects_from"] = "snli";
  j["tasks"]["vqa"]["objects_boxes"] = true;
  try {
    UnitModel model(experiment_from(j), test_factory);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("/tasks/vqa/objects_boxes: needs boxes from the head of task 'snli' "
                           "(\"pred_boxes\" [B, 2, 4]), but that head ('mlp_classifier') "
                           "outputs no \"pred_boxes\""),
              std::string::npos) << message;
  }
}

TEST(UnitModel, ObjectsBoxesReadTheHeadsBoxOutput) {
  torch::manual_seed(0);
  auto j = experiment_json();
  j["model"]["heads"]["coco"] = {{"type", "width_head"}, {"width", 16}};
  j["tasks"]["vqa"]["encoders"] = {"text"};
  j["tasks"]["vqa"]["objects_from"] = "coco";
  j["tasks"]["vqa"]["objects_boxes"] = true;
  UnitModel model(experiment_from(j), test_factory);
  auto batch = make_batch("vqa");
  auto memory = model->encode("vqa", batch);
  EXPECT_EQ(memory.memory.sizes(), (std::vector<int64_t>{2, 11, 16}));

  // The boxes are the head's "corners_free" output, as its BoxOutput says.
  auto decoded = model->decoder("coco")->decode("coco", model->encode("coco", batch));
  auto slots = decoded.select(0, -1);
  auto boxes = model->head("coco")->run(decoded, batch, false).outputs.at("corners_free");
  auto p = model->named_children()["objects_vqa"]->named_parameters();
  const auto norm = [&](const torch::Tensor& x, const std::string& name) {
    return torch::layer_norm(x, {16}, p[name + ".weight"], p[name + ".bias"]);
  };
  auto expected = (norm(torch::linear(slots, p["feature.weight"], p["feature.bias"]),
                        "feature_norm") +
                   norm(torch::linear(boxes, p["box.weight"], p["box.bias"]), "box_norm")) / 2;
  EXPECT_TRUE(torch::allclose(memory.memory.narrow(1, 5, 6), expected, 1e-5, 1e-6));
}

TEST(UnitModel, HeadInputWidthComesFromTheHead) {
  auto j = experiment_json();
  j["model"]["heads"]["coco"] = {{"type", "width_head"}, {"width", 16}};
  EXPECT_NO_THROW(UnitModel(experiment_from(j), test_factory));
  j["model"]["heads"]["coco"]["width"] = 24;
  try {
    UnitModel model(experiment_from(j), test_factory);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/model/heads/coco/width: the head reads width 24 but "
                                         "the decoder's d_model is 16"),
              std::string::npos)
        << e.what();
  }
}

TEST(UnitModel, ObjectsFromErrors) {
  const auto error = [](const json& value, const std::string& task = "vqa") {
    auto j = experiment_json();
    j["tasks"][task]["objects_from"] = value;
    if (task == "coco") j["tasks"]["vqa"]["objects_from"] = "coco";
    try {
      UnitModel model(experiment_from(j), test_factory);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const auto self = error("vqa");
  EXPECT_NE(self.find("/tasks/vqa/objects_from: a task cannot read its own decoder outputs"),
            std::string::npos) << self;
  const auto unknown = error("coc");
  EXPECT_NE(unknown.find("/tasks/vqa/objects_from: expected the name of another task (coco, "),
            std::string::npos) << unknown;
  EXPECT_NE(unknown.find("found \"coc\""), std::string::npos) << unknown;
  const auto number = error(3);
  EXPECT_NE(number.find("/tasks/vqa/objects_from: expected the name of another task"),
            std::string::npos) << number;
  EXPECT_NE(number.find("found 3"), std::string::npos) << number;
  const auto chain = error("snli", "coco");
  EXPECT_NE(chain.find("/tasks/vqa/objects_from: task 'coco' itself has objects_from; chains "
                       "are not supported"), std::string::npos) << chain;
}

TEST(UnitModel, StableComponentAndModuleNames) {
  UnitModel model(experiment_from(experiment_json()), test_factory);
  EXPECT_EQ(model->component_names(),
            (std::vector<std::string>{"encoders/image", "encoders/text", "decoder", "heads/coco",
                                      "heads/snli", "heads/vqa"}));
  std::vector<std::string> children;
  for (const auto& child : model->named_children()) children.push_back(child.key());
  EXPECT_EQ(children, (std::vector<std::string>{"encoder_image", "encoder_text", "decoder",
                                                "head_coco", "head_snli", "head_vqa"}));
  auto state = state_dict(*model);
  EXPECT_TRUE(state.contains("head_vqa.fc2.weight"));
  EXPECT_TRUE(state.contains("decoder.query_coco"));
  EXPECT_TRUE(state.contains("head_coco.bbox_embed.2.weight"));

  auto counts = model->parameter_counts();
  int64_t sum = 0;
  for (const auto& [name, count] : counts) sum += count;
  EXPECT_EQ(sum, model->parameter_count());
  // snli head: fc1 16x16+16, norm 2x16, fc2 3x16+3.
  EXPECT_EQ(counts.at("heads/snli"), 16 * 16 + 16 + 32 + 3 * 16 + 3);
  auto summary = model_summary(*model, 1);
  EXPECT_NE(summary.find("heads/snli"), std::string::npos);
  EXPECT_NE(summary.find("  fc1"), std::string::npos);
  EXPECT_NE(summary.find("total"), std::string::npos);

  try {
    model->component("heads/vqa3");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("heads/vqa"), std::string::npos) << e.what();
  }
  EXPECT_THROW(component_module_name("heads"), ConfigError);
  EXPECT_EQ(component_module_name("decoders/vqa"), "decoder_vqa");
}

TEST(UnitModel, OneDecoderPerTaskWhenNotShared) {
  auto j = experiment_json();
  j["model"]["share_decoders"] = false;
  UnitModel model(experiment_from(j), test_factory);
  EXPECT_EQ(model->component_names()[2], "decoders/coco");
  EXPECT_NE(model->decoder("coco").get(), model->decoder("vqa").get());
  auto state = state_dict(*model);
  EXPECT_TRUE(state.contains("decoder_coco.query_coco"));
  EXPECT_FALSE(state.contains("decoder_coco.query_vqa"));
  total_loss(model->forward("snli", make_batch("snli"))).backward();
}

TEST(UnitModel, EncoderWidthMustEqualDecoderWidth) {
  auto j = experiment_json();
  j["model"]["encoders"]["text"]["dim"] = 8;
  try {
    UnitModel model(experiment_from(j), test_factory);
    FAIL();
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("/tasks/snli/encoders/1"), std::string::npos) << message;
    EXPECT_NE(message.find("8-dim"), std::string::npos) << message;
    EXPECT_NE(message.find("d_model is 16"), std::string::npos) << message;
  }
  auto k = experiment_json();
  k["model"]["heads"]["snli"]["in_dim"] = 32;
  try {
    UnitModel model(experiment_from(k), test_factory);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/model/heads/snli/in_dim"), std::string::npos) << e.what();
  }
}

TEST(UnitModel, ExportThenInitFromGivesIdenticalOutputs) {
  test::TempDir dir;
  torch::manual_seed(1);
  UnitModel source(experiment_from(experiment_json()), test_factory);
  auto j = experiment_json();
  for (const auto& name : source->component_names()) {
    const auto file = dir / (component_module_name(name) + ".pt");
    save_component(export_component(*source, name), file);
    json::json_pointer block(source->spec(name).pointer);
    j[block]["init_from"] = file.string();
  }
  torch::manual_seed(2);
  UnitModel copy(experiment_from(j), test_factory);
  UnitModel fresh(experiment_from(experiment_json()), test_factory);
  source->eval();
  copy->eval();
  fresh->eval();
  for (const auto& task : {"snli", "vqa", "coco"}) {
    auto batch = make_batch(task);
    auto a = source->forward(task, batch, false).outputs;
    auto b = copy->forward(task, batch, false).outputs;
    auto c = fresh->forward(task, batch, false).outputs;
    for (const auto& [name, tensor] : a) {
      EXPECT_TRUE(torch::equal(tensor, b.at(name))) << task << " " << name;
      EXPECT_FALSE(torch::equal(tensor, c.at(name))) << task << " " << name;
    }
  }
}

TEST(UnitModel, InitFromRelativePathFollowsTheExperimentFile) {
  test::TempDir dir;
  UnitModel source(experiment_from(experiment_json()), test_factory);
  save_component(export_component(*source, "heads/snli"), dir / "weights" / "snli.pt");
  auto j = experiment_json();
  j["model"]["heads"]["snli"]["init_from"] = "weights/snli.pt";
  UnitModel copy(experiment_from(j, dir.path()), test_factory);
  EXPECT_TRUE(torch::equal(state_dict(*copy->component("heads/snli")).at("fc2.weight"),
                           state_dict(*source->component("heads/snli")).at("fc2.weight")));
}

// Builds the experiment with heads/<task> initialized from `file`; returns the error.
std::string init_error(const std::string& task, const json& head_block, const std::string& file) {
  auto j = experiment_json();
  j["model"]["heads"][task] = head_block;
  j["model"]["heads"][task]["init_from"] = file;
  try {
    UnitModel model(experiment_from(j), test_factory);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "no error";
}

TEST(UnitModel, InitFromMismatchesAreCheckpointErrors) {
  test::TempDir dir;
  UnitModel source(experiment_from(experiment_json()), test_factory);
  const auto file = (dir / "snli.pt").string();
  save_component(export_component(*source, "heads/snli"), file);
  const json snli = experiment_json()["model"]["heads"]["snli"];

  // Another plugin type.
  auto message = init_error("coco", experiment_json()["model"]["heads"]["coco"], file);
  EXPECT_NE(message.find("/model/heads/coco/init_from"), std::string::npos) << message;
  EXPECT_NE(message.find("type 'mlp_classifier'"), std::string::npos) << message;
  EXPECT_NE(message.find("type 'detr'"), std::string::npos) << message;

  // Other options.
  auto other = snli;
  other["num_labels"] = 4;
  message = init_error("snli", other, file);
  EXPECT_NE(message.find("'num_labels' is 4 here but 3 in the file"), std::string::npos) << message;

  // A tensor of another shape (a file written by hand or an older plugin).
  auto archive = load_component(file);
  archive.state.insert_or_assign("fc2.weight", torch::zeros({7, 16}));
  archive.state.insert("extra", torch::zeros({2}));
  save_component(archive, dir / "bad.pt");
  message = init_error("snli", snli, (dir / "bad.pt").string());
  EXPECT_NE(message.find("tensor 'fc2.weight' has shape [7, 16] in the file but [3, 16] in the model"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("'extra'"), std::string::npos) << message;

  // Missing file, and a file that is not a component.
  message = init_error("snli", snli, (dir / "nothing.pt").string());
  EXPECT_NE(message.find("no such file"), std::string::npos) << message;
  test::write_file(dir / "junk.pt", "not an archive");
  message = init_error("snli", snli, (dir / "junk.pt").string());
  EXPECT_NE(message.find("not a torch archive"), std::string::npos) << message;
}

TEST(UnitModel, CheckpointRoundTripAndExportFromCheckpoint) {
  test::TempDir dir;
  torch::manual_seed(5);
  auto j = experiment_json();
  UnitModel source(experiment_from(j), test_factory);
  {
    torch::serialize::OutputArchive archive;
    write_model_state(archive, *source, j);
    archive.write("step", torch::tensor(12));  // trainer-owned keys live alongside
    std::filesystem::create_directories(dir / "run" / "checkpoints");
    archive.save_to((dir / "run" / "checkpoints" / "last.pt").string());
  }
  const auto checkpoint = find_checkpoint(dir / "run");
  EXPECT_EQ(checkpoint, dir / "run" / "checkpoints" / "last.pt");

  torch::serialize::InputArchive in;
  in.load_from(checkpoint.string());
  EXPECT_EQ(read_checkpoint_experiment(in, "ckpt"), j);
  torch::manual_seed(6);
  UnitModel restored(experiment_from(j), test_factory);
  read_model_state(in, *restored, "ckpt");
  source->eval();
  restored->eval();
  auto batch = make_batch("coco");
  EXPECT_TRUE(torch::equal(source->forward("coco", batch, false).outputs.at("pred_boxes"),
                           restored->forward("coco", batch, false).outputs.at("pred_boxes")));

  auto from_checkpoint = export_component(checkpoint, "heads/vqa");
  auto from_model = export_component(*source, "heads/vqa");
  EXPECT_EQ(from_checkpoint.type, "mlp_classifier");
  EXPECT_EQ(from_checkpoint.kind, "head");
  EXPECT_EQ(from_checkpoint.options, from_model.options);
  ASSERT_EQ(from_checkpoint.state.size(), from_model.state.size());
  for (const auto& entry : from_model.state) {
    EXPECT_TRUE(torch::equal(entry.value(), from_checkpoint.state.at(entry.key()))) << entry.key();
  }
  try {
    export_component(checkpoint, "heads/vqa2");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("heads/vqa"), std::string::npos) << e.what();
  }

  // The CLI writes the same archive.
  const auto out = dir / "vqa_head.pt";
  auto result = test::run_command(std::string(UNITRAIN_TEST_BINARY) + " export " +
                                  (dir / "run").string() + " --component heads/vqa --out " +
                                  out.string());
  ASSERT_EQ(result.status, 0) << result.output;
  auto exported = load_component(out);
  EXPECT_EQ(exported.component, "heads/vqa");
  EXPECT_TRUE(torch::equal(exported.state.at("fc2.weight"), from_model.state.at("fc2.weight")));
  result = test::run_command(std::string(UNITRAIN_TEST_BINARY) + " export " +
                             (dir / "nowhere").string() + " --component heads/vqa --out " +
                             out.string());
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("error: "), std::string::npos) << result.output;
}

}  // namespace
}  // namespace unitrain
