// extern "C" view of bconv_plugin_helpers.h for the ctypes tests in tests/trt (no TensorRT).
// Attributes travel as int32[11] in the order of lcefr::trt::Attrs.
//   g++ -std=c++14 -O1 -shared -fPIC bconv_plugin_helpers_capi.cpp -o liblcefr_trt_helpers.so
#include "../cuda/bconv_common.h"
#include "bconv_plugin_helpers.h"

using lcefr::trt::Attrs;

extern "C" {

const char* lcefr_trt_status_string(int status) { return lcefr::trt::status_string(status); }

int lcefr_trt_num_fields(void) { return lcefr::trt::kNumFields; }
const char* lcefr_trt_field_name(int i) { return lcefr::trt::field_name(i); }
int lcefr_trt_field_length(int i) { return lcefr::trt::field_length(i); }

// Parses n fields (names[i], values[i][0 .. lengths[i]) ) into attrs as the plugin creator does.
int lcefr_trt_parse(const char* const* names, const int32_t* const* values, const int32_t* lengths,
                    int n, int32_t attrs[11]) {
  Attrs a;
  unsigned seen = 0;
  for (int i = 0; i < n; ++i) {
    const int status = lcefr::trt::set_field(&a, &seen, names[i], values[i], lengths[i]);
    if (status != lcefr::trt::kOk) return status;
  }
  const int status = lcefr::trt::finish(a, seen);
  if (status == lcefr::trt::kOk) lcefr::trt::attrs_to_words(a, attrs);
  return status;
}

int lcefr_trt_validate(const int32_t attrs[11]) {
  return lcefr::trt::validate(lcefr::trt::words_to_attrs(attrs));
}

size_t lcefr_trt_serialization_size(void) { return lcefr::trt::serialization_size(); }

int lcefr_trt_serialize(const int32_t attrs[11], void* buffer) {
  const Attrs a = lcefr::trt::words_to_attrs(attrs);
  const int status = lcefr::trt::validate(a);
  if (status == lcefr::trt::kOk) lcefr::trt::serialize(a, buffer);
  return status;
}

int lcefr_trt_deserialize(const void* buffer, size_t length, int32_t attrs[11]) {
  Attrs a;
  const int status = lcefr::trt::deserialize(buffer, length, &a);
  if (status == lcefr::trt::kOk) lcefr::trt::attrs_to_words(a, attrs);
  return status;
}

int lcefr_trt_output_dims(const int32_t attrs[11], const int32_t in_nchw[4], int32_t out_channels,
                          int32_t out_nchw[4]) {
  return lcefr::trt::output_dims(lcefr::trt::words_to_attrs(attrs), in_nchw, out_channels, out_nchw);
}

int lcefr_trt_check_inputs(const int32_t attrs[11], const int32_t x[4], const int32_t w[4],
                           int32_t mult_len, int32_t bias_len) {
  return lcefr::trt::check_inputs(lcefr::trt::words_to_attrs(attrs), x, w, mult_len, bias_len);
}

// Workspace total; offsets[0..2] = packed, x float, output float.
size_t lcefr_trt_workspace(const int32_t attrs[11], const int32_t in_nchw[4], int32_t out_channels,
                           int half_io, size_t offsets[3]) {
  const lcefr::trt::Workspace ws = lcefr::trt::workspace_layout(
      lcefr::trt::words_to_attrs(attrs), in_nchw, out_channels, half_io != 0);
  offsets[0] = ws.packed_offset;
  offsets[1] = ws.x_float_offset;
  offsets[2] = ws.out_float_offset;
  return ws.total;
}

// The launcher geometry the plugin hands to the kernels, completed by the kernels' own
// init_params (bconv_common.h); returns its status, writes out_h, out_w and group_words.
int lcefr_trt_kernel_geometry(const int32_t attrs[11], const int32_t in_nchw[4],
                              int32_t out_channels, int32_t out[3]) {
  lcefr_bconv_params p = lcefr::trt::to_params(lcefr::trt::words_to_attrs(attrs), in_nchw, out_channels);
  const int status = lcefr::init_params(&p);
  out[0] = p.out_h;
  out[1] = p.out_w;
  out[2] = p.group_words;
  return status;
}

}  // extern "C"
