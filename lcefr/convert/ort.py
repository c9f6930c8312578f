"""onnxruntime sessions of ``onnx-binary`` exports: each ``BinaryConv2d`` node computed by the
C reference of the CUDA kernels (:mod:`lcefr.cuda_ref`) through an onnxruntime-extensions Python op.

No TensorFlow: the GPU check compares a TensorRT engine with this on machines without it.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from lcefr import cuda_ref

__all__ = ["OP_TYPE", "count_binary_nodes", "onnx_binary_runner"]

#: The custom op every binary convolution of an onnx-binary export becomes.
OP_TYPE = "BinaryConv2d"


def count_binary_nodes(buffer: bytes) -> int:
    import onnx

    return sum(1 for n in onnx.load_from_string(buffer).graph.node if n.op_type == OP_TYPE)


_REGISTERED = False


def _register_op() -> None:
    """The onnxruntime-extensions Python op for BinaryConv2d, computed by the C reference."""
    global _REGISTERED
    if _REGISTERED:
        return
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    def ints(text: str) -> Tuple[int, ...]:
        return tuple(int(v) for v in text.split(",")) if text else ()

    @onnx_op(op_type=OP_TYPE, inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_int32, PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
             outputs=[PyCustomOpDef.dt_float],
             attrs={"kernel_shape": PyCustomOpDef.dt_string, "strides": PyCustomOpDef.dt_string, "pads": PyCustomOpDef.dt_string,
                    "group": PyCustomOpDef.dt_int64, "in_channels": PyCustomOpDef.dt_int64, "pad_value": PyCustomOpDef.dt_int64})
    def binary_conv2d(x, w_packed, multiplier, bias, **attrs):
        return cuda_ref.bconv2d(
            np.ascontiguousarray(x, np.float32), np.ascontiguousarray(w_packed, np.int32), in_channels=int(attrs["in_channels"]),
            kernel_shape=ints(attrs["kernel_shape"]), strides=ints(attrs["strides"]), pads=ints(attrs["pads"]),
            group=int(attrs["group"]), pad_value=int(attrs["pad_value"]), multiplier=np.asarray(multiplier, np.float32),
            bias=np.asarray(bias, np.float32), layout="NCHW")

    _REGISTERED = True


def _for_onnxruntime(buffer: bytes) -> bytes:
    """The same graph with BinaryConv2d in ai.onnx.contrib and list attributes as "a,b" strings
    (onnxruntime-extensions' Python ops read int, float and string attributes only)."""
    import onnx
    from onnx import helper

    proto = onnx.load_from_string(buffer)
    for node in proto.graph.node:
        if node.op_type != OP_TYPE:
            continue
        node.domain = "ai.onnx.contrib"
        attrs = [(a.name, helper.get_attribute_value(a)) for a in node.attribute]
        del node.attribute[:]
        for name, value in attrs:
            if isinstance(value, (list, tuple)):
                value = ",".join(str(int(v)) for v in value)
            node.attribute.append(helper.make_attribute(name, value))
    if not any(op.domain == "ai.onnx.contrib" for op in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("ai.onnx.contrib", 1))
    return proto.SerializeToString()


def onnx_binary_runner(buffer: bytes, *, threads: int = 1):
    """``x -> embeddings`` on onnxruntime (CPU), BinaryConv2d through the C reference."""
    import onnxruntime as ort
    from onnxruntime_extensions import get_library_path

    _register_op()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.register_custom_ops_library(get_library_path())
    session = ort.InferenceSession(_for_onnxruntime(buffer), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.asarray(x, np.float32)})[0]

