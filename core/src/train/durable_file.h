// Files that survive a crash or power loss: written to FILE.tmp, flushed to the disk,
// renamed over FILE, and the rename itself flushed (the folder's entry). Without the two
// fsyncs a crash soon after the rename can leave FILE empty or the old name pointing at
// nothing, on ext4 and xfs alike.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include <torch/serialize/output-archive.h>

namespace unitrain::train {

// Flushes a file's data (fsync) or a folder's entries (fsync on the folder). Throws
// TrainingError naming the path and the system's reason.
void sync_file(const std::filesystem::path& file);
void sync_folder(const std::filesystem::path& folder);

// `write(tmp)` writes the whole content to tmp = FILE.tmp; then tmp is synced, renamed
// over `file`, and the folder synced. Either the old or the new content is found after
// a crash, never a torn one.
void write_durably(const std::filesystem::path& file,
                   const std::function<void(const std::filesystem::path& tmp)>& write);

// Saves `archive` to `file` (no sync; use it inside write_durably). A failed write (a
// full disk, the file size limit) is a TrainingError "cannot write 'FILE': reason".
void save_archive(torch::serialize::OutputArchive& archive, const std::filesystem::path& file);

// write_durably for text.
void write_text_durably(const std::filesystem::path& file, const std::string& text);

}  // namespace unitrain::train
