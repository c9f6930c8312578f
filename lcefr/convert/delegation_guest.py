"""Which ops of a ``.tflite`` file a TFLite runtime hands to XNNPACK: the raw facts, as JSON.

Runs where the runtime is: in lcefr's own process for TensorFlow, and copied into the emulated
board's rootfs (run there under qemu) for ``tflite_runtime`` and ``ai_edge_litert``. Standard library,
numpy and the runtime only; :mod:`lcefr.convert.delegation` turns the output into a per-op report.
"""
import argparse
import json
import sys

#: the runtimes :func:`interpreter_class` knows (lcefr.vocab.DELEGATION_RUNTIMES; this file stands alone on boards)
RUNTIMES = ("tensorflow", "tflite-runtime", "ai-edge-litert")


def interpreter_class(runtime):
    """``(Interpreter class, version)`` of ``runtime``; ImportError when it is not installed."""
    if runtime == "tensorflow":
        import tensorflow as tf

        return tf.lite.Interpreter, tf.__version__
    if runtime == "tflite-runtime":
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, getattr(tflite_runtime, "__version__", "?")
    if runtime == "ai-edge-litert":
        from ai_edge_litert.interpreter import Interpreter

        try:
            from importlib.metadata import version

            found = version("ai-edge-litert")
        except Exception:  # metadata missing: still usable
            found = "?"
        return Interpreter, found
    raise ValueError("unknown runtime %r" % (runtime,))


def raw_ops(interpreter_cls, version, runtime, model_path=None, model_content=None):
    """The interpreter's nodes after its default delegates were applied (XNNPACK's partitions appear
    as ``DELEGATE`` nodes), and every tensor's dtype, shape and whether it is a constant."""
    kwargs = {"num_threads": 1}
    if model_path is not None:
        kwargs["model_path"] = model_path
    else:
        kwargs["model_content"] = model_content
    interp = interpreter_cls(**kwargs)
    interp.allocate_tensors()
    nodes = []
    for op in interp._get_ops_details():  # the only view of the execution plan the Python API offers
        nodes.append({"index": int(op["index"]), "op": str(op["op_name"]),
                      "inputs": [int(t) for t in op["inputs"]], "outputs": [int(t) for t in op["outputs"]]})
    tensors = {}
    for detail in interp.get_tensor_details():
        tensors[int(detail["index"])] = {"dtype": detail["dtype"].__name__, "shape": [int(d) for d in detail["shape"]]}
    return {"runtime": runtime, "version": str(version), "nodes": nodes, "tensors": tensors}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--runtime", choices=RUNTIMES, required=True)
    args = ap.parse_args(argv)
    try:
        cls, version = interpreter_class(args.runtime)
    except ImportError as err:
        print("LCEFR_DELEGATION_ERROR %s is not installed (%s)" % (args.runtime, err), flush=True)
        return 3
    try:
        raw = raw_ops(cls, version, args.runtime, model_path=args.model)
    except Exception as err:  # a file this runtime cannot load: one line for the host
        lines = str(err).strip().splitlines()
        print("LCEFR_DELEGATION_ERROR %s: %s" % (type(err).__name__, lines[-1] if lines else ""), flush=True)
        return 3
    print("LCEFR_DELEGATION " + json.dumps(raw), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
