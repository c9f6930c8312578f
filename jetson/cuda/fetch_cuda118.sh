#!/bin/sh
# Unpack Debian bookworm's CUDA 11.8 toolkit (non-free) into a local folder, without installing
# it or touching the system's apt configuration, so sm_53 (Jetson Nano) code can be compile-
# checked on a desktop/CI machine. nvcc 13 cannot target sm_53. About 860 MB of .debs, 3.7 GB
# unpacked. Usage: fetch_cuda118.sh <dir>; afterwards <dir>/bin/nvcc is usable with
# `-ccbin g++ -allow-unsupported-compiler`.
#
# This only proves compilability: binaries for the Nano itself are built on the board with
# JetPack 4.x's nvcc 10.2 (see jetson/cuda/README.md).
set -eu

dir=${1:?usage: fetch_cuda118.sh <dir>}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
apt_dir="$dir/apt"
root="$dir/root"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dir/debs" "$root" "$dir/bin"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "fetch_cuda118: $keyring missing (apt-get install debian-archive-keyring)" >&2; exit 1; }
cat > "$apt_dir/sources.list" <<EOF
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm contrib non-free
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm-updates contrib non-free
EOF

set -- -o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
  -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" \
  -o APT::Sandbox::User=root -o Debug::NoLocking=1
apt-get "$@" -q update
(cd "$dir/debs" && apt-get "$@" -q download nvidia-cuda-toolkit nvidia-cuda-dev libnvvm4 libcudart11.0)
for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$root"; done

tk="$root/usr/lib/nvidia-cuda-toolkit"
cp "$tk/bin/nvcc" "$dir/bin/nvcc"
cat > "$dir/bin/nvcc.profile" <<EOF
TOP = $tk
NVVMIR_LIBRARY_DIR = $tk/libdevice
PATH += $tk/bin:$root/usr/bin:
INCLUDES += "-I$root/usr/include" \$(_SPACE_)
LIBRARIES =+ \$(_SPACE_) -L$root/usr/lib/x86_64-linux-gnu
CUDAFE_FLAGS +=
PTXAS_FLAGS +=
EOF
"$dir/bin/nvcc" --version
