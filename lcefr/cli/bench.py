"""``lcefr bench``: time .tflite files here or on boards over SSH; ``lcefr jetson-setup``."""
from __future__ import annotations

import os
import sys

import click

from lcefr.cli._common import CliError, echo_json, format_table, json_option
from lcefr.runtime import KERNEL_CHOICES
from lcefr.vocab import BOARD_INTERPRETERS

KERNELS = click.Choice(KERNEL_CHOICES)


def _table(rows, host=None):
    def fmt(v):
        return "-" if v is None else f"{v:.2f}"

    parity = any("parity" in r for r in rows)
    head = ((["host"] if host else []) + ["model", "runtime", "kernel", "threads", "mean ms", "median ms", "p90 ms", "FPS"]
            + (["parity"] if parity else []) + ["status"])
    body = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        status = "ok" if r["status"] == "ok" else f"failed: {r.get('error')}"
        cos = ["-" if r.get("parity") is None else f"{r['parity']:.6f}"] if parity else []
        body.append(([host] if host else []) + [r["model"], r["runtime"], r["kernel"], str(r["threads"]), fmt(lat.get("mean")),
                                                fmt(lat.get("median")), fmt(lat.get("p90")), fmt(r.get("fps"))] + cos + [status])
    return format_table(head, body)


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 256), help="Interpreter threads.")
@click.option("--runs", default=None, type=click.IntRange(1, 100000),
              help="Timed runs per model [default: 20]; with --emulate, the K extra inferences counted [default: 2].")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(0, 10000), help="Untimed runs first.")
@click.option("--kernel", type=KERNELS, default="auto", show_default=True,
              help="LCE binary kernel: auto tries both and reports the faster (a failing one is recorded).")
@click.option("--remote", "remotes", multiple=True, metavar="USER@HOST",
              help="Run on this board over SSH instead (repeatable; hosts run in parallel).")
@click.option("--port", default=22, show_default=True, type=click.IntRange(1, 65535), help="SSH port of --remote hosts.")
@click.option("--key", type=click.Path(dir_okay=False), help="SSH private key for --remote.")
@click.option("--python", "remote_python", default="python3", show_default=True, help="Python on the board (>= 3.6).")
@click.option("--core", default=3, show_default=True, type=int, help="Pin each remote run to this core (taskset); -1: no pinning.")
@click.option("--lce-benchmark", default=None, help="Path of lce_benchmark_model on the board (default: next to the runner or on PATH).")
@click.option("--runtime", type=click.Choice(["auto", "lce_benchmark_model", "python"]), default="auto", show_default=True,
              help="Remote runtime: lce_benchmark_model when found, else the Python runner.")
@click.option("--timeout", default=600.0, show_default=True, type=float, help="Seconds per remote model before it counts as failed.")
@click.option("--tegrastats", is_flag=True, help="Sample tegrastats on the board during each run (Jetson).")
@click.option("--reports", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="Where --remote writes jetson-bench-<host>-<UTC time>.{json,csv,md,png}.")
@click.option("--known-hosts", type=click.Path(dir_okay=False), help="known_hosts file for --remote (default: ssh's own).")
@click.option("--emulate", "emulate_cpu", type=click.Choice(["cortex-a57", "cortex-a53", "cortex-a72", "max"]),
              help="Count instructions per inference on this emulated CPU instead of timing (qemu + counting plugin "
                   "on the emulated board's rootfs; root, builds it on first use).")
@click.option("--float-ops", type=click.Choice(["xnnpack", "builtin"]), default="xnnpack", show_default=True,
              help="With --emulate: float/int8 ops on XNNPACK or on TFLite's builtin kernels.")
@click.option("--interpreter", type=click.Choice(BOARD_INTERPRETERS), default="auto",
              show_default=True,
              help="With --emulate: the board's Python runtime for float/int8 files. auto: int8 files on "
                   "ai-edge-litert (its XNNPACK runs int8 ops; tflite-runtime 2.14's aarch64 wheel leaves them "
                   "to builtin kernels), float files on tflite-runtime.")
@click.option("--trt-onnx", "trt_onnx", multiple=True, metavar="FILE",
              help="With --remote: also build the TensorRT plugin on the board and time this onnx-binary graph "
                   "(convert --to onnx-binary --domain trt) on its GPU, FP32 and FP16, in the same report (repeatable).")
@json_option
def bench(files, threads, runs, warmup, kernel, remotes, port, key, remote_python, core, lce_benchmark, runtime,
          timeout, tegrastats, reports, known_hosts, emulate_cpu, float_ops, interpreter, trt_onnx, as_json):
    """Time FILES (.tflite) and print latency and FPS per model.

    \b
    Locally: LCE flatbuffers run in LCE's interpreter (x86 only; portable kernels, not ARM
    numbers), float and int8 ones in TFLite with XNNPACK, --threads threads.
    With --remote USER@HOST: the files and a small runner are copied to the board and each model
    is timed there in its own SSH session, pinned to --core with one thread: LCE models with
    lce_benchmark_model (or the LCE wheel on x86 boards), others with XNNPACK. One report per
    host in --reports. A failed model or host is a "failed" row; the exit code is then 1.
    --trt-onnx FILE (with --remote): the TensorRT plugin is built on the board and FILE is timed on
    its GPU with trtexec (rows "tensorrt", plugin-fp32/plugin-fp16) after the .tflite rows.
    --remote emulated: the emulated Cortex-A57 board of `lcefr board emulate up` (make board-emu).
    --emulate cortex-a57: instructions per inference under qemu, (count of 1+K runs - count of 1) / K;
    float files on the board's tflite-runtime, int8 files on its ai-edge-litert (--interpreter), LCE
    files with --lce-benchmark (an aarch64 lce_benchmark_model on this machine), else a "skipped" row.
    """
    from lcefr.runtime import check_tflite

    for path in files:
        if not os.path.isfile(path):
            raise CliError(f"model file not found: {path}")
        with open(path, "rb") as f:
            head = f.read(8)
        try:
            check_tflite(head, name=path)
        except ValueError as err:
            raise CliError(str(err)) from None
    for path in trt_onnx:
        if not remotes:
            raise CliError("--trt-onnx needs --remote (TensorRT runs on the board)")
        if not os.path.isfile(path):
            raise CliError(f"ONNX file not found: {path}")
    if emulate_cpu:
        if remotes:
            raise CliError("--emulate counts on this machine: drop --remote")
        failed = _emulate(files, emulate_cpu, runs or 2, float_ops, kernel, lce_benchmark, as_json, interpreter)
    elif remotes:
        runs = runs or 20
        if key and not os.path.isfile(key):
            raise CliError(f"SSH key not found: {key}")
        failed = _remote(files, remotes, port, key, remote_python, core, lce_benchmark, runtime, timeout, tegrastats,
                         reports, known_hosts, threads, runs, warmup, kernel, as_json, trt_onnx)
    else:
        from lcefr.bench.local import bench_files

        runs = runs or 20
        if as_json:
            rows = bench_files(files, threads=threads, runs=runs, warmup=warmup, kernel=kernel)
            echo_json(rows)
        else:
            with click.progressbar(files, label="timing", file=sys.stderr,
                                   item_show_func=lambda p: p and os.path.basename(p)) as bar:
                rows = bench_files(bar, threads=threads, runs=runs, warmup=warmup, kernel=kernel)
            click.echo(_table(rows))
        failed = any(r["status"] != "ok" for r in rows)
    if failed:
        sys.exit(1)


def _emulate(files, cpu, runs, float_ops, kernel, lce_benchmark, as_json, interpreter="auto"):
    from lcefr.board import count, emulate

    if lce_benchmark and not os.path.isfile(lce_benchmark):
        raise CliError(f"--lce-benchmark {lce_benchmark}: no such file (with --emulate it is a path on this machine)")
    say = (lambda _m: None) if as_json else (lambda m: click.echo(f"  {m}", err=True))
    try:
        rows = count.count_files(files, cpu=cpu, runs=runs, float_ops=float_ops, kernel=kernel, lce_benchmark=lce_benchmark,
                                 progress=say, runtime=interpreter)
    except emulate.CannotEmulate as err:
        raise CliError(str(err)) from None
    except emulate.BoardError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    if as_json:
        echo_json(rows)
    else:
        body = [[r["model"], r["runtime"], r["kernel"], r["float_ops"], r["cpu"],
                 "-" if r["instructions"] is None else f"{r['instructions'] / 1e6:.2f} M",
                 r["status"] if r["status"] == "ok" else f"{r['status']}: {r['error']}"] for r in rows]
        click.echo(format_table(["model", "runtime", "kernel", "float ops", "cpu", "instructions/inference", "status"], body))
    return any(r["status"] == "failed" for r in rows)


def _targets(remotes, port, key, remote_python, known_hosts):
    """SSH targets; ``emulated`` is the running emulated board (its own port, key, known_hosts, Python)."""
    from lcefr.board.ssh import SSHTarget

    targets = []
    for spec in remotes:
        for host in spec.split():
            if host == "emulated":
                from lcefr.board import emulate

                try:
                    targets.append(emulate.target())
                except emulate.BoardNotRunning as err:
                    raise CliError(str(err)) from None
            else:
                targets.append(SSHTarget(host, port=port, key=key, python=remote_python, known_hosts=known_hosts))
    return targets


def _remote(files, remotes, port, key, remote_python, core, lce_benchmark, runtime, timeout, tegrastats, reports,
            known_hosts, threads, runs, warmup, kernel, as_json, trt_onnx=()):
    from lcefr.board.lce import BenchOptions, bench_hosts

    targets = _targets(remotes, port, key, remote_python, known_hosts)
    options = BenchOptions(threads=threads, runs=runs, warmup=warmup, kernel=kernel, core=None if core < 0 else core,
                           lce_benchmark=lce_benchmark, runtime=runtime, timeout=timeout, tegrastats=tegrastats)
    if trt_onnx:
        from lcefr.board.trt import TrtOptions, trt_step

        options.extra_steps.append(trt_step(list(trt_onnx), TrtOptions(timeout=timeout)))
    say = (lambda _m: None) if as_json else (lambda m: click.echo(f"  timing {m}", err=True))
    results = bench_hosts(targets, list(files), options, reports, progress=say)
    if as_json:
        echo_json([dict(r.to_dict(), reports=r.paths) for r in results])
    else:
        for r in results:
            click.echo(f"{r.host}: {r.machine.get('board') or r.machine.get('cpu') or '?'} "
                       f"({r.machine.get('arch', '?')}){' - ' + r.error if r.error else ''}")
            click.echo(_table(r.results))
            for ext in ("json", "csv", "md", "png"):
                if ext in r.paths:
                    click.echo(f"  report: {r.paths[ext]}")
    return any(r.failed for r in results)


@click.command("jetson-setup")
@click.argument("hosts", nargs=-1)
@click.option("--local", is_flag=True, help="Check this machine instead of USER@HOST boards.")
@click.option("--port", default=22, show_default=True, type=click.IntRange(1, 65535))
@click.option("--key", type=click.Path(dir_okay=False), help="SSH private key.")
@click.option("--python", "remote_python", default="python3", show_default=True, help="Python on the board.")
@click.option("--known-hosts", type=click.Path(dir_okay=False), help="known_hosts file (default: ssh's own).")
@click.option("--dry-run", is_flag=True, help="Detect and print the plan; change nothing on the board.")
@click.option("--no-clocks", is_flag=True, help="Leave nvpmodel / jetson_clocks alone.")
@click.option("--workdir", default="~/lcefr", show_default=True, help="Where lce_benchmark_model goes on the board.")
@click.option("--lce-benchmark", "given", type=click.Path(exists=True, dir_okay=False),
              help="Copy this lce_benchmark_model (an ARM build on this machine) to the board instead of downloading or building one.")
@click.option("--release-url", default=None, metavar="URL",
              help="Base URL of LCE's release binaries [default: LCEFR_LCE_RELEASE_URL, else LCE's GitHub releases].")
@click.option("--check-model", type=click.Path(dir_okay=False), default="build/models/quicknet_small.tflite",
              show_default=True, help="After setup, time this LCE file once and hold it against lcefr estimate (skipped if absent).")
@click.option("--strict", is_flag=True, help="Exit 1 when the board misses its expectation (default: information only).")
@json_option
def jetson_setup(hosts, local, port, key, remote_python, known_hosts, dry_run, no_clocks, workdir, given, release_url,
                 check_model, strict, as_json):
    """Check boards (architecture, glibc, Python) and give them an lce_benchmark_model.

    \b
    glibc >= 2.34: LCE's release binary for the converter's LCE version is downloaded.
    Older glibc (a Jetson Nano on JetPack 4 has 2.27): LCE is built natively with CMake.
    Jetsons are set to nvpmodel -m 0 and jetson_clocks when sudo allows it; the clocks are printed.
    A host that is not an ARM board exits 2 with "not an ARM board".
    HOST "emulated" is the emulated Cortex-A57 board (make board-emu).
    """
    from lcefr.board.setup import run_setup

    if not hosts and not local:
        raise CliError("give USER@HOST boards, or --local")
    targets = [None] if local else _targets(hosts, port, key, remote_python, known_hosts)
    plans, exit_code = run_setup(targets, python=remote_python, dry_run=dry_run, clocks=not no_clocks, workdir=workdir,
                                 url=release_url, given=given)
    if not dry_run and check_model and os.path.isfile(check_model):
        from lcefr.board.setup import expectation_check

        for plan, target in zip(plans, targets):
            if plan.get("status") == "ok" and target is not None:
                plan["expectation"] = expectation_check(target, check_model, workdir=workdir)
                if strict and plan["expectation"]["status"] in ("miss", "failed"):
                    exit_code = max(exit_code, 1)
    if as_json:
        echo_json(plans)
    else:
        for p in plans:
            if p["status"] in ("not_arm", "failed") and "steps" not in p:
                click.echo(f"{p['host']}: {p['error']}", err=True)
                continue
            f = p["facts"]
            click.echo(f"{p['host']}: {f.get('board') or ', '.join(f['cpu_names'])} ({f['arch']}, glibc {f['glibc']}, "
                       f"Python {f['python']}, {f['cores']} cores{', emulated' if f.get('emulated') else ''})")
            click.echo(f"  lce_benchmark_model: {f.get('lce_benchmark_model') or 'none on the board'}")
            click.echo(f"  plan: {p['benchmark_source']} - {p['reason']}")
            for w in p["warnings"]:
                click.echo(f"  warning: {w}")
            done = {i: e for i, e in enumerate(p.get("log", []))}
            for i, step in enumerate(p["steps"]):
                if dry_run:
                    verb = "would run"
                elif i not in done:
                    verb = "not run"
                else:
                    verb = "ran" if done[i]["exit"] == 0 else f"failed (exit {done[i]['exit']})"
                click.echo(f"  {verb}: {step}")
            if p.get("expectation"):
                click.echo(f"  expectation: {p['expectation']['line']}")
            if p.get("error"):
                click.echo(f"  {p['error']}", err=True)
    if exit_code:
        sys.exit(exit_code)
