// `unitrain export RUN_OR_CHECKPOINT --component heads/vqa2 --out head.pt`: writes one
// component's weights and the options that built it, for "init_from" in another
// experiment. Needs no plugin: everything comes from the checkpoint.
#include <iostream>

#include "cli/commands.h"
#include "unitrain/checkpoint.h"
#include "unitrain/json_text.h"

namespace unitrain::cli {

void add_export_command(CLI::App& app, CliContext& /*context*/) {
  struct Args {
    std::string source;
    std::string component;
    std::string out;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand(
      "export", "Write one component of a trained model (weights + options) for init_from");
  command->add_option("run_or_checkpoint", args->source, "Run folder or checkpoint file")->required();
  command->add_option("--component", args->component,
                      "encoders/<name>, decoder, decoders/<task> or heads/<task>")
      ->required();
  command->add_option("--out", args->out, "Output file (.pt)")->required();
  command->callback([args] {
    const auto checkpoint = find_checkpoint(args->source);
    ComponentArchive component = export_component(checkpoint, args->component);
    save_component(component, args->out);
    int64_t count = 0;
    for (const auto& entry : component.state) count += entry.value().numel();
    std::cout << "exported " << component.component << " (" << component.kind << " '"
              << component.type << "', " << component.state.size() << " tensors, " << count
              << " values) from " << checkpoint.string() << " to " << args->out << "\n"
              << "use it in a block of the same type and options:\n"
              << json_text(nlohmann::json{{"type", component.type}, {"init_from", args->out}})
              << " plus options " << json_text(component.options) << "\n";
  });
}

}  // namespace unitrain::cli
