// embed: answers one request with a trained unitrain model through the inference
// library, then the same request from several threads at once on the one loaded model.
//
//   embed RUN_OR_CHECKPOINT TASK [--image FILE] [--text TEXT] [--text-b TEXT] [--top N]
//
// Prints the model's tasks, then the prediction: "label score" lines, highest first
// (classification, VQA) or "label score x0 y0 x1 y1" lines (detection, image pixels).
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <unitrain/inference.h>

namespace inf = unitrain::inference;

// The best label's or box's score; -1 when the prediction has neither.
float top_score(const inf::Prediction& p) {
  if (!p.labels.empty()) return p.labels.front().score;
  return p.boxes.empty() ? -1.0f : p.boxes.front().score;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: embed RUN_OR_CHECKPOINT TASK [--image FILE] [--text TEXT] "
                 "[--text-b TEXT] [--top N]\n";
    return 2;
  }
  const std::string run = argv[1];
  const std::string task = argv[2];
  inf::Input input;
  size_t top = 5;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--image") input.image = inf::Image::from_file(argv[i + 1]);
    else if (flag == "--text") input.text = argv[i + 1];
    else if (flag == "--text-b") input.text_b = argv[i + 1];
    else if (flag == "--top") top = std::strtoul(argv[i + 1], nullptr, 10);
    else {
      std::cerr << "embed: unknown option " << flag << "\n";
      return 2;
    }
  }

  try {
    const inf::Model model = inf::Model::open(run);
    std::cout << "tasks:";
    for (const auto& name : model.tasks()) std::cout << " " << name;
    std::cout << "\n";

    const inf::Prediction prediction = model.predict(task, input);
    std::cout << "task " << prediction.task << " (" << prediction.kind << ")\n";
    for (size_t i = 0; i < prediction.labels.size() && i < top; ++i) {
      std::cout << prediction.labels[i].name << " " << prediction.labels[i].score << "\n";
    }
    for (size_t i = 0; i < prediction.boxes.size() && i < top; ++i) {
      const inf::Box& b = prediction.boxes[i];
      std::cout << b.label << " " << b.score << " " << b.x0 << " " << b.y0 << " " << b.x1 << " "
                << b.y1 << "\n";
    }

    // One model, several threads: each call runs its own forward pass.
    std::vector<std::thread> threads;
    std::vector<int> same(4, 0);
    for (size_t t = 0; t < same.size(); ++t) {
      threads.emplace_back([&, t] {
        const inf::Prediction again = model.predict(task, input);
        same[t] = top_score(again) == top_score(prediction);
      });
    }
    for (auto& thread : threads) thread.join();
    for (int s : same) {
      if (!s) {
        std::cerr << "embed: a concurrent call answered differently\n";
        return 1;
      }
    }
    std::cout << "threads: " << same.size() << " concurrent calls agree\n";
  } catch (const inf::Error& e) {
    std::cerr << "embed: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
