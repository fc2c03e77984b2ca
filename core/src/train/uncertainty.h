// How uncertain a prediction is, per example, for schedulers that sample by
// uncertainty (UncertaintySampling in unitrain/scheduler.h).
#pragma once

#include <vector>

#include "unitrain/batch.h"

namespace unitrain::train {

// The normalized entropy of each example's prediction, in [0, 1]:
//  - label scores [B, C] (softmax, or VQA's independent sigmoids, renormalized to sum
//    1): -sum p log p / log C; 0 when C = 1;
//  - detections: the mean over the image's detections of the binary entropy of each
//    score, / log 2 (a score of 0.5 is the most uncertain); 0 for an image without any.
std::vector<double> normalized_entropies(const Predictions& predictions);

}  // namespace unitrain::train
