// `unitrain weights inspect FILE`, `weights map` and `weights convert`: what a weights
// file holds, how a format's names reach an experiment's components, and conversion of
// a file into unitrain component archives (docs/pretrained_weights.md).
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "unitrain/checkpoint.h"
#include "unitrain/config.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"
#include "unitrain/weights/importer.h"

namespace unitrain::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string shape_of(const torch::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

void inspect(const std::string& file, bool as_json) {
  const auto tensors = weights::read_tensor_file(file);
  const auto layout = weights::guess_layout(tensors);
  int64_t values = 0;
  for (const auto& [name, t] : tensors.tensors) values += t.numel();
  if (as_json) {
    json out = {{"file", file},
                {"format", weights::format_name(tensors.format)},
                {"layout", layout},
                {"tensors", json::array()},
                {"values", tensors.values}};
    for (const auto& [name, t] : tensors.tensors) {
      out["tensors"].push_back({{"name", name}, {"shape", t.sizes().vec()},
                                {"dtype", std::string(c10::toString(t.scalar_type()))}});
    }
    std::cout << json_text(out, 2) << "\n";
    return;
  }
  std::cout << fmt::format("{}: {}, {} tensors, {} values; names look like {}\n", file,
                           weights::format_name(tensors.format), tensors.tensors.size(), values,
                           layout.empty() ? "no known format" : "\"" + layout + "\"");
  for (const auto& [name, t] : tensors.tensors) {
    std::cout << fmt::format("{:<72} {:<20} {}\n", name, shape_of(t), c10::toString(t.scalar_type()));
  }
  if (!tensors.values.empty()) {
    std::cout << "other entries:\n";
    for (const auto& [name, value] : tensors.values.items()) {
      auto text = json_text(value);
      text = shorten(text, 80);
      std::cout << fmt::format("{:<72} {}\n", name, text);
    }
  }
}

// The experiment with every init_from removed, and `init` put where `format` reads:
// on the model for mmf_unit, else on each component (or `only`) whose plugin reads it.
Experiment with_init(Experiment experiment, const json& init, const std::string& format,
                     const std::string& only) {
  json& model = experiment.json["model"];
  model.erase("init_from");
  auto each_block = [&](const std::function<void(const std::string&, json&)>& f) {
    for (auto& [name, block] : model["encoders"].items()) f("encoders/" + name, block);
    f(model.value("share_decoders", true) ? "decoder" : "decoders/*", model["decoder"]);
    for (auto& [task, block] : model["heads"].items()) f("heads/" + task, block);
  };
  each_block([](const std::string&, json& block) { block.erase("init_from"); });
  if (format == "mmf_unit") {
    model["init_from"] = init;
    return experiment;
  }
  UnitModel probe(experiment, registry_factory(Registry::global()), /*load_init_from=*/false);
  each_block([&](const std::string& name, json& block) {
    if (!only.empty() && only != name && !(name == "decoders/*" && only.rfind("decoders/", 0) == 0)) {
      return;
    }
    std::string component = name == "decoders/*" ? "decoders/" + probe->tasks().at(0) : name;
    const auto* importer =
        dynamic_cast<const weights::WeightImporter*>(probe->component(component).get());
    if (!importer) return;
    const auto formats = importer->weight_formats();
    if (std::find(formats.begin(), formats.end(), format) != formats.end()) block["init_from"] = init;
  });
  return experiment;
}

}  // namespace

void add_weights_command(CLI::App& app, CliContext& context) {
  struct Args {
    std::string file, format, experiment, component, out;
    std::vector<std::string> overrides;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* weights = app.add_subcommand("weights", "Inspect and convert pretrained weights");
  weights->require_subcommand(1);

  CLI::App* inspect_command = weights->add_subcommand(
      "inspect", "Print the tensors of a weights file (torch.save, safetensors, unitrain)");
  inspect_command->add_option("file", args->file, "Weights file")->required();
  inspect_command->add_flag("--json", args->json, "Print JSON");
  inspect_command->callback([args] { inspect(args->file, args->json); });

  CLI::App* map_command = weights->add_subcommand(
      "map", "Print how a format's names map onto an experiment's components");
  map_command->add_option("experiment", args->experiment, "Experiment JSON file")->required();
  map_command->add_option("--format", args->format, "torchvision_resnet, detr, hf_bert or mmf_unit")
      ->required();
  map_command->add_option("--component", args->component, "Only this component");
  map_command->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  map_command->callback([args, &context] {
    Experiment experiment = load_checked_experiment(context, args->experiment, args->overrides);
    UnitModel model(experiment, registry_factory(Registry::global()), /*load_init_from=*/false);
    for (const auto& name : model->component_names()) {
      if (!args->component.empty() && name != args->component) continue;
      const auto& spec = model->spec(name);
      const auto* importer = dynamic_cast<const weights::WeightImporter*>(model->component(name).get());
      std::vector<std::string> formats;
      if (importer) formats = importer->weight_formats();
      if (std::find(formats.begin(), formats.end(), args->format) == formats.end()) {
        std::cout << fmt::format("{} ({}): does not read {}\n\n", name, spec.type, args->format);
        continue;
      }
      weights::ImportContext context;
      context.format = args->format;
      context.component = name;
      context.tasks = model->tasks();
      if (name.rfind("heads/", 0) == 0 || name.rfind("decoders/", 0) == 0) {
        context.component_tasks = {name.substr(name.find('/') + 1)};
      } else {
        context.component_tasks = model->tasks();
      }
      weights::InitFrom init;
      init.format = args->format;
      weights::fill_task_names(init, model->tasks(), &context, args->experiment);
      std::cout << fmt::format("{} ({}):\n{}\n", name, spec.type,
                               importer->weight_map(context).table());
    }
  });

  CLI::App* convert_command = weights->add_subcommand(
      "convert", "Map a weights file onto an experiment's components and write unitrain "
                 "component archives (for init_from)");
  convert_command->add_option("file", args->file, "Weights file")->required();
  convert_command->add_option("--format", args->format, "torchvision_resnet, detr, hf_bert or mmf_unit")
      ->required();
  convert_command->add_option("--experiment", args->experiment,
                              "Experiment whose components receive the weights")
      ->required();
  convert_command->add_option("--component", args->component,
                              "Only this component; --out is then the file");
  convert_command->add_option("--out", args->out,
                              "Output folder (one <component>.pt each), or file with --component")
      ->required();
  convert_command->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  convert_command->callback([args, &context] {
    const auto& formats = weights::known_formats();
    if (args->format == "unitrain" ||
        std::find(formats.begin(), formats.end(), args->format) == formats.end()) {
      throw ConfigError(fmt::format("--format: expected torchvision_resnet, detr, hf_bert or "
                                    "mmf_unit, found '{}'",
                                    args->format));
    }
    Experiment experiment = load_checked_experiment(context, args->experiment, args->overrides);
    const json init = {{"file", fs::absolute(args->file).string()}, {"format", args->format},
                       {"strict", false}};
    experiment = with_init(experiment, init, args->format, args->component);
    UnitModel model(experiment, registry_factory(Registry::global()));
    std::map<std::string, size_t> loaded;
    for (const auto& report : model->import_reports()) {
      std::cout << report.summary(false) << "\n";
      if (report.component != "model") loaded[report.component] = report.loaded;
    }
    size_t written = 0;
    for (const auto& [name, count] : loaded) {
      if (count == 0 || (!args->component.empty() && name != args->component)) continue;
      fs::path out = args->out;
      if (args->component.empty()) {
        fs::create_directories(out);
        auto file = name;
        std::replace(file.begin(), file.end(), '/', '_');
        out /= file + ".pt";
      }
      save_component(export_component(*model, name), out);
      std::cout << fmt::format("wrote {} ({} tensors from the file) to {}\n", name, count, out.string());
      ++written;
    }
    if (written == 0) {
      throw CheckpointError(fmt::format("'{}' gave no tensor to any component{} of {} as {}", args->file,
                                        args->component.empty() ? "" : " named " + args->component,
                                        args->experiment, args->format));
    }
  });
}

}  // namespace unitrain::cli
