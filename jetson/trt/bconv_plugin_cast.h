/* FP16 <-> FP32 conversion on the GPU for the BinaryConv2d plugin's half-precision I/O
 * (bconv_plugin_cast.cu). The binary-convolution launcher (jetson/cuda/bconv_api.h) reads and
 * writes float, so half tensors are converted into / out of the plugin workspace.
 * Plain C, a stream is a void* (cudaStream_t). Returns 0 on success, LCEFR_E_CUDA otherwise. */
#ifndef LCEFR_TRT_BCONV_PLUGIN_CAST_H_
#define LCEFR_TRT_BCONV_PLUGIN_CAST_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

int lcefr_trt_half_to_float(const void* in, float* out, size_t count, void* stream);
int lcefr_trt_float_to_half(const float* in, void* out, size_t count, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* LCEFR_TRT_BCONV_PLUGIN_CAST_H_ */
