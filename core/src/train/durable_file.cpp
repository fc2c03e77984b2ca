// Crash-safe writes: see durable_file.h.
#include "train/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "unitrain/errors.h"

namespace unitrain::train {
namespace fs = std::filesystem;

namespace {

void sync_path(const fs::path& path, int flags, const char* what) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    throw TrainingError(fmt::format("cannot open {} '{}' to sync it: {}", what, path.string(),
                                    std::strerror(errno)));
  }
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // NOTE: some file systems (e.g. certain FUSE mounts) cannot fsync a folder; that loses
  // only the durability of the rename, not the content, so it is not an error.
  if (rc != 0 && !(error == EINVAL && (flags & O_DIRECTORY))) {
    throw TrainingError(
        fmt::format("cannot sync {} '{}' to disk: {}", what, path.string(), std::strerror(error)));
  }
}

}  // namespace

void sync_file(const fs::path& file) { sync_path(file, O_RDONLY, "file"); }

void sync_folder(const fs::path& folder) {
  sync_path(folder.empty() ? fs::path(".") : folder, O_RDONLY | O_DIRECTORY, "folder");
}

void write_durably(const fs::path& file, const std::function<void(const fs::path&)>& write) {
  const fs::path tmp = file.string() + ".tmp";
  write(tmp);
  sync_file(tmp);
  fs::rename(tmp, file);
  sync_folder(file.parent_path());
}

void save_archive(torch::serialize::OutputArchive& archive, const fs::path& file) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw TrainingError(fmt::format("cannot write '{}': {}", file.string(), std::strerror(errno)));
  }
  int error = 0;
  archive.save_to([&](const void* data, size_t size) -> size_t {
    const char* bytes = static_cast<const char*>(data);
    for (size_t left = size; error == 0 && left > 0;) {
      const ssize_t written = ::write(fd, bytes, left);
      if (written < 0) {
        if (errno != EINTR) error = errno;
        continue;
      }
      bytes += written;
      left -= static_cast<size_t>(written);
    }
    // NOTE: the whole size is reported even after a failure: LibTorch 1.13 checks short
    // writes in PyTorchStreamWriter's destructor too, where its exception ends the
    // process (std::terminate). The error is thrown below instead.
    return size;
  });
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    throw TrainingError(fmt::format("cannot write '{}': {}", file.string(), std::strerror(error)));
  }
}

void write_text_durably(const fs::path& file, const std::string& text) {
  write_durably(file, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.close();
    if (!out) throw TrainingError(fmt::format("cannot write '{}'", tmp.string()));
  });
}

}  // namespace unitrain::train
