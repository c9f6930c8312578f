"""What a board is: one :class:`BoardFacts`, read from the raw output of two shell probes.

:data:`PROBE_COMMAND` (``lcefr jetson-setup``) collects ``uname -m``, ``ldd --version``,
``/proc/cpuinfo``, the Python and gcc versions, build tools and clocks; :data:`PROBE_SCRIPT`
(TensorRT rows of ``lcefr bench --trt-onnx``) collects ``nvcc``, ``trtexec``, ``cmake``, the TensorRT
version from ``NvInferVersion.h`` or ``dpkg -l`` and the GPU's SM version from the device tree or
``nvidia-smi``. Both parsers are pure, so they are tested on recorded outputs without a board.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from lcefr.runtime import ARM_PARTS  # the CPU part table, here for the probes and in the board runner

__all__ = ["BoardFacts", "PROBE_COMMAND", "split_probe", "parse_glibc", "parse_cpuinfo", "board_facts",
           "PROBE_SCRIPT", "probe_script", "parse_probe", "ARM_PARTS", "ARM_ARCHES", "TEGRA_SM", "TRTEXEC_CANDIDATES"]

ARM_ARCHES = {"aarch64": "aarch64", "arm64": "aarch64", "armv7l": "aarch32", "armv8l": "aarch32", "armv6l": "aarch32"}
#: Jetson SoC (device-tree ``compatible``) -> SM version of its GPU
TEGRA_SM = {"tegra210": 53, "tegra186": 62, "tegra194": 72, "tegra234": 87}
TRTEXEC_CANDIDATES = ("/usr/src/tensorrt/bin/trtexec", "/usr/local/TensorRT/bin/trtexec", "/opt/tensorrt/bin/trtexec")
TRT_INCLUDE_CANDIDATES = ("/usr/include/aarch64-linux-gnu", "/usr/include/x86_64-linux-gnu", "/usr/local/TensorRT/include",
                          "/usr/local/tensorrt/include", "/usr/include")


def _dotted(version: Optional[Tuple[int, int]]) -> Optional[str]:
    return ".".join(map(str, version)) if version else None


@dataclass
class BoardFacts:
    """A board's CPU side (architecture, glibc, Python, gcc, tools, clocks: the jetson-setup plan) and
    GPU side (CUDA, TensorRT, SM: the TensorRT rows). A probe fills the fields it reads."""

    arch: str = ""
    lce_arch: Optional[str] = None
    glibc: Optional[Tuple[int, int]] = None
    cores: int = 1
    cpu_names: List[str] = field(default_factory=list)
    board: Optional[str] = None
    python: Optional[Tuple[int, int]] = None
    gcc: Optional[Tuple[int, int]] = None
    tools: List[str] = field(default_factory=list)
    clocks_khz: List[int] = field(default_factory=list)
    nvcc: str = ""
    nvcc_version: str = ""
    trtexec: str = ""
    cmake: str = ""
    cmake_version: str = ""
    trt_header: str = ""
    trt_version: str = ""
    dpkg: List[str] = field(default_factory=list)
    sm: Optional[int] = None
    gpu: str = ""
    gnu_time: bool = False
    timeout: bool = False
    lce_benchmark: str = ""
    emulated: bool = False

    @property
    def is_jetson(self) -> bool:
        return bool(self.board and "jetson" in self.board.lower()) or "nvpmodel" in self.tools

    @property
    def trt_major(self) -> int:
        head = self.trt_version.split(".")[0]
        return int(head) if head.isdigit() else 0

    def problem(self, *, build: bool = True) -> Optional[str]:
        """Why the TensorRT plugin cannot be built and timed here, or None."""
        has_lib = bool(self.trt_header) or any("nvinfer" in d for d in self.dpkg)
        if not self.trtexec and not has_lib:
            return ("TensorRT not found on the board: no trtexec (PATH, /usr/src/tensorrt/bin), no NvInferVersion.h, "
                    "no nvinfer package (JetPack: sudo apt-get install nvidia-tensorrt)")
        if not self.trtexec:
            return (f"TensorRT {self.trt_version or '?'} found but not trtexec (PATH, /usr/src/tensorrt/bin/trtexec): "
                    "install libnvinfer-bin")
        if build and not self.trt_header:
            return "TensorRT headers not found on the board (NvInferVersion.h): install libnvinfer-dev"
        if build and not self.nvcc:
            return "nvcc not found on the board (PATH, /usr/local/cuda/bin/nvcc): install the CUDA toolkit of the JetPack"
        if build and not self.cmake:
            return "cmake not found on the board: sudo apt-get install cmake"
        return None

    def to_dict(self) -> Dict:
        """The CPU side, as the jetson-setup plan's ``facts``."""
        return {"arch": self.arch, "lce_arch": self.lce_arch, "glibc": _dotted(self.glibc), "cores": self.cores,
                "cpu_names": list(self.cpu_names), "board": self.board, "python": _dotted(self.python),
                "gcc": _dotted(self.gcc), "tools": list(self.tools), "clocks_khz": list(self.clocks_khz),
                "is_jetson": self.is_jetson, "lce_benchmark_model": self.lce_benchmark or None, "emulated": self.emulated}

    def gpu_dict(self) -> Dict:
        """The GPU side, as a bench report's ``machine["tensorrt"]``."""
        return {"arch": self.arch, "nvcc": self.nvcc, "nvcc_version": self.nvcc_version, "trtexec": self.trtexec,
                "cmake": self.cmake_version or self.cmake, "tensorrt": self.trt_version, "tensorrt_header": self.trt_header,
                "dpkg": list(self.dpkg), "board": self.board or "", "sm": self.sm, "gpu": self.gpu}


# ---------------------------------------------------------------- CPU side (jetson-setup)

#: one SSH round trip collecting everything the setup plan needs, between markers
PROBE_COMMAND = (
    "echo '@@uname'; uname -m; echo '@@ldd'; ldd --version 2>&1 | head -n 1; echo '@@cpuinfo'; cat /proc/cpuinfo; "
    "echo '@@model'; tr -d '\\0' < /proc/device-tree/model 2>/dev/null; echo; echo '@@python'; {python} --version 2>&1; "
    "echo '@@tools'; for t in cmake git gcc g++ nvpmodel jetson_clocks taskset tegrastats; do "
    "command -v $t >/dev/null 2>&1 && echo $t; done; echo '@@gcc'; gcc -dumpversion 2>/dev/null; "
    "echo '@@clocks'; cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq 2>/dev/null; "
    "echo '@@lce'; command -v lce_benchmark_model 2>/dev/null || (test -x ~/lcefr/lce_benchmark_model && "
    "echo ~/lcefr/lce_benchmark_model); echo '@@emulated'; cat /etc/lcefr-emulated-board 2>/dev/null; echo '@@end'"
)


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


def _version(text: Optional[str]) -> Optional[Tuple[int, int]]:
    match = re.search(r"(\d+)(?:\.(\d+))?", text or "")  # `gcc -dumpversion` may print just "7"
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def board_facts(uname_m: str, ldd_version: str, cpuinfo: str, *, model: str = "", python_version: str = "",
                tools: str = "", gcc: str = "", clocks: str = "", lce: str = "", emulated: str = "") -> BoardFacts:
    """The CPU side of :class:`BoardFacts` from the sections of :data:`PROBE_COMMAND`."""
    arch = uname_m.strip()
    info = parse_cpuinfo(cpuinfo)
    return BoardFacts(
        arch=arch, lce_arch=ARM_ARCHES.get(arch), glibc=parse_glibc(ldd_version), cores=info["cores"],
        cpu_names=info["cpu_names"] or ([info["model_name"]] if info["model_name"] else []),
        board=model.strip("\x00\n ") or None, python=_version(python_version), gcc=_version(gcc),
        tools=[t for t in tools.split() if t], clocks_khz=[int(c) for c in clocks.split() if c.isdigit()],
        lce_benchmark=lce.strip().splitlines()[0] if lce.strip() else "", emulated=bool(emulated.strip()))


# ---------------------------------------------------------------- GPU side (TensorRT rows)

PROBE_SCRIPT = r"""
echo "@arch=$(uname -m)"
n=$(command -v nvcc 2>/dev/null); [ -z "$n" ] && [ -x /usr/local/cuda/bin/nvcc ] && n=/usr/local/cuda/bin/nvcc
echo "@nvcc=$n"
[ -n "$n" ] && echo "@nvcc_version=$("$n" --version 2>/dev/null | grep -o 'release [0-9.]*' | head -n 1)"
t=$(command -v trtexec 2>/dev/null)
for c in {trtexec}; do [ -z "$t" ] && [ -x "$c" ] && t=$c; done
echo "@trtexec=$t"
echo "@cmake=$(command -v cmake 2>/dev/null)"
echo "@cmake_version=$(cmake --version 2>/dev/null | head -n 1)"
for h in {includes}; do
  if [ -f "$h/NvInferVersion.h" ]; then
    echo "@trt_header=$h/NvInferVersion.h"
    grep -E '^#define +(NV_TENSORRT|TRT)_(MAJOR|MINOR|PATCH)' "$h/NvInferVersion.h" | sed 's/^/@define=/'
    break
  fi
done
dpkg -l 2>/dev/null | grep -E '^ii +(lib)?(nvinfer|tensorrt)' | awk '{print "@dpkg=" $2 " " $3}'
echo "@model=$(tr -d '\000' < /proc/device-tree/model 2>/dev/null)"
echo "@compatible=$(tr '\000' ' ' < /proc/device-tree/compatible 2>/dev/null)"
echo "@compute_cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1)"
echo "@gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
/usr/bin/time -v true 2>&1 | grep -q 'Maximum resident' && echo "@gnu_time=1"
command -v timeout >/dev/null 2>&1 && echo "@timeout=1"
echo "@nproc=$(nproc 2>/dev/null || echo 1)"
echo "@end"
"""


def probe_script(tensorrt_root: Optional[str]) -> str:
    """:data:`PROBE_SCRIPT` with the trtexec and header locations filled in (``tensorrt_root`` first)."""
    includes = list(TRT_INCLUDE_CANDIDATES)
    if tensorrt_root:
        includes.insert(0, f"{tensorrt_root.rstrip('/')}/include")
    return (PROBE_SCRIPT.replace("{trtexec}", " ".join(shlex.quote(c) for c in TRTEXEC_CANDIDATES))
            .replace("{includes}", " ".join(shlex.quote(c) for c in includes)))


def parse_probe(text: str) -> BoardFacts:
    """The GPU side of :class:`BoardFacts` from the ``@key=value`` lines of :data:`PROBE_SCRIPT`."""
    facts = BoardFacts()
    defines: Dict[str, str] = {}
    values: Dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("@") or "=" not in line:
            continue
        key, value = line[1:].split("=", 1)
        value = value.strip()
        if key == "dpkg":
            facts.dpkg.append(value)
        elif key == "define":
            m = re.match(r"#define\s+(\w+)\s+(\w+)", value)
            if m:
                defines[m.group(1)] = m.group(2)
        else:
            values[key] = value
    facts.arch = values.get("arch", "")
    facts.nvcc = values.get("nvcc", "")
    facts.nvcc_version = values.get("nvcc_version", "").replace("release ", "")
    facts.trtexec = values.get("trtexec", "")
    facts.cmake = values.get("cmake", "")
    facts.cmake_version = values.get("cmake_version", "")
    facts.trt_header = values.get("trt_header", "")
    facts.board = values.get("model") or None
    facts.gpu = values.get("gpu", "")
    facts.gnu_time = values.get("gnu_time") == "1"
    facts.timeout = values.get("timeout") == "1"
    facts.cores = int(values["nproc"]) if values.get("nproc", "").isdigit() else 1

    def resolve(name: str) -> str:
        value = defines.get(name, "")
        return defines.get(value, value)

    parts = [resolve(f"NV_TENSORRT_{p}") or resolve(f"TRT_{p}_ENTERPRISE") for p in ("MAJOR", "MINOR", "PATCH")]
    if all(p.isdigit() for p in parts):
        facts.trt_version = ".".join(parts)
    else:
        for entry in facts.dpkg:
            m = re.match(r"(?:lib)?nvinfer\d*\s+(\d+\.\d+\.\d+)", entry)
            if m:
                facts.trt_version = m.group(1)
                break
    cap = values.get("compute_cap", "")
    if re.fullmatch(r"\d+\.\d+", cap):
        facts.sm = int(cap.replace(".", ""))
    else:
        for soc, sm in TEGRA_SM.items():
            if soc in values.get("compatible", ""):
                facts.sm = sm
                facts.gpu = facts.gpu or f"{soc} (sm_{sm})"
                break
    return facts
