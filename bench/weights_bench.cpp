// Load time and peak memory of a UniT-sized state (unit_8task, ~200M parameters) in each
// weights format, against the time to read the file's bytes. bench/weights_bench.sh writes
// the files (this program's `write`, then Debian's python3-torch for the torch.save ones)
// and runs `measure`.
//
//   weights_bench write EXPERIMENT DIR     unit_8task's state as DIR/unit.safetensors and
//                                          DIR/unit.unitrain.pt (a component-style archive)
//   weights_bench measure FILE...          one table row per file
//
// Each measurement runs in a child process, so that its peak resident memory (getrusage's
// ru_maxrss of the child) is its own; the file's pages are read once beforehand so that
// every row starts from the page cache.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>

#include "unitrain/checkpoint.h"
#include "unitrain/config.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"
#include "unitrain/weights/tensor_file.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int write_files(const std::string& experiment_file, const fs::path& dir) {
  unitrain::Registry registry;
  registry.load_directory(UNITRAIN_BENCH_PLUGIN_DIR);
  auto experiment = unitrain::load_experiment(experiment_file);
  unitrain::validate_experiment(experiment, &registry);
  unitrain::UnitModel model(experiment, unitrain::registry_factory(registry), /*load_init_from=*/false);
  fs::create_directories(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  unitrain::StateDict state = unitrain::state_dict(*model);
  int64_t values = 0;
  for (const auto& entry : state) {
    tensors.emplace_back(entry.key(), entry.value());
    values += entry.value().numel();
  }
  unitrain::weights::write_safetensors(dir / "unit.safetensors", tensors);
  unitrain::ComponentArchive archive;
  archive.component = "model";
  archive.kind = "model";
  archive.type = "unit";
  archive.options = nlohmann::json::object();
  archive.state = state;
  unitrain::save_component(archive, dir / "unit.unitrain.pt");
  std::printf("wrote %zu tensors, %lld values of %s\n", tensors.size(),
              static_cast<long long>(values), experiment_file.c_str());
  return 0;
}

// Runs `body` in a child; returns {seconds it reported, child's peak RSS in MiB}.
std::pair<double, double> in_child(const std::function<double()>& body) {
  int pipe_fd[2];
  if (pipe(pipe_fd) != 0) return {-1, -1};
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fd[0]);
    double s = -1;
    try {
      s = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
    }
    (void)!write(pipe_fd[1], &s, sizeof s);
    _exit(0);
  }
  close(pipe_fd[1]);
  double s = -1;
  (void)!read(pipe_fd[0], &s, sizeof s);
  close(pipe_fd[0]);
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  return {s, usage.ru_maxrss / 1024.0};
}

double read_bytes(const fs::path& file) {
  const auto start = Clock::now();
  std::ifstream in(file, std::ios::binary);
  const auto size = fs::file_size(file);
  std::unique_ptr<char[]> bytes(new char[size]);  // not zeroed: only the read is timed
  in.read(bytes.get(), static_cast<std::streamsize>(size));
  return seconds_since(start);
}

int measure(const std::vector<std::string>& files) {
  torch::set_num_threads(1);
  std::printf("%-34s %-20s %9s %9s %9s %8s %11s %9s\n", "file", "format", "size MiB", "read s",
              "load s", "load/read", "peak MiB", "peak/size");
  for (const auto& f : files) {
    const fs::path file(f);
    const double size = fs::file_size(file) / 1048576.0;
    read_bytes(file);  // into the page cache
    const auto [read_s, read_peak] = in_child([&] { return read_bytes(file); });
    std::string format = "?";
    const auto [load_s, load_peak] = in_child([&] {
      const auto start = Clock::now();
      auto tensors = unitrain::weights::read_tensor_file(file);
      return seconds_since(start);
    });
    try {
      format = unitrain::weights::format_name(unitrain::weights::detect_format(file));
    } catch (const std::exception&) {
    }
    std::printf("%-34s %-20s %9.1f %9.3f %9.3f %8.2fx %11.1f %8.2fx\n",
                file.filename().string().c_str(), format.c_str(), size, read_s, load_s,
                load_s / read_s, load_peak, load_peak / size);
    (void)read_peak;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "write" && argc == 4) return write_files(argv[2], argv[3]);
  if (mode == "measure" && argc > 2) return measure({argv + 2, argv + argc});
  std::fprintf(stderr, "usage: weights_bench write EXPERIMENT DIR | measure FILE...\n");
  return 2;
}
