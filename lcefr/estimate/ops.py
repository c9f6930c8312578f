"""The operators of a ``.tflite`` flatbuffer with what their cost depends on: shapes, kernel, stride,
groups, MACs, and for ``LceBconv2d`` its options and output kind. Read from the file alone."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from lcefr.convert.inspect import _shape, open_subgraph

__all__ = ["OpInfo", "read_op_infos", "has_grouped_bconv"]


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


def has_grouped_bconv(infos: List[OpInfo]) -> bool:
    return any(i.op == "LceBconv2d" and i.groups > 1 for i in infos)


def op_summary(infos: List[OpInfo]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for info in infos:
        out[info.op] = out.get(info.op, 0) + 1
    return out


def first(infos: List[OpInfo], name: str) -> Optional[OpInfo]:
    return next((i for i in infos if i.op == name), None)
