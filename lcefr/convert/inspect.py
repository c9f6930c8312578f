"""Read a ``.tflite`` flatbuffer: op histogram, LCE binary-op audit and MAC shares."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List

import numpy as np

from lcefr.runtime import check_tflite

__all__ = ["TfliteReport", "OpRecord", "inspect_tflite", "read_ops", "open_subgraph"]

_FLOAT_MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass
class OpRecord:
    """One operator: its name, MACs (for conv/FC/bconv), and for LceBconv2d its output type."""

    name: str
    macs: int = 0
    output_dtype: str = ""


@dataclass
class TfliteReport:
    ops: Dict[str, int]
    lce_bconv2d: int
    bconv_bitpacked_out: int
    bconv_float_out: int
    lce_quantize: int
    lce_dequantize: int
    float_conv: int
    float_depthwise: int
    float_fc: int
    binary_macs: int
    float_macs: int
    binary_mac_share: float
    size_bytes: int
    records: List[OpRecord] = field(default_factory=list, repr=False)

    def to_dict(self) -> Dict:
        d = asdict(self)
        d.pop("records")
        return d


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _opcode_names(schema, model) -> List[str]:
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        value = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin.get(value) == "CUSTOM":
            names.append(code.CustomCode().decode())
        else:
            names.append(builtin.get(value, f"BUILTIN_{value}"))
    return names


def _shape(subgraph, index: int):
    if index < 0:
        return None
    return [int(d) for d in subgraph.Tensors(index).ShapeAsNumpy()] if subgraph.Tensors(index).ShapeLength() else []


def open_subgraph(buffer: bytes):
    """``(schema, subgraph, opcode names, tensor type names)`` of a flatbuffer's main subgraph;
    ValueError for anything that is not one."""
    schema = _schema()
    check_tflite(buffer)
    try:
        model = schema.Model.GetRootAsModel(buffer, 0)
        subgraph = model.Subgraphs(0)
        names = _opcode_names(schema, model)
    except Exception as err:  # a truncated or foreign file fails deep inside flatbuffers
        raise ValueError(f"not a TFLite flatbuffer ({err.__class__.__name__})") from None
    dtypes = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return schema, subgraph, names, dtypes


def read_ops(buffer: bytes) -> List[OpRecord]:
    """Every operator of the main subgraph with its MAC count where it has one."""
    _schema_module, subgraph, names, dtypes = open_subgraph(buffer)
    records = []
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        name = names[op.OpcodeIndex()]
        inputs = op.InputsAsNumpy() if op.InputsLength() else np.array([], dtype=int)
        outputs = op.OutputsAsNumpy() if op.OutputsLength() else np.array([], dtype=int)
        out_shape = _shape(subgraph, int(outputs[0])) if len(outputs) else None
        macs = 0
        if name in ("CONV_2D", "LceBconv2d") and out_shape and len(inputs) > 1:
            w = _shape(subgraph, int(inputs[1]))  # OHWI; for LceBconv2d I is in bitpacked words
            cin = w[3]
            if name == "LceBconv2d":
                x_words = _shape(subgraph, int(inputs[0]))[3]
                groups = max(1, x_words // max(1, w[3]))
                cin = _bconv_channels_in(op) // groups
            # output channels from the weights (OHWI): a bitpacked output's last dim counts 32-bit words
            macs = int(np.prod(out_shape[:3])) * w[0] * w[1] * w[2] * cin
        elif name == "DEPTHWISE_CONV_2D" and out_shape and len(inputs) > 1:
            w = _shape(subgraph, int(inputs[1]))  # 1HWC
            macs = int(np.prod(out_shape)) * w[1] * w[2]
        elif name == "FULLY_CONNECTED" and out_shape and len(inputs) > 1:
            w = _shape(subgraph, int(inputs[1]))  # [units, in]
            macs = int(np.prod(out_shape)) * w[1]
        out_dtype = dtypes.get(subgraph.Tensors(int(outputs[0])).Type(), "") if len(outputs) else ""
        records.append(OpRecord(name=name, macs=macs, output_dtype=out_dtype))
    return records


def _bconv_channels_in(op) -> int:
    """``channels_in`` from the LceBconv2d custom options (a flexbuffer map)."""
    from flatbuffers import flexbuffers

    raw = op.CustomOptionsAsNumpy() if op.CustomOptionsLength() else None
    if raw is None:
        return 0
    return int(flexbuffers.Loads(bytes(raw)).get("channels_in", 0))


def inspect_tflite(buffer: bytes) -> TfliteReport:
    """Audit a flatbuffer: op histogram, LCE op counts and the share of MACs run by LceBconv2d."""
    records = read_ops(buffer)
    ops = Counter(r.name for r in records)
    bconvs = [r for r in records if r.name == "LceBconv2d"]
    binary_macs = sum(r.macs for r in bconvs)
    float_macs = sum(r.macs for r in records if r.name in _FLOAT_MAC_OPS)
    total = binary_macs + float_macs
    return TfliteReport(
        ops=dict(sorted(ops.items())),
        lce_bconv2d=len(bconvs),
        bconv_bitpacked_out=sum(1 for r in bconvs if r.output_dtype == "INT32"),
        bconv_float_out=sum(1 for r in bconvs if r.output_dtype in ("FLOAT32", "INT8")),
        lce_quantize=ops.get("LceQuantize", 0),
        lce_dequantize=ops.get("LceDequantize", 0),
        float_conv=ops.get("CONV_2D", 0),
        float_depthwise=ops.get("DEPTHWISE_CONV_2D", 0),
        float_fc=ops.get("FULLY_CONNECTED", 0),
        binary_macs=int(binary_macs),
        float_macs=int(float_macs),
        binary_mac_share=round(binary_macs / total, 6) if total else 0.0,
        size_bytes=len(buffer),
    )
