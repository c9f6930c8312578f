// FP16 <-> FP32 grid-stride conversions (bconv_plugin_cast.h). C++14, CUDA 10.2 and newer.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../cuda/bconv_api.h"
#include "bconv_plugin_cast.h"

namespace {

constexpr int kThreads = 256;
constexpr size_t kMaxBlocks = 4096;

__global__ void half_to_float_kernel(const __half* __restrict__ in, float* __restrict__ out,
                                     size_t count) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
       i += (size_t)gridDim.x * blockDim.x)
    out[i] = __half2float(in[i]);
}

__global__ void float_to_half_kernel(const float* __restrict__ in, __half* __restrict__ out,
                                     size_t count) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
       i += (size_t)gridDim.x * blockDim.x)
    out[i] = __float2half_rn(in[i]);
}

unsigned blocks_for(size_t count) {
  const size_t blocks = (count + kThreads - 1) / kThreads;
  return (unsigned)(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

}  // namespace

extern "C" {

int lcefr_trt_half_to_float(const void* in, float* out, size_t count, void* stream) {
  if (count == 0) return LCEFR_OK;
  half_to_float_kernel<<<blocks_for(count), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const __half*>(in), out, count);
  return cudaGetLastError() == cudaSuccess ? LCEFR_OK : LCEFR_E_CUDA;
}

int lcefr_trt_float_to_half(const float* in, void* out, size_t count, void* stream) {
  if (count == 0) return LCEFR_OK;
  float_to_half_kernel<<<blocks_for(count), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      in, static_cast<__half*>(out), count);
  return cudaGetLastError() == cudaSuccess ? LCEFR_OK : LCEFR_E_CUDA;
}

}  // extern "C"
