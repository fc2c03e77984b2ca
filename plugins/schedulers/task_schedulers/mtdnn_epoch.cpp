// MT-DNN's schedule (Liu et al. 2019): an epoch lists every batch of every task once
// (task i appears batches_per_epoch_i times) and is shuffled; iterations follow the
// list, and a new shuffled list starts when it is used up.
#include <stdexcept>

#include "schedulers.h"

namespace unitrain::schedulers {
namespace {

using json = nlohmann::json;

class MtdnnEpoch : public TaskScheduler {
 public:
  void setup(const std::vector<SchedulerTask>& tasks) override {
    if (tasks.empty()) throw std::invalid_argument("no tasks to schedule");
    batches_.clear();
    for (const auto& t : tasks) batches_.push_back(std::max<int64_t>(1, t.batches_per_epoch));
  }

  size_t next(TaskRng& rng) override {
    if (position_ >= order_.size()) {
      // The epoch's order comes from its own engine, seeded by one draw: a checkpoint
      // then holds (seed, position) instead of the whole list.
      seed_ = rng.next();
      ++epoch_;
      position_ = 0;
      build_order();
    }
    return order_[position_++];
  }

  // What is left of the epoch's batches (the whole epoch's shares before the first draw).
  std::vector<double> probabilities() const override {
    std::vector<double> left(batches_.size(), 0.0);
    if (position_ >= order_.size()) {
      for (size_t i = 0; i < batches_.size(); ++i) left[i] = static_cast<double>(batches_[i]);
    } else {
      for (size_t p = position_; p < order_.size(); ++p) left[order_[p]] += 1.0;
    }
    double total = 0;
    for (double v : left) total += v;
    for (double& v : left) v /= total;
    return left;
  }

  json state() const override { return {{"epoch", epoch_}, {"seed", seed_}, {"position", position_}}; }
  void load_state(const json& s) override {
    epoch_ = s.at("epoch").get<int64_t>();
    seed_ = s.at("seed").get<uint64_t>();
    position_ = s.at("position").get<size_t>();
    order_.clear();
    if (epoch_ > 0) build_order();
  }

 private:
  void build_order() {
    order_.clear();
    for (size_t i = 0; i < batches_.size(); ++i) order_.insert(order_.end(), batches_[i], i);
    TaskRng engine(seed_);
    // Fisher-Yates; the bound's modulo bias is below 2^-40 for any real list length.
    for (size_t n = order_.size(); n > 1; --n) std::swap(order_[n - 1], order_[engine.next() % n]);
  }

  std::vector<int64_t> batches_;
  std::vector<size_t> order_;
  int64_t epoch_ = 0;  // epochs started
  uint64_t seed_ = 0;
  size_t position_ = 0;
};

}  // namespace

std::shared_ptr<TaskScheduler> make_mtdnn_epoch(const json&) { return std::make_shared<MtdnnEpoch>(); }

}  // namespace unitrain::schedulers
