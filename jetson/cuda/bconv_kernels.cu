// CUDA kernels of the binary convolution (issue 7) and their host launcher (lcefr_cuda_* of
// bconv_api.h). C++14; builds with nvcc 10.2 (Jetson Nano, sm_53) up to 13.x (sm_75+).
//
//   pack_nchw_kernel / pack_nhwc_kernel   float activations -> NHWC int32 words
//   pack_weights_kernel                   Keras [KH,KW,Cg,O] -> [O,KH,KW,ceil(Cg/32)]
//   bconv_popc_kernel                     XOR + __popc on CUDA cores (every architecture)
//   bconv_bmma_kernel<kAnd>               b1 tensor cores, wmma m8n8k128 (XOR sm_75+, AND sm_80+)
//
// Both convolution kernels give a warp 32 consecutive output channels of one pixel, so the
// optional bit-packed output word is one __ballot_sync. The per-element arithmetic is in
// bconv_common.h, shared with the CPU reference (bconv_ref.cpp).
#include <cuda_runtime.h>
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 750
#include <mma.h>
#endif

#include "bconv_common.h"

namespace {

using lcefr::WindowSums;

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kPopcWarps = 8;          // warps (pixel rows) per popc block
constexpr int kPopcPixelsPerWarp = 8;  // pixels each warp walks through
constexpr int kBmmaWarps = 4;          // warps per bmma block, 8 pixels each
constexpr size_t kMaxSharedWeights = 48 * 1024;

// ---- packing ----------------------------------------------------------------------------------

// One thread per packed word; consecutive threads take consecutive pixels so reads of each
// channel plane are coalesced.
__global__ void pack_nchw_kernel(const float* __restrict__ x, int n, int hw, int c,
                                 uint32_t* __restrict__ out) {
  const int words = lcefr::words_for(c);
  const size_t total = (size_t)n * words * hw;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
       t += (size_t)gridDim.x * blockDim.x) {
    const size_t pix = t % hw;
    const size_t rest = t / hw;
    const int j = (int)(rest % words);
    const size_t b = rest / words;
    out[(b * hw + pix) * words + j] = lcefr::pack_word(x + b * c * hw + pix, c, (ptrdiff_t)hw, j);
  }
}

// One warp per packed word, lane i reads channel 32 j + i (coalesced) and the ballot is the word.
__global__ void pack_nhwc_kernel(const float* __restrict__ x, size_t pixels, int c,
                                 uint32_t* __restrict__ out) {
  const int words = lcefr::words_for(c);
  const int lane = threadIdx.x & 31;
  const size_t warps = (size_t)gridDim.x * blockDim.x / 32;
  for (size_t t = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; t < pixels * words;
       t += warps) {
    const size_t pix = t / words;
    const int ch = (int)(t % words) * 32 + lane;
    const bool neg = ch < c && lcefr::sign_bit(x[pix * c + ch]);
    const unsigned word = __ballot_sync(kFullMask, neg);
    if (lane == 0) out[t] = word;
  }
}

// One thread per packed word; o is the fastest index so reads of w[.., o] are coalesced.
__global__ void pack_weights_kernel(const float* __restrict__ w, int taps, int cg, int o,
                                    uint32_t* __restrict__ out) {
  const int words = lcefr::words_for(cg);
  const size_t total = (size_t)o * taps * words;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
       t += (size_t)gridDim.x * blockDim.x) {
    const int oc = (int)(t % o);
    const size_t rest = t / o;
    const int j = (int)(rest % words);
    const int tap = (int)(rest / words);
    out[((size_t)oc * taps + tap) * words + j] =
        lcefr::pack_word(w + (size_t)tap * cg * o + oc, cg, (ptrdiff_t)o, j);
  }
}

// ---- epilogue shared by both convolution kernels ----------------------------------------------

// Lane o - o0 of a warp finishing output channel o (may be >= out_c: then it only votes 0).
__device__ __forceinline__ void finish_element(const lcefr_bconv_params& p, int n, int oy, int ox,
                                               int o, bool active, const WindowSums& s,
                                               const float* multiplier, const float* bias,
                                               const float* adabin_scale, float* out,
                                               uint32_t* packed_out) {
  float y = 0.0f;
  if (active) {
    y = lcefr::epilogue(lcefr::accumulator(p, s), lcefr::boxsum(p, s), o, multiplier, bias,
                        adabin_scale);
    if (out) out[lcefr::out_index(p, n, oy, ox, o)] = y;
  }
  if (packed_out) {
    const unsigned word = __ballot_sync(kFullMask, active && lcefr::sign_bit(y));
    if ((threadIdx.x & 31) == 0) packed_out[lcefr::packed_out_index(p, n, oy, ox, o / 32)] = word;
  }
}

// ---- CUDA-core path ---------------------------------------------------------------------------

// Block (32, kPopcWarps): lane = output channel o0 + lane, warp row walks kPopcPixelsPerWarp
// pixels. kShared stages the block's 32 weight rows in shared memory (row stride odd -> no bank
// conflicts); otherwise they are read through the read-only cache.
template <bool kShared>
__global__ void bconv_popc_kernel(lcefr_bconv_params p, const uint32_t* __restrict__ x,
                                  const uint32_t* __restrict__ w,
                                  const float* __restrict__ multiplier,
                                  const float* __restrict__ bias,
                                  const float* __restrict__ adabin_scale, float* __restrict__ out,
                                  uint32_t* __restrict__ packed_out) {
  extern __shared__ uint32_t smem_w[];
  const int lane = threadIdx.x;
  const int o0 = blockIdx.x * 32;
  const int o = o0 + lane;
  const bool active_c = o < p.out_c;
  const size_t row = lcefr::weight_offset(p, 1);
  const size_t srow = row | 1;
  const uint32_t* w_o;
  if (kShared) {
    const int rows = min(32, p.out_c - o0);
    for (size_t i = threadIdx.y * 32 + lane; i < rows * row; i += 32 * kPopcWarps)
      smem_w[(i / row) * srow + i % row] = __ldg(w + o0 * row + i);
    __syncthreads();
    w_o = smem_w + lane * srow;
  } else {
    w_o = w + (size_t)(active_c ? o : o0) * row;
  }
  const int group = (active_c ? o : o0) / p.group_out_c;
  const size_t img_words = (size_t)p.in_h * p.in_w * p.in_words;
  const int pixels = p.batch * p.out_h * p.out_w;
  const int tile_step = gridDim.y * kPopcWarps * kPopcPixelsPerWarp;
  for (int first = (blockIdx.y * kPopcWarps + threadIdx.y) * kPopcPixelsPerWarp; first < pixels;
       first += tile_step) {
    for (int k = 0; k < kPopcPixelsPerWarp; ++k) {
      const int q = first + k;
      if (q >= pixels) break;  // warp-uniform
      int n, oy, ox;
      lcefr::pixel_coords(p, q, &n, &oy, &ox);
      WindowSums s = {0, 0, 0, 0};
      if (active_c) s = lcefr::window_sums(p, x + n * img_words, w_o, group, oy, ox);
      finish_element(p, n, oy, ox, o, active_c, s, multiplier, bias, adabin_scale, out,
                     packed_out);
    }
  }
}

// ---- tensor-core path -------------------------------------------------------------------------

// Block (32, kBmmaWarps), one warp per tile of 8 output pixels x 32 output channels. K runs over
// taps x chunks of 128 bits (4 words); each step the warp stages A (8 pixels x 4 words: one word
// per lane) and B (32 channels x 4 words) in shared memory and issues four m8n8k128 b1 MMAs.
// Requires groups == 1 or group_out_c % 32 == 0 (a tile never straddles two groups).
template <bool kAnd>
__global__ void bconv_bmma_kernel(lcefr_bconv_params p, const uint32_t* __restrict__ x,
                                  const uint32_t* __restrict__ w,
                                  const float* __restrict__ multiplier,
                                  const float* __restrict__ bias,
                                  const float* __restrict__ adabin_scale, float* __restrict__ out,
                                  uint32_t* __restrict__ packed_out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
#if __CUDA_ARCH__ < 800
  if (kAnd) return;  // never launched: the launcher checks the compiled architecture
#endif
  using namespace nvcuda;
  __shared__ __align__(32) uint32_t a_tile[kBmmaWarps][32];
  __shared__ __align__(32) uint32_t b_tile[kBmmaWarps][128];
  __shared__ __align__(32) int c_tile[kBmmaWarps][8 * 32];
  __shared__ WindowSums pix_sums[kBmmaWarps][8];

  const int lane = threadIdx.x;
  const int wy = threadIdx.y;
  const int o0 = blockIdx.x * 32;
  const int group = o0 / p.group_out_c;
  const int pixels = p.batch * p.out_h * p.out_w;
  const size_t img_words = (size_t)p.in_h * p.in_w * p.in_words;
  const size_t row = lcefr::weight_offset(p, 1);
  const int o = o0 + lane;
  const bool active_c = o < p.out_c;
  const uint32_t* w_o = w + (active_c ? o : o0) * row;
  const int32_t w_all = kAnd && active_c ? lcefr::weight_pop(p, w_o, 0, 0, true) : 0;
  const int chunks = lcefr::chunks_per_tap(p);
  wmma::fragment<wmma::matrix_a, 8, 8, 128, wmma::experimental::precision::b1, wmma::row_major> a;
  wmma::fragment<wmma::matrix_b, 8, 8, 128, wmma::experimental::precision::b1, wmma::col_major> b;
  wmma::fragment<wmma::accumulator, 8, 8, 128, int> c[4];

  // Grid-stride over tiles of 8 pixels; each warp runs independently (no block barrier).
  for (int q0 = (blockIdx.y * kBmmaWarps + wy) * 8; q0 < pixels;
       q0 += gridDim.y * kBmmaWarps * 8) {
    // A operand: lane -> pixel lane / 4, word lane % 4 of the chunk.
    const int a_q = q0 + lane / 4;
    const bool a_valid = a_q < pixels;
    int a_n = 0, a_oy = 0, a_ox = 0;
    if (a_valid) lcefr::pixel_coords(p, a_q, &a_n, &a_oy, &a_ox);
    const uint32_t* a_img = x + a_n * img_words;

    for (int f = 0; f < 4; ++f) wmma::fill_fragment(c[f], 0);

    for (int ky = 0; ky < p.kernel_h; ++ky) {
      for (int kx = 0; kx < p.kernel_w; ++kx) {
        for (int qc = 0; qc < chunks; ++qc) {
          a_tile[wy][lane] = a_valid ? lcefr::mma_act_word(p, a_img, group, a_oy, a_ox, ky, kx,
                                                           4 * qc + lane % 4)
                                     : 0u;
          for (int r = 0; r < 4; ++r) {
            const int idx = lane + 32 * r;  // channel idx / 4, word idx % 4
            const int oc = o0 + idx / 4;
            b_tile[wy][idx] = oc < p.out_c ? lcefr::mma_weight_word(p, w + oc * row, ky, kx,
                                                                     4 * qc + idx % 4)
                                           : 0u;
          }
          __syncwarp();
          wmma::load_matrix_sync(a, a_tile[wy], 128);
          for (int f = 0; f < 4; ++f) {
            wmma::load_matrix_sync(b, b_tile[wy] + 32 * f, 128);
            if (kAnd) {
#if __CUDA_ARCH__ >= 800
              wmma::bmma_sync(c[f], a, b, c[f], wmma::experimental::bmmaBitOpAND,
                              wmma::experimental::bmmaAccumulateOpPOPC);
#endif
            } else {
              wmma::bmma_sync(c[f], a, b, c[f], wmma::experimental::bmmaBitOpXOR,
                              wmma::experimental::bmmaAccumulateOpPOPC);
            }
          }
          __syncwarp();
        }
      }
    }
    for (int f = 0; f < 4; ++f)
      wmma::store_matrix_sync(c_tile[wy] + 8 * f, c[f], 32, wmma::mem_row_major);

    // Input-only sums once per pixel (lanes 0..7), weight-only sums once per channel (all lanes).
    if (lane < 8 && q0 + lane < pixels) {
      int n, oy, ox;
      lcefr::pixel_coords(p, q0 + lane, &n, &oy, &ox);
      pix_sums[wy][lane] = lcefr::window_input_sums(p, x + n * img_words, group, oy, ox);
    }
    __syncwarp();
    for (int i = 0; i < 8; ++i) {
      const int q = q0 + i;
      if (q >= pixels) break;  // warp-uniform
      int n, oy, ox;
      lcefr::pixel_coords(p, q, &n, &oy, &ox);
      WindowSums s = pix_sums[wy][i];
      if (active_c) {
        const int32_t mma = c_tile[wy][i * 32 + lane];
        const int32_t w_pad = p.pad_value ? 0 : lcefr::weight_pop(p, w_o, oy, ox, false);
        s.pop_xor = kAnd ? lcefr::pop_xor_from_mma_and(p, mma, s.pop_x, w_all, w_pad)
                         : lcefr::pop_xor_from_mma_xor(p, mma, w_pad);
      }
      finish_element(p, n, oy, ox, o, active_c, s, multiplier, bias, adabin_scale, out,
                     packed_out);
    }
    __syncwarp();  // pix_sums and c_tile are rewritten by the next tile
  }
#endif
}

int grid_for(size_t threads, int block) {
  const size_t blocks = (threads + block - 1) / block;
  return (int)(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

int status_of(cudaError_t e) { return e == cudaSuccess ? LCEFR_OK : LCEFR_E_CUDA; }

// Virtual architecture the device will run `kernel` from (e.g. 75 for compute_75 PTX JIT-compiled
// on an sm_86), or 0 when the binary has no image for this device.
template <typename Kernel>
int compiled_arch(Kernel kernel) {
  cudaFuncAttributes attr;
  if (cudaFuncGetAttributes(&attr, kernel) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return attr.ptxVersion;
}

// Downgrades a tensor-core path the fat binary cannot run here (AND needs code built for
// compute_80+, XOR for compute_75+); -1 if an explicitly requested path is impossible.
int runnable_path(int chosen, int requested) {
  if (chosen == LCEFR_PATH_BMMA_AND && compiled_arch(bconv_bmma_kernel<true>) < 80)
    chosen = requested == LCEFR_PATH_AUTO ? LCEFR_PATH_BMMA_XOR : -1;
  if (chosen == LCEFR_PATH_BMMA_XOR && compiled_arch(bconv_bmma_kernel<false>) < 75)
    chosen = requested == LCEFR_PATH_AUTO ? LCEFR_PATH_POPC : -1;
  return chosen;
}

}  // namespace

extern "C" {

int lcefr_cuda_init_params(lcefr_bconv_params* p) { return lcefr::init_params(p); }

int lcefr_cuda_pack_activations(const float* x, int layout, int n, int h, int w, int c,
                                int32_t* out, void* stream) {
  if (!x || !out) return LCEFR_E_NULL;
  if (n < 1 || h < 1 || w < 1 || c < 1) return LCEFR_E_SHAPE;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  uint32_t* o = reinterpret_cast<uint32_t*>(out);
  const size_t words = (size_t)n * h * w * lcefr::words_for(c);
  if (layout == LCEFR_NCHW) {
    pack_nchw_kernel<<<grid_for(words, 256), 256, 0, s>>>(x, n, h * w, c, o);
  } else if (layout == LCEFR_NHWC) {
    pack_nhwc_kernel<<<grid_for(words * 32, 256), 256, 0, s>>>(x, (size_t)n * h * w, c, o);
  } else {
    return LCEFR_E_LAYOUT;
  }
  return status_of(cudaGetLastError());
}

int lcefr_cuda_pack_weights(const float* w, int kh, int kw, int cg, int o, int32_t* out,
                            void* stream) {
  if (!w || !out) return LCEFR_E_NULL;
  if (kh < 1 || kw < 1 || cg < 1 || o < 1) return LCEFR_E_SHAPE;
  const size_t words = (size_t)o * kh * kw * lcefr::words_for(cg);
  pack_weights_kernel<<<grid_for(words, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      w, kh * kw, cg, o, reinterpret_cast<uint32_t*>(out));
  return status_of(cudaGetLastError());
}

int lcefr_cuda_bconv2d(const lcefr_bconv_params* pp, const int32_t* x_packed,
                       const int32_t* w_packed, const float* multiplier, const float* bias,
                       const float* adabin_scale, float* out, int32_t* packed_out, int path,
                       int* used_path, void* stream) {
  if (!pp || !x_packed || !w_packed || (!out && !packed_out)) return LCEFR_E_NULL;
  lcefr_bconv_params p = *pp;
  int status = lcefr::init_params(&p);
  if (status != LCEFR_OK) return status;

  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess)
    return LCEFR_E_CUDA;
  int chosen = lcefr::select_path(p, major, minor, path);
  if (chosen > 0) chosen = runnable_path(chosen, path);
  if (chosen < 0) return LCEFR_E_PATH;
  if (used_path) *used_path = chosen;

  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const uint32_t* x = reinterpret_cast<const uint32_t*>(x_packed);
  const uint32_t* w = reinterpret_cast<const uint32_t*>(w_packed);
  uint32_t* po = reinterpret_cast<uint32_t*>(packed_out);
  const int pixels = p.batch * p.out_h * p.out_w;
  const unsigned channel_tiles = (unsigned)((p.out_c + 31) / 32);

  if (chosen == LCEFR_PATH_POPC) {
    const dim3 block(32, kPopcWarps);
    const dim3 grid(channel_tiles,
                    (unsigned)grid_for(pixels, kPopcWarps * kPopcPixelsPerWarp));
    const size_t shared = 32 * (lcefr::weight_offset(p, 1) | 1) * sizeof(uint32_t);
    if (shared <= kMaxSharedWeights)
      bconv_popc_kernel<true><<<grid, block, shared, s>>>(p, x, w, multiplier, bias,
                                                          adabin_scale, out, po);
    else
      bconv_popc_kernel<false><<<grid, block, 0, s>>>(p, x, w, multiplier, bias, adabin_scale,
                                                      out, po);
  } else {
    const dim3 block(32, kBmmaWarps);
    const dim3 grid(channel_tiles, (unsigned)grid_for(pixels, 8 * kBmmaWarps));
    if (chosen == LCEFR_PATH_BMMA_AND)
      bconv_bmma_kernel<true><<<grid, block, 0, s>>>(p, x, w, multiplier, bias, adabin_scale,
                                                     out, po);
    else
      bconv_bmma_kernel<false><<<grid, block, 0, s>>>(p, x, w, multiplier, bias, adabin_scale,
                                                      out, po);
  }
  return status_of(cudaGetLastError());
}

}  // extern "C"
