"""An emulated Cortex-A57 board on this machine: ``lcefr board emulate up|down|status``.

qemu user-mode emulation through binfmt_misc (fix-binary) runs a Debian bookworm arm64 userland
made by debootstrap from the mirror the host's own apt sources name. Every process on the board
runs as a Cortex-A57 (``QEMU_CPU=cortex-a57``: ARMv8.0, no dotprod, no fp16, no LSE atomics, as on
a Jetson Nano), ``/proc/cpuinfo`` there reports an A57, and ``/etc/lcefr-emulated-board`` marks
it as emulated. The board's sshd listens on 127.0.0.1 at a free port, key-only, with a
throw-away client key and a pinned host key in the board's own known_hosts file; its venv holds
``tflite-runtime`` (the aarch64 wheel). The finished rootfs is kept as a zstd tarball in the build
tree, so a board is built once and later ``up`` calls take seconds.

Wall time on this board means nothing (it is an x86 core interpreting ARM code); what it gives is
a real aarch64 userland for the board-side code, ARM kernels to check against the host, and
deterministic instruction counts (:mod:`lcefr.board.count`).
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional

from lcefr.board.ssh import SSHTarget
from lcefr.fileio import write_atomic
from lcefr.runtime import BOARD_RUNTIMES

__all__ = ["CannotEmulate", "BoardError", "BoardNotRunning", "BoardPaths", "board_paths", "host_mirror", "up", "down",
           "status", "target", "prepare", "locked", "ensure_rootfs", "ensure_tools", "check_can_emulate", "CPU", "BOARD_PYTHON", "NOT_RUNNING"]

SUITE = "bookworm"
CPU = "cortex-a57"
CPU_NAME = "Cortex-A57"
USER = "root"
HOST = "127.0.0.1"
BOARD_VENV = "/opt/lcefr/venv"
BOARD_PYTHON = f"{BOARD_VENV}/bin/python"
GUEST_PYTHON = "/usr/bin/python3.11"
GUEST_SITE = f"{BOARD_VENV}/lib/python3.11/site-packages"
MARKER = "/etc/lcefr-emulated-board"
#: bump when the recipe below changes: an older tarball is then rebuilt, never reused
RECIPE = 2
#: host packages and the file each one provides
HOST_PACKAGES = {"qemu-user-static": "/usr/bin/qemu-aarch64-static", "qemu-user": "/usr/bin/qemu-aarch64",
                 "binfmt-support": "/usr/sbin/update-binfmts", "debootstrap": "/usr/sbin/debootstrap",
                 "zstd": "/usr/bin/zstd"}
ROOTFS_PACKAGES = ("python3", "python3-venv", "openssh-server", "ca-certificates", "wget")
#: the board's Python runtimes, as aarch64 wheels downloaded by the host's pip: tflite-runtime 2.14
#: (its XNNPACK takes float ops only) and ai-edge-litert 1.4 (XNNPACK takes int8 ops too; 2.x
#: segfaults under qemu 7.2)
RUNTIME_REQUIREMENTS = ("tflite-runtime==2.14.0", "ai-edge-litert==1.4.0", "numpy<2")
#: import names of those runtimes (the board runner's): a rootfs without one of them is rebuilt
RUNTIME_MODULES = BOARD_RUNTIMES
WHEEL_PLATFORMS = ("manylinux_2_34_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
NOT_RUNNING = "the emulated board is not running: start it with make board-emu (or lcefr board emulate up)"
# An A57 as Linux prints it: implementer 0x41 (ARM), part 0xd07; ARMv8.0 features only.
_CPUINFO_ENTRY = ("processor\t: {n}\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\n"
                  "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\n"
                  "CPU revision\t: 1\n\n")


class CannotEmulate(Exception):
    """This machine cannot run the board (no root, no binfmt_misc, no mirror): exit 2."""


class BoardError(Exception):
    """Building or starting the board failed: exit 1."""


class BoardNotRunning(Exception):
    """JETSON=emulated while the board is down: exit 2."""


def _project_dir() -> Optional[str]:
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return here if os.path.isfile(os.path.join(here, "Makefile")) and os.path.isfile(os.path.join(here, "setup.cfg")) else None


@dataclass(frozen=True)
class BoardPaths:
    """Where the board lives: ``LCEFR_BOARD_DIR``, else ``build/board`` of the source tree."""

    dir: str

    @property
    def rootfs(self) -> str:
        return os.path.join(self.dir, "rootfs")

    @property
    def tarball(self) -> str:
        return os.path.join(self.dir, f"rootfs-{SUITE}-arm64-r{RECIPE}.tar.zst")

    @property
    def state(self) -> str:
        return os.path.join(self.dir, "state.json")

    @property
    def key(self) -> str:
        return os.path.join(self.dir, "keys", "id_ed25519")

    @property
    def host_key(self) -> str:
        return os.path.join(self.dir, "keys", "host_ed25519")

    @property
    def known_hosts(self) -> str:
        return os.path.join(self.dir, "known_hosts")

    @property
    def cpuinfo(self) -> str:
        return os.path.join(self.dir, "cpuinfo-cortex-a57")

    @property
    def log(self) -> str:
        return os.path.join(self.dir, "build.log")


def board_paths(directory: Optional[str] = None) -> BoardPaths:
    chosen = directory or os.environ.get("LCEFR_BOARD_DIR")
    if not chosen:
        project = _project_dir()
        chosen = os.path.join(project, "build", "board") if project else os.path.expanduser("~/.cache/lcefr/board")
    return BoardPaths(os.path.abspath(chosen))


@contextlib.contextmanager
def locked(paths: BoardPaths):
    """One ``up``/``down`` at a time (test workers, make targets run side by side)."""
    os.makedirs(paths.dir, exist_ok=True)
    with open(os.path.join(paths.dir, ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------- host checks and tools


def _run(cmd: List[str], *, log: Optional[str] = None, env: Optional[Dict] = None, timeout: float = 3600,
         what: str = "") -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if log:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n")
    if proc.returncode != 0:
        last = [line for line in proc.stdout.strip().splitlines() if line.strip()]
        raise BoardError(f"{what or cmd[0]} failed (exit {proc.returncode}): {last[-1] if last else 'no output'}"
                         + (f" (log: {log})" if log else ""))
    return proc


def check_can_emulate() -> None:
    """Raise CannotEmulate with one line saying why this machine cannot run the board."""
    if sys.platform != "linux":
        raise CannotEmulate(f"the emulated board needs Linux (qemu user-mode + binfmt_misc), this is {sys.platform}")
    if os.geteuid() != 0:
        raise CannotEmulate("the emulated board needs root (apt-get, debootstrap, chroot, mount): run it as root")
    if not os.path.isdir(BINFMT_DIR):
        raise CannotEmulate(f"binfmt_misc is not available here ({BINFMT_DIR} missing): qemu cannot run aarch64 programs")


def _apt_install(packages: List[str], say: Callable[[str], None]) -> None:
    if not shutil.which("apt-get"):
        raise CannotEmulate(f"missing {', '.join(packages)} and no apt-get to install them")
    say(f"installing {' '.join(packages)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    try:
        _run(cmd, env=env, what="apt-get install")
    except BoardError:
        _run(["apt-get", "update", "-q"], env=env, what="apt-get update")
        _run(cmd, env=env, what="apt-get install")


def ensure_tools(say: Callable[[str], None] = lambda _m: None, *, extra: Dict[str, str] = None) -> None:
    """Install the host packages the board needs (root; apt-get) when a file they provide is missing."""
    wanted = dict(HOST_PACKAGES, **(extra or {}))
    missing = [pkg for pkg, path in wanted.items() if not os.path.exists(path)]
    if missing:
        _apt_install(missing, say)


def _binfmt_entry() -> Optional[Dict[str, str]]:
    path = os.path.join(BINFMT_DIR, "qemu-aarch64")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read()
    entry = {"enabled": text.splitlines()[0].strip() if text else ""}
    for line in text.splitlines()[1:]:
        if " " in line:
            key, value = line.split(" ", 1)
            entry[key.rstrip(":")] = value.strip()
    return entry


def ensure_binfmt() -> Dict[str, str]:
    """binfmt_misc mounted and qemu-aarch64 registered, enabled, with the F (fix-binary) flag."""
    if not os.path.exists(os.path.join(BINFMT_DIR, "register")):
        proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise CannotEmulate(f"binfmt_misc cannot be mounted here ({proc.stdout.strip() or 'mount failed'}): "
                                "qemu cannot run aarch64 programs")
    entry = _binfmt_entry()
    if entry is None or entry.get("enabled") != "enabled":
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        entry = _binfmt_entry()
    if entry is None or entry.get("enabled") != "enabled":
        raise CannotEmulate("qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64 failed)")
    if "F" not in entry.get("flags", ""):
        raise CannotEmulate(f"qemu-aarch64 is registered without the F (fix-binary) flag (flags: {entry.get('flags')!r}): "
                            "programs in a chroot cannot find the emulator")
    return entry


# ---------------------------------------------------------------- the host's apt sources


def _apt_entries(apt_dir: str = "/etc/apt") -> List[Dict]:
    """Each source of the host's apt configuration: types, uris, suites, components."""
    entries = []
    lists = [os.path.join(apt_dir, "sources.list")] + sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.list")))
    for path in lists:
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
                if len(line) >= 3 and line[0] in ("deb", "deb-src"):
                    entries.append({"types": [line[0]], "uris": [line[1]], "suites": [line[2]], "components": line[3:]})
    for path in sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.sources"))):
        with open(path) as f:
            text = f.read()
        for stanza in re.split(r"\n\s*\n", text):
            fields: Dict[str, List[str]] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
            if fields.get("enabled", ["yes"])[0].lower() == "no" or not fields.get("uris"):
                continue
            entries.append({"types": fields.get("types", []), "uris": fields["uris"], "suites": fields.get("suites", []),
                            "components": fields.get("components", [])})
    return entries


def host_mirror(apt_dir: str = "/etc/apt") -> str:
    """The Debian mirror the host's apt sources name for bookworm's main archive (``LCEFR_BOARD_MIRROR`` overrides)."""
    override = os.environ.get("LCEFR_BOARD_MIRROR")
    if override:
        return override
    for entry in _apt_entries(apt_dir):
        if "deb" in entry["types"] and SUITE in entry["suites"] and "main" in entry["components"]:
            return entry["uris"][0]
    raise CannotEmulate(f"the host's apt sources ({apt_dir}) name no mirror of Debian {SUITE} main: "
                        "set LCEFR_BOARD_MIRROR to one")


def source_entries(apt_dir: str = "/etc/apt") -> List[str]:
    """``deb-src`` lines for the host's own Debian sources (qemu's source package for the counter)."""
    lines = []
    for entry in _apt_entries(apt_dir):
        if "deb" in entry["types"] or "deb-src" in entry["types"]:
            for uri in entry["uris"]:
                for suite in entry["suites"]:
                    line = f"deb-src {uri} {suite} {' '.join(entry['components'])}".strip()
                    if line not in lines:
                        lines.append(line)
    return lines


def _apt_proxy_env() -> Dict[str, str]:
    """The host apt's HTTP proxy, for debootstrap's own downloads."""
    env = {}
    try:
        out = subprocess.run(["apt-config", "dump"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    except OSError:
        return env
    for key, var in (("Acquire::http::Proxy", "http_proxy"), ("Acquire::https::Proxy", "https_proxy")):
        match = re.search(rf'^{re.escape(key)} "([^"]+)";', out, re.M)
        if match and match.group(1).upper() != "DIRECT":
            env[var] = match.group(1)
    return env


# ---------------------------------------------------------------- the rootfs


def _clean_env(**extra: str) -> Dict[str, str]:
    """What a board process sees: nothing of the host's environment (PIP_*, PYTHON* would leak in)."""
    return dict({"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                 "HOME": "/root", "QEMU_CPU": CPU}, **extra)


def _mounted_below(path: str) -> List[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    path = os.path.abspath(path)
    return [p for p in points if p == path or p.startswith(path + "/")]


def _unmount_below(path: str) -> None:
    for point in sorted(_mounted_below(path), key=len, reverse=True):
        if subprocess.run(["umount", point], stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)


def _remove_tree(path: str) -> None:
    if os.path.lexists(path):
        _unmount_below(path)
        shutil.rmtree(path, ignore_errors=True)


def _rootfs_complete(root: str) -> bool:
    site = os.path.join(root, GUEST_SITE.lstrip("/"))
    return os.path.isfile(os.path.join(root, MARKER.lstrip("/"))) and all(
        os.path.exists(os.path.join(site, module)) for module in RUNTIME_MODULES)


def _download_wheels(dest: str, log: str) -> List[str]:
    os.makedirs(dest, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.11",
           "--implementation", "cp", "--abi", "cp311", "-d", dest]
    for platform in WHEEL_PLATFORMS:
        cmd += ["--platform", platform]
    _run(cmd + list(RUNTIME_REQUIREMENTS), log=log, what="pip download of the board's aarch64 wheels")
    return sorted(glob.glob(os.path.join(dest, "*.whl")))


def _qemu_version() -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "qemu-user-static"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip()
    return out or "unknown"


def build_rootfs(paths: BoardPaths, say: Callable[[str], None]) -> None:
    """debootstrap the bookworm arm64 rootfs, give it the runtime venv, pack it as the cached tarball."""
    mirror = host_mirror()
    work = paths.rootfs + ".build"
    _remove_tree(work)
    os.makedirs(paths.dir, exist_ok=True)
    with open(paths.log, "w") as f:
        f.write(f"# lcefr emulated board, recipe {RECIPE}, {datetime.now(timezone.utc).isoformat()}\n")
    say(f"debootstrap {SUITE} arm64 from {mirror} (first time only, a few minutes)")
    try:
        _run(["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}", SUITE, work,
              mirror], log=paths.log, env=dict(os.environ, **_apt_proxy_env()), what="debootstrap")
    finally:
        _unmount_below(work)
    say(f"board venv: {' '.join(RUNTIME_REQUIREMENTS)} (aarch64 wheels)")
    wheels = _download_wheels(os.path.join(paths.dir, "wheels"), paths.log)
    guest_wheels = os.path.join(work, "tmp", "lcefr-wheels")
    os.makedirs(guest_wheels, exist_ok=True)
    for wheel in wheels:
        shutil.copy(wheel, guest_wheels)
    env = _clean_env()
    _run(["chroot", work, "/usr/bin/python3", "-m", "venv", BOARD_VENV], env=env, log=paths.log, what="python3 -m venv")
    _run(["chroot", work, BOARD_PYTHON, "-m", "pip", "install", "-q", "--no-index", "--find-links", "/tmp/lcefr-wheels",
          *RUNTIME_REQUIREMENTS], env=env, log=paths.log, what="pip install on the board")
    imports = ", ".join(f"{module}.interpreter" for module in RUNTIME_MODULES)
    _run(["chroot", work, BOARD_PYTHON, "-c", f"import {imports}, numpy"], env=env, log=paths.log,
         what=f"import {' and '.join(RUNTIME_MODULES)} on the board")
    shutil.rmtree(guest_wheels, ignore_errors=True)
    for leftover in glob.glob(os.path.join(work, "var/cache/apt/archives/*.deb")) + glob.glob(
            os.path.join(work, "etc/ssh/ssh_host_*")):
        os.remove(leftover)
    marker = {"emulated": True, "cpu": CPU, "cpu_name": CPU_NAME, "suite": SUITE, "recipe": RECIPE,
              "qemu": _qemu_version(), "mirror": mirror, "built_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    write_atomic(os.path.join(work, MARKER.lstrip("/")), (json.dumps(marker, indent=2) + "\n").encode())
    say(f"packing the rootfs into {os.path.basename(paths.tarball)}")
    tmp = paths.tarball + ".tmp"
    _run(["tar", "-C", work, "--numeric-owner", "-I", "zstd -T0 -3 -q", "-cf", tmp, "."], log=paths.log, what="tar")
    os.replace(tmp, paths.tarball)
    _remove_tree(paths.rootfs)
    os.replace(work, paths.rootfs)


def ensure_rootfs(paths: BoardPaths, say: Callable[[str], None] = lambda _m: None) -> str:
    """The unpacked rootfs: reused when complete, unpacked from the tarball, or built (debootstrap) first."""
    if _rootfs_complete(paths.rootfs):
        return paths.rootfs
    if not os.path.isfile(paths.tarball):
        build_rootfs(paths, say)
        return paths.rootfs
    say(f"unpacking {os.path.basename(paths.tarball)}")
    work = paths.rootfs + ".unpack"
    _remove_tree(work)
    os.makedirs(work)
    _run(["tar", "-C", work, "--numeric-owner", "-I", "zstd -q", "-xf", paths.tarball], what="tar -x of the board tarball")
    _remove_tree(paths.rootfs)
    os.replace(work, paths.rootfs)
    return paths.rootfs


def prepare(paths: Optional[BoardPaths] = None, say: Callable[[str], None] = lambda _m: None) -> str:
    """What the host-side tools need without the sshd (instruction counts): tools, binfmt, the rootfs."""
    paths = paths or board_paths()
    check_can_emulate()
    with locked(paths):
        ensure_tools(say)
        ensure_binfmt()
        return ensure_rootfs(paths, say)


# ---------------------------------------------------------------- keys, sshd, mounts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _keygen(path: str) -> None:
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lcefr-emulated-board", "-f", path], what="ssh-keygen")


def _configure(paths: BoardPaths, port: int) -> None:
    root = paths.rootfs
    _keygen(paths.key)
    _keygen(paths.host_key)
    etc_ssh = os.path.join(root, "etc", "ssh")
    os.makedirs(etc_ssh, exist_ok=True)
    host_key = os.path.join(etc_ssh, "lcefr_host_ed25519_key")
    shutil.copy(paths.host_key, host_key)
    os.chmod(host_key, 0o600)
    ssh_dir = os.path.join(root, "root", ".ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    with open(paths.key + ".pub") as f:
        write_atomic(os.path.join(ssh_dir, "authorized_keys"), f.read().encode())
    os.chmod(os.path.join(ssh_dir, "authorized_keys"), 0o600)
    with open(paths.host_key + ".pub") as f:
        kind, blob = f.read().split()[:2]
    write_atomic(paths.known_hosts, f"[{HOST}]:{port} {kind} {blob}\n".encode())
    config = (f"Port {port}\nListenAddress {HOST}\nHostKey /etc/ssh/lcefr_host_ed25519_key\nPidFile /run/lcefr-sshd.pid\n"
              "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
              "KbdInteractiveAuthentication no\nUsePAM no\nAuthorizedKeysFile .ssh/authorized_keys\n"
              f"Subsystem sftp internal-sftp\nSetEnv QEMU_CPU={CPU}\nPrintMotd no\nPrintLastLog no\n"
              "MaxSessions 30\nMaxStartups 60\n")
    write_atomic(os.path.join(etc_ssh, "lcefr_sshd_config"), config.encode())
    os.makedirs(os.path.join(root, "run", "sshd"), mode=0o755, exist_ok=True)
    cores = os.cpu_count() or 1
    write_atomic(paths.cpuinfo, "".join(_CPUINFO_ENTRY.format(n=n) for n in range(cores)).encode())
    for stale in glob.glob(os.path.join(root, "tmp", "lcefr-*")):
        shutil.rmtree(stale, ignore_errors=True)


def _mount(paths: BoardPaths, mounted: List[str]) -> None:
    root = paths.rootfs
    plan = [(["mount", "-t", "proc", "proc"], "proc"), (["mount", "-t", "sysfs", "sysfs"], "sys"),
            (["mount", "--bind", "/dev"], "dev"), (["mount", "--bind", paths.cpuinfo], "proc/cpuinfo")]
    for cmd, where in plan:
        point = os.path.join(root, where)
        if where != "proc/cpuinfo":
            os.makedirs(point, exist_ok=True)
        _run(cmd + [point], what=f"mounting {where} for the board")
        mounted.append(point)


def _alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return b"sshd" in cmdline and state != "Z"


def _port_open(port: Optional[int]) -> bool:
    if not port:
        return False
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((HOST, int(port))) == 0


def _read_state(paths: BoardPaths) -> Optional[Dict]:
    try:
        with open(paths.state) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def status(paths: Optional[BoardPaths] = None) -> Dict:
    """``host``, ``user``, ``port``, ``key``, ``known_hosts``, ``python``, ``arch``, ``cpu``, ``rootfs``, ``pid``,
    ``running`` (sshd alive and listening), plus ``tarball`` (cached or not) and ``dir``."""
    paths = paths or board_paths()
    state = _read_state(paths) or {}
    pid, port = state.get("pid"), state.get("port")
    running = _alive(pid) and _port_open(port)
    return {"host": HOST, "user": USER, "port": port, "key": paths.key, "known_hosts": paths.known_hosts,
            "python": BOARD_PYTHON, "arch": "aarch64", "cpu": CPU_NAME, "rootfs": paths.rootfs, "pid": pid if running else None,
            "running": running, "tarball": paths.tarball if os.path.isfile(paths.tarball) else None, "dir": paths.dir,
            "started_utc": state.get("started_utc") if running else None}


def target(paths: Optional[BoardPaths] = None, *, timeout: int = 30) -> SSHTarget:
    """The running board as an SSH target (pinned host key); BoardNotRunning when it is down."""
    info = status(paths)
    if not info["running"]:
        raise BoardNotRunning(NOT_RUNNING)
    return SSHTarget(f"{USER}@{HOST}", port=int(info["port"]), key=info["key"], python=BOARD_PYTHON,
                     known_hosts=info["known_hosts"], connect_timeout=timeout, strict_host_key=True)


def _descendants(pid: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[-1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s sessions (all descendants), then stop ``pid`` itself."""
    for child in _descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _stop(paths: BoardPaths, state: Dict) -> None:
    if state.get("pid") and _alive(state["pid"]):
        _kill_tree(int(state["pid"]))
    for point in reversed(state.get("mounts", [])):
        for attempt in range(20):
            if point not in _mounted_below(point):
                break
            if subprocess.run(["umount", point], stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1 * (attempt + 1))
        else:
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)
    with contextlib.suppress(FileNotFoundError):
        os.remove(paths.state)


def up(paths: Optional[BoardPaths] = None, say: Callable[[str], None] = lambda _m: None) -> Dict:
    """Start the board (building it on first use); a running board is left as it is."""
    paths = paths or board_paths()
    check_can_emulate()
    with locked(paths):
        current = status(paths)
        if current["running"]:
            return current
        stale = _read_state(paths)
        if stale:
            _stop(paths, stale)
        ensure_tools(say)
        ensure_binfmt()
        ensure_rootfs(paths, say)
        port = _free_port()
        _configure(paths, port)
        state: Dict = {"port": port, "pid": None, "mounts": [], "rootfs": paths.rootfs,
                       "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            _mount(paths, state["mounts"])
            write_atomic(paths.state, json.dumps(state).encode())
            say(f"starting the board's sshd on {HOST}:{port}")
            log = os.path.join(paths.rootfs, "var", "log", "lcefr-sshd.log")
            with contextlib.suppress(FileNotFoundError):
                os.remove(log)
            proc = subprocess.Popen(["chroot", paths.rootfs, "/usr/sbin/sshd", "-D", "-f", "/etc/ssh/lcefr_sshd_config",
                                     "-E", "/var/log/lcefr-sshd.log"], env=_clean_env(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            state["pid"] = proc.pid
            write_atomic(paths.state, json.dumps(state).encode())
            deadline = time.time() + 120
            while not _port_open(port):
                if proc.poll() is not None or time.time() > deadline:
                    text = open(log).read().strip().splitlines() if os.path.exists(log) else []
                    raise BoardError(f"the board's sshd did not start: {text[-1] if text else f'exit {proc.poll()}'}")
                time.sleep(0.2)
            board = target(paths, timeout=60)
            probe = board.run("uname -m; grep -m1 'CPU part' /proc/cpuinfo; cat " + MARKER, timeout=120)
            if probe.returncode != 0 or not probe.stdout.startswith("aarch64"):
                raise BoardError(f"cannot log in to the board: {(probe.stderr or probe.stdout).strip()[-300:]}")
        except BaseException:
            _stop(paths, state)
            raise
        return status(paths)


def down(paths: Optional[BoardPaths] = None) -> Dict:
    """Stop exactly what ``up`` started (its sshd by pid, with its sessions) and unmount what it mounted."""
    paths = paths or board_paths()
    with locked(paths):
        state = _read_state(paths)
        was = status(paths)
        if state:
            _stop(paths, state)
        return dict(status(paths), stopped=bool(was["running"]), cleaned=bool(state))
