"""``lcefr train``: margin-head training of a registry backbone, with distillation and resume."""
from __future__ import annotations

import os

import click

from lcefr.cli._common import CliError, echo_json, json_option
from lcefr.vocab import DISTILL_LOSSES, HEAD_NAMES, OPTIMIZERS, STRATEGIES

# CLI option -> config key; None values are "not given" and leave the config/YAML value alone.
_OPTION_KEYS = ("model", "data", "head", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "teacher",
                "distill", "init_from", "seed", "strategy", "steps_per_epoch")


@click.command()
@click.option("--model", help="Registry model name (see `lcefr models list`).")
@click.option("--data", help="Identity image folder, insightface RecordIO folder, or 'synthetic' (default).")
@click.option("--head", type=click.Choice(HEAD_NAMES), help="Margin head (default arcface).")
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--batch-size", type=click.IntRange(min=1), help="Global batch size.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS),
              help="sgd (momentum 0.9) or adam; bop flips binary weights (Adam for the float ones).")
@click.option("--lr", type=float, help="Peak learning rate of the warm-up + cosine schedule.")
@click.option("--weight-decay", type=float, help="L2 decay of float kernels (not binary latent weights).")
@click.option("--val-bin", multiple=True, type=click.Path(), help=".bin set evaluated after every epoch (repeatable).")
@click.option("--teacher", type=click.Path(), help="Frozen full-precision backbone file to distill from.")
@click.option("--distill", type=click.Choice(DISTILL_LOSSES), help="Distillation loss (needs --teacher).")
@click.option("--init-from", type=click.Path(), help="Start from a backbone file with the same layer names (e.g. a float twin).")
@click.option("--config", "config_file", type=click.Path(), help="YAML file of config keys; options and key=value win over it.")
@click.option("--seed", type=int)
@click.option("--strategy", type=click.Choice(STRATEGIES), help="tf.distribute strategy.")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), help="Default: images // batch size.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder (config.yaml, history.json, backbone.keras).")
@click.option("--benchmark", is_flag=True, help="Print images/s of the input pipeline and of the training step, then exit.")
@click.argument("overrides", nargs=-1)
@json_option
def train(config_file, out_dir, benchmark, overrides, as_json, **options):
    """Train a face backbone with a margin head; rerun the same command to resume.

    \b
    Writes OUT/config.yaml, OUT/history.json (one record per finished epoch), OUT/backbone.keras
    (what `lcefr eval` and `lcefr convert` take) and OUT/tensorboard. Killing the run and
    repeating the command continues from the last finished epoch.
    Extra key=value arguments set any config key (e.g. synth_identities=200 scale=16).
    """
    from lcefr.train.config import apply_overrides, load_config, parse_overrides
    from lcefr.train.fit import benchmark as run_benchmark, prepare, run_training

    config = load_config(config_file)
    given = {k: v for k, v in options.items() if k in _OPTION_KEYS and v is not None}
    if options.get("val_bin"):
        given["val_bin"] = list(options["val_bin"])
    config = apply_overrides(config, {**given, **parse_overrides(overrides)}).validate()
    if benchmark:
        result = run_benchmark(config)
        if as_json:
            echo_json(result)
        else:
            click.echo(f"{config.model}, batch {config.batch_size}: input pipeline {result['pipeline_images_per_s']} "
                       f"images/s, training step {result['step_images_per_s']} images/s")
        return
    if not out_dir:
        raise CliError("--out DIR is required (the run folder)")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CliError(f"--out {out_dir} exists and is not a folder")
    plan = prepare(config, progress=None)
    click.echo(f"{config.model}: {plan.num_images} images of {plan.num_classes} identities ({plan.kind}), "
               f"{plan.steps_per_epoch} steps x {config.epochs} epochs -> {out_dir}", err=True)
    history = run_training(config, out_dir, plan=plan, verbose=2 if as_json else 1,
                           on_message=lambda m: click.echo(m, err=True))
    last = history["epochs"][-1] if history and history.get("epochs") else {}
    if as_json:
        echo_json({"out": out_dir, "complete": history.get("complete"), "epochs": len(history["epochs"]), "last": last})
    else:
        vals = ", ".join(f"{k} {100 * v:.2f}%" for k, v in last.items() if k.startswith("val_"))
        click.echo(f"done: {len(history['epochs'])} epochs, loss {last.get('loss', float('nan')):.4f}"
                   + (f", {vals}" if vals else "") + f" -> {os.path.join(out_dir, 'backbone.keras')}")
