"""The names lcefr's commands and functions accept, each defined once; click choices derive from
these tuples. Imports nothing, so the CLI reads it at start-up without TensorFlow."""

__all__ = ["DELEGATION_RUNTIMES", "BOARD_INTERPRETERS", "DEFAULT_THRESHOLD_COS", "IMAGE_EXTENSIONS", "TARGETS", "ONNX_DOMAINS", "HEAD_NAMES", "OPTIMIZERS", "STRATEGIES", "DISTILL_LOSSES",
           "QAT_LOSSES"]

#: Cosine threshold of verify, identify and run when neither a calibration file nor a threshold is
#: given. Uncalibrated: a common operating point of ArcFace-trained models, but binarized models
#: differ; calibrate with ``lcefr eval MODEL --bin lfw.bin --calibration-out cal.json``.
DEFAULT_THRESHOLD_COS = 0.3
#: Image files every command reads (align, train, data, eval); OpenCV decodes them all.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: `lcefr convert --to`: LCE flatbuffer, its int8 and float siblings, plain ONNX, ONNX with BinaryConv2d nodes.
TARGETS = ("tflite", "tflite-int8", "tflite-float", "onnx", "onnx-binary")
#: `--domain` of onnx-binary -> the custom-op domain written (TensorRT's parser wants the empty one).
ONNX_DOMAINS = {"ai.onnx.contrib": "ai.onnx.contrib", "trt": ""}
#: Margin heads (lcefr.heads.margin registers a class under each name).
HEAD_NAMES = ("arcface", "cosface", "adaface")
#: Training optimizers: sgd (momentum 0.9), adam, bop (binary weights; Adam for the float ones).
OPTIMIZERS = ("sgd", "adam", "bop")
#: tf.distribute strategies of `lcefr train`.
STRATEGIES = ("default", "mirrored", "multiworker")
#: Distillation losses (need a teacher).
DISTILL_LOSSES = ("mse", "ekd")
#: `lcefr quantize --loss`: distillation from the float teacher (ekd+ce adds the margin-head loss).
QAT_LOSSES = ("ekd", "mse", "ekd+ce")
#: `lcefr inspect --delegation --runtime`: this machine's TensorFlow, or the emulated board's two wheels.
DELEGATION_RUNTIMES = ("tensorflow", "tflite-runtime", "ai-edge-litert")
#: `lcefr bench --emulate --interpreter`: auto = int8 files on ai-edge-litert, float files on tflite-runtime.
BOARD_INTERPRETERS = ("auto", "tflite-runtime", "ai-edge-litert")
