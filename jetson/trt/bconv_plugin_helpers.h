// TensorRT-independent part of the BinaryConv2d plugin (issue 8): the node attributes, their
// validation, the output-shape arithmetic, the workspace layout and the byte format of a
// serialized plugin. Header-only, C++14, no TensorRT or CUDA include, so the same code is
// unit-tested on machines without TensorRT (bconv_plugin_helpers_capi.cpp + tests/trt).
//
// The attributes are those of the ONNX node written by lcefr/convert/onnx_binary.py:
//   kernel_shape [KH, KW], strides [SH, SW], pads [top, left, bottom, right], group,
//   in_channels, pad_value (0|1)
// and its inputs x float [N, C, H, W], w_packed int32 [O, KH, KW, ceil(C/group/32)],
// multiplier float [O], bias float [O]; the output is float [N, O, OH, OW].
#ifndef LCEFR_TRT_BCONV_PLUGIN_HELPERS_H_
#define LCEFR_TRT_BCONV_PLUGIN_HELPERS_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../cuda/bconv_api.h"

namespace lcefr {
namespace trt {

enum Status {
  kOk = 0,
  kErrUnknownField = 1,   // a field name the plugin does not know
  kErrFieldLength = 2,    // a field with the wrong number of values
  kErrMissingField = 3,   // kernel_shape or in_channels not given
  kErrKernel = 4,         // kernel size < 1
  kErrStride = 5,         // stride < 1
  kErrPad = 6,            // pad < 0
  kErrGroup = 7,          // group < 1, in_channels not divisible by group
  kErrGroupChannels = 8,  // group > 1 and in_channels / group not a multiple of 32 (kernel limit)
  kErrInChannels = 9,     // in_channels < 1
  kErrPadValue = 10,      // pad_value not 0 or 1
  kErrSerialized = 11,    // serialized buffer too short, wrong magic or version
  kErrInputShape = 12,    // input tensors do not match the attributes
  kErrEmptyOutput = 13    // kernel larger than the padded input
};

inline const char* status_string(int status) {
  switch (status) {
    case kOk: return "ok";
    case kErrUnknownField: return "unknown field";
    case kErrFieldLength: return "field has the wrong number of values";
    case kErrMissingField: return "kernel_shape and in_channels are required";
    case kErrKernel: return "kernel_shape values must be >= 1";
    case kErrStride: return "strides must be >= 1";
    case kErrPad: return "pads must be >= 0";
    case kErrGroup: return "group must be >= 1 and divide in_channels";
    case kErrGroupChannels: return "in_channels / group must be a multiple of 32 when group > 1";
    case kErrInChannels: return "in_channels must be >= 1";
    case kErrPadValue: return "pad_value must be 0 or 1";
    case kErrSerialized: return "serialized BinaryConv2d data is corrupt or from another version";
    case kErrInputShape: return "input shapes do not match the BinaryConv2d attributes";
    case kErrEmptyOutput: return "kernel larger than the padded input";
    default: return "unknown status";
  }
}

struct Attrs {
  int32_t kernel_h = 0, kernel_w = 0;
  int32_t stride_h = 1, stride_w = 1;
  int32_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int32_t group = 1;
  int32_t in_channels = 0;
  int32_t pad_value = 0;
};

// The plugin fields, in the order the creator declares them, with their value counts.
constexpr int kNumFields = 6;
inline const char* field_name(int i) {
  static const char* const names[kNumFields] = {"kernel_shape", "strides",     "pads",
                                                "group",        "in_channels", "pad_value"};
  return (i >= 0 && i < kNumFields) ? names[i] : nullptr;
}
inline int field_length(int i) {
  static const int lengths[kNumFields] = {2, 2, 4, 1, 1, 1};
  return (i >= 0 && i < kNumFields) ? lengths[i] : 0;
}
inline int field_index(const char* name) {
  if (!name) return -1;
  for (int i = 0; i < kNumFields; ++i)
    if (strcmp(name, field_name(i)) == 0) return i;
  return -1;
}

// Sets one field from int32 values; `seen` (bit i = field i) records what was given.
inline int set_field(Attrs* a, unsigned* seen, const char* name, const int32_t* v, int length) {
  const int i = field_index(name);
  if (i < 0) return kErrUnknownField;
  if (!v || length != field_length(i)) return kErrFieldLength;
  switch (i) {
    case 0: a->kernel_h = v[0]; a->kernel_w = v[1]; break;
    case 1: a->stride_h = v[0]; a->stride_w = v[1]; break;
    case 2:
      a->pad_top = v[0]; a->pad_left = v[1]; a->pad_bottom = v[2]; a->pad_right = v[3];
      break;
    case 3: a->group = v[0]; break;
    case 4: a->in_channels = v[0]; break;
    default: a->pad_value = v[0]; break;
  }
  if (seen) *seen |= 1u << i;
  return kOk;
}

inline int validate(const Attrs& a) {
  if (a.kernel_h < 1 || a.kernel_w < 1) return kErrKernel;
  if (a.stride_h < 1 || a.stride_w < 1) return kErrStride;
  if (a.pad_top < 0 || a.pad_left < 0 || a.pad_bottom < 0 || a.pad_right < 0) return kErrPad;
  if (a.in_channels < 1) return kErrInChannels;
  if (a.group < 1 || a.in_channels % a.group) return kErrGroup;
  if (a.group > 1 && (a.in_channels / a.group) % 32) return kErrGroupChannels;
  if (a.pad_value != 0 && a.pad_value != 1) return kErrPadValue;
  return kOk;
}

// Validation after all fields were set: kernel_shape and in_channels are required, the others
// default to strides 1, pads 0, group 1, pad_value 0.
inline int finish(const Attrs& a, unsigned seen) {
  const unsigned required = (1u << 0) | (1u << 4);
  if ((seen & required) != required) return kErrMissingField;
  return validate(a);
}

inline int32_t words_for(int32_t channels) { return (channels + 31) / 32; }
inline int32_t group_words(const Attrs& a) { return words_for(a.in_channels / a.group); }

// Output size along one axis, or -1 when the kernel does not fit the padded input. The plugin
// builds the same expression with IExprBuilder: (in + pad_a + pad_b - k) floordiv s + 1.
inline int32_t out_size(int32_t in, int32_t k, int32_t s, int32_t pad_a, int32_t pad_b) {
  const int32_t span = in + pad_a + pad_b - k;
  if (in < 1 || span < 0 || s < 1) return -1;
  return span / s + 1;
}

// Output dims [N, O, OH, OW] of an input [N, C, H, W] with `out_channels` output channels.
inline int output_dims(const Attrs& a, const int32_t in_nchw[4], int32_t out_channels,
                       int32_t out_nchw[4]) {
  const int32_t oh = out_size(in_nchw[2], a.kernel_h, a.stride_h, a.pad_top, a.pad_bottom);
  const int32_t ow = out_size(in_nchw[3], a.kernel_w, a.stride_w, a.pad_left, a.pad_right);
  if (oh < 1 || ow < 1) return kErrEmptyOutput;
  out_nchw[0] = in_nchw[0];
  out_nchw[1] = out_channels;
  out_nchw[2] = oh;
  out_nchw[3] = ow;
  return kOk;
}

// Checks the four input shapes against the attributes; a dimension < 0 (unknown at build time)
// is not checked. x: 4 dims, w: 4 dims, multiplier and bias: 1 dim each.
inline int check_inputs(const Attrs& a, const int32_t x[4], const int32_t w[4], int32_t mult_len,
                        int32_t bias_len) {
  const int32_t o = w[0];
  if (x[1] >= 0 && x[1] != a.in_channels) return kErrInputShape;
  if (o >= 0 && (o < 1 || o % a.group)) return kErrInputShape;
  if ((w[1] >= 0 && w[1] != a.kernel_h) || (w[2] >= 0 && w[2] != a.kernel_w)) return kErrInputShape;
  if (w[3] >= 0 && w[3] != group_words(a)) return kErrInputShape;
  if (o >= 0 && ((mult_len >= 0 && mult_len != o) || (bias_len >= 0 && bias_len != o)))
    return kErrInputShape;
  if (x[2] >= 0 && out_size(x[2], a.kernel_h, a.stride_h, a.pad_top, a.pad_bottom) < 1)
    return kErrEmptyOutput;
  if (x[3] >= 0 && out_size(x[3], a.kernel_w, a.stride_w, a.pad_left, a.pad_right) < 1)
    return kErrEmptyOutput;
  return kOk;
}

// Launcher geometry for an input [N, C, H, W] and O output channels, NCHW float output. The
// derived fields are filled by lcefr_cuda_init_params.
inline lcefr_bconv_params to_params(const Attrs& a, const int32_t in_nchw[4], int32_t out_channels) {
  lcefr_bconv_params p;
  memset(&p, 0, sizeof(p));
  p.batch = in_nchw[0];
  p.in_c = in_nchw[1];
  p.in_h = in_nchw[2];
  p.in_w = in_nchw[3];
  p.out_c = out_channels;
  p.kernel_h = a.kernel_h;
  p.kernel_w = a.kernel_w;
  p.stride_h = a.stride_h;
  p.stride_w = a.stride_w;
  p.pad_top = a.pad_top;
  p.pad_left = a.pad_left;
  p.pad_bottom = a.pad_bottom;
  p.pad_right = a.pad_right;
  p.groups = a.group;
  p.pad_value = a.pad_value;
  p.out_layout = LCEFR_NCHW;
  return p;
}

// ---- workspace --------------------------------------------------------------------------------
// [packed activations int32 N*H*W*ceil(C/32)] and, for FP16 I/O, [x as float N*C*H*W]
// [output as float N*O*OH*OW]; each region starts on a 256-byte boundary.

constexpr size_t kAlign = 256;
inline size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

struct Workspace {
  size_t packed_offset, x_float_offset, out_float_offset, total;
};

inline Workspace workspace_layout(const Attrs& a, const int32_t in_nchw[4], int32_t out_channels,
                                  bool half_io) {
  Workspace ws = {0, 0, 0, 0};
  const size_t n = (size_t)in_nchw[0], c = (size_t)in_nchw[1];
  const size_t hw = (size_t)in_nchw[2] * (size_t)in_nchw[3];
  size_t offset = align_up(n * hw * (size_t)words_for((int32_t)c) * sizeof(int32_t));
  if (half_io) {
    int32_t out[4] = {0, 0, 0, 0};
    if (output_dims(a, in_nchw, out_channels, out) != kOk) return ws;
    ws.x_float_offset = offset;
    offset += align_up(n * c * hw * sizeof(float));
    ws.out_float_offset = offset;
    offset += align_up((size_t)out[0] * out[1] * out[2] * out[3] * sizeof(float));
  }
  ws.total = offset;
  return ws;
}

// ---- serialization ----------------------------------------------------------------------------
// Little-endian int32 words: magic, format version, then the 11 attribute values in the order of
// Attrs. The deserialized attributes are validated again.

constexpr int32_t kMagic = 0x42434e56;  // "BCNV"
constexpr int32_t kFormatVersion = 1;
constexpr int kSerializedWords = 2 + 11;

inline size_t serialization_size() { return kSerializedWords * sizeof(int32_t); }

inline void attrs_to_words(const Attrs& a, int32_t w[11]) {
  const int32_t v[11] = {a.kernel_h, a.kernel_w,   a.stride_h,   a.stride_w,
                         a.pad_top,  a.pad_left,   a.pad_bottom, a.pad_right,
                         a.group,    a.in_channels, a.pad_value};
  memcpy(w, v, sizeof(v));
}

inline Attrs words_to_attrs(const int32_t w[11]) {
  Attrs r;
  r.kernel_h = w[0]; r.kernel_w = w[1];
  r.stride_h = w[2]; r.stride_w = w[3];
  r.pad_top = w[4]; r.pad_left = w[5]; r.pad_bottom = w[6]; r.pad_right = w[7];
  r.group = w[8];
  r.in_channels = w[9];
  r.pad_value = w[10];
  return r;
}

inline void put_le32(unsigned char* out, int32_t value) {
  const uint32_t u = (uint32_t)value;
  out[0] = (unsigned char)(u & 0xff);
  out[1] = (unsigned char)((u >> 8) & 0xff);
  out[2] = (unsigned char)((u >> 16) & 0xff);
  out[3] = (unsigned char)((u >> 24) & 0xff);
}

inline int32_t get_le32(const unsigned char* in) {
  const uint32_t u = (uint32_t)in[0] | ((uint32_t)in[1] << 8) | ((uint32_t)in[2] << 16) |
                     ((uint32_t)in[3] << 24);
  int32_t v;
  memcpy(&v, &u, sizeof(v));
  return v;
}

// Writes serialization_size() bytes.
inline void serialize(const Attrs& a, void* buffer) {
  unsigned char* out = static_cast<unsigned char*>(buffer);
  int32_t w[11];
  attrs_to_words(a, w);
  put_le32(out, kMagic);
  put_le32(out + 4, kFormatVersion);
  for (int i = 0; i < 11; ++i) put_le32(out + 8 + 4 * i, w[i]);
}

inline int deserialize(const void* buffer, size_t length, Attrs* a) {
  if (!buffer || !a || length != serialization_size()) return kErrSerialized;
  const unsigned char* in = static_cast<const unsigned char*>(buffer);
  if (get_le32(in) != kMagic || get_le32(in + 4) != kFormatVersion) return kErrSerialized;
  int32_t w[11];
  for (int i = 0; i < 11; ++i) w[i] = get_le32(in + 8 + 4 * i);
  const Attrs r = words_to_attrs(w);
  const int status = validate(r);
  if (status != kOk) return status;
  *a = r;
  return kOk;
}

}  // namespace trt
}  // namespace lcefr

#endif  // LCEFR_TRT_BCONV_PLUGIN_HELPERS_H_
