// COCO bbox average precision, following pycocotools' COCOeval.evaluate/accumulate
// step by step (see metrics.h for what is and is not covered).
#include <algorithm>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "unitrain/errors.h"
#include "unitrain/metrics.h"

namespace unitrain {
namespace {

// numpy.linspace(start, stop, num): element i is i * ((stop - start) / (num - 1)) + start,
// and the last element is exactly `stop`. Reproduced bit for bit so that values lying
// exactly on a threshold compare as in pycocotools.
std::vector<double> numpy_linspace(double start, double stop, int num) {
  std::vector<double> values(num);
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int i = 0; i < num; ++i) values[i] = static_cast<double>(i) * step + start;
  values[num - 1] = stop;
  return values;
}

// One detection after per-image matching: its score and, per IoU threshold, whether it
// matched a ground-truth box.
struct MatchedDetection {
  double score = 0;
  std::vector<bool> matched;  // [num thresholds]
};

// evaluateImg for one (image, category): sorts and truncates the detections, then
// matches them greedily at every threshold. Appends to `out` in score order.
void match_image(const std::vector<const Detection*>& detections,
                 const std::vector<const GroundTruthBox*>& ground_truth,
                 const std::vector<double>& thresholds, int64_t max_detections,
                 std::vector<MatchedDetection>& out) {
  std::vector<const Detection*> sorted = detections;
  // pycocotools: np.argsort(-scores, kind='mergesort'), a stable sort.
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Detection* a, const Detection* b) { return a->score > b->score; });
  if (static_cast<int64_t>(sorted.size()) > max_detections) sorted.resize(max_detections);

  const size_t nd = sorted.size(), ng = ground_truth.size();
  std::vector<double> iou(nd * ng);
  for (size_t d = 0; d < nd; ++d) {
    for (size_t g = 0; g < ng; ++g) {
      const Detection& a = *sorted[d];
      const GroundTruthBox& b = *ground_truth[g];
      iou[d * ng + g] = box_iou(a.x0, a.y0, a.x1, a.y1, b.x0, b.y0, b.x1, b.y1);
    }
  }

  const size_t first = out.size();
  for (size_t d = 0; d < nd; ++d) {
    out.push_back({static_cast<double>(sorted[d]->score),
                   std::vector<bool>(thresholds.size(), false)});
  }
  for (size_t t = 0; t < thresholds.size(); ++t) {
    std::vector<bool> gt_taken(ng, false);
    for (size_t d = 0; d < nd; ++d) {
      // The best still-unmatched ground truth with IoU >= threshold; on equal IoU the
      // later box wins, as in pycocotools (it skips only IoU < best).
      double best = std::min(thresholds[t], 1.0 - 1e-10);
      int64_t match = -1;
      for (size_t g = 0; g < ng; ++g) {
        if (gt_taken[g]) continue;
        if (iou[d * ng + g] < best) continue;
        best = iou[d * ng + g];
        match = static_cast<int64_t>(g);
      }
      if (match >= 0) {
        gt_taken[match] = true;
        out[first + d].matched[t] = true;
      }
    }
  }
}

// accumulate for one category and threshold: the 101 interpolated precision values.
std::vector<double> interpolated_precision(const std::vector<MatchedDetection>& detections,
                                           const std::vector<size_t>& order, size_t t,
                                           int64_t num_ground_truth,
                                           const std::vector<double>& recall_points) {
  const size_t nd = order.size();
  std::vector<double> recall(nd), precision(nd);
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < nd; ++i) {
    if (detections[order[i]].matched[t]) {
      ++tp;
    } else {
      ++fp;
    }
    recall[i] = static_cast<double>(tp) / static_cast<double>(num_ground_truth);
    precision[i] = static_cast<double>(tp) / static_cast<double>(tp + fp);
  }
  // Monotone from the right: precision at recall r = the best precision at recall >= r.
  for (size_t i = nd; i-- > 1;) precision[i - 1] = std::max(precision[i - 1], precision[i]);

  std::vector<double> sampled(recall_points.size(), 0.0);
  for (size_t r = 0; r < recall_points.size(); ++r) {
    // np.searchsorted(recall, point, side='left'): first index with recall >= point.
    const size_t index = static_cast<size_t>(
        std::lower_bound(recall.begin(), recall.end(), recall_points[r]) - recall.begin());
    if (index >= nd) break;  // recall never reached: this and later points stay 0
    sampled[r] = precision[index];
  }
  return sampled;
}

}  // namespace

double box_iou(double ax0, double ay0, double ax1, double ay1, double bx0, double by0,
               double bx1, double by1) {
  const double w = std::min(ax1, bx1) - std::max(ax0, bx0);
  const double h = std::min(ay1, by1) - std::max(ay0, by0);
  if (w <= 0 || h <= 0) return 0.0;
  const double intersection = w * h;
  const double area_a = (ax1 - ax0) * (ay1 - ay0);
  const double area_b = (bx1 - bx0) * (by1 - by0);
  const double union_area = area_a + area_b - intersection;
  return union_area > 0 ? intersection / union_area : 0.0;
}

const std::vector<double>& coco_iou_thresholds() {
  // pycocotools: np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1)
  static const std::vector<double> kThresholds = numpy_linspace(0.5, 0.95, 10);
  return kThresholds;
}

const std::vector<double>& coco_recall_thresholds() {
  // pycocotools: np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1)
  static const std::vector<double> kPoints = numpy_linspace(0.0, 1.0, 101);
  return kPoints;
}

DetectionApResult detection_ap(const std::vector<std::vector<Detection>>& detections,
                               const std::vector<std::vector<GroundTruthBox>>& ground_truth,
                               const DetectionApOptions& options) {
  if (detections.size() != ground_truth.size()) {
    throw Error(fmt::format("detection_ap: {} images of detections but {} of ground truth",
                            detections.size(), ground_truth.size()));
  }
  if (options.max_detections < 1) {
    throw Error(fmt::format("detection_ap: max_detections is {}, expected >= 1",
                            options.max_detections));
  }
  const std::vector<double>& thresholds = coco_iou_thresholds();
  const std::vector<double>& recall_points = coco_recall_thresholds();
  const size_t num_t = thresholds.size();

  // Categories that have ground truth, ascending (pycocotools sorts catIds; only the
  // ones with ground truth contribute to the mean).
  std::set<int64_t> categories;
  for (const auto& image : ground_truth) {
    for (const auto& box : image) categories.insert(box.label);
  }

  DetectionApResult result;
  result.num_images = static_cast<int64_t>(ground_truth.size());
  result.num_categories = static_cast<int64_t>(categories.size());
  result.ap_per_threshold.assign(num_t, 0.0);
  if (categories.empty()) return result;

  std::vector<double> sum_per_threshold(num_t, 0.0);
  for (int64_t category : categories) {
    std::vector<MatchedDetection> matched;
    int64_t num_ground_truth = 0;
    for (size_t i = 0; i < ground_truth.size(); ++i) {
      std::vector<const GroundTruthBox*> gt;
      for (const auto& box : ground_truth[i]) {
        if (box.label == category) gt.push_back(&box);
      }
      std::vector<const Detection*> dt;
      for (const auto& det : detections[i]) {
        if (det.label == category) dt.push_back(&det);
      }
      num_ground_truth += static_cast<int64_t>(gt.size());
      match_image(dt, gt, thresholds, options.max_detections, matched);
    }
    // Across images: stable sort by score, so ties keep image order.
    std::vector<size_t> order(matched.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return matched[a].score > matched[b].score;
    });
    for (size_t t = 0; t < num_t; ++t) {
      const std::vector<double> sampled =
          interpolated_precision(matched, order, t, num_ground_truth, recall_points);
      sum_per_threshold[t] += std::accumulate(sampled.begin(), sampled.end(), 0.0);
    }
  }

  const double per_threshold_count =
      static_cast<double>(categories.size() * recall_points.size());
  double total = 0;
  for (size_t t = 0; t < num_t; ++t) {
    result.ap_per_threshold[t] = sum_per_threshold[t] / per_threshold_count;
    total += sum_per_threshold[t];
  }
  result.ap = total / (per_threshold_count * static_cast<double>(num_t));
  result.ap50 = result.ap_per_threshold[0];
  result.ap75 = result.ap_per_threshold[5];
  return result;
}

std::vector<GroundTruthBox> ground_truth_pixels(const torch::Tensor& boxes,
                                                const torch::Tensor& classes,
                                                int64_t orig_height, int64_t orig_width) {
  std::vector<GroundTruthBox> out;
  if (!boxes.defined() || boxes.numel() == 0) return out;
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "ground truth boxes must be [N, 4], got ",
              boxes.sizes());
  TORCH_CHECK(classes.defined() && classes.dim() == 1 && classes.size(0) == boxes.size(0),
              "ground truth classes must be [N] with N = ", boxes.size(0), ", got ",
              classes.defined() ? classes.sizes() : torch::IntArrayRef{});
  const torch::Tensor b = boxes.to(torch::kCPU, torch::kDouble).contiguous();
  const torch::Tensor c = classes.to(torch::kCPU, torch::kLong).contiguous();
  const double* p = b.data_ptr<double>();
  const int64_t* labels = c.data_ptr<int64_t>();
  const double w = static_cast<double>(orig_width), h = static_cast<double>(orig_height);
  out.reserve(b.size(0));
  for (int64_t i = 0; i < b.size(0); ++i) {
    const double cx = p[4 * i], cy = p[4 * i + 1], bw = p[4 * i + 2], bh = p[4 * i + 3];
    GroundTruthBox box;
    box.x0 = static_cast<float>((cx - 0.5 * bw) * w);
    box.y0 = static_cast<float>((cy - 0.5 * bh) * h);
    box.x1 = static_cast<float>((cx + 0.5 * bw) * w);
    box.y1 = static_cast<float>((cy + 0.5 * bh) * h);
    box.label = labels[i];
    out.push_back(box);
  }
  return out;
}

}  // namespace unitrain
