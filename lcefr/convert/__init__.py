"""Conversion of Keras/larq models to TFLite flatbuffers (LCE, float, int8) and ONNX, with checks."""
from lcefr.convert.tflite import convert_lce, convert_float
from lcefr.convert.inspect import inspect_tflite, TfliteReport

__all__ = ["convert_lce", "convert_float", "inspect_tflite", "TfliteReport"]
