"""Which ops of a ``.tflite`` file run on XNNPACK and which on TFLite's builtin kernels, per runtime.

A TFLite interpreter applies the XNNPACK delegate by default: every op XNNPACK supports (for its
dtype, shapes and quantization) is folded into a delegate partition, the rest run on TFLite's
builtin kernels, for int8 often reference loops (on an emulated Cortex-A57, tflite-runtime 2.14:
an int8 PRELU costs ~77 instructions per element against ~2.5 for XNNPACK's float PReLU).

Runtimes differ in what they hand over: TensorFlow 2.16's interpreter (x86 here) and ai-edge-litert
(aarch64 boards) delegate int8 ops; tflite-runtime 2.14's aarch64 wheel delegates float ops only
(its int8 ops all run on builtin kernels). ``tensorflow`` is inspected in this process,
``tflite-runtime`` and ``ai-edge-litert`` on the emulated board's rootfs under qemu
(:mod:`lcefr.board.delegation`).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from lcefr.convert.delegation_guest import interpreter_class, raw_ops
from lcefr.vocab import DELEGATION_RUNTIMES

__all__ = ["RUNTIMES", "OpPlacement", "DelegationReport", "placement", "inspect_delegation", "DelegationError",
           "GUEST_SCRIPT"]

#: runtimes whose XNNPACK placement lcefr can inspect (the first in this process, the others on the
#: emulated board)
RUNTIMES = DELEGATION_RUNTIMES
_QUANTIZED = ("int8", "uint8", "int16")
#: the standalone script that reads the raw placement where a runtime is (copied to boards)
GUEST_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "delegation_guest.py")


class DelegationError(Exception):
    """The runtime could not load the file, or is not available."""


@dataclass
class OpPlacement:
    index: int
    op: str
    dtype: str
    shape: List[int] = field(default_factory=list)
    #: folded into an XNNPACK partition (else a builtin kernel runs it)
    xnnpack: bool = False
    partition: Optional[int] = None

    @property
    def quantized(self) -> bool:
        return self.dtype in _QUANTIZED

    def label(self) -> str:
        return f"{self.op} ({self.dtype})"


@dataclass
class DelegationReport:
    runtime: str
    version: str
    ops: List[OpPlacement]
    partitions: int

    @property
    def off_xnnpack(self) -> List[OpPlacement]:
        return [op for op in self.ops if not op.xnnpack]

    def off_path_summary(self) -> Dict[str, int]:
        """``{"PRELU (int8)": 30, ...}`` for the ops left to builtin kernels."""
        return dict(sorted(Counter(op.label() for op in self.off_xnnpack).items(), key=lambda kv: (-kv[1], kv[0])))

    def to_dict(self) -> Dict:
        return {"runtime": self.runtime, "version": self.version, "ops_total": len(self.ops),
                "ops_xnnpack": sum(op.xnnpack for op in self.ops), "partitions": self.partitions,
                "off_xnnpack": self.off_path_summary(), "ops": [asdict(op) for op in self.ops]}


def _op_dtype(node: Dict, tensors: Dict) -> str:
    """An op's dtype: int8 when it reads or writes a quantized activation (QUANTIZE / DEQUANTIZE too)."""
    dtypes = [tensors[t]["dtype"] for t in node["outputs"][:1] + node["inputs"][:1] if t >= 0 and t in tensors]
    for dtype in dtypes:
        if dtype in _QUANTIZED:
            return dtype
    return dtypes[0] if dtypes else "?"


def placement(raw: Dict) -> DelegationReport:
    """Per-op placement from :func:`lcefr.board.delegation_guest.raw_ops` output.

    The Python API lists the original nodes plus one ``DELEGATE`` node per XNNPACK partition (its
    inputs and outputs are the partition's boundary tensors). A node belongs to a partition when it
    is reached walking back from the partition's outputs without crossing its inputs.
    """
    tensors = {int(k): v for k, v in raw["tensors"].items()}
    nodes = [n for n in raw["nodes"] if n["op"] != "DELEGATE"]
    delegates = [n for n in raw["nodes"] if n["op"] == "DELEGATE"]
    producer = {t: i for i, n in enumerate(nodes) for t in n["outputs"]}
    owner: Dict[int, int] = {}
    for part, node in enumerate(delegates):
        boundary = set(node["inputs"])
        stack, seen = list(node["outputs"]), set()
        while stack:
            t = stack.pop()
            if t in seen or t in boundary or t < 0:
                continue
            seen.add(t)
            i = producer.get(t)
            if i is None:
                continue
            owner.setdefault(i, part)
            stack.extend(nodes[i]["inputs"])
    ops = []
    for i, node in enumerate(nodes):
        out = node["outputs"][0] if node["outputs"] else -1
        ops.append(OpPlacement(index=i, op=node["op"], dtype=_op_dtype(node, tensors),
                               shape=list(tensors.get(out, {}).get("shape", [])), xnnpack=i in owner,
                               partition=owner.get(i)))
    return DelegationReport(runtime=raw["runtime"], version=raw["version"], ops=ops, partitions=len(delegates))


def _host_raw(buffer: bytes) -> Dict:
    cls, version = interpreter_class("tensorflow")
    try:
        return raw_ops(cls, version, "tensorflow", model_content=bytes(buffer))
    except (RuntimeError, ValueError) as err:
        lines = str(err).strip().splitlines()
        raise DelegationError(f"TensorFlow's interpreter cannot load this file: {lines[-1] if lines else err}") from None


def inspect_delegation(path: Optional[str] = None, *, buffer: Optional[bytes] = None) -> DelegationReport:
    """XNNPACK placement of a file (``path``) or flatbuffer (``buffer``) on this machine's TensorFlow.

    The board runtimes (tflite-runtime, ai-edge-litert) are read on the emulated board by
    :func:`lcefr.board.delegation.board_delegation`.
    """
    if buffer is None:
        with open(path, "rb") as f:
            buffer = f.read()
    return placement(_host_raw(buffer))
