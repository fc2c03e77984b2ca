// GLUE-style TSV files (QNLI, MNLI, QQP, SST-2) built from templates whose labels can
// be learned from the text alone. Labels cycle through the label set before the rows
// are shuffled, so every split is balanced to within one row.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "toy/toy_internal.h"

namespace unitrain::toy {
namespace {

using ojson = nlohmann::ordered_json;
using Rows = std::vector<std::vector<std::string>>;

// ----- SST-2: sentiment of a short review; positive and negative adjectives differ.
const std::vector<std::string> kReviewNouns = {"movie", "film", "story", "plot", "script",
                                               "soundtrack", "ending", "cast", "dialogue",
                                               "performance"};
const std::vector<std::string> kPositive = {"wonderful", "delightful", "brilliant", "charming",
                                            "moving", "funny", "clever", "beautiful",
                                            "gripping", "fresh", "warm", "smart"};
const std::vector<std::string> kNegative = {"boring", "dull", "awful", "tedious", "clumsy",
                                            "bland", "messy", "painful", "lifeless",
                                            "predictable", "shallow", "forgettable"};
const std::vector<std::string> kIntensifiers = {"", "very ", "truly ", "really ", "quite "};

std::string sst2_sentence(bool positive, ToyRng& rng) {
  const auto& adjectives = positive ? kPositive : kNegative;
  const std::string& noun = rng.pick(kReviewNouns);
  const std::string& a1 = rng.pick(adjectives);
  std::string a2 = rng.pick(adjectives);
  while (a2 == a1) a2 = rng.pick(adjectives);
  const std::string& very = rng.pick(kIntensifiers);
  // Tokenized and lower case, as in the GLUE release.
  switch (rng.uniform_int(0, 5)) {
    case 0: return fmt::format("the {} is {}{} .", noun, very, a1);
    case 1: return fmt::format("the {} is {} and {} .", noun, a1, a2);
    case 2: return fmt::format("a {}{} , {} {} .", very, a1, a2, noun);
    case 3: return fmt::format("i found the {} {}{} .", noun, very, a1);
    case 4: return fmt::format("it is a {} {} from start to finish .", a1, noun);
    default: return fmt::format("what a {}{} {} !", very, a1, noun);
  }
}

// ----- QNLI: does the sentence answer the question? Same entity and same property.
const std::vector<std::string> kEntities = {"car", "house", "boat", "bird", "tree", "lamp",
                                            "chair", "kite", "train", "flower", "book", "cup"};
struct Property {
  std::string question;                // "{}" is the entity
  std::string statement;               // "{0}" entity, "{1}" value
  std::vector<std::string> values;
};
const std::vector<Property> kProperties = {
    {"What color is the {}?", "The {0} is {1}.",
     {"red", "blue", "green", "yellow", "white", "black", "orange", "purple"}},
    {"Where is the {}?", "The {0} is in the {1}.",
     {"garden", "kitchen", "park", "garage", "station", "forest", "library", "harbor"}},
    {"How big is the {}?", "The {0} is {1}.", {"tiny", "small", "large", "huge"}},
    {"Who owns the {}?", "The {0} belongs to {1}.",
     {"Anna", "Peter", "Maria", "David", "Lucy", "Omar", "Sara", "Tom"}}};
const std::vector<std::string> kPrefixes = {"", "According to the report, ", "Last year, ",
                                            "As everyone knows, "};

std::pair<std::string, std::string> qnli_pair(bool entailment, ToyRng& rng) {
  const auto entity = static_cast<size_t>(rng.uniform_int(0, kEntities.size() - 1));
  const auto property = static_cast<size_t>(rng.uniform_int(0, kProperties.size() - 1));
  size_t said_entity = entity, said_property = property;
  if (!entailment) {
    if (rng.bernoulli(0.5)) {
      while (said_entity == entity) said_entity = rng.uniform_int(0, kEntities.size() - 1);
    } else {
      while (said_property == property) said_property = rng.uniform_int(0, kProperties.size() - 1);
    }
  }
  const Property& p = kProperties[property];
  const Property& s = kProperties[said_property];
  std::string statement = fmt::format(fmt::runtime(s.statement), kEntities[said_entity], rng.pick(s.values));
  const std::string& prefix = rng.pick(kPrefixes);
  if (!prefix.empty()) {
    statement = prefix + static_cast<char>(std::tolower(static_cast<unsigned char>(statement[0]))) +
                statement.substr(1);
  }
  return {fmt::format(fmt::runtime(p.question), kEntities[entity]), statement};
}

// ----- MNLI: a premise about a person, a hypothesis that follows from it, contradicts
// it (other activity or place, nobody there, wrong count) or adds unknown facts.
const std::vector<std::string> kPeopleMatched = {"dog", "cat", "man", "woman", "child",
                                                 "girl", "boy", "farmer", "teacher", "doctor"};
const std::vector<std::string> kPeopleMismatched = {"pilot", "singer", "baker", "nurse",
                                                    "student", "driver"};
const std::vector<std::string> kActivities = {"runs", "sleeps", "sits", "swims", "dances",
                                              "reads", "sings", "waits"};
const std::vector<std::string> kPlaces = {"park", "kitchen", "garden", "library", "station",
                                          "street", "river", "office"};
const std::vector<std::string> kPremiseAdjectives = {"old", "young", "tall", "short", "quiet",
                                                     "busy"};
const std::vector<std::string> kMoods = {"hungry", "tired", "famous", "rich", "nervous",
                                         "lonely"};
const std::vector<std::string> kGenresMatched = {"fiction", "government", "slate", "telephone",
                                                 "travel"};
const std::vector<std::string> kGenresMismatched = {"facetoface", "letters", "nineeleven",
                                                    "oup", "verbatim"};

std::string other_than(const std::vector<std::string>& values, const std::string& value,
                       ToyRng& rng) {
  std::string out = value;
  while (out == value) out = rng.pick(values);
  return out;
}

std::pair<std::string, std::string> mnli_pair(const std::string& label,
                                              const std::vector<std::string>& people,
                                              ToyRng& rng) {
  const std::string& who = rng.pick(people);
  const std::string& act = rng.pick(kActivities);
  const std::string& where = rng.pick(kPlaces);
  const std::string premise = fmt::format("The {} {} {} in the {}.", rng.pick(kPremiseAdjectives),
                                          who, act, where);
  std::string h;
  if (label == "entailment") {
    switch (rng.uniform_int(0, 3)) {
      case 0: h = fmt::format("A {} {} in the {}.", who, act, where); break;
      case 1: h = fmt::format("The {} is in the {}.", who, where); break;
      case 2: h = fmt::format("The {} {}.", who, act); break;
      default: h = fmt::format("Someone {} in the {}.", act, where); break;
    }
  } else if (label == "contradiction") {
    switch (rng.uniform_int(0, 2)) {
      case 0: h = fmt::format("The {} {} in the {}.", who, other_than(kActivities, act, rng), where); break;
      case 1: h = fmt::format("The {} is in the {}.", who, other_than(kPlaces, where, rng)); break;
      default: h = fmt::format("Nobody is in the {}.", where); break;
    }
  } else {
    switch (rng.uniform_int(0, 2)) {
      case 0: h = fmt::format("The {} {} in the {} with a friend.", who, act, where); break;
      case 1: h = fmt::format("The {} is {}.", who, rng.pick(kMoods)); break;
      default: h = fmt::format("The {} {} every day.", who, act); break;
    }
  }
  return {premise, h};
}

// Simplified parse columns (the readers use sentence1 / sentence2).
std::string tokens(const std::string& sentence) {
  std::string out;
  for (char c : sentence) {
    if (c == '.' || c == ',' || c == '?') out += ' ';
    out += c;
  }
  return out;
}
std::string binary_parse(const std::string& s) { return "( " + tokens(s) + " )"; }
std::string parse(const std::string& s) { return "(ROOT (S " + tokens(s) + "))"; }

// ----- QQP: duplicates are paraphrases of one intent about one topic.
const std::vector<std::vector<std::string>> kIntents = {
    {"How do I learn {}?", "What is the best way to learn {}?", "How can I get better at {}?"},
    {"How do I start a career in {}?", "How can I begin working in {}?",
     "What should I do to get a job in {}?"},
    {"What is a good book about {}?", "Which books should I read about {}?",
     "Can you recommend a book on {}?"},
    {"Why is {} so difficult?", "What makes {} hard to learn?", "Why do people find {} hard?"}};
const std::vector<std::string> kTopics = {"python", "chemistry", "cooking", "painting", "music",
                                          "physics", "history", "economics", "chess",
                                          "photography", "design", "writing"};

std::pair<std::string, std::string> qqp_pair(bool duplicate, ToyRng& rng) {
  const auto intent = static_cast<size_t>(rng.uniform_int(0, kIntents.size() - 1));
  const std::string& topic = rng.pick(kTopics);
  const auto t1 = static_cast<size_t>(rng.uniform_int(0, 2));
  auto t2 = t1;
  size_t intent2 = intent;
  std::string topic2 = topic;
  if (duplicate) {
    while (t2 == t1) t2 = static_cast<size_t>(rng.uniform_int(0, 2));
  } else if (rng.bernoulli(0.5)) {
    topic2 = other_than(kTopics, topic, rng);  // same question about another topic
    t2 = static_cast<size_t>(rng.uniform_int(0, 2));
  } else {
    while (intent2 == intent) intent2 = static_cast<size_t>(rng.uniform_int(0, kIntents.size() - 1));
    t2 = static_cast<size_t>(rng.uniform_int(0, 2));
  }
  return {fmt::format(fmt::runtime(kIntents[intent][t1]), topic),
          fmt::format(fmt::runtime(kIntents[intent2][t2]), topic2)};
}

struct Split {
  int64_t train = 0, dev = 0;
};

Split split_sizes(const ToySuiteOptions& options) {
  const int64_t dev = std::llround(static_cast<double>(options.text_examples) * options.val_fraction);
  return {options.text_examples - dev, dev};
}

// Rows with labels labels[i % K], shuffled; `make` builds the row's fields for a label.
template <typename Make>
Rows balanced_rows(int64_t n, const std::vector<std::string>& labels, ToyRng& rng, Make make) {
  std::vector<std::string> order;
  for (int64_t i = 0; i < n; ++i) order.push_back(labels[i % labels.size()]);
  rng.shuffle(order);
  Rows rows;
  for (int64_t i = 0; i < n; ++i) rows.push_back(make(i, order[i]));
  return rows;
}

ojson write_task(const std::filesystem::path& dir, const std::string& name,
                 const std::vector<std::string>& header,
                 const std::vector<std::pair<std::string, Rows>>& files, size_t label_column) {
  ojson entry = {{"format", "GLUE TSV"}, {"files", ojson::object()}, {"counts", ojson::object()}};
  for (const auto& [file, rows] : files) {
    const std::string relative = fmt::format("glue/{}/{}", name, file);
    std::vector<std::string> labels;
    for (const auto& row : rows) labels.push_back(row.at(label_column));
    write_file(dir, relative, tsv(header, rows));
    entry["files"][file.substr(0, file.find('.'))] = relative;
    entry["counts"][file.substr(0, file.find('.'))] = {{"rows", rows.size()},
                                                        {"labels", label_counts(labels)}};
  }
  return entry;
}

}  // namespace

ojson write_glue(const std::filesystem::path& dir, const ToySuiteOptions& options,
                 WordCollector& words) {
  const Split sizes = split_sizes(options);
  ojson manifest = ojson::object();

  {  // SST-2
    ToyRng rng(options.seed, "sst2");
    auto make = [&](int64_t, const std::string& label) {
      return std::vector<std::string>{words.add(sst2_sentence(label == "1", rng)), label};
    };
    const Rows train = balanced_rows(sizes.train, {"0", "1"}, rng, make);
    const Rows dev = balanced_rows(sizes.dev, {"0", "1"}, rng, make);
    manifest["sst2"] = write_task(dir, "SST-2", {"sentence", "label"},
                                  {{"train.tsv", train}, {"dev.tsv", dev}}, 1);
  }
  {  // QNLI
    ToyRng rng(options.seed, "qnli");
    auto make = [&](int64_t i, const std::string& label) {
      auto [question, sentence] = qnli_pair(label == "entailment", rng);
      return std::vector<std::string>{std::to_string(i), words.add(question), words.add(sentence),
                                      label};
    };
    const std::vector<std::string> labels = {"entailment", "not_entailment"};
    const Rows train = balanced_rows(sizes.train, labels, rng, make);
    const Rows dev = balanced_rows(sizes.dev, labels, rng, make);
    manifest["qnli"] = write_task(dir, "QNLI", {"index", "question", "sentence", "label"},
                                  {{"train.tsv", train}, {"dev.tsv", dev}}, 3);
  }
  {  // QQP
    ToyRng rng(options.seed, "qqp");
    std::map<std::string, int64_t> qids;  // each distinct question gets one id
    auto qid = [&](const std::string& q) {
      return std::to_string(qids.emplace(q, static_cast<int64_t>(qids.size()) + 1).first->second);
    };
    int64_t next_id = 0;
    auto make = [&](int64_t, const std::string& label) {
      auto [q1, q2] = qqp_pair(label == "1", rng);
      return std::vector<std::string>{std::to_string(next_id++), qid(q1), qid(q2), words.add(q1),
                                      words.add(q2), label};
    };
    const Rows train = balanced_rows(sizes.train, {"0", "1"}, rng, make);
    const Rows dev = balanced_rows(sizes.dev, {"0", "1"}, rng, make);
    manifest["qqp"] = write_task(dir, "QQP", {"id", "qid1", "qid2", "question1", "question2",
                                              "is_duplicate"},
                                 {{"train.tsv", train}, {"dev.tsv", dev}}, 5);
  }
  {  // MNLI
    ToyRng rng(options.seed, "mnli");
    const std::vector<std::string> labels = {"entailment", "neutral", "contradiction"};
    int64_t prompt = 0;
    // label1..label5 on dev: label1 is the gold label, two of the other four may
    // disagree, so the gold label keeps a majority of at least three.
    auto row = [&](int64_t index, const std::string& label, bool mismatched, bool dev) {
      auto [s1, s2] = mnli_pair(label, mismatched ? kPeopleMismatched : kPeopleMatched, rng);
      const int64_t id = prompt++;
      std::vector<std::string> fields = {
          std::to_string(index), std::to_string(100000 + id),
          fmt::format("{}{}", 100000 + id, label[0]),
          rng.pick(mismatched ? kGenresMismatched : kGenresMatched),
          words.add(binary_parse(s1)), words.add(binary_parse(s2)), words.add(parse(s1)),
          words.add(parse(s2)), words.add(s1), words.add(s2), label};
      if (dev) {
        int disagreements = 0;
        for (int k = 0; k < 4; ++k) {
          if (disagreements < 2 && rng.bernoulli(0.15)) {
            fields.push_back(other_than(labels, label, rng));
            ++disagreements;
          } else {
            fields.push_back(label);
          }
        }
      }
      fields.push_back(label);
      return fields;
    };
    const Rows train = balanced_rows(sizes.train, labels, rng, [&](int64_t i, const std::string& l) {
      return row(i, l, false, false);
    });
    auto dev_rows = [&](bool mismatched) {
      Rows rows = balanced_rows(sizes.dev, labels, rng, [&](int64_t i, const std::string& l) {
        return row(i, l, mismatched, true);
      });
      // As in the release, a few pairs had no majority: gold label "-" (readers skip them).
      for (int64_t k = 0; k < std::max<int64_t>(1, sizes.dev / 50); ++k) {
        std::vector<std::string> r =
            row(static_cast<int64_t>(rows.size()), "neutral", mismatched, true);
        r[10] = "entailment";
        r[11] = "neutral";
        r[12] = "contradiction";
        r[13] = "entailment";
        r[14] = "neutral";
        r[15] = "-";
        rows.push_back(std::move(r));
      }
      return rows;
    };
    const Rows matched = dev_rows(false);
    const Rows mismatched = dev_rows(true);
    const std::vector<std::string> common = {
        "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
        "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1"};
    std::vector<std::string> train_header = common;
    train_header.push_back("gold_label");
    std::vector<std::string> dev_header = common;
    for (const char* extra : {"label2", "label3", "label4", "label5", "gold_label"}) {
      dev_header.push_back(extra);
    }
    ojson entry = write_task(dir, "MNLI", train_header, {{"train.tsv", train}}, 11);
    const ojson dev_entry = write_task(
        dir, "MNLI", dev_header,
        {{"dev_matched.tsv", matched}, {"dev_mismatched.tsv", mismatched}}, 15);
    entry["files"].update(dev_entry["files"]);
    entry["counts"].update(dev_entry["counts"]);
    manifest["mnli"] = entry;
  }
  return manifest;
}

}  // namespace unitrain::toy
