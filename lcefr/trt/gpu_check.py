"""One command that verifies the CUDA binary-convolution kernels on an NVIDIA GPU and times them.

``make gpu-check`` or ``python3 -m lcefr.trt.gpu_check [--json] [--out DIR] [--quick]``, run from
the source tree on the GPU machine (no install, no network: numpy, PyTorch and the standard library;
TensorRT only if it imports). It

1. finds the GPU (driver library ``libcuda.so.1``), ``nvcc`` and PyTorch, and says in one line,
   exit 2, which one is missing;
2. builds ``jetson/cuda/bconv_kernels.cu`` with the check helpers (``bconv_gpu_check.cu``) as a
   shared library for the local GPU's architecture, plus, on sm_80+, a second one from compute_75
   PTX only (the launcher must fall back from the AND to the XOR tensor-core kernel), and the CPU
   reference (g++);
3. runs every launcher path the device has (CUDA-core ``__popc`` XOR; b1 tensor-core XOR on sm_75+,
   AND on sm_80+; ``auto``) over :data:`lcefr.cuda_ref.REFERENCE_CASES` (one- and zero-padding,
   groups, NCHW and NHWC) with plain, folded-BatchNorm and AdaBin epilogues, float and bitpacked
   outputs, and compares bit-exactly with the CPU reference (the epilogue's multipliers, biases
   and AdaBin scales are dyadic, so every fused output is exact in float32 on both sides);
4. times each binary path against the same layer as a PyTorch/cuDNN convolution in FP32, TF32 and
   FP16 (channels-last), and as a one-layer TensorRT engine in FP16 and INT8 when TensorRT 8.5+
   imports (:mod:`lcefr.trt.gpu_trt`), on IResNet-18's convolutions (seed 000's layer shapes, the
   table of :mod:`lcefr.trt.microbench`) at batch 1 and 64: CUDA events, warm-up, medians;
5. writes ``reports/gpu-check-<gpu>-<UTC>.{json,md}`` (and ``.png`` when matplotlib imports) and
   prints the tables. Exit 0: every comparison passed; 1: one failed.
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from lcefr import cuda_ref
from lcefr.trt import gpu_trt
from lcefr.trt.cuda_device import E_PATH, CudaDevice, DeviceError, expected_path
from lcefr.trt.shapes import IR18_CONVS

__all__ = ["Missing", "build_library", "check_kernels", "compare", "find_nvcc", "gpu_slug", "main",
           "probe_gpu", "summarize", "time_layers", "write_report"]

REPO = Path(__file__).resolve().parents[2]
CUDA_DIR = REPO / "jetson" / "cuda"
SOURCES = ("bconv_kernels.cu", "bconv_gpu_check.cu")
HEADERS = ("bconv_api.h", "bconv_common.h")
REQUESTS = ("auto", "popc", "bmma_xor", "bmma_and")
EPILOGUES = ("acc", "bn", "bn+adabin")
BATCHES = (1, 64)
TORCH_MODES = ("fp32", "tf32", "fp16")


class Missing(Exception):
    """A piece the check needs is not on this machine; ``piece`` names it."""

    def __init__(self, piece: str, message: str):
        super().__init__(message)
        self.piece = piece


# ---- what is on the machine -------------------------------------------------------------------


def probe_gpu() -> Dict:
    """Loads the driver and counts devices; raises :class:`Missing` ("GPU" or "driver")."""
    devices = glob.glob("/dev/nvidia[0-9]*") + glob.glob("/dev/nvhost-ctrl-gpu")
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        if not devices and not os.path.exists("/proc/driver/nvidia"):
            raise Missing("GPU", "no NVIDIA GPU found: no /dev/nvidia* device and no NVIDIA driver "
                                 "(libcuda.so.1); run gpu-check on a machine with an NVIDIA GPU")
        raise Missing("driver", "NVIDIA driver missing: a GPU device node exists but libcuda.so.1 cannot "
                                "be loaded; install the NVIDIA driver")
    status = cuda.cuInit(0)
    if status == 100:
        raise Missing("GPU", "no NVIDIA GPU found: the driver sees none (cuInit: CUDA_ERROR_NO_DEVICE)")
    if status:
        why = " (the driver is older than this CUDA)" if status == 35 else ""
        raise Missing("driver", f"NVIDIA driver not usable: cuInit returned {status}{why}")
    count, version, major, minor = (ctypes.c_int() for _ in range(4))
    cuda.cuDeviceGetCount(ctypes.byref(count))
    cuda.cuDriverGetVersion(ctypes.byref(version))
    if count.value < 1:
        raise Missing("GPU", "no NVIDIA GPU found: the driver reports 0 devices")
    device = ctypes.c_int()
    cuda.cuDeviceGet(ctypes.byref(device), 0)
    # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device)
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device)
    return {"devices": count.value, "driver_api": version.value, "cc": (major.value, minor.value)}


def find_nvcc() -> str:
    """``$NVCC``, ``nvcc`` on PATH, ``$CUDA_HOME/bin/nvcc`` or ``/usr/local/cuda/bin/nvcc``."""
    wanted = os.environ.get("NVCC")
    if wanted:
        found = shutil.which(wanted)
        if not found:
            raise Missing("nvcc", f"nvcc missing: NVCC={wanted} is not an executable")
        return found
    candidates = [shutil.which("nvcc")]
    candidates += [os.path.join(os.environ[v], "bin", "nvcc") for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    candidates += ["/usr/local/cuda/bin/nvcc"]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    raise Missing("nvcc", "nvcc missing: no CUDA compiler on PATH, in $CUDA_HOME/bin or /usr/local/cuda/bin "
                          "(install the CUDA toolkit or set NVCC=/path/to/nvcc)")


def import_torch(required: bool):
    """PyTorch with a usable CUDA device, or None when not required; raises :class:`Missing`."""
    try:
        import torch  # optional heavy import: only the cuDNN timings need it
    except ImportError:
        if not required:
            return None
        raise Missing("PyTorch", "PyTorch missing: the cuDNN timings need it (pip install torch), "
                                 "or pass --no-torch to check the kernels without them")
    if not torch.cuda.is_available():
        if not required:
            return None
        raise Missing("PyTorch", f"PyTorch {torch.__version__} has no CUDA device (a CPU-only build?); "
                                 "install a CUDA build or pass --no-torch")
    return torch


def import_tensorrt():
    """The ``tensorrt`` module, or None."""
    try:
        import tensorrt  # optional: the TensorRT rows
    except ImportError:
        return None
    return tensorrt


# ---- building ---------------------------------------------------------------------------------


def _nvcc_version(nvcc: str) -> str:
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"release ([0-9.]+)", out)
    return found.group(1) if found else "unknown"


def build_library(nvcc: str, gencode: Sequence[str], out: Path) -> Path:
    """Compiles the kernels and the check helpers into ``out`` unless it is newer than the sources."""
    sources = [CUDA_DIR / s for s in SOURCES]
    newest = max(p.stat().st_mtime for p in sources + [CUDA_DIR / h for h in HEADERS])
    stamp = out.with_suffix(".cmd")
    cmd = [nvcc, "-std=c++14", "-O3", "-shared", "-Xcompiler", "-fPIC", *gencode, *map(str, sources)]
    if out.exists() and out.stat().st_mtime >= newest and stamp.exists() and stamp.read_text() == " ".join(cmd):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run(cmd + ["-o", tmp], capture_output=True, text=True)
        if proc.returncode:
            unsupported = re.search(r"[Uu]nsupported gpu architecture '([^']+)'", proc.stderr)
            if unsupported:
                raise Missing("nvcc", f"nvcc {_nvcc_version(nvcc)} cannot compile for {unsupported.group(1)} "
                                      "(this GPU); use a CUDA toolkit that supports it")
            raise RuntimeError(f"nvcc failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")
        os.replace(tmp, out)
        stamp.write_text(" ".join(cmd))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def gencode_for(arch: int, *, sass: bool = True) -> List[str]:
    code = f"[sm_{arch},compute_{arch}]" if sass else f"compute_{arch}"
    return ["-gencode", f"arch=compute_{arch},code={code}"]


# ---- correctness ------------------------------------------------------------------------------


def _dyadic(rng, values, n):
    return rng.choice(np.asarray(values, np.float32), n).astype(np.float32)


def epilogue(kind: str, out_c: int, seed: int):
    """``(multiplier, bias, adabin_scale)``: dyadic values, so the fused output is exact in float32
    whatever the order of operations or FMA contraction on either side."""
    if kind == "acc":
        return None, None, None
    rng = np.random.default_rng(seed)
    mult = _dyadic(rng, (-2, -1, -0.5, -0.25, 0.25, 0.5, 1, 2), out_c)
    bias = (rng.integers(-8, 9, out_c) + 0.5).astype(np.float32)
    ada = _dyadic(rng, (-0.5, -0.25, 0.25, 0.5), out_c) if kind == "bn+adabin" else None
    return mult, bias, ada


def compare(got: Optional[np.ndarray], want: np.ndarray) -> Dict:
    """Bit-exact comparison: ``mismatches`` (elements whose bits differ), ``max_abs_error``."""
    if got is None or got.shape != want.shape:
        return {"mismatches": int(want.size), "max_abs_error": float("inf")}
    bits_got = np.ascontiguousarray(got).view(np.uint32)
    bits_want = np.ascontiguousarray(want).view(np.uint32)
    mismatches = int(np.count_nonzero(bits_got != bits_want))
    if want.dtype == np.float32:
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        err = float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0
    else:  # packed words: differing sign bits
        err = float(np.unpackbits((bits_got ^ bits_want).view(np.uint8)).sum())
    return {"mismatches": mismatches, "max_abs_error": err}


def _features(case) -> List[str]:
    n, c, h, w, o, k, s, pads, group, pad_value, layout = case
    out = ["one-padding" if pad_value else "zero-padding", layout]
    if group > 1:
        out.append("groups")
    return out


def check_kernels(device, cases=cuda_ref.REFERENCE_CASES, *, label: str = "native",
                  progress=None) -> List[Dict]:
    """Every request path x epilogue x output kind over ``cases``, the device against the CPU
    reference; one row each (plus the packing kernels per case)."""
    rows: List[Dict] = []
    for i, case in enumerate(cases):
        n, c, h, w, o, k, s, pads, group, pad_value, layout = case
        name = cuda_ref.case_id(case)
        x, w_keras = cuda_ref.case_inputs(case)
        x_packed, w_packed = cuda_ref.pack_activations(x, layout), cuda_ref.pack_weights(w_keras)
        base = {"library": label, "case": name, "features": _features(case)}
        if label == "native":
            rows.append(dict(base, check="pack_activations", path="-", output="packed",
                             **compare(device.pack_activations(x, layout), x_packed)))
            rows.append(dict(base, check="pack_weights", path="-", output="packed",
                             **compare(device.pack_weights(w_keras), w_packed)))
        p = cuda_ref.make_params(x.shape, layout, in_channels=c, out_channels=o, kernel_shape=k, strides=s,
                                 pads=pads, group=group, pad_value=pad_value, out_layout=layout)
        for requested in REQUESTS:
            want_path = expected_path(cc=device.cc, compiled_arch=device.compiled_arch, in_channels=c,
                                      out_channels=o, group=group, requested=requested)
            for kind in EPILOGUES:
                for output in (("float", "packed") if kind == "bn" else ("float",)):
                    mult, bias, ada = epilogue(kind, o, seed=i)
                    status, used, got = device.bconv2d(p, x_packed, w_packed, multiplier=mult, bias=bias,
                                                       adabin_scale=ada, output=output, path=requested)
                    row = dict(base, check="bconv2d", requested=requested, expected_path=want_path,
                               path=used or f"{requested}: refused", epilogue=kind, output=output, status=status)
                    if want_path is None:
                        ok = status == E_PATH
                        row.update(mismatches=0 if ok else 1, max_abs_error=0.0,
                                   note="refused as expected" if ok else f"expected refusal, got status {status}")
                    else:
                        want = cuda_ref.bconv2d_packed(p, x_packed, w_packed, multiplier=mult, bias=bias,
                                                       adabin_scale=ada, output=output, path=want_path)
                        row.update(compare(got if status == 0 else None, want))
                        if status:
                            row["note"] = f"status {status}"
                        elif used != want_path:
                            row["mismatches"] = max(row["mismatches"], 1)
                            row["note"] = f"launcher took {used}, expected {want_path}"
                    rows.append(row)
        if progress:
            progress(i + 1, len(cases))
    for row in rows:
        row["pass"] = row["mismatches"] == 0
    return rows


def summarize(rows: Sequence[Dict]) -> List[Dict]:
    """Per library, path and output: rows, passed, failed, max abs error."""
    groups: Dict[Tuple, Dict] = {}
    for r in rows:
        key = (r["library"], r["check"], r["path"], r.get("epilogue", "-"), r["output"])
        g = groups.setdefault(key, {"library": key[0], "check": key[1], "path": key[2], "epilogue": key[3],
                                    "output": key[4], "rows": 0, "passed": 0, "max_abs_error": 0.0})
        g["rows"] += 1
        g["passed"] += bool(r["pass"])
        g["max_abs_error"] = max(g["max_abs_error"], r["max_abs_error"])
    order = {name: i for i, name in enumerate(("-",) + REQUESTS)}
    out = sorted(groups.values(), key=lambda g: (g["library"] != "native", g["check"] != "pack_activations",
                                                 g["check"], order.get(g["path"], 9), g["path"], g["epilogue"]))
    for g in out:
        g["failed"] = g["rows"] - g["passed"]
        g["pass"] = g["failed"] == 0
    return out


# ---- timing -----------------------------------------------------------------------------------


def binary_paths(cc: Tuple[int, int], compiled_arch: int) -> List[str]:
    paths = ["popc"]
    if cc >= (7, 5) and compiled_arch >= 75:
        paths.append("bmma_xor")
    if cc >= (8, 0) and compiled_arch >= 80:
        paths.append("bmma_and")
    return paths


def _torch_ms(torch, layer, batch: int, mode: str, warmup: int, iters: int) -> float:
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    dtype = torch.float16 if mode == "fp16" else torch.float32
    fmt = torch.channels_last if mode == "fp16" else torch.contiguous_format
    x = torch.randn(batch, layer.cin, layer.size, layer.size, device="cuda", dtype=dtype).to(memory_format=fmt)
    w = torch.randn(layer.cout, layer.cin, layer.kernel, layer.kernel, device="cuda", dtype=dtype).to(memory_format=fmt)
    with torch.no_grad():
        return gpu_trt.event_ms(torch, lambda: torch.nn.functional.conv2d(x, w, stride=layer.stride, padding=layer.pad),
                                warmup=warmup, iters=iters)


def time_layers(device, torch=None, *, trt=None, layers=IR18_CONVS, batches=BATCHES, warmup: int = 10,
                iters: int = 50, progress=None) -> List[Dict]:
    """Median device ms of each binary path, each PyTorch mode and (with ``trt``) each TensorRT
    precision per (layer, batch); ``speedup`` is every baseline's time over the best binary path's."""
    rows = []
    paths = binary_paths(device.cc, device.compiled_arch)
    rng = np.random.default_rng(0)
    jobs = [(layer, batch) for batch in batches for layer in layers]
    for j, (layer, batch) in enumerate(jobs):
        p = cuda_ref.make_params((batch, layer.size, layer.size, layer.cin), "NHWC", in_channels=layer.cin,
                                 out_channels=layer.cout, kernel_shape=(layer.kernel, layer.kernel),
                                 strides=(layer.stride, layer.stride), pads=(layer.pad,) * 4, group=1,
                                 pad_value=1, out_layout="NHWC")
        words = (layer.cin + 31) // 32
        x_packed = rng.integers(-2 ** 31, 2 ** 31, (batch, layer.size, layer.size, words), dtype=np.int64).astype(np.int32)
        if layer.cin % 32:
            x_packed[..., -1] &= (1 << (layer.cin % 32)) - 1
        w_packed = cuda_ref.pack_weights(rng.standard_normal((layer.kernel, layer.kernel, layer.cin, layer.cout)).astype(np.float32))
        mult, bias = np.full(layer.cout, 0.5, np.float32), np.zeros(layer.cout, np.float32)
        row = {"layer": layer.index, "batch": batch, "in_channels": layer.cin, "out_channels": layer.cout,
               "kernel": layer.kernel, "stride": layer.stride, "size": layer.size,
               "macs": batch * layer.cout * layer.cin * layer.kernel ** 2 * p.out_h * p.out_w, "ms": {}}
        for path in paths:
            row["ms"][path] = float(statistics.median(device.time_bconv2d(p, x_packed, w_packed, multiplier=mult, bias=bias,
                                                          path=path, warmup=warmup, iters=iters)))
        if torch is not None:
            for mode in TORCH_MODES:
                row["ms"][f"cudnn-{mode}"] = _torch_ms(torch, layer, batch, mode, warmup, iters)
        if trt is not None and torch is not None:
            for precision in gpu_trt.PRECISIONS:
                engine = gpu_trt.conv_engine(trt, layer, batch, precision)
                row["ms"][f"tensorrt-{precision}"] = gpu_trt.engine_ms(torch, engine, layer, batch,
                                                                       warmup=warmup, iters=iters)
        best = min(paths, key=lambda k: row["ms"][k])
        row["best_binary"] = best
        row["speedup"] = {f"vs-{k}": v / row["ms"][best] for k, v in row["ms"].items() if k not in paths}
        rows.append(row)
        if progress:
            progress(j + 1, len(jobs))
    return rows


# ---- report -----------------------------------------------------------------------------------


def gpu_slug(name: str) -> str:
    """The device name lowercased, every run of other characters turned into ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def markdown(report: Dict) -> str:
    lines = [f"# GPU check: {report['gpu']['name']} (sm_{report['gpu']['arch']})", "",
             f"{report['started_utc']}; driver {report['gpu']['driver']}, runtime {report['gpu']['runtime']}, "
             f"nvcc {report['nvcc']['version']}; PyTorch {report['torch'] or 'not used'}; "
             f"TensorRT {report['tensorrt'] or 'not importable (no TensorRT rows)'}.", "",
             f"**Correctness: {'PASS' if report['passed'] else 'FAIL'}** ({report['rows_passed']}/{report['rows']} "
             "comparisons bit-exact with the CPU reference)", "",
             "| library | check | path | epilogue | output | rows | failed | max abs error |",
             "|---|---|---|---|---|---:|---:|---:|"]
    for g in report["summary"]:
        lines.append(f"| {g['library']} | {g['check']} | {g['path']} | {g['epilogue']} | {g['output']} | "
                     f"{g['rows']} | {g['failed']} | {g['max_abs_error']:g} |")
    failures = [r for r in report["kernels"] if not r["pass"]]
    if failures:
        lines += ["", f"First failures ({len(failures)} in all):", ""]
        lines += [f"- {r['library']} {r['case']} {r['check']} {r.get('requested', '')} {r.get('epilogue', '')} "
                  f"{r['output']}: {r['mismatches']} mismatches, max abs error {r['max_abs_error']:g} "
                  f"{r.get('note', '')}".rstrip() for r in failures[:20]]
    if report["timing"]:
        keys = list(report["timing"][0]["ms"])
        baselines = [k[3:] for k in report["timing"][0]["speedup"]]
        lines += ["", "## Time per layer (median device ms; IResNet-18 convolutions, binary: NHWC float out)", "",
                  "| layer | batch | cin->cout | k/s | size | " + " | ".join(keys)
                  + f" | best binary vs {' / '.join(baselines) or '-'} |",
                  "|---:|---:|---|---|---:|" + "---:|" * len(keys) + "---|"]
        for r in report["timing"]:
            sp = " / ".join(f"{v:.2f}x" for v in r["speedup"].values())
            lines.append(f"| {r['layer']} | {r['batch']} | {r['in_channels']}->{r['out_channels']} | "
                         f"{r['kernel']}/{r['stride']} | {r['size']} | " + " | ".join(f"{r['ms'][k]:.4f}" for k in keys)
                         + f" | {r['best_binary']} {sp or '-'} |")
    pe = report.get("plugin_engine")
    if pe:
        verdict = "PASS" if pe.get("pass") else "FAIL"
        detail = pe.get("error") or f"cosine min {pe['cosine_min']:.6f}, max abs diff {pe['max_abs_diff']:.3g}"
        lines += ["", f"**Plugin engine ({pe['onnx']}) vs onnxruntime: {verdict}** ({detail})"]
    lines += ["", *(f"- {n}" for n in report["notes"])] if report["notes"] else []
    return "\n".join(lines) + "\n"


def _plot(report: Dict, path: Path) -> Optional[Path]:
    try:
        import matplotlib  # optional
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in report["timing"] if r["speedup"]]
    if not rows:
        return None
    fig, axes = plt.subplots(1, len(BATCHES), figsize=(12, 4), sharey=True, squeeze=False)
    for ax, batch in zip(axes[0], BATCHES):
        sub = [r for r in rows if r["batch"] == batch]
        xs = np.arange(len(sub))
        for i, m in enumerate(TORCH_MODES):
            ax.bar(xs + (i - 1) * 0.27, [r["speedup"].get(f"vs-cudnn-{m}", 0) for r in sub], 0.27, label=f"vs cuDNN {m}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(xs, [str(r["layer"]) for r in sub])
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("IResNet-18 conv")
    axes[0][0].set_ylabel("speedup of the best binary path")
    axes[0][0].legend()
    fig.suptitle(f"{report['gpu']['name']}: binary conv vs cuDNN")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(report: Dict, out_dir) -> Dict[str, str]:
    """``<out>/gpu-check-<gpu>-<UTC>.{json,md}`` (+ ``.png`` with matplotlib); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = report["started_utc"].replace("-", "").replace(":", "")
    base = out / f"gpu-check-{gpu_slug(report['gpu']['name'])}-{stamp}"
    paths = {"json": base.with_suffix(".json"), "md": base.with_suffix(".md")}
    _write_atomic(paths["json"], json.dumps(report, indent=1, default=float) + "\n")
    _write_atomic(paths["md"], markdown(report))
    png = _plot(report, base.with_suffix(".png"))
    if png:
        paths["png"] = png
    return {k: str(v) for k, v in paths.items()}


# ---- the command ------------------------------------------------------------------------------


def _progress(label: str, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None

    def show(i, n):
        print(f"\r{label}: {i}/{n}", end="" if i < n else "\n", file=sys.stderr, flush=True)
    return show


def run(args) -> Tuple[Dict, int]:
    """The whole check; returns the report and the exit code (0 pass, 1 a comparison failed)."""
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.monotonic()
    gpu = probe_gpu()
    nvcc = find_nvcc()
    torch = import_torch(required=not args.no_torch)
    cuda_ref.build_library()
    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))

    build = Path(args.build)
    arch = 10 * gpu["cc"][0] + gpu["cc"][1]
    native = CudaDevice(build_library(nvcc, gencode_for(arch), build / f"sm_{arch}" / "liblcefr_bconv_check.so"),
                        compiled_arch=arch)
    nvcc_version = _nvcc_version(nvcc)
    log(f"{native.name}: sm_{arch}, nvcc {nvcc_version}, driver {native.driver_version}")
    notes = []
    cases = cuda_ref.REFERENCE_CASES
    rows = check_kernels(native, cases, label="native", progress=_progress("kernels", args.json))
    if arch >= 80:  # a compute_75-only library: AUTO falls back from AND to XOR, AND is refused
        fallback = CudaDevice(build_library(nvcc, gencode_for(75, sass=False),
                                            build / "compute_75" / "liblcefr_bconv_check.so"), compiled_arch=75)
        rows += check_kernels(fallback, cases[::3], label="compute_75 PTX", progress=_progress("fallback", args.json))
    else:
        notes.append(f"fallback library not built: sm_{arch} has no newer tensor-core path to fall back from "
                     "that nvcc can leave out (CUDA 13 targets compute_75 and newer)")
    trt = import_tensorrt()
    if trt is None:
        notes.append("TensorRT is not importable: no TensorRT FP16/INT8 rows")
    elif gpu_trt.unsupported(trt):
        notes.append(gpu_trt.unsupported(trt))
        trt = None
    elif torch is None:
        notes.append("TensorRT rows need PyTorch for device buffers: none with --no-torch")
    if torch is None:
        notes.append("--no-torch: no cuDNN rows")
    plugin_engine = _plugin_engine(args, trt, torch, build, notes)
    iters = 20 if args.quick else 100
    layers = IR18_CONVS[::3] if args.quick else IR18_CONVS
    timing = time_layers(native, torch, trt=trt, layers=layers, batches=BATCHES, iters=iters,
                         progress=_progress("timing", args.json))
    summary = summarize(rows)
    passed = sum(r["pass"] for r in rows)
    report = {
        "started_utc": started, "seconds": round(time.monotonic() - t0, 1), "quick": bool(args.quick),
        "gpu": {"name": native.name, "arch": arch, "cc": list(native.cc), "driver": native.driver_version,
                "runtime": native.runtime_version},
        "host": {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine()},
        "nvcc": {"path": nvcc, "version": nvcc_version},
        "torch": None if torch is None else f"{torch.__version__} (cuDNN {torch.backends.cudnn.version()})",
        "tensorrt": None if trt is None else str(trt.__version__), "rows": len(rows), "rows_passed": passed, "passed": passed == len(rows),
        "summary": summary, "kernels": rows, "timing": timing, "plugin_engine": plugin_engine, "notes": notes,
    }
    ok = report["passed"] and (plugin_engine is None or plugin_engine.get("pass", False))
    return report, 0 if ok else 1


def _plugin_engine(args, trt, torch, build: Path, notes: List[str]) -> Optional[Dict]:
    """The plugin engine of an onnx-binary export against onnxruntime, when everything it needs is here."""
    onnx = Path(args.onnx) if args.onnx else REPO / "build" / "models" / "quicknet_small.onnx"
    has_ort = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnxruntime_extensions"))
    missing = [what for what, ok in (("TensorRT", trt is not None), ("PyTorch", torch is not None),
                                     ("onnxruntime and onnxruntime-extensions", has_ort),
                                     (f"an onnx-binary export ({onnx})", onnx.is_file())) if not ok]
    if missing:
        notes.append("no plugin engine check: needs " + ", ".join(missing) + " (make build/models/quicknet_small.onnx "
                     "on the host, copy it here, pass --onnx)")
        return None
    try:
        return gpu_trt.plugin_engine_check(trt, torch, onnx, plugin=args.plugin, build_dir=build)
    except Exception as err:  # any TensorRT, build or runtime failure is a failed check, reported
        return {"onnx": str(onnx), "pass": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lcefr.trt.gpu_check",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="reports", help="report folder (default: reports)")
    parser.add_argument("--build", default=str(REPO / "build" / "gpu-check"),
                        help="where the libraries are built (default: build/gpu-check)")
    parser.add_argument("--quick", action="store_true", help="every third layer, 20 timed runs (under 2 minutes)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-torch", action="store_true", help="check the kernels without PyTorch (no cuDNN rows)")
    parser.add_argument("--onnx", help="onnx-binary --domain trt export for the plugin engine check "
                                       "(default: build/models/quicknet_small.onnx)")
    parser.add_argument("--plugin", help="BinaryConv2d plugin library (default: build/trt/libbinaryconv_plugin.so "
                                         "or `make trt`)")
    args = parser.parse_args(argv)
    try:
        report, code = run(args)
    except Missing as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        return 2
    except (DeviceError, RuntimeError, OSError) as err:
        print(f"gpu-check: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    written = write_report(report, args.out)
    if args.json:
        print(json.dumps(report, default=float))
    else:
        print(markdown(report))
        print("report: " + ", ".join(written.values()))
    return code


if __name__ == "__main__":
    sys.exit(main())
