// Scenes of the toy suite: 1-3 non-overlapping coloured shapes (3 shapes x 3 colours,
// two sizes) on a plain or lightly noisy light background, drawn with OpenCV.
#include <algorithm>
#include <cmath>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "toy/toy_internal.h"
#include "unitrain/errors.h"

namespace unitrain::toy {

const std::vector<std::string> kShapes = {"circle", "square", "triangle"};
const std::vector<std::string> kColors = {"red", "green", "blue"};
const std::vector<std::string> kSizes = {"small", "large"};

namespace {

// BGR base colours, far from the light backgrounds and from each other.
const cv::Vec3i kBgr[3] = {{40, 40, 210}, {50, 170, 40}, {200, 70, 30}};

// Canvas of scene k as fractions (width, height) of image_size, by k % 8: squares of
// three sizes and landscape and portrait frames (4:3, 3:4, 16:9, 2:3, 3:2), as COCO
// mixes them, so that batches pad and readers rescale.
constexpr double kFrames[8][2] = {{1, 1},      {1, 0.75},       {0.75, 1}, {1.25, 1.25},
                                  {1.25, 0.703125}, {0.75, 0.75}, {2.0 / 3, 1}, {1, 2.0 / 3}};

int jitter(ToyRng& rng, int value, int amount) {
  return std::clamp(value + static_cast<int>(rng.uniform_int(-amount, amount)), 0, 255);
}

// Draws one shape of side `side` with top-left (x, y) into `image` (colour) and `mask`
// (255), and returns its outline polygon in continuous pixel coordinates.
std::vector<double> draw_shape(int shape, int x, int y, int side, const cv::Scalar& color,
                               cv::Mat& image, cv::Mat& mask) {
  std::vector<double> polygon;
  if (shape == 0) {  // circle
    const int radius = side / 2;
    const cv::Point center(x + radius, y + radius);
    cv::circle(image, center, radius, color, cv::FILLED, cv::LINE_8);
    cv::circle(mask, center, radius, cv::Scalar(255), cv::FILLED, cv::LINE_8);
    for (int k = 0; k < 16; ++k) {
      const double angle = 2.0 * M_PI * k / 16.0;
      polygon.push_back(std::round((center.x + 0.5 + (radius + 0.5) * std::cos(angle)) * 100) / 100);
      polygon.push_back(std::round((center.y + 0.5 + (radius + 0.5) * std::sin(angle)) * 100) / 100);
    }
  } else if (shape == 1) {  // square
    cv::rectangle(image, cv::Point(x, y), cv::Point(x + side - 1, y + side - 1), color,
                  cv::FILLED, cv::LINE_8);
    cv::rectangle(mask, cv::Point(x, y), cv::Point(x + side - 1, y + side - 1), cv::Scalar(255),
                  cv::FILLED, cv::LINE_8);
    polygon = {double(x), double(y), double(x + side), double(y), double(x + side),
               double(y + side), double(x), double(y + side)};
  } else {  // triangle, apex up
    const std::vector<cv::Point> points = {
        {x + side / 2, y}, {x + side - 1, y + side - 1}, {x, y + side - 1}};
    cv::fillPoly(image, std::vector<std::vector<cv::Point>>{points}, color, cv::LINE_8);
    cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{points}, cv::Scalar(255), cv::LINE_8);
    polygon = {x + side / 2 + 0.5, double(y), double(x + side), double(y + side), double(x),
               double(y + side)};
  }
  return polygon;
}

ToyScene make_scene(int64_t index, bool train, const ToySuiteOptions& options, ToyRng& rng,
                    Deck& classes, Deck& counts) {
  ToyScene scene;
  scene.index = index;
  scene.train = train;
  const auto* frame = kFrames[index % 8];
  scene.width = static_cast<int>(std::lround(options.image_size * frame[0]));
  scene.height = static_cast<int>(std::lround(options.image_size * frame[1]));
  // Shapes scale with the longer side, which readers resize to a common length.
  const int long_side = std::max(scene.width, scene.height);
  scene.textured = rng.bernoulli(0.5);

  const int base = static_cast<int>(rng.uniform_int(200, 240));
  cv::Mat image(scene.height, scene.width, CV_8UC3,
                cv::Scalar(jitter(rng, base, 12), jitter(rng, base, 12), jitter(rng, base, 12)));
  if (scene.textured) {
    // Light noise: +-10 per pixel and channel, 8 bytes per RNG draw. The fresh Mat is
    // continuous, so its bytes are one run.
    uint8_t* data = image.data;
    const size_t total = image.total() * image.elemSize();
    uint64_t bits = 0;
    for (size_t i = 0; i < total; ++i) {
      if (i % 8 == 0) bits = rng.next();
      data[i] = static_cast<uint8_t>(std::clamp(int(data[i]) + int(bits & 0xff) % 21 - 10, 0, 255));
      bits >>= 8;
    }
  }

  const int num_objects = static_cast<int>(counts.draw()) + 1;
  std::vector<cv::Rect> taken;
  for (int n = 0; n < num_objects; ++n) {
    const int64_t cls = classes.draw();
    ToyObject object;
    object.shape = static_cast<int>(cls / 3);
    object.color = static_cast<int>(cls % 3);
    object.size = static_cast<int>(rng.uniform_int(0, 1));
    const double fraction = object.size == 0 ? 0.14 : 0.28;
    const int side = std::max(
        4, static_cast<int>(std::lround(long_side * fraction * (0.9 + 0.2 * rng.uniform()))));
    // Rejection sampling of a free spot, 2 pixels from the border and from others.
    bool placed = false;
    int x = 0, y = 0;
    for (int attempt = 0; attempt < 100 && !placed; ++attempt) {
      x = static_cast<int>(rng.uniform_int(2, scene.width - side - 2));
      y = static_cast<int>(rng.uniform_int(2, scene.height - side - 2));
      const cv::Rect grown(x - 2, y - 2, side + 4, side + 4);
      placed = std::none_of(taken.begin(), taken.end(),
                            [&](const cv::Rect& r) { return (r & grown).area() > 0; });
    }
    if (!placed) continue;  // crowded (rare): one object fewer
    taken.emplace_back(x, y, side, side);

    const cv::Vec3i& bgr = kBgr[object.color];
    const cv::Scalar color(jitter(rng, bgr[0], 20), jitter(rng, bgr[1], 20),
                           jitter(rng, bgr[2], 20));
    cv::Mat mask = cv::Mat::zeros(scene.height, scene.width, CV_8UC1);
    object.polygon = draw_shape(object.shape, x, y, side, color, image, mask);
    const cv::Rect box = cv::boundingRect(mask);
    object.x = box.x;
    object.y = box.y;
    object.w = box.width;
    object.h = box.height;
    object.area = cv::countNonZero(mask);
    scene.objects.push_back(std::move(object));
  }

  if (!cv::imencode(".jpg", image, scene.jpeg,
                    {cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality, cv::IMWRITE_JPEG_OPTIMIZE, 0})) {
    throw DataError("toy suite: the JPEG encoder failed for scene " + std::to_string(index));
  }
  return scene;
}

}  // namespace

std::vector<ToyScene> make_scenes(const ToySuiteOptions& options) {
  ToyRng rng(options.seed, "scenes");
  Deck classes(static_cast<int64_t>(kShapes.size() * kColors.size()), rng);
  Deck counts(3, rng);  // 1, 2 or 3 objects, equally often
  const int64_t num_val = std::llround(static_cast<double>(options.images) * options.val_fraction);
  const int64_t num_train = options.images - num_val;
  std::vector<ToyScene> scenes;
  scenes.reserve(options.images);
  for (int64_t i = 0; i < options.images; ++i) {
    scenes.push_back(make_scene(i, i < num_train, options, rng, classes, counts));
  }
  return scenes;
}

}  // namespace unitrain::toy
