// Plugin entry point of the text encoder (kept apart from the module, as every plugin's).
#include "text_encoder.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace {

std::shared_ptr<unitrain::Encoder> make_text_encoder(const nlohmann::json& options) {
  auto o = unitrain::text::text_encoder_options_from_json(options, "");
  return std::make_shared<unitrain::text::TextEncoderImpl>(o);
}

}  // namespace

UNITRAIN_PLUGIN(kTextEncoder, unitrain::Encoder, "encoder", "text", "0.1.0",
                "BERT-style text encoder with projections to the decoder width (UniT)",
                unitrain::text::text_encoder_option_set().defaults_json().c_str(), kReadme,
                make_text_encoder);
UNITRAIN_EXPORT_PLUGINS(&kTextEncoder);
UNITRAIN_EXPORT_OPTION_TABLES(
    UNITRAIN_OPTION_TABLE("encoder", "text", &unitrain::text::text_encoder_option_set));
