"""ONNX with one ``BinaryConv2d`` node per binary convolution (``lcefr convert --to onnx-binary``).

The node (the contract shared with the CUDA kernels and the TensorRT plugin):

- inputs ``x`` (float NCHW, binarized inside: x < 0 is -1, else +1), ``w_packed`` (int32
  ``[O, KH, KW, ceil(C_group / 32)]``, bit 1 = -1, channel ``32 j + i`` in bit ``i`` of word ``j``),
  ``multiplier`` (float ``[O]``), ``bias`` (float ``[O]``);
- attributes ``kernel_shape``, ``strides``, ``pads`` (ONNX order top, left, bottom, right),
  ``group``, ``in_channels``, ``pad_value`` (1: padded taps are +1, LCE's one-padding; 0: they
  count 0);
- output ``multiplier[o] * acc + bias[o]`` with ``acc`` the +-1 convolution (an exact integer).

How the graph is made: during the tf2onnx export every binary layer computes a stand-in float
convolution of its raw (pre-sign) input with a constant kernel equal to its per-channel weight
scale, with the same explicit pads, strides and groups, so the rest of the graph (BatchNorm
folding, transposes to NCHW) is exported by tf2onnx as usual. Each stand-in ``Conv`` is then
replaced by ``BinaryConv2d`` with the packed sign kernel; the (possibly BatchNorm-folded) stand-in
kernel and bias give ``multiplier`` and ``bias``. AdaBin layers (EffBin eq. 9) keep their float
input shift/scale and epilogue; their node has ``O + 1`` outputs, the last an all-ones kernel
giving the box-sum of the binarized input.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from lcefr.convert.ort import OP_TYPE
from lcefr.convert.onnx import _plain_grouped_convs
from lcefr.convert.tflite import _quiet
from lcefr.keras_graph import is_sign_quantizer, iter_layers
from lcefr.layers import AdaBinConv2D
from lcefr.quantizers import adabin_weight_stats, ede_sign

__all__ = ["convert_onnx_binary", "pack_weights", "binary_layers"]

#: --domain choices: onnxruntime-extensions' custom-op domain, or the empty domain TensorRT's
#: ONNX parser maps to a plugin of the same name
OPSET = 13
IR_VERSION = 7  # the IR version of opset 13


def pack_weights(signs: np.ndarray) -> np.ndarray:
    """Keras ``[KH, KW, Cg, O]`` kernel signs (+-1) to int32 ``[O, KH, KW, ceil(Cg / 32)]``, bit 1 = -1."""
    signs = np.asarray(signs)
    kh, kw, cg, o = signs.shape
    words = -(-cg // 32)
    bits = np.zeros((o, kh, kw, words * 32), np.uint64)
    bits[..., :cg] = (np.transpose(signs, (3, 0, 1, 2)) < 0).astype(np.uint64)
    weights = (np.uint64(1) << np.arange(32, dtype=np.uint64))
    packed = (bits.reshape(o, kh, kw, words, 32) * weights).sum(axis=-1)
    return packed.astype(np.uint32).view(np.int32)


@dataclass
class BinaryLayer:
    layer: object
    kind: str  # "sign" (larq QuantConv2D) or "adabin"
    signs: np.ndarray  # Keras layout [KH, KW, Cg, O(+1)]
    scale: np.ndarray  # per output channel
    pads: Tuple[int, int, int, int]  # top, left, bottom, right
    pad_value: int
    in_channels: int


def _same_pads(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads(layer) -> Tuple[int, int, int, int]:
    h, w = layer.input_shape[1:3]
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    if layer.padding == "valid":
        return 0, 0, 0, 0
    top, bottom = _same_pads(h, kh, sh)
    left, right = _same_pads(w, kw, sw)
    return top, left, bottom, right


def binary_layers(model) -> List[BinaryLayer]:
    """Every convolution of ``model`` whose input and kernel quantizers are sign-type, with its
    sign kernel and per-channel scale.

    Raises:
        ValueError: dilation, or a kernel quantizer that is not sign times a per-channel scale.
    """
    import larq as lq
    import tensorflow as tf

    found = []
    for layer in iter_layers(model):
        if not isinstance(layer, lq.layers.QuantConv2D):
            continue
        if not (is_sign_quantizer(layer.input_quantizer) and is_sign_quantizer(layer.kernel_quantizer)):
            continue
        if tuple(layer.dilation_rate) != (1, 1):
            raise ValueError(f"{layer.name}: dilated binary convolutions are not supported by BinaryConv2d")
        pad_value = int(float(tf.keras.backend.get_value(layer.pad_values))) if layer.padding == "same" else 0
        if pad_value not in (0, 1):
            raise ValueError(f"{layer.name}: pad_values must be 0 or 1 for BinaryConv2d")
        cin = int(layer.input_shape[-1])
        if isinstance(layer, AdaBinConv2D):
            beta_w, alpha_w = adabin_weight_stats(layer.kernel)
            q = layer.kernel_quantizer
            w_b = ede_sign(tf.constant(((layer.kernel - beta_w) / alpha_w).numpy()), q.k, q.t).numpy()
            signs = np.concatenate([w_b, np.ones_like(w_b[..., :1])], axis=-1)
            scale = np.ones(signs.shape[-1], np.float32)
            kind = "adabin"
        else:
            quantized = np.asarray(layer.kernel_quantizer(tf.constant(layer.kernel.numpy())))
            scale = np.abs(quantized).reshape(-1, quantized.shape[-1]).mean(axis=0).astype(np.float32)
            signs = np.where(quantized < 0, -1.0, 1.0).astype(np.float32)
            if not np.allclose(np.abs(quantized), scale, rtol=1e-6, atol=0):
                raise ValueError(f"{layer.name}: kernel quantizer output is not sign(w) times a per-channel scale")
            kind = "sign"
        if not np.all(np.abs(signs) == 1):
            raise ValueError(f"{layer.name}: binarized kernel has entries other than +-1")
        found.append(BinaryLayer(layer, kind, signs.astype(np.float32), scale, _pads(layer), pad_value, cin))
    return found


@contextlib.contextmanager
def _stand_in_convolutions(layers: List[BinaryLayer]):
    """Make each binary layer compute the stand-in float convolution while tf2onnx traces."""
    import tensorflow as tf

    def stand_in(spec: BinaryLayer):
        layer = spec.layer
        top, left, bottom, right = spec.pads
        padding = [[0, 0], [top, bottom], [left, right], [0, 0]]
        kernel = np.broadcast_to(spec.scale, spec.signs.shape).astype(np.float32)
        strides = (1, *layer.strides, 1)

        def call(inputs, *args, **kwargs):
            if spec.kind == "adabin":
                shifted = (inputs - layer.act_beta) / layer.act_alpha
                counts = tf.nn.conv2d(shifted, tf.constant(kernel), strides, padding, name="lcefr_binary_conv")
                main, box = counts[..., :-1], counts[..., -1:]
                beta_w, alpha_w = adabin_weight_stats(layer.kernel)
                w_b = spec.signs[..., :-1]
                w_sum = tf.reduce_sum(w_b * alpha_w + beta_w, axis=[0, 1, 2])
                return main * (layer.act_alpha * alpha_w) + box * (layer.act_alpha * beta_w) + (layer.act_alpha * layer.act_beta) * w_sum
            y = tf.nn.conv2d(inputs, tf.constant(kernel), strides, padding, name="lcefr_binary_conv")
            if layer.use_bias:
                y = tf.nn.bias_add(y, layer.bias)
            return layer.activation(y) if layer.activation is not None else y

        return call

    for spec in layers:
        spec.layer.call = stand_in(spec)
    try:
        yield
    finally:
        for spec in layers:
            del spec.layer.call


def _find_stand_in(graph, layer_name: str):
    matches = [n for n in graph.node if n.op_type == "Conv" and f"/{layer_name}/" in f"/{n.name}/".replace("//", "/")]
    matches = [n for n in matches if "lcefr_binary_conv" in n.name] or matches
    if len(matches) != 1:
        raise RuntimeError(f"expected one stand-in Conv for {layer_name}, found {[n.name for n in matches]}")
    return matches[0]


def convert_onnx_binary(model, *, domain: str = "ai.onnx.contrib", opset: int = OPSET) -> bytes:
    """Serialized ONNX (input "face", NHWC float32) with ``BinaryConv2d`` nodes in ``domain``
    (``"ai.onnx.contrib"`` for onnxruntime-extensions, ``""`` for TensorRT)."""
    import onnx
    import tensorflow as tf
    import tf2onnx
    from onnx import helper, numpy_helper

    if opset > 13:
        raise ValueError("onnx-binary is written for opset <= 13")
    layers = binary_layers(model)
    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="face"),)
    with _quiet(), _plain_grouped_convs(model), _stand_in_convolutions(layers):
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    used_elsewhere: Dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            used_elsewhere[name] = used_elsewhere.get(name, 0) + 1

    for index, spec_ in enumerate(layers):
        conv = _find_stand_in(graph, spec_.layer.name)
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        w = numpy_helper.to_array(inits[conv.input[1]])  # [O, Cg, KH, KW], the stand-in kernel (maybe BN-folded)
        o = w.shape[0]
        multiplier = w.reshape(o, -1)[:, 0].astype(np.float32)
        if not np.allclose(w.reshape(o, -1), multiplier[:, None], rtol=1e-6, atol=0):
            raise RuntimeError(f"{spec_.layer.name}: stand-in kernel is not constant per channel after export")
        bias = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float32) if len(conv.input) > 2 and conv.input[2] else np.zeros(o, np.float32)
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if pads != [spec_.pads[0], spec_.pads[1], spec_.pads[2], spec_.pads[3]]:
            raise RuntimeError(f"{spec_.layer.name}: exported pads {pads} != {list(spec_.pads)}")
        prefix = f"lcefr_bconv{index}"
        packed = pack_weights(spec_.signs)
        new_inits = [numpy_helper.from_array(packed, f"{prefix}_w_packed"),
                     numpy_helper.from_array(multiplier, f"{prefix}_multiplier"),
                     numpy_helper.from_array(bias, f"{prefix}_bias")]
        kh, kw = spec_.layer.kernel_size
        node = helper.make_node(
            OP_TYPE, [conv.input[0], *[t.name for t in new_inits]], list(conv.output), name=f"{spec_.layer.name}/{OP_TYPE}",
            domain=domain, kernel_shape=[kh, kw], strides=list(attrs.get("strides", [1, 1])), pads=pads,
            group=int(attrs.get("group", 1)), in_channels=spec_.in_channels, pad_value=spec_.pad_value)
        position = list(graph.node).index(conv)
        graph.node.remove(conv)
        graph.node.insert(position, node)
        graph.initializer.extend(new_inits)
        for name in conv.input[1:]:
            used_elsewhere[name] -= 1
            if name in inits and used_elsewhere[name] == 0:
                graph.initializer.remove(inits[name])
    del graph.value_info[:]  # the stand-in shapes are right, but nothing downstream needs them
    if domain and not any(op.domain == domain for op in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(domain, 1))
    proto.ir_version = IR_VERSION
    proto.producer_name = "lcefr"
    if domain:
        onnx.checker.check_model(proto)
    return proto.SerializeToString()
