"""Time ONNX graphs with TensorRT on a board over SSH (``lcefr bench --remote --trt-onnx``, issue 8).

Per host: probe the board (:data:`lcefr.board.facts.PROBE_SCRIPT`: ``nvcc``, ``trtexec``, ``cmake``,
the TensorRT version, the GPU's SM version), copy ``jetson/cuda`` and ``jetson/trt`` to the work directory, build
``libbinaryconv_plugin.so`` there with the board's CUDA and TensorRT for its own SM, then run
``trtexec`` once per graph and precision with the plugin loaded. Rows have the shape of the
``lcefr bench`` rows (``runtime="tensorrt"``, ``kernel="plugin-fp32"|"plugin-fp16"``); latency is
trtexec's *GPU Compute Time* (the host latency with copies is kept as ``host_latency_ms``).

Every problem (no TensorRT, no nvcc, a failed CMake step, a trtexec crash, a timeout, a dropped
connection) becomes ``"failed"`` rows with the reason; nothing is raised to the caller.
:func:`parse_trtexec_output` is pure and tested without a board.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from lcefr.board.facts import BoardFacts, parse_probe, probe_script
from lcefr.board.ssh import why
from lcefr.runtime import fps

__all__ = ["TrtOptions", "TrtJob", "parse_trtexec_output", "trtexec_error", "model_jobs", "run_jobs", "bench_trt",
           "trt_step", "plugin_sources", "failed_rows", "TRT_SOURCE_DIRS"]

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: folders copied to the board, relative to the repository (CMakeLists.txt expects ../cuda next to trt/)
TRT_SOURCE_DIRS = ("jetson/cuda", "jetson/trt")
_SOURCE_EXTS = (".h", ".cu", ".cpp", ".txt")
PLUGIN_NAME = "libbinaryconv_plugin.so"


@dataclass
class TrtOptions:
    """trtexec settings. ``iterations``: minimum timed inferences; ``warmup_ms``: trtexec --warmUp;
    ``duration_s``: --duration (None: trtexec's default, 3 s); ``avg_runs``: --avgRuns."""

    precisions: Tuple[str, ...] = ("fp32", "fp16")
    iterations: int = 200
    warmup_ms: int = 500
    avg_runs: int = 10
    duration_s: Optional[int] = None
    percentile: int = 90
    timeout: float = 900.0
    build_timeout: float = 2400.0
    jobs: int = 2
    tensorrt_root: Optional[str] = None
    cuda_archs: Optional[str] = None  # overrides the detected SM, e.g. "53"
    keep: bool = False


@dataclass
class TrtJob:
    """One trtexec run: ``onnx`` (local path) timed with ``flags`` (e.g. ``["--fp16"]``)."""

    name: str
    onnx: str
    kernel: str
    flags: Tuple[str, ...] = ()
    plugin: bool = True
    shapes: Optional[str] = None
    batch: int = 1
    extra: Dict = field(default_factory=dict)


# ---------------------------------------------------------------- trtexec output

_PREFIX = re.compile(r"^(?:\s*\[[^\]]*\])*\s*")
_ONE_LINE = re.compile(r"^(GPU Compute Time|Latency|Host Latency|End-to-End Host Latency|Enqueue Time|H2D Latency|D2H Latency)"
                       r"\s*:\s*(.*\bmin\b.*)$")
_STAT = re.compile(r"\b(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=?\s*([\d.]+(?:[eE][+-]?\d+)?)\s*ms")
_OLD_SECTIONS = {"Host Latency": "host_latency", "GPU Compute": "gpu_compute", "Enqueue Time": "enqueue"}
_OLD_STAT = re.compile(r"^(min|max|mean|median):\s*([\d.]+(?:[eE][+-]?\d+)?)\s*ms")
_OLD_PCT = re.compile(r"^percentile:\s*([\d.]+(?:[eE][+-]?\d+)?)\s*ms at (\d+(?:\.\d+)?)%")
_KEYS = {"GPU Compute Time": "gpu_compute", "Latency": "host_latency", "Host Latency": "host_latency",
         "End-to-End Host Latency": "end_to_end", "Enqueue Time": "enqueue", "H2D Latency": "h2d", "D2H Latency": "d2h"}


def _pct_key(value: str) -> str:
    number = float(value)
    return f"p{int(number)}" if number.is_integer() else f"p{value}"


def _trt_version(text: str) -> str:
    """``8201`` -> ``8.2.1``, ``100300`` -> ``10.3.0`` (trtexec's banner); dotted text unchanged."""
    if "." in text or len(text) not in (4, 6):
        return text
    major = text[:-3] if len(text) == 4 else text[:2]
    minor, patch = (text[1], text[2:]) if len(text) == 4 else (text[2:4], text[4:])
    return f"{int(major)}.{int(minor)}.{int(patch)}"


def parse_trtexec_output(text: str) -> Dict:
    """Latency statistics from trtexec's performance summary, in ms.

    Understands the one-line form of TensorRT 8.x/10.x (``[I] GPU Compute Time: min = X ms, max = ...,
    mean = X ms, median = X ms, percentile(90%) = X ms``, "=" optional) and the block form of 7.x
    (``[I] GPU Compute`` then ``[I] mean: X ms``, ``[I] percentile: X ms at 99%``); timestamps and
    ``[I]`` prefixes are ignored. Returns ``{"gpu_compute": {min, max, mean, median, p90, ...},
    "host_latency": {...}, ..., "throughput_qps": float|None, "tensorrt": "8.2.1"|None}``.

    Raises:
        ValueError: no GPU compute statistics in ``text`` (the run failed or was cut short).
    """
    out: Dict = {"throughput_qps": None, "tensorrt": None}
    section = None
    for raw in text.splitlines():
        line = _PREFIX.sub("", raw).strip()
        m = _ONE_LINE.match(line)
        if m:
            stats = {}
            for name, pct, value in _STAT.findall(m.group(2)):
                stats[_pct_key(pct) if pct else name] = float(value)
            if "mean" in stats:
                out[_KEYS[m.group(1)]] = stats
            section = None
            continue
        if line in _OLD_SECTIONS:
            section = _OLD_SECTIONS[line]
            out.setdefault(section, {})
            continue
        m = re.match(r"^[Tt]hroughput:\s*([\d.]+(?:[eE][+-]?\d+)?)\s*qps", line)
        if m:
            out["throughput_qps"] = float(m.group(1))
            continue
        m = re.search(r"TensorRT(?:\.trtexec)? \[TensorRT v(\d+)\]", line) or re.search(r"TensorRT version:\s*([\d.]+)", line)
        if m and not out["tensorrt"]:
            out["tensorrt"] = _trt_version(m.group(1))
            continue
        if section:
            s = _OLD_STAT.match(line)
            p = _OLD_PCT.match(line)
            if s:
                out[section][s.group(1)] = float(s.group(2))
            elif p:
                out[section][_pct_key(p.group(2))] = float(p.group(1))
            elif line and not line.startswith(("walltime", "total compute", "throughput")):
                section = None
    gpu = out.get("gpu_compute") or {}
    if "mean" not in gpu:
        raise ValueError("no GPU compute time in the trtexec output (no performance summary)")
    for key in [k for k, v in out.items() if isinstance(v, dict) and not v]:
        del out[key]
    return out


def trtexec_error(text: str) -> str:
    """The most telling line of a failed trtexec run: an ``Assertion failed`` line, else its first
    ``[E]`` line (the cause; later ones say what gave up), else the last line."""
    lines = text.splitlines()
    for pattern in (r"Assertion failed", r"\[E\]"):
        hits = [_PREFIX.sub("", line).strip() for line in lines if re.search(pattern, line)]
        hits = [h for h in hits if h]
        if hits:
            return hits[0][:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


# ---------------------------------------------------------------- rows


def _row(job: TrtJob, *, status: str, error: Optional[str] = None, stats: Optional[Dict] = None,
         size: int = 0, rss_mb: float = 0.0) -> Dict:
    gpu = (stats or {}).get("gpu_compute") or {}
    lat = {"mean": gpu.get("mean"), "median": gpu.get("median"),
           "p90": gpu.get("p90"), "min": gpu.get("min")}
    row = {"model": job.name, "runtime": "tensorrt", "kernel": job.kernel, "threads": 1, "latency_ms": lat,
           "fps": fps(lat["mean"], batch=job.batch),
           "size_bytes": size, "peak_rss_mb": rss_mb, "status": status, "error": error, "device": "gpu", "batch": job.batch}
    if stats:
        row["host_latency_ms"] = stats.get("host_latency")
        row["throughput_qps"] = stats.get("throughput_qps")
        if stats.get("tensorrt"):
            row["tensorrt"] = stats["tensorrt"]
    row.update(job.extra)
    return row


def _size(path: str) -> int:
    return os.path.getsize(path) if os.path.exists(path) else 0


def failed_rows(jobs: Sequence[TrtJob], error: str) -> List[Dict]:
    return [_row(job, status="failed", error=error, size=_size(job.onnx)) for job in jobs]


def _onnx_input_shapes(path: str) -> Optional[str]:
    """trtexec ``--shapes`` for an ONNX file with a dynamic batch (``face:1x112x112x3``), or None."""
    try:
        import onnx

        model = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - no onnx here, or not an ONNX file: trtexec will say what is wrong
        return None
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in inp.type.tensor_type.shape.dim]
        if any(d <= 0 for d in dims):
            specs.append(f"{inp.name}:" + "x".join(str(d if d > 0 else 1) for d in dims))
    return ",".join(specs) or None


def model_jobs(onnx_files: Sequence[str], options: TrtOptions) -> List[TrtJob]:
    """One job per file and precision; the row's model is the file name (``quicknet.onnx``)."""
    jobs = []
    for path in onnx_files:
        shapes = _onnx_input_shapes(path)
        for precision in options.precisions:
            flags = ("--fp16",) if precision == "fp16" else ("--int8",) if precision == "int8" else ()
            jobs.append(TrtJob(os.path.basename(path), path, f"plugin-{precision}", flags, True, shapes))
    return jobs


def plugin_sources() -> Dict[str, List[str]]:
    """Local source files to copy, per folder name on the board (``cuda``, ``trt``)."""
    out = {}
    for rel in TRT_SOURCE_DIRS:
        folder = os.path.join(_REPO, rel)
        out[os.path.basename(rel)] = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                                            if f.endswith(_SOURCE_EXTS) and not f.endswith("_capi.cpp"))
    return out


def _build_error(text: str, stage: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("LCEFR_")]
    missing = [line[len("LCEFR_ERR "):] for line in text.splitlines() if line.startswith("LCEFR_ERR ")]
    if missing:
        return f"plugin {stage} failed on the board: {missing[0].replace('error: ', '')}"
    errors = [line for line in lines if re.search(r"\berror\b", line, re.I)]
    return f"plugin {stage} failed on the board: {(errors or lines or ['no output'])[0][:300]}"


class _Fail(Exception):
    pass


def _setup(target, workdir: str, options: TrtOptions, facts: BoardFacts, say) -> str:
    """Copy the sources and build the plugin; returns its path on the board. Raises _Fail."""
    for folder, files in plugin_sources().items():
        proc = target.run(f"mkdir -p {workdir}/src/{folder} {workdir}/trt-build", timeout=60)
        if proc.returncode != 0:
            raise _Fail(f"cannot create {workdir}/src on the board: {why(proc)}")
        put = target.put(files, f"{workdir}/src/{folder}", timeout=300)
        if put.returncode != 0:
            raise _Fail(f"copying the plugin sources to the board failed: {why(put)}")
    archs = options.cuda_archs or (str(facts.sm) if facts.sm else "")
    args = [f"-DCMAKE_CUDA_COMPILER={shlex.quote(facts.nvcc)}", "-DCMAKE_BUILD_TYPE=Release"]
    if archs:
        args.append(f"-DLCEFR_CUDA_ARCHS={shlex.quote(archs)}")
    if options.tensorrt_root:
        args.append(f"-DTENSORRT_ROOT={shlex.quote(options.tensorrt_root)}")
    limit = f"timeout -s KILL {int(options.build_timeout)} " if facts.timeout else ""
    jobs = max(1, min(options.jobs, facts.cores))
    say(f"building {PLUGIN_NAME} (sm {archs or 'CMake default'}, TensorRT {facts.trt_version or '?'})")
    cmd = (f"cd {workdir}/trt-build && {limit}cmake ../src/trt {' '.join(args)} > configure.log 2>&1; s=$?; "
           "if [ $s -ne 0 ]; then [ -f TENSORRT_MISSING ] && sed 's/^/LCEFR_ERR /' TENSORRT_MISSING; "
           "tail -n 25 configure.log; echo LCEFR_STAGE configure; exit $s; fi; "
           f"{limit}cmake --build . -- -j{jobs} > build.log 2>&1; s=$?; "
           "if [ $s -ne 0 ]; then tail -n 40 build.log; echo LCEFR_STAGE build; exit $s; fi; "
           f"test -f {PLUGIN_NAME} && echo LCEFR_BUILT")
    try:
        proc = target.run(cmd, timeout=2 * options.build_timeout + 60)
    except subprocess.TimeoutExpired:
        raise _Fail(f"plugin build timed out after {2 * options.build_timeout + 60:.0f} s") from None
    if "LCEFR_BUILT" in proc.stdout:
        return f"{workdir}/trt-build/{PLUGIN_NAME}"
    if proc.returncode == 137 and limit:
        raise _Fail(f"plugin build timed out after {options.build_timeout:.0f} s (killed on the board)")
    stage = "configure" if "LCEFR_STAGE configure" in proc.stdout else "build" if "LCEFR_STAGE build" in proc.stdout else ""
    if not stage:
        raise _Fail(f"plugin build failed on the board: {why(proc)}")
    raise _Fail(_build_error(proc.stdout + proc.stderr, f"cmake {stage}"))


def _time_job(target, workdir: str, job: TrtJob, plugin: Optional[str], facts: BoardFacts, options: TrtOptions) -> Dict:
    remote = os.path.basename(job.onnx)
    size = _size(job.onnx)
    args = [shlex.quote(facts.trtexec), f"--onnx={shlex.quote(remote)}"]
    if job.plugin and plugin:
        flag = "--dynamicPlugins" if facts.trt_major >= 10 else "--plugins"
        args.append(f"{flag}={shlex.quote(plugin)}")
    args += list(job.flags)
    if job.shapes:
        args.append(f"--shapes={shlex.quote(job.shapes)}")
    args += [f"--iterations={int(options.iterations)}", f"--warmUp={int(options.warmup_ms)}",
             f"--avgRuns={int(options.avg_runs)}", f"--percentile={int(options.percentile)}"]
    if options.duration_s is not None:
        args.append(f"--duration={int(options.duration_s)}")
    wrap = "/usr/bin/time -v " if facts.gnu_time else ""
    limit = f"timeout -s KILL {max(1, int(options.timeout))} " if facts.timeout else ""
    cmd = f"cd {workdir} && {limit}{wrap}{' '.join(args)} 2>&1; exit $?"
    try:
        proc = target.run(cmd, timeout=options.timeout + 60)
    except subprocess.TimeoutExpired:
        return _row(job, status="failed", error=f"timed out after {options.timeout + 60:.0f} s", size=size)
    text = proc.stdout + proc.stderr
    rss = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", text)
    rss_mb = round(int(rss.group(1)) / 1024.0, 1) if rss else 0.0
    if proc.returncode == 137 and limit:
        return _row(job, status="failed", error=f"timed out after {options.timeout:.0f} s (killed on the board)", size=size)
    try:
        stats = parse_trtexec_output(text)
    except ValueError:
        stats = None
    if proc.returncode != 0 or stats is None or "&&&& FAILED" in text:
        return _row(job, status="failed", error=f"trtexec exit {proc.returncode}: {trtexec_error(text)}", size=size, rss_mb=rss_mb)
    return _row(job, status="ok", stats=stats, size=size, rss_mb=rss_mb)


def run_jobs(target, jobs: Sequence[TrtJob], options: TrtOptions, *, workdir: Optional[str] = None,
             progress: Optional[Callable[[str], None]] = None) -> Tuple[List[Dict], Dict]:
    """Probe, build the plugin (when a job needs it) and time ``jobs`` on ``target``.

    ``workdir``: an existing directory on the board (the bench's); None makes and removes one.
    Returns ``(rows, facts)``; never raises for a board problem.
    """
    say = progress or (lambda _msg: None)
    facts_out: Dict = {}
    jobs = list(jobs)
    if not jobs:
        return [], facts_out
    own = workdir is None
    try:
        if own:
            proc = target.run("d=$(mktemp -d /tmp/lcefr-trt.XXXXXX) && echo $d", timeout=60)
            if proc.returncode != 0:
                return failed_rows(jobs, f"cannot reach {target.host}: {why(proc)}"), facts_out
            workdir = proc.stdout.strip().splitlines()[-1]
        else:
            workdir = f"{workdir}/trt"
            proc = target.run(f"mkdir -p {workdir}", timeout=60)
            if proc.returncode != 0:
                return failed_rows(jobs, f"cannot create {workdir} on {target.host}: {why(proc)}"), facts_out
        proc = target.run(probe_script(options.tensorrt_root), timeout=120)
        if "@end" not in proc.stdout:
            return failed_rows(jobs, f"probing the board failed: {why(proc)}"), facts_out
        facts = parse_probe(proc.stdout)
        facts_out = facts.gpu_dict()
        needs_plugin = any(job.plugin for job in jobs)
        problem = facts.problem(build=needs_plugin)
        if problem:
            return failed_rows(jobs, problem), facts_out
        plugin = None
        if needs_plugin:
            try:
                plugin = _setup(target, workdir, options, facts, say)
            except _Fail as err:
                facts_out["plugin"] = str(err)
                plugin_jobs = [j for j in jobs if j.plugin]
                jobs = [j for j in jobs if not j.plugin]
                rows = failed_rows(plugin_jobs, str(err))
                return rows + _time_all(target, workdir, jobs, None, facts, options, say), facts_out
            facts_out["plugin"] = plugin
        return _time_all(target, workdir, jobs, plugin, facts, options, say), facts_out
    except subprocess.TimeoutExpired as err:
        return failed_rows(jobs, f"{target.host}: timed out after {err.timeout:.0f} s"), facts_out
    except OSError as err:
        return failed_rows(jobs, f"{target.host}: {err}"), facts_out
    finally:
        if own and workdir and not options.keep:
            try:
                target.run(f"rm -rf {workdir}", timeout=60)
            except (subprocess.TimeoutExpired, OSError):
                pass


def _time_all(target, workdir, jobs, plugin, facts, options, say) -> List[Dict]:
    if not jobs:
        return []
    files = sorted({job.onnx for job in jobs})
    missing = [f for f in files if not os.path.isfile(f)]
    rows: List[Dict] = []
    if missing:
        rows += failed_rows([j for j in jobs if j.onnx in missing], "ONNX file not found on this machine")
        jobs = [j for j in jobs if j.onnx not in missing]
        files = [f for f in files if f not in missing]
    if not jobs:
        return rows
    put = target.put(files, workdir, timeout=max(300.0, options.timeout))
    if put.returncode != 0:
        return rows + failed_rows(jobs, f"copying ONNX files to {target.host}:{workdir} failed: {why(put)}")
    for job in jobs:
        say(f"{target.label}: {job.name} ({job.kernel})")
        rows.append(_time_job(target, workdir, job, plugin, facts, options))
    return rows


def bench_trt(target, onnx_files: Sequence[str], options: TrtOptions, *, workdir: Optional[str] = None,
              progress: Optional[Callable[[str], None]] = None) -> Tuple[List[Dict], Dict]:
    """Rows for ``onnx_files`` (``lcefr convert X --to onnx-binary --domain trt``) timed with the plugin,
    one per file and precision in ``options.precisions``, plus the board's GPU facts."""
    return run_jobs(target, model_jobs(onnx_files, options), options, workdir=workdir, progress=progress)


def trt_step(onnx_files: Sequence[str], options: TrtOptions):
    """A :class:`lcefr.board.lce.BenchOptions` ``extra_steps`` entry: append the TensorRT rows to
    the host's report (after its .tflite rows) and the GPU facts to ``machine["tensorrt"]``."""

    def step(target, report, workdir: Optional[str], say) -> None:
        jobs = model_jobs(onnx_files, options)
        if workdir is None:  # the host failed before the bench made its work directory
            report.results.extend(failed_rows(jobs, report.error or "host unreachable"))
            return
        rows, facts = run_jobs(target, jobs, options, workdir=workdir, progress=say)
        report.results.extend(rows)
        report.machine["tensorrt"] = facts

    return step
