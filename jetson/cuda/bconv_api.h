/* C API of the lcefr binary convolution (issue 7).
 *
 * Two implementations share this header and the per-element code of bconv_common.h:
 *   lcefr_ref_*   CPU reference (bconv_ref.cpp, built by g++ into liblcefr_bconv_ref.so)
 *   lcefr_cuda_*  CUDA kernels + host launcher (bconv_kernels.cu, built by nvcc)
 *
 * Bit convention (Larq/LCE): bit 1 means -1 (x < 0), bit 0 means +1 (x >= 0, NaN too).
 * Packed activations are NHWC int32 words [N, H, W, ceil(C/32)]; bit i of word j is channel
 * 32*j + i; the tail bits of the last word are 0. Packed weights are [O, KH, KW, ceil(Cg/32)]
 * with Cg = C / groups.
 *
 * Plain C, no CUDA types: a stream is passed as void* (a cudaStream_t).
 */
#ifndef LCEFR_BCONV_API_H_
#define LCEFR_BCONV_API_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LCEFR_BCONV_ABI_VERSION 1

enum lcefr_layout { LCEFR_NHWC = 0, LCEFR_NCHW = 1 };

/* Kernel path. AUTO picks BMMA_AND on sm_80+, BMMA_XOR on sm_75, POPC otherwise (and POPC when
 * a 32-channel output tile would straddle two groups). */
enum lcefr_path {
  LCEFR_PATH_AUTO = 0,
  LCEFR_PATH_POPC = 1,     /* CUDA cores: XOR + __popc, every architecture (sm_53 included) */
  LCEFR_PATH_BMMA_XOR = 2, /* b1 tensor cores, m8n8k128 XOR.POPC (sm_75+) */
  LCEFR_PATH_BMMA_AND = 3  /* b1 tensor cores, m8n8k128 AND.POPC (sm_80+) */
};

enum lcefr_status {
  LCEFR_OK = 0,
  LCEFR_E_NULL = 1,           /* a required pointer is NULL */
  LCEFR_E_SHAPE = 2,          /* a size/kernel/stride is < 1 or a pad < 0 */
  LCEFR_E_GROUPS = 3,         /* C or O not divisible by groups */
  LCEFR_E_GROUP_CHANNELS = 4, /* groups > 1 and C/groups not a multiple of 32 */
  LCEFR_E_PAD_VALUE = 5,      /* pad_value not 0 or 1 */
  LCEFR_E_EMPTY_OUTPUT = 6,   /* kernel larger than the padded input */
  LCEFR_E_LAYOUT = 7,         /* layout not LCEFR_NHWC / LCEFR_NCHW */
  LCEFR_E_PATH = 8,           /* requested path not available on this device / for this shape */
  LCEFR_E_CUDA = 9            /* a CUDA runtime call failed */
};

/* Geometry of one binary convolution. Fill the first block (or call *_init_params), the
 * derived block is computed by lcefr_ref_init_params / the CUDA launcher. */
typedef struct lcefr_bconv_params {
  int32_t batch, in_h, in_w, in_c;
  int32_t out_c, kernel_h, kernel_w, stride_h, stride_w;
  int32_t pad_top, pad_left, pad_bottom, pad_right;
  int32_t groups;
  int32_t pad_value;  /* 1: padded activations are +1 (LCE one-padding); 0: they contribute 0 */
  int32_t out_layout; /* layout of the float output: LCEFR_NHWC or LCEFR_NCHW */
  /* derived */
  int32_t out_h, out_w;
  int32_t group_in_c, group_out_c; /* C / groups, O / groups */
  int32_t in_words;                /* ceil(C / 32): words per packed input pixel */
  int32_t group_words;             /* ceil(Cg / 32): words per packed weight tap */
  int32_t out_words;               /* ceil(O / 32): words per packed output pixel */
} lcefr_bconv_params;

/* ---- CPU reference (liblcefr_bconv_ref.so) ------------------------------------------------ */
int lcefr_ref_abi_version(void);
const char* lcefr_ref_strerror(int status);
/* Validates the first block of *p and fills the derived fields. */
int lcefr_ref_init_params(lcefr_bconv_params* p);
/* x float [N,H,W,C] (NHWC) or [N,C,H,W] (NCHW) -> out int32 [N,H,W,ceil(C/32)]. */
int lcefr_ref_pack_activations(const float* x, int layout, int n, int h, int w, int c,
                               int32_t* out);
/* w float Keras [KH,KW,Cg,O] -> out int32 [O,KH,KW,ceil(Cg/32)]. */
int lcefr_ref_pack_weights(const float* w, int kh, int kw, int cg, int o, int32_t* out);
/* Binary convolution of packed activations with packed weights.
 *   multiplier, bias, adabin_scale: float [O] or NULL (1, 0, no AdaBin term)
 *   acc_out:    int32 [N,OH,OW,O] accumulators (NHWC) or NULL
 *   out:        float output in p->out_layout or NULL
 *   packed_out: int32 [N,OH,OW,ceil(O/32)] sign bits of out or NULL
 *   path:       LCEFR_PATH_POPC computes like the CUDA-core kernel; BMMA_XOR / BMMA_AND emulate
 *               the tensor-core kernels' K order and correction terms (AUTO = POPC). */
int lcefr_ref_bconv2d(const lcefr_bconv_params* p, const int32_t* x_packed, const int32_t* w_packed,
                      const float* multiplier, const float* bias, const float* adabin_scale,
                      int32_t* acc_out, float* out, int32_t* packed_out, int path);
/* The path the CUDA launcher picks for compute capability major.minor (AUTO resolved). */
int lcefr_ref_select_path(const lcefr_bconv_params* p, int cc_major, int cc_minor, int requested);

/* ---- CUDA (bconv_kernels.cu); all pointers are device pointers ---------------------------- */
int lcefr_cuda_pack_activations(const float* x, int layout, int n, int h, int w, int c,
                                int32_t* out, void* stream);
int lcefr_cuda_pack_weights(const float* w, int kh, int kw, int cg, int o, int32_t* out,
                            void* stream);
/* *p must have been through lcefr_cuda_init_params (or lcefr_ref_init_params). out and
 * packed_out may be NULL (not both). Returns the status; the path actually used is written to
 * *used_path when not NULL. */
int lcefr_cuda_init_params(lcefr_bconv_params* p);
int lcefr_cuda_bconv2d(const lcefr_bconv_params* p, const int32_t* x_packed,
                       const int32_t* w_packed, const float* multiplier, const float* bias,
                       const float* adabin_scale, float* out, int32_t* packed_out, int path,
                       int* used_path, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* LCEFR_BCONV_API_H_ */
