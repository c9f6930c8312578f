"""``make jetson-setup``: what a board is, and how it gets an ``lce_benchmark_model`` that runs.

LCE's release binaries (``lce_benchmark_model_aarch64`` / ``_aarch32``) are built on a recent
Ubuntu and need glibc >= 2.34 (reference/lce.md); a stock Jetson Nano (JetPack 4, Ubuntu 18.04)
has glibc 2.27. Such boards build the tool natively with CMake from the LCE tag matching the
converter. The detection works on the raw outputs of ``uname -m``, ``ldd --version`` and
``/proc/cpuinfo``, so it is tested on recorded outputs without a board.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

__all__ = ["NotArmBoard", "BoardFacts", "SetupPlan", "parse_glibc", "parse_cpuinfo", "board_facts", "plan_setup",
           "PROBE_COMMAND", "split_probe", "RELEASE_GLIBC", "ARM_PARTS"]

#: glibc the v0.16.0 release binaries were linked against (ubuntu-latest runners, 2024)
RELEASE_GLIBC = (2, 34)
#: ARM Ltd. (implementer 0x41) CPU part numbers of common boards
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd4b": "Cortex-A78C", "0xc07": "Cortex-A7",
             "0xc09": "Cortex-A9", "0xc0f": "Cortex-A15"}
ARM_ARCHES = {"aarch64": "aarch64", "arm64": "aarch64", "armv7l": "aarch32", "armv8l": "aarch32", "armv6l": "aarch32"}

#: one SSH round trip collecting everything the plan needs, between markers
PROBE_COMMAND = (
    "echo '@@uname'; uname -m; echo '@@ldd'; ldd --version 2>&1 | head -n 1; echo '@@cpuinfo'; cat /proc/cpuinfo; "
    "echo '@@model'; tr -d '\\0' < /proc/device-tree/model 2>/dev/null; echo; echo '@@python'; {python} --version 2>&1; "
    "echo '@@tools'; for t in cmake git gcc g++ nvpmodel jetson_clocks taskset tegrastats; do "
    "command -v $t >/dev/null 2>&1 && echo $t; done; echo '@@gcc'; gcc -dumpversion 2>/dev/null; "
    "echo '@@clocks'; cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq 2>/dev/null; echo '@@end'"
)


class NotArmBoard(Exception):
    """The host is not an ARM board (exit code 2 in the CLI)."""


def split_probe(text: str) -> Dict[str, str]:
    """Sections of PROBE_COMMAND's output by marker."""
    sections: Dict[str, List[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        elif current:
            sections[current].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


def parse_glibc(ldd_version: str) -> Optional[Tuple[int, int]]:
    """(2, 27) from the first line of ``ldd --version`` (glibc: '... 2.27'; musl prints no such line)."""
    first = ldd_version.strip().splitlines()[0] if ldd_version.strip() else ""
    match = re.search(r"(\d+)\.(\d+)\s*$", first)
    if not match or "musl" in first.lower():
        return None
    return int(match.group(1)), int(match.group(2))


def parse_cpuinfo(text: str) -> Dict:
    """Cores, CPU part names and the model string from /proc/cpuinfo (ARM or x86 layout)."""
    cores = len(re.findall(r"^processor\s*:", text, re.M))
    parts = re.findall(r"^CPU part\s*:\s*(0x[0-9a-fA-F]+)", text, re.M)
    names = sorted({ARM_PARTS.get(p.lower(), f"ARM part {p.lower()}") for p in parts})
    model = re.search(r"^(?:model name|Model|Hardware)\s*:\s*(.+)$", text, re.M)
    return {"cores": cores, "cpu_parts": sorted({p.lower() for p in parts}), "cpu_names": names,
            "model_name": model.group(1).strip() if model else None}


@dataclass
class BoardFacts:
    arch: str
    lce_arch: Optional[str]
    glibc: Optional[Tuple[int, int]]
    cores: int
    cpu_names: List[str]
    board: Optional[str]
    python: Optional[Tuple[int, int]]
    gcc: Optional[Tuple[int, int]] = None
    tools: List[str] = field(default_factory=list)
    clocks_khz: List[int] = field(default_factory=list)

    @property
    def is_jetson(self) -> bool:
        return bool(self.board and "jetson" in self.board.lower()) or "nvpmodel" in self.tools

    def to_dict(self) -> Dict:
        out = asdict(self)
        out["glibc"] = ".".join(map(str, self.glibc)) if self.glibc else None
        out["python"] = ".".join(map(str, self.python)) if self.python else None
        out["gcc"] = ".".join(map(str, self.gcc)) if self.gcc else None
        out["is_jetson"] = self.is_jetson
        return out


def _version(text: Optional[str]) -> Optional[Tuple[int, int]]:
    match = re.search(r"(\d+)(?:\.(\d+))?", text or "")  # `gcc -dumpversion` may print just "7"
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def board_facts(uname_m: str, ldd_version: str, cpuinfo: str, *, model: str = "", python_version: str = "",
                tools: str = "", gcc: str = "", clocks: str = "") -> BoardFacts:
    arch = uname_m.strip()
    info = parse_cpuinfo(cpuinfo)
    return BoardFacts(
        arch=arch, lce_arch=ARM_ARCHES.get(arch), glibc=parse_glibc(ldd_version), cores=info["cores"],
        cpu_names=info["cpu_names"] or ([info["model_name"]] if info["model_name"] else []),
        board=model.strip("\x00\n ") or None, python=_version(python_version), gcc=_version(gcc),
        tools=[t for t in tools.split() if t], clocks_khz=[int(c) for c in clocks.split() if c.isdigit()])


@dataclass
class SetupPlan:
    facts: Dict
    benchmark_source: str  # "release" or "build"
    reason: str
    steps: List[str]
    warnings: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict:
        return asdict(self)


def plan_setup(facts: BoardFacts, *, lce_version: str = "0.16.0", workdir: str = "~/lcefr", clocks: bool = True) -> SetupPlan:
    """The shell steps that give this board a matching ``lce_benchmark_model`` (and max clocks).

    Raises NotArmBoard for anything but an ARM CPU.
    """
    if facts.lce_arch is None:
        raise NotArmBoard(f"not an ARM board: uname -m says {facts.arch!r} (lce_benchmark_model is built for aarch64/armv7)")
    warnings = []
    if facts.python is None or facts.python < (3, 6):
        warnings.append(f"Python >= 3.6 is needed for the runner, found {facts.python and '.'.join(map(str, facts.python))}")
    tag = f"v{lce_version}"
    binary = f"{workdir}/lce_benchmark_model"
    if facts.glibc and facts.glibc >= RELEASE_GLIBC:
        asset = f"lce_benchmark_model_{facts.lce_arch}"
        url = f"https://github.com/larq/compute-engine/releases/download/{tag}/{asset}"
        steps = [f"mkdir -p {workdir}", f"wget -q -O {binary} {url} || curl -fsSL -o {binary} {url}", f"chmod +x {binary}",
                 f"{binary} --help >/dev/null 2>&1 || {binary} --graph=/dev/null 2>&1 | head -n 1"]
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
    if clocks and facts.is_jetson:
        steps += ["sudo -n nvpmodel -m 0 || echo 'nvpmodel needs sudo: run `sudo nvpmodel -m 0` on the board'",
                  "sudo -n jetson_clocks || echo 'jetson_clocks needs sudo: run `sudo jetson_clocks` on the board'"]
    steps.append("cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq")
    return SetupPlan(facts=facts.to_dict(), benchmark_source=source, reason=reason, steps=steps, warnings=warnings)
