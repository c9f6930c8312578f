"""The demo pipeline: build -> profile -> convert with LCE -> check parity -> time on this CPU."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from lcefr.fileio import write_atomic

__all__ = ["DEMO_MODELS", "DemoRow", "run_model", "run_demo"]

#: Three larq-zoo backbones and the published BinaryFaceNet (seed 001, Table 2).
DEMO_MODELS = ("quicknet_small", "quicknet", "binary_densenet28", "binaryfacenet")


@dataclass
class DemoRow:
    model: str
    params: int
    binary_macs: int
    float_macs: int
    tflite_bytes: int
    lce_bconv2d: int
    binary_mac_share: float
    parity_cosine: float
    ms_per_face: float
    fps: float
    kernel: str
    float_ms: Optional[float] = None
    int8_ms: Optional[float] = None
    int8_parity_cosine: Optional[float] = None
    onnx_ms: Optional[float] = None
    onnx_parity_cosine: Optional[float] = None
    notes: List[str] = field(default_factory=list)
    status: str = "ok"
    error: Optional[str] = None

    def to_dict(self) -> Dict:
        return asdict(self)


def run_model(
    name: str, *, out_dir: Optional[str], runs: int = 20, warmup: int = 3, threads: int = 1, compare: bool = False
) -> DemoRow:
    """Build ``name`` (random weights and BN statistics), convert with LCE, verify and time it.

    With ``compare``, also convert to plain float and int8 TFLite and time those on TFLite
    (XNNPACK) in the same run, so the ratios come from one measurement session.
    """
    import tensorflow as tf

    from lcefr.bench.local import time_lce
    from lcefr.convert.api import convert
    from lcefr.convert.source import load_source
    from lcefr.profile import summarize

    tf.keras.backend.clear_session()
    src = load_source(name)
    total = summarize(name, src.model)["total"]
    buffer, result = convert(src.model, target="tflite", name=name, lce_native=src.lce_native)
    if out_dir:
        write_atomic(os.path.join(out_dir, f"{name}.tflite"), buffer)
    timing = time_lce(buffer, name=name, threads=threads, runs=runs, warmup=warmup, kernel="indirect")
    row = DemoRow(
        model=name,
        params=total["params"],
        binary_macs=total["binary_macs"],
        float_macs=total["float_macs"],
        tflite_bytes=len(buffer),
        lce_bconv2d=result.ops["lce_bconv2d"],
        binary_mac_share=result.ops["binary_mac_share"],
        parity_cosine=result.parity["cosine_min"],
        ms_per_face=timing.latency_ms.get("mean", float("nan")),
        fps=timing.fps,
        kernel=timing.kernel,
        status=timing.status,
        error=timing.error,
    )
    if compare:
        _compare(row, src, out_dir=out_dir, runs=runs, warmup=warmup, threads=threads)
    return row


def _compare(row: DemoRow, src, *, out_dir, runs: int, warmup: int, threads: int) -> None:
    """Float, int8 (TFLite + XNNPACK) and ONNX (onnxruntime) versions of the same model, checked and timed."""
    from lcefr.bench.local import latency_stats, time_callable, time_tflite
    from lcefr.convert.api import ConversionCheckError, convert
    from lcefr.convert.onnx import onnx_runner
    from lcefr.convert.parity import face_inputs, probe_inputs

    shape = tuple(src.model.input_shape[1:])
    calibration = face_inputs(shape, n=32, seed=7)
    for target, suffix in (("tflite-float", "float.tflite"), ("tflite-int8", "int8.tflite"), ("onnx", "onnx")):
        key = {"tflite-float": "float", "tflite-int8": "int8", "onnx": "onnx"}[target]
        try:
            buffer, result = convert(src.model, target=target, name=row.model, lce_native=src.lce_native,
                                     calibration=calibration if target == "tflite-int8" else None)
        except ConversionCheckError as err:
            row.notes.append(f"{target}: {'; '.join(err.result.errors)}")
            continue
        except Exception as err:  # one failing target must not hide the others
            row.notes.append(f"{target}: {type(err).__name__}: {err}")
            continue
        if key != "float":
            setattr(row, f"{key}_parity_cosine", result.parity["cosine_min"])
        row.notes.extend(f"{target}: {w}" for w in result.warnings)
        if out_dir:
            write_atomic(os.path.join(out_dir, f"{row.model}.{suffix}"), buffer)
        if target == "onnx":
            run = onnx_runner(buffer)
            x = probe_inputs(shape, n=1)
            setattr(row, "onnx_ms", latency_stats(time_callable(lambda: run(x), runs=runs, warmup=warmup))["mean"])
        else:
            timing = time_tflite(buffer, name=row.model, threads=threads, runs=runs, warmup=warmup)
            setattr(row, f"{key}_ms", timing.latency_ms.get("mean") if timing.status == "ok" else None)


def run_demo(
    names: Sequence[str],
    *,
    out_dir: Optional[str],
    runs: int,
    warmup: int,
    compare: bool = False,
    on_row: Callable[[DemoRow], None] = lambda r: None,
) -> List[DemoRow]:
    from lcefr.convert.api import ConversionCheckError

    rows = []
    for name in names:
        try:
            row = run_model(name, out_dir=out_dir, runs=runs, warmup=warmup, compare=compare)
        except ConversionCheckError as err:  # a failed check is a result for this model, not the end of the demo
            r = err.result
            row = DemoRow(model=name, params=0, binary_macs=0, float_macs=0, tflite_bytes=r.size_bytes,
                          lce_bconv2d=(r.ops or {}).get("lce_bconv2d", 0),
                          binary_mac_share=(r.ops or {}).get("binary_mac_share", 0.0),
                          parity_cosine=(r.parity or {}).get("cosine_min", float("nan")),
                          ms_per_face=float("nan"), fps=0.0, kernel="-", status="failed", error=str(err))
        on_row(row)
        rows.append(row)
    return rows
