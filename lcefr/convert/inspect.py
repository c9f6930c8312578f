"""Read a ``.tflite`` flatbuffer: op histogram, LCE binary-op audit and MAC shares."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List

from lcefr.runtime import check_tflite

__all__ = ["TfliteReport", "OpRecord", "OpInfo", "inspect_tflite", "read_ops", "read_op_infos", "open_subgraph"]

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


@dataclass
class OpInfo:
    index: int
    op: str
    in_shape: List[int] = field(default_factory=list)
    out_shape: List[int] = field(default_factory=list)
    in_dtype: str = ""
    out_dtype: str = ""
    kernel: List[int] = field(default_factory=list)  # [kh, kw]
    stride: int = 1
    groups: int = 1
    cin: int = 0
    cout: int = 0
    macs: int = 0
    #: LceBconv2d writes bitpacked int32 words (it feeds another binary layer)
    bitpacked_out: bool = False

    @property
    def out_elements(self) -> int:
        return _prod(self.out_shape)

    @property
    def in_elements(self) -> int:
        return _prod(self.in_shape)

    @property
    def quantized(self) -> bool:
        return self.in_dtype in ("INT8", "UINT8") or self.out_dtype in ("INT8", "UINT8")

    def shape_text(self) -> str:
        return "x".join(map(str, self.in_shape[1:])) + "->" + "x".join(map(str, self.out_shape[1:]))

    def to_dict(self) -> Dict:
        return asdict(self)


def _prod(shape: List[int]) -> int:
    out = 1
    for d in shape:
        out *= max(1, int(d))
    return out if shape else 0


def _options(schema, op, cls_name: str):
    table = op.BuiltinOptions()
    if table is None:
        return None
    opts = getattr(schema, cls_name)()
    opts.Init(table.Bytes, table.Pos)
    return opts


def read_op_infos(buffer: bytes) -> List[OpInfo]:
    """Every operator of the main subgraph, in execution order."""
    from flatbuffers import flexbuffers

    schema, subgraph, names, dtypes = open_subgraph(buffer)
    infos = []
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        name = names[op.OpcodeIndex()]
        inputs = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
        outputs = [int(t) for t in op.OutputsAsNumpy()] if op.OutputsLength() else []
        info = OpInfo(index=i, op=name)
        if inputs and inputs[0] >= 0:
            info.in_shape = _shape(subgraph, inputs[0]) or []
            info.in_dtype = dtypes.get(subgraph.Tensors(inputs[0]).Type(), "")
        if outputs:
            info.out_shape = _shape(subgraph, outputs[0]) or []
            info.out_dtype = dtypes.get(subgraph.Tensors(outputs[0]).Type(), "")
        weights = _shape(subgraph, inputs[1]) if len(inputs) > 1 and inputs[1] >= 0 else None
        out = info.out_shape
        if name == "CONV_2D" and weights and len(out) == 4:
            opts = _options(schema, op, "Conv2DOptions")
            info.kernel, info.cin, info.cout = [weights[1], weights[2]], weights[3], out[3]
            info.stride = opts.StrideH() if opts else 1
            info.groups = max(1, info.in_shape[3] // max(1, weights[3])) if len(info.in_shape) == 4 else 1
            info.macs = _prod(out) * weights[1] * weights[2] * weights[3]
        elif name == "DEPTHWISE_CONV_2D" and weights and len(out) == 4:
            opts = _options(schema, op, "DepthwiseConv2DOptions")
            info.kernel, info.cin, info.cout = [weights[1], weights[2]], info.in_shape[3], out[3]
            info.stride = opts.StrideH() if opts else 1
            info.groups = info.cin
            info.macs = _prod(out) * weights[1] * weights[2]
        elif name == "FULLY_CONNECTED" and weights:
            info.cin, info.cout = weights[1], weights[0]
            info.macs = _prod(out) * weights[1]
        elif name == "LceBconv2d" and weights and len(out) == 4:
            raw = op.CustomOptionsAsNumpy() if op.CustomOptionsLength() else None
            opts = flexbuffers.Loads(bytes(raw)) if raw is not None else {}
            cin = int(opts.get("channels_in", 0)) or weights[3] * 32
            words_in = info.in_shape[3] if len(info.in_shape) == 4 else weights[3]
            info.groups = max(1, words_in // max(1, weights[3]))
            info.kernel, info.cin, info.cout = [weights[1], weights[2]], cin, weights[0]
            info.stride = int(opts.get("stride_height", 1))
            info.bitpacked_out = info.out_dtype == "INT32"
            info.macs = out[0] * out[1] * out[2] * weights[0] * weights[1] * weights[2] * (cin // info.groups)
        elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D", "LceBMaxPool2d"):
            opts = _options(schema, op, "Pool2DOptions") if name != "LceBMaxPool2d" else None
            if opts is not None:
                info.kernel, info.stride = [opts.FilterHeight(), opts.FilterWidth()], opts.StrideH()
        infos.append(info)
    return infos


def read_ops(buffer: bytes) -> List[OpRecord]:
    """Every operator of the main subgraph with its MAC count where it has one."""
    return [OpRecord(name=info.op, macs=info.macs, output_dtype=info.out_dtype) for info in read_op_infos(buffer)]


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
