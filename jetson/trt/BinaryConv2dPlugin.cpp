// BinaryConv2d TensorRT plugin (see BinaryConv2dPlugin.h). enqueue packs the float input into
// the workspace and runs the binary convolution through the launcher of jetson/cuda/bconv_api.h.
#include "NvInferVersion.h"

// TensorRT 10 deprecates the V2 plugin interfaces (still supported there; TensorRT 8.x has no
// IPluginV3), so their deprecation warnings are silenced in this file only.
#if NV_TENSORRT_MAJOR >= 10 && defined(__GNUC__)
#define LCEFR_TRT_SILENCE_DEPRECATION 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

#include "BinaryConv2dPlugin.h"

#include <cstdio>
#include <new>

#include "../cuda/bconv_api.h"
#include "bconv_plugin_cast.h"

namespace lcefr {
namespace trt {

namespace {

using nvinfer1::DataType;
using nvinfer1::DimensionOperation;
using nvinfer1::IDimensionExpr;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;
using nvinfer1::TensorFormat;

constexpr int32_t kNbInputs = 4;

void report(char const* layer, char const* what) {
  std::fprintf(stderr, "[BinaryConv2d] %s: %s\n", layer && *layer ? layer : "(unnamed)", what);
}

// Dims of a TensorRT tensor as int32 [d0..d3] (TensorRT 10 uses int64 extents); -1 = unknown.
void dims4(nvinfer1::Dims const& d, int32_t out[4]) {
  for (int i = 0; i < 4; ++i) out[i] = i < d.nbDims ? static_cast<int32_t>(d.d[i]) : -1;
}

int32_t dim0(nvinfer1::Dims const& d) { return d.nbDims >= 1 ? static_cast<int32_t>(d.d[0]) : -1; }

// (in + pad_a + pad_b - k) floordiv s + 1, as helpers.h out_size.
IDimensionExpr const* spatial(nvinfer1::IExprBuilder& b, IDimensionExpr const& in, int32_t k,
                              int32_t s, int32_t pad_a, int32_t pad_b) {
  IDimensionExpr const* span = b.operation(DimensionOperation::kSUM, in, *b.constant(pad_a + pad_b - k));
  IDimensionExpr const* steps = b.operation(DimensionOperation::kFLOOR_DIV, *span, *b.constant(s));
  return b.operation(DimensionOperation::kSUM, *steps, *b.constant(1));
}

}  // namespace

// ---- plugin -----------------------------------------------------------------------------------

BinaryConv2dPlugin::BinaryConv2dPlugin(std::string const& layer_name, Attrs const& attrs)
    : layer_name_(layer_name), attrs_(attrs) {}

char const* BinaryConv2dPlugin::getPluginType() const noexcept { return kPluginName; }
char const* BinaryConv2dPlugin::getPluginVersion() const noexcept { return kPluginVersion; }
int32_t BinaryConv2dPlugin::getNbOutputs() const noexcept { return 1; }
int32_t BinaryConv2dPlugin::initialize() noexcept { return 0; }
void BinaryConv2dPlugin::terminate() noexcept {}
size_t BinaryConv2dPlugin::getSerializationSize() const noexcept { return serialization_size(); }
void BinaryConv2dPlugin::serialize(void* buffer) const noexcept { trt::serialize(attrs_, buffer); }
void BinaryConv2dPlugin::destroy() noexcept { delete this; }

void BinaryConv2dPlugin::setPluginNamespace(char const* plugin_namespace) noexcept {
  try {
    namespace_ = plugin_namespace ? plugin_namespace : "";
  } catch (...) {
  }
}

char const* BinaryConv2dPlugin::getPluginNamespace() const noexcept { return namespace_.c_str(); }

DataType BinaryConv2dPlugin::getOutputDataType(int32_t index, DataType const* input_types,
                                               int32_t nb_inputs) const noexcept {
  (void)index;
  return (input_types && nb_inputs > 0 && input_types[0] == DataType::kHALF) ? DataType::kHALF
                                                                             : DataType::kFLOAT;
}

nvinfer1::IPluginV2DynamicExt* BinaryConv2dPlugin::clone() const noexcept {
  BinaryConv2dPlugin* copy = new (std::nothrow) BinaryConv2dPlugin(*this);
  return copy;
}

nvinfer1::DimsExprs BinaryConv2dPlugin::getOutputDimensions(int32_t output_index,
                                                            nvinfer1::DimsExprs const* inputs,
                                                            int32_t nb_inputs,
                                                            nvinfer1::IExprBuilder& builder) noexcept {
  nvinfer1::DimsExprs out{};
  if (output_index != 0 || nb_inputs != kNbInputs || inputs[0].nbDims != 4 ||
      inputs[1].nbDims != 4) {
    report(layer_name_.c_str(), "expects inputs x [N,C,H,W], w_packed [O,KH,KW,words], multiplier, bias");
    return out;
  }
  out.nbDims = 4;
  out.d[0] = inputs[0].d[0];
  out.d[1] = inputs[1].d[0];
  out.d[2] = spatial(builder, *inputs[0].d[2], attrs_.kernel_h, attrs_.stride_h, attrs_.pad_top,
                     attrs_.pad_bottom);
  out.d[3] = spatial(builder, *inputs[0].d[3], attrs_.kernel_w, attrs_.stride_w, attrs_.pad_left,
                     attrs_.pad_right);
  return out;
}

bool BinaryConv2dPlugin::supportsFormatCombination(int32_t pos,
                                                   nvinfer1::PluginTensorDesc const* in_out,
                                                   int32_t nb_inputs, int32_t nb_outputs) noexcept {
  if (nb_inputs != kNbInputs || nb_outputs != 1 || pos < 0 || pos >= kNbInputs + 1) return false;
  nvinfer1::PluginTensorDesc const& d = in_out[pos];
  if (d.format != TensorFormat::kLINEAR) return false;
  switch (pos) {
    case 0:
#if defined(LCEFR_TRT_NO_HALF_IO)
      return d.type == DataType::kFLOAT;
#else
      return d.type == DataType::kFLOAT || d.type == DataType::kHALF;
#endif
    case 1: return d.type == DataType::kINT32;
    case 2:
    case 3: return d.type == DataType::kFLOAT;
    default: return d.type == in_out[0].type;
  }
}

void BinaryConv2dPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in,
                                         int32_t nb_inputs,
                                         nvinfer1::DynamicPluginTensorDesc const* out,
                                         int32_t nb_outputs) noexcept {
  (void)out;
  if (nb_inputs != kNbInputs || nb_outputs != 1) {
    report(layer_name_.c_str(), "expects 4 inputs and 1 output");
    return;
  }
  if (in[0].desc.dims.nbDims != 4 || in[1].desc.dims.nbDims != 4) {
    report(layer_name_.c_str(), "x and w_packed must be 4-D");
    return;
  }
  int32_t x[4], w[4];
  dims4(in[0].desc.dims, x);
  dims4(in[1].desc.dims, w);
  const int status = check_inputs(attrs_, x, w, dim0(in[2].desc.dims), dim0(in[3].desc.dims));
  if (status != kOk) report(layer_name_.c_str(), status_string(status));
}

size_t BinaryConv2dPlugin::getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs,
                                            int32_t nb_inputs,
                                            nvinfer1::PluginTensorDesc const* outputs,
                                            int32_t nb_outputs) const noexcept {
  (void)outputs;
  (void)nb_outputs;
  if (nb_inputs != kNbInputs) return 0;
  int32_t x[4];
  dims4(inputs[0].dims, x);
  return workspace_layout(attrs_, x, dim0(inputs[1].dims), inputs[0].type == DataType::kHALF).total;
}

int32_t BinaryConv2dPlugin::enqueue(nvinfer1::PluginTensorDesc const* input_desc,
                                    nvinfer1::PluginTensorDesc const* output_desc,
                                    void const* const* inputs, void* const* outputs,
                                    void* workspace, cudaStream_t stream) noexcept {
  (void)output_desc;
  int32_t x[4];
  dims4(input_desc[0].dims, x);
  const int32_t o = dim0(input_desc[1].dims);
  if (x[0] == 0) return 0;
  int32_t w[4];
  dims4(input_desc[1].dims, w);
  int status = check_inputs(attrs_, x, w, dim0(input_desc[2].dims), dim0(input_desc[3].dims));
  if (status != kOk) {
    report(layer_name_.c_str(), status_string(status));
    return 1;
  }
  lcefr_bconv_params p = to_params(attrs_, x, o);
  status = lcefr_cuda_init_params(&p);
  if (status != LCEFR_OK) {
    report(layer_name_.c_str(), lcefr::trt::status_string(kErrInputShape));
    return 1;
  }
  const bool half_io = input_desc[0].type == DataType::kHALF;
  const Workspace ws = workspace_layout(attrs_, x, o, half_io);
  char* base = static_cast<char*>(workspace);
  int32_t* packed = reinterpret_cast<int32_t*>(base + ws.packed_offset);
  void* s = static_cast<void*>(stream);
  const size_t in_count = (size_t)x[0] * x[1] * x[2] * x[3];
  const size_t out_count = (size_t)p.batch * p.out_c * p.out_h * p.out_w;

  const float* x_float = static_cast<const float*>(inputs[0]);
  float* y_float = static_cast<float*>(outputs[0]);
  if (half_io) {
    x_float = reinterpret_cast<float*>(base + ws.x_float_offset);
    y_float = reinterpret_cast<float*>(base + ws.out_float_offset);
    status = lcefr_trt_half_to_float(inputs[0], const_cast<float*>(x_float), in_count, s);
    if (status != LCEFR_OK) return 1;
  }
  status = lcefr_cuda_pack_activations(x_float, LCEFR_NCHW, x[0], x[2], x[3], x[1], packed, s);
  if (status == LCEFR_OK)
    status = lcefr_cuda_bconv2d(&p, packed, static_cast<const int32_t*>(inputs[1]),
                                static_cast<const float*>(inputs[2]),
                                static_cast<const float*>(inputs[3]), nullptr, y_float, nullptr,
                                LCEFR_PATH_AUTO, nullptr, s);
  if (status == LCEFR_OK && half_io)
    status = lcefr_trt_float_to_half(y_float, outputs[0], out_count, s);
  if (status != LCEFR_OK) {
    report(layer_name_.c_str(), "kernel launch failed");
    return 1;
  }
  return 0;
}

// ---- creator ----------------------------------------------------------------------------------

BinaryConv2dPluginCreator::BinaryConv2dPluginCreator() {
  for (int i = 0; i < kNumFields; ++i)
    fields_.emplace_back(field_name(i), nullptr, PluginFieldType::kINT32, field_length(i));
  field_collection_.nbFields = static_cast<int32_t>(fields_.size());
  field_collection_.fields = fields_.data();
}

char const* BinaryConv2dPluginCreator::getPluginName() const noexcept { return kPluginName; }
char const* BinaryConv2dPluginCreator::getPluginVersion() const noexcept { return kPluginVersion; }

nvinfer1::PluginFieldCollection const* BinaryConv2dPluginCreator::getFieldNames() noexcept {
  return &field_collection_;
}

nvinfer1::IPluginV2* BinaryConv2dPluginCreator::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc) noexcept {
  try {
    Attrs attrs;
    unsigned seen = 0;
    for (int32_t i = 0; fc && i < fc->nbFields; ++i) {
      PluginField const& f = fc->fields[i];
      if (f.type != PluginFieldType::kINT32) {
        report(name, "plugin fields must be INT32");
        return nullptr;
      }
      const int status =
          set_field(&attrs, &seen, f.name, static_cast<const int32_t*>(f.data), f.length);
      if (status != kOk) {
        std::fprintf(stderr, "[BinaryConv2d] %s: field %s: %s\n", name ? name : "(unnamed)",
                     f.name ? f.name : "(null)", status_string(status));
        return nullptr;
      }
    }
    return make_plugin(name, finish(attrs, seen), attrs);
  } catch (...) {
    report(name, "out of memory");
    return nullptr;
  }
}

nvinfer1::IPluginV2* BinaryConv2dPluginCreator::deserializePlugin(char const* name, void const* data,
                                                                  size_t length) noexcept {
  Attrs attrs;
  const int status = deserialize(data, length, &attrs);
  return make_plugin(name, status, attrs);
}

// The shared tail of createPlugin and deserializePlugin: report a bad status, or allocate the
// plugin in this creator's namespace.
nvinfer1::IPluginV2* BinaryConv2dPluginCreator::make_plugin(char const* name, int status,
                                                            Attrs const& attrs) noexcept {
  if (status != kOk) {
    report(name, status_string(status));
    return nullptr;
  }
  try {
    BinaryConv2dPlugin* plugin = new BinaryConv2dPlugin(name ? name : "", attrs);
    plugin->setPluginNamespace(namespace_.c_str());
    return plugin;
  } catch (...) {
    report(name, "out of memory");
    return nullptr;
  }
}

void BinaryConv2dPluginCreator::setPluginNamespace(char const* plugin_namespace) noexcept {
  try {
    namespace_ = plugin_namespace ? plugin_namespace : "";
  } catch (...) {
  }
}

char const* BinaryConv2dPluginCreator::getPluginNamespace() const noexcept {
  return namespace_.c_str();
}

}  // namespace trt
}  // namespace lcefr

namespace {
using lcefr::trt::BinaryConv2dPluginCreator;
REGISTER_TENSORRT_PLUGIN(BinaryConv2dPluginCreator);
}  // namespace

#if defined(LCEFR_TRT_SILENCE_DEPRECATION)
#pragma GCC diagnostic pop
#endif
