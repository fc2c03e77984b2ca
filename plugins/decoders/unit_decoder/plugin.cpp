// Plugin entry point of the unit_decoder (kept apart from the module, as every plugin's).
#include "unit_decoder.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace {

std::shared_ptr<unitrain::Decoder> make_unit_decoder(const nlohmann::json& options) {
  auto o = unitrain::decoders::unit_decoder_options_from_json(options, "");
  return std::make_shared<unitrain::decoders::UnitDecoderImpl>(o);
}

}  // namespace

UNITRAIN_PLUGIN(kUnitDecoder, unitrain::Decoder, "decoder", "unit_decoder", "0.1.0",
                "DETR post-norm decoder with per-task learned queries (UniT)",
                unitrain::decoders::unit_decoder_option_set().defaults_json().c_str(), kReadme,
                make_unit_decoder);
UNITRAIN_EXPORT_PLUGINS(&kUnitDecoder);
UNITRAIN_EXPORT_OPTION_TABLES(UNITRAIN_OPTION_TABLE(
    "decoder", "unit_decoder", &unitrain::decoders::unit_decoder_option_set));
