// `unitrain make-toy-suite DIR [--seed S] [--images N] ...`: writes the toy suite.
#include <chrono>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "unitrain/toy/toy_suite.h"

namespace unitrain::cli {

void add_toy_command(CLI::App& app, CliContext& /*context*/) {
  struct Args {
    std::string dir;
    toy::ToySuiteOptions options;
    bool reuse = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand(
      "make-toy-suite",
      "Write the toy suite (COCO, VG, VQAv2, SNLI-VE, GLUE files of coloured shapes and "
      "templated sentences, plus vocab.txt) into DIR");
  command->add_option("dir", args->dir, "Output folder")->required();
  command->add_option("--seed", args->options.seed, "Random seed; same seed, same bytes")
      ->capture_default_str();
  command->add_option("--images", args->options.images, "Images per image dataset, train + val")
      ->capture_default_str();
  command->add_option("--text", args->options.text_examples, "Rows per GLUE task, train + dev")
      ->capture_default_str();
  command->add_option("--image-size", args->options.image_size,
                       "Base image size S in pixels (frames from 2S/3 to 5S/4 a side)")
      ->capture_default_str();
  command->add_option("--val-fraction", args->options.val_fraction, "Share of val / dev records")
      ->capture_default_str();
  command->add_option("--questions", args->options.questions_per_image,
                      "VQAv2 questions per image")
      ->capture_default_str();
  command->add_flag("--reuse", args->reuse,
                    "Leave DIR as it is when its manifest.json records these options and this "
                    "generator version (a cache); otherwise write the suite");
  command->callback([args] {
    if (args->reuse && toy::toy_suite_is_current(args->dir, args->options)) {
      std::cout << fmt::format("reusing the toy suite in {} (same options and generator version)\n",
                               args->dir);
      return;
    }
    const auto start = std::chrono::steady_clock::now();
    const auto manifest = toy::make_toy_suite(args->dir, args->options);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << fmt::format("wrote the toy suite to {} in {:.1f} s: {} images per image "
                             "dataset, {} GLUE rows per task, vocabulary of {} tokens\n",
                             args->dir, seconds, args->options.images,
                             args->options.text_examples, manifest.at("vocab_size").get<int64_t>());
  });
}

}  // namespace unitrain::cli
