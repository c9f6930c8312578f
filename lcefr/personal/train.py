"""Training of ``h_gen`` (seed 003, Rozner et al., section IV-C) and of the "f trained directly" baseline.

Each step takes ``B`` identities x ``n`` images, generates one verifier per image and scores every image
with every verifier (an ``nB x nB`` matrix, tensorised), then minimises the weighted binary cross-entropy
with ``lambda = 1 - beta / B`` plus ``alpha_norm`` times the weight-norm penalty ``L_norm``. During the
warm-up the batch doubles three times and ``alpha_norm`` rises; after it, batches are drawn within one
K-means cluster of identities (KCS). ``h_bb`` is frozen, so the backbone embeddings of all training
images are computed once before training.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable, Dict, Optional

import numpy as np

from lcefr.data.folder import scan_image_folder
from lcefr.data.images import is_aligned_face, read_image
from lcefr.data.synth import synth_faces
from lcefr.embed import load_embedder
from lcefr.eval.verification import l2_normalize
from lcefr.fileio import read_history, write_atomic
from lcefr.heads.margin import make_head
from lcefr.personal.hypernet import META_FILE, WEIGHTS_FILE, build_hgen, read_meta
from lcefr.personal.sampling import IdentitySampler, alpha_norm_at, batch_identities_at, kmeans
from lcefr.personal.verifier import (
    ParamFreeNorm,
    VerifierSpec,
    _depthwise,
    count_macs,
    count_params,
    initial_theta,
    score_logits,
)
from lcefr.preprocess import preprocess

__all__ = ["PersonalConfig", "TrainingData", "prepare_data", "train_hypernet", "weighted_bce", "bce_weight_for",
           "train_direct", "load_images", "build_direct", "theta_from_direct"]


@dataclass(frozen=True)
class PersonalConfig:
    """Everything a hypernetwork run depends on (written to ``personal.json``).

    ``batch_identities`` is the final ``B``; it starts at ``B / 2**doublings`` and doubles at evenly spaced
    points of the first ``warmup`` fraction of the steps, where ``alpha_norm`` rises from a tenth to its
    value and after which KCS starts (the first batches hold at least two identities). Adam replaces the
    seed's SGD (lr 1e-3, momentum 0.9): with a few hundred steps SGD barely moves.

    ``warm_start_epochs > 0`` first trains ``f`` directly as an embedding network for that many epochs and
    starts every generated network from its weights (a short-budget substitute for the seed's long
    training; not in the paper).
    """

    steps: int = 600
    batch_identities: int = 8
    per_identity: int = 2
    doublings: int = 3
    warmup: float = 0.4
    beta: float = 2.0
    alpha_norm: float = 1e-4
    kcs: bool = True
    lnorm: bool = True
    clusters: int = 0  # 0: identities // (2 * batch_identities), at least 2
    lr: float = 3e-4
    hidden: int = 256
    flip: bool = True
    seed: int = 0
    checkpoint_every: int = 50
    synth_identities: int = 200
    synth_per_identity: int = 8
    synth_lookalikes: bool = False  # identities 2m and 2m+1 of the generated set are look-alikes
    warm_start_epochs: int = 0

    def validate(self) -> "PersonalConfig":
        if self.steps < 1 or self.batch_identities < 2 or self.per_identity < 1:
            raise ValueError(f"need steps >= 1, batch_identities >= 2, per_identity >= 1; got {self.steps}, "
                             f"{self.batch_identities}, {self.per_identity}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.beta < 1:
            raise ValueError(f"beta must be >= 1, got {self.beta}")
        return self

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup * self.steps)

    @classmethod
    def from_dict(cls, d: Dict) -> "PersonalConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
        return cls(**d).validate()


def bce_weight_for(identities: int, beta: float) -> float:
    """``lambda = 1 - beta / B`` (seed 003, eq. 7), but never below the balanced 0.5.

    For ``B <= 2 beta`` (the first warm-up batches) the formula would weigh positives below negatives
    although they are already as frequent as 1 : B - 1 (and not at all for ``B = beta``).
    """
    return float(max(1.0 - beta / identities, 0.5))


def weighted_bce(logits, same, lam):
    """Eq. 6: ``-(1/nB) sum_jk [lambda Y log s + (1 - lambda)(1 - Y) log(1 - s)]`` from logits."""
    import tensorflow as tf

    same = tf.cast(same, logits.dtype)
    terms = lam * same * tf.nn.softplus(-logits) + (1.0 - lam) * (1.0 - same) * tf.nn.softplus(logits)
    return tf.reduce_sum(terms) / tf.cast(tf.shape(logits)[0], logits.dtype)


@dataclass
class TrainingData:
    """``images`` uint8 (N, 112, 112, 3), ``labels`` (N,), ``embeddings`` L2-normalised ``h_bb`` output (N, D)."""

    images: np.ndarray
    labels: np.ndarray
    embeddings: np.ndarray
    source: str = ""


def _folder_images(root: str):
    folder = scan_image_folder(root)
    images = []
    for path in folder.paths:
        image = read_image(path)
        if not is_aligned_face(image):
            raise ValueError(f"{path} is {image.shape[1]}x{image.shape[0]}; --data needs aligned 112x112 faces "
                             "(run `lcefr align` first)")
        images.append(image)
    return np.stack(images), folder.labels


def load_images(data: str, *, config: PersonalConfig):
    """``(images, labels)`` of an identity folder of aligned faces or of ``'synthetic'`` (from the config)."""
    if data == "synthetic":
        per = config.synth_per_identity
        images = synth_faces(config.synth_identities * per, seed=config.seed, per_identity=per,
                             lookalikes=config.synth_lookalikes)
        return images, np.repeat(np.arange(config.synth_identities), per)
    if not os.path.exists(data):
        raise FileNotFoundError(f"--data {data}: no such folder (give an identity folder of aligned faces or "
                                "'synthetic')")
    return _folder_images(data)


def prepare_data(data: str, backbone: str, *, config: PersonalConfig, progress=None) -> TrainingData:
    """Images and labels from an identity folder or ``'synthetic'``, with their backbone embeddings.

    Raises:
        FileNotFoundError / ValueError: missing or unusable data or backbone.
    """
    embedder = load_embedder(backbone, seed=config.seed, batch_size=64)
    images, labels = load_images(data, config=config)
    if len(np.unique(labels)) < config.batch_identities:
        raise ValueError(f"{data}: {len(np.unique(labels))} identities, fewer than batch_identities="
                         f"{config.batch_identities}")
    embeddings = l2_normalize(embedder.raw(images, progress=progress))
    return TrainingData(images=images, labels=np.asarray(labels), embeddings=embeddings.astype(np.float32),
                        source=data)


def _preprocess(images: np.ndarray, rng: Optional[np.random.Generator]) -> np.ndarray:
    x = preprocess(images)
    if rng is not None:
        flip = rng.random(len(x)) < 0.5
        x[flip] = x[flip, :, ::-1]
    return x


def _clusters(data: TrainingData, config: PersonalConfig):
    ids = np.unique(data.labels)
    centres = np.stack([data.embeddings[data.labels == i].mean(0) for i in ids])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    k = config.clusters or max(2, len(ids) // (2 * config.batch_identities))
    k = min(k, len(ids))
    labels = kmeans(centres, k, seed=config.seed)
    cluster_centres = np.stack([centres[labels == c].mean(0) if np.any(labels == c) else np.full(centres.shape[1], 1e3)
                                for c in range(k)])
    return labels, cluster_centres


def _save_backbone_copy(backbone: str, out_dir: str) -> Dict:
    if os.path.isfile(backbone):
        name = "backbone" + (".tflite" if backbone.endswith(".tflite") else os.path.splitext(backbone)[1] or ".keras")
        target = os.path.join(out_dir, name)
        if not os.path.exists(target):
            tmp = f"{target}.tmp{os.getpid()}"
            shutil.copyfile(backbone, tmp)
            os.replace(tmp, target)
        return {"source": os.path.abspath(backbone), "copy": name}
    return {"source": backbone, "copy": None}


def train_hypernet(data: TrainingData, out_dir: str, *, config: PersonalConfig, backbone: str,
                   spec: Optional[VerifierSpec] = None, on_message: Callable[[str], None] = print,
                   log_every: int = 10, theta0: Optional[np.ndarray] = None) -> Dict:
    """Train (or resume) ``h_gen`` into ``out_dir``; returns the history dict.

    Writes ``personal.json`` first, ``checkpoints/`` every ``checkpoint_every`` steps, ``h_gen.weights.h5``
    and ``history.json`` at every checkpoint (``complete`` once all steps ran). Rerunning continues from
    the last checkpoint; a finished run is left alone. ``theta0`` (e.g. :func:`theta_from_direct` of an
    already trained direct ``f``) replaces the warm start that ``config.warm_start_epochs`` would train.
    """
    import tensorflow as tf
    import tf_keras as keras

    config = config.validate()
    spec = (spec or VerifierSpec()).validate()
    old = read_meta(out_dir)
    if old is not None and asdict(PersonalConfig.from_dict(old["config"])) != asdict(config):
        raise ValueError(f"{out_dir} holds a run with a different config; use another --out or delete it")
    history = read_history(out_dir)
    if history and history.get("complete"):
        on_message(f"{out_dir}: already trained {history['steps_done']} steps; nothing to do")
        return history
    os.makedirs(out_dir, exist_ok=True)
    meta = {"config": asdict(config), "verifier": spec.to_dict(), "embedding_size": int(data.embeddings.shape[1]),
            "params": count_params(spec), "macs": count_macs(spec), "data": data.source,
            "identities": int(len(np.unique(data.labels))), "images": int(len(data.labels)),
            "backbone": {**_save_backbone_copy(backbone, out_dir), "seed": config.seed}}
    write_atomic(os.path.join(out_dir, META_FILE), (json.dumps(meta, indent=2) + "\n").encode())

    if theta0 is None and config.warm_start_epochs > 0 and not tf.train.latest_checkpoint(
            os.path.join(out_dir, "checkpoints")):
        direct = train_direct(data, spec=spec, epochs=config.warm_start_epochs, seed=config.seed, on_message=on_message)
        theta0 = theta_from_direct(direct, spec, seed=config.seed)
    keras.utils.set_random_seed(config.seed)
    h_gen = build_hgen(data.embeddings.shape[1], spec, hidden=config.hidden, seed=config.seed, theta0=theta0)
    optimizer = keras.optimizers.Adam(config.lr)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    ckpt = tf.train.Checkpoint(h_gen=h_gen, optimizer=optimizer, step=step_var)
    manager = tf.train.CheckpointManager(ckpt, os.path.join(out_dir, "checkpoints"), max_to_keep=1)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        on_message(f"resuming {out_dir} at step {int(step_var.numpy())}")
    start_step = int(step_var.numpy())
    records = [r for r in (history or {}).get("records", []) if r["step"] <= start_step]

    clusters, centres = _clusters(data, config) if config.kcs else (None, None)
    sampler = IdentitySampler(data.labels, per_identity=config.per_identity, seed=config.seed,
                              clusters=clusters, centres=centres)
    variables = h_gen.trainable_variables

    @tf.function
    def train_step(x, emb, who, lam, alpha):
        with tf.GradientTape() as tape:
            theta = h_gen(emb, training=True)
            logits = score_logits(x, theta, spec)
            same = tf.equal(who[:, None], who[None, :])
            bce = weighted_bce(logits, same, lam)
            lnorm = tf.reduce_mean(tf.reduce_sum(tf.square(theta), axis=1))
            loss = bce + alpha * lnorm if config.lnorm else bce
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        same_f = tf.cast(same, tf.float32)
        pred = tf.cast(logits > 0, tf.float32)
        tpr = tf.reduce_sum(pred * same_f) / tf.reduce_sum(same_f)
        tnr = tf.reduce_sum((1 - pred) * (1 - same_f)) / tf.reduce_sum(1 - same_f)
        return loss, bce, lnorm, tpr, tnr

    def save(done: int, complete: bool):
        step_var.assign(done)
        manager.save(checkpoint_number=done)
        tmp = os.path.join(out_dir, f"h_gen.tmp{os.getpid()}.weights.h5")
        h_gen.save_weights(tmp)
        os.replace(tmp, os.path.join(out_dir, WEIGHTS_FILE))
        hist = {"steps_planned": config.steps, "steps_done": done, "complete": complete, "records": records}
        write_atomic(os.path.join(out_dir, "history.json"), (json.dumps(hist, indent=2) + "\n").encode())
        return hist

    warm = config.warmup_steps
    acc = []
    t0 = time.time()
    hist = None
    for step in range(start_step, config.steps):
        b = batch_identities_at(step, final=config.batch_identities, warmup_steps=warm, doublings=config.doublings)
        kcs = config.kcs and step >= warm
        index, who = sampler.batch(step, b, kcs=kcs)
        rng = np.random.default_rng([config.seed, step, 2]) if config.flip else None
        x = _preprocess(data.images[index], rng)
        alpha = alpha_norm_at(step, final=config.alpha_norm, warmup_steps=warm)
        out = train_step(tf.constant(x), tf.constant(data.embeddings[index]), tf.constant(who, tf.int32),
                         tf.constant(bce_weight_for(b, config.beta), tf.float32), tf.constant(alpha, tf.float32))
        acc.append([float(v) for v in out])
        done = step + 1
        if done % log_every == 0 or done == config.steps:
            m = np.mean(acc, axis=0)
            records.append({"step": done, "identities": b, "kcs": kcs, "alpha_norm": alpha, "loss": float(m[0]),
                            "bce": float(m[1]), "lnorm": float(m[2]), "tpr": float(m[3]), "tnr": float(m[4]),
                            "seconds": round(time.time() - t0, 2)})
            acc = []
            on_message(f"step {done}/{config.steps}  B={b}{' kcs' if kcs else ''}  loss {m[0]:.4f}  bce {m[1]:.4f}  "
                       f"lnorm {m[2]:.1f}  tpr {m[3]:.3f}  tnr {m[4]:.3f}")
        if done % config.checkpoint_every == 0 or done == config.steps:
            hist = save(done, complete=done == config.steps)
    if hist is None:
        hist = read_history(out_dir)
    return hist


# -- the baseline: f trained directly as an embedding network (seed 003, Table II, first row) ----------------
def build_direct(spec: VerifierSpec, *, seed: int = 0):
    """``f``'s architecture with the output logit removed: the hidden layer is a ``spec.hidden``-d embedding."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((spec.input_size, spec.input_size, 3))
    x = keras.layers.AveragePooling2D(spec.pool)(inp) if spec.pool > 1 else inp
    cin = 3
    for i, (filters, kernel, stride, groups) in enumerate(spec.convs):
        if i > 0 and _depthwise(cin, filters, groups):
            x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False)(x)
        else:
            x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", groups=groups)(x)
            x = keras.layers.ReLU()(ParamFreeNorm()(x))
        cin = filters
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(spec.hidden, name="embedding")(x)
    return keras.Model(inp, x, name="direct_f")


def theta_from_direct(model, spec: VerifierSpec, *, seed: int = 0) -> np.ndarray:
    """A flat ``theta`` from a trained :func:`build_direct` model; the output layer is He-initialised."""
    parts = np.concatenate([np.asarray(w, np.float32).ravel() for w in model.get_weights()])
    tail = initial_theta(spec, np.random.default_rng(seed))[len(parts):]
    theta = np.concatenate([parts, tail])
    if theta.size != count_params(spec):
        raise ValueError(f"direct model does not match the verifier spec ({parts.size} + {tail.size} values)")
    return theta


def train_direct(data: TrainingData, *, spec: Optional[VerifierSpec] = None, epochs: int = 30, batch_size: int = 64,
                 lr: float = 2e-3, seed: int = 0, margin: float = 0.3, scale: float = 32.0, flip: bool = True,
                 on_message: Callable[[str], None] = print):
    """Train ``f``'s architecture as an embedding network with an ArcFace head; returns the Keras model.

    Scores are then cosines of L2-normalised embeddings.
    """
    import tensorflow as tf
    import tf_keras as keras

    spec = (spec or VerifierSpec()).validate()
    model = build_direct(spec, seed=seed)
    classes, y = np.unique(data.labels, return_inverse=True)
    head = make_head("arcface", num_classes=len(classes), embedding_size=spec.hidden, m=margin, s=scale)
    optimizer = keras.optimizers.Adam(lr)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    head(tf.zeros((1, spec.hidden)), tf.ones((1, 1)), tf.zeros((1,), tf.int32))
    variables = model.trainable_variables + head.trainable_variables

    @tf.function
    def step(x, labels):
        with tf.GradientTape() as tape:
            emb = model(x, training=True)
            norms = tf.norm(emb, axis=1, keepdims=True)
            logits = head(emb / tf.maximum(norms, 1e-12), norms, labels, training=True)
            loss = ce(labels, logits)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(seed)
    n = len(y)
    for epoch in range(epochs):
        order = rng.permutation(n)
        losses = []
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            x = _preprocess(data.images[idx], rng if flip else None)
            losses.append(float(step(tf.constant(x), tf.constant(y[idx], tf.int32))))
        if (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            on_message(f"direct f epoch {epoch + 1}/{epochs}  loss {np.mean(losses):.4f}")
    return model
