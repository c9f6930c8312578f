"""The demo pipeline: build -> profile -> convert with LCE -> check parity -> time on this CPU."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from lcefr.bench.local import time_lce, time_tflite
from lcefr.convert.api import ConversionCheckError, convert
from lcefr.convert.onnx import onnx_runner
from lcefr.data.binset import read_bin
from lcefr.data.pairs import synthetic_bin
from lcefr.embed import load_embedder
from lcefr.eval.parity import face_inputs, probe_inputs
from lcefr.eval.verification import evaluate
from lcefr.fileio import write_atomic
from lcefr.profile import summarize
from lcefr.runtime import latency_stats, time_callable
from lcefr.source import load_source
from lcefr.train.config import TrainConfig
from lcefr.train.fit import prepare, run_training

__all__ = ["DEMO_MODELS", "DemoRow", "run_model", "run_demo", "PipelineResult", "run_pipeline"]

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

    tf.keras.backend.clear_session()
    src = load_source(name)
    total = summarize(name, src.model)["total"]
    buffer, result = convert(src.model, target="tflite", name=name, lce_native=src.lce_native, trained=not src.random_init)
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
    shape = tuple(src.model.input_shape[1:])
    calibration = face_inputs(shape, n=32, seed=7)
    for target, suffix in (("tflite-float", "float.tflite"), ("tflite-int8", "int8.tflite"), ("onnx", "onnx")):
        key = {"tflite-float": "float", "tflite-int8": "int8", "onnx": "onnx"}[target]
        try:
            buffer, result = convert(src.model, target=target, name=row.model, lce_native=src.lce_native,
                                     trained=not src.random_init,
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


@dataclass
class PipelineResult:
    """The end-to-end demo: generated faces -> short training -> held-out eval -> LCE conversion."""

    model: str
    train_images: int
    identities: int
    steps: int
    train_s: float
    heldout_pairs: int
    accuracy_untrained: float
    accuracy_trained: float
    lce_accuracy: float
    lce_bconv2d: int
    binary_mac_share: float
    parity_cosine: float
    ms_per_face: float
    tflite: str

    def to_dict(self) -> Dict:
        return asdict(self)


def run_pipeline(
    out_dir: str,
    *,
    model: str = "quicknet_small",
    identities: int = 60,
    per_identity: int = 10,
    pairs: int = 600,
    epochs: int = 3,
    steps_per_epoch: int = 40,
    batch_size: int = 32,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> PipelineResult:
    """Generate faces, train ``model`` briefly, evaluate on a held-out generated ``.bin`` before and
    after, convert the trained backbone with LCE (checked) and evaluate and time the ``.tflite``."""
    import time

    import tensorflow as tf

    os.makedirs(out_dir, exist_ok=True)
    bin_path = os.path.join(out_dir, f"heldout-{pairs}.bin")
    if not os.path.exists(bin_path):
        log(f"[1/5] held-out set: {pairs} pairs of generated people -> {bin_path}")
        synthetic_bin(bin_path, pairs=pairs, seed=seed)
    heldout = read_bin(bin_path)

    def accuracy(source: str) -> float:
        emb = load_embedder(source, batch_size=64).embed(heldout.images)
        return float(evaluate(emb, heldout.issame)[2].mean())

    tf.keras.backend.clear_session()
    before = accuracy(model)
    log(f"[2/5] {model} untrained (random init): held-out accuracy {100 * before:.2f}%")
    config = TrainConfig(model=model, data="synthetic", head="arcface", epochs=epochs, batch_size=batch_size,
                         optimizer="adam", lr=2e-3, scale=16.0, synth_identities=identities,
                         synth_per_identity=per_identity, steps_per_epoch=steps_per_epoch, seed=seed).validate()
    plan = prepare(config)
    log(f"[3/5] training {model}: {plan.num_images} generated faces of {identities} people, "
        f"{epochs} x {steps_per_epoch} steps of {batch_size}")
    run_dir = os.path.join(out_dir, f"train-{model}")
    start = time.time()
    run_training(config, run_dir, plan=plan, verbose=0, on_message=log)
    train_s = time.time() - start
    backbone = os.path.join(run_dir, "backbone.keras")
    tf.keras.backend.clear_session()
    after = accuracy(backbone)
    log(f"      trained in {train_s:.0f} s: held-out accuracy {100 * after:.2f}%")

    src = load_source(backbone)
    buffer, result = convert(src.model, target="tflite", name=model, lce_native=src.lce_native, trained=not src.random_init)
    tflite = os.path.join(out_dir, f"{model}-trained.tflite")
    write_atomic(tflite, buffer)
    log(f"[4/5] LCE conversion: {result.ops['lce_bconv2d']} LceBconv2d, binary MAC share "
        f"{result.ops['binary_mac_share']:.3f}, parity cosine {result.parity['cosine_min']:.5f} -> {tflite}")
    lce_acc = accuracy(tflite)
    timing = time_lce(buffer, name=model, threads=1, runs=20, warmup=3, kernel="indirect")
    log(f"      .tflite held-out accuracy {100 * lce_acc:.2f}%, {timing.latency_ms.get('mean', float('nan')):.2f} ms/face")
    return PipelineResult(model=model, train_images=plan.num_images, identities=identities,
                          steps=epochs * steps_per_epoch, train_s=round(train_s, 1), heldout_pairs=pairs,
                          accuracy_untrained=before, accuracy_trained=after, lce_accuracy=lce_acc,
                          lce_bconv2d=result.ops["lce_bconv2d"], binary_mac_share=result.ops["binary_mac_share"],
                          parity_cosine=result.parity["cosine_min"],
                          ms_per_face=timing.latency_ms.get("mean", float("nan")), tflite=tflite)
