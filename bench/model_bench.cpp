// Forward + backward time of the UniT model components, tiny (test) and full (UniT)
// sizes, on the CPU with LibTorch's default threads. Prints a table and the
// full/tiny ratio of each component.
//
//   model_bench [repeats=3]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "unitrain/decoder.h"
#include "unitrain/encoder.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"

namespace {

using Json = nlohmann::json;

// Median milliseconds of `repeats` runs of step(), after one warm-up run.
double time_ms(const std::function<void()>& step, int repeats) {
  step();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    step();
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

int64_t count_parameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

struct Row {
  std::string component, size, input;
  int64_t parameters;
  double ms;
};

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::stoi(argv[1]) : 3;
  unitrain::configure_threads(0);
  unitrain::Registry registry;
  registry.load_directory(UNITRAIN_BENCH_PLUGIN_DIR);
  std::vector<Row> rows;

  // padded: the last image is 3/4 as high as the canvas, so the backbone masks its
  // padding after every convolution.
  auto bench_image = [&](const std::string& size, const Json& options, int64_t b, int64_t hw,
                         bool padded = false) {
    torch::manual_seed(0);
    auto encoder = registry.create_as<unitrain::Encoder>("encoder", "image", options, "bench");
    unitrain::Batch batch;
    batch.image = torch::randn({b, 3, hw, hw});
    batch.image_mask = torch::zeros({b, hw, hw}, torch::kBool);
    if (padded) {
      batch.image_mask[b - 1].slice(0, hw * 3 / 4) = true;
      batch.image[b - 1].slice(1, hw * 3 / 4).zero_();
    }
    const double ms = time_ms([&] {
      encoder->zero_grad();
      auto out = encoder->encode(batch, 0);
      (out.memory.sum() + out.pos.sum()).backward();
    }, repeats);
    rows.push_back({"image encoder", size,
                    std::to_string(b) + "x3x" + std::to_string(hw) + "x" + std::to_string(hw) +
                        (padded ? " padded" : ""),
                    count_parameters(*encoder), ms});
  };
  auto bench_text = [&](const std::string& size, const Json& options, int64_t b, int64_t t) {
    torch::manual_seed(0);
    auto encoder = registry.create_as<unitrain::Encoder>("encoder", "text", options, "bench");
    unitrain::Batch batch;
    batch.input_ids = torch::randint(1, 100, {b, t}, torch::kLong);
    batch.text_mask = torch::zeros({b, t}, torch::kBool);
    batch.segment_ids = torch::zeros({b, t}, torch::kLong);
    const double ms = time_ms([&] {
      encoder->zero_grad();
      auto out = encoder->encode(batch, 0);
      (out.memory.sum() + out.pos.sum()).backward();
    }, repeats);
    rows.push_back({"text encoder", size, std::to_string(b) + "x" + std::to_string(t),
                    count_parameters(*encoder), ms});
  };
  auto bench_decoder = [&](const std::string& size, const Json& options, int64_t b, int64_t q,
                           int64_t s) {
    torch::manual_seed(0);
    auto decoder = registry.create_as<unitrain::Decoder>("decoder", "unit_decoder", options, "bench");
    decoder->add_task("task", q);
    const int64_t d = decoder->d_model();
    unitrain::EncoderOutput memory{torch::randn({b, s, d}), torch::zeros({b, s}, torch::kBool),
                                   torch::randn({b, s, d})};
    const double ms = time_ms([&] {
      decoder->zero_grad();
      decoder->decode("task", memory).sum().backward();
    }, repeats);
    rows.push_back({"decoder", size,
                    std::to_string(b) + "x" + std::to_string(q) + "q x" + std::to_string(s) + "mem",
                    count_parameters(*decoder), ms});
  };

  const Json tiny_image = {{"depth", 18}, {"width", 8}, {"layers", {1, 1, 1, 1}},
                           {"return_layer", "layer3"}, {"hidden_dim", 32}, {"num_layers", 1},
                           {"num_heads", 4}, {"dim_feedforward", 64}, {"output_dim", 32}};
  const Json tiny_text = {{"vocab_size", 100}, {"hidden_dim", 32}, {"num_layers", 2},
                          {"num_heads", 4}, {"intermediate_dim", 64}, {"max_position", 64},
                          {"output_dim", 32}};
  const Json tiny_decoder = {{"d_model", 32}, {"num_layers", 2}, {"num_heads", 4},
                             {"dim_feedforward", 64}};
  bench_image("tiny", tiny_image, 8, 64);
  bench_image("full", Json::object(), 2, 320);
  bench_text("tiny", tiny_text, 8, 25);
  bench_text("full", Json::object(), 8, 25);
  bench_decoder("tiny", tiny_decoder, 8, 25, 41);
  bench_decoder("full", Json::object(), 8, 25, 125);

  // The toy model's image encoder (experiments/toy/model.json) on a batch without and
  // with padding: the cost of keeping the padding out of the backbone.
  const Json toy_image = {{"depth", 18}, {"width", 16}, {"layers", {1, 1, 1, 1}},
                          {"return_layer", "layer3"}, {"trainable_layers", 5},
                          {"hidden_dim", 64}, {"num_layers", 1}, {"num_heads", 4},
                          {"dim_feedforward", 128}, {"dropout", 0.0}, {"output_dim", 128},
                          {"task_token", true}};
  bench_image("toy", toy_image, 16, 128);
  bench_image("toy", toy_image, 16, 128, /*padded=*/true);

  std::printf("threads: %d, repeats: %d (median of forward + backward)\n",
              torch::get_num_threads(), repeats);
  std::printf("%-14s %-5s %-22s %12s %10s\n", "component", "size", "input", "parameters", "ms");
  for (const auto& r : rows) {
    std::printf("%-14s %-5s %-22s %12lld %10.1f\n", r.component.c_str(), r.size.c_str(),
                r.input.c_str(), static_cast<long long>(r.parameters), r.ms);
  }
  for (size_t i = 0; i + 3 < rows.size(); i += 2) {
    std::printf("%s full/tiny: %.1fx\n", rows[i].component.c_str(), rows[i + 1].ms / rows[i].ms);
  }
  const size_t toy = rows.size() - 2;
  std::printf("image encoder (toy) padded/unpadded: %.2fx\n", rows[toy + 1].ms / rows[toy].ms);
  return 0;
}
