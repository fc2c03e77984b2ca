// Val examples for the run report: the run's checkpoint run on the first records of
// each task's val split: images with predicted and true boxes for detection tasks,
// image, text, predicted and true answer for VQA and visual entailment.
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

// {task: [{"record_id", "image": "data:image/jpeg;base64,...", "width", "height", "text",
// "predicted": ["answer", score], "truth": [["answer", score]...]}...]} for the tasks
// that answer a text about an image (a "vqa" or "classification" label space whose
// samples have both): the first `examples_per_task` val records, the text as the
// dataset's RecordText gives it (null without that mixin), the checkpoint's best label
// with its probability, and the true answers with their VQA soft scores (1 for a
// classification label; none on an unlabelled split).
nlohmann::json answer_examples(const std::filesystem::path& run_dir, int64_t examples_per_task = 6);

}  // namespace unitrain::report
