// TensorRT plugin for the ONNX node BinaryConv2d (issue 8): IPluginV2DynamicExt + creator.
//
// One implementation for TensorRT 8.x (JetPack 4.6, Jetson Nano) and 10.x (desktop, Orin), where
// the V2 plugin interfaces are deprecated but still supported. The ONNX parser maps the node to
// the creator registered as "BinaryConv2d" version "1" (namespace ""), passes its attributes as
// INT32 plugin fields and its initializers (w_packed, multiplier, bias) as constant inputs.
//
//   inputs   0 x          float|half [N, C, H, W], linear
//            1 w_packed   int32 [O, KH, KW, ceil(C/group/32)]
//            2 multiplier float [O]
//            3 bias       float [O]
//   output   0 y          type of x, [N, O, OH, OW], y = multiplier * acc + bias
//
// Attribute parsing, shape arithmetic and serialization live in bconv_plugin_helpers.h.
#ifndef LCEFR_TRT_BINARY_CONV2D_PLUGIN_H_
#define LCEFR_TRT_BINARY_CONV2D_PLUGIN_H_

#include <string>
#include <vector>

#include "NvInferRuntime.h"
#include "NvInferVersion.h"
#include "bconv_plugin_helpers.h"

namespace lcefr {
namespace trt {

constexpr const char* kPluginName = "BinaryConv2d";
constexpr const char* kPluginVersion = "1";

class BinaryConv2dPlugin final : public nvinfer1::IPluginV2DynamicExt {
 public:
  BinaryConv2dPlugin(std::string const& layer_name, Attrs const& attrs);

  // IPluginV2
  char const* getPluginType() const noexcept override;
  char const* getPluginVersion() const noexcept override;
  int32_t getNbOutputs() const noexcept override;
  int32_t initialize() noexcept override;
  void terminate() noexcept override;
  size_t getSerializationSize() const noexcept override;
  void serialize(void* buffer) const noexcept override;
  void destroy() noexcept override;
  void setPluginNamespace(char const* plugin_namespace) noexcept override;
  char const* getPluginNamespace() const noexcept override;

  // IPluginV2Ext
  nvinfer1::DataType getOutputDataType(int32_t index, nvinfer1::DataType const* input_types,
                                       int32_t nb_inputs) const noexcept override;

  // IPluginV2DynamicExt
  nvinfer1::IPluginV2DynamicExt* clone() const noexcept override;
  nvinfer1::DimsExprs getOutputDimensions(int32_t output_index, nvinfer1::DimsExprs const* inputs,
                                          int32_t nb_inputs,
                                          nvinfer1::IExprBuilder& builder) noexcept override;
  bool supportsFormatCombination(int32_t pos, nvinfer1::PluginTensorDesc const* in_out,
                                 int32_t nb_inputs, int32_t nb_outputs) noexcept override;
  void configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nb_inputs,
                       nvinfer1::DynamicPluginTensorDesc const* out,
                       int32_t nb_outputs) noexcept override;
  size_t getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nb_inputs,
                          nvinfer1::PluginTensorDesc const* outputs,
                          int32_t nb_outputs) const noexcept override;
  int32_t enqueue(nvinfer1::PluginTensorDesc const* input_desc,
                  nvinfer1::PluginTensorDesc const* output_desc, void const* const* inputs,
                  void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

  Attrs const& attrs() const { return attrs_; }

 private:
  std::string layer_name_;
  std::string namespace_;
  Attrs attrs_;
};

class BinaryConv2dPluginCreator final : public nvinfer1::IPluginCreator {
 public:
  BinaryConv2dPluginCreator();

  char const* getPluginName() const noexcept override;
  char const* getPluginVersion() const noexcept override;
  nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
  nvinfer1::IPluginV2* createPlugin(char const* name,
                                    nvinfer1::PluginFieldCollection const* fc) noexcept override;
  nvinfer1::IPluginV2* deserializePlugin(char const* name, void const* data,
                                         size_t length) noexcept override;
  void setPluginNamespace(char const* plugin_namespace) noexcept override;
  char const* getPluginNamespace() const noexcept override;

 private:
  nvinfer1::IPluginV2* make_plugin(char const* name, int status, Attrs const& attrs) noexcept;

  std::vector<nvinfer1::PluginField> fields_;
  nvinfer1::PluginFieldCollection field_collection_;
  std::string namespace_;
};

}  // namespace trt
}  // namespace lcefr

#endif  // LCEFR_TRT_BINARY_CONV2D_PLUGIN_H_
