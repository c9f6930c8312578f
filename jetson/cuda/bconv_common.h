// Per-element code of the binary convolution, shared by the CUDA kernels (nvcc) and the CPU
// reference (g++): packing one word, one output element's popcounts, the tensor-core correction
// terms and the fused epilogue. C++14, nothing newer than CUDA 10.2.
//
// Arithmetic. With x, w in {-1,+1}^K packed as bits b (1 = -1):
//   x . w = K - 2 popc(bx XOR bw)
// summed over the valid taps of a window. Word tails are 0 in both operands, so their XOR is 0.
// Padded taps: pad_value 1 -> the activation is +1 (bit 0), the tap counts K = Cg bits and adds
// popc(bw); pad_value 0 -> the tap is skipped (contributes 0, K_valid excludes it).
//
// AdaBin (EffBin eq. 9; Tu et al., arXiv:2208.08084). With a_b = alpha_a s_a + beta_a and
// w_b[o] = alpha_w[o] s_w + beta_w[o] (s in {-1,+1}):
//   a_b (*) w_b = alpha_a alpha_w (s_a (*) s_w) + alpha_a beta_w (s_a (*) 1) + g(w)
//   g(w)[o]     = beta_a (alpha_w[o] sum(s_w[o]) + beta_w[o] KH KW Cg)
// where s_a (*) s_w is the accumulator and s_a (*) 1 the box sum of the binarized input over
// the window (padded taps +1 for pad_value 1, 0 for pad_value 0). With a folded BatchNorm
// y = bn_scale (.) + bn_shift the fused output out = multiplier acc + adabin_scale boxsum + bias
// takes multiplier = bn_scale alpha_a alpha_w, adabin_scale = bn_scale alpha_a beta_w and
// bias = bn_scale g(w) + bn_shift. g(w) is position independent: a padded tap is a_b =
// alpha_a + beta_a (pad_value 1) or a_b = beta_a (pad_value 0, i.e. zero padding when beta_a = 0,
// as with lcefr's AdaBinWeight + sign activations). The weight bits are the signs of
// w - beta_w[o].
#ifndef LCEFR_BCONV_COMMON_H_
#define LCEFR_BCONV_COMMON_H_

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "bconv_api.h"

#if defined(__CUDACC__)
#define LCEFR_HD __host__ __device__ __forceinline__
#else
#define LCEFR_HD inline
#endif

namespace lcefr {

// ---- bits -------------------------------------------------------------------------------------

LCEFR_HD int popc(uint32_t v) {
#if defined(__CUDA_ARCH__)
  return __popc(v);
#else
  return __builtin_popcount(v);
#endif
}

// 1 for -1 (v < 0), 0 for +1 (v >= 0, -0.0 and NaN included).
LCEFR_HD uint32_t sign_bit(float v) { return v < 0.0f ? 1u : 0u; }

// Valid bits of the last word of a row of `channels` channels.
LCEFR_HD uint32_t tail_mask(int channels) {
  const int r = channels & 31;
  return r ? ((1u << r) - 1u) : 0xffffffffu;
}

LCEFR_HD int words_for(int channels) { return (channels + 31) / 32; }

// Word j of the row x[0], x[stride], ... (`channels` values): bit i = sign_bit(x[(32 j + i) stride]).
LCEFR_HD uint32_t pack_word(const float* x, int channels, ptrdiff_t stride, int j) {
  const int first = 32 * j;
  const int count = channels - first < 32 ? channels - first : 32;
  const float* base = x + first * stride;
  uint32_t word = 0;
  for (int i = 0; i < count; ++i) word |= sign_bit(base[i * stride]) << i;
  return word;
}

// ---- geometry ---------------------------------------------------------------------------------

LCEFR_HD int init_params(lcefr_bconv_params* p) {
  if (!p) return LCEFR_E_NULL;
  if (p->batch < 1 || p->in_h < 1 || p->in_w < 1 || p->in_c < 1 || p->out_c < 1 ||
      p->kernel_h < 1 || p->kernel_w < 1 || p->stride_h < 1 || p->stride_w < 1 ||
      p->pad_top < 0 || p->pad_left < 0 || p->pad_bottom < 0 || p->pad_right < 0 || p->groups < 1)
    return LCEFR_E_SHAPE;
  if (p->in_c % p->groups || p->out_c % p->groups) return LCEFR_E_GROUPS;
  if (p->groups > 1 && (p->in_c / p->groups) % 32) return LCEFR_E_GROUP_CHANNELS;
  if (p->pad_value != 0 && p->pad_value != 1) return LCEFR_E_PAD_VALUE;
  if (p->out_layout != LCEFR_NHWC && p->out_layout != LCEFR_NCHW) return LCEFR_E_LAYOUT;
  const int span_h = p->in_h + p->pad_top + p->pad_bottom - p->kernel_h;
  const int span_w = p->in_w + p->pad_left + p->pad_right - p->kernel_w;
  if (span_h < 0 || span_w < 0) return LCEFR_E_EMPTY_OUTPUT;
  p->out_h = span_h / p->stride_h + 1;
  p->out_w = span_w / p->stride_w + 1;
  p->group_in_c = p->in_c / p->groups;
  p->group_out_c = p->out_c / p->groups;
  p->in_words = words_for(p->in_c);
  p->group_words = words_for(p->group_in_c);
  p->out_words = words_for(p->out_c);
  return LCEFR_OK;
}

inline const char* status_string(int status) {
  switch (status) {
    case LCEFR_OK: return "ok";
    case LCEFR_E_NULL: return "a required pointer is NULL";
    case LCEFR_E_SHAPE: return "sizes, kernel and strides must be >= 1 and pads >= 0";
    case LCEFR_E_GROUPS: return "input and output channels must be divisible by groups";
    case LCEFR_E_GROUP_CHANNELS:
      return "input channels per group must be a multiple of 32 when groups > 1";
    case LCEFR_E_PAD_VALUE: return "pad_value must be 0 or 1";
    case LCEFR_E_EMPTY_OUTPUT: return "kernel larger than the padded input";
    case LCEFR_E_LAYOUT: return "layout must be NHWC (0) or NCHW (1)";
    case LCEFR_E_PATH: return "kernel path not available for this device or shape";
    case LCEFR_E_CUDA: return "CUDA runtime error";
    default: return "unknown status";
  }
}

// Output pixel index (n, oy, ox) of a flat pixel number q in [0, N OH OW).
LCEFR_HD void pixel_coords(const lcefr_bconv_params& p, int q, int* n, int* oy, int* ox) {
  *ox = q % p.out_w;
  q /= p.out_w;
  *oy = q % p.out_h;
  *n = q / p.out_h;
}

LCEFR_HD bool tap_input(const lcefr_bconv_params& p, int oy, int ox, int ky, int kx, int* iy,
                        int* ix) {
  *iy = oy * p.stride_h - p.pad_top + ky;
  *ix = ox * p.stride_w - p.pad_left + kx;
  return *iy >= 0 && *iy < p.in_h && *ix >= 0 && *ix < p.in_w;
}

LCEFR_HD size_t weight_offset(const lcefr_bconv_params& p, int o) {
  return (size_t)o * p.kernel_h * p.kernel_w * p.group_words;
}

LCEFR_HD size_t out_index(const lcefr_bconv_params& p, int n, int oy, int ox, int o) {
  if (p.out_layout == LCEFR_NCHW)
    return (((size_t)n * p.out_c + o) * p.out_h + oy) * p.out_w + ox;
  return (((size_t)n * p.out_h + oy) * p.out_w + ox) * p.out_c + o;
}

LCEFR_HD size_t packed_out_index(const lcefr_bconv_params& p, int n, int oy, int ox, int j) {
  return (((size_t)n * p.out_h + oy) * p.out_w + ox) * p.out_words + j;
}

// ---- one output element -----------------------------------------------------------------------

// Popcounts of one window: pop_xor over the taps that count (valid ones, plus padded ones for
// pad_value 1), pop_x of the input bits over valid taps, and the tap counts.
struct WindowSums {
  int32_t pop_xor;
  int32_t pop_x;
  int32_t valid_taps;
  int32_t padded_taps;
};

// Direct accumulation (the CUDA-core kernel's loop). x_img: packed image n [H][W][in_words];
// w_o: packed weights of output channel o [KH][KW][group_words]; group: o / group_out_c.
LCEFR_HD WindowSums window_sums(const lcefr_bconv_params& p, const uint32_t* x_img,
                                const uint32_t* w_o, int group, int oy, int ox) {
  const int gw = p.group_words;
  const uint32_t last = tail_mask(p.group_in_c);
  const uint32_t* x_grp = x_img + (size_t)group * gw;
  WindowSums s = {0, 0, 0, 0};
  for (int ky = 0; ky < p.kernel_h; ++ky) {
    for (int kx = 0; kx < p.kernel_w; ++kx) {
      const uint32_t* wt = w_o + (size_t)(ky * p.kernel_w + kx) * gw;
      int iy, ix;
      if (tap_input(p, oy, ox, ky, kx, &iy, &ix)) {
        const uint32_t* xt = x_grp + ((size_t)iy * p.in_w + ix) * p.in_words;
        for (int j = 0; j < gw - 1; ++j) {
          s.pop_xor += popc(xt[j] ^ wt[j]);
          s.pop_x += popc(xt[j]);
        }
        const uint32_t xl = xt[gw - 1] & last;
        s.pop_xor += popc((xl ^ wt[gw - 1]) & last);
        s.pop_x += popc(xl);
        ++s.valid_taps;
      } else {
        ++s.padded_taps;
        if (p.pad_value) {
          for (int j = 0; j < gw - 1; ++j) s.pop_xor += popc(wt[j]);
          s.pop_xor += popc(wt[gw - 1] & last);
        }
      }
    }
  }
  return s;
}

LCEFR_HD int32_t accumulator(const lcefr_bconv_params& p, const WindowSums& s) {
  const int32_t taps = s.valid_taps + (p.pad_value ? s.padded_taps : 0);
  return p.group_in_c * taps - 2 * s.pop_xor;
}

LCEFR_HD int32_t boxsum(const lcefr_bconv_params& p, const WindowSums& s) {
  return p.group_in_c * (s.valid_taps + (p.pad_value ? s.padded_taps : 0)) - 2 * s.pop_x;
}

// out = multiplier acc + bias (+ adabin_scale boxsum); NULL pointers mean 1, 0 and no term.
LCEFR_HD float epilogue(int32_t acc, int32_t box, int o, const float* multiplier,
                        const float* bias, const float* adabin_scale) {
  float y = fmaf(multiplier ? multiplier[o] : 1.0f, (float)acc, bias ? bias[o] : 0.0f);
  if (adabin_scale) y = fmaf(adabin_scale[o], (float)box, y);
  return y;
}

// ---- tensor-core decomposition ----------------------------------------------------------------
// The b1 MMA kernels run K = taps x (group_words rounded up to 4) x 32 bits with a padded tap's
// activation word set to 0 (= +1) and words beyond group_words set to 0 in both operands, giving
// mma_xor = sum popc(x' XOR w) or mma_and = sum popc(x' AND w). The input-only part (pop_x, tap
// counts) is computed once per pixel, the weight-only parts once per channel.

LCEFR_HD int chunks_per_tap(const lcefr_bconv_params& p) { return (p.group_words + 3) / 4; }

// Activation word j (< 4 chunks_per_tap) of tap (ky, kx) as the MMA A operand sees it.
LCEFR_HD uint32_t mma_act_word(const lcefr_bconv_params& p, const uint32_t* x_img, int group,
                               int oy, int ox, int ky, int kx, int j) {
  int iy, ix;
  if (j >= p.group_words || !tap_input(p, oy, ox, ky, kx, &iy, &ix)) return 0u;
  const size_t pixel = (size_t)iy * p.in_w + ix;
  const uint32_t v = x_img[pixel * p.in_words + (size_t)group * p.group_words + j];
  return j == p.group_words - 1 ? v & tail_mask(p.group_in_c) : v;
}

// Weight word j of tap (ky, kx) of channel o (w_o as in window_sums) as the B operand sees it.
LCEFR_HD uint32_t mma_weight_word(const lcefr_bconv_params& p, const uint32_t* w_o, int ky, int kx,
                                  int j) {
  if (j >= p.group_words) return 0u;
  const uint32_t v = w_o[(size_t)(ky * p.kernel_w + kx) * p.group_words + j];
  return j == p.group_words - 1 ? v & tail_mask(p.group_in_c) : v;
}

// pop_x and tap counts of one window (pop_xor left 0).
LCEFR_HD WindowSums window_input_sums(const lcefr_bconv_params& p, const uint32_t* x_img,
                                      int group, int oy, int ox) {
  WindowSums s = {0, 0, 0, 0};
  for (int ky = 0; ky < p.kernel_h; ++ky) {
    for (int kx = 0; kx < p.kernel_w; ++kx) {
      int iy, ix;
      if (tap_input(p, oy, ox, ky, kx, &iy, &ix)) {
        ++s.valid_taps;
        for (int j = 0; j < p.group_words; ++j)
          s.pop_x += popc(mma_act_word(p, x_img, group, oy, ox, ky, kx, j));
      } else {
        ++s.padded_taps;
      }
    }
  }
  return s;
}

// Popcount of channel o's weights over all taps (all == true) or over the padded taps of (oy, ox).
LCEFR_HD int32_t weight_pop(const lcefr_bconv_params& p, const uint32_t* w_o, int oy, int ox,
                            bool all) {
  int32_t pop = 0;
  for (int ky = 0; ky < p.kernel_h; ++ky) {
    for (int kx = 0; kx < p.kernel_w; ++kx) {
      int iy, ix;
      if (!all && tap_input(p, oy, ox, ky, kx, &iy, &ix)) continue;
      for (int j = 0; j < p.group_words; ++j) pop += popc(mma_weight_word(p, w_o, ky, kx, j));
    }
  }
  return pop;
}

// pop_xor of window_sums from an XOR.POPC result; w_pad_pop = weight_pop(..., all=false).
LCEFR_HD int32_t pop_xor_from_mma_xor(const lcefr_bconv_params& p, int32_t mma_xor,
                                      int32_t w_pad_pop) {
  return p.pad_value ? mma_xor : mma_xor - w_pad_pop;
}

// pop_xor of window_sums from an AND.POPC result: popc(a ^ b) = popc(a) + popc(b) - 2 popc(a & b).
LCEFR_HD int32_t pop_xor_from_mma_and(const lcefr_bconv_params& p, int32_t mma_and, int32_t pop_x,
                                      int32_t w_pop_all, int32_t w_pad_pop) {
  return pop_xor_from_mma_xor(p, pop_x + w_pop_all - 2 * mma_and, w_pad_pop);
}

// ---- path selection ---------------------------------------------------------------------------

LCEFR_HD bool bmma_tiles_fit(const lcefr_bconv_params& p) {
  return p.groups == 1 || p.group_out_c % 32 == 0;
}

// The path for a device of compute capability cc_major.cc_minor; LCEFR_E_PATH-worthy requests
// return -1.
LCEFR_HD int select_path(const lcefr_bconv_params& p, int cc_major, int cc_minor, int requested) {
  const int cc = cc_major * 10 + cc_minor;
  const bool has_xor = cc >= 75;
  const bool has_and = cc >= 80;
  const bool fit = bmma_tiles_fit(p);
  switch (requested) {
    case LCEFR_PATH_AUTO:
      if (fit && has_and) return LCEFR_PATH_BMMA_AND;
      if (fit && has_xor) return LCEFR_PATH_BMMA_XOR;
      return LCEFR_PATH_POPC;
    case LCEFR_PATH_POPC: return LCEFR_PATH_POPC;
    case LCEFR_PATH_BMMA_XOR: return fit && has_xor ? LCEFR_PATH_BMMA_XOR : -1;
    case LCEFR_PATH_BMMA_AND: return fit && has_and ? LCEFR_PATH_BMMA_AND : -1;
    default: return -1;
  }
}

}  // namespace lcefr

#endif  // LCEFR_BCONV_COMMON_H_
