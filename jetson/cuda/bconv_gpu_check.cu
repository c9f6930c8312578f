// Host helpers of the GPU check (python3 -m lcefr.trt.gpu_check): device memory, copies and
// CUDA-event timing of lcefr_cuda_bconv2d, as plain C for ctypes. Compiled with
// bconv_kernels.cu into one shared library for the local GPU; nothing here is used on a board.
#include <cuda_runtime.h>

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "bconv_api.h"

extern "C" {

static char g_error[256];

static int remember(cudaError_t e) {
  if (e == cudaSuccess) return LCEFR_OK;
  snprintf(g_error, sizeof g_error, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
  return LCEFR_E_CUDA;
}

const char* lcefr_gc_last_error(void) { return g_error; }

int lcefr_gc_abi_version(void) { return LCEFR_BCONV_ABI_VERSION; }

// Name, compute capability, driver and runtime versions of the current device.
int lcefr_gc_device(char* name, int name_len, int* major, int* minor, int* driver, int* runtime) {
  int device = 0;
  cudaDeviceProp prop;
  int status = remember(cudaGetDevice(&device));
  if (status == LCEFR_OK) status = remember(cudaGetDeviceProperties(&prop, device));
  if (status != LCEFR_OK) return status;
  snprintf(name, (size_t)name_len, "%s", prop.name);
  *major = prop.major;
  *minor = prop.minor;
  cudaDriverGetVersion(driver);
  cudaRuntimeGetVersion(runtime);
  return LCEFR_OK;
}

int lcefr_gc_malloc(void** ptr, size_t bytes) { return remember(cudaMalloc(ptr, bytes ? bytes : 4)); }

int lcefr_gc_free(void* ptr) { return remember(cudaFree(ptr)); }

int lcefr_gc_upload(void* dst, const void* src, size_t bytes) {
  return remember(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

int lcefr_gc_download(void* dst, const void* src, size_t bytes) {
  return remember(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

// Fills device memory with a byte, so a kernel that skips an element leaves a visible pattern.
int lcefr_gc_fill(void* dst, int byte, size_t bytes) { return remember(cudaMemset(dst, byte, bytes)); }

int lcefr_gc_synchronize(void) { return remember(cudaDeviceSynchronize()); }

// Runs lcefr_cuda_bconv2d `warmup` times, then `iters` times between CUDA events; ms[i] is the
// device time of run i. Returns the launcher's status (or LCEFR_E_CUDA).
int lcefr_gc_time_bconv2d(const lcefr_bconv_params* p, const int32_t* x_packed,
                          const int32_t* w_packed, const float* multiplier, const float* bias,
                          const float* adabin_scale, float* out, int32_t* packed_out, int path,
                          int warmup, int iters, float* ms) {
  cudaEvent_t start, stop;
  int status = remember(cudaEventCreate(&start));
  if (status != LCEFR_OK) return status;
  status = remember(cudaEventCreate(&stop));
  for (int i = 0; status == LCEFR_OK && i < warmup; ++i)
    status = lcefr_cuda_bconv2d(p, x_packed, w_packed, multiplier, bias, adabin_scale, out,
                                packed_out, path, NULL, NULL);
  if (status == LCEFR_OK) status = remember(cudaDeviceSynchronize());
  for (int i = 0; status == LCEFR_OK && i < iters; ++i) {
    status = remember(cudaEventRecord(start, 0));
    if (status == LCEFR_OK)
      status = lcefr_cuda_bconv2d(p, x_packed, w_packed, multiplier, bias, adabin_scale, out,
                                  packed_out, path, NULL, NULL);
    if (status == LCEFR_OK) status = remember(cudaEventRecord(stop, 0));
    if (status == LCEFR_OK) status = remember(cudaEventSynchronize(stop));
    if (status == LCEFR_OK) status = remember(cudaEventElapsedTime(&ms[i], start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return status;
}

}  // extern "C"
