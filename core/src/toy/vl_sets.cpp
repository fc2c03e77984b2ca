// VQAv2 and SNLI-VE files about the toy scenes.
#include <algorithm>

#include <fmt/format.h>

#include "toy/toy_internal.h"

namespace unitrain::toy {
namespace {

using ojson = nlohmann::ordered_json;

const std::vector<std::string> kNumberWords = {"zero", "one", "two", "three", "four"};

struct Question {
  std::string text;
  std::string answer;         // canonical (normalized) answer
  std::string answer_type;    // "yes/no", "number" or "other"
  std::string question_type;  // the question's first words, as in VQAv2
  std::vector<std::string> wrong;  // answers a careless annotator might give instead
};

int count_if_shape(const ToyScene& scene, int shape) {
  return static_cast<int>(std::count_if(scene.objects.begin(), scene.objects.end(),
                                        [&](const ToyObject& o) { return o.shape == shape; }));
}

// Objects whose value of `key` (shape, colour or class) no other object shares.
template <typename Key>
std::vector<const ToyObject*> unique_by(const ToyScene& scene, Key key) {
  std::vector<const ToyObject*> out;
  for (const ToyObject& o : scene.objects) {
    const auto same = std::count_if(scene.objects.begin(), scene.objects.end(),
                                    [&](const ToyObject& p) { return key(p) == key(o); });
    if (same == 1) out.push_back(&o);
  }
  return out;
}

std::vector<std::string> others(const std::vector<std::string>& all, const std::string& answer) {
  std::vector<std::string> out;
  for (const auto& a : all) {
    if (a != answer) out.push_back(a);
  }
  return out;
}

// Question kind 0 colour, 1 shape, 2 count, 3 yes/no, 4 left/right; returns false when
// the scene cannot support that kind.
bool make_question(int kind, const ToyScene& scene, ToyRng& rng, int64_t& yes_no_counter,
                   Question& q) {
  const std::vector<std::string> counts = {"0", "1", "2", "3"};
  switch (kind) {
    case 0: {
      const auto candidates = unique_by(scene, [](const ToyObject& o) { return o.shape; });
      if (candidates.empty()) return false;
      const ToyObject& o = *rng.pick(candidates);
      q = {fmt::format("What color is the {}?", kShapes[o.shape]), kColors[o.color], "other",
           "what color is the", others(kColors, kColors[o.color])};
      return true;
    }
    case 1: {
      const auto candidates = unique_by(scene, [](const ToyObject& o) { return o.color; });
      if (candidates.empty()) return false;
      const ToyObject& o = *rng.pick(candidates);
      q = {fmt::format("What shape is the {} object?", kColors[o.color]), kShapes[o.shape],
           "other", "what shape is the", others(kShapes, kShapes[o.shape])};
      return true;
    }
    case 2: {
      if (rng.bernoulli(0.5)) {
        const std::string n = std::to_string(scene.objects.size());
        q = {"How many objects are there?", n, "number", "how many", others(counts, n)};
      } else {
        const int shape = static_cast<int>(rng.uniform_int(0, 2));
        const std::string n = std::to_string(count_if_shape(scene, shape));
        q = {fmt::format("How many {}s are there?", kShapes[shape]), n, "number", "how many",
             others(counts, n)};
      }
      return true;
    }
    case 3: {
      // Alternate yes and no so the two answers stay balanced.
      const bool yes = yes_no_counter++ % 2 == 0;
      int color = 0, shape = 0;
      if (yes) {
        const ToyObject& o = rng.pick(scene.objects);
        color = o.color;
        shape = o.shape;
      } else {
        do {
          color = static_cast<int>(rng.uniform_int(0, 2));
          shape = static_cast<int>(rng.uniform_int(0, 2));
        } while (std::any_of(scene.objects.begin(), scene.objects.end(), [&](const ToyObject& o) {
          return o.color == color && o.shape == shape;
        }));
      }
      q = {fmt::format("Is there a {} {}?", kColors[color], kShapes[shape]), yes ? "yes" : "no",
           "yes/no", "is there a", {yes ? "no" : "yes"}};
      return true;
    }
    default: {
      const auto candidates = unique_by(scene, [](const ToyObject& o) { return o.class_id(); });
      if (candidates.empty()) return false;
      const ToyObject& o = *rng.pick(candidates);
      const std::string side = o.center_x() < scene.width / 2.0 ? "left" : "right";
      q = {fmt::format("Is the {} {} on the left or the right?", kColors[o.color], kShapes[o.shape]),
           side, "other", "is the", {side == "left" ? "right" : "left"}};
      return true;
    }
  }
}

// What one annotator writes: usually the answer, in a surface form the official
// normalization maps back to it ("Two", "two", "a circle", "Yes"); sometimes a wrong one.
std::string annotator_answer(const Question& q, ToyRng& rng, bool& correct) {
  correct = rng.bernoulli(0.9);
  std::string answer = correct ? q.answer : rng.pick(q.wrong);
  const double form = rng.uniform();
  if (q.answer_type == "number" && form < 0.15) {
    answer = kNumberWords[std::stoi(answer)];
  } else if (q.answer_type == "other" && form < 0.05) {
    answer = "a " + answer;
  } else if (form > 0.92) {
    answer = capitalize(answer);
  }
  return answer;
}

ojson vqa_annotation(const Question& q, int64_t image_id, int64_t question_id, ToyRng& rng,
                     WordCollector& words) {
  ojson answers = ojson::array();
  std::map<std::string, int> votes;  // canonical answer -> annotators
  for (int a = 1; a <= 10; ++a) {
    bool correct = false;
    const std::string answer = words.add(annotator_answer(q, rng, correct));
    const double c = rng.uniform();
    const std::string confidence = c < 0.8 ? "yes" : (c < 0.95 ? "maybe" : "no");
    answers.push_back({{"answer", answer}, {"answer_confidence", confidence}, {"answer_id", a}});
    std::string canonical = answer;
    std::transform(canonical.begin(), canonical.end(), canonical.begin(), ::tolower);
    if (canonical.rfind("a ", 0) == 0) canonical = canonical.substr(2);
    const auto word = std::find(kNumberWords.begin(), kNumberWords.end(), canonical);
    if (word != kNumberWords.end()) canonical = std::to_string(word - kNumberWords.begin());
    ++votes[canonical];
  }
  // The most common answer; ties go to the true answer, then to the first in order.
  std::string majority = q.answer;
  int best = votes.count(q.answer) ? votes.at(q.answer) : 0;
  for (const auto& [answer, count] : votes) {
    if (count > best) {
      majority = answer;
      best = count;
    }
  }
  return ojson{{"question_type", q.question_type}, {"multiple_choice_answer", majority},
               {"answers", std::move(answers)},    {"image_id", image_id},
               {"answer_type", q.answer_type},     {"question_id", question_id}};
}

std::string object_phrase(int color, int shape) {
  return fmt::format("a {} {}", kColors[color], kShapes[shape]);
}

std::string caption(const ToyScene& scene) {
  std::vector<std::string> parts;
  for (const ToyObject& o : scene.objects) parts.push_back(object_phrase(o.color, o.shape));
  std::string list = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    list += (i + 1 == parts.size() ? " and " : ", ") + parts[i];
  }
  return fmt::format("A picture of {} on a {} background.", list,
                     scene.textured ? "noisy" : "plain");
}

std::string count_sentence(size_t n) {
  return n == 1 ? "There is one object." : fmt::format("There are {} objects.", kNumberWords[n]);
}

// A hypothesis about `scene` with the given SNLI-VE label.
std::string hypothesis(const std::string& label, const ToyScene& scene, ToyRng& rng) {
  const ToyObject& o = rng.pick(scene.objects);
  const std::string present = kColors[o.color] + " " + kShapes[o.shape];
  if (label == "entailment") {
    switch (rng.uniform_int(0, 3)) {
      case 0: return fmt::format("There is a {}.", present);
      case 1: return fmt::format("The picture shows a {}.", present);
      case 2: return fmt::format("A {} is in the picture.", present);
      default: return count_sentence(scene.objects.size());
    }
  }
  if (label == "neutral") {
    switch (rng.uniform_int(0, 3)) {
      case 0: return fmt::format("The {} was drawn by a child.", present);
      case 1: return fmt::format("The {} is made of paper.", present);
      case 2: return fmt::format("Someone painted the {} yesterday.", present);
      default: return fmt::format("The {} is very heavy.", present);
    }
  }
  int color = 0, shape = 0;
  do {
    color = static_cast<int>(rng.uniform_int(0, 2));
    shape = static_cast<int>(rng.uniform_int(0, 2));
  } while (std::any_of(scene.objects.begin(), scene.objects.end(), [&](const ToyObject& p) {
    return p.color == color && p.shape == shape;
  }));
  const std::string absent = kColors[color] + " " + kShapes[shape];
  switch (rng.uniform_int(0, 3)) {
    case 0: return fmt::format("There is a {}.", absent);
    case 1: return fmt::format("The picture shows a {}.", absent);
    case 2: {
      size_t n = scene.objects.size();
      while (n == scene.objects.size()) n = static_cast<size_t>(rng.uniform_int(1, 4));
      return count_sentence(n);
    }
    default: return "The picture is empty.";
  }
}

}  // namespace

ojson write_vqa2(const std::filesystem::path& dir, const std::vector<ToyScene>& scenes,
                 const ToySuiteOptions& options, WordCollector& words) {
  ToyRng rng(options.seed, "vqa2");
  int64_t yes_no_counter = 0;
  ojson manifest = {{"format", "VQAv2"},
                    {"questions", ojson::object()},
                    {"annotations", ojson::object()},
                    {"images", ojson::object()},
                    {"counts", ojson::object()}};
  for (const std::string split : {"train2014", "val2014"}) {
    const bool train = split == "train2014";
    ojson questions = ojson::array(), annotations = ojson::array();
    std::vector<std::string> answers, types;
    for (const ToyScene& scene : scenes) {
      if (scene.train != train) continue;
      const int64_t image_id = 100 + 7 * scene.index;  // the COCO id of the same scene
      write_file(dir, fmt::format("vqa2/{0}/COCO_{0}_{1:012d}.jpg", split, image_id), scene.jpeg);
      for (int64_t j = 0; j < options.questions_per_image; ++j) {
        Question q;
        int kind = static_cast<int>((scene.index * options.questions_per_image + j) % 5);
        while (!make_question(kind, scene, rng, yes_no_counter, q)) kind = (kind + 1) % 5;
        const int64_t question_id = image_id * 1000 + j;
        questions.push_back({{"image_id", image_id},
                             {"question", words.add(q.text)},
                             {"question_id", question_id}});
        annotations.push_back(vqa_annotation(q, image_id, question_id, rng, words));
        answers.push_back(annotations.back()["multiple_choice_answer"]);
        types.push_back(q.answer_type);
      }
    }
    const ojson info = {{"description", "unitrain toy suite: questions about coloured shapes"},
                        {"version", "2.0"}};
    const ojson license = {{"name", "CC0-1.0"}, {"url", ""}};
    ojson qfile = {{"info", info},           {"task_type", "Open-Ended"},
                   {"data_type", "mscoco"},  {"license", license},
                   {"data_subtype", split},  {"questions", std::move(questions)}};
    ojson afile = {{"info", info},          {"license", license},
                   {"data_subtype", split}, {"annotations", std::move(annotations)},
                   {"data_type", "mscoco"}};
    const std::string key = train ? "train" : "val";
    const std::string qname = fmt::format("vqa2/v2_OpenEnded_mscoco_{}_questions.json", split);
    const std::string aname = fmt::format("vqa2/v2_mscoco_{}_annotations.json", split);
    write_file(dir, qname, qfile.dump());
    write_file(dir, aname, afile.dump());
    manifest["questions"][key] = qname;
    manifest["annotations"][key] = aname;
    manifest["images"][key] = "vqa2/" + split;
    manifest["counts"][key] = {{"questions", answers.size()},
                               {"answers", label_counts(answers)},
                               {"answer_types", label_counts(types)}};
  }
  return manifest;
}

ojson write_snli_ve(const std::filesystem::path& dir, const std::vector<ToyScene>& scenes,
                    const ToySuiteOptions& options, WordCollector& words) {
  ToyRng rng(options.seed, "snli_ve");
  const std::vector<std::string> labels = {"entailment", "neutral", "contradiction"};
  ojson manifest = {{"format", "SNLI-VE jsonl"}, {"files", ojson::object()},
                    {"images", "snli_ve/flickr30k_images"}, {"counts", ojson::object()}};
  for (const std::string split : {"train", "dev"}) {
    const bool train = split == "train";
    std::string lines;
    std::vector<std::string> golds;
    for (const ToyScene& scene : scenes) {
      if (scene.train != train) continue;
      const int64_t flickr_id = 1000000000 + 13 * scene.index;
      write_file(dir, fmt::format("snli_ve/flickr30k_images/{}.jpg", flickr_id), scene.jpeg);
      const std::string premise = words.add(caption(scene));
      // One hypothesis per label for every image, in a rotating order.
      for (int64_t k = 0; k < 3; ++k) {
        const std::string& label = labels[(scene.index + k) % 3];
        ojson line = {{"annotator_labels", {label}},
                      {"captionID", fmt::format("{}.jpg#0", flickr_id)},
                      {"gold_label", label},
                      {"pairID", fmt::format("{}.jpg#0r{}{}", flickr_id, k + 1, label[0])},
                      {"sentence1", premise},
                      {"sentence2", words.add(hypothesis(label, scene, rng))}};
        // The released files spell the key "Flikr30kID" with ".jpg"; newer copies use
        // "Flickr30K_ID" without it. Train uses the first, dev the second.
        if (train) {
          line["Flikr30kID"] = fmt::format("{}.jpg", flickr_id);
        } else {
          line["Flickr30K_ID"] = std::to_string(flickr_id);
        }
        lines += line.dump() + "\n";
        golds.push_back(label);
      }
    }
    const std::string name = fmt::format("snli_ve/snli_ve_{}.jsonl", split);
    write_file(dir, name, lines);
    manifest["files"][split] = name;
    manifest["counts"][split] = {{"pairs", golds.size()}, {"labels", label_counts(golds)}};
  }
  return manifest;
}

}  // namespace unitrain::toy
