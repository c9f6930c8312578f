"""Benchmark ``.tflite`` files on boards over SSH (``lcefr bench --remote``, ``make jetson-bench``).

Per host: read the machine facts, copy the runner (:mod:`lcefr.board.runner`, with
:mod:`lcefr.runtime` as ``lcefr/runtime.py`` next to it) and the models to a fresh work directory, then time each model in its own SSH session pinned to one core
(``taskset -c CORE``, one thread). A model whose session fails (unreachable host, refused key,
missing binary, a crash, a timeout, the connection dropped) becomes a ``"failed"`` row with the
error; finished rows are kept and the reports are always written. Hosts run in parallel.

Parity: the Python runner also runs :func:`lcefr.runtime.probe_input` once and returns the first
output; the host runs the same file on the same input (TensorFlow / the LCE wheel) and reports the
cosine similarity as the row's ``parity``. A float file below :data:`FLOAT_PARITY_MIN` is a failed
row; int8 and LCE files report parity only (their kernels may round differently on ARM).
"""
from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from lcefr import runtime
from lcefr.board import runner
from lcefr.board.expect import FLAG_FACTOR, add_expectations
from lcefr.board.ssh import SSHTarget, why
from lcefr.fileio import write_atomic
from lcefr.runtime import model_name

__all__ = ["BenchOptions", "HostReport", "bench_hosts", "bench_host", "write_reports", "SEED_JETSON_FPS", "seed_fps",
           "RUNNER_PATH", "RUNTIME_PATH", "FLOAT_PARITY_MIN", "host_output", "cosine", "add_parity"]

#: the runner and the one module of lcefr it imports; the board gets ``runner.py`` and ``lcefr/runtime.py``
RUNNER_PATH = os.path.abspath(runner.__file__)
RUNTIME_PATH = os.path.abspath(runtime.__file__)
ROW_PREFIX = runner.ROW_PREFIX
COLUMNS = ("host", "model", "runtime", "kernel", "threads", "mean_ms", "median_ms", "p90_ms", "min_ms",
           "fps", "size_bytes", "peak_rss_mb", "parity", "status", "error")
#: a float file's on-board output must have at least this cosine similarity with the host's
FLOAT_PARITY_MIN = 0.999

#: Seed 001 (Table 2): FPS on one Cortex-A57 core of a Jetson Nano, LCE, trained models.
SEED_JETSON_FPS = {
    "binary_densenet45": 0.16,
    "binary_densenet37": 0.22,
    "binary_densenet28": 0.27,
    "quicknet": 0.55,
    "quicknet_small": 0.86,
    "binaryfacenet": 6.25,
}


def seed_fps(model_name: str) -> Optional[float]:
    """The seed's Jetson FPS for a file like ``quicknet_small.tflite`` (LCE files only; variants
    such as ``_lce`` map to their published model)."""
    stem = os.path.basename(model_name)
    for suffix in (".tflite",):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    if "." in stem:  # quicknet.float / quicknet.int8: not what the seed timed
        return None
    stem = stem[:-4] if stem.endswith("_lce") else stem
    return SEED_JETSON_FPS.get(stem)


@dataclass
class BenchOptions:
    threads: int = 1
    runs: int = 20
    warmup: int = 3
    kernel: str = "auto"
    core: Optional[int] = 3
    lce_benchmark: Optional[str] = None
    runtime: str = "auto"
    timeout: float = 600.0
    tegrastats: bool = False
    keep: bool = False
    #: ``step(target, report, workdir, say)`` run after the .tflite rows (e.g. TensorRT rows of
    #: :func:`lcefr.board.trt.trt_step`); ``workdir`` is None when the host failed before it existed
    extra_steps: List[Callable] = field(default_factory=list)


@dataclass
class HostReport:
    host: str
    label: str
    started_utc: str
    machine: Dict = field(default_factory=dict)
    results: List[Dict] = field(default_factory=list)
    error: Optional[str] = None
    paths: Dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.error is not None or any(r.get("status") != "ok" for r in self.results)

    def to_dict(self) -> Dict:
        out = {"host": self.host, "started_utc": self.started_utc, "machine": self.machine, "results": self.results}
        if self.error:
            out["error"] = self.error
        return out


def _failed_row(model: str, size: int, error: str, options: BenchOptions) -> Dict:
    return {"model": model, "runtime": "none", "kernel": options.kernel, "threads": options.threads,
            "latency_ms": {"mean": None, "median": None, "p90": None, "min": None}, "fps": 0.0,
            "size_bytes": size, "peak_rss_mb": 0.0, "status": "failed", "error": error, "float_ops": None,
            "parity": None}


@functools.lru_cache(maxsize=32)
def _host_output_cached(path: str, mtime_ns: int, size: int, kernel: str) -> Tuple[Tuple[float, ...], str]:
    with open(path, "rb") as f:
        buffer = f.read()
    if runtime.is_lce_model(buffer):
        interpreter = runtime.lce_interpreter(buffer, threads=1, kernel=kernel if kernel in runtime.KERNELS else "indirect")
        kind = "lce"
    else:
        import numpy as np  # with TensorFlow: only where the host checks a board's output

        interpreter = runtime.tflite_interpreter(buffer, threads=1)
        quantized = any(np.dtype(t["dtype"]).name in ("int8", "uint8") for t in interpreter.get_tensor_details())
        kind = "int8" if quantized else "float"
    output = runtime.probe_output(interpreter)
    if output is None:
        raise RuntimeError("the host's interpreter returned no output")
    return tuple(output), kind


def host_output(path: str, kernel: str = "indirect") -> Tuple[List[float], str]:
    """``path`` run here on :func:`lcefr.runtime.probe_input`: its first output (as the runner returns
    it) and the file's kind, "lce", "int8" (any int8 / uint8 tensor) or "float"."""
    stat = os.stat(path)
    output, kind = _host_output_cached(os.path.abspath(path), stat.st_mtime_ns, stat.st_size, kernel)
    return list(output), kind


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two output vectors (1.0 for two zero vectors, 0.0 for one); NaN when an
    output is not finite. ValueError when the sizes differ."""
    if len(a) != len(b):
        raise ValueError(f"output sizes differ: board {len(a)}, host {len(b)}")
    dot = sum(x * y for x, y in zip(a, b))
    norm_a = math.sqrt(sum(x * x for x in a))
    norm_b = math.sqrt(sum(y * y for y in b))
    if not (math.isfinite(dot) and math.isfinite(norm_a) and math.isfinite(norm_b)):
        return float("nan")
    if norm_a == 0.0 or norm_b == 0.0:
        return 1.0 if norm_a == norm_b else 0.0
    return max(-1.0, min(1.0, dot / (norm_a * norm_b)))


def add_parity(row: Dict, model_path: str) -> Dict:
    """Replace the board's ``output`` in ``row`` with ``parity``, the cosine similarity with this host's
    output of the same file (None without a board output; None and ``parity_error`` when the host
    cannot run the file). A float file below FLOAT_PARITY_MIN fails the row."""
    board = row.pop("output", None)
    board_error = row.pop("output_error", None)
    row["parity"] = None
    if board_error:
        row["parity_error"] = f"no output on the board: {board_error}"
    if board is None or row.get("status") != "ok":
        return row
    try:
        host, kind = host_output(model_path, row.get("kernel") or "indirect")
        similarity = cosine(board, host)
    except Exception as err:  # noqa: BLE001 - the host's check must not lose the board's row
        row["parity_error"] = f"host: {type(err).__name__}: {err}"
        return row
    if not math.isfinite(similarity):
        row["parity_error"] = "an output is not finite (NaN or inf)"
        similarity_text = "nan"
    else:
        row["parity"] = round(similarity, 6)
        similarity_text = f"{similarity:.6f}"
    if kind == "float" and not (math.isfinite(similarity) and similarity >= FLOAT_PARITY_MIN):
        row["status"] = "failed"
        row["error"] = f"on-board output differs from the host's: cosine {similarity_text} < {FLOAT_PARITY_MIN}"
    return row


def _run_extra_steps(target: SSHTarget, report: HostReport, workdir: Optional[str], options: BenchOptions, say) -> None:
    for step in options.extra_steps:
        try:
            step(target, report, workdir, say)
        except Exception as err:  # noqa: BLE001 - a step bug must not lose the rows already measured
            report.error = report.error or f"extra step {getattr(step, '__name__', step)} failed: {err!r}"


def bench_host(target: SSHTarget, models: Sequence[str], options: BenchOptions,
               progress: Optional[Callable[[str], None]] = None) -> HostReport:
    """Time ``models`` on one host. Never raises for a host or model problem: it is in the report."""
    say = progress or (lambda _msg: None)
    report = HostReport(host=target.host, label=target.label,
                        started_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    names = [model_name(m) for m in models]
    sizes = [os.path.getsize(m) if os.path.exists(m) else 0 for m in models]

    def fail_all(error: str, start: int = 0) -> HostReport:
        report.error = report.error or error
        for name, size in list(zip(names, sizes))[start:]:
            report.results.append(_failed_row(name, size, error, options))
        _run_extra_steps(target, report, None, options, say)
        return report

    py = shlex.quote(target.python)
    try:
        proc = target.run("d=$(mktemp -d /tmp/lcefr-bench.XXXXXX) && mkdir $d/lcefr && echo $d", timeout=60)
        if proc.returncode != 0:
            return fail_all(f"cannot reach {target.host}: {why(proc)}")
        workdir = proc.stdout.strip().splitlines()[-1]
        put = target.put([RUNNER_PATH, *models], workdir, timeout=max(120.0, options.timeout))
        if put.returncode == 0:
            put = target.put([RUNTIME_PATH], f"{workdir}/lcefr", timeout=120.0)
        if put.returncode != 0:
            return fail_all(f"copying models to {target.host}:{workdir} failed: {why(put)}")
        bench_flag = f" --lce-benchmark {shlex.quote(options.lce_benchmark)}" if options.lce_benchmark else ""
        proc = target.run(f"cd {workdir} && {py} runner.py machine{bench_flag}", timeout=60)
        if proc.returncode != 0:
            return fail_all(f"runner does not start on {target.host} ({target.python}): {why(proc)}")
        report.machine = json.loads(proc.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired as err:
        return fail_all(f"{target.host}: timed out after {err.timeout:.0f} s")
    except (ValueError, IndexError) as err:
        return fail_all(f"{target.host}: unreadable machine facts ({err})")

    pin = ""
    if options.core is not None:
        cores = report.machine.get("cores") or 1
        if not report.machine.get("taskset"):
            report.machine["pinning"] = "taskset missing: not pinned"
        elif options.core >= cores:
            report.machine["pinning"] = f"core {options.core} does not exist ({cores} cores): not pinned"
        else:
            pin = f"taskset -c {int(options.core)} "
            report.machine["pinning"] = f"taskset -c {int(options.core)}"
    use_tegrastats = options.tegrastats and report.machine.get("tegrastats")
    # the board kills a run that overstays (the ssh client is only the backstop): no orphans
    limit = f"timeout -s KILL {max(1, int(options.timeout))} " if report.machine.get("timeout") else ""
    for index, (model, name) in enumerate(zip(models, names)):
        say(f"{target.label}: {name}")
        cmd = (f"cd {workdir} && {limit}{pin}{py} runner.py run --model {shlex.quote(os.path.basename(model))} "
               f"--name {shlex.quote(name)} --threads {options.threads} --runs {options.runs} "
               f"--warmup {options.warmup} --kernel {options.kernel} --runtime {options.runtime} "
               f"--timeout {options.timeout}{bench_flag}")
        # "; exit $status": the shell must not exec the runner, or a killed run ends the SSH
        # session with a signal (ssh exit 255) instead of the exit code 137 of `timeout`
        if use_tegrastats:
            cmd = (f"(tegrastats --interval 500 > {workdir}/{name}.tegrastats 2>&1 &) ; {cmd} ; status=$? ; "
                   f"pkill -f 'tegrastats --interval 500' ; tail -n 2 {workdir}/{name}.tegrastats | sed 's/^/TEGRASTATS /' ; "
                   "exit $status")
        else:
            cmd = f"{cmd} ; exit $?"
        try:
            proc = target.run(cmd, timeout=options.timeout + 30)
        except subprocess.TimeoutExpired:
            report.results.append(_failed_row(name, sizes[index], f"timed out after {options.timeout + 30:.0f} s", options))
            continue
        rows = [line[len(ROW_PREFIX):] for line in proc.stdout.splitlines() if line.startswith(ROW_PREFIX)]
        if proc.returncode == 137 and limit:
            report.results.append(_failed_row(name, sizes[index], f"timed out after {options.timeout:.0f} s (killed on the board)", options))
            continue
        if proc.returncode != 0 or not rows:
            report.results.append(_failed_row(name, sizes[index], why(proc), options))
            continue
        row = add_parity(json.loads(rows[-1]), model)
        tegra = [line[len("TEGRASTATS "):] for line in proc.stdout.splitlines() if line.startswith("TEGRASTATS ")]
        if tegra:
            row["tegrastats"] = tegra
        report.results.append(row)
    add_expectations(report, dict(zip(names, models)))
    _run_extra_steps(target, report, workdir, options, say)
    if not options.keep:
        try:
            target.run(f"rm -rf {workdir}", timeout=30)
        except (subprocess.TimeoutExpired, OSError):
            pass
    return report


def _csv_text(report: HostReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for r in report.results:
        lat = r.get("latency_ms") or {}
        writer.writerow([report.host, r.get("model"), r.get("runtime"), r.get("kernel"), r.get("threads"),
                         lat.get("mean"), lat.get("median"), lat.get("p90"), lat.get("min"), r.get("fps"),
                         r.get("size_bytes"), r.get("peak_rss_mb"), r.get("parity"), r.get("status"), r.get("error") or ""])
    return buffer.getvalue()


def _md_text(report: HostReport) -> str:
    m = report.machine
    emulated = m.get("emulated")
    if emulated:
        details = ", ".join(f"{k} {v}" for k, v in emulated.items() if k != "emulated") if isinstance(emulated, dict) else ""
        emulated = f", emulated ({details})" if details else ", emulated"
    lines = [f"# lcefr bench on {report.host}", "",
             f"Started {report.started_utc}; {m.get('board') or m.get('cpu') or 'unknown machine'} "
             f"({m.get('arch', '?')}, glibc {m.get('glibc', '?')}, Python {m.get('python', '?')}){emulated or ''}; "
             f"{m.get('pinning', 'not pinned')}.", ""]
    if report.error:
        lines += [f"**Host error:** {report.error}", ""]
    lines += ["| model | runtime | kernel | threads | mean ms | median ms | p90 ms | expected ms | FPS | seed Jetson FPS | "
              "peak RSS MB | parity | status |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(v):
        return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    for r in report.results:
        lat = r.get("latency_ms") or {}
        status = r.get("status") if r.get("status") == "ok" else f"failed: {r.get('error')}"
        exp = r.get("expected_ms")
        expected = f"{exp['low']:.1f}-{exp['high']:.1f}" if exp else "-"
        lines.append(f"| `{r.get('model')}` | {r.get('runtime')} | {r.get('kernel')} | {r.get('threads')} | "
                     f"{fmt(lat.get('mean'))} | {fmt(lat.get('median'))} | {fmt(lat.get('p90'))} | {expected} | {fmt(r.get('fps'))} | "
                     f"{fmt(seed_fps(r.get('model', '')))} | {fmt(r.get('peak_rss_mb'))} | "
                     f"{'-' if r.get('parity') is None else format(r['parity'], '.6f')} | {status} |")
    flagged = [r for r in report.results if r.get("flag")]
    if flagged:
        lines += ["", f"**{len(flagged)} of {len(report.results)} rows measured above {FLAG_FACTOR:.0f}x the expected time:**", ""]
        lines += [f"- `{r.get('model')}`: {r['flag']}" for r in flagged]
    expectation = m.get("expectation")
    lines += ["", "Expected ms: lcefr estimate for this board's CPU and clock (instructions / IPC range / clock)"
              + (f"; none here: {expectation}." if expectation else "."),
              "Seed Jetson FPS: seed 001, Table 2 (trained models, one Cortex-A57 core of a Jetson Nano, LCE).",
              f"Parity: cosine similarity of the board's output with this host's for one fixed input "
              f"(lcefr.runtime.probe_input); a float file below {FLOAT_PARITY_MIN} fails."]
    return "\n".join(lines) + "\n"


def _png_bytes(report: HostReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.results
    names = [r.get("model", "?") for r in rows]
    ours = [float(r.get("fps") or 0.0) if r.get("status") == "ok" else 0.0 for r in rows]
    seed = [seed_fps(n) for n in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.5))
    xs = list(range(len(rows)))
    width = 0.4
    ax.bar([x - width / 2 for x in xs], ours, width, label=f"measured on {report.label}", color="#3b75af")
    ax.bar([x + width / 2 for x in xs], [s or 0.0 for s in seed], width, label="seed 001 Jetson Nano (1 A57 core)", color="#ef8636")
    for x, r in zip(xs, rows):
        if r.get("status") != "ok":
            ax.text(x - width / 2, 0, "failed", rotation=90, ha="center", va="bottom", fontsize=8, color="red")
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("frames per second (log)")
    if any(v > 0 for v in ours + [s or 0 for s in seed]):
        ax.set_yscale("log")
    ax.set_title(f"FPS per model, {report.machine.get('cpu') or report.label}, {report.results[0].get('threads', 1) if rows else 1} thread")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def write_reports(report: HostReport, out_dir: str, *, stamp: Optional[str] = None) -> Dict[str, str]:
    """``out_dir/jetson-bench-<label>-<YYYYmmddTHHMMSSZ>.{json,csv,md,png}``, each written atomically."""
    os.makedirs(out_dir, exist_ok=True)
    stamp = stamp or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(out_dir, f"jetson-bench-{report.label}-{stamp}")
    payloads = {
        "json": (json.dumps(report.to_dict(), indent=2) + "\n").encode(),
        "csv": _csv_text(report).encode(),
        "md": _md_text(report).encode(),
    }
    try:
        payloads["png"] = _png_bytes(report)
    except ImportError:
        pass  # matplotlib is the [plot] extra
    for ext, data in payloads.items():
        write_atomic(f"{base}.{ext}", data)
        report.paths[ext] = f"{base}.{ext}"
    return report.paths


def bench_hosts(targets: Sequence[SSHTarget], models: Sequence[str], options: BenchOptions, out_dir: str,
                progress: Optional[Callable[[str], None]] = None) -> List[HostReport]:
    """All hosts in parallel; each host's reports are written as soon as it finishes."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    def one(target: SSHTarget) -> HostReport:
        start = time.time()
        report = bench_host(target, models, options, progress)
        report.machine.setdefault("bench_wall_s", round(time.time() - start, 1))
        write_reports(report, out_dir, stamp=stamp)
        return report

    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        return list(pool.map(one, targets))
