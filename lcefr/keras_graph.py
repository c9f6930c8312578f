"""Walking a Keras model's graph: every layer (nested models included), which quantizers LCE
lowers to binary ops, and the custom objects that load any lcefr model file."""
from __future__ import annotations

import larq as lq
import tensorflow as tf

from lcefr.layers import QUANT_OBJECTS, AdaBinConv2D, Maxout
from lcefr.quantizers import AdaBinWeight

__all__ = ["CUSTOM_OBJECTS", "iter_layers", "is_sign_quantizer"]

#: What ``tf.keras.models.load_model`` needs for every lcefr model (binary, AdaBin, fake-quantized).
CUSTOM_OBJECTS = {"Maxout": Maxout, "AdaBinConv2D": AdaBinConv2D, "AdaBinWeight": AdaBinWeight, **QUANT_OBJECTS}

_SIGN_QUANTIZERS = (lq.quantizers.SteSign, lq.quantizers.ApproxSign, lq.quantizers.SwishSign,
                    lq.quantizers.MagnitudeAwareSign, AdaBinWeight)
_SIGN_FUNCTIONS = {"ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign"}


def iter_layers(model):
    """Every layer, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def is_sign_quantizer(quantizer) -> bool:
    """True for larq's sign-type binarizers (and lcefr's AdaBin weights), which LCE lowers to binary ops."""
    if quantizer is None:
        return False
    if isinstance(quantizer, _SIGN_QUANTIZERS):
        return True
    return getattr(quantizer, "__name__", "") in _SIGN_FUNCTIONS
