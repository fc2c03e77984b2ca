// Plugin entry point of the image encoder (kept apart from the module, as every plugin's).
#include "image_encoder.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace {

std::shared_ptr<unitrain::Encoder> make_image_encoder(const nlohmann::json& options) {
  auto o = unitrain::image::image_encoder_options_from_json(options, "");
  return std::make_shared<unitrain::image::ImageEncoderImpl>(o);
}

}  // namespace

UNITRAIN_PLUGIN(kImageEncoder, unitrain::Encoder, "encoder", "image", "0.1.0",
                "ResNet + DETR transformer image encoder (UniT)",
                unitrain::image::image_encoder_option_set().defaults_json().c_str(), kReadme,
                make_image_encoder);
UNITRAIN_EXPORT_PLUGINS(&kImageEncoder);
UNITRAIN_EXPORT_OPTION_TABLES(
    UNITRAIN_OPTION_TABLE("encoder", "image", &unitrain::image::image_encoder_option_set));
