"""The demo pipeline: build -> profile -> convert with LCE -> check parity -> time on this CPU."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence

__all__ = ["DEMO_MODELS", "DemoRow", "run_model", "write_atomic"]

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
    status: str = "ok"
    error: Optional[str] = None

    def to_dict(self) -> Dict:
        return asdict(self)


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run_model(
    name: str, *, out_dir: Optional[str], runs: int = 20, warmup: int = 3, threads: int = 1, compare: bool = False
) -> DemoRow:
    """Build ``name`` (random weights and BN statistics), convert with LCE, verify and time it.

    With ``compare``, also convert to plain float and int8 TFLite and time those on TFLite
    (XNNPACK) in the same run, so the ratios come from one measurement session.
    """
    import tensorflow as tf

    from lcefr.bench.local import time_lce, time_tflite
    from lcefr.convert.api import convert
    from lcefr.convert.parity import probe_inputs
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
        float_buffer, _ = convert(src.model, target="tflite-float", name=name, lce_native=src.lce_native)
        calibration = probe_inputs(tuple(src.model.input_shape[1:]), n=32, seed=7)
        int8_buffer, int8 = convert(src.model, target="tflite-int8", name=name, lce_native=src.lce_native, calibration=calibration)
        row.int8_parity_cosine = int8.parity["cosine_min"]
        if out_dir:
            write_atomic(os.path.join(out_dir, f"{name}.float.tflite"), float_buffer)
            write_atomic(os.path.join(out_dir, f"{name}.int8.tflite"), int8_buffer)
        for attr, buf in (("float_ms", float_buffer), ("int8_ms", int8_buffer)):
            t = time_tflite(buf, name=name, threads=threads, runs=runs, warmup=warmup)
            setattr(row, attr, t.latency_ms.get("mean") if t.status == "ok" else None)
    return row


def run_demo(
    names: Sequence[str],
    *,
    out_dir: Optional[str],
    runs: int,
    warmup: int,
    compare: bool = False,
    on_row: Callable[[DemoRow], None] = lambda r: None,
) -> List[DemoRow]:
    rows = []
    for name in names:
        row = run_model(name, out_dir=out_dir, runs=runs, warmup=warmup, compare=compare)
        on_row(row)
        rows.append(row)
    return rows
