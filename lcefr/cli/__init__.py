"""The ``lcefr`` command line. Commands import TensorFlow lazily so ``lcefr --help`` is instant."""
from __future__ import annotations

import click

from lcefr import __version__
from lcefr.cli._common import Group
from lcefr.cli import quiet
from lcefr.cli.env import env
from lcefr.cli.models import models
from lcefr.cli.demo import demo
from lcefr.cli.convert import convert, inspect
from lcefr.cli.data import data
from lcefr.cli.eval import eval_
from lcefr.cli.train import train
from lcefr.cli.quantize import quantize
from lcefr.cli.bench import bench, jetson_setup
from lcefr.cli.board import board
from lcefr.cli.estimate import estimate
from lcefr.cli.trt import trt
from lcefr.cli.face import align, identify, verify
from lcefr.cli.gallery import gallery
from lcefr.cli.video import run
from lcefr.cli.personal import personal

__all__ = ["cli"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lcefr")
@click.option("--verbose", is_flag=True,
              help="Show TensorFlow/XLA log lines and library warnings (also LCEFR_VERBOSE=1); hidden by default.")
def cli(verbose):
    """lcefr: binarized face recognition, from Larq/Keras models to measured FPS on embedded boards.

    Faces are aligned RGB 112x112 crops, preprocessed as (x - 127.5) / 127.5 outside the model.
    """
    quiet.apply(verbose=verbose)


cli.add_command(env)
cli.add_command(models)
cli.add_command(demo)
cli.add_command(convert)
cli.add_command(inspect)
cli.add_command(data)
cli.add_command(eval_)
cli.add_command(train)
cli.add_command(quantize)
cli.add_command(bench)
cli.add_command(jetson_setup)
cli.add_command(board)
cli.add_command(estimate)
cli.add_command(trt)
cli.add_command(align)
cli.add_command(verify)
cli.add_command(gallery)
cli.add_command(identify)
cli.add_command(run)
cli.add_command(personal)
