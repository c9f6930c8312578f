"""Low-bit quantization-aware training of float face backbones (Ef-QuantFace, seed 002).

:mod:`lcefr.quantize.fakequant` holds the fake-quantization layers (per-channel symmetric
weights, calibrated-then-frozen activation ranges, straight-through gradients);
:mod:`lcefr.quantize.qat` the small-data distillation loop, sizes, accuracy and int8 export.
"""
from lcefr.quantize.fakequant import (
    QUANT_OBJECTS,
    SUPPORTED_BITS,
    QuantConv2D,
    QuantDense,
    QuantDepthwiseConv2D,
    calibrate,
    fold_quantized_weights,
    quant_layers,
    quantize_activation,
    quantize_model,
    quantize_weight,
)
from lcefr.quantize.qat import (
    LOSSES,
    QATResult,
    QuantData,
    export_int8,
    load_quant_data,
    load_teacher,
    packed_size,
    quantization_aware_training,
    verification_accuracy,
)

__all__ = [
    "QUANT_OBJECTS",
    "SUPPORTED_BITS",
    "QuantConv2D",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "calibrate",
    "fold_quantized_weights",
    "quant_layers",
    "quantize_activation",
    "quantize_model",
    "quantize_weight",
    "LOSSES",
    "QATResult",
    "QuantData",
    "export_int8",
    "load_quant_data",
    "load_teacher",
    "packed_size",
    "quantization_aware_training",
    "verification_accuracy",
]
