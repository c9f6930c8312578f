"""Training config: YAML, key=value overrides, validation."""
import pytest

from lcefr.train.config import TrainConfig, apply_overrides, config_to_yaml, load_config, parse_overrides


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: ir18\nlr: 0.1\nval-bin: [a.bin, b.bin]\naugment: false\n")
    config = load_config(str(path))
    assert config.model == "ir18" and config.lr == 0.1 and config.val_bin == ("a.bin", "b.bin") and config.augment is False
    config = apply_overrides(config, parse_overrides(["lr=0.02", "epochs=7", "margin=0.3", "teacher=none"]))
    assert config.lr == 0.02 and config.epochs == 7 and config.margin == 0.3 and config.teacher is None
    assert load_config(None) == TrainConfig()
    round_trip = tmp_path / "r.yaml"
    round_trip.write_text(config_to_yaml(config))
    assert load_config(str(round_trip)) == config


@pytest.mark.parametrize("items, message", [
    (["lrr=1"], "unknown config key"),
    (["epochs=two"], "epochs: expected int"),
    (["nonsense"], "expected key=value"),
])
def test_bad_overrides(items, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(TrainConfig(), parse_overrides(items))


def test_validate():
    with pytest.raises(ValueError, match="head 'softmax'"):
        apply_overrides(TrainConfig(), {"head": "softmax"}).validate()
    with pytest.raises(ValueError, match="go together"):
        apply_overrides(TrainConfig(), {"teacher": "t.keras"}).validate()


def test_bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_config(str(path))
    with pytest.raises(FileNotFoundError):
        load_config(str(tmp_path / "missing.yaml"))


def test_synth_lookalikes_gets_its_own_cached_folder(tmp_path, monkeypatch):
    from lcefr.data.images import read_face
    from lcefr.data.synth import synth_faces
    from lcefr.train.fit import prepare

    monkeypatch.setenv("LCEFR_CACHE", str(tmp_path))
    base = {"model": "test_quicknet", "synth_identities": 2, "synth_per_identity": 2}
    plain = prepare(apply_overrides(TrainConfig(), base))
    hard = prepare(apply_overrides(TrainConfig(), {**base, "synth_lookalikes": "true"}))
    assert plain.source != hard.source and hard.source.endswith("-lookalikes")
    assert plain.num_classes == hard.num_classes == 2
    faces = synth_faces(4, per_identity=2, lookalikes=True)
    assert (read_face(f"{hard.source}/id_00001/1.png") == faces[3]).all()
    assert not (read_face(f"{plain.source}/id_00001/1.png") == faces[3]).all()
