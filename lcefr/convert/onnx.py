"""Float ONNX export through tf2onnx (opset 13), run back with onnxruntime for parity."""
from __future__ import annotations

import contextlib

import numpy as np

from lcefr.convert.tflite import _quiet
from lcefr.keras_graph import iter_layers

__all__ = ["convert_onnx", "onnx_runner", "ONNX_OPSET"]

ONNX_OPSET = 13


@contextlib.contextmanager
def _plain_grouped_convs(model):
    """Keras runs grouped convs through an XLA-compiled function that tf2onnx cannot read;
    trace them as plain Conv2D ops (ONNX Conv with ``group``) while exporting."""
    patched = [l for l in iter_layers(model) if getattr(l, "groups", 1) > 1 and hasattr(l, "convolution_op")]
    for layer in patched:
        layer._jit_compiled_convolution_op = layer.convolution_op
    try:
        yield
    finally:
        for layer in patched:
            del layer._jit_compiled_convolution_op


def convert_onnx(model, *, opset: int = ONNX_OPSET) -> bytes:
    """Serialized ONNX ModelProto of ``model`` (input "face", NHWC float32, dynamic batch)."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="face"),)
    with _quiet(), _plain_grouped_convs(model):
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    return proto.SerializeToString()


def onnx_runner(buffer: bytes):
    """A callable ``x -> embeddings`` running the ONNX model on onnxruntime's CPU provider."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(buffer, sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.asarray(x, np.float32)})[0]
