"""``convert()``: one target, every check, a result record; no file I/O (the CLI writes)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np

from lcefr.convert.audit import count_sign_convs
from lcefr.convert.delegation import DelegationError, inspect_delegation
from lcefr.convert.inspect import inspect_tflite
from lcefr.convert.onnx import convert_onnx, onnx_runner
from lcefr.convert.onnx_binary import convert_onnx_binary
from lcefr.convert.ort import count_binary_nodes, onnx_binary_runner
from lcefr.convert.tflite import convert_float, convert_int8, convert_lce
from lcefr.eval.parity import PARITY_PROBES, check_parity, face_inputs, probe_inputs
from lcefr.keras_graph import iter_layers
from lcefr.runtime import lce_interpreter
from lcefr.vocab import ONNX_DOMAINS, TARGETS

__all__ = ["PARITY_MIN", "ConversionResult", "ConversionCheckError", "convert", "tflite_runner", "off_path_warning"]

#: Minimum mean Keras-vs-converted cosine over the probe faces, per target (int8: enforced on
#: full-precision models only). The worst single face may fall PARITY_SLACK lower: in a binary
#: network a float rounding difference next to a sign threshold flips one bit now and then
#: (measured: 1 face in ~30 at cosine 0.988-0.998 in BinaryFaceNet and AdaBin ResNets), while a wrong conversion
#: drops every face far below (0.36-0.92 in the failures this check has caught).
PARITY_MIN = {"tflite": 0.999, "tflite-float": 0.999, "tflite-int8": 0.98, "onnx": 0.999, "onnx-binary": 0.999}
PARITY_SLACK = 0.02


@dataclass
class ConversionResult:
    source: str
    target: str
    size_bytes: int = 0
    kernel: Optional[str] = None
    binary_model: bool = False
    lce_native: bool = True
    sign_convs: int = 0
    ops: Optional[Dict] = None
    #: tflite-int8: XNNPACK placement on this machine's TensorFlow (see lcefr.convert.delegation)
    xnnpack: Optional[Dict] = None
    #: tflite-int8: op types kept float because XNNPACK has no int8 version of them
    float_islands: List[str] = field(default_factory=list)
    parity: Optional[Dict] = None
    parity_min: float = 0.0
    parity_enforced: bool = True
    probes: Optional[str] = None
    checks: Dict[str, bool] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> Dict:
        return asdict(self)


class ConversionCheckError(ValueError):
    """A conversion whose checks failed; ``result`` holds the numbers."""

    def __init__(self, result: ConversionResult):
        self.result = result
        super().__init__(f"{result.source} -> {result.target}: " + "; ".join(result.errors))


def tflite_runner(buffer: bytes, *, kernel: str = "indirect"):
    """``x -> embeddings`` for a flatbuffer: LCE's interpreter (runs both LCE and builtin ops)."""
    interpreter = lce_interpreter(buffer, threads=1, kernel=kernel)
    return interpreter.predict


def _is_binary(model) -> bool:
    import larq as lq

    return any(
        getattr(layer, "kernel_quantizer", None) is not None or getattr(layer, "input_quantizer", None) is not None
        for layer in iter_layers(model)
        if isinstance(layer, lq.layers.QuantizerBase) or hasattr(layer, "kernel_quantizer")
    )


def convert(
    model,
    *,
    target: str,
    name: str = "model",
    lce_native: bool = True,
    calibration: Optional[np.ndarray] = None,
    verify: bool = True,
    probes: Optional[np.ndarray] = None,
    domain: str = "ai.onnx.contrib",
    trained: bool = False,
    float_islands: bool = True,
) -> "tuple[bytes, ConversionResult]":
    """Convert ``model`` to ``target`` and check it.

    Checks (unless ``verify`` is False): parity of embeddings with Keras on PARITY_PROBES probe
    images (mean cosine >= PARITY_MIN, worst face >= PARITY_MIN - PARITY_SLACK)
    and, for ``tflite``, that every sign-quantized Keras convolution became an ``LceBconv2d``
    (models registered as not LCE-native only get a warning).

    Raises:
        ValueError: unknown target, or int8 without calibration data.
        ConversionCheckError: a check failed (the bytes are not returned).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    result = ConversionResult(source=name, target=target, lce_native=lce_native, binary_model=_is_binary(model))
    result.sign_convs = count_sign_convs(model)
    if target == "tflite":
        buffer = convert_lce(model)
    elif target == "tflite-float":
        buffer = convert_float(model)
    elif target == "tflite-int8":
        if calibration is None:
            raise ValueError("tflite-int8 needs calibration images")
        info: Dict = {}
        buffer = convert_int8(model, calibration, float_islands=float_islands, info=info)
        result.float_islands = info["float_islands"]
        placed = info.get("placement")
    elif target == "onnx-binary":
        if domain not in ONNX_DOMAINS:
            raise ValueError(f"unknown ONNX domain {domain!r}; choose one of {', '.join(ONNX_DOMAINS)}")
        buffer = convert_onnx_binary(model, domain=ONNX_DOMAINS[domain])
        nodes = count_binary_nodes(buffer)
        result.ops = {"binary_conv2d": nodes, "domain": ONNX_DOMAINS[domain]}
        result.checks["op_audit"] = nodes == result.sign_convs
        if nodes != result.sign_convs:
            result.errors.append(f"{nodes} BinaryConv2d nodes for {result.sign_convs} sign-quantized Keras convolutions")
    else:
        buffer = convert_onnx(model)
    result.size_bytes = len(buffer)

    if target.startswith("tflite"):
        report = inspect_tflite(buffer)
        result.ops = report.to_dict()
        if target == "tflite":
            _audit_ops(result, report)
        elif target == "tflite-int8":
            _audit_xnnpack(result, buffer, placed)
    if verify:
        _check_parity(model, buffer, result, probes, trained=trained)
    if result.errors:
        raise ConversionCheckError(result)
    return buffer, result


def _audit_ops(result: ConversionResult, report) -> None:
    ok = report.lce_bconv2d >= result.sign_convs
    result.checks["op_audit"] = ok
    if result.binary_model and report.lce_bconv2d == 0:
        message = (f"no LceBconv2d in the converted model: its binary layers run in float "
                   f"(binary MAC share {report.binary_mac_share:.3f}); see `lcefr inspect {result.source} --lce-lint`")
        if result.lce_native:
            result.errors.append(message)
        else:
            result.warnings.append(message)
    if not ok:
        message = f"{report.lce_bconv2d} LceBconv2d for {result.sign_convs} sign-quantized Keras convolutions"
        (result.errors if result.lce_native else result.warnings).append(message)


def off_path_warning(summary: Dict[str, int], runtime: str) -> str:
    """One line naming the ops a runtime leaves off XNNPACK, most frequent first."""
    listed = ", ".join(f"{name} x{n}" for name, n in summary.items())
    return (f"{sum(summary.values())} op(s) not on XNNPACK's fast path ({runtime}; they run on TFLite's builtin "
            f"kernels): {listed}")


def _audit_xnnpack(result: ConversionResult, buffer: bytes, report=None) -> None:
    """Warn when an op of the int8 file leaves XNNPACK (TensorFlow here places ops as ai-edge-litert does on
    boards); ``report``: the placement convert_int8 already read, else it is read here."""
    if report is None:
        try:
            report = inspect_delegation(buffer=buffer)
        except DelegationError as err:
            result.warnings.append(f"XNNPACK placement not checked: {err}")
            return
    summary = report.off_path_summary()
    result.xnnpack = {k: v for k, v in report.to_dict().items() if k != "ops"}
    result.checks["xnnpack_fast_path"] = not summary
    if summary:
        result.warnings.append(off_path_warning(summary, f"TensorFlow {report.version}"))


def _check_parity(model, buffer: bytes, result: ConversionResult, probes, *, trained: bool = False) -> None:
    if result.target == "onnx":
        run = onnx_runner(buffer)
    elif result.target == "onnx-binary":
        run = onnx_binary_runner(buffer)
        result.kernel = "c-reference"
    else:
        run = tflite_runner(buffer, kernel="indirect")
        result.kernel = "indirect"
    if probes is None:
        # Uniform noise suits random-init models, whose sign margins load_source widened on exactly
        # these probes. A trained model is probed on faces, its input distribution: noise drives
        # many of its sign inputs to within float rounding of zero (a trained quicknet_small:
        # worst cosine 0.988 on noise, 0.99996 on faces). int8 ranges are calibrated on faces,
        # so int8 is probed on (other) faces too.
        shape = tuple(model.input_shape[1:])
        on_faces = trained or result.target == "tflite-int8"
        probes = face_inputs(shape, n=PARITY_PROBES, seed=991) if on_faces else probe_inputs(shape, n=PARITY_PROBES)
        result.probes = "faces" if on_faces else "noise"
    else:
        result.probes = result.probes or "given"
    parity = check_parity(model, run, inputs=probes)
    result.parity = parity.to_dict()
    result.parity_min = PARITY_MIN[result.target]
    result.parity_enforced = not (result.target == "tflite-int8" and result.binary_model)
    passed = parity.cosine_mean >= result.parity_min and parity.cosine_min >= result.parity_min - PARITY_SLACK
    result.checks["parity"] = passed or not result.parity_enforced
    if not passed:
        message = (f"parity against Keras: mean cosine {parity.cosine_mean:.5f} (need >= {result.parity_min}), "
                   f"worst face {parity.cosine_min:.5f} (need >= {result.parity_min - PARITY_SLACK:.3f})")
        (result.errors if result.parity_enforced else result.warnings).append(message)
