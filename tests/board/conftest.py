"""A real sshd on a loopback high port with throw-away keys, for the remote benchmark tests.

``sshd`` serves SFTP like a stock OpenSSH; ``sshd_nosftp`` has no ``Subsystem sftp`` line, like
minimal and dropbear boards, so a modern ``scp`` (SFTP protocol) fails there.

Under CI=true a missing sshd fails the tests (.ci/run installs openssh-server); elsewhere they skip.
"""
import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")


def _sshd_binary():
    return next((p for p in SSHD_CANDIDATES if os.path.exists(p)), shutil.which("sshd"))


def _missing(what):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: .ci/run installs openssh-server)")
    pytest.skip(what)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sshd:
    host: str
    port: int
    key: str
    known_hosts: str
    process: subprocess.Popen
    directory: str

    def kill(self):
        """Kill the listener and every session child it spawned (SIGKILL)."""
        sessions = subprocess.run(["pgrep", "-P", str(self.process.pid)], stdout=subprocess.PIPE, text=True).stdout.split()
        self.process.kill()
        for pid in sessions:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass


def _start_sshd(tmp_path, sftp=True):
    sshd = _sshd_binary()
    if not sshd:
        _missing("sshd not installed")
    if not shutil.which("ssh") or not shutil.which("scp"):
        _missing("ssh/scp client not installed")
    d = tmp_path / ("sshd" if sftp else "sshd-nosftp")
    d.mkdir()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        + ("Subsystem sftp internal-sftp\n" if sftp else "")
        + "PrintMotd no\nMaxSessions 20\nMaxStartups 50\n"
        f"SetEnv PATH={os.environ.get('PATH', '/usr/bin:/bin')}\n"
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)
    process = subprocess.Popen([sshd, "-D", "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")])
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None:
            pytest.fail(f"sshd exited: {(d / 'sshd.log').read_text() if (d / 'sshd.log').exists() else ''}")
        time.sleep(0.05)
    server = Sshd(f"{getpass.getuser()}@127.0.0.1", port, str(d / "client_key"), str(d / "known_hosts"), process, str(d))
    probe = subprocess.run(["ssh", "-p", str(port), "-i", server.key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                            "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
                            server.host, "echo ok"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    if probe.stdout.strip() != "ok":
        process.kill()
        pytest.fail(f"cannot log in to the test sshd: {probe.stderr.strip()} / {(d / 'sshd.log').read_text()}")
    return server


@pytest.fixture
def sshd(tmp_path):
    server = _start_sshd(tmp_path)
    yield server
    server.kill()
    server.process.wait(timeout=10)


@pytest.fixture
def sshd_nosftp(tmp_path):
    """An sshd without the SFTP subsystem (scp needs -O or a cat stream there)."""
    server = _start_sshd(tmp_path, sftp=False)
    yield server
    server.kill()
    server.process.wait(timeout=10)
