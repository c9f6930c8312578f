"""``lcefr.quantize.workflow.quantize_backbone`` called from Python: checks before any work, stages, outputs."""
import json
import os

import pytest

from lcefr.quantize.workflow import OUTPUT_FILES, QuantizeError, quantize_backbone


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": 5}, "--bits must be one of 8, 6, 4, got 5"),
    ({"loss": "l1"}, "--loss must be one of"),
    ({"epochs": -1}, "--epochs must be >= 0"),
    ({"batch_size": 1}, "--batch-size must be >= 2"),
    ({"images": 1}, "--images must be at least 2"),
    ({"calibration_images": 0}, "--calibration-images must be >= 1"),
    ({"val_bins": ["missing.bin"]}, "--val-bin missing.bin: no such file"),
    ({"data": "no-such-folder"}, "--data no-such-folder: no such folder"),
    ({"teacher": "no-such-model"}, "--teacher no-such-model: no such file and not a registry model"),
])
def test_bad_arguments_raise_quantize_error_and_write_nothing(tmp_path, kwargs, message):
    args = {"teacher": "test_iresnet", "bits": 8, "data": "synthetic", "out_dir": str(tmp_path / "out"), **kwargs}
    with pytest.raises(QuantizeError, match=message.replace("+", r"\+")):
        quantize_backbone(**args)
    assert os.listdir(tmp_path) == []


def test_out_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(QuantizeError, match="exists and is not a folder"):
        quantize_backbone(teacher="test_iresnet", bits=8, data="synthetic", out_dir=str(tmp_path / "out"))


@pytest.mark.slow
def test_stages_note_and_outputs(tmp_path):
    from lcefr.data.synth import synth_dataset

    folder = str(tmp_path / "faces")
    synth_dataset(folder, identities=2, per_identity=4, seed=0)
    calls, notes = [], []
    report = quantize_backbone(teacher="test_iresnet", bits=6, data=folder, out_dir=str(tmp_path / "run"),
                               images=8, batch_size=4, calibration_images=8, loss="mse",
                               progress=lambda *a: calls.append(a), note=notes.append)
    assert sorted(os.listdir(tmp_path / "run")) == sorted(OUTPUT_FILES)
    assert report["bits"] == 6 and report["images"] == 8 and report["accuracy"] == {}
    assert len(notes) == 1 and "w6a6, 8 images (labelled)" in notes[0]
    stages = [stage for stage, done, _ in calls if done == 0]
    assert stages == ["quantization-aware training", "int8 .tflite export"]
    # the QAT export keeps the PReLUs as float islands: every op on XNNPACK, no off-path warning
    from lcefr.convert.delegation import inspect_delegation

    with open(tmp_path / "run" / "model.int8.json") as f:
        conversion = json.load(f)["conversion"]
    # (on this tiny random model an int8 ADD may leave XNNPACK too and become an island as well)
    assert "PRELU" in conversion["float_islands"] and conversion["warnings"] == []
    placed = inspect_delegation(str(tmp_path / "run" / "model.int8.tflite"))
    assert placed.ops and not placed.off_xnnpack
    assert report["tflite_int8_xnnpack"]["ops_xnnpack"] == len(placed.ops)
    for stage in stages:
        done = [d for s, d, _ in calls if s == stage]
        total = next(t for s, _, t in calls if s == stage)
        assert done == sorted(done) and done[-1] == total, (stage, done, total)
