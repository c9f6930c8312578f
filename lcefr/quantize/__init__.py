"""Low-bit quantization-aware training of float face backbones (Ef-QuantFace, seed 002).

:mod:`lcefr.quantize.fakequant` turns a float model into its fake-quantized copy and calibrates it
(the layers are in :mod:`lcefr.layers`, the quantizers in :mod:`lcefr.quantizers`);
:mod:`lcefr.quantize.qat` the small-data distillation loop, sizes, accuracy and int8 export;
:mod:`lcefr.quantize.workflow` the whole ``lcefr quantize`` run (:func:`quantize_backbone`).
"""
from lcefr.quantize.fakequant import (
    SUPPORTED_BITS,
    calibrate,
    fold_quantized_weights,
    quant_layers,
    quantize_model,
)
from lcefr.quantize.qat import (
    QATResult,
    QuantData,
    export_int8,
    load_quant_data,
    load_teacher,
    packed_size,
    quantization_aware_training,
    verification_accuracy,
)
from lcefr.quantize.workflow import QuantizeError, quantize_backbone

__all__ = [
    "SUPPORTED_BITS",
    "calibrate",
    "fold_quantized_weights",
    "quant_layers",
    "quantize_model",
    "QATResult",
    "QuantData",
    "export_int8",
    "load_quant_data",
    "load_teacher",
    "packed_size",
    "quantization_aware_training",
    "verification_accuracy",
    "QuantizeError",
    "quantize_backbone",
]
