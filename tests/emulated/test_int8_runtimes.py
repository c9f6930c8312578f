"""The board's two TFLite runtimes place int8 ops differently: ai-edge-litert hands them to XNNPACK,
tflite-runtime 2.14's aarch64 wheel leaves them to builtin kernels (``inspect --delegation``,
``bench --emulate --interpreter``)."""
import json

import pytest

from emuhelp import lcefr

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("board_exclusive")]


def _json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_int8_ops_go_to_xnnpack_on_ai_edge_litert_only(board_session, model_files):
    litert = _json(lcefr("inspect", model_files["int8"], "--delegation", "--runtime", "ai-edge-litert", "--json",
                         "--all-ops", timeout=600))
    old = _json(lcefr("inspect", model_files["int8"], "--delegation", "--runtime", "tflite-runtime", "--json",
                      "--all-ops", timeout=600))
    assert litert["runtime"] == "ai-edge-litert" and litert["version"].startswith("1.4")
    assert old["runtime"] == "tflite-runtime" and old["version"].startswith("2.14")
    convs = lambda d: [op for op in d["ops"] if op["op"] == "CONV_2D" and op["dtype"] == "int8"]  # noqa: E731
    assert convs(litert) and all(op["xnnpack"] for op in convs(litert))
    assert convs(old) and not any(op["xnnpack"] for op in convs(old))
    # the float SIGN islands of a binary model have no XNNPACK kernel on either runtime
    assert any(k.startswith("SIGN (float32)") for k in litert["off_xnnpack"])
    # this machine's TensorFlow places the file as ai-edge-litert does
    host = _json(lcefr("inspect", model_files["int8"], "--delegation", "--json", "--all-ops"))
    assert [op["xnnpack"] for op in host["ops"]] == [op["xnnpack"] for op in litert["ops"]]


def test_bench_emulate_counts_int8_on_ai_edge_litert_by_default(board_session, model_files):
    auto = _json(lcefr("bench", "--emulate", "cortex-a57", "--json", "--runs", "1", model_files["float"],
                       model_files["int8"], timeout=1800))
    assert [r["runtime"] for r in auto] == ["tflite_runtime", "ai_edge_litert"]
    forced = _json(lcefr("bench", "--emulate", "cortex-a57", "--json", "--runs", "1", "--interpreter", "tflite-runtime",
                         model_files["int8"], timeout=1800))
    assert forced[0]["runtime"] == "tflite_runtime" and forced[0]["status"] == "ok"
    # same file, other kernels: builtin int8 kernels vs XNNPACK's
    assert abs(forced[0]["instructions"] - auto[1]["instructions"]) > 0.05 * auto[1]["instructions"]


def test_mobilefacenet_int8_is_no_slower_than_float_on_the_a57(board_session, tmp_path):
    """The acceptance of the float islands, as deterministic instruction counts: mobilefacenet's int8
    file within 10% of its float file (measured 85.4 M vs 88.8 M), the plain int8 file far above
    (280.7 M: its 33 int8 PReLUs run on builtin kernels)."""
    files = {}
    for kind, args in (("float", ["--to", "tflite-float"]), ("int8", ["--to", "tflite-int8"]),
                       ("plain", ["--to", "tflite-int8", "--no-float-islands"])):
        files[kind] = str(tmp_path / f"mobilefacenet.{kind}.tflite")
        proc = lcefr("convert", "mobilefacenet", *args, "-o", files[kind], "--calibration-size", "16", timeout=900)
        assert proc.returncode == 0, proc.stderr
        assert ("not on XNNPACK" in proc.stderr) is (kind == "plain"), proc.stderr
    rows = _json(lcefr("bench", "--emulate", "cortex-a57", "--json", "--runs", "1", files["float"], files["int8"],
                       files["plain"], timeout=1800))
    count = {kind: row["instructions"] for kind, row in zip(("float", "int8", "plain"), rows)}
    assert [r["runtime"] for r in rows] == ["tflite_runtime", "ai_edge_litert", "ai_edge_litert"]
    assert count["int8"] <= 1.10 * count["float"], count
    assert count["plain"] > 2 * count["float"], count
