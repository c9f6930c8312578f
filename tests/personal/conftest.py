import numpy as np
import pytest

BACKBONE = "test_quicknet"  # registry model, random init: enough for the plumbing


@pytest.fixture(scope="session")
def tiny_data():
    """8 generated identities x 2 aligned faces with (random-backbone) embeddings."""
    from lcefr.data.synth import synth_faces
    from lcefr.embed import load_embedder
    from lcefr.eval.verification import l2_normalize
    from lcefr.personal.train import TrainingData

    images = synth_faces(16, seed=5, per_identity=2)
    emb = l2_normalize(load_embedder(BACKBONE).raw(images))
    return TrainingData(images=images, labels=np.repeat(np.arange(8), 2), embeddings=emb, source="synthetic")


@pytest.fixture(scope="session")
def tiny_config():
    from lcefr.personal.train import PersonalConfig

    return PersonalConfig(steps=2, batch_identities=4, doublings=1, warmup=0.5, checkpoint_every=1, hidden=16,
                          synth_identities=8, synth_per_identity=2)


@pytest.fixture(scope="session")
def hypernet_dir(tmp_path_factory, tiny_data, tiny_config):
    from lcefr.personal.train import train_hypernet

    out = tmp_path_factory.mktemp("hyper") / "run"
    train_hypernet(tiny_data, str(out), config=tiny_config, backbone=BACKBONE, on_message=lambda m: None)
    return out
