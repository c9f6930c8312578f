"""The per-op cost model: features of each operator and the fitted coefficients that turn them into
instructions per inference on ARMv8.0 (Cortex-A57/A53/A72 run the same code paths).

Each op belongs to a cost class (``bconv.default``, ``float.xnnpack.conv``, ``int8.builtin.add``, ...)
whose cost is a dot product of its features with that class's coefficients. The coefficients live
in ``data/coefficients.json`` with their provenance; ``scripts/fit_cost_model.py`` fits them to
instruction counts (``../shared/reference/arm-a57.md`` for LCE ops; ``data/a57_counts.json`` measured
with ``lcefr bench --emulate cortex-a57`` for float and int8 ops).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Tuple

from lcefr.estimate.ops import OpInfo

__all__ = ["FEATURES", "cost_class", "features", "Coefficients", "load_coefficients", "COEFFICIENTS_PATH"]

#: input size (H x W x Cin bits) from which the indirect kernel's ungrouped layers take the slow path
INDIRECT_LARGE_INPUT_BITS = 28 * 28 * 128
COEFFICIENTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "coefficients.json")

#: feature names per family of cost classes
FEATURES = {
    "bconv": ("binary_macs", "float_out", "packed_out", "im2col_words", "op"),
    "conv": ("macs", "out", "in", "op"),
    "conv_grouped": ("macs", "out", "in", "op"),
    "depthwise": ("macs", "out", "op"),
    "fc": ("macs", "out", "op"),
    "pool": ("window_elements", "op"),
    "mean": ("in", "op"),
    "elementwise": ("out", "op"),
    "copy": ("out", "op"),
    "free": ("op",),
    "lce_quantize": ("in", "op"),
}
_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "PRELU", "SIGN", "RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH",
                "HARD_SWISH", "MAXIMUM", "MINIMUM", "LEAKY_RELU", "ABS", "SQRT", "RSQRT", "SQUARE", "EXP", "NEG",
                "QUANTIZE", "DEQUANTIZE", "L2_NORMALIZATION", "SQUARED_DIFFERENCE", "LceDequantize"}
_COPY = {"PAD", "PADV2", "CONCATENATION", "TRANSPOSE", "STRIDED_SLICE", "SLICE", "SPLIT", "GATHER", "TILE"}
_FREE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"}
_POOL = {"MAX_POOL_2D", "AVERAGE_POOL_2D", "LceBMaxPool2d"}


def family(op: str) -> str:
    if op == "LceBconv2d":
        return "bconv"
    if op == "LceQuantize":
        return "lce_quantize"
    if op == "CONV_2D":
        return "conv"
    if op == "DEPTHWISE_CONV_2D":
        return "depthwise"
    if op == "FULLY_CONNECTED":
        return "fc"
    if op in _POOL:
        return "pool"
    if op in ("MEAN", "SUM", "REDUCE_MAX"):
        return "mean"
    if op in _FREE:
        return "free"
    if op in _COPY:
        return "copy"
    return "elementwise"


def _input_bits(info: OpInfo) -> int:
    shape = info.in_shape
    return shape[1] * shape[2] * (info.cin // max(1, info.groups)) if len(shape) == 4 else 0


def cost_class(info: OpInfo, *, kernel: str, float_ops: str) -> Tuple[str, str]:
    """(class, fallback class) of an op: bconv per LCE kernel; float/int8 ops per --float-ops mode."""
    fam = family(info.op)
    if fam == "bconv":
        # LCE 0.16's indirect aarch64 kernel runs layers with a large input per group 6-8x slower per binary
        # MAC (reference section 3b and its whole models: every slow layer has H x W x Cin/groups >= 28 x 28 x 128
        # bits in, every fast one less, e.g. 28x28x64 in QuickNet at 112x112 or 28x28x128 in 4 groups): its own class
        if kernel == "indirect" and _input_bits(info) >= INDIRECT_LARGE_INPUT_BITS:
            return "bconv.indirect_large", "bconv.indirect_large"
        return f"bconv.{kernel}", f"bconv.{kernel}"
    if fam == "lce_quantize":
        return "lce_quantize", "lce_quantize"
    kind = "int8" if info.quantized else "float"
    name = info.op.lower() if fam in ("elementwise", "copy", "pool", "mean") else fam
    if fam == "conv" and info.groups > 1:  # grouped: TFLite's builtin kernels take a slow path (BinaryFaceNet)
        name = "conv_grouped"
    return f"{kind}.{float_ops}.{name}", f"{kind}.{float_ops}.{fam}"


def features(info: OpInfo) -> List[float]:
    fam = family(info.op)
    out, inp = float(info.out_elements), float(info.in_elements)
    if fam == "bconv":
        # output elements in channels, also where the tensor is bitpacked (its last dim counts 32-bit words)
        pixels = float(info.out_shape[1] * info.out_shape[2]) if len(info.out_shape) == 4 else 0.0
        channels = pixels * info.cout
        depth_words = info.kernel[0] * info.kernel[1] * (info.cin // max(1, info.groups)) / 32.0
        return [float(info.macs), 0.0 if info.bitpacked_out else channels, channels if info.bitpacked_out else 0.0,
                pixels * depth_words * info.groups, 1.0]
    if fam == "conv":
        return [float(info.macs), out, inp, 1.0]
    if fam in ("depthwise", "fc"):
        return [float(info.macs), out, 1.0]
    if fam == "pool":
        window = info.kernel[0] * info.kernel[1] if info.kernel else 4
        return [out * window, 1.0]
    if fam in ("mean", "lce_quantize"):
        return [inp, 1.0]
    if fam == "free":
        return [1.0]
    return [out, 1.0]


class Coefficients:
    """Fitted coefficients per cost class, the CPUs' IPC ranges and clocks, and provenance."""

    def __init__(self, data: Dict):
        self.data = data
        self.classes: Dict[str, List[float]] = {k: v["values"] for k, v in data.get("classes", {}).items()}
        self.cpus: Dict[str, Dict] = data.get("cpus", {})

    def op_cost(self, info: OpInfo, *, kernel: str, float_ops: str) -> Tuple[float, str]:
        """Instructions of one op, and the class that priced it (its own, its family's, or as a
        generic elementwise op of its kind when neither was fitted)."""
        name, fallback = cost_class(info, kernel=kernel, float_ops=float_ops)
        feats = features(info)
        for key in (name, fallback):
            values = self.classes.get(key)
            if values is not None and len(values) == len(feats):
                return max(0.0, sum(v * f for v, f in zip(values, feats))), key
        kind = "int8" if info.quantized else "float"
        for key in (f"{kind}.{float_ops}.elementwise", f"float.{float_ops}.elementwise"):
            values = self.classes.get(key)
            if values is not None:
                return max(0.0, values[0] * info.out_elements + values[1]), key
        return 0.0, "unpriced"

    def cpu(self, name: str) -> Dict:
        if name not in self.cpus:
            raise ValueError(f"no IPC for CPU {name!r}: known {', '.join(sorted(self.cpus))}")
        return self.cpus[name]


_CACHE: Dict[str, Coefficients] = {}


def load_coefficients(path: Optional[str] = None) -> Coefficients:
    path = path or COEFFICIENTS_PATH
    if path not in _CACHE:
        with open(path) as f:
            _CACHE[path] = Coefficients(json.load(f))
    return _CACHE[path]
