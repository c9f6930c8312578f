"""The emulated Cortex-A57 board itself: what it is, how it is reached, and up/down."""
import json
import os
import re
import subprocess
import time

import pytest

from emuhelp import ROOT, lcefr

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("board_exclusive")]

STATUS_KEYS = {"host", "user", "port", "key", "known_hosts", "python", "arch", "cpu", "rootfs", "pid", "running"}
# AT_HWCAP bits (arch/arm64/include/uapi/asm/hwcap.h)
HWCAP = {"fp": 0, "asimd": 1, "aes": 3, "crc32": 7, "atomics": 8, "fphp": 9, "asimdhp": 10, "asimddp": 20}
AUXV = ("import struct; d = open('/proc/self/auxv', 'rb').read(); "
        "print(dict(struct.unpack('<QQ', d[i:i + 16]) for i in range(0, len(d), 16)).get(16))")


def _ssh(info, command, *, known_hosts=None, timeout=120):
    return subprocess.run(["ssh", "-p", str(info["port"]), "-i", info["key"], "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                           "-o", f"UserKnownHostsFile={known_hosts or info['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
                           f"{info['user']}@{info['host']}", command],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


def test_status_json_names_the_running_board(board):
    proc = lcefr("board", "emulate", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert STATUS_KEYS <= set(info)
    assert info["running"] is True and info["host"] == "127.0.0.1" and info["user"] == "root"
    assert info["arch"] == "aarch64" and info["cpu"] == "Cortex-A57" and info["python"] == "/opt/lcefr/venv/bin/python"
    assert os.path.isfile(info["key"]) and os.path.isfile(info["known_hosts"]) and os.path.isdir(info["rootfs"])
    assert isinstance(info["pid"], int) and os.path.exists(f"/proc/{info['pid']}")
    assert info["tarball"] and info["tarball"].endswith(".tar.zst") and os.path.getsize(info["tarball"]) > 10 ** 7


def test_every_process_on_the_board_is_an_a57(board):
    proc = _ssh(board, f"uname -m; ldd --version | head -n 1; {board['python']} --version; "
                       f"cat /etc/lcefr-emulated-board; {board['python']} -c \"{AUXV}\"; "
                       "sh -c 'echo $QEMU_CPU'; grep -c 'CPU part.*0xd07' /proc/cpuinfo; grep -c '^processor' /proc/cpuinfo")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "aarch64" and lines[1].endswith("2.36") and lines[2].startswith("Python 3.11")
    marker = json.loads("\n".join(lines[3:-4]))
    assert marker["emulated"] is True and marker["cpu"] == "cortex-a57"
    hwcap = int(lines[-4])
    assert all(hwcap >> HWCAP[f] & 1 for f in ("fp", "asimd", "aes", "crc32")), hex(hwcap)
    assert not any(hwcap >> HWCAP[f] & 1 for f in ("atomics", "fphp", "asimdhp", "asimddp")), hex(hwcap)  # ARMv8.0
    assert lines[-3] == "cortex-a57" and int(lines[-2]) == int(lines[-1]) >= 1


def test_sshd_listens_on_loopback_only_with_keys_and_a_pinned_host_key(board, tmp_path):
    port = board["port"]
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in open(table).read().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    listening.append(local.rsplit(":", 1)[0])
    assert listening == ["0100007F"], listening  # 127.0.0.1, IPv4 only
    # a different pinned host key: refused, never accepted silently
    other = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    kind, blob = (tmp_path / "k.pub").read_text().split()[:2]
    other.write_text(f"[127.0.0.1]:{port} {kind} {blob}\n")
    proc = _ssh(board, "true", known_hosts=str(other))
    assert proc.returncode == 255 and "host key" in proc.stderr.lower(), proc.stderr
    # no password login
    proc = subprocess.run(["ssh", "-p", str(port), "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no",
                           "-o", f"UserKnownHostsFile={board['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
                           "root@127.0.0.1", "true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 255 and "permission denied" in proc.stderr.lower()


def test_no_ssh_call_of_the_project_disables_host_key_checking():
    offenders = []
    for base in ("lcefr", "Makefile", "jetson"):
        path = os.path.join(ROOT, base)
        files = [path] if os.path.isfile(path) else [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
        for f in files:
            if f.endswith((".py", ".sh", "Makefile")) and re.search(r"StrictHostKeyChecking=no\b", open(f).read()):
                offenders.append(os.path.relpath(f, ROOT))
    assert offenders == []


def _mounts_below(path):
    return [line.split()[1] for line in open("/proc/self/mounts") if line.split()[1].startswith(path)]


def test_down_stops_exactly_what_up_started_and_up_again_is_quick(board):
    from lcefr.board import emulate

    before = emulate.status()
    pid, rootfs = before["pid"], before["rootfs"]
    assert _mounts_below(rootfs)
    proc = lcefr("board", "emulate", "down", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["stopped"] is True, proc.stderr
    assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    assert _mounts_below(rootfs) == []
    assert lcefr("board", "emulate", "status", "--json").stdout and json.loads(
        lcefr("board", "emulate", "status", "--json").stdout)["running"] is False
    assert json.loads(lcefr("board", "emulate", "down", "--json").stdout)["stopped"] is False  # idempotent
    start = time.time()
    proc = lcefr("board", "emulate", "up", "--json")
    took = time.time() - start
    assert proc.returncode == 0, proc.stderr
    after = json.loads(proc.stdout)
    assert after["running"] and after["pid"] != pid
    assert took < 60, f"a second up took {took:.0f} s"
    assert _ssh(after, "uname -m").stdout.strip() == "aarch64"
