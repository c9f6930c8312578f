"""Training h_gen: checkpoints, resume, history; the CLI flags for the Table II ablations."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from lcefr.cli import cli
from lcefr.personal.hypernet import load_hypernet
from lcefr.personal.train import train_hypernet

BACKBONE = "test_quicknet"


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, tiny_data, tiny_config):
    from dataclasses import replace

    config = replace(tiny_config, steps=4, checkpoint_every=2)
    out = str(tmp_path / "run")

    def killed_during_step_three(message):  # step 2 was checkpointed, step 3 was not
        if message.startswith("step 3/"):
            raise Interrupt

    with pytest.raises(Interrupt):
        train_hypernet(tiny_data, out, config=config, backbone=BACKBONE, on_message=killed_during_step_three,
                       log_every=1)
    hist = json.load(open(os.path.join(out, "history.json")))
    assert hist["complete"] is False and hist["steps_done"] == 2
    messages = []
    hist = train_hypernet(tiny_data, out, config=config, backbone=BACKBONE, on_message=messages.append, log_every=1)
    assert any("resuming" in m and "step 2" in m for m in messages)
    assert hist["complete"] and hist["steps_done"] == 4 and [r["step"] for r in hist["records"]] == [1, 2, 3, 4]
    again = []
    train_hypernet(tiny_data, out, config=config, backbone=BACKBONE, on_message=again.append)
    assert "nothing to do" in again[0]
    with pytest.raises(ValueError, match="different config"):
        train_hypernet(tiny_data, out, config=replace(config, lr=0.5), backbone=BACKBONE)
    theta = load_hypernet(out).generate(tiny_data.embeddings[:3])
    assert theta.shape == (3, load_hypernet(out).meta["params"]) and np.ptp(theta, axis=0).max() > 0


@pytest.mark.slow
def test_cli_train_passes_the_ablation_flags(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["personal", "train", "--backbone", BACKBONE, "--data", "synthetic", "--out", str(out),
                                 "--no-kcs", "--no-lnorm", "--steps", "2", "synth_identities=4",
                                 "synth_per_identity=2", "batch_identities=4", "hidden=8", "--json"])
    assert r.exit_code == 0, r.output
    meta = json.load(open(out / "personal.json"))
    assert meta["config"]["kcs"] is False and meta["config"]["lnorm"] is False and meta["config"]["steps"] == 2
    assert json.loads(r.stdout)["complete"] is True
