"""``lcefr convert`` and ``lcefr inspect``."""
from __future__ import annotations

import os
import warnings

import click

from lcefr.cli._common import CliError, echo_json, format_table, json_option
from lcefr.vocab import DELEGATION_RUNTIMES, ONNX_DOMAINS, TARGETS

TARGET_CHOICE = click.Choice(TARGETS)


def _calibration(directory, count):
    from lcefr.eval.parity import face_inputs
    from lcefr.data import load_faces

    if directory:
        return load_faces(directory, limit=count)
    click.echo("note: no --calibration DIR given; calibrating int8 ranges on generated faces "
               "(ranges from your own aligned faces are better)", err=True)
    return face_inputs((112, 112, 3), n=count, seed=123)


@click.command()
@click.argument("source")
@click.option("--to", "target", type=TARGET_CHOICE, required=True, help="Output format.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output file.")
@click.option("--weights", type=click.Path(), help="Weights for a registry SOURCE (default: random init).")
@click.option("--calibration", type=click.Path(), help="Folder of aligned 112x112 faces for int8 ranges.")
@click.option("--calibration-size", default=64, show_default=True, help="Images used for int8 calibration.")
@click.option("--no-verify", is_flag=True, help="Skip the parity and op-audit checks (not recommended).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random init of a registry SOURCE.")
@click.option("--domain", type=click.Choice(list(ONNX_DOMAINS)), default="ai.onnx.contrib", show_default=True,
              help="onnx-binary: custom-op domain (ai.onnx.contrib for onnxruntime, trt = empty domain for TensorRT).")
@click.option("--float-islands/--no-float-islands", default=True, show_default=True,
              help="tflite-int8: keep op types XNNPACK has no int8 kernel for (PReLU) in float between "
                   "DEQUANTIZE/QUANTIZE, so every op stays on XNNPACK.")
@json_option
def convert(source, target, output, weights, calibration, calibration_size, no_verify, seed, domain, float_islands,
            as_json):
    """Convert SOURCE (a registry name or a saved .keras/.h5/SavedModel) to TARGET.

    \b
    tflite        LCE flatbuffer, binary layers as bitpacked LceBconv2d ops
    tflite-float  plain TFLite, every layer in float (the speed baseline)
    tflite-int8   TFLite post-training int8 (float I/O; binary models keep float SIGN islands; ops
                  XNNPACK has no int8 kernel for, PReLU, stay float too: --no-float-islands)
    onnx          float ONNX (opset 13) through tf2onnx
    onnx-binary   ONNX with one BinaryConv2d node per binary conv (bit-packed weights), run here by
                  onnxruntime-extensions through lcefr's C reference; --domain trt for TensorRT

    Every conversion is checked against the Keras model on 16 probe images (uniform noise for a
    random-init registry model; generated faces for a trained model and for int8, whose ranges are
    calibrated on faces) (mean cosine >= 0.999,
    worst face >= 0.979; int8 >= 0.98 on full-precision models, reported on binary ones) and, for tflite, every
    sign-quantized Keras convolution must be an LceBconv2d. A failed check exits 1 and writes
    nothing. tflite-int8 warns, naming them, about ops TensorFlow's XNNPACK delegate leaves to
    builtin kernels (ai-edge-litert places int8 ops the same way on aarch64 boards).
    """
    from lcefr.convert.api import ConversionCheckError, convert as run_convert
    from lcefr.source import load_source
    from lcefr.fileio import write_atomic

    if os.path.isdir(output):
        raise CliError(f"output {output} is a directory")
    src = load_source(source, weights=weights, seed=seed)
    cal = _calibration(calibration, calibration_size) if target == "tflite-int8" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            buffer, result = run_convert(src.model, target=target, name=src.name, lce_native=src.lce_native,
                                         trained=not src.random_init, calibration=cal, verify=not no_verify,
                                         domain=domain, float_islands=float_islands)
        except ConversionCheckError as err:
            if as_json:
                echo_json({**err.result.to_dict(), "output": None})
            click.echo(f"error: conversion check failed, nothing written: {err}", err=True)
            raise SystemExit(1)
    write_atomic(output, buffer)
    for message in result.warnings:
        click.echo(f"warning: {message}", err=True)
    if as_json:
        echo_json({**result.to_dict(), "output": output})
        return
    parity = result.parity or {}
    ops = result.ops or {}
    click.echo(f"{src.name} -> {output} ({target}, {result.size_bytes / 1024:.0f} KB)")
    if "binary_conv2d" in ops:
        click.echo(f"  BinaryConv2d {ops['binary_conv2d']} for {result.sign_convs} sign-quantized convs (domain {ops['domain']!r})")
    elif ops:
        click.echo(f"  LceBconv2d {ops['lce_bconv2d']} for {result.sign_convs} sign-quantized convs, "
                   f"binary MAC share {ops['binary_mac_share']:.3f}")
    if result.xnnpack:
        x = result.xnnpack
        islands = f"; float islands: {', '.join(result.float_islands)}" if result.float_islands else ""
        click.echo(f"  XNNPACK ({x['runtime']} {x['version']}): {x['ops_xnnpack']}/{x['ops_total']} ops in "
                   f"{x['partitions']} partition(s){islands}")
    if parity:
        click.echo(f"  parity vs Keras on {parity['samples']} faces: mean cosine {parity['cosine_mean']:.6f} "
                   f"(need >= {result.parity_min}{'' if result.parity_enforced else ', reported only'}), "
                   f"worst {parity['cosine_min']:.6f}, max |diff| {parity['max_abs_diff']:.2e}")


@click.command()
@click.argument("target")
@click.option("--lce-lint", is_flag=True, help="TARGET is a registry name or Keras file: list layers LCE will not binarize.")
@click.option("--delegation", is_flag=True,
              help="List which ops a TFLite runtime hands to XNNPACK and which it leaves to builtin kernels.")
@click.option("--runtime", type=click.Choice(DELEGATION_RUNTIMES), default="tensorflow",
              show_default=True,
              help="With --delegation: tensorflow (this machine), or the emulated aarch64 board's tflite-runtime 2.14 "
                   "or ai-edge-litert 1.4 (run under qemu; root).")
@click.option("--all-ops", is_flag=True, help="With --delegation: list every op, not only those off XNNPACK.")
@json_option
def inspect(target, lce_lint, delegation, runtime, all_ops, as_json):
    """Audit a .tflite file (op histogram, LCE binary ops, binary MAC share), or lint a Keras model.

    With --lce-lint, TARGET is a registry name or a Keras model file; the command lists every
    quantized layer that will not become a fast LCE binary op, why, and the fix.

    With --delegation, TARGET is a float or int8 .tflite: each op is placed on XNNPACK (inside a
    delegate partition) or on TFLite's builtin kernels, as --runtime places it. The runtimes differ:
    TensorFlow 2.16 and ai-edge-litert hand int8 ops to XNNPACK, tflite-runtime 2.14's aarch64 wheel
    float ops only. LCE files need LCE's own runtime and are refused.
    """
    if lce_lint:
        _lint(target, as_json)
        return
    if delegation or all_ops or runtime != "tensorflow":  # either option only makes sense with --delegation
        _delegation(target, runtime, all_ops, as_json)
        return
    from lcefr.convert.inspect import inspect_tflite

    if not os.path.isfile(target):
        raise CliError(f"no such file: {target}")
    with open(target, "rb") as f:
        report = inspect_tflite(f.read())
    if as_json:
        echo_json(report.to_dict())
        return
    d = report.to_dict()
    click.echo(f"{target}: {d['size_bytes'] / 1024:.0f} KB")
    for key in ("lce_bconv2d", "bconv_bitpacked_out", "bconv_float_out", "lce_quantize", "lce_dequantize",
                "float_conv", "float_depthwise", "float_fc"):
        click.echo(f"  {key:20s} {d[key]}")
    click.echo(f"  {'binary_mac_share':20s} {d['binary_mac_share']:.4f}  ({d['binary_macs']:,} binary / {d['float_macs']:,} float MACs)")
    click.echo(format_table(["op", "count"], sorted(d["ops"].items(), key=lambda kv: -kv[1])))


def _delegation(target, runtime, all_ops, as_json):
    from lcefr.convert.api import off_path_warning
    from lcefr.convert.delegation import DelegationError, inspect_delegation
    from lcefr.board import emulate
    from lcefr.runtime import check_tflite, is_lce_model

    if not os.path.isfile(target):
        raise CliError(f"no such file: {target}")
    with open(target, "rb") as f:
        buffer = f.read()
    try:
        check_tflite(buffer, name=target)
    except ValueError as err:
        raise CliError(str(err)) from None
    if is_lce_model(buffer):
        raise CliError(f"{target} is an LCE file: its binary ops run on LCE's kernels, which no TFLite runtime has "
                       "(lcefr bench --emulate cortex-a57 --lce-benchmark PATH counts it)")
    try:
        if runtime == "tensorflow":
            report = inspect_delegation(buffer=buffer)
        else:
            from lcefr.board.delegation import board_delegation

            report = board_delegation(target, runtime)
    except (DelegationError, emulate.CannotEmulate, emulate.BoardError) as err:
        raise CliError(str(err)) from None
    d = report.to_dict()
    if as_json:
        if not all_ops:
            d["ops"] = [op for op in d["ops"] if not op["xnnpack"]]
        echo_json({"file": target, **d})
        return
    click.echo(f"{target}: {runtime} {report.version}: {d['ops_xnnpack']}/{d['ops_total']} ops on XNNPACK "
               f"in {d['partitions']} partition(s)")
    rows = [[op.index, op.op, op.dtype, "x".join(map(str, op.shape[1:])) or "-",
             f"XNNPACK #{op.partition}" if op.xnnpack else "builtin"]
            for op in report.ops if all_ops or not op.xnnpack]
    if rows:
        click.echo(format_table(["#", "op", "dtype", "output", "runs on"], rows))
    summary = report.off_path_summary()
    if summary:
        click.echo(off_path_warning(summary, f"{runtime} {report.version}"))
    else:
        click.echo("every op runs on XNNPACK")


def _lint(target, as_json):
    from lcefr.convert.audit import count_sign_convs, lce_lint
    from lcefr.source import load_source

    src = load_source(target)
    findings = lce_lint(src.model)
    if as_json:
        echo_json({"model": src.name, "sign_convs": count_sign_convs(src.model), "findings": [f.to_dict() for f in findings]})
        return
    if not findings:
        click.echo(f"{src.name}: every quantized layer lowers to an LCE binary op ({count_sign_convs(src.model)} convs)")
        return
    click.echo(f"{src.name}: {len(findings)} layer(s) will not run as fast LCE binary ops")
    for f in findings:
        click.echo(f"- {f.layer} ({f.kind}): {f.problem}\n    fix: {f.fix}")
