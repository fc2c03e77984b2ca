// Batches: collate (padding, masks, stacking), select_rows, pinned copies (sdk/src/data/batch.cpp).
#include <gtest/gtest.h>

#include "unitrain/batch.h"
#include "unitrain/errors.h"

namespace unitrain {
namespace {

Sample image_sample(int64_t h, int64_t w, float value) {
  Sample s;
  s.source = "s" + std::to_string(h);
  s.image = torch::full({3, h, w}, value);
  s.orig_height = h * 10;
  s.orig_width = w * 10;
  s.image_id = h;
  s.record_id = h + 100;
  return s;
}

TEST(Collate, PadsImagesWithMaskTrueAtPadding) {
  auto a = image_sample(2, 3, 1.f);
  auto b = image_sample(4, 1, 2.f);
  a.boxes = torch::tensor({{0.5f, 0.5f, 0.2f, 0.2f}});
  a.classes = torch::tensor({7}, torch::kInt64);
  const Batch batch = collate({a, b}, "coco");
  EXPECT_EQ(batch.task, "coco");
  EXPECT_EQ(batch.size, 2);
  ASSERT_EQ(batch.image.sizes(), (std::vector<int64_t>{2, 3, 4, 3}));
  EXPECT_EQ(batch.image[0].sum().item<float>(), 3 * 2 * 3 * 1.f);
  EXPECT_EQ(batch.image[1].sum().item<float>(), 3 * 4 * 1 * 2.f);
  EXPECT_TRUE(torch::equal(batch.image_mask.logical_not().sum({1, 2}), torch::tensor({6, 4}, torch::kInt64)));
  EXPECT_TRUE(batch.image_mask[0][3][0].item<bool>());
  EXPECT_FALSE(batch.image_mask[0][1][2].item<bool>());
  EXPECT_TRUE(torch::equal(batch.image_size, torch::tensor({{2, 3}, {4, 1}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch.orig_size, torch::tensor({{20, 30}, {40, 10}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch.image_id, torch::tensor({2, 4}, torch::kInt64)));
  EXPECT_EQ(batch.record_ids, (std::vector<int64_t>{102, 104}));
  EXPECT_EQ(batch.sources, (std::vector<std::string>{"s2", "s4"}));
  // Detection targets stay per image; an image without objects gets empty tensors.
  ASSERT_EQ(batch.boxes.size(), 2u);
  EXPECT_EQ(batch.boxes[1].sizes(), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(batch.classes[0].item<int64_t>(), 7);
  EXPECT_TRUE(batch.attributes.empty());
  EXPECT_FALSE(batch.labels.defined());
  EXPECT_FALSE(batch.has_text());
}

TEST(Collate, PadsTokensWithZeroAndStacksLabels) {
  Sample a, b;
  a.input_ids = {2, 9, 3};
  a.segment_ids = {0, 0, 0};
  a.label = 1;
  a.soft_label = torch::tensor({0.f, 0.3f});
  b.input_ids = {2, 9, 3, 8, 3};
  b.segment_ids = {0, 0, 0, 1, 1};
  b.label = 0;
  b.soft_label = torch::tensor({1.f, 0.f});
  const Batch batch = collate({a, b}, "t");
  EXPECT_TRUE(torch::equal(batch.input_ids,
                           torch::tensor({{2, 9, 3, 0, 0}, {2, 9, 3, 8, 3}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch.segment_ids,
                           torch::tensor({{0, 0, 0, 0, 0}, {0, 0, 0, 1, 1}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch.text_mask, torch::tensor({{0, 0, 0, 1, 1}, {0, 0, 0, 0, 0}}).to(torch::kBool)));
  EXPECT_TRUE(torch::equal(batch.labels, torch::tensor({1, 0}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch.soft_labels, torch::tensor({{0.f, 0.3f}, {1.f, 0.f}})));
  EXPECT_FALSE(batch.has_image());

  const Batch moved = batch.to(torch::kCPU);
  EXPECT_TRUE(torch::equal(moved.input_ids, batch.input_ids));
}

TEST(Collate, MixedFieldsAreAnErrorNamingBothSamples) {
  Sample a = image_sample(2, 2, 0.f);
  Sample b;
  b.source = "vqa.json: question_id 9";
  b.input_ids = {2, 3};
  try {
    collate({a, b}, "t");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("field 'image' is present in s2 but not in vqa.json: question_id 9"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(collate({}, "t"), DataError);
}

// select_rows keeps exactly the chosen examples, in the chosen order, in every field.
TEST(Collate, SelectRowsPicksEveryPerExampleField) {
  std::vector<Sample> samples;
  for (int64_t i = 1; i <= 3; ++i) {
    Sample s = image_sample(i, 2, static_cast<float>(i));
    s.input_ids = std::vector<int64_t>(static_cast<size_t>(i), 5 + i);
    s.segment_ids = std::vector<int64_t>(static_cast<size_t>(i), 0);
    s.label = i;
    s.soft_label = torch::full({4}, static_cast<float>(i) / 10);
    s.boxes = torch::full({i, 4}, 0.5f);
    s.classes = torch::full({i}, i, torch::kInt64);
    samples.push_back(s);
  }
  const Batch batch = collate(samples, "t");
  const Batch picked = select_rows(batch, {2, 0});
  EXPECT_EQ(picked.task, "t");
  EXPECT_EQ(picked.size, 2);
  EXPECT_TRUE(torch::equal(picked.image, torch::stack({batch.image[2], batch.image[0]})));
  EXPECT_TRUE(torch::equal(picked.image_mask, torch::stack({batch.image_mask[2], batch.image_mask[0]})));
  EXPECT_TRUE(torch::equal(picked.image_size, torch::tensor({{3, 2}, {1, 2}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(picked.orig_size, torch::tensor({{30, 20}, {10, 20}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(picked.image_id, torch::tensor({3, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(picked.input_ids, torch::stack({batch.input_ids[2], batch.input_ids[0]})));
  EXPECT_TRUE(torch::equal(picked.text_mask, torch::stack({batch.text_mask[2], batch.text_mask[0]})));
  EXPECT_TRUE(torch::equal(picked.segment_ids, torch::stack({batch.segment_ids[2], batch.segment_ids[0]})));
  EXPECT_TRUE(torch::equal(picked.labels, torch::tensor({3, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(picked.soft_labels, torch::stack({batch.soft_labels[2], batch.soft_labels[0]})));
  ASSERT_EQ(picked.boxes.size(), 2u);
  EXPECT_EQ(picked.boxes[0].size(0), 3);
  EXPECT_EQ(picked.classes[1].item<int64_t>(), 1);
  EXPECT_TRUE(picked.attributes.empty());
  EXPECT_EQ(picked.record_ids, (std::vector<int64_t>{103, 101}));
  EXPECT_EQ(picked.sources, (std::vector<std::string>{"s3", "s1"}));
  EXPECT_THROW(select_rows(batch, {3}), DataError);
}

TEST(Collate, PinnedMemoryAndNonBlockingCopy_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Sample a = image_sample(2, 3, 1.f);
  a.input_ids = {2, 3};
  a.label = 1;
  const Batch pinned = collate({a}, "t").pin_memory();
  EXPECT_TRUE(pinned.image.is_pinned());
  const Batch on_gpu = pinned.to(torch::kCUDA, /*non_blocking=*/true);
  EXPECT_TRUE(on_gpu.image.is_cuda());
  EXPECT_TRUE(torch::equal(on_gpu.input_ids.cpu(), pinned.input_ids));
}

}  // namespace
}  // namespace unitrain
