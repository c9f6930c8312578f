"""Keras -> ``.tflite``: LCE flatbuffers with bitpacked binary ops, and plain float TFLite."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings

__all__ = ["convert_lce", "convert_float", "convert_int8", "add_metadata", "read_metadata"]


@contextlib.contextmanager
def _quiet():
    """Silence the converters' chatter (MLIR dumps, absl info) unless LCEFR_VERBOSE is set."""
    if os.environ.get("LCEFR_VERBOSE"):
        yield
        return
    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    tf_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        tf_log.setLevel(level)


def convert_lce(model, *, target: str = "arm") -> bytes:
    """Convert with the Larq Compute Engine converter (binary layers become ``LceBconv2d``)."""
    import larq_compute_engine as lce

    with _quiet():
        return lce.convert_keras_model(model, target=target)


def convert_float(model) -> bytes:
    """Plain TFLite conversion: every layer stays float (the speed baseline)."""
    import tensorflow as tf

    with _quiet():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        return converter.convert()


def convert_int8(model, representative) -> bytes:
    """Post-training int8 quantization (float I/O) calibrated on ``representative`` (N, H, W, 3).

    Ops without an int8 kernel (the SIGN of binary layers, for instance) stay float.
    """
    import numpy as np
    import tensorflow as tf

    samples = np.asarray(representative, dtype=np.float32)

    def dataset():
        for x in samples:
            yield [x[None]]

    with _quiet():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        return converter.convert()


def add_metadata(buffer: bytes, name: str, data: bytes) -> bytes:
    """``buffer`` with one more entry in the flatbuffer's ``metadata`` table (``name`` -> ``data``).

    TFLite keeps named metadata (the converter's own ``min_runtime_version``, for instance) as a
    name plus the index of a buffer; interpreters ignore names they do not know. An existing entry
    of the same name is replaced.
    """
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(buffer), 0))
    entry = schema.BufferT()
    entry.data = list(data)
    model.buffers.append(entry)
    meta = schema.MetadataT()
    meta.name = name.encode()
    meta.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != name] + [meta]
    builder = flatbuffers.Builder(len(buffer) + len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_metadata(buffer: bytes) -> dict:
    """The flatbuffer's named metadata: ``{name: bytes}``."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(bytearray(buffer), 0)
    out = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        out[entry.Name().decode()] = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes() \
            if model.Buffers(entry.Buffer()).DataLength() else b""
    return out
