"""What a per-channel PReLU costs in an int8 file, written six ways, on the emulated Cortex-A57.

Each variant sits between two 1x1 convolutions (HxWxC, default 28x28x128) in a Keras model that
is converted to int8 (float I/O) and counted with ``lcefr bench --emulate cortex-a57`` on both board
runtimes; the PReLU's cost is the count minus that of the same model with no activation. The
variants compute the same function (``leaky`` only when every alpha is equal):

- ``prelu``: TFLite's PRELU op, int8 (the converter's default)
- ``island``: PRELU kept float between DEQUANTIZE and QUANTIZE (``convert_int8``'s float islands)
- ``dw``: (1 - a) * relu(x) + a * x as two 1x1 depthwise convolutions and an ADD
- ``maxmul``: max(x, a * x) (valid for 0 <= a <= 1)
- ``mulrelu``: relu(x) * (1 - a) + x * a with MULs
- ``leaky``: LEAKY_RELU with one shared alpha (not a per-channel PReLU)

    .venv/bin/python scripts/int8_prelu_variants.py [--size 28 --channels 128] [--json OUT]

Needs root (the emulated board's rootfs, built on first use). docs/int8.md holds the result.
"""
import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = ("none", "prelu", "island", "dw", "maxmul", "mulrelu", "leaky")


def build(kind, size, channels, alpha):
    import tensorflow as tf

    L = tf.keras.layers
    a = tf.constant(alpha)
    x = inp = L.Input((size, size, channels))
    x = L.Conv2D(channels, 1)(x)
    if kind in ("prelu", "island"):
        layer = L.PReLU(shared_axes=[1, 2])
        x = layer(x)
        layer.set_weights([alpha.reshape(1, 1, channels)])
    elif kind == "dw":
        keep = tf.constant((1 - alpha).reshape(1, 1, channels, 1))
        leak = tf.constant(alpha.reshape(1, 1, channels, 1))
        x = L.Lambda(lambda t: tf.nn.relu(tf.nn.depthwise_conv2d(t, keep, [1, 1, 1, 1], "VALID"))
                     + tf.nn.depthwise_conv2d(t, leak, [1, 1, 1, 1], "VALID"))(x)
    elif kind == "maxmul":
        x = L.Lambda(lambda t: tf.maximum(t, t * a))(x)
    elif kind == "mulrelu":
        x = L.Lambda(lambda t: tf.nn.relu(t) * (1 - a) + t * a)(x)
    elif kind == "leaky":
        x = L.LeakyReLU(float(alpha.mean()))(x)
    return tf.keras.Model(inp, L.Conv2D(channels, 1)(x))


def main(argv=None):
    import numpy as np

    from lcefr.board.count import count_files
    from lcefr.convert.delegation import inspect_delegation
    from lcefr.convert.tflite import convert_int8

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0.1, 0.4, args.channels).astype(np.float32)
    cal = rng.normal(size=(16, args.size, args.size, args.channels)).astype(np.float32)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for kind in VARIANTS:
            buffer = convert_int8(build(kind, args.size, args.channels, alpha), cal, float_islands=kind == "island")
            files[kind] = os.path.join(tmp, f"{kind}.int8.tflite")
            with open(files[kind], "wb") as f:
                f.write(buffer)
            report = inspect_delegation(buffer=buffer)
            rows[kind] = {"ops": [op.label() for op in report.ops], "off_xnnpack_tensorflow": report.off_path_summary()}
        for runtime in ("ai-edge-litert", "tflite-runtime"):
            counted = count_files([files[k] for k in VARIANTS], runtime=runtime,
                                  progress=lambda m: print(m, file=sys.stderr))
            for kind, row in zip(VARIANTS, counted):
                rows[kind][runtime] = row["instructions"]
    elements = args.size * args.size * args.channels
    print("| variant | ops | ai-edge-litert: instructions / element | tflite-runtime: instructions / element |")
    print("|---|---|---|---|")
    for kind in VARIANTS[1:]:
        per = [(rows[kind][r] - rows["none"][r]) / elements for r in ("ai-edge-litert", "tflite-runtime")]
        ops = ", ".join(o for o in rows[kind]["ops"] if not o.startswith("CONV_2D"))
        print(f"| {kind} | {ops} | {per[0]:.1f} | {per[1]:.1f} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"size": args.size, "channels": args.channels, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
