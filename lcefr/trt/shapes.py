"""The layer shapes of seed 000 (EffBin, Roy et al. 2025): IResNet-18's convolutions at 112x112.

Standard library only: the GPU check reads them on machines without TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

__all__ = ["ConvLayer", "ir18_convs", "IR18_CONVS"]


@dataclass(frozen=True)
class ConvLayer:
    index: int  # 1-based, creation order of IResNet-18
    cin: int
    cout: int
    kernel: int
    stride: int
    size: int  # input height = width at 112x112 faces

    @property
    def pad(self) -> int:
        return self.kernel // 2


def ir18_convs(widths: Sequence[int] = (64, 128, 256, 512), depths: Sequence[int] = (2, 2, 2, 2), size: int = 112) -> List[ConvLayer]:
    """IResNet-18's convolutions in creation order (the order of ``lcefr.models.iresnet.ir18``)."""
    layers = [ConvLayer(1, 3, widths[0], 3, 1, size)]
    cin = widths[0]
    for width, depth in zip(widths, depths):
        for block in range(depth):
            stride = 2 if block == 0 else 1
            layers.append(ConvLayer(len(layers) + 1, cin, width, 3, 1, size))
            layers.append(ConvLayer(len(layers) + 1, width, width, 3, stride, size))
            if stride != 1 or cin != width:
                layers.append(ConvLayer(len(layers) + 1, cin, width, 1, stride, size))
            size = -(-size // stride)
            cin = width
    return layers


IR18_CONVS = ir18_convs()
