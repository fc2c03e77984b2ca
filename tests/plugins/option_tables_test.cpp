// README key tables are generated from the option declarations (unitrain/options.h), so
// the docs cannot drift: for every built plugin that declares its options, some
// plugins/<kind>/<folder>/README.md holds, between
//   <!-- options: begin KIND/NAME -->
//   <!-- options: end -->
// exactly the table the declaration generates (`unitrain plugins show NAME
// --options-markdown`). With UNITRAIN_UPDATE_OPTION_TABLES=1 the test rewrites the tables
// in the source tree instead of failing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "unitrain/option_table.h"
#include "unitrain/registry.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;

const char kBegin[] = "<!-- options: begin ";
const char kEnd[] = "<!-- options: end -->";
const char kRegenerate[] =
    "regenerate the tables with `UNITRAIN_UPDATE_OPTION_TABLES=1 build/tests/option_tables_test` "
    "(or paste `build/bin/unitrain plugins show NAME --options-markdown` between the markers)";

// A README holding a marked table.
struct Block {
  fs::path readme;
};

// Where the table of `plugin` ("KIND/NAME") lies in a README's `text`: from the first
// character after its begin line to its end marker; npos when not there.
std::pair<size_t, size_t> find_table(const std::string& text, const std::string& plugin) {
  const std::string begin = kBegin + plugin + " -->";
  const size_t at = text.find(begin);
  if (at == std::string::npos) return {std::string::npos, std::string::npos};
  const size_t start = text.find('\n', at) + 1;
  return {start, text.find(kEnd, start)};
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// "KIND/NAME" -> its block, over every plugins/*/*/README.md.
std::map<std::string, Block> marked_tables() {
  std::map<std::string, Block> blocks;
  const fs::path plugins = fs::path(UNITRAIN_SOURCE_DIR) / "plugins";
  for (const auto& entry : fs::recursive_directory_iterator(plugins)) {
    if (entry.path().filename() != "README.md") continue;
    const std::string text = read_text(entry.path());
    for (size_t at = text.find(kBegin); at != std::string::npos; at = text.find(kBegin, at + 1)) {
      const size_t name_start = at + sizeof(kBegin) - 1;
      const size_t close = text.find(" -->", name_start);
      const size_t end = text.find(kEnd, name_start);
      const std::string where = fs::relative(entry.path(), UNITRAIN_SOURCE_DIR).string();
      if (close == std::string::npos || end == std::string::npos) {
        ADD_FAILURE() << where << ": '" << kBegin << "' without its '-->' or '" << kEnd << "'";
        break;
      }
      const std::string name = text.substr(name_start, close - name_start);
      EXPECT_EQ(blocks.count(name), 0u) << where << ": a second table for " << name;
      blocks[name] = {entry.path()};
    }
  }
  return blocks;
}

// "KIND/NAME" of every plugin of the build -> the table it declares, if any. The
// libraries are loaded once per process.
const std::map<std::string, std::optional<std::string>>& declared_tables() {
  static const auto tables = [] {
    static Registry registry;
    std::vector<fs::path> libraries;
    for (const auto& entry : fs::directory_iterator(UNITRAIN_TEST_PLUGIN_DIR)) {
      if (entry.path().extension() == ".so") libraries.push_back(entry.path());
    }
    std::sort(libraries.begin(), libraries.end());
    for (const auto& library : libraries) registry.load_file(library);
    std::map<std::string, std::optional<std::string>> found;
    for (const auto& plugin : registry.list()) {
      found[plugin.kind + "/" + plugin.name] = declared_option_table(plugin);
    }
    return found;
  }();
  return tables;
}

TEST(OptionTables, ReadmeTablesAreTheDeclaredOnes) {
  const bool update = std::getenv("UNITRAIN_UPDATE_OPTION_TABLES") != nullptr;
  const auto& tables = declared_tables();
  const auto blocks = marked_tables();
  int declaring = 0;
  for (const auto& [plugin, table] : tables) {
    if (!table) continue;  // options read by hand: nothing to generate
    ++declaring;
    auto found = blocks.find(plugin);
    if (found == blocks.end()) {
      ADD_FAILURE() << plugin << " declares its options but no plugins/*/*/README.md has its "
                    << "table: add the lines '" << kBegin << plugin << " -->' and '" << kEnd
                    << "' to its README.md, then " << kRegenerate;
      continue;
    }
    const Block& block = found->second;
    std::string text = read_text(block.readme);  // afresh: an update may have moved it
    const auto [start, end] = find_table(text, plugin);
    const std::string current = text.substr(start, end - start);
    if (current == *table) continue;
    const std::string readme = fs::relative(block.readme, UNITRAIN_SOURCE_DIR).string();
    if (update) {
      text.replace(start, end - start, *table);
      std::ofstream(block.readme, std::ios::binary) << text;
      std::cout << "rewrote the table of " << plugin << " in " << readme << "\n";
      continue;
    }
    ADD_FAILURE() << readme << ": the options table of " << plugin
                  << " differs from the one its declaration generates; " << kRegenerate
                  << ".\nREADME:\n" << current << "generated:\n" << *table;
  }
  // The built-in libraries are there, and some declare their options.
  EXPECT_GT(declaring, 0) << "no plugin in " << UNITRAIN_TEST_PLUGIN_DIR << " declares options";
}

TEST(OptionTables, EveryMarkedTableNamesADeclaringPlugin) {
  const auto& tables = declared_tables();
  for (const auto& [plugin, block] : marked_tables()) {
    auto found = tables.find(plugin);
    const std::string readme = fs::relative(block.readme, UNITRAIN_SOURCE_DIR).string();
    if (found == tables.end()) {
      ADD_FAILURE() << readme << ": a table is marked for " << plugin
                    << ", but no plugin of that kind and name is built";
    } else if (!found->second) {
      ADD_FAILURE() << readme << ": a table is marked for " << plugin
                    << ", whose options are not declared (unitrain/options.h, "
                    << "UNITRAIN_EXPORT_OPTION_TABLES)";
    }
  }
}

}  // namespace
}  // namespace unitrain
