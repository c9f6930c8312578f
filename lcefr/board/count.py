"""Instructions per inference on an emulated ARM CPU: ``lcefr bench --emulate cortex-a57``.

Each file runs under qemu's dynamic ``qemu-aarch64`` (``-cpu cortex-a57``) directly on the emulated
board's rootfs (``-L``; no sshd needed) with lcefr's counting TCG plugin
(``lcefr/board/native/insn_count.c``, compiled here against ``qemu-plugin.h`` from Debian's source
package of the installed qemu). Instructions per inference = (count of 1 + K inferences - count of 1
inference) / K, which removes start-up, loading and the first inference. Runs are single-threaded
with Python's hash seed and OpenBLAS's thread pool fixed, so counts repeat to well under 0.1%.

Float and int8 files run on one of the rootfs's two runtimes (``--runtime``), with XNNPACK
(``xnnpack``) or TFLite's builtin kernels (``builtin``): tflite-runtime 2.14, whose aarch64 wheel
hands only float ops to XNNPACK, or ai-edge-litert 1.4, which hands int8 ops to XNNPACK too.
``auto`` counts int8 files on ai-edge-litert and float files on tflite-runtime, each file on the
runtime that runs it fastest on a board. LCE files need an aarch64 ``lce_benchmark_model``. Counts are not
cycles: an A57 retires about 0.9-1.3 of these per cycle on such code (docs/emulated-board.md).
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

from lcefr.board import emulate
from lcefr.convert.inspect import read_op_infos
from lcefr.runtime import is_lce_model, model_name
from lcefr.vocab import BOARD_INTERPRETERS

__all__ = ["CPUS", "FLOAT_OPS", "RUNTIMES", "plugin_library", "count_file", "count_files", "guest_env", "guest_stage", "runtime_for",
           "CountError"]

#: qemu CPU models lcefr counts on (all ARMv8.0 but ``max``)
CPUS = ("cortex-a57", "cortex-a53", "cortex-a72", "max")
FLOAT_OPS = ("xnnpack", "builtin")
#: ``--runtime`` of float / int8 files; ``auto``: int8 files on ai-edge-litert, float files on tflite-runtime
RUNTIMES = BOARD_INTERPRETERS
PLUGIN_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native", "insn_count.c")
GUEST_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "count_guest.py")
QEMU = "/usr/bin/qemu-aarch64"
LCE_HINT = ("an LCE file needs an aarch64 lce_benchmark_model: give --lce-benchmark PATH "
            "(the board has no LCE Python runtime; make jetson-setup installs one on a real board)")
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:(.*)")


class CountError(Exception):
    """One run under the counter failed (the row records it)."""


def _source_version(package: str = "qemu-user") -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${source:Version}", package], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip()
    if not out:
        raise emulate.BoardError(f"{package} is not installed (dpkg-query): cannot match the plugin API to it")
    return out


def _plugin_header(directory: str, version: str, say: Callable[[str], None]) -> str:
    """``qemu-plugin.h`` of Debian's qemu source package ``version``, fetched once with the host's own apt sources."""
    header = os.path.join(directory, "qemu-plugin.h")
    if os.path.isfile(header):
        return header
    say(f"fetching qemu {version} source package for qemu-plugin.h (apt-get source)")
    lines = emulate.source_entries()
    if not lines:
        raise emulate.CannotEmulate("the host's apt sources name no Debian mirror: cannot fetch qemu's source package")
    with tempfile.TemporaryDirectory(prefix="lcefr-aptsrc-") as tmp:
        os.makedirs(os.path.join(tmp, "lists", "partial"))
        with open(os.path.join(tmp, "sources.list"), "w") as f:
            f.write("\n".join(lines) + "\n")
        opts = ["-q", "-o", f"Dir::Etc::SourceList={tmp}/sources.list", "-o", "Dir::Etc::SourceParts=/nonexistent",
                "-o", f"Dir::State::Lists={tmp}/lists", "-o", f"Dir::Cache={tmp}/cache", "-o", "APT::Sandbox::User=root"]
        emulate._run(["apt-get", *opts, "update"], what="apt-get update (deb-src)")
        work = os.path.join(tmp, "src")
        os.makedirs(work)
        proc = subprocess.run(["apt-get", *opts, "source", "--download-only", f"qemu={version}"], cwd=work,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise emulate.BoardError(f"apt-get source qemu={version} failed: {proc.stdout.strip().splitlines()[-1:]}")
        tarballs = sorted(glob.glob(os.path.join(work, "qemu_*.orig.tar.*")))
        if not tarballs:
            raise emulate.BoardError(f"no qemu orig tarball in the source package qemu={version}")
        emulate._run(["tar", "-C", work, "-xf", tarballs[0], "--wildcards", "*/include/qemu/qemu-plugin.h"],
                     what="extracting qemu-plugin.h")
        found = glob.glob(os.path.join(work, "*", "include", "qemu", "qemu-plugin.h"))
        if not found:
            raise emulate.BoardError(f"qemu-plugin.h is not in {os.path.basename(tarballs[0])}")
        os.makedirs(directory, exist_ok=True)
        shutil.copy(found[0], header + ".tmp")
        os.replace(header + ".tmp", header)
    return header


def plugin_library(paths: emulate.BoardPaths, say: Callable[[str], None] = lambda _m: None) -> str:
    """The counting plugin for the installed qemu-user, built on first use."""
    version = _source_version()
    safe = re.sub(r"[^A-Za-z0-9.+-]", "_", version)
    library = os.path.join(paths.dir, "plugin", f"insn_count-{safe}.so")
    if os.path.isfile(library) and os.path.getmtime(library) >= os.path.getmtime(PLUGIN_SOURCE):
        return library
    emulate.ensure_tools(say, extra={"gcc": "/usr/bin/gcc", "libc6-dev": "/usr/include/stdio.h"})
    header = _plugin_header(os.path.join(paths.dir, "qemu-src", safe), version, say)
    say("building the instruction-counting plugin")
    os.makedirs(os.path.dirname(library), exist_ok=True)
    emulate._run(["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-I", os.path.dirname(header), PLUGIN_SOURCE, "-o",
                  library + ".tmp"], what="gcc (counting plugin)")
    os.replace(library + ".tmp", library)
    return library


@contextlib.contextmanager
def guest_stage(rootfs: str, prefix: str):
    """``(host path, guest path)`` of a fresh folder in the rootfs's /tmp, removed afterwards."""
    stage = tempfile.mkdtemp(prefix=prefix, dir=os.path.join(rootfs, "tmp"))
    try:
        yield stage, "/" + os.path.relpath(stage, rootfs)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def guest_env(extra_path: str) -> Dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/root", "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": f"{emulate.GUEST_SITE}:{extra_path}"}


def _count(rootfs: str, plugin: str, cpu: str, argv: List[str], env: Dict[str, str], timeout: float) -> (int, str):
    """Instructions of one emulated process, and its output."""
    with tempfile.TemporaryDirectory(prefix="lcefr-count-") as tmp:
        out = os.path.join(tmp, "count")
        cmd = [QEMU, "-L", rootfs, "-cpu", cpu, "-plugin", f"{plugin},out={out}", *argv]
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CountError(f"timed out after {timeout:.0f} s under qemu") from None
        text = proc.stdout.decode("utf-8", "replace")
        errors = [line.split(" ", 1)[-1] for line in text.splitlines() if line.startswith("LCEFR_COUNT_ERROR")]
        if errors:
            raise CountError(errors[-1])
        if proc.returncode != 0:
            last = [line for line in text.strip().splitlines() if line.strip()]
            how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
            raise CountError(f"{how}: {last[-1] if last else 'no output'}")
        try:
            with open(out) as f:
                return int(f.read().strip()), text
        except (OSError, ValueError):
            raise CountError("the counting plugin wrote no total") from None


def _guest_program(rootfs: str, path: str) -> List[str]:
    """argv (host paths) that runs the aarch64 program ``path`` under qemu: an ELF directly, a script
    through its ``#!`` interpreter in the rootfs."""
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"#!"):
        parts = head[2:].split(b"\n", 1)[0].decode().split()
        if not parts:
            raise CountError(f"{path}: empty #! line")
        return [os.path.join(rootfs, parts[0].lstrip("/")), *parts[1:]]
    if head[:4] != b"\x7fELF" or int.from_bytes(head[18:20], "little") != 0xB7:
        raise CountError(f"{path} is not an aarch64 program (lce_benchmark_model_aarch64 from LCE's releases, or built natively)")
    return []


def runtime_for(buffer: bytes, runtime: str = "auto") -> str:
    """The board runtime a float / int8 flatbuffer is counted on."""
    if runtime != "auto":
        return runtime
    return "ai-edge-litert" if any(info.quantized for info in read_op_infos(buffer)) else "tflite-runtime"


def _row(path: str, runtime: str, kernel: str, float_ops: str, cpu: str, runs: int) -> Dict:
    return {"model": model_name(path), "file": os.path.abspath(path), "runtime": runtime, "kernel": kernel,
            "float_ops": float_ops, "cpu": cpu, "instructions": None, "runs": runs, "counts": None, "status": "ok",
            "error": None, "size_bytes": os.path.getsize(path)}


def count_file(path: str, *, cpu: str = "cortex-a57", runs: int = 2, float_ops: str = "xnnpack", kernel: str = "auto",
               lce_benchmark: Optional[str] = None, paths: Optional[emulate.BoardPaths] = None,
               plugin: Optional[str] = None, timeout: float = 1800, runtime: str = "auto") -> Dict:
    """One row: instructions per inference of ``path`` on ``cpu`` (never raises for a model problem).

    ``runtime`` (float / int8 files): one of :data:`RUNTIMES`; the row's ``runtime`` is the module
    that ran (``tflite_runtime`` or ``ai_edge_litert``).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    paths = paths or emulate.board_paths()
    with open(path, "rb") as f:
        buffer = f.read()
    lce = is_lce_model(buffer)
    if lce and not lce_benchmark:
        row = _row(path, "lce_benchmark_model", "default" if kernel == "auto" else kernel, float_ops, cpu, runs)
        row["status"], row["error"] = "skipped", LCE_HINT
        return row
    plugin = plugin or plugin_library(paths)
    rootfs = paths.rootfs
    with guest_stage(rootfs, "lcefr-count-") as (stage, guest):
        shutil.copy(path, os.path.join(stage, "model.tflite"))
        if lce:
            return _count_lce(path, stage, guest, rootfs, plugin, cpu, runs, float_ops, kernel, lce_benchmark, timeout)
        chosen = runtime_for(buffer, runtime)
        row = _row(path, chosen.replace("-", "_"), float_ops, float_ops, cpu, runs)
        shutil.copy(GUEST_SCRIPT, os.path.join(stage, "count_guest.py"))
        python = os.path.join(rootfs, emulate.GUEST_PYTHON.lstrip("/"))
        env = guest_env(guest)

        def argv(n: int) -> List[str]:
            return [python, "-s", f"{guest}/count_guest.py", "--model", f"{guest}/model.tflite", "--runs", str(n),
                    "--float-ops", float_ops, "--runtime", chosen]

        try:
            one, _ = _count(rootfs, plugin, cpu, argv(1), env, timeout)
            more, _ = _count(rootfs, plugin, cpu, argv(1 + runs), env, timeout)
        except CountError as err:
            row["status"], row["error"] = "failed", str(err)
            return row
        row["counts"] = [one, more]
        row["instructions"] = round((more - one) / runs)
        return row


def _count_lce(path, stage, guest, rootfs, plugin, cpu, runs, float_ops, kernel, lce_benchmark, timeout) -> Dict:
    kernels = ["default", "indirect"] if kernel == "auto" else [kernel]
    row = _row(path, "lce_benchmark_model", kernels[0], float_ops, cpu, runs)
    if not os.path.isfile(lce_benchmark):
        row["status"], row["error"] = "failed", f"--lce-benchmark {lce_benchmark}: no such file"
        return row
    shutil.copy(lce_benchmark, os.path.join(stage, "lce_benchmark_model"))
    os.chmod(os.path.join(stage, "lce_benchmark_model"), 0o755)
    try:
        program = _guest_program(rootfs, lce_benchmark)
    except CountError as err:
        row["status"], row["error"] = "failed", str(err)
        return row
    program = (program + [f"{guest}/lce_benchmark_model"]) if program else [os.path.join(stage, "lce_benchmark_model")]
    env = guest_env(guest)
    for name in kernels:
        row.update(kernel=name, status="ok", error=None)

        def argv(n: int) -> List[str]:
            return program + [f"--graph={guest}/model.tflite", "--num_threads=1", f"--num_runs={n}", "--min_secs=0",
                              "--warmup_runs=1", "--warmup_min_secs=0", f"--use_xnnpack={str(float_ops == 'xnnpack').lower()}",
                              f"--use_indirect_bgemm={str(name == 'indirect').lower()}"]

        try:
            one, text = _count(rootfs, plugin, cpu, argv(1), env, timeout)
            more, _ = _count(rootfs, plugin, cpu, argv(1 + runs), env, timeout)
        except CountError as err:
            row["status"], row["error"] = "failed", f"{name} kernel: {err}"
            continue
        unconsumed = _UNCONSUMED.search(text)
        if unconsumed and "use_xnnpack" in unconsumed.group(1):
            row["float_ops"] = "builtin"  # built without XNNPACK: the flag was ignored, builtin kernels ran
            row["note"] = "this lce_benchmark_model has no XNNPACK (--use_xnnpack unconsumed): float ops ran on builtin kernels"
        row["counts"] = [one, more]
        row["instructions"] = round((more - one) / runs)
        return row
    return row


def count_files(files: Sequence[str], *, cpu: str = "cortex-a57", runs: int = 2, float_ops: str = "xnnpack",
                kernel: str = "auto", lce_benchmark: Optional[str] = None, progress: Callable[[str], None] = lambda _m: None,
                paths: Optional[emulate.BoardPaths] = None, runtime: str = "auto") -> List[Dict]:
    """Rows for ``files``; builds the rootfs and the plugin first when missing (CannotEmulate/BoardError)."""
    paths = paths or emulate.board_paths()
    emulate.prepare(paths, progress)
    with emulate.locked(paths):
        plugin = plugin_library(paths, progress)
    rows = []
    for path in files:
        progress(f"counting {os.path.basename(path)} on {cpu}")
        rows.append(count_file(path, cpu=cpu, runs=runs, float_ops=float_ops, kernel=kernel, lce_benchmark=lce_benchmark,
                               paths=paths, plugin=plugin, runtime=runtime))
    return rows
