#!/usr/bin/env python
"""Instruction counts per inference on an emulated Cortex-A57 of single TFLite ops and whole models.

Data for a per-op cost model: every layer spec of LAYER_SPECS is built as a one-op Keras model,
converted with lcefr's own converter (float and int8, no parity check: the probes are faces,
these are not face models) and counted with

    lcefr bench --emulate cortex-a57 FILES... --float-ops xnnpack|builtin --json

(qemu + an instruction-counting plugin on the emulated board's Debian arm64 rootfs; float files
and every ``builtin`` row on tflite-runtime 2.14, int8 files of the ``xnnpack`` mode on
ai-edge-litert 1.4, whose XNNPACK runs int8 ops (``--interpreter``, INTERPRETER below);
(count of 1+K inferences - count of 1) / K, K=2: deterministic).
Whole registry models (WHOLE_MODELS) are converted with `lcefr convert NAME --to tflite-float|int8`
into build/models/NAME.{float,int8}.tflite (the names of `make models`) and counted the same way.

The output JSON is rewritten atomically after every bench call; rows already in it (same name,
file_kind, float_ops) are skipped, so an interrupted run resumes where it stopped
(--retry-failed counts failed rows again).

    .venv/bin/python scripts/measure_a57_counts.py                      # everything, in priority order
    .venv/bin/python scripts/measure_a57_counts.py --only 'conv_*' --modes xnnpack --kinds float
"""
from __future__ import annotations

import argparse
import datetime
import fnmatch
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LCEFR = str(ROOT / ".venv" / "bin" / "lcefr")
K_RUNS = 2
CPU = "cortex-a57"
#: ``lcefr bench --interpreter`` per --float-ops mode: ``auto`` puts int8 files on ai-edge-litert (XNNPACK
#: int8) and float files on tflite-runtime; the builtin mode stays on tflite-runtime's builtin kernels
INTERPRETER = {"xnnpack": "auto", "builtin": "tflite-runtime"}
WHOLE_MODELS = ["quicknet_small", "quicknet", "binary_densenet28_lce", "binaryfacenet_lce", "mobilefacenet", "ir18"]


# --- layer specs -------------------------------------------------------------------------------

def _name(spec: dict) -> str:
    op = spec["op"]
    if op in ("conv", "dwconv"):
        s = f"{op}_k{spec['k']}_s{spec['stride']}_{spec['h']}x{spec['w']}x{spec['cin']}"
        if op == "conv":
            s += f"_{spec['cout']}"
        if spec.get("padding", "same") != "same":
            s += f"_{spec['padding']}"
        if spec.get("activation"):
            s += f"_{spec['activation']}"
        return s
    if op == "fc":
        return f"fc_{spec['cin']}_{spec['cout']}" + ("_flatten" if spec.get("h") else "")
    if op in ("maxpool", "avgpool"):
        return f"{op}_k{spec['k']}_s{spec['stride']}_{spec['h']}x{spec['w']}x{spec['cin']}"
    if op == "l2norm":
        return f"l2norm_{spec['cin']}"
    return f"{op}_{spec['h']}x{spec['w']}x{spec['cin']}"


def _specs() -> list:
    specs = []

    def add(op, **kw):
        spec = {"op": op, **kw}
        spec["name"] = _name(spec)
        specs.append(spec)

    # CONV_2D 3x3 (stems, stride 1 per stage, stride 2 transitions, off-grid shapes for the fit)
    for h, cin, cout, s in [(112, 3, 32, 2), (112, 3, 64, 2), (56, 64, 64, 1), (28, 128, 128, 1),
                            (14, 256, 256, 1), (7, 512, 512, 1), (56, 64, 128, 2), (28, 128, 256, 2),
                            (14, 256, 512, 2), (28, 64, 128, 1), (20, 48, 96, 1), (14, 128, 64, 1)]:
        add("conv", h=h, w=h, cin=cin, cout=cout, k=3, stride=s, padding="same")
    add("conv", h=28, w=28, cin=128, cout=128, k=3, stride=1, padding="same", activation="relu")
    # CONV_2D 1x1
    for h, cin, cout, s in [(56, 64, 64, 1), (56, 64, 128, 1), (28, 128, 128, 1), (28, 128, 256, 1),
                            (14, 256, 256, 1), (7, 512, 512, 1), (7, 128, 512, 1), (56, 32, 64, 1),
                            (14, 96, 40, 1), (56, 64, 128, 2), (28, 128, 256, 2), (14, 256, 512, 2)]:
        add("conv", h=h, w=h, cin=cin, cout=cout, k=1, stride=s, padding="same")
    # DEPTHWISE_CONV_2D 3x3 s1/s2, 7x7 global (GDC)
    for h, c, s in [(112, 64, 1), (56, 64, 1), (56, 128, 1), (28, 128, 1), (14, 256, 1), (7, 512, 1),
                    (112, 32, 2), (56, 64, 2), (28, 128, 2), (14, 256, 2)]:
        add("dwconv", h=h, w=h, cin=c, cout=c, k=3, stride=s, padding="same")
    add("dwconv", h=7, w=7, cin=512, cout=512, k=7, stride=1, padding="valid")
    add("dwconv", h=7, w=7, cin=128, cout=128, k=7, stride=1, padding="valid")
    # FULLY_CONNECTED
    for cin, cout in [(512, 128), (512, 512), (1024, 512), (2048, 128), (128, 128)]:
        add("fc", cin=cin, cout=cout)
    add("fc", h=7, w=7, cin=7 * 7 * 512, cout=512, channels=512)  # flatten 7x7x512 -> 512
    maps = [(112, 64), (56, 64), (28, 128), (14, 256), (7, 512)]
    # elementwise of two tensors, and by a per-channel constant (batchnorm form)
    for op in ("add", "mul"):
        for h, c in maps:
            add(op, h=h, w=h, cin=c)
    for op in ("add_const", "mul_const"):
        for h, c in maps[1:]:
            add(op, h=h, w=h, cin=c)
    for h, c in maps + [(56, 128)]:
        add("prelu", h=h, w=h, cin=c)
    # pooling
    for op in ("maxpool", "avgpool"):
        for h, c in [(56, 64), (28, 128), (14, 256)]:
            add(op, h=h, w=h, cin=c, k=2, stride=2)
        for h, c in [(112, 64), (56, 64)]:
            add(op, h=h, w=h, cin=c, k=3, stride=2)
    for h, c in [(7, 512), (7, 1024), (14, 256), (28, 128), (56, 64)]:
        add("mean", h=h, w=h, cin=c)
    # padding
    for h, c in [(112, 3), (56, 64), (28, 128), (14, 256)]:
        add("pad", h=h, w=h, cin=c)
    for h, c in [(56, 64), (28, 128), (14, 256)]:
        add("padv2", h=h, w=h, cin=c)
    for op in ("sign", "concat", "relu", "relu6"):
        for h, c in maps[1:]:
            add(op, h=h, w=h, cin=c)
    for h, c in [(7, 512), (14, 256)]:
        add("flatten", h=h, w=h, cin=c)
    for c in (128, 512):
        add("l2norm", cin=c)
    for op in ("hard_swish", "tanh", "logistic"):
        for h, c in [(28, 128), (7, 512)]:
            add(op, h=h, w=h, cin=c)
    # near-empty graphs: the fixed cost of one invoke (the cost model's intercept)
    for op in ("relu", "add"):
        add(op, h=1, w=1, cin=8)
    return specs


LAYER_SPECS = _specs()


def input_shape(spec: dict) -> tuple:
    if spec["op"] == "fc" and spec.get("h"):
        return (spec["h"], spec["w"], spec["channels"])
    if spec["op"] in ("fc", "l2norm"):
        return (spec["cin"],)
    return (spec["h"], spec["w"], spec["cin"])


def build_layer(spec: dict):
    """A Keras model (batch 1 inputs of ``input_shape(spec)``) whose TFLite graph is that one op."""
    import lcefr  # noqa: F401  (TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
    import numpy as np
    import tensorflow as tf

    L = tf.keras.layers
    rng = np.random.RandomState(zlib.crc32(spec["name"].encode()))
    op = spec["op"]
    x = inp = tf.keras.Input(shape=input_shape(spec), batch_size=1)
    if op == "conv":
        x = L.Conv2D(spec["cout"], spec["k"], strides=spec["stride"], padding=spec["padding"], use_bias=True,
                     activation=spec.get("activation"), bias_initializer="random_normal")(x)
    elif op == "dwconv":
        x = L.DepthwiseConv2D(spec["k"], strides=spec["stride"], padding=spec["padding"], use_bias=True,
                              bias_initializer="random_normal")(x)
    elif op == "fc":
        if spec.get("h"):
            x = L.Flatten()(x)
        x = L.Dense(spec["cout"], bias_initializer="random_normal")(x)
    elif op == "add":
        x = L.Add()([x, x])
    elif op == "mul":
        x = L.Multiply()([x, x])
    elif op in ("add_const", "mul_const"):
        const = tf.constant(rng.uniform(0.5, 1.5, spec["cin"]).astype("float32"))
        x = L.Lambda(lambda t: t + const if op == "add_const" else t * const)(x)
    elif op == "prelu":
        x = L.PReLU(shared_axes=[1, 2], alpha_initializer=tf.keras.initializers.Constant(0.25))(x)
    elif op == "maxpool":
        x = L.MaxPooling2D(spec["k"], strides=spec["stride"], padding="same")(x)
    elif op == "avgpool":
        x = L.AveragePooling2D(spec["k"], strides=spec["stride"], padding="same")(x)
    elif op == "mean":
        x = L.GlobalAveragePooling2D()(x)
    elif op == "pad":
        x = L.ZeroPadding2D(1)(x)
    elif op == "padv2":
        x = L.Lambda(lambda t: tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=1.0))(x)
    elif op == "sign":
        x = L.Lambda(tf.math.sign)(x)
    elif op == "concat":
        x = L.Concatenate(axis=-1)([x, x])
    elif op == "relu":
        x = L.ReLU()(x)
    elif op == "relu6":
        x = L.ReLU(max_value=6.0)(x)
    elif op == "flatten":
        x = L.Flatten()(x)
    elif op == "l2norm":
        x = L.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1))(x)
    elif op == "hard_swish":
        x = L.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) * (1.0 / 6.0))(x)
    elif op == "tanh":
        x = L.Activation("tanh")(x)
    elif op == "logistic":
        x = L.Activation("sigmoid")(x)
    else:
        raise ValueError(f"unknown op {op!r}")
    return tf.keras.Model(inp, x, name=spec["name"])


def convert_layer(spec: dict, file_kind: str) -> bytes:
    import numpy as np
    from lcefr.convert.api import convert

    model = build_layer(spec)
    cal = None
    if file_kind == "int8":
        cal = np.random.RandomState(0).uniform(-1, 1, (16,) + input_shape(spec)).astype("float32")
    # float_islands=False: an int8 layer file keeps its int8 op (PRELU, RELU, MEAN...), so that op's
    # int8 class is measured; a whole model's file decides per op which class prices it
    data, _ = convert(model, target=f"tflite-{file_kind}", name=spec["name"], calibration=cal, verify=False,
                      float_islands=False)
    return data


# --- files -------------------------------------------------------------------------------------

def _ops(data: bytes) -> list:
    from lcefr.convert.inspect import read_ops

    return [(r.name, int(r.macs)) for r in read_ops(data)]


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def layer_file(spec: dict, file_kind: str, work: Path) -> Path:
    path = work / f"{spec['name']}.{file_kind}.tflite"
    if not path.exists():
        data = convert_layer(spec, file_kind)
        _write_atomic(path, data)
    return path


def model_file(name: str, file_kind: str, convert_missing: bool) -> Path:
    path = ROOT / "build" / "models" / f"{name}.{file_kind}.tflite"
    if not path.exists():
        if not convert_missing:
            raise FileNotFoundError(f"{_rel(path)} not there (--skip-missing-models)")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.tflite")
        proc = subprocess.run([LCEFR, "convert", name, "--to", f"tflite-{file_kind}", "-o", str(tmp)],
                              cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0 or not tmp.exists():
            raise RuntimeError(f"lcefr convert {name} --to tflite-{file_kind} failed: "
                               + (proc.stderr or proc.stdout).strip()[-800:])
        os.replace(tmp, path)
    return path


def _write_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.replace(tmp, path)


# --- counting ----------------------------------------------------------------------------------

def bench(files: list, mode: str, timeout: float) -> dict:
    """{resolved file path: bench row} of one ``lcefr bench --emulate`` call over ``files``."""
    cmd = [LCEFR, "bench", "--emulate", CPU, "--float-ops", mode, "--interpreter", INTERPRETER[mode], "--runs", str(K_RUNS), "--json",
           "--timeout", str(timeout)] + [str(f) for f in files]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    out = proc.stdout
    try:
        rows = json.loads(out[out.index("["):])
    except ValueError:
        raise RuntimeError(f"bench exit {proc.returncode}, no JSON: {(proc.stderr or out).strip()[-800:]}") from None
    return {str(Path(r.get("file", "")).resolve()): r for r in rows}


def provenance() -> str:
    try:
        qemu = subprocess.run(["dpkg-query", "-W", "qemu-user"], capture_output=True, text=True).stdout.strip()
    except OSError:
        qemu = "unknown"
    return (f"Instructions per inference counted with `lcefr bench --emulate {CPU} --float-ops MODE --runs {K_RUNS} "
            f"--json` (qemu-aarch64 user mode with an instruction-counting plugin, -cpu {CPU}, on the emulated "
            f"board's Debian arm64 rootfs, 1 thread; float files and all builtin rows on tflite-runtime 2.14.0, "
            f"int8 files of the xnnpack mode on ai-edge-litert 1.4.0 (`--interpreter auto`: its XNNPACK runs int8 "
            f"ops, tflite-runtime's aarch64 XNNPACK does not); instructions = (count of 1+K "
            f"inferences - count of 1) / K, K={K_RUNS}). qemu: {qemu}. Layer files: one-op Keras "
            f"models (scripts/measure_a57_counts.py LAYER_SPECS) converted with lcefr.convert.api.convert "
            f"(tflite-float; tflite-int8 with float I/O, calibrated on 16 uniform[-1,1] inputs; verify=False). "
            f"Whole models: `lcefr convert NAME --to tflite-float|tflite-int8` (build/models). "
            f"float_ops=xnnpack: XNNPACK delegate; builtin: TFLite's builtin kernels. Whole-model int8 files are "
            f"written with lcefr's float islands (PReLU and other ops without an XNNPACK int8 kernel stay float; "
            f"docs/int8.md); the int8 layer files of prelu/relu/mean/... keep their int8 op "
            f"(float_islands=False), so each int8 class is priced from its own op. "
            f"Jitter: counts repeat to a few thousand instructions, not exactly (quicknet_small float/xnnpack "
            f"counted twice: 102329318 and 102327684). int8 layer "
            f"rows include the QUANTIZE/DEQUANTIZE of the float I/O (see ops; relu_1x1x8 / add_1x1x8 give the "
            f"fixed cost of one invoke). "
            f"Measured {datetime.datetime.utcnow():%Y-%m-%d} UTC by scripts/measure_a57_counts.py.")


def load(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"provenance": "", "rows": []}


def save(path: Path, doc: dict) -> None:
    doc["provenance"] = doc.get("provenance") or provenance()
    _write_atomic(path, json.dumps(doc, indent=1) + "\n")


def _match(name: str, pattern) -> bool:
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatch(name, pattern)
    return pattern in name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="lcefr/estimate/data/a57_counts.json")
    p.add_argument("--work", default="build/estimate/files")
    p.add_argument("--only", help="name glob (or substring) of layer specs / models to run")
    p.add_argument("--modes", default="xnnpack,builtin")
    p.add_argument("--kinds", default="float,int8")
    p.add_argument("--what", default="layers,models", help="layers, models or both")
    p.add_argument("--batch", type=int, default=8, help="files per bench call")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per file in bench")
    p.add_argument("--retry-failed", action="store_true", help="count rows that failed before again")
    p.add_argument("--skip-missing-models", action="store_true",
                   help="leave out whole models whose build/models file is not there (no conversion)")
    p.add_argument("--list", action="store_true", help="print the layer spec names and exit")
    args = p.parse_args(argv)

    if args.list:
        for s in LAYER_SPECS:
            print(s["name"])
        return 0
    out = ROOT / args.out if not os.path.isabs(args.out) else Path(args.out)
    work = ROOT / args.work if not os.path.isabs(args.work) else Path(args.work)
    modes = [m for m in args.modes.split(",") if m]
    kinds = [k for k in args.kinds.split(",") if k]
    what = set(args.what.split(","))
    doc = load(out)
    if args.retry_failed:
        doc["rows"] = [r for r in doc["rows"] if r.get("status") == "ok"]
    done = {(r["name"], r["file_kind"], r["float_ops"]) for r in doc["rows"]}

    specs = [s for s in LAYER_SPECS if _match(s["name"], args.only)]
    models = [m for m in WHOLE_MODELS if _match(m, args.only)]
    # priority: float layers (xnnpack, builtin), float models, int8 layers xnnpack, int8 models
    # xnnpack, int8 layers builtin, int8 models builtin
    phases = []
    for kind in ("float", "int8"):
        if kind not in kinds:
            continue
        if kind == "float":
            order = [("layer", m) for m in modes] + [("model", m) for m in modes]
        else:
            order = [(w, m) for m in modes for w in ("layer", "model")]
        phases += [(w, kind, m) for w, m in order if w + "s" in what]

    t0 = time.time()
    for what_kind, file_kind, mode in phases:
        items = specs if what_kind == "layer" else models
        todo = [it for it in items if ((it["name"] if what_kind == "layer" else it), file_kind, mode) not in done]
        print(f"[{time.time() - t0:6.0f}s] {what_kind}s {file_kind} {mode}: {len(todo)} to count", flush=True)
        for i in range(0, len(todo), args.batch):
            prepared, rows = [], []
            for it in todo[i:i + args.batch]:
                name = it["name"] if what_kind == "layer" else it
                row = {"name": name, "kind": what_kind, "file_kind": file_kind, "float_ops": mode,
                       "spec": ({k: v for k, v in it.items() if k != "name"} if what_kind == "layer"
                                else {"model": it}),
                       "ops": None, "op_macs": None, "instructions": None, "file": None, "sha256": None,
                       "status": "failed", "error": None}
                try:
                    path = layer_file(it, file_kind, work) if what_kind == "layer" else \
                        model_file(it, file_kind, not args.skip_missing_models)
                    data = path.read_bytes()
                    ops = _ops(data)
                    row.update(ops=[o for o, _ in ops], op_macs=[m for _, m in ops], file=_rel(path),
                               sha256=hashlib.sha256(data).hexdigest())
                    prepared.append((row, path))
                except FileNotFoundError as err:
                    print(f"  skip {name}: {err}", flush=True)
                    continue
                except Exception as err:  # a conversion that fails is a row too
                    row.update(status="convert_failed", error=f"{err.__class__.__name__}: {err}"[-1500:])
                    rows.append(row)
            if prepared:
                try:
                    results = bench([pth for _, pth in prepared], mode, args.timeout)
                except Exception as err:
                    results = {}
                    batch_error = f"{err.__class__.__name__}: {err}"[-1500:]
                else:
                    batch_error = "no row for this file in the bench output"
                for row, pth in prepared:
                    r = results.get(str(pth.resolve()))
                    if r is None:
                        row.update(status="failed", error=batch_error)
                    else:
                        row.update(status=r.get("status"), error=r.get("error"), instructions=r.get("instructions"),
                                   counts=r.get("counts"), runtime=r.get("runtime"), kernel=r.get("kernel"))
                    rows.append(row)
            for row in rows:
                doc["rows"].append(row)
                done.add((row["name"], row["file_kind"], row["float_ops"]))
                ins = row["instructions"]
                print(f"  {row['name']:<34} {file_kind:<5} {mode:<7} {row['status']:<8} "
                      f"{ins if ins is not None else '-':>12} {' '.join(row['ops'] or [])} {row['error'] or ''}"[:220],
                      flush=True)
            if rows:
                save(out, doc)
    print(f"[{time.time() - t0:6.0f}s] done; {len(doc['rows'])} rows in {_rel(out)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
