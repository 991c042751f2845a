#include "tools/moe_quantize/checkpoint_quantizer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/model/checkpoint_writer.h"
#include "core/model/decode_values.h"
#include "core/model/fp8_weight_writer.h"
#include "core/model/model_weights.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace moe {

absl::Status QuantizeCheckpoint(const std::string& input_directory,
                                const std::string& output_directory,
                                ScaleGranularity granularity, int num_shards) {
  namespace fs = std::filesystem;
  // Loading validates the whole input before anything is written.
  MOE_ASSIGN_OR_RETURN(auto model, ModelWeights::Load(input_directory));
  if (model->config().weight_format == WeightFormat::kFp8) {
    return absl::InvalidArgumentError(
        absl::StrCat(input_directory, " is already an FP8 checkpoint"));
  }
  for (const auto& [name, view] : model->checkpoint().tensors()) {
    if (view->dtype == DType::kF8E4M3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, " in ", view->file,
          " is already F8_E4M3 (its config.json lacks quantization_config)"));
    }
  }
  std::error_code error;
  fs::create_directories(output_directory, error);
  if (error) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create ", output_directory, ": ", error.message()));
  }
  CheckpointWriter writer(num_shards);
  // Tensors are read from the mapping and converted as the files are
  // written: memory holds one tensor at a time, not the checkpoint.
  for (const auto& [name, view] : model->checkpoint().tensors()) {
    if (!IsFp8LinearWeight(name) || view->shape.size() != 2) {
      writer.AddLazy(name, view->dtype, view->shape,
                     [view]() -> absl::StatusOr<std::vector<uint8_t>> {
                       return std::vector<uint8_t>(
                           view->data, view->data + view->num_bytes);
                     });
      continue;
    }
    AddFp8Weight(
        writer, name, view->shape[0], view->shape[1], granularity, [view] {
          std::vector<float> values(static_cast<size_t>(view->num_elements()));
          DecodeValues(view->dtype, view->data, view->num_elements(),
                       values.data());
          return values;
        });
  }
  MOE_RETURN_IF_ERROR(writer.Write(output_directory));
  MOE_ASSIGN_OR_RETURN(nlohmann::json config,
                       ReadJsonFile(input_directory + "/config.json"));
  if (model->config().architecture == Architecture::kSkyworkMoe) {
    WriteSkyworkGatingKeys(model->config(), &config);
  }
  config["quantization_config"] = {{"quant_method", "fp8"},
                                   {"activation_scheme", "dynamic"}};
  MOE_RETURN_IF_ERROR(
      WriteStringToFile(output_directory + "/config.json", config.dump(2)));
  for (const char* file :
       {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "generation_config.json"}) {
    const fs::path source = fs::path(input_directory) / file;
    if (!fs::exists(source)) continue;
    fs::copy_file(source, fs::path(output_directory) / file,
                  fs::copy_options::overwrite_existing, error);
    if (error) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot copy ", source.string(), ": ", error.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace moe
