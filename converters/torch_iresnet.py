#!/usr/bin/env python
"""Import a PyTorch IResNet checkpoint into lcefr's ``ir18`` / ``ir34`` / ``ir50`` (a distillation teacher).

    python converters/torch_iresnet.py backbone.pth --arch r50 --layout insightface -o teacher.keras

The imported model follows lcefr's input contract (:mod:`lcefr.preprocess`): aligned RGB faces,
112x112, NHWC, ``(x - 127.5) / 127.5``. Two state-dict layouts are understood:

``insightface``
    arcface_torch ``backbones/iresnet.py`` (ArcFace, arXiv:1801.07698):
    stem ``conv1`` / ``bn1`` / ``prelu``; blocks ``layer{1-4}.{i}.{bn1, conv1, bn2, prelu, conv2,
    bn3}`` with ``downsample.{0,1}`` (1x1 conv + BN) on each stage's first block; head ``bn2``,
    ``fc`` (512*7*7 -> 512), ``features`` (BatchNorm1d). Its input is RGB scaled as
    ``((x / 255) - 0.5) / 0.5``, which is lcefr's contract, so nothing is folded except a
    ``features`` BN scale other than 1 (arcface_torch freezes it at 1), which moves into ``fc``.
``adaface``
    AdaFace ``net.py`` ``ir_18`` / ``ir_34`` / ``ir_50`` (arXiv:2204.00964): stem
    ``input_layer.{0,1,2}``; blocks ``body.{n}.res_layer.{0-5}`` (BN, conv, BN, PReLU, conv, BN)
    with ``body.{n}.shortcut_layer.{0,1}`` (1x1 conv + BN) where the width changes; head
    ``output_layer.{0,3,4}`` (BN2d, Linear, BatchNorm1d without affine). Same scaling as above, but
    on BGR: the first convolution's input channels are reversed, so the imported model takes RGB.
    The first block's parameter-free ``MaxPool2d(1, 2)`` shortcut (a 2x subsampling) becomes
    lcefr's stride-2 1x1 shortcut convolution with an identity kernel and an identity BN, so the
    unchanged ``ir*`` builders hold both layouts. Released AdaFace ``.ckpt`` files keep the
    backbone under ``state_dict`` with a ``model.`` prefix next to the margin head's ``head.*``
    tensors (ignored and reported); a checkpoint that also pickles training objects (Lightning
    hyper-parameters, say) is read only with ``--trust-pickle``.

PyTorch is needed only to read the file (``pip install -e ".[torch]"``); the mapping itself works
on numpy arrays (:func:`convert_state_dict`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf-keras (Keras 2), as lcefr and larq need

__all__ = [
    "ARCHS",
    "LAYOUTS",
    "CheckpointError",
    "Slot",
    "Report",
    "plan",
    "load_state_dict",
    "convert_state_dict",
    "convert_checkpoint",
    "save_model",
    "main",
]

#: ``--arch`` -> (lcefr model, blocks per stage).
ARCHS = {"r18": ("ir18", (2, 2, 2, 2)), "r34": ("ir34", (3, 4, 6, 3)), "r50": ("ir50", (3, 4, 14, 3))}
LAYOUTS = ("insightface", "adaface")
WIDTHS = (64, 128, 256, 512)
SPATIAL = 7
BN_EPS = 1e-5

_PREFIXES = ("module.", "model.")
_BACKBONE_ROOTS = {
    "insightface": ("conv1", "bn1", "prelu", "layer1", "layer2", "layer3", "layer4", "bn2", "fc", "features"),
    "adaface": ("input_layer", "body", "output_layer"),
}
_BN_ROLES = ("weight", "bias", "running_mean", "running_var")


class CheckpointError(ValueError):
    """The checkpoint cannot be read or does not hold the requested architecture."""


@dataclass(frozen=True)
class Slot:
    """One weighted layer of the network, in the order lcefr's builder creates them.

    ``kind`` is ``conv``, ``bn``, ``prelu``, ``dense``, ``bn_out`` (the embedding BN, no learned
    Keras scale), or ``identity_conv`` / ``identity_bn`` (AdaFace's MaxPool shortcut, no tensors).
    ``shapes`` maps each PyTorch tensor role under ``prefix`` to its shape.
    """

    kind: str
    prefix: str = ""
    shapes: Dict[str, Tuple[int, ...]] = field(default_factory=dict)
    channels: int = 0
    flip_input: bool = False

    def key(self, role: str) -> str:
        return f"{self.prefix}.{role}"


@dataclass
class Report:
    """What an import matched, folded and ignored."""

    arch: str
    layout: str
    model: str
    params: int
    tensors: int
    buffers: int
    ignored: List[str]
    folded: List[str]

    def to_dict(self) -> Dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"imported {self.arch} ({self.layout} layout) as lcefr {self.model}: {self.params:,} parameters, "
            f"{self.tensors} tensors matched ({self.buffers} num_batches_tracked buffers skipped)"
        ]
        if self.folded:
            lines.append("folded: " + "; ".join(self.folded))
        if self.ignored:
            shown = ", ".join(self.ignored[:8]) + (", ..." if len(self.ignored) > 8 else "")
            lines.append(f"ignored {len(self.ignored)} tensors outside the backbone: {shown}")
        return "\n".join(lines)


def _conv(prefix, out_c, in_c, k, *, flip_input=False):
    return Slot("conv", prefix, {"weight": (out_c, in_c, k, k)}, out_c, flip_input)


def _bn(prefix, c):
    return Slot("bn", prefix, {role: (c,) for role in _BN_ROLES}, c)


def _prelu(prefix, c):
    return Slot("prelu", prefix, {"weight": (c,)}, c)


def _head(layout: str, bn_in: str, fc: str, bn_out: str, embedding_size: int) -> List[Slot]:
    roles = _BN_ROLES if layout == "insightface" else ("running_mean", "running_var")
    return [
        _bn(bn_in, WIDTHS[-1]),
        Slot("dense", fc, {"weight": (embedding_size, WIDTHS[-1] * SPATIAL * SPATIAL), "bias": (embedding_size,)}),
        Slot("bn_out", bn_out, {role: (embedding_size,) for role in roles}, embedding_size),
    ]


def plan(arch: str, layout: str, *, embedding_size: int = 512) -> List[Slot]:
    """The PyTorch tensors of ``arch`` in ``layout``, one :class:`Slot` per lcefr weighted layer.

    Raises:
        CheckpointError: unknown ``arch`` or ``layout``.
    """
    if arch not in ARCHS:
        raise CheckpointError(f"unknown arch {arch!r}; expected one of {', '.join(sorted(ARCHS))}")
    if layout not in LAYOUTS:
        raise CheckpointError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    depths = ARCHS[arch][1]
    adaface = layout == "adaface"
    stem = "input_layer.{}" if adaface else "{}"
    names = ("0", "1", "2") if adaface else ("conv1", "bn1", "prelu")
    slots = [
        _conv(stem.format(names[0]), WIDTHS[0], 3, 3, flip_input=adaface),
        _bn(stem.format(names[1]), WIDTHS[0]),
        _prelu(stem.format(names[2]), WIDTHS[0]),
    ]
    cin, n = WIDTHS[0], 0
    for stage, (depth, width) in enumerate(zip(depths, WIDTHS), start=1):
        for i in range(depth):
            if adaface:
                p = f"body.{n}"
                r = [f"{p}.res_layer.{j}" for j in range(6)]
                short = (f"{p}.shortcut_layer.0", f"{p}.shortcut_layer.1")
            else:
                p = f"layer{stage}.{i}"
                r = [f"{p}.{m}" for m in ("bn1", "conv1", "bn2", "prelu", "conv2", "bn3")]
                short = (f"{p}.downsample.0", f"{p}.downsample.1")
            slots += [
                _bn(r[0], cin),
                _conv(r[1], width, cin, 3),
                _bn(r[2], width),
                _prelu(r[3], width),
                _conv(r[4], width, width, 3),
                _bn(r[5], width),
            ]
            if i == 0:  # every stage starts with stride 2: lcefr always has a 1x1 shortcut here
                if adaface and cin == width:
                    slots += [Slot("identity_conv", p, channels=width), Slot("identity_bn", p, channels=width)]
                else:
                    slots += [_conv(short[0], width, cin, 1), _bn(short[1], width)]
            cin, n = width, n + 1
    if adaface:
        slots += _head(layout, "output_layer.0", "output_layer.3", "output_layer.4", embedding_size)
    else:
        slots += _head(layout, "bn2", "fc", "features", embedding_size)
    return slots


def _guess_layout(keys) -> Optional[str]:
    for layout, roots in (("adaface", ("input_layer.", "body.")), ("insightface", ("conv1.", "layer1."))):
        if any(k.startswith(roots) for k in keys):
            return layout
    return None


def _check(state: Mapping[str, np.ndarray], slots: List[Slot], arch: str, layout: str) -> Tuple[int, int, List[str]]:
    """Every expected tensor present with its shape; extra backbone tensors are an error."""
    where = f"--arch {arch} --layout {layout}"
    expected = [(s.key(role), shape) for s in slots for role, shape in s.shapes.items()]
    missing = [k for k, _ in expected if k not in state]
    if missing:
        guess = _guess_layout(state)
        hint = f" (the keys look like the {guess} layout)" if guess and guess != layout else ""
        raise CheckpointError(
            f"checkpoint lacks tensor {missing[0]!r} expected for {where}{hint}; "
            f"{len(missing)} of {len(expected)} expected tensors missing"
        )
    for key, shape in expected:
        got = tuple(np.shape(state[key]))
        if got != shape:
            raise CheckpointError(f"tensor {key!r} has shape {got}, expected {shape} for {where}")
    used = {k for k, _ in expected}
    buffers = {s.key("num_batches_tracked") for s in slots if s.kind in ("bn", "bn_out")}
    extra = sorted(k for k in state if k not in used and k not in buffers)
    roots = _BACKBONE_ROOTS[layout]
    stray = [k for k in extra if k.split(".", 1)[0] in roots]
    if stray:
        raise CheckpointError(
            f"checkpoint has backbone tensor {stray[0]!r} that {where} does not use "
            f"({len(stray)} such tensors; a deeper network than {arch}?)"
        )
    return len(expected), len(buffers & set(state)), extra


def _weight_layers(model) -> list:
    """The model's weighted layers in graph order, the residual branch before its shortcut."""
    import tensorflow as tf

    order, seen = [], set()
    stack = [(t._keras_history.layer, False) for t in reversed(model.outputs)]
    while stack:
        layer, done = stack.pop()
        if done:
            order.append(layer)
            continue
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        stack.append((layer, True))
        parents = [p for node in layer.inbound_nodes for p in tf.nest.flatten(node.inbound_layers)]
        stack.extend((p, False) for p in reversed(parents) if id(p) not in seen)
    return [layer for layer in order if layer.weights]


def _fold_embedding_scale(kernel, bias, gamma, mean, var):
    """Move a BatchNorm1d scale ``gamma`` into the preceding FC (lcefr's last BN has no scale)."""
    sign = np.where(gamma < 0, -1.0, 1.0).astype(np.float32)
    safe = np.where(gamma == 0, 1.0, np.abs(gamma))
    keep = (gamma != 0).astype(np.float32)
    kernel = kernel * (sign * keep)
    bias, mean = bias * sign * keep, mean * sign * keep
    var = np.where(gamma == 0, 1.0, (var + BN_EPS) / safe**2 - BN_EPS)
    return kernel, bias, mean, var.astype(np.float32)


def _keras_weights(slot: Slot, state: Mapping[str, np.ndarray]) -> List[np.ndarray]:
    get = lambda role: np.asarray(state[slot.key(role)], dtype=np.float32)  # noqa: E731
    if slot.kind == "conv":
        kernel = get("weight").transpose(2, 3, 1, 0)
        if slot.flip_input:
            kernel = kernel[:, :, ::-1, :]
        return [np.ascontiguousarray(kernel)]
    if slot.kind == "bn":
        return [get(role) for role in _BN_ROLES]
    if slot.kind == "prelu":
        return [get("weight").reshape(1, 1, -1)]
    if slot.kind == "dense":
        w = get("weight")
        out = w.shape[0]
        kernel = w.reshape(out, WIDTHS[-1], SPATIAL, SPATIAL).transpose(2, 3, 1, 0).reshape(-1, out)
        return [np.ascontiguousarray(kernel), get("bias")]
    if slot.kind == "bn_out":
        beta = get("bias") if "bias" in slot.shapes else np.zeros(slot.channels, np.float32)
        return [beta, get("running_mean"), get("running_var")]
    c = slot.channels
    if slot.kind == "identity_conv":
        return [np.eye(c, dtype=np.float32).reshape(1, 1, c, c)]
    if slot.kind == "identity_bn":
        ones = np.ones(c, np.float32)
        return [ones, np.zeros(c, np.float32), np.zeros(c, np.float32), ones - np.float32(BN_EPS)]
    raise AssertionError(slot.kind)


def convert_state_dict(state: Mapping[str, np.ndarray], arch: str, layout: str):
    """Map a (prefix-stripped) state dict of numpy arrays onto a new lcefr model.

    Returns:
        ``(model, report)``: the ``tf.keras.Model`` and a :class:`Report`.

    Raises:
        CheckpointError: unknown arch/layout, a missing tensor, a shape mismatch, or backbone
            tensors the architecture does not have (names the first one).
    """
    from lcefr.models import create_model  # before TensorFlow: importing lcefr selects tf-keras

    import tensorflow as tf

    plan(arch, layout)
    fc_key = "output_layer.3.weight" if layout == "adaface" else "fc.weight"
    fc = state.get(fc_key)
    embedding_size = int(np.shape(fc)[0]) if fc is not None and np.ndim(fc) == 2 else 512
    slots = plan(arch, layout, embedding_size=embedding_size)
    tensors, buffers, ignored = _check(state, slots, arch, layout)

    name = ARCHS[arch][0]
    model = create_model(name, embedding_size=embedding_size)
    layers = _weight_layers(model)
    kinds = {
        "conv": tf.keras.layers.Conv2D,
        "identity_conv": tf.keras.layers.Conv2D,
        "bn": tf.keras.layers.BatchNormalization,
        "identity_bn": tf.keras.layers.BatchNormalization,
        "bn_out": tf.keras.layers.BatchNormalization,
        "prelu": tf.keras.layers.PReLU,
        "dense": tf.keras.layers.Dense,
    }
    if len(layers) != len(slots):
        raise RuntimeError(f"lcefr {name} has {len(layers)} weighted layers, the {layout} plan {len(slots)}")
    values = [_keras_weights(slot, state) for slot in slots]
    folded = []
    if layout == "adaface":
        folded.append("BGR input -> RGB (first conv's input channels reversed)")
        folded.append("MaxPool2d(1, 2) shortcut -> identity 1x1 conv + identity BN")
    head = slots[-1]
    if "weight" in head.shapes:
        gamma = np.asarray(state[head.key("weight")], np.float32)
        if not np.all(gamma == 1.0):
            beta, mean, var = values[-1]
            values[-2][0], values[-2][1], mean, var = _fold_embedding_scale(*values[-2], gamma, mean, var)
            values[-1] = [beta, mean, var]
            folded.append(f"{head.key('weight')} (BN scale != 1) -> fc")
    for slot, layer, weights in zip(slots, layers, values):
        want = [tuple(w.shape) for w in layer.get_weights()]
        if not isinstance(layer, kinds[slot.kind]) or want != [w.shape for w in weights]:
            raise RuntimeError(
                f"lcefr {name} layer {layer.name} ({type(layer).__name__} {want}) does not fit "
                f"{slot.kind} {slot.prefix} {[w.shape for w in weights]}"
            )
        layer.set_weights(weights)
    report = Report(arch, layout, name, int(model.count_params()), tensors, buffers, ignored, folded)
    return model, report


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0].split(". ")[0][:200] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _find_state_dict(obj):
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        return obj.state_dict()
    if not isinstance(obj, Mapping):
        return None
    for key in ("state_dict", "model"):
        inner = obj.get(key)
        if hasattr(inner, "state_dict") and callable(inner.state_dict):
            return inner.state_dict()
        if isinstance(inner, Mapping) and any(hasattr(v, "shape") for v in inner.values()):
            return inner
    if any(hasattr(v, "shape") for v in obj.values()):
        return obj
    return None


def _strip(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def load_state_dict(path: str, *, trust_pickle: bool = False) -> Dict[str, np.ndarray]:
    """Read a ``.pth`` / ``.ckpt`` into ``{name: numpy array}`` with ``module.`` / ``model.`` stripped.

    Accepts a bare state dict, a dict holding one under ``state_dict`` or ``model``, or a pickled
    module. Only tensors are read unless ``trust_pickle`` (which runs the file's pickle code).

    Raises:
        CheckpointError: missing file, PyTorch not installed, not a checkpoint, no state dict.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        import torch
    except ImportError:
        raise CheckpointError("reading PyTorch checkpoints needs torch: pip install -e \".[torch]\"") from None
    with open(path, "rb") as f:
        magic = f.read(1)
    if not zipfile.is_zipfile(path) and magic != b"\x80":
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as err:
        if not trust_pickle and zipfile.is_zipfile(path) and "weights_only" in str(err).lower().replace(" ", "_"):
            raise CheckpointError(
                f"{path} pickles Python objects besides tensors; rerun with --trust-pickle if you trust its source"
            ) from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({_first_line(err)})") from None
    raw = _find_state_dict(obj)
    if raw is None:
        top = ", ".join(sorted(map(str, obj))[:8]) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path} holds no state dict (found: {top})")
    state: Dict[str, np.ndarray] = {}
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor):
            continue
        name = _strip(str(key))
        if name in state:
            raise CheckpointError(f"{path}: two tensors map to {name!r} once prefixes are stripped")
        value = value.detach().cpu()
        state[name] = (value.float() if value.is_floating_point() else value).numpy()
    if not state:
        raise CheckpointError(f"{path} holds no tensors")
    return state


def convert_checkpoint(path: str, arch: str, layout: str, *, trust_pickle: bool = False):
    """The lcefr Keras model holding the weights of the PyTorch IResNet checkpoint at ``path``.

    Raises:
        CheckpointError: see :func:`load_state_dict` and :func:`convert_state_dict`.
    """
    plan(arch, layout)
    return convert_state_dict(load_state_dict(path, trust_pickle=trust_pickle), arch, layout)[0]


def save_model(model, path: str) -> None:
    """Save ``model`` as ``.keras`` through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)[:-len('.keras')]}.tmp{os.getpid()}.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv=None) -> int:
    """Command line: convert, save, print a summary; bad input is one line on stderr and exit 2."""
    parser = _Parser(
        prog="torch_iresnet.py",
        description="Import a PyTorch IResNet checkpoint (insightface or AdaFace layout) as an lcefr .keras model.",
    )
    parser.add_argument("checkpoint", help="PyTorch .pth/.ckpt (state dict, or a dict with state_dict/model)")
    parser.add_argument("--arch", required=True, choices=sorted(ARCHS), help="network depth")
    parser.add_argument("--layout", required=True, choices=LAYOUTS, help="state-dict layout (AdaFace: BGR input)")
    parser.add_argument("-o", "--output", required=True, help="the .keras file to write")
    parser.add_argument("--trust-pickle", action="store_true", help="unpickle non-tensor objects (trusted files only)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if not args.output.endswith(".keras"):
            raise CheckpointError(f"output must end in .keras, got {args.output!r}")
        state = load_state_dict(args.checkpoint, trust_pickle=args.trust_pickle)
        model, report = convert_state_dict(state, args.arch, args.layout)
        save_model(model, args.output)
    except (CheckpointError, OSError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**report.to_dict(), "output": args.output}, indent=2))
    else:
        print(report.summary())
        print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
