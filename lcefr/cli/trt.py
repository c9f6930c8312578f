"""``lcefr trt build`` and ``lcefr trt run``: TensorRT engines of onnx-binary graphs (lcefr.trt.engine)."""
from __future__ import annotations

import functools
import os

import click

from lcefr.cli._common import CliError, Group, echo_json, format_table, json_option

__all__ = ["trt"]

plugin_option = click.option(
    "--plugin", type=click.Path(dir_okay=False),
    help="BinaryConv2d plugin library (default: $LCEFR_TRT_PLUGIN or build/trt/libbinaryconv_plugin.so).")


def _environment_errors(fn):
    """TensorRT / CUDA bindings missing and TensorRT failures: one line on stderr, exit 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from lcefr.trt.engine import CudaBindingsMissing, EngineBuildError, TensorRTMissing

        try:
            return fn(*args, **kwargs)
        except (TensorRTMissing, CudaBindingsMissing, EngineBuildError) as err:
            if os.environ.get("LCEFR_DEBUG"):
                raise
            raise CliError(str(err)) from None
    return wrapper


@click.group(cls=Group)
def trt():
    """TensorRT engines: build from ONNX (BinaryConv2d nodes via the plugin of `make trt`) and time them.

    Export the graph with `lcefr convert X --to onnx-binary --domain trt -o model.onnx`.
    """


@trt.command()
@click.argument("onnx_path", metavar="ONNX", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Engine file to write.")
@click.option("--fp16", is_flag=True, help="Allow FP16 kernels.")
@click.option("--workspace", "workspace_mb", default=1024, show_default=True, help="Builder workspace in MiB.")
@click.option("--batch", default=1, show_default=True, help="Batch size of a dynamic batch dimension.")
@plugin_option
@json_option
@_environment_errors
def build(onnx_path, output, fp16, workspace_mb, batch, plugin, as_json):
    """Build a TensorRT engine from ONNX and write it to OUTPUT."""
    from lcefr.trt.engine import build_engine

    result = build_engine(onnx_path, output, fp16=fp16, plugin=plugin, workspace_mb=workspace_mb, batch=batch)
    if as_json:
        echo_json(result)
        return
    shapes = ", ".join(f"{t['name']} {t['shape']}" for t in result["inputs"])
    click.echo(f"{result['engine']}: {result['bytes']} bytes, TensorRT {result['tensorrt']}, "
               f"{'fp16' if fp16 else 'fp32'}, inputs {shapes}, built in {result['build_s']} s")


@trt.command()
@click.argument("engine_path", metavar="ENGINE", type=click.Path(dir_okay=False))
@click.option("--runs", default=50, show_default=True, help="Timed runs.")
@click.option("--warmup", default=5, show_default=True, help="Untimed runs first.")
@plugin_option
@json_option
@_environment_errors
def run(engine_path, runs, warmup, plugin, as_json):
    """Time ENGINE on random inputs: latency (mean, median, p90, min) and FPS (1000 / mean)."""
    from lcefr.trt.engine import run_engine

    result = run_engine(engine_path, runs=runs, warmup=warmup, plugin=plugin)
    if as_json:
        echo_json(result)
        return
    lat = result["latency_ms"]
    click.echo(format_table(["engine", "mean ms", "median ms", "p90 ms", "min ms", "FPS", "api"],
                            [[os.path.basename(result["engine"]), lat["mean"], lat["median"], lat["p90"], lat["min"],
                              result["fps"], result["api"]]]))
