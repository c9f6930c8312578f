"""The SSH transport to boards: the system ``ssh``/``scp`` in BatchMode (keys only, never a prompt).

Copying falls back for boards without the SFTP subsystem (minimal sshd, dropbear), which modern
``scp`` needs: plain ``scp``, then ``scp -O`` (the legacy SCP protocol), then each file streamed
through ``ssh ... 'cat > DIR/NAME'``. The first method that works is kept for the target's later copies.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

__all__ = ["SSHTarget", "PUT_METHODS", "why"]

#: how :meth:`SSHTarget.put` copies, in the order tried: scp (SFTP protocol with OpenSSH >= 9), scp -O
#: (the legacy SCP protocol: no SFTP subsystem needed) and ``ssh 'cat > FILE'`` (a shell and cat only)
PUT_METHODS = ("scp", "scp-legacy", "cat")


@dataclass
class SSHTarget:
    """``user@host`` reached with the system ``ssh``/``scp`` (BatchMode: keys only, never a prompt)."""

    host: str
    port: int = 22
    key: Optional[str] = None
    python: str = "python3"
    connect_timeout: int = 10
    known_hosts: Optional[str] = None
    #: only host keys already in ``known_hosts`` (or ssh's own file): StrictHostKeyChecking=yes;
    #: otherwise an unknown host's key is accepted and remembered (accept-new), a changed one refused
    strict_host_key: bool = False
    #: how :meth:`put` copies to this target: one of PUT_METHODS once a copy worked, None before
    put_method: Optional[str] = field(default=None, compare=False)

    @property
    def label(self) -> str:
        name = self.host.split("@", 1)[-1]
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        return name if self.port == 22 else f"{name}-{self.port}"

    def _options(self) -> List[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        opts += ["-o", "StrictHostKeyChecking=" + ("yes" if self.strict_host_key else "accept-new")]
        if self.key:
            opts += ["-i", self.key, "-o", "IdentitiesOnly=yes"]
        return opts

    def run(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        cmd = ["ssh", "-p", str(self.port), *self._options(), self.host, command]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def put(self, files: Sequence[str], remote_dir: str, timeout: float) -> subprocess.CompletedProcess:
        """Copy ``files`` into the existing ``remote_dir``: the method that worked before, else each of
        PUT_METHODS in turn (a timeout is raised, not retried). When all fail, one line names each failure."""
        methods = [self.put_method] if self.put_method else list(PUT_METHODS)
        failures = []
        for method in methods:
            proc = self._put_with(method, files, remote_dir, timeout)
            if proc.returncode == 0:
                self.put_method = method
                return proc
            failures.append(f"{method}: {_last_line(proc) or f'exit {proc.returncode}'}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, "; ".join(failures))

    def _put_with(self, method: str, files: Sequence[str], remote_dir: str, timeout: float) -> subprocess.CompletedProcess:
        if method in ("scp", "scp-legacy"):
            # the legacy protocol hands the remote path to the board's shell, SFTP takes it as it is
            legacy = method == "scp-legacy"
            destination = _remote_path(remote_dir.rstrip("/") + "/") if legacy else f"{remote_dir}/"
            cmd = ["scp", "-q", *(["-O"] if legacy else []), "-P", str(self.port), *self._options(), *files,
                   f"{self.host}:{destination}"]
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        if method != "cat":
            raise ValueError(f"unknown copy method {method!r}, expected one of {PUT_METHODS}")
        proc = subprocess.CompletedProcess(["ssh"], 0, "", "")
        for path in files:
            target = _remote_path(f"{remote_dir.rstrip('/')}/{os.path.basename(path)}")
            command = f"cat > {target}" + (f" && chmod +x {target}" if os.access(path, os.X_OK) else "")
            cmd = ["ssh", "-p", str(self.port), *self._options(), self.host, command]
            with open(path, "rb") as source:
                done = subprocess.run(cmd, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
            proc = subprocess.CompletedProcess(cmd, done.returncode, done.stdout.decode("utf-8", "replace"),
                                               done.stderr.decode("utf-8", "replace"))
            if proc.returncode != 0:
                return proc
        return proc


def _last_line(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or "").strip() or (proc.stdout or "").strip()
    return text.splitlines()[-1] if text else ""


def why(proc: subprocess.CompletedProcess) -> str:
    """One line saying how an ssh/scp call failed: its exit code and the last line it printed."""
    last = _last_line(proc)
    return f"ssh exit {proc.returncode}: {last}" if last else f"ssh exit {proc.returncode}"


def _remote_path(path: str) -> str:
    """``path`` quoted for the board's shell; a leading ``~/`` stays the board user's home."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)
