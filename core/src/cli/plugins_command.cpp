// `unitrain plugins [--kind K] [--json]` and `unitrain plugins show NAME
// [--options-markdown]`.
#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "unitrain/config.h"
#include "unitrain/json_text.h"
#include "unitrain/option_table.h"
#include "unitrain/registry.h"

namespace unitrain::cli {
namespace {

// "  (from --plugin-dir)", or nothing when the origin is not known.
std::string origin_text(const PluginInfo& p) {
  return p.origin.empty() ? "" : fmt::format("  (from {})", p.origin);
}

void print_table(const std::vector<PluginInfo>& plugins) {
  size_t kind_w = 4, name_w = 4, version_w = 7;
  for (const auto& p : plugins) {
    kind_w = std::max(kind_w, p.kind.size());
    name_w = std::max(name_w, p.name.size());
    version_w = std::max(version_w, p.version.size());
  }
  std::cout << fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", "KIND", kind_w, "NAME", name_w,
                           "VERSION", version_w, "DESCRIPTION / FILE");
  for (const auto& p : plugins) {
    std::cout << fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n{:<{}}  {}{}\n", p.kind, kind_w, p.name,
                             name_w, p.version, version_w, p.description, "",
                             kind_w + name_w + version_w + 4, p.file, origin_text(p));
  }
  std::cout << fmt::format("{} plugin(s)\n", plugins.size());
}

}  // namespace

void add_plugins_command(CLI::App& app, CliContext& context) {
  struct Args {
    std::string kind;
    bool json = false;
    bool options_markdown = false;
    std::string show_name;
  };
  auto args = std::make_shared<Args>();
  CLI::App* plugins = app.add_subcommand("plugins", "List the loaded plugins");
  plugins->add_option("--kind", args->kind, "Only plugins of this kind (encoder, decoder, head, dataset, ...)");
  plugins->add_flag("--json", args->json, "Print a JSON array of {kind, name, version, file, origin, description}");
  CLI::App* show = plugins->add_subcommand("show", "Print a plugin's default options and README");
  show->add_option("name", args->show_name, "Plugin name")->required();
  show->add_option("--kind", args->kind, "Kind, when several kinds have a plugin of that name");
  show->add_flag("--options-markdown", args->options_markdown,
                 "Print only the README key table generated from the plugin's option declaration");

  plugins->callback([args, show, &context] {
    load_plugins(context);
    Registry& registry = Registry::global();
    if (show->parsed()) {
      std::vector<const PluginInfo*> found = registry.find_any(args->show_name);
      if (!args->kind.empty()) {
        found.clear();
        found.push_back(&registry.find(args->kind, args->show_name));
      }
      if (found.empty()) {
        std::vector<std::string> names;
        for (const auto& p : registry.list()) names.push_back(p.name);
        throw RegistryError(fmt::format("no plugin named '{}'; registered: {}", args->show_name,
                                        fmt::join(nearest_first(args->show_name, names), ", ")));
      }
      if (found.size() > 1 && args->kind.empty()) {
        // A dataset's preparer (unitrain/prepare.h) shares its name and its library: the
        // name means the dataset (--kind preparer shows the preparer).
        std::vector<const PluginInfo*> main;
        for (const auto* p : found) {
          const bool companion =
              p->kind == "preparer" && std::any_of(found.begin(), found.end(), [&](const auto* q) {
                return q->kind == "dataset" && q->file == p->file;
              });
          if (!companion) main.push_back(p);
        }
        found = main;
      }
      if (found.size() > 1) {
        std::vector<std::string> kinds;
        for (const auto* p : found) kinds.push_back(p->kind);
        throw RegistryError(fmt::format("'{}' names plugins of several kinds ({}); add --kind",
                                        args->show_name, fmt::join(kinds, ", ")));
      }
      const PluginInfo& p = *found.front();
      if (args->options_markdown) {
        auto table = declared_option_table(p);
        if (!table) {
          throw RegistryError(fmt::format(
              "{} '{}' ({}) does not declare its options (unitrain/options.h, "
              "UNITRAIN_EXPORT_OPTION_TABLES): its README's key table is written by hand",
              p.kind, p.name, p.file));
        }
        std::cout << *table;
        return;
      }
      std::cout << fmt::format("{} '{}' {}  ({}){}\n{}\n\nDefault options:\n{}\n", p.kind,
                               p.name, p.version, p.file, origin_text(p), p.description,
                               json_text(p.defaults, 2));
      if (!p.readme.empty()) std::cout << "\n" << p.readme << "\n";
      return;
    }
    if (!args->kind.empty()) {
      auto kinds = registry.kinds();
      if (std::find(kinds.begin(), kinds.end(), args->kind) == kinds.end()) {
        throw RegistryError(fmt::format("no plugins of kind '{}'; kinds loaded: {}", args->kind,
                                        fmt::join(kinds, ", ")));
      }
    }
    auto list = registry.list(args->kind);
    if (args->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& p : list) {
        out.push_back({{"kind", p.kind}, {"name", p.name}, {"version", p.version},
                       {"file", p.file}, {"origin", p.origin}, {"description", p.description}});
      }
      std::cout << json_text(out, 2) << "\n";
    } else {
      print_table(list);
    }
  });
}

}  // namespace unitrain::cli
