"""``make jetson-setup``: how a board gets an ``lce_benchmark_model`` that runs, and doing it.

LCE's release binaries (``lce_benchmark_model_aarch64`` / ``_aarch32``) are built on a recent
Ubuntu and need glibc >= 2.34 (reference/lce.md); a stock Jetson Nano (JetPack 4, Ubuntu 18.04)
has glibc 2.27. Such boards build the tool natively with CMake from the LCE tag matching the
converter. :func:`plan_setup` is pure (tested on recorded probe outputs without a board);
:func:`run_setup` probes boards over SSH (or this machine), plans and runs the steps.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from lcefr.board.facts import PROBE_COMMAND, BoardFacts, board_facts, split_probe
from lcefr.board.lce import BenchOptions, bench_host
from lcefr.board.ssh import SSHTarget

__all__ = ["NotArmBoard", "SetupPlan", "plan_setup", "run_setup", "RELEASE_GLIBC", "RELEASE_URL", "release_url",
           "expectation_check"]

#: glibc the v0.16.0 release binaries were linked against (ubuntu-latest runners, 2024)
RELEASE_GLIBC = (2, 34)
#: where LCE's release binaries are downloaded from (``LCEFR_LCE_RELEASE_URL`` or ``--release-url`` overrides)
RELEASE_URL = "https://github.com/larq/compute-engine/releases/download"


#: the board runtime whose XNNPACK runs int8 ops on aarch64 (PyPI wheels for CPython >= 3.9)
LITERT_REQUIREMENT = "ai-edge-litert==1.4.0"
LITERT_PYTHON = (3, 9)


def release_url(override: Optional[str] = None) -> str:
    return (override or os.environ.get("LCEFR_LCE_RELEASE_URL") or RELEASE_URL).rstrip("/")


class NotArmBoard(Exception):
    """The host is not an ARM board (exit code 2 in the CLI)."""


@dataclass
class SetupPlan:
    facts: Dict
    benchmark_source: str  # "release" or "build"
    reason: str
    steps: List[str]
    warnings: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict:
        return asdict(self)


def plan_setup(facts: BoardFacts, *, lce_version: str = "0.16.0", workdir: str = "~/lcefr", clocks: bool = True,
               url: Optional[str] = None, given: Optional[str] = None) -> SetupPlan:
    """The shell steps that give this board a matching ``lce_benchmark_model`` (and max clocks).

    ``url``: the release download base (default :func:`release_url`); ``given``: a binary from this
    machine that :func:`run_setup` copies to ``workdir/lce_benchmark_model`` instead of a download
    or a build. Raises NotArmBoard for anything but an ARM CPU.
    """
    if facts.lce_arch is None:
        raise NotArmBoard(f"not an ARM board: uname -m says {facts.arch!r} (lce_benchmark_model is built for aarch64/armv7)")
    warnings = []
    if facts.python is None or facts.python < (3, 6):
        warnings.append(f"Python >= 3.6 is needed for the runner, found {facts.python and '.'.join(map(str, facts.python))}")
    tag = f"v{lce_version}"
    binary = f"{workdir}/lce_benchmark_model"
    check = f"{binary} --help >/dev/null 2>&1 || {binary} --graph=/dev/null 2>&1 | head -n 1"
    if given:
        steps = [f"mkdir -p {workdir}", f"# copy {given} -> {binary}", f"chmod +x {binary}", check]
        source, reason = "given", f"{os.path.basename(given)} from this machine (LCE_BENCHMARK / --lce-benchmark) is copied"
    elif facts.glibc and facts.glibc >= RELEASE_GLIBC:
        asset = f"lce_benchmark_model_{facts.lce_arch}"
        url = f"{release_url(url)}/{tag}/{asset}"
        get = (f"if command -v wget >/dev/null 2>&1; then wget -nv -O {binary} {url}; else curl -fsSL -o {binary} {url}; fi "
               f"|| {{ rm -f {binary}; echo 'cannot download {url}' >&2; exit 1; }}")
        steps = [f"mkdir -p {workdir}", get, f"chmod +x {binary}", check]
        source, reason = "release", (f"glibc {'.'.join(map(str, facts.glibc))} >= {'.'.join(map(str, RELEASE_GLIBC))}: "
                                     f"the {tag} release binary {asset} runs here")
    else:
        found = ".".join(map(str, facts.glibc)) if facts.glibc else "unknown"
        xnnpack = "" if facts.gcc is None or facts.gcc >= (9, 0) else " -DTFLITE_ENABLE_XNNPACK=OFF"
        if xnnpack:
            warnings.append(f"gcc {'.'.join(map(str, facts.gcc))} cannot assemble XNNPACK's newer kernels: built without "
                            "XNNPACK, so float/int8 models on this board are timed with TFLite's default kernels")
        steps = [
            f"mkdir -p {workdir}",
            "python3 -m pip install --user 'cmake>=3.16'  # JetPack 4 ships CMake 3.10",
            f"test -d {workdir}/compute-engine || git clone --depth 1 --branch {tag} https://github.com/larq/compute-engine {workdir}/compute-engine",
            f"cd {workdir}/compute-engine && git submodule update --init --depth 1",
            f"~/.local/bin/cmake -S {workdir}/compute-engine -B {workdir}/build -DCMAKE_BUILD_TYPE=Release "
            f"-DCOMPILE_BENCHMARK=ON -DCOMPILE_EXAMPLE=OFF{xnnpack}",
            f"~/.local/bin/cmake --build {workdir}/build --target lce_benchmark_model -j {max(1, facts.cores)}",
            f"cp $(find {workdir}/build -name lce_benchmark_model -type f -perm -u+x | head -n 1) {binary}",
        ]
        source, reason = "build", (f"glibc {found} < {'.'.join(map(str, RELEASE_GLIBC))}: LCE's {tag} release binaries "
                                   f"do not load here (GLIBC_2.3x not found); building {tag} natively with CMake")
        missing = [t for t in ("git", "gcc", "g++") if facts.tools and t not in facts.tools]
        if missing:
            warnings.append(f"missing build tools: {', '.join(missing)} (sudo apt-get install build-essential git)")
    if facts.arch == "aarch64" and facts.python is not None and facts.python >= LITERT_PYTHON:
        steps.append(f"python3 -m pip install --user -q '{LITERT_REQUIREMENT}' 'numpy<2' || echo 'no {LITERT_REQUIREMENT} "
                     "here: int8 files run on tflite-runtime, whose aarch64 XNNPACK leaves int8 ops to slower builtin kernels'")
    elif facts.arch == "aarch64":
        found = ".".join(map(str, facts.python)) if facts.python else "unknown"
        warnings.append(f"Python {found} < {'.'.join(map(str, LITERT_PYTHON))}: no ai-edge-litert wheel, so int8 files run on "
                        "tflite-runtime's builtin int8 kernels (slower than float; docs/int8.md)")
    if clocks and facts.is_jetson:
        steps += ["sudo -n nvpmodel -m 0 || echo 'nvpmodel needs sudo: run `sudo nvpmodel -m 0` on the board'",
                  "sudo -n jetson_clocks || echo 'jetson_clocks needs sudo: run `sudo jetson_clocks` on the board'"]
    steps.append("cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq 2>/dev/null || echo 'no cpufreq here: clocks unknown'")
    return SetupPlan(facts=facts.to_dict(), benchmark_source=source, reason=reason, steps=steps, warnings=warnings)


def _converter_lce_version() -> str:
    import larq_compute_engine  # heavy (TensorFlow): only when a plan is made

    return getattr(larq_compute_engine, "__version__", "0.16.0")


def _run(target: Optional[SSHTarget], command: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    if target is None:
        return subprocess.run(["sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)
    return target.run(command, timeout=timeout)


def _copy_given(target: Optional[SSHTarget], given: str, workdir: str) -> subprocess.CompletedProcess:
    """``given`` -> ``workdir/lce_benchmark_model`` on the board (or here)."""
    if target is None:
        return _run(None, f"cp {shlex.quote(given)} {workdir}/lce_benchmark_model")
    proc = target.run(f"cd {workdir} && pwd", timeout=60)
    if proc.returncode != 0:
        return proc
    remote = proc.stdout.strip().splitlines()[-1]
    put = target.put([os.path.abspath(given)], remote, timeout=600)
    if put.returncode != 0 or os.path.basename(given) == "lce_benchmark_model":
        return put
    return target.run(f"mv -f {shlex.quote(remote + '/' + os.path.basename(given))} {shlex.quote(remote)}/lce_benchmark_model",
                      timeout=60)


def run_setup(targets: Sequence[Optional[SSHTarget]], *, python: str = "python3", dry_run: bool = False,
              clocks: bool = True, workdir: str = "~/lcefr", lce_version: Optional[str] = None, url: Optional[str] = None,
              given: Optional[str] = None) -> Tuple[List[Dict], int]:
    """Probe each target (None: this machine), plan its setup and, unless ``dry_run``, run the steps
    in order, stopping at the first that fails.

    Returns ``(entries, exit_code)``: one entry per target (the plan's keys plus ``host``, ``status``
    "planned"/"ok"/"failed"/"not_arm", ``log`` of the steps run, ``error``), and 0, 1 (a probe or a
    step failed) or 2 (a host is not an ARM board).
    """
    version = lce_version or _converter_lce_version()
    plans: List[Dict] = []
    exit_code = 0
    for target in targets:
        name = "localhost" if target is None else target.host
        probe = _run(target, PROBE_COMMAND.format(python=target.python if target is not None else python), timeout=60)
        if probe.returncode != 0 and "@@end" not in probe.stdout:
            plans.append({"host": name, "status": "failed", "error": (probe.stderr.strip().splitlines() or ["?"])[-1]})
            exit_code = max(exit_code, 1)
            continue
        s = split_probe(probe.stdout)
        facts = board_facts(s.get("uname", ""), s.get("ldd", ""), s.get("cpuinfo", ""), model=s.get("model", ""),
                            python_version=s.get("python", ""), tools=s.get("tools", ""), gcc=s.get("gcc", ""),
                            clocks=s.get("clocks", ""), lce=s.get("lce", ""), emulated=s.get("emulated", ""))
        try:
            plan = plan_setup(facts, lce_version=version, workdir=workdir, clocks=clocks, url=url, given=given)
        except NotArmBoard as err:
            plans.append({"host": name, "status": "not_arm", "error": str(err), "facts": facts.to_dict()})
            exit_code = 2
            continue
        entry = dict(plan.to_dict(), host=name, status="planned" if dry_run else "ok", log=[])
        if not dry_run:
            for step in plan.steps:
                done = _copy_given(target, given, workdir) if step.startswith("# copy ") else _run(target, step)
                tail = (done.stdout + done.stderr).strip()
                entry["log"].append({"step": step, "exit": done.returncode, "tail": tail[-400:]})
                if done.returncode != 0:
                    last = tail.splitlines()[-1] if tail else step
                    entry["status"], entry["error"] = "failed", f"step failed (exit {done.returncode}): {last}"
                    exit_code = max(exit_code, 1)
                    break
        plans.append(entry)
    return plans, exit_code


def expectation_check(target: SSHTarget, model: str, *, workdir: str = "~/lcefr") -> Dict:
    """Time ``model`` (quicknet_small's LCE file) once with the board's ``lce_benchmark_model`` and hold
    it against ``lcefr estimate``: ``{"status": "meets"|"miss"|"no expectation"|"failed", "line": ...}``."""
    options = BenchOptions(runs=10, warmup=2, core=None, runtime="lce_benchmark_model",
                           lce_benchmark=f"{workdir.rstrip('/')}/lce_benchmark_model", timeout=600.0)
    report = bench_host(target, [model], options)
    row = report.results[0] if report.results else {}
    name = os.path.basename(model)
    if row.get("status") != "ok":
        return {"status": "failed", "line": f"{name}: not timed ({row.get('error') or report.error})", "row": row}
    mean, expected = row["latency_ms"]["mean"], row.get("expected_ms")
    if expected is None:
        why = report.machine.get("expectation", "no cost model for this CPU")
        return {"status": "no expectation", "line": f"{name}: {mean:.1f} ms; no expectation ({why})", "row": row}
    verdict = "miss" if row.get("flag") else "meets"
    text = (f"{name}: {mean:.1f} ms measured, {expected['low']:.1f}-{expected['high']:.1f} ms expected: "
            + ("meets its expectation" if verdict == "meets" else f"MISSES it: {row['flag']}"))
    return {"status": verdict, "line": text, "row": row}
