"""The binary-convolution kernels on a CUDA device, and the CPU reference behind the same interface.

:class:`CudaDevice` loads the shared library that :mod:`lcefr.trt.gpu_check` builds from
``jetson/cuda/bconv_kernels.cu`` and ``bconv_gpu_check.cu`` (the ``lcefr_cuda_*`` launcher plus
device memory and CUDA-event timing helpers) through ctypes. :class:`ReferenceDevice` answers the
same calls with the CPU reference (:mod:`lcefr.cuda_ref`): the checks and reports are tested with
it on machines without a GPU, and a device whose outputs differ from it is wrong.

Only numpy and the standard library: this runs on GPU machines without TensorFlow.
"""
from __future__ import annotations

import ctypes
from typing import List, Optional, Tuple

import numpy as np

from lcefr import cuda_ref
from lcefr.runtime import time_callable

__all__ = ["E_PATH", "CudaDevice", "DeviceError", "ReferenceDevice", "expected_path"]

#: ``LCEFR_E_PATH`` of bconv_api.h: the requested path cannot run on this device / for this shape
E_PATH = 8
_PATH_NAMES = {v: k for k, v in cuda_ref.PATHS.items()}


class DeviceError(RuntimeError):
    """A CUDA call of the check library failed."""


def expected_path(*, cc: Tuple[int, int], compiled_arch: int, in_channels: int, out_channels: int,
                  group: int, requested: str) -> Optional[str]:
    """The path ``lcefr_cuda_bconv2d`` must take (None: it must refuse with ``LCEFR_E_PATH``).

    The launcher's choice for compute capability ``cc`` (``lcefr_ref_select_path``), then its
    downgrade when the library has no code for a tensor-core path: AND needs code built for
    compute_80 or newer, XOR for compute_75; ``compiled_arch`` is the newest virtual architecture
    the library runs from on this device.
    """
    chosen = cuda_ref.select_path(cc=cc, in_channels=in_channels, out_channels=out_channels,
                                  group=group, requested=requested)
    if chosen == "bmma_and" and compiled_arch < 80:
        chosen = "bmma_xor" if requested == "auto" else None
    if chosen == "bmma_xor" and compiled_arch < 75:
        chosen = "popc" if requested == "auto" else None
    return chosen


def _vector(v, o: int):
    return None if v is None else np.ascontiguousarray(v, np.float32).reshape(o)


def _output_array(p: cuda_ref.Params, output: str) -> np.ndarray:
    if output == "packed":
        return np.empty((p.batch, p.out_h, p.out_w, p.out_words), np.int32)
    if p.out_layout == 0:
        return np.empty((p.batch, p.out_h, p.out_w, p.out_c), np.float32)
    return np.empty((p.batch, p.out_c, p.out_h, p.out_w), np.float32)


class ReferenceDevice:
    """The CPU reference with the interface of :class:`CudaDevice` (``cc`` and ``compiled_arch``
    say which device it stands in for)."""

    def __init__(self, cc: Tuple[int, int] = (9, 0), compiled_arch: Optional[int] = None,
                 name: str = "CPU reference"):
        self.cc = tuple(cc)
        self.compiled_arch = compiled_arch if compiled_arch is not None else 10 * cc[0] + cc[1]
        self.name = name

    def pack_activations(self, x, layout: str) -> np.ndarray:
        return cuda_ref.pack_activations(x, layout)

    def pack_weights(self, w_keras) -> np.ndarray:
        return cuda_ref.pack_weights(w_keras)

    def bconv2d(self, p, x_packed, w_packed, *, multiplier=None, bias=None, adabin_scale=None,
                output="float", path="auto"):
        """``(status, used_path, output array or None)``."""
        used = expected_path(cc=self.cc, compiled_arch=self.compiled_arch, in_channels=p.in_c,
                             out_channels=p.out_c, group=p.groups, requested=path)
        if used is None:
            return E_PATH, None, None
        out = cuda_ref.bconv2d_packed(p, x_packed, w_packed, multiplier=multiplier, bias=bias,
                                      adabin_scale=adabin_scale, output=output, path=used)
        return 0, used, out

    def time_bconv2d(self, p, x_packed, w_packed, *, multiplier=None, bias=None, path="auto",
                     warmup: int = 1, iters: int = 3) -> List[float]:
        """Host milliseconds of the reference (stands in for device timing in tests)."""
        def once():
            status, _, _ = self.bconv2d(p, x_packed, w_packed, multiplier=multiplier, bias=bias, path=path)
            if status:
                raise DeviceError(f"lcefr_ref_bconv2d: path {path} refused (status {status})")
        return time_callable(once, runs=iters, warmup=warmup)


class _Buffers:
    """Device allocations of one call, freed together."""

    def __init__(self, lib):
        self.lib = lib
        self.ptrs: List[ctypes.c_void_p] = []

    def alloc(self, nbytes: int, fill: Optional[int] = None) -> ctypes.c_void_p:
        ptr = ctypes.c_void_p()
        self.lib.call("lcefr_gc_malloc", ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 4)))
        self.ptrs.append(ptr)
        if fill is not None:
            self.lib.call("lcefr_gc_fill", ptr, fill, ctypes.c_size_t(nbytes))
        return ptr

    def upload(self, array) -> Optional[ctypes.c_void_p]:
        if array is None:
            return None
        array = np.ascontiguousarray(array)
        ptr = self.alloc(array.nbytes)
        self.lib.call("lcefr_gc_upload", ptr, array.ctypes.data_as(ctypes.c_void_p),
                      ctypes.c_size_t(array.nbytes))
        return ptr

    def download(self, ptr, out: np.ndarray) -> np.ndarray:
        self.lib.call("lcefr_gc_download", out.ctypes.data_as(ctypes.c_void_p), ptr,
                      ctypes.c_size_t(out.nbytes))
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for ptr in self.ptrs:
            self.lib.raw.lcefr_gc_free(ptr)
        self.ptrs = []


class _Library:
    def __init__(self, path):
        raw = ctypes.CDLL(str(path))
        vp, i32, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
        params = ctypes.POINTER(cuda_ref.Params)
        raw.lcefr_gc_last_error.restype = ctypes.c_char_p
        raw.lcefr_gc_device.argtypes = [ctypes.c_char_p, i32] + [ctypes.POINTER(i32)] * 4
        raw.lcefr_gc_malloc.argtypes = [ctypes.POINTER(vp), sz]
        raw.lcefr_gc_free.argtypes = [vp]
        raw.lcefr_gc_upload.argtypes = [vp, vp, sz]
        raw.lcefr_gc_download.argtypes = [vp, vp, sz]
        raw.lcefr_gc_fill.argtypes = [vp, i32, sz]
        raw.lcefr_cuda_pack_activations.argtypes = [vp, i32, i32, i32, i32, i32, vp, vp]
        raw.lcefr_cuda_pack_weights.argtypes = [vp, i32, i32, i32, i32, vp, vp]
        raw.lcefr_cuda_bconv2d.argtypes = [params, vp, vp, vp, vp, vp, vp, vp, i32,
                                           ctypes.POINTER(i32), vp]
        raw.lcefr_gc_time_bconv2d.argtypes = [params, vp, vp, vp, vp, vp, vp, vp, i32, i32, i32,
                                              ctypes.POINTER(ctypes.c_float)]
        self.raw = raw

    def call(self, name: str, *args) -> None:
        status = getattr(self.raw, name)(*args)
        if status:
            detail = self.raw.lcefr_gc_last_error().decode(errors="replace")
            raise DeviceError(f"{name} failed: status {status} {detail}".strip())


class CudaDevice:
    """The ``lcefr_cuda_*`` kernels of a library built by :func:`lcefr.trt.gpu_check.build_library`.

    Outputs are written into device memory filled with 0xFF first, so an element a kernel skips
    reads as NaN (float) or -1 bits (packed) and fails the comparison.
    """

    def __init__(self, library, compiled_arch: int):
        self.lib = _Library(library)
        name = ctypes.create_string_buffer(256)
        major, minor, driver, runtime = (ctypes.c_int() for _ in range(4))
        self.lib.call("lcefr_gc_device", name, 256, ctypes.byref(major), ctypes.byref(minor),
                      ctypes.byref(driver), ctypes.byref(runtime))
        self.name = name.value.decode(errors="replace")
        self.cc = (major.value, minor.value)
        self.driver_version, self.runtime_version = driver.value, runtime.value
        self.compiled_arch = compiled_arch

    def pack_activations(self, x, layout: str) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        n, h, w, c = x.shape if layout == "NHWC" else (x.shape[0], x.shape[2], x.shape[3], x.shape[1])
        out = np.empty((n, h, w, (c + 31) // 32), np.int32)
        with _Buffers(self.lib) as buf:
            src, dst = buf.upload(x), buf.alloc(out.nbytes, fill=0xFF)
            self.lib.call("lcefr_cuda_pack_activations", src, 0 if layout == "NHWC" else 1, n, h, w, c,
                          dst, None)
            self.lib.call("lcefr_gc_synchronize")
            return buf.download(dst, out)

    def pack_weights(self, w_keras) -> np.ndarray:
        w = np.ascontiguousarray(w_keras, np.float32)
        kh, kw, cg, o = w.shape
        out = np.empty((o, kh, kw, (cg + 31) // 32), np.int32)
        with _Buffers(self.lib) as buf:
            src, dst = buf.upload(w), buf.alloc(out.nbytes, fill=0xFF)
            self.lib.call("lcefr_cuda_pack_weights", src, kh, kw, cg, o, dst, None)
            self.lib.call("lcefr_gc_synchronize")
            return buf.download(dst, out)

    def bconv2d(self, p, x_packed, w_packed, *, multiplier=None, bias=None, adabin_scale=None,
                output="float", path="auto"):
        """``(status, used_path, output array or None)``; a refused path is a status, not an error."""
        out = _output_array(p, output)
        used = ctypes.c_int(-1)
        with _Buffers(self.lib) as buf:
            x, w = buf.upload(x_packed), buf.upload(w_packed)
            m, b, a = (buf.upload(_vector(v, p.out_c)) for v in (multiplier, bias, adabin_scale))
            dst = buf.alloc(out.nbytes, fill=0xFF)
            status = self.lib.raw.lcefr_cuda_bconv2d(
                ctypes.byref(p), x, w, m, b, a, dst if output == "float" else None,
                dst if output == "packed" else None, cuda_ref.PATHS[path], ctypes.byref(used), None)
            if status:
                return status, None, None
            self.lib.call("lcefr_gc_synchronize")
            return 0, _PATH_NAMES.get(used.value), buf.download(dst, out)

    def time_bconv2d(self, p, x_packed, w_packed, *, multiplier=None, bias=None, path="auto",
                     warmup: int = 10, iters: int = 50) -> List[float]:
        """Device milliseconds of ``iters`` runs (CUDA events around each), after ``warmup`` runs."""
        out = _output_array(p, "float")
        ms = (ctypes.c_float * iters)()
        with _Buffers(self.lib) as buf:
            x, w = buf.upload(x_packed), buf.upload(w_packed)
            m, b = (buf.upload(_vector(v, p.out_c)) for v in (multiplier, bias))
            dst = buf.alloc(out.nbytes)
            self.lib.call("lcefr_gc_time_bconv2d", ctypes.byref(p), x, w, m, b, None, dst, None,
                          cuda_ref.PATHS[path], warmup, iters, ms)
        return list(ms)
