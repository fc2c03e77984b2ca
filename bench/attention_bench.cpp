// Batched products of attention: torch::bmm vs unitrain::nn::batched_matmul (BLAS sgemm
// per item), forward + backward of scores = q k^T and out = weights v, at the sizes the
// toy model runs (batch x heads items, a few dozen tokens, 16-32 dims per head) and at
// one larger size. Runs alternate; the table shows the median us per product of each
// and the bmm / batched_matmul ratio.
//
//   attention_bench [iterations=200] [threads=1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "unitrain/nn/batched_matmul.h"
#include "unitrain/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Size {
  const char* where;
  int64_t items, queries, keys, head_dim;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// us for one attention product pair forward and backward: (q k^T) then (w v).
template <class Product>
double time_pair(const Size& s, Product product) {
  auto q = torch::randn({s.items, s.queries, s.head_dim}, torch::requires_grad());
  auto k = torch::randn({s.items, s.keys, s.head_dim}, torch::requires_grad());
  auto v = torch::randn({s.items, s.keys, s.head_dim}, torch::requires_grad());
  const auto start = Clock::now();
  auto weights = product(q, k.transpose(1, 2)).softmax(-1);
  auto out = product(weights, v);
  out.sum().backward();
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::stoi(argv[1]) : 200;
  const int64_t threads = argc > 2 ? std::stoll(argv[2]) : 1;
  if (iterations < 1 || threads < 0) {
    std::fprintf(stderr, "usage: attention_bench [iterations >= 1] [threads >= 0]\n");
    return 2;
  }
  unitrain::configure_threads(threads);
  unitrain::tune_allocator();
  const std::vector<Size> sizes = {
      {"image encoder self-attn", 16 * 4, 65, 65, 16},
      {"text encoder self-attn", 32 * 4, 12, 12, 16},
      {"decoder cross-attn (VL)", 16 * 4, 4, 81, 32},
      {"decoder cross-attn (det)", 16 * 4, 16, 65, 32},
      {"larger: 256 tokens", 8 * 8, 256, 256, 64},
  };
  std::printf("attention products, forward + backward of softmax(q k^T) v, %d threads, "
              "median of %d\n",
              torch::get_num_threads(), iterations);
  std::printf("%-26s %22s %10s %16s %7s\n", "where", "items x L x S x hd", "bmm us",
              "batched_matmul", "ratio");
  for (const auto& s : sizes) {
    std::vector<double> bmm, ours;
    for (int i = 0; i < iterations + 5; ++i) {
      const double a = time_pair(s, [](const torch::Tensor& x, const torch::Tensor& y) {
        return torch::bmm(x, y);
      });
      const double b = time_pair(s, [](const torch::Tensor& x, const torch::Tensor& y) {
        return unitrain::nn::batched_matmul(x, y);
      });
      if (i >= 5) {
        bmm.push_back(a);
        ours.push_back(b);
      }
    }
    const std::string shape = std::to_string(s.items) + "x" + std::to_string(s.queries) + "x" +
                              std::to_string(s.keys) + "x" + std::to_string(s.head_dim);
    std::printf("%-26s %22s %10.0f %16.0f %7.2f\n", s.where, shape.c_str(), median(bmm),
                median(ours), median(bmm) / median(ours));
  }
  return 0;
}
