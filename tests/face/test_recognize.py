"""``lcefr.face.recognize`` from Python: verify, enrol and identify without click, on aligned generated faces."""
import pytest

from cli_helpers import write_rgb
from lcefr.data.synth import synth_faces
from lcefr.face.recognize import EnrolError, check_gallery_model, enrol, identify_image, verify_pair

TINY = "test_quicknet"  # registry model, random init: enough to exercise the plumbing


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    d = tmp_path_factory.mktemp("faces")
    images = synth_faces(4, seed=3, per_identity=2)
    return [str(write_rgb(d / f"{i}.png", img)) for i, img in enumerate(images)]


def test_verify_pair_same_image(faces):
    report = verify_pair(model=TINY, image_a=faces[0], image_b=faces[0], threshold=(0.5, "--threshold"))
    assert report["same"] and report["score_cos"] == pytest.approx(1.0, abs=1e-4)
    assert report["distance_sqL2"] == pytest.approx(2.0 - 2.0 * report["score_cos"])
    assert report["threshold_from"] == "--threshold" and report["image_a"]["aligned"] == "input is 112x112"


def test_enrol_and_identify(tmp_path, faces):
    db = str(tmp_path / "g.sqlite")
    with pytest.raises(EnrolError, match="needs --model"):
        enrol(db=db, name="alice", images=faces[:2])
    with pytest.raises(EnrolError, match="must not be empty"):
        enrol(db=db, name="  ", images=faces[:2], model=TINY)
    assert not (tmp_path / "g.sqlite").exists()
    first = enrol(db=db, name="alice", images=faces[:2], model=TINY)
    assert first["added"] == 2 and first["people"] == 1 and first["model_id"] == f"registry:{TINY}"
    second = enrol(db=db, name=" bob ", images=faces[2:])  # the gallery's model is reused
    assert second["name"] == "bob" and second["people"] == 2 and second["embeddings"] == 4
    with pytest.raises(ValueError, match="built with model"):
        check_gallery_model(model="test_mobilefacenet", db=db)
    report = identify_image(model=TINY, image=faces[0], db=db, threshold=(0.5, "--threshold"), top=1)
    assert report["identity"] == "alice" and [m["name"] for m in report["matches"]] == ["alice"]
    report = identify_image(model=TINY, image=faces[0], db=db, threshold=(1.01, "--threshold"))
    assert report["identity"] is None and len(report["matches"]) == 2
