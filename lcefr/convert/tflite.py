"""Keras -> ``.tflite``: LCE flatbuffers with bitpacked binary ops, and plain float TFLite."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from typing import Dict, List, Optional

from lcefr.convert.delegation import inspect_delegation
from lcefr.runtime import TFLITE_IDENTIFIER

__all__ = ["convert_lce", "convert_float", "convert_int8", "int8_off_xnnpack", "add_metadata", "read_metadata"]


@contextlib.contextmanager
def _quiet():
    """Silence the converters' chatter (MLIR dumps, absl info) unless LCEFR_VERBOSE is set."""
    if os.environ.get("LCEFR_VERBOSE"):
        yield
        return
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def convert_lce(model, *, target: str = "arm") -> bytes:
    """Convert with the Larq Compute Engine converter (binary layers become ``LceBconv2d``)."""
    import larq_compute_engine as lce

    with _quiet():
        return lce.convert_keras_model(model, target=target)


def _frozen_converter(model):
    """A TFLite converter for ``model``'s inference function with its weights frozen into the graph.

    ``TFLiteConverter.from_keras_model`` first exports a SavedModel, and that export traces every
    layer's call again for Keras' own metadata. On these networks it is 1.8 to 8.4 times slower for
    the same flatbuffer ops and the same outputs (ir18 21.9 s against 12.2 s, binary_densenet28
    36.2 s against 4.3 s; tests/convert/test_tflite_frozen.py compares both routes). The frozen
    graph has no SignatureDef, so :func:`_finish` adds the one the SavedModel route would have written.
    """
    import tensorflow as tf

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"Expected a model with one input and one output, got {len(model.inputs)} and "
                         f"{len(model.outputs)}")
    spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), model.inputs[0].dtype)
    infer = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return tf.lite.TFLiteConverter.from_concrete_functions([infer.get_concrete_function()])


def _finish(buffer: bytes, model) -> bytes:
    """``buffer`` with the ``serving_default`` signature of ``model``: its input and output layer names."""
    from tensorflow.lite.python import schema_py_generated as schema

    def edit(flat):
        graph = flat.subgraphs[0]
        signature = schema.SignatureDefT()
        signature.signatureKey = b"serving_default"
        signature.subgraphIndex = 0
        signature.inputs = [_tensor_map(model.input_names[0], graph.inputs[0])]
        signature.outputs = [_tensor_map(model.output_names[0], graph.outputs[0])]
        flat.signatureDefs = [signature]

    return _edit_flatbuffer(buffer, edit)


def _tensor_map(name: str, index: int):
    from tensorflow.lite.python import schema_py_generated as schema

    entry = schema.TensorMapT()
    entry.name = name.encode()
    entry.tensorIndex = int(index)
    return entry


def convert_float(model) -> bytes:
    """Plain TFLite conversion: every layer stays float (the speed baseline)."""
    with _quiet():
        return _finish(_frozen_converter(model).convert(), model)


#: ops never kept float by the islands rule: the float I/O's own conversions
_NEVER_ISLANDS = ("QUANTIZE", "DEQUANTIZE")


def _calibrated(model, samples):
    """The converter's calibrated float flatbuffer (activation ranges recorded on ``samples``, not yet
    quantized); :func:`convert_int8` quantizes it once or twice."""
    import tensorflow as tf

    def dataset():
        for x in samples:
            yield [x[None]]

    converter = _frozen_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # the public QuantizationDebugger's own route
    return converter.convert()


def _quantize(calibrated: bytes, keep_float=()) -> bytes:
    """int8 weights and activations with float I/O, as ``TFLiteConverter`` writes them by default;
    op types in ``keep_float`` stay float (DEQUANTIZE before, QUANTIZE after them)."""
    from tensorflow.lite.python import convert as tfl_convert

    return tfl_convert.mlir_quantize(calibrated, denylisted_ops=list(keep_float) or None)


def int8_off_xnnpack(report) -> List[str]:
    """Op types of quantized ops XNNPACK leaves to builtin kernels in a delegation ``report``
    (TensorFlow's interpreter here hands int8 ops to XNNPACK as ai-edge-litert does on aarch64 boards)."""
    return sorted({op.op for op in report.off_xnnpack if op.quantized and op.op not in _NEVER_ISLANDS})


def convert_int8(model, representative, *, float_islands: bool = True, info: Optional[Dict] = None) -> bytes:
    """Post-training int8 quantization (float I/O) calibrated on ``representative`` (N, H, W, 3).

    Ops without an int8 kernel (the SIGN of binary layers, for instance) stay float. With
    ``float_islands`` (the default), op types whose int8 versions XNNPACK does not run (PRELU in
    TensorFlow 2.16 / ai-edge-litert 1.4) are quantized again as float islands: TFLite's builtin
    int8 PReLU costs ~70 instructions per element on a Cortex-A57, the island (DEQUANTIZE, XNNPACK's
    float PReLU, QUANTIZE) ~5 (docs/int8.md). The islands are kept only when they leave fewer ops
    off XNNPACK. ``info`` (a dict) receives ``float_islands``, the op types kept float, and, when
    the islands rule ran, ``placement``: the returned file's XNNPACK placement (the signature
    :func:`_finish` adds does not change it), so the caller need not read it again.
    """
    import numpy as np

    samples = np.asarray(representative, dtype=np.float32)
    with _quiet():
        calibrated = _calibrated(model, samples)
        buffer = _quantize(calibrated)
        islands: List[str] = []
        report = None
        if float_islands:
            report = inspect_delegation(buffer=buffer)
            off = int8_off_xnnpack(report)
            if off:
                candidate = _quantize(calibrated, off)
                placed = inspect_delegation(buffer=candidate)
                if len(placed.off_xnnpack) < len(report.off_xnnpack):
                    buffer, islands, report = candidate, off, placed
        if info is not None:
            info["float_islands"] = islands
            if report is not None:
                info["placement"] = report
        return _finish(buffer, model)


def _edit_flatbuffer(buffer: bytes, edit) -> bytes:
    """Unpack a ``.tflite`` flatbuffer, let ``edit`` change the object tree in place, pack it again."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(buffer), 0))
    edit(model)
    builder = flatbuffers.Builder(len(buffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def add_metadata(buffer: bytes, name: str, data: bytes) -> bytes:
    """``buffer`` with one more entry in the flatbuffer's ``metadata`` table (``name`` -> ``data``).

    TFLite keeps named metadata (the converter's own ``min_runtime_version``, for instance) as a
    name plus the index of a buffer; interpreters ignore names they do not know. An existing entry
    of the same name is replaced.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    def edit(model):
        entry = schema.BufferT()
        entry.data = list(data)
        model.buffers.append(entry)
        meta = schema.MetadataT()
        meta.name = name.encode()
        meta.buffer = len(model.buffers) - 1
        model.metadata = [m for m in (model.metadata or []) if m.name.decode() != name] + [meta]

    return _edit_flatbuffer(buffer, edit)


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
