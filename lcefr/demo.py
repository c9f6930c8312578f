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


def run_model(name: str, *, out_dir: Optional[str], runs: int = 20, warmup: int = 3, threads: int = 1) -> DemoRow:
    """Build ``name`` with random weights, convert with LCE, verify and time it single-threaded."""
    from lcefr.bench.local import lce_interpreter, time_lce
    from lcefr.convert.inspect import inspect_tflite
    from lcefr.convert.parity import check_parity
    from lcefr.convert.tflite import convert_lce
    from lcefr.models import create_model
    from lcefr.profile import summarize

    import tensorflow as tf

    tf.keras.backend.clear_session()
    model = create_model(name)
    total = summarize(name, model)["total"]
    buffer = convert_lce(model)
    report = inspect_tflite(buffer)
    interpreter = lce_interpreter(buffer, threads=threads, kernel="indirect")
    parity = check_parity(model, interpreter.predict)
    if out_dir:
        write_atomic(os.path.join(out_dir, f"{name}.tflite"), buffer)
    timing = time_lce(buffer, name=name, threads=threads, runs=runs, warmup=warmup, kernel="indirect")
    return DemoRow(
        model=name,
        params=total["params"],
        binary_macs=total["binary_macs"],
        float_macs=total["float_macs"],
        tflite_bytes=len(buffer),
        lce_bconv2d=report.lce_bconv2d,
        binary_mac_share=report.binary_mac_share,
        parity_cosine=parity.cosine_min,
        ms_per_face=timing.latency_ms.get("mean", float("nan")),
        fps=timing.fps,
        kernel=timing.kernel,
        status=timing.status,
        error=timing.error,
    )


def run_demo(
    names: Sequence[str], *, out_dir: Optional[str], runs: int, warmup: int, on_row: Callable[[DemoRow], None] = lambda r: None
) -> List[DemoRow]:
    rows = []
    for name in names:
        row = run_model(name, out_dir=out_dir, runs=runs, warmup=warmup)
        on_row(row)
        rows.append(row)
    return rows
