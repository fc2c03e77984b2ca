// Val images with predicted and true boxes for the run report: the run's checkpoint run
// on the first records of each detection task's val split.
#pragma once

#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace unitrain::report {

// {task: [{"image_id", "image": "data:image/jpeg;base64,...", "width", "height", "truth": [[x0, y0,
// x1, y1, "label"]...], "predicted": [[x0, y0, x1, y1, "label", score]...]}...]} for
// the detection tasks of the run in `run_dir` (its experiment.resolved.json and
// checkpoint; the plugins it names must be loaded). Boxes are fractions of the image's
// width and height; the `top_k` best-scoring predictions of each image are kept.
// Throws unitrain::Error (no checkpoint, a dataset that does not open...).
nlohmann::json detection_examples(const std::filesystem::path& run_dir, int64_t images_per_task = 6,
                                  int64_t top_k = 5);

}  // namespace unitrain::report
