// Run folders: the lock, the check for an old run's files, fresh default names.
#include "train/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "unitrain/errors.h"
#include "unitrain/trainer.h"

namespace unitrain {
namespace fs = std::filesystem;

namespace train {

RunFolderLock::RunFolderLock(const fs::path& run_dir) {
  fs::create_directories(run_dir);
  const fs::path file = run_dir / kLockFile;
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw TrainingError(fmt::format("{}: cannot open the run folder's lock file '{}': {}",
                                    run_dir.string(), file.string(), std::strerror(errno)));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    std::string pid;
    std::ifstream(file) >> pid;
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) {
      throw TrainingError(fmt::format(
          "{}: the run folder is in use by another unitrain process (pid {}, lock file '{}'); "
          "wait for it to end or choose another --out",
          run_dir.string(), pid.empty() ? "unknown" : pid, file.string()));
    }
    throw TrainingError(fmt::format("{}: cannot lock '{}': {}", run_dir.string(), file.string(),
                                    std::strerror(error)));
  }
  const std::string text = fmt::format("{}\n", ::getpid());
  // Best effort: without the pid the lock still holds; only the other process's message
  // says "pid unknown".
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, text.data(), text.size(), 0);
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

RunFolderLock::RunFolderLock(RunFolderLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

RunFolderLock& RunFolderLock::operator=(RunFolderLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void prepare_run_folder(const fs::path& run_dir, bool resume, bool force) {
  if (resume) return;
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(run_dir)) {
    const std::string name = entry.path().filename().string();
    if (name != kLockFile) found.push_back(entry.is_directory() ? name + "/" : name);
  }
  if (found.empty()) return;
  std::sort(found.begin(), found.end());
  if (!force) {
    throw TrainingError(fmt::format(
        "{}: the run folder is not empty (holds {}); expected a new or empty folder. Continue "
        "that run with --resume {}, start over in it with --force (deletes its checkpoints/ "
        "and run files, keeps other files), or choose another --out",
        run_dir.string(), fmt::join(found, ", "), run_dir.string()));
  }
  for (const char* name : {kResolvedExperimentFile, kMetricsFile, kEvalFile, kThroughputFile,
                           kTasksFile, kReportFile}) {
    fs::remove(run_dir / name);
    fs::remove(run_dir / (std::string(name) + ".tmp"));
  }
  fs::remove_all(run_dir / kCheckpointFolder);
  fs::remove_all(run_dir / kTensorboardFolder);
}

}  // namespace train

fs::path default_run_dir(const Experiment& experiment) {
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
  const fs::path base =
      fs::path("runs") / (experiment.json.at("name").get<std::string>() + "-" + stamp);
  fs::create_directories(base.parent_path());
  // Claimed by creating it (atomic): a second run started in the same second gets -2.
  for (int n = 1;; ++n) {
    fs::path dir = n == 1 ? base : fs::path(base.string() + fmt::format("-{}", n));
    if (fs::create_directory(dir)) return dir;
  }
}

}  // namespace unitrain
