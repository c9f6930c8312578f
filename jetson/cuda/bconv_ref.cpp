// CPU reference of the binary convolution: the C API of bconv_api.h (lcefr_ref_*) built from the
// same per-element functions as the CUDA kernels (bconv_common.h). Single-threaded, plain loops
// in the kernels' order; meant as an oracle and for CPU execution of BinaryConv2d ONNX nodes.
//
//   g++ -std=c++14 -O2 -fPIC -shared bconv_ref.cpp -o liblcefr_bconv_ref.so
#include <vector>

#include "bconv_common.h"

namespace {

using lcefr::WindowSums;

const uint32_t* as_words(const int32_t* p) { return reinterpret_cast<const uint32_t*>(p); }

// One output element along the path the device would take.
WindowSums element_sums(const lcefr_bconv_params& p, int path, const uint32_t* x_img,
                        const uint32_t* w_o, int group, int oy, int ox) {
  if (path == LCEFR_PATH_POPC) return lcefr::window_sums(p, x_img, w_o, group, oy, ox);
  // Tensor-core kernels: K loop over taps x chunks of 4 words, as bconv_bmma_kernel runs it.
  int32_t mma_xor = 0, mma_and = 0;
  const int chunks = lcefr::chunks_per_tap(p);
  for (int ky = 0; ky < p.kernel_h; ++ky)
    for (int kx = 0; kx < p.kernel_w; ++kx)
      for (int q = 0; q < chunks; ++q)
        for (int k = 0; k < 4; ++k) {
          const int j = 4 * q + k;
          const uint32_t a = lcefr::mma_act_word(p, x_img, group, oy, ox, ky, kx, j);
          const uint32_t b = lcefr::mma_weight_word(p, w_o, ky, kx, j);
          mma_xor += lcefr::popc(a ^ b);
          mma_and += lcefr::popc(a & b);
        }
  WindowSums s = lcefr::window_input_sums(p, x_img, group, oy, ox);
  const int32_t w_pad = lcefr::weight_pop(p, w_o, oy, ox, false);
  if (path == LCEFR_PATH_BMMA_XOR) {
    s.pop_xor = lcefr::pop_xor_from_mma_xor(p, mma_xor, w_pad);
  } else {
    const int32_t w_all = lcefr::weight_pop(p, w_o, oy, ox, true);
    s.pop_xor = lcefr::pop_xor_from_mma_and(p, mma_and, s.pop_x, w_all, w_pad);
  }
  return s;
}

}  // namespace

extern "C" {

int lcefr_ref_abi_version(void) { return LCEFR_BCONV_ABI_VERSION; }

const char* lcefr_ref_strerror(int status) { return lcefr::status_string(status); }

int lcefr_ref_init_params(lcefr_bconv_params* p) { return lcefr::init_params(p); }

int lcefr_ref_pack_activations(const float* x, int layout, int n, int h, int w, int c,
                               int32_t* out) {
  if (!x || !out) return LCEFR_E_NULL;
  if (n < 1 || h < 1 || w < 1 || c < 1) return LCEFR_E_SHAPE;
  if (layout != LCEFR_NHWC && layout != LCEFR_NCHW) return LCEFR_E_LAYOUT;
  const int words = lcefr::words_for(c);
  const size_t hw = (size_t)h * w;
  for (int b = 0; b < n; ++b)
    for (size_t pix = 0; pix < hw; ++pix)
      for (int j = 0; j < words; ++j) {
        const float* row;
        ptrdiff_t stride;
        if (layout == LCEFR_NHWC) {
          row = x + ((size_t)b * hw + pix) * c;
          stride = 1;
        } else {
          row = x + (size_t)b * c * hw + pix;
          stride = (ptrdiff_t)hw;
        }
        out[((size_t)b * hw + pix) * words + j] = (int32_t)lcefr::pack_word(row, c, stride, j);
      }
  return LCEFR_OK;
}

int lcefr_ref_pack_weights(const float* w, int kh, int kw, int cg, int o, int32_t* out) {
  if (!w || !out) return LCEFR_E_NULL;
  if (kh < 1 || kw < 1 || cg < 1 || o < 1) return LCEFR_E_SHAPE;
  const int words = lcefr::words_for(cg);
  for (int oc = 0; oc < o; ++oc)
    for (int t = 0; t < kh * kw; ++t)
      for (int j = 0; j < words; ++j)
        out[((size_t)oc * kh * kw + t) * words + j] =
            (int32_t)lcefr::pack_word(w + (size_t)t * cg * o + oc, cg, (ptrdiff_t)o, j);
  return LCEFR_OK;
}

int lcefr_ref_select_path(const lcefr_bconv_params* p, int cc_major, int cc_minor, int requested) {
  if (!p) return -1;
  return lcefr::select_path(*p, cc_major, cc_minor, requested);
}

int lcefr_ref_bconv2d(const lcefr_bconv_params* pp, const int32_t* x_packed,
                      const int32_t* w_packed, const float* multiplier, const float* bias,
                      const float* adabin_scale, int32_t* acc_out, float* out,
                      int32_t* packed_out, int path) {
  if (!pp || !x_packed || !w_packed) return LCEFR_E_NULL;
  lcefr_bconv_params p = *pp;
  const int status = lcefr::init_params(&p);
  if (status != LCEFR_OK) return status;
  if (path == LCEFR_PATH_AUTO) path = LCEFR_PATH_POPC;
  if (path != LCEFR_PATH_POPC && path != LCEFR_PATH_BMMA_XOR && path != LCEFR_PATH_BMMA_AND)
    return LCEFR_E_PATH;

  const uint32_t* x = as_words(x_packed);
  const uint32_t* wt = as_words(w_packed);
  const size_t img_words = (size_t)p.in_h * p.in_w * p.in_words;
  std::vector<float> row(p.out_c);
  for (int n = 0; n < p.batch; ++n)
    for (int oy = 0; oy < p.out_h; ++oy)
      for (int ox = 0; ox < p.out_w; ++ox) {
        for (int o = 0; o < p.out_c; ++o) {
          const int group = o / p.group_out_c;
          const WindowSums s = element_sums(p, path, x + n * img_words,
                                            wt + lcefr::weight_offset(p, o), group, oy, ox);
          const int32_t acc = lcefr::accumulator(p, s);
          const int32_t box = lcefr::boxsum(p, s);
          row[o] = lcefr::epilogue(acc, box, o, multiplier, bias, adabin_scale);
          if (acc_out) acc_out[(((size_t)n * p.out_h + oy) * p.out_w + ox) * p.out_c + o] = acc;
          if (out) out[lcefr::out_index(p, n, oy, ox, o)] = row[o];
        }
        if (packed_out)
          for (int j = 0; j < p.out_words; ++j)
            packed_out[lcefr::packed_out_index(p, n, oy, ox, j)] =
                (int32_t)lcefr::pack_word(row.data(), p.out_c, 1, j);
      }
  return LCEFR_OK;
}

}  // extern "C"
