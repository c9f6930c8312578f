"""Expected speed of a ``.tflite`` file on an ARM core, from the flatbuffer alone: ``lcefr estimate``.

Instructions per inference come from the per-op cost model (:mod:`lcefr.estimate.model`), ms and
FPS from the CPU's IPC range at its clock. ``--kernel auto`` decides for the whole file as LCE's
interpreter flag does: ``default`` unless the file has a grouped binary convolution, then
``indirect`` (the only kernel that runs grouped ones).
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from lcefr.estimate.model import Coefficients, load_coefficients
from lcefr.estimate.ops import OpInfo, has_grouped_bconv, read_op_infos

__all__ = ["CPUS", "estimate_file", "estimate_ops", "expected_ms", "cpu_of_machine", "KERNEL_CHOICES", "FLOAT_OPS"]

CPUS = ("cortex-a57", "cortex-a72", "cortex-a53")
KERNEL_CHOICES = ("auto", "default", "indirect")
FLOAT_OPS = ("xnnpack", "builtin")
#: a measured row slower than this many times the upper expectation is flagged
FLAG_FACTOR = 3.0


def choose_kernel(infos: List[OpInfo], kernel: str) -> str:
    if kernel != "auto":
        return kernel
    return "indirect" if has_grouped_bconv(infos) else "default"


def estimate_ops(infos: List[OpInfo], *, cpu: str = "cortex-a57", ghz: Optional[float] = None, kernel: str = "auto",
                 float_ops: str = "xnnpack", coefficients: Optional[Coefficients] = None) -> Dict:
    coef = coefficients or load_coefficients()
    spec = coef.cpu(cpu)
    ghz = float(ghz or spec["ghz"])
    chosen = choose_kernel(infos, kernel)
    layers, total = [], 0.0
    for info in infos:
        cost, cls = coef.op_cost(info, kernel=chosen, float_ops=float_ops)
        total += cost
        layers.append({"index": info.index, "op": info.op, "shape": info.shape_text(),
                       "kernel": chosen if info.op == "LceBconv2d" else (float_ops if cls != "lce_quantize" else "lce"),
                       "instructions": int(round(cost)), "class": cls})
    for row in layers:
        row["share"] = round(row["instructions"] / total, 4) if total else 0.0
    ipc_low, ipc_high = spec["ipc"]
    ms_low = total / (ipc_high * ghz * 1e9) * 1e3
    ms_high = total / (ipc_low * ghz * 1e9) * 1e3
    return {"cpu": cpu, "ghz": ghz, "kernel": chosen, "float_ops": float_ops, "instructions": int(round(total)),
            "ms": {"low": round(ms_low, 3), "high": round(ms_high, 3)},
            "fps": {"low": round(1e3 / ms_high, 2) if ms_high else None, "high": round(1e3 / ms_low, 2) if ms_low else None},
            "ipc": [ipc_low, ipc_high], "layers": layers}


def estimate_file(path: str, *, per_layer: bool = False, **kwargs) -> Dict:
    """One ``lcefr estimate`` row for ``path``."""
    with open(path, "rb") as f:
        buffer = f.read()
    out = estimate_ops(read_op_infos(buffer), **kwargs)
    name = os.path.basename(path)
    row = {"model": name[: -len(".tflite")] if name.endswith(".tflite") else name, **out}
    if not per_layer:
        row.pop("layers")
    return row


#: /proc/cpuinfo names (runner machine facts) -> the cost model's CPUs
_CPU_NAMES = {"Cortex-A57": "cortex-a57", "Cortex-A72": "cortex-a72", "Cortex-A53": "cortex-a53"}


def cpu_of_machine(machine: Dict) -> Tuple[Optional[str], Optional[float], str]:
    """The CPU the cost model knows for a board report's machine facts, its clock in GHz (the
    fastest current clock, else the CPU's default) and why, or None when there is no expectation:
    an emulated board (wall time there is an x86 core translating ARM code) or a CPU it does not cover."""
    if machine.get("emulated"):
        return None, None, "emulated board: wall time means nothing there"
    names = re.split(r"\s*,\s*", machine.get("cpu") or "")
    known = [_CPU_NAMES[n] for n in names if n in _CPU_NAMES]
    if not known or machine.get("arch") not in ("aarch64", "armv7l", "armv8l"):
        return None, None, f"no cost model for {machine.get('cpu') or 'this CPU'} ({machine.get('arch', '?')})"
    cpu = "cortex-a72" if "cortex-a72" in known else known[0]
    clocks = [int(v) for v in (machine.get("clocks") or {}).values() if str(v).isdigit()]
    ghz = max(clocks) / 1e6 if clocks else None
    return cpu, ghz, "clock from cpufreq" if ghz else "default clock"


def expected_ms(path: str, machine: Dict, *, kernel: str = "auto", float_ops: str = "xnnpack") -> Tuple[Optional[Dict], str]:
    """``expected_ms`` {low, high} of a report row for ``path`` on ``machine``, or None and why."""
    cpu, ghz, why = cpu_of_machine(machine)
    if cpu is None:
        return None, why
    est = estimate_file(path, cpu=cpu, ghz=ghz, kernel=kernel, float_ops=float_ops)
    return est["ms"], f"{cpu} at {est['ghz']:.2f} GHz ({why}), {est['instructions'] / 1e6:.1f} M instructions"
