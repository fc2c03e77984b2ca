// Convolutions of a ResNet on small images: torch::conv2d (oneDNN on the CPU) vs
// unitrain::nn::conv2d, forward + backward (input and weight gradients), at every
// shape of ResNet-18 on 64 px images at batch 16 (the bench model's, experiments/bench/
// unit_small.json), plus layer4 of other image sizes. Runs alternate; the table shows
// the median ms of each, the ratio, and which path nn::conv2d takes there. Then the
// stem's 3x3/2 max-pool: torch::max_pool2d against unitrain::nn::max_pool2d, forward +
// backward, on the bench model's, the toy model's and a large image's stem output.
//
//   conv_bench [iterations=20] [threads=1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "unitrain/nn/conv.h"
#include "unitrain/nn/pool.h"
#include "unitrain/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Shape {
  const char* where;
  int64_t batch, in, height, width, out, kernel, stride;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

unitrain::nn::Conv2dGeometry geometry(const Shape& s) {
  unitrain::nn::Conv2dGeometry g;
  g.stride = {s.stride, s.stride};
  g.padding = {s.kernel / 2, s.kernel / 2};
  return g;
}

template <class Conv>
double time_conv(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& dy,
                 Conv conv) {
  const auto start = Clock::now();
  auto y = conv(x, w);
  y.backward(dy);
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::stoi(argv[1]) : 20;
  const int64_t threads = argc > 2 ? std::stoll(argv[2]) : 1;
  if (iterations < 1 || threads < 0) {
    std::fprintf(stderr, "usage: conv_bench [iterations >= 1] [threads >= 0]\n");
    return 2;
  }
  unitrain::configure_threads(threads);
  unitrain::tune_allocator();
  const std::vector<Shape> shapes = {
      {"stem 7x7/2", 16, 3, 64, 64, 64, 7, 2},
      {"layer1 3x3", 16, 64, 16, 16, 64, 3, 1},
      {"layer2 3x3/2", 16, 64, 16, 16, 128, 3, 2},
      {"layer2 1x1/2", 16, 64, 16, 16, 128, 1, 2},
      {"layer2 3x3", 16, 128, 8, 8, 128, 3, 1},
      {"layer3 3x3/2", 16, 128, 8, 8, 256, 3, 2},
      {"layer3 3x3", 16, 256, 4, 4, 256, 3, 1},
      {"layer4 3x3/2", 16, 256, 4, 4, 512, 3, 2},
      {"layer4 1x1/2", 16, 256, 4, 4, 512, 1, 2},
      {"layer4 3x3", 16, 512, 2, 2, 512, 3, 1},
      {"layer4 3x3, 96x128 px", 16, 512, 3, 4, 512, 3, 1},
      {"layer4 3x3, 128 px", 16, 512, 4, 4, 512, 3, 1},
      {"layer4 3x3, 192 px", 16, 512, 6, 6, 512, 3, 1},
      {"layer3 3x3, 96 px", 16, 256, 6, 6, 256, 3, 1},
  };
  std::printf("convolution forward + backward, %d threads, median ms of %d\n",
              torch::get_num_threads(), iterations);
  std::printf("%-24s %-24s %9s %12s %7s  %s\n", "where", "B x C x H x W -> O, k/s", "conv2d",
              "nn::conv2d", "ratio", "path");
  double total_reference = 0, total_ours = 0;
  for (const auto& s : shapes) {
    torch::manual_seed(0);
    auto x = torch::randn({s.batch, s.in, s.height, s.width}, torch::requires_grad(s.in != 3));
    auto w = torch::randn({s.out, s.in, s.kernel, s.kernel}, torch::requires_grad());
    const auto g = geometry(s);
    auto dy = torch::randn_like(unitrain::nn::conv2d(x, w, {}, g).detach());
    std::vector<double> reference, ours;
    for (int i = 0; i < iterations + 3; ++i) {
      const double a = time_conv(x, w, dy, [&](const torch::Tensor& a, const torch::Tensor& b) {
        return torch::conv2d(a, b, {}, g.stride, g.padding);
      });
      const double b = time_conv(x, w, dy, [&](const torch::Tensor& a, const torch::Tensor& b) {
        return unitrain::nn::conv2d(a, b, {}, g);
      });
      if (i >= 3) {
        reference.push_back(a);
        ours.push_back(b);
      }
    }
    const std::string shape = std::to_string(s.batch) + "x" + std::to_string(s.in) + "x" +
                              std::to_string(s.height) + "x" + std::to_string(s.width) + " -> " +
                              std::to_string(s.out) + ", " + std::to_string(s.kernel) + "/" +
                              std::to_string(s.stride);
    const double r = median(reference), o = median(ours);
    if (s.height <= 64 && std::string(s.where).find("px") == std::string::npos) {
      total_reference += r;
      total_ours += o;
    }
    std::printf("%-24s %-24s %9.2f %12.2f %7.2f  %s\n", s.where, shape.c_str(), r, o, r / o,
                unitrain::nn::use_gemm_conv2d(x, w, g) ? "im2col + sgemm" : "torch::conv2d");
  }
  std::printf("ResNet-18 at 64 px, one conv of each shape: conv2d %.1f ms, nn::conv2d %.1f ms, "
              "ratio %.2f\n",
              total_reference, total_ours, total_reference / total_ours);

  std::printf("\nmax-pool 3x3/2, padding 1, forward + backward, median ms of %d\n", iterations);
  std::printf("%-24s %-24s %9s %12s %7s\n", "where", "B x C x H x W", "max_pool2d",
              "nn::max_pool", "ratio");
  const std::vector<std::pair<const char*, std::vector<int64_t>>> pools = {
      {"ResNet-18 stem, 64 px", {16, 64, 32, 32}},
      {"toy stem (width 16), 128 px", {16, 16, 64, 64}},
      {"ResNet-50 stem, 512 px", {2, 64, 256, 256}},
  };
  for (const auto& [where, size] : pools) {
    torch::manual_seed(0);
    auto x = torch::relu(torch::randn(size)).requires_grad_();
    auto dy = torch::randn_like(torch::max_pool2d(x, 3, 2, 1).detach());
    std::vector<double> reference, ours;
    for (int i = 0; i < iterations + 3; ++i) {
      const double a = time_conv(x, {}, dy, [](const torch::Tensor& a, const torch::Tensor&) {
        return torch::max_pool2d(a, 3, 2, 1);
      });
      const double b = time_conv(x, {}, dy, [](const torch::Tensor& a, const torch::Tensor&) {
        return unitrain::nn::max_pool2d(a, {3, 3}, {2, 2}, {1, 1});
      });
      if (i >= 3) {
        reference.push_back(a);
        ours.push_back(b);
      }
    }
    const std::string shape = std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" +
                              std::to_string(size[2]) + "x" + std::to_string(size[3]);
    const double r = median(reference), o = median(ours);
    std::printf("%-24s %-24s %9.2f %12.2f %7.2f\n", where, shape.c_str(), r, o, r / o);
  }
  return 0;
}
