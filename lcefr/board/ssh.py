"""The SSH transport to boards: the system ``ssh``/``scp`` in BatchMode (keys only, never a prompt)."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import List, Optional, Sequence

__all__ = ["SSHTarget", "why"]


@dataclass
class SSHTarget:
    """``user@host`` reached with the system ``ssh``/``scp`` (BatchMode: keys only, never a prompt)."""

    host: str
    port: int = 22
    key: Optional[str] = None
    python: str = "python3"
    connect_timeout: int = 10
    known_hosts: Optional[str] = None

    @property
    def label(self) -> str:
        name = self.host.split("@", 1)[-1]
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        return name if self.port == 22 else f"{name}-{self.port}"

    def _options(self) -> List[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=accept-new"]
        else:
            opts += ["-o", "StrictHostKeyChecking=accept-new"]
        if self.key:
            opts += ["-i", self.key, "-o", "IdentitiesOnly=yes"]
        return opts

    def run(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        cmd = ["ssh", "-p", str(self.port), *self._options(), self.host, command]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def put(self, files: Sequence[str], remote_dir: str, timeout: float) -> subprocess.CompletedProcess:
        cmd = ["scp", "-q", "-P", str(self.port), *self._options(), *files, f"{self.host}:{remote_dir}/"]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


def why(proc: subprocess.CompletedProcess) -> str:
    """One line saying how an ssh/scp call failed: its exit code and the last line it printed."""
    text = (proc.stderr or "").strip() or (proc.stdout or "").strip()
    last = text.splitlines()[-1] if text else ""
    return f"ssh exit {proc.returncode}: {last}" if last else f"ssh exit {proc.returncode}"
