#include "unitrain/data/loader.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "unitrain/data/random.h"
#include "test_util.h"
#include "unitrain/data/records.h"
#include "unitrain/errors.h"

namespace unitrain::data {
namespace {

// A dataset whose samples record their index and seed: label = index, the image's
// height varies with the index (so collate pads) and its values come from the seed.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n, int64_t fail_at = -1) : n_(n), fail_at_(fail_at) {}
  int64_t size() const override { return n_; }
  Sample get(int64_t index, uint64_t seed) const override {
    if (index == fail_at_) throw DataError("broken.json: record " + std::to_string(index) + ": bad");
    // Uneven decode times shuffle the order in which workers finish.
    std::this_thread::sleep_for(std::chrono::microseconds((index * 7919) % 500));
    Sample s;
    s.source = "counting:" + std::to_string(index);
    Rng rng(seed);
    s.image = torch::full({3, 2 + index % 3, 4}, static_cast<float>(rng.uniform()));
    s.image_id = index;
    s.label = index;
    s.record_id = index;
    s.input_ids = {2, 5 + index % 7, 3};
    return s;
  }
  LabelSpace labels() const override { return {"classification", {"a"}, 0}; }
  std::unique_ptr<Evaluator> evaluator() const override { return nullptr; }

 private:
  int64_t n_;
  int64_t fail_at_;
};

LoaderOptions options(int64_t workers) {
  LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = workers;
  o.prefetch = 3;
  o.seed = 42;
  o.task = "toy";
  return o;
}

std::vector<Batch> take(DataLoader& loader, int n) {
  std::vector<Batch> batches;
  for (int i = 0; i < n; ++i) batches.push_back(*loader.next());
  return batches;
}

// Polls `done` every 10 ms for up to `seconds` (a loaded machine may start worker
// threads late); returns whether it became true.
template <typename Done>
bool eventually(Done done, double seconds = 20) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].labels, b[i].labels)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a[i].image, b[i].image)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a[i].input_ids, b[i].input_ids)) << "batch " << i;
    EXPECT_EQ(a[i].sources, b[i].sources);
  }
}

TEST(DataLoader, SameSeedSameBatchesWhateverTheNumberOfWorkers) {
  auto dataset = std::make_shared<CountingDataset>(22);
  DataLoader inline_loader(dataset, options(0));
  DataLoader one(dataset, options(1));
  DataLoader four(dataset, options(4));
  const auto reference = take(inline_loader, 14);  // 2.5 epochs of 6 batches
  expect_same(reference, take(one, 14));
  expect_same(reference, take(four, 14));
  EXPECT_EQ(reference[0].task, "toy");
}

TEST(DataLoader, EachEpochIsAFreshPermutationOfAllRecords) {
  auto dataset = std::make_shared<CountingDataset>(10);
  auto o = options(2);
  o.batch_size = 5;
  DataLoader loader(dataset, o);
  std::vector<std::vector<int64_t>> epochs(3);
  for (int e = 0; e < 3; ++e) {
    for (int b = 0; b < 2; ++b) {
      const Batch batch = *loader.next();
      for (int64_t i = 0; i < batch.size; ++i) epochs[e].push_back(batch.labels[i].item<int64_t>());
    }
    EXPECT_EQ(std::set<int64_t>(epochs[e].begin(), epochs[e].end()).size(), 10u);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  EXPECT_EQ(loader.state().epoch, 3);
  EXPECT_EQ(loader.state().position, 0);

  // Another seed, another order.
  o.seed = 43;
  DataLoader other(dataset, o);
  std::vector<int64_t> first;
  for (int b = 0; b < 2; ++b) {
    const Batch batch = *other.next();
    for (int64_t i = 0; i < batch.size; ++i) first.push_back(batch.labels[i].item<int64_t>());
  }
  EXPECT_NE(first, epochs[0]);
}

TEST(DataLoader, ResumesFromASavedState) {
  auto dataset = std::make_shared<CountingDataset>(10);
  DataLoader loader(dataset, options(2));  // 3 batches an epoch (4, 4, 2)
  const auto all = take(loader, 7);
  DataLoader probe(dataset, options(2));
  take(probe, 4);
  const LoaderState state = probe.state();
  EXPECT_EQ(state.epoch, 1);
  EXPECT_EQ(state.position, 4);
  DataLoader resumed(dataset, options(3), state);
  expect_same({all.begin() + 4, all.end()}, take(resumed, 3));
}

TEST(DataLoader, EvaluationIteratesOneEpochInFileOrder) {
  auto dataset = std::make_shared<CountingDataset>(10);
  auto o = options(2);
  o.shuffle = false;
  o.infinite = false;
  DataLoader loader(dataset, o);
  std::vector<int64_t> labels;
  int batches = 0;
  while (auto batch = loader.next()) {
    ++batches;
    for (int64_t i = 0; i < batch->size; ++i) labels.push_back(batch->labels[i].item<int64_t>());
  }
  EXPECT_EQ(batches, 3);
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_FALSE(loader.next().has_value());
}

// Records the nice value of the threads that decode.
class PriorityDataset : public CountingDataset {
 public:
  PriorityDataset() : CountingDataset(16) {}
  Sample get(int64_t index, uint64_t seed) const override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      nice_.insert(::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid))));
    }
    return CountingDataset::get(index, seed);
  }
  std::set<int> nice() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return nice_;
  }

 private:
  mutable std::mutex mutex_;
  mutable std::set<int> nice_;
};

// data.worker_nice: the workers decode at a lower priority than the training thread,
// which keeps its own; the batches are the same.
TEST(DataLoader, WorkersRunAtTheirNiceValueAndGiveTheSameBatches) {
  const int mine = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
  ASSERT_LE(mine, 14) << "the test needs room below this thread's priority";
  auto plain = std::make_shared<PriorityDataset>();
  auto lowered = std::make_shared<PriorityDataset>();
  auto o = options(2);
  DataLoader a(plain, o);
  const auto first = take(a, 4);
  o.worker_nice = 5;
  DataLoader b(lowered, o);
  const auto second = take(b, 4);
  expect_same(first, second);
  EXPECT_EQ(plain->nice(), std::set<int>{mine});
  EXPECT_EQ(lowered->nice(), std::set<int>{mine + 5});
  EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid))), mine);
}

TEST(DataLoader, WorkerExceptionsReachTheConsumerAsDataError) {
  for (int64_t workers : {0, 1, 4}) {
    auto dataset = std::make_shared<CountingDataset>(12, /*fail_at=*/5);
    auto o = options(workers);
    o.shuffle = false;
    DataLoader loader(dataset, o);
    EXPECT_TRUE(loader.next().has_value());  // records 0..3
    try {
      loader.next();  // records 4..7
      FAIL() << "expected DataError";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("task 'toy', epoch 0, record 5: broken.json: record 5: bad"),
                std::string::npos)
          << e.what();
    }
    // The loader stays failed rather than skipping the batch.
    EXPECT_THROW(loader.next(), DataError);
  }
}

// Records in `bad` fail to decode as a dataset under `on_bad_record` reports them; the
// others are CountingDataset's. Counts the reads of each record.
class BadImagesDataset : public CountingDataset {
 public:
  BadImagesDataset(int64_t n, std::set<int64_t> bad, bool skip)
      : CountingDataset(n), bad_(std::move(bad)), skip_(skip), reads_(n) {}
  Sample get(int64_t index, uint64_t seed) const override {
    ++reads_[index];
    if (bad_.count(index)) {
      throw BadRecordError("images/" + std::to_string(index) + ".jpg: cannot decode image file",
                           "corrupt_image", skip_);
    }
    return CountingDataset::get(index, seed);
  }
  int64_t reads(int64_t index) const { return reads_[index]; }

 private:
  std::set<int64_t> bad_;
  bool skip_;
  mutable std::vector<std::atomic<int64_t>> reads_;
};

std::vector<int64_t> labels_of(const std::vector<Batch>& batches) {
  std::vector<int64_t> labels;
  for (const auto& b : batches) {
    for (int64_t i = 0; i < b.size; ++i) labels.push_back(b.labels[i].item<int64_t>());
  }
  return labels;
}

TEST(DataLoader, TrainingReplacesARecordFoundBadByTheNextReadableOne) {
  // Records 3 and 4 are bad: both are replaced by 5, the first readable one after them;
  // record 9's replacement wraps around to 0.
  auto dataset = std::make_shared<BadImagesDataset>(10, std::set<int64_t>{3, 4, 9}, true);
  auto o = options(0);
  o.shuffle = false;
  o.batch_size = 5;
  DataLoader loader(dataset, o);
  const auto batches = take(loader, 4);  // two epochs
  EXPECT_EQ(labels_of(batches),
            (std::vector<int64_t>{0, 1, 2, 5, 5, 5, 6, 7, 8, 0, 0, 1, 2, 5, 5, 5, 6, 7, 8, 0}));
  for (const auto& b : batches) EXPECT_EQ(b.size, 5);
  // Each bad record is counted and reported once, and not decoded again.
  EXPECT_EQ(loader.skipped(), (nlohmann::json{{"corrupt_image", 3}}));
  const auto skips = loader.take_new_skips();
  ASSERT_EQ(skips.size(), 3u);
  EXPECT_EQ(skips[0].index, 3);
  EXPECT_EQ(skips[0].reason, "corrupt_image");
  EXPECT_EQ(skips[0].message, "images/3.jpg: cannot decode image file");
  EXPECT_TRUE(loader.take_new_skips().empty());
  for (int64_t bad : {3, 4, 9}) EXPECT_EQ(dataset->reads(bad), 1) << bad;

  // The replacement does not depend on the number of workers, nor on where a run
  // resumes (shuffled epochs included).
  auto shuffled = options(0);
  DataLoader reference(dataset, shuffled);
  const auto expected = take(reference, 12);
  for (int64_t workers : {1, 3}) {
    DataLoader other(dataset, options(workers));
    expect_same(expected, take(other, 12));
  }
  DataLoader probe(dataset, shuffled);
  take(probe, 5);
  DataLoader resumed(dataset, options(2), probe.state());
  expect_same({expected.begin() + 5, expected.end()}, take(resumed, 7));
  for (const auto& label : labels_of(expected)) EXPECT_FALSE(label == 3 || label == 4 || label == 9);
}

TEST(DataLoader, EvaluationLeavesABadRecordOut) {
  // Records 4-7 are the whole second batch: that batch is left out, not delivered empty.
  for (int64_t workers : {0, 2}) {
    auto dataset = std::make_shared<BadImagesDataset>(10, std::set<int64_t>{1, 4, 5, 6, 7}, true);
    auto o = options(workers);
    o.shuffle = false;
    o.infinite = false;
    DataLoader loader(dataset, o);
    std::vector<Batch> batches;
    while (auto batch = loader.next()) batches.push_back(std::move(*batch));
    EXPECT_EQ(labels_of(batches), (std::vector<int64_t>{0, 2, 3, 8, 9})) << workers;
    EXPECT_EQ(batches.size(), 2u);
    EXPECT_EQ(loader.skipped(), (nlohmann::json{{"corrupt_image", 5}}));
  }
}

TEST(DataLoader, BadRecordUnderTheErrorPolicyStopsWithTheDatasetsMessage) {
  auto dataset = std::make_shared<BadImagesDataset>(10, std::set<int64_t>{2}, false);
  auto o = options(1);
  o.shuffle = false;
  DataLoader loader(dataset, o);
  const std::string message = test::error_of<DataError>([&] { loader.next(); });
  EXPECT_EQ(message, "task 'toy', epoch 0, record 2: images/2.jpg: cannot decode image file");
  EXPECT_EQ(loader.skipped(), nlohmann::json::object());
}

TEST(DataLoader, EveryRecordBadIsAnErrorNotALoop) {
  auto dataset = std::make_shared<BadImagesDataset>(3, std::set<int64_t>{0, 1, 2}, true);
  DataLoader loader(dataset, options(0));
  const std::string message = test::error_of<DataError>([&] { loader.next(); });
  EXPECT_NE(message.find("every one of the 3 records was left out as unreadable"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("images/"), std::string::npos) << message;
}

TEST(DataLoader, LoadersShareOneBudgetOfQueuedBytes) {
  // Batches of 4 CountingDataset records hold about a kilobyte; a 1-byte budget lets
  // each loader hold one batch plus what its workers had in progress when it filled.
  auto dataset = std::make_shared<CountingDataset>(40);
  auto budget = std::make_shared<QueueBudget>(1);
  auto o = options(2);
  o.prefetch = 8;
  o.queue_budget = budget;
  DataLoader reference(dataset, options(0));
  const auto expected = take(reference, 6);
  const int64_t batch = 4096;  // more than one batch's tensors hold here (~1.3 KB)
  DataLoader a(dataset, o);
  o.task = "other";
  DataLoader b(dataset, o);
  EXPECT_TRUE(eventually([&] { return budget->used() > 0; })) << "no loader queued a batch";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // workers fill what they may
  EXPECT_LE(budget->used(), 2 * (1 + 2) * batch) << "at most one batch per loader and worker";
  // Without a budget the same loader queues all of its prefetch.
  auto unbounded = options(2);
  unbounded.prefetch = 8;
  auto counted = std::make_shared<QueueBudget>(int64_t{1} << 40);
  unbounded.queue_budget = counted;
  DataLoader c(dataset, unbounded);
  EXPECT_TRUE(eventually([&] { return counted->used() > budget->used(); }))
      << "the unbounded loader queued " << counted->used() << " bytes, the bounded ones "
      << budget->used();
  // Taking batches makes room, and the batches do not depend on the budget.
  expect_same(expected, take(a, 6));
  take(b, 6);

  // An evaluation pass releases everything it counted.
  auto eval = options(2);
  eval.infinite = false;
  eval.shuffle = false;
  eval.queue_budget = std::make_shared<QueueBudget>(1);
  {
    DataLoader e(dataset, eval);
    int batches = 0;
    while (e.next()) ++batches;
    EXPECT_EQ(batches, 10);
  }
  EXPECT_EQ(eval.queue_budget->used(), 0);

  // So does a loader dropped with batches still queued (eval_max_batches).
  auto shared = std::make_shared<QueueBudget>(int64_t{1} << 40);
  eval.queue_budget = shared;
  {
    DataLoader e(dataset, eval);
    e.next();
    EXPECT_TRUE(eventually([&] { return shared->used() > 0; })) << "the rest never queued";
  }
  EXPECT_EQ(shared->used(), 0);
}

// Workers blocked on a full queue are woken and joined when the loader goes: the
// destructor returns (within a bound, or the test fails instead of hanging) and gives
// back every queued byte.
TEST(DataLoader, ShutsDownWithAFullQueue) {
  auto dataset = std::make_shared<CountingDataset>(100);
  auto o = options(4);
  o.queue_budget = std::make_shared<QueueBudget>(int64_t{1} << 40);
  auto loader = std::make_unique<DataLoader>(dataset, o);
  loader->next();
  // Wait until the workers have filled the queue (prefetch batches) and block.
  const auto filled_by = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int64_t queued = 0;
  while (std::chrono::steady_clock::now() < filled_by) {
    queued = o.queue_budget->used();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (queued > 0 && queued == o.queue_budget->used()) break;  // stable: the workers wait
  }
  ASSERT_GT(queued, 0) << "the workers never queued a batch";

  std::promise<void> done;
  auto finished = done.get_future();
  std::thread closer([&loader, &done] {
    loader.reset();
    done.set_value();
  });
  if (finished.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    // The destructor hangs: report and end the process rather than hang the suite.
    std::fprintf(stderr, "DataLoader.ShutsDownWithAFullQueue: the loader's destructor did not "
                         "return within 20 s\n");
    std::_Exit(1);
  }
  closer.join();
  EXPECT_EQ(o.queue_budget->used(), 0);
}

TEST(DataLoader, RejectsBadSettings) {
  auto dataset = std::make_shared<CountingDataset>(3);
  auto o = options(1);
  o.drop_last = true;
  EXPECT_THROW(DataLoader(dataset, o), DataError);  // 3 records, batch 4, drop_last
  EXPECT_THROW(DataLoader(std::make_shared<CountingDataset>(0), options(1)), DataError);
  EXPECT_THROW(DataLoader(dataset, options(1), LoaderState{0, 3}), DataError);
}

TEST(DataLoader, PrefetchIsNotRaisedAndMustBeAtLeastOne) {
  auto dataset = std::make_shared<CountingDataset>(22);
  // More workers than prefetch: the extra ones are not started, the batches are the same.
  auto narrow = options(4);
  narrow.prefetch = 1;
  DataLoader inline_loader(dataset, options(0));
  DataLoader loader(dataset, narrow);
  expect_same(take(inline_loader, 8), take(loader, 8));

  auto o = options(1);
  o.prefetch = 0;
  const std::string message = test::error_of<ConfigError>([&] { DataLoader(dataset, o); });
  EXPECT_NE(message.find("task 'toy': prefetch must be >= 1, found 0"), std::string::npos)
      << message;
}

// In a child process (the death-test machinery re-runs this test alone): lowers the
// soft RLIMIT_NPROC to leave room for three more threads of this user, then starts 64
// workers. Exits 0 after printing the DataError; a leaked joinable thread would abort.
void start_loader_under_a_thread_limit() {
  // Root ignores RLIMIT_NPROC; an unprivileged user does not.
  if (::getuid() == 0 && ::setuid(65534) != 0) {
    std::fprintf(stderr, "cannot drop root to uid 65534: %s\n", std::strerror(errno));
    std::_Exit(2);
  }
  rlimit limit{};
  ::getrlimit(RLIMIT_NPROC, &limit);
  // The lowest soft limit that lets one more thread start is the user's count + 1.
  rlim_t count = 0;
  for (; count < 100000; ++count) {
    rlimit probe = limit;
    probe.rlim_cur = count + 1;
    if (::setrlimit(RLIMIT_NPROC, &probe) != 0) break;
    try {
      std::thread([] {}).join();
      break;
    } catch (const std::system_error&) {
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the probe's exit settles
  limit.rlim_cur = count + 3;
  if (::setrlimit(RLIMIT_NPROC, &limit) != 0) {
    std::fprintf(stderr, "setrlimit: %s\n", std::strerror(errno));
    std::_Exit(3);
  }
  auto o = options(64);
  o.prefetch = 64;
  try {
    DataLoader loader(std::make_shared<CountingDataset>(1000), o);
    std::fprintf(stderr, "64 threads started under a limit of %llu\n",
                 static_cast<unsigned long long>(limit.rlim_cur));
    std::_Exit(4);
  } catch (const DataError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::_Exit(0);
  }
}

TEST(DataLoaderDeathTest, ThreadStartFailureStopsTheStartedWorkersAndThrowsDataError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(start_loader_under_a_thread_limit(), ::testing::ExitedWithCode(0),
              "task 'toy': could not start loader thread [0-9]+ of 64: .*lower data.workers");
}

}  // namespace
}  // namespace unitrain::data
