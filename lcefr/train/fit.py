"""`lcefr train` wiring: data, backbone + margin head, optimizers for BNNs, distillation, resume.

The trainer is a Keras model around the backbone whose ``train_step`` L2-normalises the
embedding, feeds the normalised vector and its norm to a margin head (ArcFace, CosFace, AdaFace)
and adds an optional distillation term from a frozen float teacher. Resume is Keras'
``BackupAndRestore`` (model, optimizer and head state at every finished epoch) plus a
``history.json`` keyed by epoch, so a killed run restarts from its last finished epoch.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict
from typing import Callable, Dict, List, Optional, Tuple

from lcefr.data.augment import augmenter
from lcefr.data.binset import read_bin
from lcefr.data.folder import image_folder_dataset, scan_image_folder
from lcefr.data.recordio import RecordIOReader, recordio_dataset
from lcefr.data.synth import synthetic_folder
from lcefr.embed import Embedder
from lcefr.eval.verification import evaluate
from lcefr.fileio import read_history, write_atomic
from lcefr.heads import make_head
from lcefr.heads.distill import EKDLoss, embedding_mse
from lcefr.keras_graph import CUSTOM_OBJECTS, iter_layers
from lcefr.models import create_model, list_models, model_info
from lcefr.preprocess import normalize
from lcefr.train.config import TrainConfig, config_to_yaml

__all__ = ["prepare", "run_training", "TrainingPlan", "WarmupCosine", "make_optimizer", "copy_matching_weights"]


class TrainingPlan:
    """What :func:`prepare` resolved: data source, number of classes and images, steps."""

    def __init__(self, config: TrainConfig, source: str, kind: str, num_classes: int, num_images: int):
        self.config = config
        self.source = source
        self.kind = kind
        self.num_classes = num_classes
        self.num_images = num_images

    @property
    def steps_per_epoch(self) -> int:
        return self.config.steps_per_epoch or max(1, self.num_images // self.config.batch_size)


def prepare(config: TrainConfig, *, progress=None) -> TrainingPlan:
    """Validate everything a run needs before anything is written (bad input fails here).

    Raises:
        ValueError / FileNotFoundError: unknown model, unusable data, missing teacher or .bin.
    """
    config.validate()
    if config.model not in list_models():
        raise ValueError(f"unknown model {config.model!r}; see `lcefr models list`")
    for path, what in [(b, "--val-bin") for b in config.val_bin] + [(config.teacher, "--teacher"), (config.init_from, "--init-from")]:
        if path and not os.path.exists(path):
            raise FileNotFoundError(f"{what} {path}: no such file")
    if config.data == "synthetic":
        folder = synthetic_folder(identities=config.synth_identities, per_identity=config.synth_per_identity,
                                  seed=config.seed, progress=progress, lookalikes=config.synth_lookalikes)
        return TrainingPlan(config, folder, "folder", config.synth_identities, config.synth_identities * config.synth_per_identity)
    if not os.path.exists(config.data):
        raise FileNotFoundError(f"--data {config.data}: no such folder (give an identity image folder, an insightface "
                                "RecordIO folder or 'synthetic')")
    rec = config.data if config.data.endswith(".rec") else os.path.join(config.data, "train.rec")
    if os.path.exists(rec):
        with RecordIOReader(config.data) as reader:
            return TrainingPlan(config, config.data, "recordio", reader.num_classes, len(reader))
    folder = scan_image_folder(config.data)
    return TrainingPlan(config, config.data, "folder", folder.num_classes, len(folder))


def train_dataset(plan: TrainingPlan, *, global_batch: int):
    import tensorflow as tf

    seed = plan.config.seed
    if plan.kind == "recordio":
        ds = recordio_dataset(plan.source, shuffle=True, seed=seed).repeat()
    else:
        ds = image_folder_dataset(plan.source, shuffle=True, seed=seed, repeat=True)
    if plan.config.augment:
        ds = ds.map(augmenter(), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda x, y: (normalize(tf.cast(x, tf.float32)), tf.cast(y, tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(global_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _schedule_class():
    import tensorflow as tf

    @tf.keras.utils.register_keras_serializable(package="lcefr")
    class WarmupCosine(tf.keras.optimizers.schedules.LearningRateSchedule):
        """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""

        def __init__(self, lr: float, total_steps: int, warmup_steps: int = 0):
            self.lr = float(lr)
            self.total_steps = int(max(total_steps, 1))
            self.warmup_steps = int(max(min(warmup_steps, self.total_steps - 1), 0))

        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warm = self.lr * (step + 1.0) / float(max(self.warmup_steps, 1))
            progress = (step - self.warmup_steps) / float(max(self.total_steps - self.warmup_steps, 1))
            cosine = 0.5 * self.lr * (1.0 + tf.cos(math.pi * tf.clip_by_value(progress, 0.0, 1.0)))
            return tf.where(step < self.warmup_steps, warm, cosine)

        def get_config(self):
            return {"lr": self.lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}

    return WarmupCosine


def WarmupCosine(lr: float, total_steps: int, warmup_steps: int = 0):  # noqa: N802 (a class, built lazily)
    return _schedule_class()(lr, total_steps, warmup_steps)


def make_optimizer(config: TrainConfig, schedule, *, binary: bool):
    """SGD (momentum 0.9) or Adam on every weight with ``schedule``; for binary models larq's
    CaseOptimizer routes the latent binary weights to their own optimizer (Bop with
    ``--optimizer bop``, else a copy of the float one, without weight decay). Legacy Keras
    optimizers: larq requires them."""
    import larq as lq
    import tensorflow as tf

    def float_opt():
        if config.optimizer == "sgd":
            return tf.keras.optimizers.legacy.SGD(schedule, momentum=0.9)
        return tf.keras.optimizers.legacy.Adam(schedule)

    if not binary:
        if config.optimizer == "bop":
            raise ValueError("--optimizer bop is for binary models (it flips binary weights); use sgd or adam")
        return float_opt()
    latent = lq.optimizers.Bop(threshold=config.bop_threshold, gamma=config.bop_gamma) if config.optimizer == "bop" else float_opt()
    return lq.optimizers.CaseOptimizer((lq.optimizers.Bop.is_binary_variable, latent), default_optimizer=float_opt())


def copy_matching_weights(source, target) -> Tuple[int, int]:
    """Copy weights layer by layer where names and shapes agree (``--init-from``).

    Returns ``(copied, total)`` weight tensors of ``target``.
    """
    by_name = {layer.name: layer for layer in iter_layers(source)}
    copied = total = 0
    for layer in iter_layers(target):
        total += len(layer.weights)
        other = by_name.get(layer.name)
        if other is None or len(other.weights) != len(layer.weights):
            continue
        pairs = list(zip(layer.weights, other.weights))
        if all(tuple(a.shape) == tuple(b.shape) for a, b in pairs):
            for a, b in pairs:
                a.assign(b)
            copied += len(pairs)
    return copied, total


def _trainer_class():
    import tensorflow as tf

    class FaceTrainer(tf.keras.Model):
        """Backbone + margin head (+ frozen teacher); ``call`` returns the backbone's embedding."""

        def __init__(self, backbone, head, *, teacher=None, distill=None, distill_weight=1.0, weight_decay=0.0, **kwargs):
            super().__init__(**kwargs)
            self.backbone = backbone
            self.head = head
            self.teacher = teacher
            self.distill = distill
            self.distill_weight = float(distill_weight)
            self.weight_decay = float(weight_decay)
            self.ce = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
            self.trackers = {k: tf.keras.metrics.Mean(name=k) for k in ("loss", "ce", "kd", "acc")}

        @property
        def metrics(self):
            return list(self.trackers.values())

        def call(self, x, training=False):
            return self.backbone(x, training=training)

        def _decayed(self):
            binary = set()
            for layer in self.backbone.submodules:
                if getattr(layer, "kernel_quantizer", None) is not None and hasattr(layer, "kernel"):
                    binary.add(id(layer.kernel))
            return [v for v in self.backbone.trainable_variables + self.head.trainable_variables
                    if ("kernel" in v.name or "embedding" in v.name) and id(v) not in binary and len(v.shape) > 1]

        def train_step(self, data):
            x, y = data
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            variables = self.backbone.trainable_variables + self.head.trainable_variables
            decayed = self._decayed()
            with tf.GradientTape() as tape:
                emb = self.backbone(x, training=True)
                norms = tf.norm(emb, axis=1, keepdims=True)
                unit = emb / tf.maximum(norms, 1e-12)
                logits = self.head(unit, norms, y, training=True)
                ce = tf.reduce_mean(self.ce(y, logits))
                kd = tf.constant(0.0)
                if self.teacher is not None:
                    target = tf.stop_gradient(self.teacher(x, training=False))
                    kd = self.distill(emb, target, y)
                loss = ce + self.distill_weight * kd
                decay = tf.add_n([tf.reduce_sum(tf.square(v)) for v in decayed]) if decayed else tf.constant(0.0)
                total = (loss + 0.5 * self.weight_decay * decay) / replicas
            grads = tape.gradient(total, variables)
            self.optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
            acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), tf.cast(y, tf.int32)), tf.float32))
            for key, value in (("loss", loss), ("ce", ce), ("kd", kd), ("acc", acc)):
                self.trackers[key].update_state(value)
            return {k: m.result() for k, m in self.trackers.items()}

    return FaceTrainer


def _strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG describing the cluster (see docs/training.md)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _load_keras(path: str, what: str):
    import tensorflow as tf

    try:
        return tf.keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
    except Exception as err:  # a user file that is not a Keras model
        raise ValueError(f"{what} {path} is not a Keras model file ({type(err).__name__})") from None


def build(config: TrainConfig, plan: TrainingPlan, *, total_steps: int):
    """Backbone, head, teacher and optimizer, inside the distribution strategy's scope."""
    import tensorflow as tf

    strategy = _strategy(config.strategy)
    with strategy.scope():
        backbone = create_model(config.model)
        embedding_size = int(backbone.output_shape[-1])
        kwargs = {k: v for k, v in (("m", config.margin), ("s", config.scale)) if v is not None}
        head = make_head(config.head, num_classes=plan.num_classes, embedding_size=embedding_size, **kwargs)
        teacher = distill = None
        if config.teacher:
            teacher = _load_keras(config.teacher, "--teacher")
            teacher.trainable = False
            if config.distill == "mse":
                if int(teacher.output_shape[-1]) != embedding_size:
                    raise ValueError(f"--distill mse needs equal embedding sizes: teacher {teacher.output_shape[-1]}, "
                                     f"student {embedding_size} (ekd compares similarities and works across sizes)")
                distill = lambda student, target, labels: embedding_mse(student, target)  # noqa: E731
            else:
                ekd = EKDLoss(warm_start=True)  # short runs: thresholds from the first batch, not from 0
                distill = lambda student, target, labels: ekd(student, target, labels, training=True)  # noqa: E731
        if config.init_from:
            copied, total = copy_matching_weights(_load_keras(config.init_from, "--init-from"), backbone)
            if copied == 0:
                raise ValueError(f"--init-from {config.init_from}: no layer matches {config.model} by name and shape")
        trainer = _trainer_class()(backbone, head, teacher=teacher, distill=distill,
                                   distill_weight=config.distill_weight, weight_decay=config.weight_decay)
        trainer.lr_schedule = WarmupCosine(config.lr, total_steps, int(config.warmup_epochs * plan.steps_per_epoch))
        trainer.steps_per_epoch = plan.steps_per_epoch
        trainer.compile(optimizer=make_optimizer(config, trainer.lr_schedule, binary=model_info(config.model).binary))
        trainer(tf.zeros((1, 112, 112, 3)))
        head(tf.math.l2_normalize(tf.ones((1, embedding_size)), axis=1), tf.ones((1, 1)), tf.zeros((1,), tf.int32), training=False)
    return strategy, trainer


def _verification_callback(bins: List[str], batch_size: int):
    import tensorflow as tf

    sets = [read_bin(b) for b in bins]

    class Verify(tf.keras.callbacks.Callback):
        """Flip-test 10-fold accuracy of the backbone on every ``--val-bin`` after each epoch."""

        def on_epoch_end(self, epoch, logs=None):
            backbone = self.model.backbone
            embedder = Embedder(name="backbone", kind="keras", batch_size=batch_size,
                                run=lambda x: backbone(x, training=False).numpy())
            for vs in sets:
                accuracy = evaluate(embedder.embed(vs.images), vs.issame)[2]
                if logs is not None:
                    logs[f"val_{vs.name}"] = float(accuracy.mean())

    return Verify()


def _history_callback(out_dir: str, config: TrainConfig):
    import tensorflow as tf

    path = os.path.join(out_dir, "history.json")

    class History(tf.keras.callbacks.Callback):
        """``history.json``: one record per finished epoch (keyed by epoch, so a resumed run overwrites
        nothing it keeps), and ``backbone.keras`` of the last finished epoch, both written atomically."""

        def on_train_begin(self, logs=None):
            self.records = {}
            if os.path.exists(path):
                with open(path) as f:
                    self.records = {int(r["epoch"]): r for r in json.load(f).get("epochs", [])}
            self.start = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = time.time()

        def on_epoch_end(self, epoch, logs=None):
            schedule = self.model.lr_schedule
            record = {"epoch": epoch + 1, "seconds": round(time.time() - self.epoch_start, 2),
                      "lr": float(schedule((epoch + 1) * self.model.steps_per_epoch - 1))}
            record.update({k: float(v) for k, v in (logs or {}).items()})
            self.records = {k: v for k, v in self.records.items() if k < epoch + 1}
            self.records[epoch + 1] = record
            _save_backbone(self.model.backbone, os.path.join(out_dir, "backbone.keras"))
            self._write(complete=epoch + 1 >= config.epochs)

        def _write(self, complete: bool):
            data = {"model": config.model, "epochs_planned": config.epochs, "complete": complete,
                    "epochs": [self.records[k] for k in sorted(self.records)]}
            write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())

    return History()


def _save_backbone(backbone, path: str) -> None:
    import warnings

    tmp = f"{path[:-len('.keras')]}.tmp{os.getpid()}.keras"
    try:
        with warnings.catch_warnings():  # larq-zoo passes plain functions as initializers; saving warns
            warnings.simplefilter("ignore", UserWarning)
            backbone.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def worker_role() -> Tuple[bool, int]:
    """``(is_chief, index)`` from ``TF_CONFIG`` (no TF_CONFIG: a single chief)."""
    cfg = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = cfg.get("task") or {}
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in (cfg.get("cluster") or {})
    return (kind == "chief") or (kind == "worker" and index == 0 and not has_chief), index


def run_training(config: TrainConfig, out_dir: str, *, plan: Optional[TrainingPlan] = None, verbose: int = 1,
                 on_message: Callable[[str], None] = print) -> Dict:
    """Train (or resume) into ``out_dir``; returns the final history record."""
    import tensorflow as tf

    plan = plan or prepare(config)
    chief, index = worker_role()
    if config.strategy == "multiworker" and not chief:
        out_dir = os.path.join(out_dir, f".worker{index}")  # the chief owns the run folder
    history = read_history(out_dir)
    if history and history.get("complete") and len(history["epochs"]) >= config.epochs:
        on_message(f"{out_dir}: already trained {len(history['epochs'])} epochs; nothing to do")
        return history
    tf.get_logger().setLevel("ERROR")  # Keras' "callback is slow" chatter on tiny steps
    tf.keras.utils.set_random_seed(config.seed)
    steps = plan.steps_per_epoch
    strategy, trainer = build(config, plan, total_steps=steps * config.epochs)  # bad teacher/init files fail here
    os.makedirs(out_dir, exist_ok=True)
    write_atomic(os.path.join(out_dir, "config.yaml"), config_to_yaml(config).encode())
    ds = train_dataset(plan, global_batch=config.batch_size)
    callbacks = [_history_callback(out_dir, config),
                 tf.keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup")),
                 tf.keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard"), profile_batch=0)]
    if config.val_bin:
        callbacks.insert(0, _verification_callback(list(config.val_bin), config.batch_size))
    trainer.fit(ds, epochs=config.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=verbose)
    shutil.rmtree(os.path.join(out_dir, "backup"), ignore_errors=True)
    return read_history(out_dir)


def benchmark(config: TrainConfig, *, batches: int = 10) -> Dict:
    """Images/s of the input pipeline alone and of the training step alone (on one fixed batch)."""
    import tensorflow as tf

    plan = prepare(config)
    ds = train_dataset(plan, global_batch=config.batch_size)
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    pipeline = batches * config.batch_size / (time.perf_counter() - start)
    _, trainer = build(config, plan, total_steps=1000)
    step = tf.function(trainer.train_step)
    step(batch)
    start = time.perf_counter()
    for _ in range(batches):
        out = step(batch)
    float(out["loss"])
    model = batches * config.batch_size / (time.perf_counter() - start)
    return {"model": config.model, "batch_size": config.batch_size, "pipeline_images_per_s": round(pipeline, 1),
            "step_images_per_s": round(model, 1), "batches": batches, "config": asdict(config)}
