"""``lcefr run`` and :mod:`lcefr.face.stream`: frame pipeline, timing table, annotated video, bad input."""
import os

import cv2
import numpy as np
import pytest

from cli_helpers import json_output as _json, one_error as _one_error, run
from lcefr.data.synth import identity_rng, image_rng, render_face, synth_faces, synth_identity
from lcefr.face.detect import Face
from lcefr.face.stream import STAGES, FramePipeline, Matcher, StageTimes, open_video, synthetic_video
from lcefr.preprocess import ARCFACE_TEMPLATE

TRAINED = os.path.join(os.path.dirname(__file__), "..", "..", "models", "trained", "quicknet_small-synth.tflite")
TINY = "test_quicknet"





# ---- pure parts -------------------------------------------------------------------------------

def test_matcher_takes_each_persons_closest_embedding():
    e = np.eye(4, dtype=np.float32)
    m = Matcher(["a", "b", "a", "c"], e)
    assert m.people == ["a", "b", "c"] and m.dim == 4
    q = np.array([[0, 0, 1, 0], [0, 0.6, 0, 0.8], [0.1, 0.99, 0, 0]], np.float32)
    best = m.best(q)
    assert [b[0] for b in best] == ["a", "c", "b"]
    assert best[0][1] == pytest.approx(1.0) and best[1][1] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="3 dimensions"):
        m.best(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="one embedding per name"):
        Matcher(["a"], e)


def test_stage_times_summary():
    t = StageTimes()
    for ms in (1.0, 2.0, 3.0):
        for stage in STAGES:
            t.add(stage, ms / 1000.0)
    s = t.summary()
    assert t.frames == 3
    assert s["detect"]["mean_ms"] == pytest.approx(2.0) and s["match"]["max_ms"] == pytest.approx(3.0)
    assert s["total"]["mean_ms"] == pytest.approx(8.0) and s["total"]["median_ms"] == pytest.approx(8.0)
    with pytest.raises(ValueError, match="unknown stage"):
        t.add("decode", 0.1)


class _Boxes:
    """A detector stand-in returning fixed faces (the pipeline's contract, not MTCNN's accuracy)."""

    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return list(self.faces)


def test_pipeline_largest_face_or_all_and_threshold():
    big = Face(box=np.array([0, 0, 112, 112.0]), score=0.99, landmarks=ARCFACE_TEMPLATE.copy())
    small = Face(box=np.array([0, 0, 56, 56.0]), score=0.98, landmarks=ARCFACE_TEMPLATE / 2)
    matcher = Matcher(["alice"], np.array([[1.0, 0.0]], np.float32))
    embed = lambda faces: np.tile(np.array([[0.6, 0.8]], np.float32), (len(faces), 1))  # noqa: E731
    frame = np.zeros((112, 112, 3), np.uint8)
    one = FramePipeline(_Boxes([big, small]), embed, matcher, threshold=0.5)
    rows = one.process(frame)
    assert len(rows) == 1 and rows[0].name == "alice" and rows[0].score == pytest.approx(0.6)
    assert one.frames_with_several == 1 and one.times.frames == 1
    strict = FramePipeline(_Boxes([big, small]), embed, matcher, threshold=0.7, all_faces=True)
    rows = strict.process(frame)
    assert len(rows) == 2 and all(r.name is None and r.best == "alice" for r in rows)
    empty = FramePipeline(_Boxes([]), embed, matcher, threshold=0.5)
    assert empty.process(frame) == [] and empty.times.frames == 1


def test_synthetic_video_round_trip(tmp_path):
    path = tmp_path / "v.avi"
    shown = synthetic_video(str(path), identities=[3, 5], frames_per_identity=3, size=(200, 160), face_px=120)
    assert shown == [3, 3, 3, 5, 5, 5]
    capture = open_video(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 6 and frames[0].shape == (160, 200, 3)
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
    with pytest.raises(FileNotFoundError, match="no such video"):
        open_video(str(tmp_path / "missing.mp4"))
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(RuntimeError, match="not a decodable video"):
        open_video(str(tmp_path / "junk.mp4"))


# ---- command line ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_gallery(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    paths = []
    for i, face in enumerate(synth_faces(2, seed=4)):
        paths.append(d / f"{i}.png")
        cv2.imwrite(str(paths[-1]), face[:, :, ::-1])
    db = d / "g.sqlite"
    r = run("gallery", "add", "--db", db, "--model", TINY, "alice", *paths)
    assert r.exit_code == 0, r.output
    video = d / "v.avi"
    synthetic_video(str(video), identities=[0], frames_per_identity=2, size=(200, 160), face_px=120)
    return {"db": db, "video": video, "dir": d}


def test_run_bad_input(tmp_path, tiny_gallery):
    db, video = tiny_gallery["db"], tiny_gallery["video"]
    assert "no such video file" in _one_error(run("run", TINY, "--db", db, "--source", tmp_path / "none.mp4"))
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    assert "not a decodable video" in _one_error(run("run", TINY, "--db", db, "--source", tmp_path / "junk.mp4"))
    assert "camera 57 is not available" in _one_error(run("run", TINY, "--db", db, "--source", "57"))
    assert "no such gallery" in _one_error(run("run", TINY, "--db", tmp_path / "none.sqlite", "--source", video))
    assert "built with model" in _one_error(run("run", "test_mobilefacenet", "--db", db, "--source", video))
    assert ".mp4, .avi" in _one_error(run("run", TINY, "--db", db, "--source", video, "--out", tmp_path / "a.gif"))
    message = _one_error(run("run", TINY, "--db", db, "--source", video, "--show", "--threshold", "0.3"))
    assert "--show needs" in message
    assert not (tmp_path / "a.gif").exists()


def test_run_writes_video_and_timing_table(tmp_path, tiny_gallery):
    """The plumbing on a random-init tiny model: every frame processed, table printed, video written."""
    out = tmp_path / "annotated.avi"
    r = run("run", TINY, "--db", tiny_gallery["db"], "--source", tiny_gallery["video"], "--out", out,
            "--threshold", "0.3")
    assert r.exit_code == 0, r.output
    for stage in STAGES + ("total",):
        assert any(line.startswith(stage) for line in r.stdout.splitlines()), r.stdout
    assert "2 frames in" in r.stdout and "annotated video" in r.stdout
    capture = open_video(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    capture.release()


@pytest.mark.parametrize("min_face,found", [(40, True), (300, False)])
def test_run_min_face(tiny_gallery, min_face, found):
    """The video's faces are 120 px: found when searched from 40 px up, not from 300 px up."""
    r = run("run", TINY, "--db", tiny_gallery["db"], "--source", tiny_gallery["video"], "--threshold", "0.3",
            "--min-face", min_face, "--json")
    assert r.exit_code == 0, r.output
    report = _json(r.stdout)
    assert report["min_face_px"] == min_face and report["frames"] == 2
    assert report["frames_without_face"] == (0 if found else 2)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(TRAINED), reason="trained model artifact missing")
def test_run_identifies_generated_people_with_trained_model(tmp_path):
    """Acceptance: a video of generated faces, a gallery of the same people (other images), the
    study-trained quicknet_small (LCE .tflite): annotated video, stage table, and the names."""
    people = [0, 1, 2]
    for i in people:
        person = synth_identity(identity_rng(21, i))
        paths = []
        for k in range(3):
            paths.append(tmp_path / f"p{i}_{k}.png")
            cv2.imwrite(str(paths[-1]), render_face(person, image_rng(21, i, k))[:, :, ::-1])
        r = run("gallery", "add", "--db", tmp_path / "g.sqlite", "--model", TRAINED, f"person{i}", *paths)
        assert r.exit_code == 0, r.output
    video = tmp_path / "faces.mp4"
    shown = synthetic_video(str(video), identities=people, seed=21, frames_per_identity=4)
    out = tmp_path / "annotated.mp4"
    r = run("run", TRAINED, "--db", tmp_path / "g.sqlite", "--source", video, "--out", out, "--threshold", "0.3",
            "--json")
    assert r.exit_code == 0, r.output
    report = _json(r.stdout)
    assert report["frames"] == len(shown) and report["out"] == str(out) and os.path.getsize(out) > 0
    assert set(report["stages_ms"]) == set(STAGES) | {"total"}
    assert report["frames_without_face"] == 0
    print(report["names"], report["stages_ms"]["total"])
    assert report["per_frame"] == [[f"person{i}"] for i in shown]
