"""The operators of a ``.tflite`` flatbuffer with what their cost depends on (read by
:func:`lcefr.convert.inspect.read_op_infos`), and the file-level facts the estimate needs."""
from __future__ import annotations

from typing import List

from lcefr.convert.inspect import OpInfo, read_op_infos

__all__ = ["OpInfo", "read_op_infos", "has_grouped_bconv"]


def has_grouped_bconv(infos: List[OpInfo]) -> bool:
    return any(i.op == "LceBconv2d" and i.groups > 1 for i in infos)
