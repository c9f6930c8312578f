"""Hard negatives for generated held-out sets: look-alike people and `make-bin --negatives lookalike`."""
import dataclasses

import numpy as np
import pytest

from cli_helpers import json_output, run
from lcefr.data.binset import read_bin
from lcefr.data.pairs import synthetic_bin
from lcefr.data.synth import LOOKALIKE_SHARED, IdentityParams, identity_rng, lookalike_identity, synth_identity


def test_lookalike_keeps_colouring_and_hair_and_takes_the_donor_geometry():
    base = synth_identity(identity_rng(0, 1))
    donor = synth_identity(identity_rng(0, 2))
    twin = lookalike_identity(base, donor)
    names = {f.name for f in dataclasses.fields(IdentityParams)}
    assert LOOKALIKE_SHARED < names
    for name in names:
        want = getattr(base, name) if name in LOOKALIKE_SHARED else getattr(donor, name)
        assert getattr(twin, name) == want, name
    assert twin != base and twin != donor


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("lookalike")
    common = dict(pairs=40, seed=4, identities=8, per_identity=4)
    synthetic_bin(str(d / "random.bin"), **common)
    summary = synthetic_bin(str(d / "hard.bin"), negatives="lookalike", **common)
    return read_bin(str(d / "random.bin")), read_bin(str(d / "hard.bin")), summary


def test_lookalike_bin_changes_only_the_second_face_of_mismatched_pairs(two_sets):
    easy, hard, summary = two_sets
    assert summary["negatives"] == "lookalike" and summary["pairs"] == 40
    assert np.array_equal(easy.issame, hard.issame) and hard.issame.sum() == 20
    for i, same in enumerate(hard.issame):
        a_easy, b_easy = easy.images[2 * i], easy.images[2 * i + 1]
        a_hard, b_hard = hard.images[2 * i], hard.images[2 * i + 1]
        assert np.array_equal(a_easy, a_hard)
        assert np.array_equal(b_easy, b_hard) == bool(same)


def test_lookalike_negatives_are_closer_in_colour_than_random_ones(two_sets):
    """The shared skin and hair make a look-alike's mean colour much nearer its base person's."""
    easy, hard, _ = two_sets
    neg = ~hard.issame

    def colour_gap(vs):
        means = vs.images.reshape(len(vs.images), -1, 3).mean(1)
        return np.linalg.norm(means[0::2] - means[1::2], axis=1)[neg].mean()

    assert colour_gap(hard) < 0.7 * colour_gap(easy)


def test_make_bin_negatives_option(tmp_path):
    out = tmp_path / "hard.bin"
    result = run("data", "make-bin", "synthetic", "--pairs", 20, "--negatives", "lookalike", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert json_output(result.output)["negatives"] == "lookalike" and read_bin(str(out)).pairs == 20
    folder = tmp_path / "faces"
    folder.mkdir()
    result = run("data", "make-bin", folder, "--pairs", 10, "--negatives", "lookalike", "--out", tmp_path / "x.bin")
    assert result.exit_code == 2 and "applies to 'synthetic' only" in result.output
    assert not (tmp_path / "x.bin").exists()


def test_lookalike_pairs_in_generated_training_faces():
    from lcefr.data.synth import lookalike_pair_identity, synth_faces

    assert lookalike_pair_identity(3, 4) == synth_identity(identity_rng(3, 4))
    twin = lookalike_pair_identity(3, 5)
    base, own = synth_identity(identity_rng(3, 4)), synth_identity(identity_rng(3, 5))
    assert twin == lookalike_identity(base, own)
    plain = synth_faces(8, seed=3, per_identity=2)
    hard = synth_faces(8, seed=3, per_identity=2, lookalikes=True)
    assert np.array_equal(plain[:2], hard[:2]) and np.array_equal(plain[4:6], hard[4:6])  # identities 0 and 2
    assert not np.array_equal(plain[2:4], hard[2:4])  # identity 1 is now identity 0's look-alike


def test_personal_config_draws_lookalike_training_pairs():
    from lcefr.data.synth import synth_faces
    from lcefr.personal.train import PersonalConfig, load_images

    config = PersonalConfig.from_dict({"synth_identities": 4, "synth_per_identity": 2, "synth_lookalikes": True,
                                       "seed": 1, "batch_identities": 2})
    images, labels = load_images("synthetic", config=config)
    assert np.array_equal(images, synth_faces(8, seed=1, per_identity=2, lookalikes=True))
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
