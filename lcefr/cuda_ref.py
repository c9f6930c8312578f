"""CPU reference of the CUDA binary convolution kernels (``jetson/cuda``), through ctypes.

The shared library ``liblcefr_bconv_ref.so`` is built by g++ from ``jetson/cuda/bconv_ref.cpp``,
which runs the same ``__host__ __device__`` per-element functions (``bconv_common.h``) as the CUDA
kernels. It is built on first use (or by ``make cuda-ref``) into ``build/cuda/``; set
``LCEFR_BCONV_REF_LIB`` to use a library elsewhere.

Bit convention (Larq/LCE): bit 1 means -1 (``x < 0``), bit 0 means +1; packed activations are
NHWC int32 words ``[N, H, W, ceil(C/32)]`` with bit ``i`` of word ``j`` = channel ``32 j + i`` and
zero tail bits; packed weights are ``[O, KH, KW, ceil(Cg/32)]``, ``Cg = C / group``.

``bconv2d`` is the CPU implementation of the ``BinaryConv2d`` ONNX node (x NCHW float,
w_packed int32, multiplier/bias [O]; attributes kernel_shape, strides, pads as
``[top, left, bottom, right]``, group, in_channels, pad_value). The fused output is
``multiplier * acc + bias (+ adabin_scale * boxsum)`` with ``acc`` the +-1 convolution and
``boxsum`` the window sum of the binarized input (EffBin eq. 9 / AdaBin, arXiv:2208.08084;
parameterisation in ``jetson/cuda/README.md``).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = [
    "PATHS",
    "Params",
    "REFERENCE_CASES",
    "bconv2d_packed",
    "case_id",
    "case_inputs",
    "make_params",
    "bconv2d",
    "build_library",
    "library_path",
    "output_shape",
    "pack_activations",
    "pack_weights",
    "select_path",
    "unpack_bits",
]

_REPO = Path(__file__).resolve().parents[1]
_SRC_DIR = _REPO / "jetson" / "cuda"
_SOURCES = ("bconv_ref.cpp", "bconv_common.h", "bconv_api.h")
_DEFAULT_LIB = _REPO / "build" / "cuda" / "liblcefr_bconv_ref.so"
_ABI_VERSION = 1

_LAYOUTS = {"NHWC": 0, "NCHW": 1}
#: Kernel paths of the C API (``LCEFR_PATH_*``); the CPU reference emulates the tensor-core ones.
PATHS = {"auto": 0, "popc": 1, "bmma_xor": 2, "bmma_and": 3}
_PATH_NAMES = {v: k for k, v in PATHS.items()}

_lock = threading.Lock()
_lib = None


class Params(ctypes.Structure):
    """``lcefr_bconv_params`` of ``bconv_api.h`` (shared by the CPU reference and the CUDA library)."""

    _fields_ = [
        (name, ctypes.c_int32)
        for name in (
            "batch", "in_h", "in_w", "in_c",
            "out_c", "kernel_h", "kernel_w", "stride_h", "stride_w",
            "pad_top", "pad_left", "pad_bottom", "pad_right",
            "groups", "pad_value", "out_layout",
            "out_h", "out_w", "group_in_c", "group_out_c", "in_words", "group_words", "out_words",
        )
    ]


def library_path() -> Path:
    """Where the reference library is (or will be built)."""
    env = os.environ.get("LCEFR_BCONV_REF_LIB")
    return Path(env) if env else _DEFAULT_LIB


def _stale(lib: Path) -> bool:
    if not lib.exists():
        return True
    if not _SRC_DIR.is_dir():
        return False
    built = lib.stat().st_mtime
    return any((_SRC_DIR / s).exists() and (_SRC_DIR / s).stat().st_mtime > built for s in _SOURCES)


def build_library(*, force: bool = False) -> Path:
    """Compile ``jetson/cuda/bconv_ref.cpp`` with g++ (``$CXX``) unless the library is up to date.

    A library named by ``LCEFR_BCONV_REF_LIB`` is used as is, never rebuilt.
    """
    if os.environ.get("LCEFR_BCONV_REF_LIB"):
        lib = library_path()
        if not lib.exists():
            raise RuntimeError(f"LCEFR_BCONV_REF_LIB={lib} does not exist")
        return lib
    lib = _DEFAULT_LIB
    if not force and not _stale(lib):
        return lib
    src = _SRC_DIR / "bconv_ref.cpp"
    if not src.exists():
        raise RuntimeError(
            f"Cannot build the bconv reference: {src} is missing (lcefr not run from a source "
            f"checkout); build it elsewhere and set LCEFR_BCONV_REF_LIB"
        )
    wanted = os.environ.get("CXX")
    cxx = shutil.which(wanted) if wanted else shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise RuntimeError(
            f"Cannot build the bconv reference: no C++ compiler ({'CXX=' + wanted if wanted else 'g++'} "
            f"not found; install g++ or set CXX), or run `make cuda-ref` where one exists"
        )
    lib.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=lib.parent)
    os.close(fd)
    cmd = [cxx, "-std=c++14", "-O2", "-fPIC", "-shared", "-o", tmp, str(src)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"Building the bconv reference failed: {' '.join(cmd)}\n{proc.stderr}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, lib)  # atomic: parallel test workers never load a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


def _load():
    global _lib
    with _lock:
        if _lib is None:
            lib = ctypes.CDLL(str(build_library()))
            i32, f32, p = ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(Params)
            ip = ctypes.POINTER(ctypes.c_int32)
            lib.lcefr_ref_abi_version.restype = i32
            lib.lcefr_ref_strerror.restype = ctypes.c_char_p
            lib.lcefr_ref_strerror.argtypes = [i32]
            lib.lcefr_ref_init_params.argtypes = [p]
            lib.lcefr_ref_pack_activations.argtypes = [f32, i32, i32, i32, i32, i32, ip]
            lib.lcefr_ref_pack_weights.argtypes = [f32, i32, i32, i32, i32, ip]
            lib.lcefr_ref_select_path.argtypes = [p, i32, i32, i32]
            lib.lcefr_ref_bconv2d.argtypes = [p, ip, ip, f32, f32, f32, ip, f32, ip, i32]
            if lib.lcefr_ref_abi_version() != _ABI_VERSION:
                raise RuntimeError(
                    f"{library_path()} has ABI {lib.lcefr_ref_abi_version()}, expected "
                    f"{_ABI_VERSION}; rebuild it (make cuda-ref)"
                )
            _lib = lib
    return _lib


def _check(status: int) -> None:
    if status:
        raise ValueError(_load().lcefr_ref_strerror(status).decode())


def _fptr(a):
    return None if a is None else a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def _iptr(a):
    return None if a is None else a.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))


def _layout(layout: str) -> int:
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    return _LAYOUTS[layout]


def _pair(value, name: str) -> tuple[int, int]:
    v = tuple(int(i) for i in np.atleast_1d(value))
    if len(v) == 1:
        v = v * 2
    if len(v) != 2 or min(v) < 1:
        raise ValueError(f"{name} must be two positive integers, got {value!r}")
    return v


def pack_activations(x, layout: str = "NHWC") -> np.ndarray:
    """Bit-pack float activations ``[N,H,W,C]`` / ``[N,C,H,W]`` into int32 ``[N,H,W,ceil(C/32)]``."""
    code = _layout(layout)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"Expected a non-empty 4-D {layout} activation tensor, got shape {x.shape}")
    n, h, w, c = x.shape if code == 0 else (x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    out = np.empty((n, h, w, (c + 31) // 32), np.int32)
    _check(_load().lcefr_ref_pack_activations(_fptr(x), code, n, h, w, c, _iptr(out)))
    return out


def pack_weights(w_keras) -> np.ndarray:
    """Bit-pack a Keras kernel ``[KH,KW,Cg,O]`` into int32 ``[O,KH,KW,ceil(Cg/32)]`` (w < 0 -> bit 1).

    For AdaBin weights pass ``w - beta_w`` so the bits are the signs relative to the centre.
    """
    w = np.ascontiguousarray(w_keras, dtype=np.float32)
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(f"Expected a non-empty Keras kernel [KH, KW, Cg, O], got shape {w.shape}")
    kh, kw, cg, o = w.shape
    out = np.empty((o, kh, kw, (cg + 31) // 32), np.int32)
    _check(_load().lcefr_ref_pack_weights(_fptr(w), kh, kw, cg, o, _iptr(out)))
    return out


def unpack_bits(packed, channels: int) -> np.ndarray:
    """Inverse of the packing: int32 ``[..., ceil(C/32)]`` -> int8 ``[..., C]`` of +-1."""
    packed = np.asarray(packed)
    words = (channels + 31) // 32
    if packed.shape[-1] != words:
        raise ValueError(f"Expected {words} words for {channels} channels, got {packed.shape[-1]}")
    bits = (packed.astype(np.uint32)[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    bits = bits.reshape(*packed.shape[:-1], words * 32)[..., :channels]
    return (1 - 2 * bits).astype(np.int8)


def make_params(x_shape, layout, *, in_channels, out_channels, kernel_shape, strides, pads, group,
            pad_value, out_layout) -> Params:
    """Validated :class:`Params` of one convolution of an input of ``x_shape`` in ``layout``."""
    if layout == "NCHW":
        n, c, h, w = x_shape
    else:
        n, h, w, c = x_shape
    if c != in_channels:
        raise ValueError(f"in_channels={in_channels} but x ({layout}) has {c} channels, shape {x_shape}")
    if group < 1 or c % group:
        raise ValueError(f"in_channels={c} is not divisible by group={group}")
    if group > 1 and (c // group) % 32:
        raise ValueError(
            f"input channels per group must be a multiple of 32 when group > 1, got "
            f"in_channels={c}, group={group} ({c // group} per group)"
        )
    if out_channels % group:
        raise ValueError(f"output channels {out_channels} not divisible by group={group}")
    pads = tuple(int(v) for v in pads)
    if len(pads) != 4 or min(pads) < 0:
        raise ValueError(f"pads must be four non-negative integers (top, left, bottom, right), got {pads}")
    if pad_value not in (0, 1):
        raise ValueError(f"pad_value must be 1 (one-padding) or 0 (zero-padding), got {pad_value!r}")
    kh, kw = kernel_shape
    if h + pads[0] + pads[2] < kh or w + pads[1] + pads[3] < kw:
        raise ValueError(f"kernel {kh}x{kw} larger than the padded {h}x{w} input (pads {pads})")
    p = Params(
        batch=n, in_h=h, in_w=w, in_c=c, out_c=out_channels, kernel_h=kh, kernel_w=kw,
        stride_h=strides[0], stride_w=strides[1], pad_top=pads[0], pad_left=pads[1],
        pad_bottom=pads[2], pad_right=pads[3], groups=group, pad_value=int(pad_value),
        out_layout=_LAYOUTS[out_layout],
    )
    _check(_load().lcefr_ref_init_params(ctypes.byref(p)))
    return p


def output_shape(x_shape, *, out_channels, kernel_shape, strides=(1, 1), pads=(0, 0, 0, 0),
                 layout="NCHW") -> tuple[int, int, int, int]:
    """Output shape of ``bconv2d`` in ``layout`` (ONNX Conv arithmetic, floor division)."""
    _layout(layout)
    n, c, h, w = x_shape if layout == "NCHW" else (x_shape[0], x_shape[3], x_shape[1], x_shape[2])
    kh, kw = _pair(kernel_shape, "kernel_shape")
    sh, sw = _pair(strides, "strides")
    oh = (h + pads[0] + pads[2] - kh) // sh + 1
    ow = (w + pads[1] + pads[3] - kw) // sw + 1
    return (n, out_channels, oh, ow) if layout == "NCHW" else (n, oh, ow, out_channels)


def _vector(v, o: int, name: str):
    if v is None:
        return None
    v = np.ascontiguousarray(v, dtype=np.float32)
    if v.shape != (o,):
        raise ValueError(f"{name} must have shape ({o},), got {v.shape}")
    return v


def bconv2d(x, w_packed, *, in_channels, kernel_shape=None, strides=(1, 1), pads=(0, 0, 0, 0),
            group=1, pad_value=1, multiplier=None, bias=None, adabin_scale=None, layout="NCHW",
            return_acc=False, return_packed=False, path="popc"):
    """Binary 2-D convolution of float activations with bit-packed weights (CPU reference).

    Args:
        x: float activations, ``[N,C,H,W]`` (layout "NCHW") or ``[N,H,W,C]``; binarized inside
            (``x < 0`` -> -1, else +1).
        w_packed: int32 ``[O, KH, KW, ceil(C/group/32)]`` from :func:`pack_weights`.
        in_channels: C (checked against x).
        kernel_shape, strides: ``(kh, kw)`` (None: from w_packed), ``(sh, sw)``; dilation is 1.
        pads: ``(top, left, bottom, right)`` as in ONNX.
        group: channel groups; C/group must be a multiple of 32 when group > 1.
        pad_value: 1 = padded activations are +1 (LCE one-padding), 0 = they contribute 0.
        multiplier, bias, adabin_scale: float ``[O]`` or None (1, 0, no AdaBin term).
        layout: layout of x and of the float output.
        return_acc: return the int32 accumulator (same layout as the output) instead.
        return_packed: return the sign bits of the output, int32 ``[N,OH,OW,ceil(O/32)]``.
        path: "popc" (CUDA-core kernel order) or "bmma_xor" / "bmma_and" (tensor-core kernels'
            decomposition and correction terms, emulated).

    Returns:
        float32 output ``multiplier * acc + bias (+ adabin_scale * boxsum)`` in ``layout``.
    """
    code = _layout(layout)
    if return_acc and return_packed:
        raise ValueError("return_acc and return_packed are exclusive")
    if path not in PATHS:
        raise ValueError(f"path must be one of {sorted(PATHS)}, got {path!r}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"Expected a non-empty 4-D {layout} input, got shape {x.shape}")
    w_packed = np.asarray(w_packed)
    if w_packed.dtype == np.uint32:
        w_packed = w_packed.view(np.int32)
    if w_packed.dtype != np.int32:
        raise ValueError(f"w_packed must be int32, got {w_packed.dtype}")
    w_packed = np.ascontiguousarray(w_packed)
    if kernel_shape is None:
        if w_packed.ndim != 4:
            raise ValueError(f"w_packed must be 4-D [O, KH, KW, words], got shape {w_packed.shape}")
        kernel_shape = w_packed.shape[1:3]
    kh, kw = _pair(kernel_shape, "kernel_shape")
    sh, sw = _pair(strides, "strides")
    group = int(group)
    c = int(in_channels)
    if group < 1 or c % group:
        raise ValueError(f"in_channels={c} is not divisible by group={group}")
    expected = (kh, kw, (c // group + 31) // 32)
    if w_packed.ndim != 4 or w_packed.shape[1:] != expected:
        raise ValueError(
            f"w_packed must have shape (O, {expected[0]}, {expected[1]}, {expected[2]}) for "
            f"kernel {kh}x{kw}, in_channels={c}, group={group}; got {w_packed.shape}"
        )
    o = w_packed.shape[0]
    p = make_params(x.shape, layout, in_channels=c, out_channels=o, kernel_shape=(kh, kw),
                strides=(sh, sw), pads=pads, group=group, pad_value=pad_value, out_layout=layout)
    x_packed = pack_activations(x, layout)
    out_kind = "acc" if return_acc else "packed" if return_packed else "float"
    result = bconv2d_packed(p, x_packed, w_packed, multiplier=multiplier, bias=bias,
                            adabin_scale=adabin_scale, output=out_kind, path=path)
    if return_acc and code == 1:
        return np.ascontiguousarray(result.transpose(0, 3, 1, 2))
    return result


def bconv2d_packed(p: Params, x_packed, w_packed, *, multiplier=None, bias=None, adabin_scale=None,
                   output="float", path="popc") -> np.ndarray:
    """``lcefr_ref_bconv2d`` on packed operands, as the CUDA launcher takes them.

    ``output`` is "float" (in ``p.out_layout``), "packed" (int32 ``[N,OH,OW,ceil(O/32)]``) or
    "acc" (int32 ``[N,OH,OW,O]``). The vectors are float32 ``[O]`` or None.
    """
    if output not in ("float", "packed", "acc"):
        raise ValueError(f"output must be 'float', 'packed' or 'acc', got {output!r}")
    o = p.out_c
    shape = (p.batch, p.out_h, p.out_w, o)
    acc = np.empty(shape, np.int32) if output == "acc" else None
    packed = np.empty((p.batch, p.out_h, p.out_w, p.out_words), np.int32) if output == "packed" else None
    out = None
    if output == "float":
        out = np.empty(shape if p.out_layout == 0 else (p.batch, o, p.out_h, p.out_w), np.float32)
    _check(_load().lcefr_ref_bconv2d(
        ctypes.byref(p), _iptr(np.ascontiguousarray(x_packed, np.int32)),
        _iptr(np.ascontiguousarray(w_packed, np.int32)), _fptr(_vector(multiplier, o, "multiplier")),
        _fptr(_vector(bias, o, "bias")), _fptr(_vector(adabin_scale, o, "adabin_scale")),
        _iptr(acc), _fptr(out), _iptr(packed), PATHS[path],
    ))
    return acc if output == "acc" else packed if output == "packed" else out


def select_path(*, cc: tuple[int, int], in_channels: int, out_channels: int, group: int = 1,
                requested: str = "auto") -> str | None:
    """The kernel path the CUDA launcher takes on compute capability ``cc`` (None: not possible)."""
    if requested not in PATHS:
        raise ValueError(f"requested must be one of {sorted(PATHS)}, got {requested!r}")
    p = make_params((1, in_channels, 1, 1), "NCHW", in_channels=in_channels, out_channels=out_channels,
                kernel_shape=(1, 1), strides=(1, 1), pads=(0, 0, 0, 0), group=group, pad_value=1,
                out_layout="NCHW")
    return _PATH_NAMES.get(_load().lcefr_ref_select_path(ctypes.byref(p), cc[0], cc[1], PATHS[requested]))


def _reference_cases():
    cases = []
    kernels = [((1, 1), (0, 0, 0, 0)), ((3, 3), (1, 1, 1, 1)), ((5, 5), (2, 1, 0, 2)),
               ((1, 3), (0, 1, 0, 2))]
    for i, c in enumerate([1, 3, 31, 32, 33, 63, 64, 96]):
        for j, (k, pads) in enumerate(kernels):
            s = 1 + (i + j) % 2
            cases.append((1 + j % 2, c, 7 + i % 3, 6 + j, 5 + 11 * (i % 3), k, (s, s), pads,
                          1, (i + j // 2) % 2, "NCHW" if (i + j) % 3 else "NHWC"))
    cases += [
        # groups, 32 and 64 input channels per group
        (2, 64, 6, 6, 32, (3, 3), (1, 1), (1, 1, 1, 1), 2, 1, "NCHW"),
        (2, 64, 6, 6, 32, (3, 3), (1, 1), (1, 1, 1, 1), 2, 0, "NHWC"),
        (1, 128, 7, 5, 64, (3, 3), (2, 2), (0, 1, 2, 1), 4, 0, "NCHW"),
        (1, 128, 7, 5, 8, (3, 3), (2, 2), (0, 1, 2, 1), 4, 1, "NHWC"),
        (1, 256, 5, 5, 64, (1, 1), (1, 1), (0, 0, 0, 0), 4, 1, "NCHW"),
        (3, 128, 6, 7, 128, (5, 5), (1, 2), (2, 2, 2, 2), 2, 0, "NCHW"),
        (1, 256, 4, 4, 96, (1, 3), (1, 1), (0, 1, 0, 1), 2, 1, "NHWC"),
        (1, 128, 5, 6, 128, (3, 3), (1, 1), (1, 0, 1, 0), 128 // 32, 0, "NCHW"),
        # depthwise-like: one 32-channel word per group
        (1, 96, 5, 5, 96, (3, 3), (1, 1), (1, 1, 1, 1), 3, 1, "NCHW"),
        # more than one word per tap, tails, asymmetric pads larger than the kernel reach
        (2, 100, 5, 4, 40, (3, 3), (1, 1), (2, 0, 0, 2), 1, 0, "NCHW"),
        (2, 100, 5, 4, 40, (3, 3), (1, 1), (2, 0, 0, 2), 1, 1, "NHWC"),
        (1, 200, 3, 3, 33, (3, 3), (1, 1), (1, 1, 1, 1), 1, 0, "NCHW"),
        (1, 130, 4, 6, 7, (2, 3), (2, 1), (1, 0, 0, 1), 1, 1, "NCHW"),
        # kernel as large as the padded input, stride larger than the kernel
        (1, 16, 3, 3, 4, (5, 5), (1, 1), (1, 1, 1, 1), 1, 0, "NCHW"),
        (2, 40, 9, 9, 6, (1, 1), (3, 3), (0, 0, 0, 0), 1, 1, "NHWC"),
        (1, 48, 8, 8, 20, (3, 3), (2, 2), (0, 0, 1, 1), 1, 0, "NCHW"),
        # a 112x112-face-like stem row, batch 4
        (4, 3, 12, 12, 16, (3, 3), (2, 2), (1, 1, 1, 1), 1, 1, "NCHW"),
        (4, 64, 6, 6, 64, (3, 3), (1, 1), (1, 1, 1, 1), 1, 0, "NCHW"),
    ]
    return tuple(cases)


#: The shape table every kernel path is checked on (the CPU tests and the GPU check):
#: ``(n, c, h, w, o, (kh, kw), (sh, sw), (top, left, bottom, right), group, pad_value, layout)``.
REFERENCE_CASES = _reference_cases()


def case_id(case) -> str:
    """A short unique name of a :data:`REFERENCE_CASES` row."""
    n, c, h, w, o, (kh, kw), (sh, sw), pads, group, pad_value, layout = case
    return (f"n{n}c{c}_{h}x{w}o{o}_k{kh}x{kw}s{sh}x{sw}_p{''.join(map(str, pads))}"
            f"_g{group}_pv{pad_value}_{layout}")


def case_inputs(case, seed: int = 0):
    """Float activations (in the case's layout, every 7th value 0.0) and a Keras kernel."""
    n, c, h, w, o, (kh, kw), _, _, group, _, layout = case
    rng = np.random.default_rng(seed + c * 7 + o)
    shape = (n, c, h, w) if layout == "NCHW" else (n, h, w, c)
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[::7] = 0.0  # zeros binarize to +1
    w_keras = rng.standard_normal((kh, kw, c // group, o)).astype(np.float32)
    return x, w_keras
