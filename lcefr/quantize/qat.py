"""Small-data low-bit quantization of a face backbone (Ef-QuantFace, seed 002).

A copy of a frozen float teacher is fake-quantized to w{b}a{b} (:mod:`lcefr.quantize.fakequant`),
its activation ranges are calibrated on the data and frozen, and it is fine-tuned for a few
epochs on a small image set to match the teacher with an evaluation-oriented distillation loss
(EKD, Huang et al., arXiv:2206.02325) or QuantFace's embedding MSE (arXiv:2206.10526). Without
identity labels the EKD positives are two augmentations of one image. BatchNorm statistics stay
frozen (the student runs in inference mode; its weights still train).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from lcefr.convert.api import convert
from lcefr.source import load_source
from lcefr.convert.tflite import add_metadata
from lcefr.data.images import list_images, read_face
from lcefr.data.synth import synthetic_folder
from lcefr.embed import Embedder
from lcefr.eval.verification import evaluate
from lcefr.heads.distill import EKDLoss, embedding_mse
from lcefr.models import create_model, list_models
from lcefr.preprocess import MEAN, normalize, preprocess
from lcefr.quantize.fakequant import calibrate, fold_quantized_weights, quant_layers, quantize_model
from lcefr.vocab import QAT_LOSSES

__all__ = ["QuantData", "QATResult", "load_teacher", "load_quant_data", "quantization_aware_training",
           "packed_size", "verification_accuracy", "export_int8"]



@dataclass
class QuantData:
    """uint8 RGB faces ``(N, 112, 112, 3)`` and identity labels (``None`` when the folder has none)."""

    images: np.ndarray
    labels: Optional[np.ndarray]
    source: str

    @property
    def labelled(self) -> bool:
        return self.labels is not None


@dataclass
class QATResult:
    student: object
    history: List[Dict] = field(default_factory=list)
    calibration_batches: int = 0
    seconds: float = 0.0


def load_teacher(teacher: str, *, seed: int = 0):
    """A frozen float backbone from a Keras file or a registry name (random init, for tests).

    Raises:
        FileNotFoundError: neither a file nor a registry name. ValueError: not a usable Keras model.
    """
    import tensorflow as tf

    if not os.path.exists(teacher) and teacher in list_models():
        tf.keras.utils.set_random_seed(seed)
        model = create_model(teacher)
    else:
        model = load_source(teacher, seed=seed).model
    if quant_layers(model):
        raise ValueError(f"--teacher {teacher} is already fake-quantized; give the float backbone")
    model.trainable = False
    return model


def load_quant_data(data: str, *, images: Optional[int] = None, seed: int = 0,
                    synth_identities: int = 100, synth_per_identity: int = 20,
                    progress: Optional[Callable[[int], None]] = None) -> QuantData:
    """The quantization set: ``'synthetic'`` (lcefr's generated training set) or an image folder.

    A folder with one sub-folder per identity gives labels; a flat folder of faces gives none.
    ``images`` picks a random subset of that size (seeded).

    Raises:
        FileNotFoundError / NotADirectoryError: no such folder. ValueError: no images, or images < 2.
    """
    if images is not None and images < 2:
        raise ValueError(f"--images must be at least 2, got {images}")
    if data == "synthetic":
        root = synthetic_folder(identities=synth_identities, per_identity=synth_per_identity, seed=seed)
    else:
        if not os.path.exists(data):
            raise FileNotFoundError(f"--data {data}: no such folder (give an image folder or 'synthetic')")
        if not os.path.isdir(data):
            raise NotADirectoryError(f"--data {data} is not a folder")
        root = data
    paths = list_images(root)
    if not paths:
        raise ValueError(f"--data {data}: no images (.jpg, .png, ...) found")
    rel = [os.path.relpath(p, root) for p in paths]
    labelled = all(os.sep in r for r in rel)
    if images is not None and len(paths) > images:
        rng = np.random.default_rng(seed)
        if labelled:  # whole identities in random order, so the subset keeps same-identity pairs
            names = sorted({r.split(os.sep)[0] for r in rel})
            rank = {name: i for i, name in enumerate(rng.permutation(names))}
            keep = np.sort(sorted(range(len(rel)), key=lambda i: (rank[rel[i].split(os.sep)[0]], rel[i]))[:images])
        else:
            keep = np.sort(rng.choice(len(paths), size=images, replace=False))
        paths, rel = [paths[i] for i in keep], [rel[i] for i in keep]
    if len(paths) < 2:
        raise ValueError(f"--data {data}: need at least 2 images, found {len(paths)}")
    faces = np.empty((len(paths), 112, 112, 3), np.uint8)
    for i, path in enumerate(paths):
        faces[i] = read_face(path)
        if progress is not None:
            progress(1)
    labels = None
    if labelled:
        names = sorted({r.split(os.sep)[0] for r in rel})
        index = {n: i for i, n in enumerate(names)}
        labels = np.array([index[r.split(os.sep)[0]] for r in rel], np.int32)
    return QuantData(faces, labels, "synthetic" if data == "synthetic" else os.path.abspath(root))


def _augment(images, rng: np.random.Generator):
    """A cheap label-preserving view: random mirror, shift by up to 6 pixels, brightness/contrast jitter."""
    out = np.empty(images.shape, np.float32)
    for i, image in enumerate(images):
        x = image.astype(np.float32)
        if rng.random() < 0.5:
            x = x[:, ::-1]
        dy, dx = rng.integers(-6, 7, size=2)
        x = np.roll(x, (int(dy), int(dx)), axis=(0, 1))
        x = (x - MEAN) * rng.uniform(0.8, 1.2) + MEAN + rng.uniform(-20, 20)
        out[i] = np.clip(x, 0, 255)
    return normalize(out)


def _pair_order(labels, rng: np.random.Generator) -> np.ndarray:
    """A permutation of the images in which consecutive pairs share an identity wherever possible."""
    jitter = rng.permutation(len(labels))
    by_identity = np.lexsort((jitter, labels))
    pairs = [by_identity[i:i + 2] for i in range(0, len(by_identity), 2)]
    return np.concatenate([pairs[i] for i in rng.permutation(len(pairs))])


def quantization_aware_training(
    teacher,
    data: QuantData,
    *,
    bits: int,
    loss: str = "ekd",
    epochs: int = 1,
    batch_size: int = 16,
    lr: float = 1e-4,
    calibration_images: int = 256,
    seed: int = 0,
    progress: Optional[Callable[[int], None]] = None,
    on_message: Optional[Callable[[str], None]] = None,
) -> QATResult:
    """Fake-quantize a copy of ``teacher`` to w{bits}a{bits}, calibrate, and distil for ``epochs``.

    With identity labels, each step takes ``batch_size`` augmented images ordered in pairs of one
    identity (the EKD positives); without labels, two augmented views of ``batch_size`` images
    (``2 * batch_size`` embeddings), the views of one image being the positives. ``ekd+ce`` adds a cross-entropy on
    cosine logits (scale 32) against fixed class centres, the teacher's mean embedding of each identity.

    Args:
        teacher: frozen float Keras backbone (not modified).
        data: the small set (:func:`load_quant_data`).
        bits: 2 ... 8.
        loss: ``ekd``, ``mse`` or ``ekd+ce`` (needs labels).
        epochs, batch_size, lr: SGD (momentum 0.9) with cosine decay to 0. Seed 002 uses lr 1e-3; the
            default 1e-4 kept w8a8 within 0.1 point of a weak (72%) and a strong (96.6%) teacher,
            where 1e-3 cost the strong one 2.75 points (docs/studies.md, quantization study).
        calibration_images: images (un-augmented) whose activations set the frozen ranges.
        progress: called with the number of images after every step.

    Raises:
        ValueError: unknown loss, ``ekd+ce`` without labels, bad numbers.
    """
    import tensorflow as tf

    if loss not in QAT_LOSSES:
        raise ValueError(f"--loss must be one of {', '.join(QAT_LOSSES)}, got {loss!r}")
    if loss == "ekd+ce" and not data.labelled:
        raise ValueError("--loss ekd+ce needs labelled --data (one sub-folder per identity); this folder has none")
    if epochs < 0 or batch_size < 2:
        raise ValueError(f"need epochs >= 0 and batch_size >= 2, got {epochs} and {batch_size}")
    say = on_message or (lambda m: None)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    tf.keras.utils.set_random_seed(seed)
    student = quantize_model(teacher, bits=bits)
    n = len(data.images)
    cal = data.images[rng.permutation(n)[:max(1, min(calibration_images, n))]]
    cal_batches = calibrate(student, (preprocess(cal[i:i + 32]) for i in range(0, len(cal), 32)))
    say(f"calibrated {len(student.layers)} layers' activation ranges on {len(cal)} images")

    centres = None
    if loss == "ekd+ce":
        emb = np.concatenate([teacher(preprocess(data.images[i:i + 32]), training=False).numpy()
                              for i in range(0, n, 32)])
        emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
        classes = int(data.labels.max()) + 1
        centres = np.zeros((classes, emb.shape[1]), np.float32)
        np.add.at(centres, data.labels, emb)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True) + 1e-12
        centres = tf.constant(centres.T)

    steps_per_epoch = max(1, n // batch_size)
    total = max(1, epochs * steps_per_epoch)
    schedule = tf.keras.optimizers.schedules.CosineDecay(lr, total)
    optimizer = tf.keras.optimizers.SGD(schedule, momentum=0.9)
    ekd = EKDLoss(top_k=2000, warm_start=True)  # few steps: thresholds from the first batch, not from 0
    variables = student.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(views, labels):
        target = teacher(views, training=False)
        with tf.GradientTape() as tape:
            out = student(views, training=False)
            if loss == "mse":
                value = embedding_mse(out, target)
            else:
                value = ekd(out, target, labels, training=True)
            if centres is not None:
                logits = 32.0 * tf.matmul(tf.math.l2_normalize(out, axis=1), centres)
                value += tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        grads = tape.gradient(value, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return value

    history = []
    for epoch in range(epochs):
        order = _pair_order(data.labels, rng) if data.labelled else rng.permutation(n)
        losses = []
        t0 = time.perf_counter()
        for s in range(steps_per_epoch):
            idx = order[s * batch_size:(s + 1) * batch_size]
            if data.labelled:
                views, labels = _augment(data.images[idx], rng), data.labels[idx]
            else:
                views = np.concatenate([_augment(data.images[idx], rng), _augment(data.images[idx], rng)])
                labels = np.tile(idx.astype(np.int32), 2)
            losses.append(float(step(tf.constant(views), tf.constant(labels, tf.int32))))
            if progress is not None:
                progress(len(idx))
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "steps": steps_per_epoch,
                        "seconds": round(time.perf_counter() - t0, 2)})
        say(f"epoch {epoch + 1}/{epochs}: {loss} loss {history[-1]['loss']:.5f}")
    return QATResult(student, history, cal_batches, round(time.perf_counter() - start, 2))


def packed_size(model, bits: int) -> Dict:
    """Parameter count and sizes: float32, and every parameter packed at ``bits`` (``bits * params / 8``).

    Calibrated activation ranges are bookkeeping, not parameters, and are not counted.
    """
    ranges = sum(int(np.prod(layer.input_range.shape)) for layer in quant_layers(model))
    params = int(model.count_params()) - ranges
    kernels = sum(int(np.prod(getattr(layer, layer.kernel_attr).shape)) for layer in quant_layers(model))
    return {
        "params": params,
        "quantized_kernel_params": kernels,
        "size_bytes_float": 4 * params,
        "size_bytes_quantized": int(math.ceil(bits * params / 8)),
    }


def verification_accuracy(run: Callable[[np.ndarray], np.ndarray], vs, *, batch_size: int = 32, flip: bool = True,
                          progress: Optional[Callable[[int], None]] = None) -> float:
    """Mean 10-fold accuracy (insightface protocol) of an embedding function on a read ``.bin`` set."""
    embedder = Embedder(name="model", kind="keras", run=run, batch_size=batch_size)
    emb = embedder.embed(vs.images, flip=flip, progress=progress)
    return float(evaluate(emb, vs.issame)[2].mean())


def keras_runner(model):
    """``run(x)`` for :func:`verification_accuracy`, compiled once."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: fn(tf.constant(x)).numpy()


def export_int8(student, teacher, representative, *, bits: int = 8):
    """An int8 ``.tflite`` (float I/O) of the QAT result, checked like every ``lcefr convert``.

    The learned, grid-aligned kernels are folded back into a float copy of the teacher's graph,
    which TFLite's converter then quantizes to int8 (per-channel weights, activations calibrated
    on ``representative``, the same images as the QAT calibration). The flatbuffer is checked
    against that float graph (parity on generated faces, cosine >= 0.98); op types XNNPACK has no
    int8 kernel for (PReLU) stay float islands, as in ``lcefr convert --to tflite-int8``, so the file
    runs on XNNPACK's fast path (``result.float_islands``, ``result.xnnpack``). It records the simulated
    precision as metadata ``lcefr.bits`` (JSON): for 6 and 4 bits the file is an int8 container of
    weights that lie on the coarser grid, re-rounded to int8's per-channel steps.

    Returns:
        (bytes, ConversionResult). Raises ConversionCheckError when the check fails.
    """
    import json

    import tensorflow as tf

    float_model = tf.keras.models.clone_model(teacher)
    fold_quantized_weights(student, float_model)
    buffer, result = convert(float_model, target="tflite-int8", name=f"{teacher.name}-w{bits}a{bits}",
                             calibration=preprocess(representative), trained=True)
    meta = {"bits": int(bits), "weights": f"per-channel symmetric, {2 ** bits - 1} levels",
            "activations": f"{2 ** bits} levels, calibrated then frozen", "container": "int8"}
    return add_metadata(buffer, "lcefr.bits", json.dumps(meta).encode()), result
