"""jetson-setup's detection on Jetson Nano outputs, its plans, and the not-ARM exit."""
import os
import subprocess
import sys

import pytest

from lcefr.board.facts import board_facts, parse_cpuinfo, parse_glibc, split_probe
from lcefr.board.setup import NotArmBoard, plan_setup

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "bench")
LCEFR = [sys.executable, "-m", "lcefr.cli"]


def _read(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def nano(**kw):
    return board_facts(_read("jetson_nano_uname.txt"), _read("jetson_nano_ldd.txt"), _read("jetson_nano_cpuinfo.txt"),
                       model="NVIDIA Jetson Nano Developer Kit\x00", python_version="Python 3.6.9",
                       tools=kw.get("tools", "git gcc g++ nvpmodel jetson_clocks taskset tegrastats"), gcc=kw.get("gcc", "7"))


def test_nano_outputs_are_parsed():
    assert parse_glibc(_read("jetson_nano_ldd.txt")) == (2, 27)
    assert parse_glibc(_read("bookworm_ldd.txt")) == (2, 36)
    assert parse_glibc("musl libc (x86_64)\nVersion 1.2.4\n") is None
    info = parse_cpuinfo(_read("jetson_nano_cpuinfo.txt"))
    assert info["cores"] == 4 and info["cpu_parts"] == ["0xd07"] and info["cpu_names"] == ["Cortex-A57"]
    facts = nano()
    assert facts.arch == "aarch64" and facts.lce_arch == "aarch64" and facts.glibc == (2, 27)
    assert facts.python == (3, 6) and facts.is_jetson and facts.board == "NVIDIA Jetson Nano Developer Kit"


def test_nano_gets_a_native_cmake_build_of_the_converter_version():
    plan = plan_setup(nano(), lce_version="0.16.0")
    assert plan.benchmark_source == "build" and "2.27 < 2.34" in plan.reason
    text = "\n".join(plan.steps)
    assert "--branch v0.16.0" in text and "-DCOMPILE_BENCHMARK=ON" in text and "--target lce_benchmark_model" in text
    assert "-DTFLITE_ENABLE_XNNPACK=OFF" in text and any("XNNPACK" in w for w in plan.warnings)  # gcc 7
    assert "nvpmodel -m 0" in text and "jetson_clocks" in text
    assert "nvpmodel" not in "\n".join(plan_setup(nano(), clocks=False).steps)
    assert "XNNPACK=OFF" not in "\n".join(plan_setup(nano(gcc="9.4.0")).steps)
    assert any("build tools" in w for w in plan_setup(nano(tools="nvpmodel")).warnings)
    # JetPack 4's Python 3.6 has no ai-edge-litert wheel: said, not attempted
    assert "ai-edge-litert" not in text and any("no ai-edge-litert wheel" in w for w in plan.warnings)


def test_new_glibc_board_gets_the_release_binary():
    facts = board_facts("aarch64\n", _read("bookworm_ldd.txt"), _read("jetson_nano_cpuinfo.txt"), python_version="Python 3.11.2")
    plan = plan_setup(facts, lce_version="0.16.0")
    assert plan.benchmark_source == "release"
    assert any("releases/download/v0.16.0/lce_benchmark_model_aarch64" in s for s in plan.steps)
    assert not facts.is_jetson and not any("nvpmodel" in s for s in plan.steps)
    assert any("pip install --user -q 'ai-edge-litert==1.4.0'" in s for s in plan.steps)
    pi32 = board_facts("armv7l\n", _read("bookworm_ldd.txt"), "processor : 0\nCPU part : 0xd08\n")
    assert any("lce_benchmark_model_aarch32" in s for s in plan_setup(pi32).steps)


def test_x86_is_not_an_arm_board():
    facts = board_facts("x86_64\n", _read("bookworm_ldd.txt"), "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\n")
    with pytest.raises(NotArmBoard, match="not an ARM board"):
        plan_setup(facts)


def test_split_probe():
    out = "@@uname\naarch64\n@@ldd\nldd (GNU libc) 2.27\n@@cpuinfo\nprocessor : 0\n@@end\n"
    assert split_probe(out) == {"uname": "aarch64", "ldd": "ldd (GNU libc) 2.27", "cpuinfo": "processor : 0", "end": ""}


def test_cli_local_x86_exits_2():
    proc = subprocess.run(LCEFR + ["jetson-setup", "--local"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 2 and "not an ARM board" in proc.stderr and "Traceback" not in proc.stderr


def test_make_jetson_setup_over_ssh_on_x86_exits_2(sshd):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(["make", "--no-print-directory", "-C", root, "jetson-setup", f"JETSON={sshd.host}",
                           f"JETSON_PORT={sshd.port}", f"JETSON_KEY={sshd.key}", f"SETUP_ARGS=--known-hosts {sshd.known_hosts}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 2 and "not an ARM board" in proc.stderr, proc.stderr[-2000:]
