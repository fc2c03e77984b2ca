// The `image` encoder plugin, created through the registry.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "plugins/plugin_loader.h"
#include "unitrain/encoder.h"
#include "unitrain/errors.h"

namespace {

using Json = nlohmann::json;

Json tiny(Json overrides = Json::object()) {
  Json o = {{"depth", 18},      {"width", 8},       {"layers", {1, 1, 1, 1}},
            {"return_layer", "layer3"}, {"hidden_dim", 16}, {"num_layers", 1},
            {"num_heads", 4},    {"dim_feedforward", 32}, {"dropout", 0.0},
            {"output_dim", 24}};
  o.update(overrides);
  return o;
}

std::shared_ptr<unitrain::Encoder> make(const Json& options, uint64_t seed = 0) {
  torch::manual_seed(seed);
  return unitrain::test::create_plugin<unitrain::Encoder>("unitrain_image", "encoder", "image",
                                                          options);
}

unitrain::Batch image_batch(int64_t b, int64_t h, int64_t w) {
  unitrain::Batch batch;
  batch.task = "coco";
  batch.size = b;
  batch.image = torch::randn({b, 3, h, w});
  batch.image_mask = torch::zeros({b, h, w}, torch::kBool);
  return batch;
}

TEST(ImageEncoder, ShapesAndBackward) {
  auto encoder = make(tiny());
  EXPECT_EQ(encoder->modality(), "image");
  EXPECT_EQ(encoder->output_dim(), 24);
  auto out = encoder->encode(image_batch(2, 64, 48), 0);
  // layer3 has stride 16: 64x48 -> 4x3.
  EXPECT_EQ(out.memory.sizes(), (std::vector<int64_t>{2, 12, 24}));
  EXPECT_EQ(out.pos.sizes(), (std::vector<int64_t>{2, 12, 24}));
  EXPECT_EQ(out.mask.sizes(), (std::vector<int64_t>{2, 12}));
  EXPECT_EQ(out.mask.scalar_type(), torch::kBool);

  ((out.memory * torch::randn_like(out.memory)).sum() + (out.pos * out.pos).sum()).backward();
  int64_t trained = 0;
  for (const auto& p : encoder->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    ++trained;
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  EXPECT_GT(trained, 10);
}

TEST(ImageEncoder, FrozenBatchNormHoldsBuffersOnly) {
  auto encoder = make(tiny());
  for (const auto& p : encoder->named_parameters()) {
    EXPECT_EQ(p.key().find("bn"), std::string::npos) << p.key();
    EXPECT_EQ(p.key().find("downsample.1"), std::string::npos) << p.key();
  }
  auto buffers = encoder->named_buffers();
  for (const char* name : {"backbone.bn1.weight", "backbone.bn1.running_var",
                           "backbone.layer2.0.bn2.running_mean",
                           "backbone.layer2.0.downsample.1.bias"}) {
    EXPECT_TRUE(buffers.contains(name)) << name;
  }
  // Training mode neither updates statistics nor changes the result.
  auto batch = image_batch(2, 32, 32);
  auto before = buffers["backbone.bn1.running_mean"].clone();
  encoder->train();
  auto a = encoder->encode(batch, 0).memory;
  encoder->eval();
  auto b = encoder->encode(batch, 0).memory;
  EXPECT_TRUE(torch::equal(before, buffers["backbone.bn1.running_mean"]));
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5));
}

// The backbone applies each frozen batch norm after its convolution per output channel
// (folded into the convolution's weight and bias): dividing a convolution's output
// channels by a and multiplying the following batch norm's weight and mean by a
// leaves the encoder's output and the gradient of the other weights unchanged.
TEST(ImageEncoder, FrozenBatchNormScalesEachOutputChannelOfItsConvolution) {
  auto encoder = make(tiny({{"trainable_layers", 5}}));
  encoder->eval();
  auto params = encoder->named_parameters();
  auto buffers = encoder->named_buffers();
  {
    torch::NoGradGuard no_grad;
    for (const auto& b : buffers) {
      if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
      if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0.0, 0.3);
      if (b.key().find("bn") != std::string::npos && b.key().find(".weight") != std::string::npos) {
        b.value().uniform_(0.5, 1.5);
      }
    }
  }
  auto batch = image_batch(2, 32, 32);
  auto run = [&] {
    encoder->zero_grad();
    auto memory = encoder->encode(batch, 0).memory;
    (memory * memory).sum().backward();
    return std::make_pair(memory.detach().clone(),
                          params["backbone.layer1.0.conv2.weight"].grad().clone());
  };
  const auto [before, grad_before] = run();

  // Stem conv1/bn1 and the downsample pair of layer2 (conv "0", norm "1").
  for (const auto& [conv, bn] : std::vector<std::pair<std::string, std::string>>{
           {"backbone.conv1", "backbone.bn1"},
           {"backbone.layer2.0.downsample.0", "backbone.layer2.0.downsample.1"}}) {
    torch::NoGradGuard no_grad;
    auto weight = params[conv + ".weight"];
    auto a = torch::rand({weight.size(0)}) + 0.5;
    weight.div_(a.view({-1, 1, 1, 1}));
    buffers[bn + ".weight"].mul_(a);
    buffers[bn + ".running_mean"].div_(a);
  }
  const auto [after, grad_after] = run();
  EXPECT_TRUE(torch::allclose(after, before, 1e-4, 1e-4))
      << (after - before).abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(grad_after, grad_before, 1e-3, 1e-4))
      << (grad_after - grad_before).abs().max().item<double>();
}

TEST(ImageEncoder, TrainableLayersFreezeTheStemAndEarlyStages) {
  auto encoder = make(tiny({{"return_layer", "layer4"}}));
  auto params = encoder->named_parameters();
  EXPECT_FALSE(params["backbone.conv1.weight"].requires_grad());
  EXPECT_FALSE(params["backbone.layer1.0.conv1.weight"].requires_grad());
  EXPECT_TRUE(params["backbone.layer2.0.conv1.weight"].requires_grad());
  EXPECT_TRUE(params["backbone.layer4.0.conv2.weight"].requires_grad());
  EXPECT_TRUE(params["input_proj.weight"].requires_grad());

  auto all = make(tiny({{"trainable_layers", 5}}))->named_parameters();
  EXPECT_TRUE(all["backbone.conv1.weight"].requires_grad());
  auto none = make(tiny({{"trainable_layers", 0}}))->named_parameters();
  EXPECT_FALSE(none["backbone.layer3.0.conv1.weight"].requires_grad());
}

TEST(ImageEncoder, MaskIsDownsampledAndPositionsIgnorePadding) {
  auto encoder = make(tiny());
  encoder->eval();
  torch::NoGradGuard no_grad;
  // Sample 0: a 32x48 image padded to 64x64 (feature map 2x3 of 4x4).
  auto batch = image_batch(2, 64, 64);
  batch.image_mask[0].slice(0, 32) = true;
  batch.image_mask[0].slice(1, 48) = true;
  batch.image[0].slice(1, 32).zero_();
  batch.image[0].slice(2, 48).zero_();
  auto out = encoder->encode(batch, 0);
  auto mask = out.mask[0].view({4, 4});
  auto expected = torch::ones({4, 4}, torch::kBool);
  expected.slice(0, 0, 2).slice(1, 0, 3) = false;
  EXPECT_TRUE(torch::equal(mask, expected)) << mask;
  EXPECT_FALSE(out.mask[1].any().item<bool>());

  // The position embedding of valid cells is the one of the unpadded image.
  auto alone = image_batch(1, 32, 48);
  alone.image = batch.image.slice(0, 0, 1).slice(2, 0, 32).slice(3, 0, 48);
  auto small = encoder->encode(alone, 0);
  auto padded_pos = out.pos[0].view({4, 4, 24}).slice(0, 0, 2).slice(1, 0, 3);
  EXPECT_TRUE(torch::allclose(padded_pos, small.pos[0].view({2, 3, 24}), 1e-5, 1e-5));
}

// An image padded onto a larger canvas (whatever the padding holds) encodes as the
// image alone: the backbone keeps every activation outside the image at zero, so no
// feature near the border sees the padding. BasicBlocks to layer3, and bottlenecks with
// a dilated layer4 (strided 3x3s, projections, dilation).
TEST(ImageEncoder, PaddedImageEncodesAsTheImageAlone) {
  for (const Json& options :
       {tiny(), tiny({{"depth", 50}, {"return_layer", "layer4"}, {"dilation", true}})}) {
    auto encoder = make(options);
    encoder->eval();
    torch::NoGradGuard no_grad;
    const int64_t h = 37, w = 53;  // not multiples of the stride
    auto alone = image_batch(1, h, w);
    auto out_alone = encoder->encode(alone, 0);

    auto padded = image_batch(2, 64, 80);  // the padding of sample 0 holds noise
    padded.image[0].slice(1, 0, h).slice(2, 0, w).copy_(alone.image[0]);
    padded.image_mask[0].slice(0, h) = true;
    padded.image_mask[0].slice(1, w) = true;
    auto out = encoder->encode(padded, 0);

    // 37x53 at stride 16 covers 3x4 cells of the 4x5 grid.
    const int64_t gh = 4, gw = 5, vh = 3, vw = 4;
    ASSERT_EQ(out_alone.memory.size(1), vh * vw) << options.dump();
    auto expected_mask = torch::ones({gh, gw}, torch::kBool);
    expected_mask.slice(0, 0, vh).slice(1, 0, vw) = false;
    EXPECT_TRUE(torch::equal(out.mask[0].view({gh, gw}), expected_mask)) << options.dump();
    const int64_t d = out.memory.size(2);
    auto valid = out.memory[0].view({gh, gw, d}).slice(0, 0, vh).slice(1, 0, vw);
    EXPECT_TRUE(torch::allclose(valid, out_alone.memory[0].view({vh, vw, d}), 1e-5, 1e-5))
        << options.dump() << " largest difference "
        << (valid - out_alone.memory[0].view({vh, vw, d})).abs().max().item<double>();
  }
}

TEST(ImageEncoder, MaskMustBeATopLeftRectangle) {
  auto encoder = make(tiny());
  auto batch = image_batch(1, 32, 32);
  batch.image_mask[0].slice(0, 0, 4) = true;  // padding above the image
  try {
    encoder->encode(batch, 0);
    FAIL() << "a mask with padding at the top was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bottom and right"), std::string::npos) << e.what();
  }
}

TEST(ImageEncoder, TaskTokenAddsOnePositionWhenKept) {
  auto batch = image_batch(2, 32, 32);  // 2x2 feature map
  auto kept = make(tiny({{"task_token", true}, {"keep_task_token", true}, {"max_tasks", 4}}));
  kept->eval();
  auto out = kept->encode(batch, 1);
  EXPECT_EQ(out.memory.sizes(), (std::vector<int64_t>{2, 5, 24}));
  EXPECT_FALSE(out.mask.select(1, 0).any().item<bool>());
  EXPECT_TRUE(kept->named_parameters().contains("task_embeddings.weight"));

  auto dropped = make(tiny({{"task_token", true}, {"max_tasks", 4}}));
  dropped->eval();
  auto a = dropped->encode(batch, 0), b = dropped->encode(batch, 3);
  EXPECT_EQ(a.memory.sizes(), (std::vector<int64_t>{2, 4, 24}));
  EXPECT_FALSE(torch::allclose(a.memory, b.memory));  // the token steers the encoder
  EXPECT_THROW(dropped->encode(batch, 4), c10::Error);
}

TEST(ImageEncoder, DilationKeepsStride16) {
  auto batch = image_batch(1, 64, 64);
  auto plain = make(tiny({{"return_layer", "layer4"}}));
  auto dc5 = make(tiny({{"return_layer", "layer4"}, {"dilation", true}}));
  EXPECT_EQ(plain->encode(batch, 0).memory.size(1), 4);   // 2x2
  EXPECT_EQ(dc5->encode(batch, 0).memory.size(1), 16);    // 4x4
}

TEST(ImageEncoder, FullSizeMatchesUniT) {
  // ResNet-50 C5 (2048 channels) -> 256 -> 6 layers -> 768, with the defaults.
  auto encoder = make(Json::object());
  auto params = encoder->named_parameters();
  EXPECT_EQ(params["input_proj.weight"].sizes(), (std::vector<int64_t>{256, 2048, 1, 1}));
  EXPECT_EQ(params["backbone.layer4.2.conv3.weight"].sizes(),
            (std::vector<int64_t>{2048, 512, 1, 1}));
  EXPECT_TRUE(params.contains("encoder.layers.5.self_attn.in_proj_weight"));
  EXPECT_EQ(params["output_proj.weight"].sizes(), (std::vector<int64_t>{768, 256}));
  int64_t backbone = 0;
  for (const auto& p : params) {
    if (p.key().rfind("backbone.", 0) == 0) backbone += p.value().numel();
  }
  // torchvision's resnet50 without fc (2,049,000) and batch-norm affine (53,120).
  EXPECT_EQ(backbone, 25557032 - 2049000 - 53120);
}

TEST(ImageEncoder, BadOptionsNameTheKey) {
  try {
    make(tiny({{"return_layer", "layer5"}}));
    FAIL() << "expected an error";
  } catch (const unitrain::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("return_layer"), std::string::npos) << what;
    EXPECT_NE(what.find("layer4"), std::string::npos) << what;
  }
  EXPECT_THROW(make(tiny({{"hidden_dim", 15}})), unitrain::Error);
  EXPECT_THROW(make(tiny({{"layers", {1, 1}}})), unitrain::Error);
  EXPECT_THROW(make(tiny({{"hidden_layers", 1}})), unitrain::Error);  // unknown key
}

}  // namespace
