"""What in a Keras model should become LCE binary ops, and what will not (``--lce-lint``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List

import larq as lq

from lcefr.keras_graph import is_sign_quantizer, iter_layers

__all__ = ["Finding", "count_sign_convs", "lce_lint"]

def _is_conv(layer) -> bool:
    return isinstance(layer, lq.layers.QuantConv2D)


def count_sign_convs(model) -> int:
    """Keras convolutions whose input and kernel quantizers are both sign-type: each must be an LceBconv2d."""
    return sum(
        1
        for layer in iter_layers(model)
        if _is_conv(layer) and is_sign_quantizer(layer.input_quantizer) and is_sign_quantizer(layer.kernel_quantizer)
    )


@dataclass
class Finding:
    layer: str
    kind: str
    problem: str
    fix: str

    def to_dict(self) -> Dict:
        return asdict(self)


def _quantizer_name(q) -> str:
    return type(q).__name__ if not callable(q) or hasattr(q, "get_config") else getattr(q, "__name__", str(q))


def lce_lint(model) -> List[Finding]:
    """Every quantized layer that will not run as a fast LCE binary op, why, and the fix."""
    import tensorflow as tf

    findings: List[Finding] = []
    for layer in iter_layers(model):
        name, kind = layer.name, type(layer).__name__
        if isinstance(layer, (lq.layers.QuantDepthwiseConv2D, lq.layers.QuantSeparableConv2D)):
            quantizers = [getattr(layer, a, None) for a in ("input_quantizer", "depthwise_quantizer", "pointwise_quantizer")]
            if any(q is not None for q in quantizers):
                findings.append(Finding(name, kind, "binary depthwise/separable convolutions have no LCE binary kernel; they run in float after a sign",
                                        "use a full 1x1/3x3 QuantConv2D (groups with 32k channels each) instead"))
            continue
        if isinstance(layer, lq.layers.QuantDense) and layer.kernel_quantizer is not None:
            findings.append(Finding(name, kind, "LCE has no binary dense op; it runs as a float FULLY_CONNECTED",
                                    "reshape to 1x1xC and use a 1x1 QuantConv2D"))
            continue
        if not _is_conv(layer):
            continue
        iq, kq = layer.input_quantizer, layer.kernel_quantizer
        if iq is None and kq is None:
            continue
        groups = getattr(layer, "groups", 1) or 1
        cin = int(layer.input_spec.axes[-1]) if layer.input_spec and layer.input_spec.axes else None
        if cin and groups > 1 and (cin // groups) % 32:
            findings.append(Finding(name, kind,
                                    f"{cin // groups} input channels per group; LCE grouped bconvs need a multiple of 32",
                                    "use fewer groups or wider layers so each group has 32k channels"))
        if not is_sign_quantizer(iq) or not is_sign_quantizer(kq):
            findings.append(Finding(name, kind,
                                    f"quantizers {_quantizer_name(iq)}/{_quantizer_name(kq)} are not sign-type; LCE keeps this conv in float",
                                    "use ste_sign/approx_sign (input) and ste_sign/magnitude_aware_sign (kernel)"))
            continue
        if layer.padding == "same" and float(tf.keras.backend.get_value(layer.pad_values)) == 0.0:
            findings.append(Finding(name, kind,
                                    "zero padding: LCE runs it with float output, an edge correction and no fused activation",
                                    "QuantConv2D(..., padding='same', pad_values=1.0)"))
    return findings
