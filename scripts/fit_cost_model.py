#!/usr/bin/env python3
"""Fit lcefr's per-op cost model (``lcefr/estimate/data/coefficients.json``) to instruction counts.

Sources (all instructions per inference on ARMv8.0, one thread, batch 1):

- LCE ops (``LceBconv2d`` per kernel, ``LceQuantize``): the figures of
  ``../shared/reference/arm-a57.md`` section 3 (LCE 0.16.0's aarch64 kernels in an
  ``lce_benchmark_model`` without XNNPACK): ten single layers and seven whole models per kernel.
  Their float ops (stems, shortcuts, heads) ran on TFLite's builtin kernels, so they are priced
  with the ``builtin`` float classes fitted first.
- Float and int8 ops per ``--float-ops`` mode: ``lcefr/estimate/data/a57_counts.json``, measured
  with ``lcefr bench --emulate cortex-a57`` by ``scripts/measure_a57_counts.py`` (single ops of many
  shapes and whole registry models), plus the reference's float and int8 XNNPACK model figures.

Each stage is a non-negative least-squares fit of relative errors. The script prints, and stores,
every whole model's fit error and its leave-one-out error (the model refitted without that row).

    python scripts/fit_cost_model.py [--check]    # --check: fit and report, write nothing
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from datetime import datetime, timezone
from typing import Dict, List, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import lcefr  # noqa: E402,F401  (tf-keras before TensorFlow)
from lcefr.estimate.model import COEFFICIENTS_PATH, FEATURES, cost_class, family, features  # noqa: E402
from lcefr.estimate.ops import OpInfo, read_op_infos  # noqa: E402

COUNTS = os.path.join(ROOT, "lcefr", "estimate", "data", "a57_counts.json")
WORK = os.path.join(ROOT, "build", "estimate")
REFERENCE = "../shared/reference/arm-a57.md (measured 2026-12-04; LCE 0.16.0 aarch64, tflite-runtime 2.14.0)"

# ---------------------------------------------------------------- the reference figures (section 3)
# (H, W, Cin, Cout, k, stride, groups, chained, default, indirect) in instructions; None: fails
LCE_LAYERS = [
    (56, 56, 64, 64, 3, 1, 1, False, 4.82e6, 31.85e6),
    (28, 28, 128, 128, 3, 1, 1, False, 3.53e6, 28.78e6),
    (14, 14, 256, 256, 3, 1, 1, False, 3.22e6, 3.46e6),
    (7, 7, 512, 512, 3, 1, 1, False, 3.28e6, 3.50e6),
    (56, 56, 64, 128, 3, 2, 1, False, 2.33e6, 16.00e6),
    (28, 28, 256, 256, 1, 1, 1, False, 2.15e6, 14.90e6),
    (28, 28, 128, 128, 3, 1, 4, False, None, 1.54e6),
    (28, 28, 128, 128, 3, 1, 1, True, 6.87e6, 57.29e6),
    (14, 14, 64, 256, 3, 1, 1, False, 1.05e6, 1.10e6),
    (56, 56, 32, 32, 3, 1, 1, False, 2.11e6, 9.52e6),
]
#: whole models: (file key, default, indirect, float xnnpack, int8 xnnpack)
LCE_MODELS = {
    "quicknet_small": (16.70e6, 16.28e6, 102.3e6, 105.2e6),
    "quicknet": (23.87e6, 24.01e6, 161.9e6, 157.6e6),
    "binary_densenet28_lce": (57.88e6, 206.1e6, 336.7e6, 316.9e6),
    "binaryfacenet_lce": (None, 108.1e6, 149.4e6, 1024.9e6),
    "mobilefacenet": (None, None, 88.8e6, 330.8e6),
    "zoo_quicknet_small_224": (53.74e6, 84.87e6, None, None),
    "zoo_quicknet_224": (82.22e6, 293.2e6, None, None),
    "zoo_quicknet_large_224": (139.4e6, 507.8e6, None, None),
}
ZOO = {"zoo_quicknet_small_224": "QuickNetSmall", "zoo_quicknet_224": "QuickNet", "zoo_quicknet_large_224": "QuickNetLarge"}
#: LCE's published Raspberry Pi 4B latencies (Cortex-A72 @ 1.5 GHz, one thread), ms, against the default-kernel counts
RPI4_MS = {"zoo_quicknet_small_224": 27.7, "zoo_quicknet_224": 45.0, "zoo_quicknet_large_224": 77.0}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def layer_infos(h, w, cin, cout, k, stride, groups, chained) -> List[OpInfo]:
    """LceQuantize + LceBconv2d (one-padding, SAME) [+ a second bconv fed bitpacked] as OpInfo records."""
    ho, wo = math.ceil(h / stride), math.ceil(w / stride)
    quant = OpInfo(index=0, op="LceQuantize", in_shape=[1, h, w, cin], out_shape=[1, h, w, cin // 32],
                   in_dtype="FLOAT32", out_dtype="INT32")

    def bconv(index, hi, wi, ci, bitpacked):
        return OpInfo(index=index, op="LceBconv2d", in_shape=[1, hi, wi, ci // 32], out_shape=[1, ho, wo, cout],
                      in_dtype="INT32", out_dtype="INT32" if bitpacked else "FLOAT32", kernel=[k, k], stride=stride,
                      groups=groups, cin=ci, cout=cout, macs=ho * wo * cout * k * k * (ci // groups), bitpacked_out=bitpacked)

    ops = [quant, bconv(1, h, w, cin, chained)]
    if chained:
        ops.append(bconv(2, ho, wo, cout, False))
        ops[-1].stride = 1
    return ops


def _file_infos(path: str) -> List[OpInfo]:
    with open(path, "rb") as f:
        return read_op_infos(f.read())


def registry_file(name: str, kind: str) -> str:
    """build/models/<name>[.float|.int8].tflite, converted with lcefr when missing."""
    suffix = {"lce": "", "float": ".float", "int8": ".int8"}[kind]
    path = os.path.join(ROOT, "build", "models", f"{name}{suffix}.tflite")
    if not os.path.isfile(path):
        target = {"lce": "tflite", "float": "tflite-float", "int8": "tflite-int8"}[kind]
        _say(f"converting {name} -> {os.path.relpath(path, ROOT)}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        subprocess.run([sys.executable, "-m", "lcefr.cli", "convert", name, "--to", target, "-o", path], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def zoo_file(key: str) -> str:
    """larq-zoo's sota model at 224x224 (weights=None) through lce.convert_keras_model, cached."""
    path = os.path.join(WORK, "zoo", f"{key}.tflite")
    if not os.path.isfile(path):
        import larq_compute_engine as lce
        import larq_zoo as lqz

        _say(f"converting larq_zoo.sota.{ZOO[key]} at 224x224")
        model = getattr(lqz.sota, ZOO[key])(weights=None, input_shape=(224, 224, 3))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(lce.convert_keras_model(model))
        os.replace(path + ".tmp", path)
    return path


# ---------------------------------------------------------------- design matrices


class Design:
    """Columns: (class, feature index). Rows: a sum of op features per measured file."""

    def __init__(self):
        self.columns: List[Tuple[str, int]] = []
        self.index: Dict[Tuple[str, int], int] = {}

    def row(self, infos: List[OpInfo], *, kernel: str, float_ops: str, fixed=None,
            fit=("bconv", "lce_quantize")) -> Tuple[Dict[int, float], float]:
        """Sparse features of the classes being fitted (prefixes ``fit``), and the cost of the other ops
        priced by ``fixed`` (already fitted); without ``fixed`` every op's class is fitted."""
        feats: Dict[int, float] = {}
        constant = 0.0
        for info in infos:
            cls, fallback = cost_class(info, kernel=kernel, float_ops=float_ops)
            if fixed is not None and not cls.startswith(fit):
                constant += fixed(info)
                continue
            vec = features(info)
            for j, value in enumerate(vec):
                key = (cls, j)
                if key not in self.index:
                    self.index[key] = len(self.columns)
                    self.columns.append(key)
                feats[self.index[key]] = feats.get(self.index[key], 0.0) + value
        return feats, constant


#: a whole model weighs this many single layers in a fit (the estimate is used on whole models)
MODEL_WEIGHT = 3.0


def nnls_relative(rows: List[Tuple[Dict[int, float], float, float, float]], ncols: int) -> np.ndarray:
    """min sum(w^2 ((A x + c - y) / y)^2), x >= 0, columns scaled to unit norm for conditioning."""
    from scipy.optimize import nnls

    a = np.zeros((len(rows), ncols))
    b = np.zeros(len(rows))
    for i, (feats, constant, y, weight) in enumerate(rows):
        for j, v in feats.items():
            a[i, j] = weight * v / y
        b[i] = weight * (y - constant) / y
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    x, _ = nnls(a / scale, b, maxiter=50 * ncols)
    return x / scale


def predict(feats: Dict[int, float], constant: float, x: np.ndarray, _weight: float = 1.0) -> float:
    return constant + sum(x[j] * v for j, v in feats.items())


# ---------------------------------------------------------------- stages


def load_counts() -> List[Dict]:
    if not os.path.isfile(COUNTS):
        raise SystemExit(f"missing {COUNTS}: run scripts/measure_a57_counts.py first")
    with open(COUNTS) as f:
        data = json.load(f)
    rows = []
    for row in data["rows"]:
        if row.get("status") != "ok" or not row.get("instructions"):
            continue
        path = os.path.join(ROOT, row["file"])
        if not os.path.isfile(path) and row["kind"] == "model":
            path = registry_file(row["spec"]["model"], row["file_kind"])
        if not os.path.isfile(path):
            _say(f"skipping {row['name']}: {row['file']} is missing (scripts/measure_a57_counts.py writes it)")
            continue
        rows.append(dict(row, path=path))
    return rows


def fit_float(counts: List[Dict], file_kind: str, mode: str, float_classes=None) -> Tuple[Dict[str, List[float]], List[Dict]]:
    """Float or int8 classes of one --float-ops mode from the measured layers and models (and the
    reference's XNNPACK model figures). For int8 files, ``float_classes`` price the ops that stay
    float there (SIGN), so only the int8 classes are fitted."""
    fixed = None
    if float_classes is not None:
        from lcefr.estimate.model import Coefficients

        priced = Coefficients({"classes": {k: {"values": v} for k, v in float_classes.items()}, "cpus": {}})

        def fixed(info):
            return priced.op_cost(info, kernel="default", float_ops=mode)[0]

    design = Design()
    rows, meta = [], []
    for row in counts:
        if row["file_kind"] != file_kind or row["float_ops"] != mode:
            continue
        feats, constant = design.row(_file_infos(row["path"]), kernel="default", float_ops=mode, fixed=fixed, fit=("int8.",))
        rows.append((feats, constant, float(row["instructions"]), MODEL_WEIGHT if row["kind"] == "model" else 1.0))
        meta.append({"name": row["name"], "kind": row["kind"], "source": "a57_counts.json"})
    if mode == "xnnpack":
        col = 2 if file_kind == "float" else 3
        measured = {m["name"].split(".")[0] for m in meta if m["kind"] == "model"}
        for name, figures in LCE_MODELS.items():  # the reference's figure where this model was not measured here
            if figures[col] and not name.startswith("zoo") and name not in measured:
                feats, constant = design.row(_file_infos(registry_file(name, file_kind)), kernel="default", float_ops=mode,
                                             fixed=fixed, fit=("int8.",))
                rows.append((feats, constant, figures[col], MODEL_WEIGHT))
                meta.append({"name": f"{name}.{file_kind}", "kind": "model", "source": "reference"})
    if not rows:
        return {}, []
    x = nnls_relative(rows, len(design.columns))
    report = _errors(rows, meta, design, x)
    return _classes(design, x), report


def _classes(design: Design, x: np.ndarray) -> Dict[str, List[float]]:
    classes: Dict[str, List[float]] = {}
    for (cls, j), value in zip(design.columns, x):
        fam = family_of_class(cls)
        classes.setdefault(cls, [0.0] * len(FEATURES[fam]))[j] = float(value)
    return classes


def family_of_class(cls: str) -> str:
    if cls.startswith("bconv"):
        return "bconv"
    if cls == "lce_quantize":
        return "lce_quantize"
    tail = cls.split(".")[-1]
    if tail in FEATURES:
        return tail
    return family(tail.upper())


def _errors(rows, meta, design, x) -> List[Dict]:
    """Fit error of every row; leave-one-out error of every whole model."""
    out = []
    for i, ((feats, constant, y, _w), m) in enumerate(zip(rows, meta)):
        entry = dict(m, measured=y, fitted=round(predict(feats, constant, x)), error=round(predict(feats, constant, x) / y - 1, 4))
        if m["kind"] == "model":
            others = rows[:i] + rows[i + 1:]
            xl = nnls_relative(others, len(design.columns))
            entry["loo"] = round(predict(feats, constant, xl) / y - 1, 4)
        out.append(entry)
    return out


def fit_lce(builtin: Dict[str, List[float]]) -> Tuple[Dict[str, List[float]], List[Dict]]:
    """LceBconv2d per kernel and LceQuantize from the reference figures; float ops at builtin prices."""
    from lcefr.estimate.model import Coefficients

    priced = Coefficients({"classes": {k: {"values": v} for k, v in builtin.items()}, "cpus": {}})

    def fixed(info):
        return priced.op_cost(info, kernel="default", float_ops="builtin")[0]

    design = Design()
    rows, meta = [], []
    for layer in LCE_LAYERS:
        infos = layer_infos(*layer[:8])
        for kernel, y in (("default", layer[8]), ("indirect", layer[9])):
            if y:
                feats, constant = design.row(infos, kernel=kernel, float_ops="builtin", fixed=fixed)
                rows.append((feats, constant, y, 1.0))
                meta.append({"name": "bconv {}x{}x{}->{} k{} s{} g{}{}".format(*layer[:7], " chained" if layer[7] else ""),
                             "kind": "layer", "kernel": kernel, "source": "reference"})
    for name, figures in LCE_MODELS.items():
        if not (figures[0] or figures[1]):
            continue
        infos = _file_infos(zoo_file(name) if name.startswith("zoo") else registry_file(name, "lce"))
        for kernel, y in (("default", figures[0]), ("indirect", figures[1])):
            if y:
                feats, constant = design.row(infos, kernel=kernel, float_ops="builtin", fixed=fixed)
                rows.append((feats, constant, y, MODEL_WEIGHT))
                meta.append({"name": name, "kind": "model", "kernel": kernel, "source": "reference"})
    x = nnls_relative(rows, len(design.columns))
    return _classes(design, x), _errors(rows, meta, design, x)


def ipc_a72(classes: Dict[str, List[float]]) -> Dict:
    """Cortex-A72 IPC from LCE's Raspberry Pi 4 latencies against the reference's default-kernel counts."""
    ipcs = {k: round(LCE_MODELS[k][0] / (ms * 1e-3 * 1.5e9), 3) for k, ms in RPI4_MS.items()}
    return {"ghz": 1.5, "ipc": [min(ipcs.values()), max(ipcs.values())], "calibration": ipcs,
            "source": "LCE's published Raspberry Pi 4B latencies (Cortex-A72 @ 1.5 GHz, one thread, 224x224: "
                      "QuickNetSmall 27.7 ms, QuickNet 45.0 ms, QuickNetLarge 77.0 ms) / the reference's default-kernel "
                      "instruction counts (53.74 M, 82.22 M, 139.4 M)"}


CPUS_TEXT = {
    "cortex-a57": {"ghz": 1.43, "ipc": [0.9, 1.3],
                   "source": "planning range of the reference (section 4): the A57 (3-wide out-of-order, 2 NEON pipes, "
                             "Jetson Nano at 1.43 GHz) runs the same ARMv8.0 code as the A72 at a lower IPC; the upper end "
                             "is the A72's calibrated 1.21-1.29, the lower end allows ~30% less"},
    "cortex-a53": {"ghz": 1.2, "ipc": [0.5, 0.8],
                   "source": "reasoning: an in-order, dual-issue core (Raspberry Pi 3 at 1.2 GHz) with one 64-bit NEON "
                             "datapath pair; NEON-heavy kernels sustain well under one instruction per cycle, about "
                             "0.6x the A72's IPC on the same code, taken as 0.5-0.8 (not calibrated against a board)"},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fit and report; do not write coefficients.json")
    args = ap.parse_args(argv)
    counts = load_counts()
    classes: Dict[str, List[float]] = {}
    fits: Dict[str, List[Dict]] = {}
    for file_kind in ("float", "int8"):
        for mode in ("xnnpack", "builtin"):
            floats = {k: v for k, v in classes.items() if k.startswith(f"float.{mode}.")} if file_kind == "int8" else None
            fitted, report = fit_float(counts, file_kind, mode, floats)
            classes.update(fitted)
            if report:
                fits[f"{file_kind}.{mode}"] = report
    builtin = {k: v for k, v in classes.items() if ".builtin." in k}
    lce_classes, lce_report = fit_lce(builtin)
    classes.update(lce_classes)
    fits["lce"] = lce_report
    data = {
        "provenance": {
            "fitted_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "script": "scripts/fit_cost_model.py",
            "lce_ops": f"LceBconv2d (default, indirect) and LceQuantize: {REFERENCE}, section 3 (10 layers, 7 models per kernel)",
            "float_int8_ops": "lcefr/estimate/data/a57_counts.json (lcefr bench --emulate cortex-a57) and the reference's "
                              "float/int8 XNNPACK model figures",
            "features": {k: list(v) for k, v in FEATURES.items()},
        },
        "cpus": {"cortex-a57": CPUS_TEXT["cortex-a57"], "cortex-a72": ipc_a72(classes), "cortex-a53": CPUS_TEXT["cortex-a53"]},
        "classes": {k: {"values": [float(f"{v:.6g}") for v in vals]} for k, vals in sorted(classes.items())},
        "fit": fits,
    }
    for stage, report in fits.items():
        models = [r for r in report if r["kind"] == "model"]
        if models:
            print(f"\n{stage}: {len(report)} rows, {len(models)} whole models")
            for r in models:
                print(f"  {r['name']:32s} {r.get('kernel', ''):8s} measured {r['measured'] / 1e6:9.2f} M  fitted "
                      f"{r['fitted'] / 1e6:9.2f} M  error {100 * r['error']:+6.1f}%  leave-one-out {100 * r['loo']:+6.1f}%")
        layers = [abs(r["error"]) for r in report if r["kind"] == "layer"]
        if layers:
            print(f"  layers: median |error| {100 * float(np.median(layers)):.1f}%, max {100 * max(layers):.1f}%")
    if not args.check:
        tmp = COEFFICIENTS_PATH + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, COEFFICIENTS_PATH)
        print(f"\nwrote {os.path.relpath(COEFFICIENTS_PATH, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
