"""Run a float or int8 ``.tflite`` file N times on tflite-runtime or ai-edge-litert: the guest side of
``lcefr bench --emulate``.

Copied into the emulated board's rootfs and run there under qemu with the counting plugin, once
with 1 inference and once with 1 + K; the host takes the difference. Standard library, numpy and
the runtime only. The input is all zeros: the kernels' instruction counts do not depend on it.
"""
import argparse
import sys


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--float-ops", choices=("xnnpack", "builtin"), default="xnnpack")
    ap.add_argument("--runtime", choices=("tflite-runtime", "ai-edge-litert"), default="tflite-runtime")
    args = ap.parse_args(argv)
    import numpy as np
    try:
        if args.runtime == "ai-edge-litert":
            from ai_edge_litert import interpreter as tfl
        else:
            from tflite_runtime import interpreter as tfl
    except ImportError as err:
        print("LCEFR_COUNT_ERROR %s is not installed on the board (%s); rebuild it: lcefr board emulate up"
              % (args.runtime, err), flush=True)
        return 3

    kwargs = {"model_path": args.model, "num_threads": 1}
    if args.float_ops == "builtin":
        kwargs["experimental_op_resolver_type"] = tfl.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interp = tfl.Interpreter(**kwargs)
        interp.allocate_tensors()
    except Exception as err:  # a file this runtime cannot load: one line for the host
        print("LCEFR_COUNT_ERROR %s: %s" % (type(err).__name__, str(err).strip().splitlines()[-1:]), flush=True)
        return 3
    detail = interp.get_input_details()[0]
    x = np.zeros(detail["shape"], detail["dtype"])
    for _ in range(args.runs):
        interp.set_tensor(detail["index"], x)
        interp.invoke()
    print("LCEFR_COUNT_OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
