#!/usr/bin/env bash
# The NEON kernels against the scalar reference without Python or a root: cross-compile
# tools/aarch64/neon_check.cpp with kernels_scalar.cpp and kernels_neon.cpp, run it under
# qemu-aarch64-static twice: as QEMU's "max" CPU (has SDOT: both matmuls are checked) and as a
# Cortex-A72 (no SDOT: the widening matmul only, as on a Raspberry Pi 4). About a minute.
#   tools/aarch64/neon_check.sh [OUT_DIR]     (needs g++-aarch64-linux-gnu and qemu-user-static)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/aarch64/neon_check}
mkdir -p "$OUT"
CXX=${CXX:-aarch64-linux-gnu-g++}
command -v "$CXX" >/dev/null || { echo "neon_check.sh: $CXX missing: apt-get install g++-aarch64-linux-gnu" >&2; exit 1; }
QEMU=${QEMU:-qemu-aarch64-static}
command -v "$QEMU" >/dev/null || { echo "neon_check.sh: $QEMU missing: apt-get install qemu-user-static" >&2; exit 1; }
# The library's flags for these files (CMakeLists.txt): C++17, no FMA contraction, -Wall -Wextra.
nice -n 19 "$CXX" -std=c++17 -O2 -ffp-contract=off -fno-fast-math -Wall -Wextra -Werror \
  -I"$REPO/csrc/src" -I"$REPO/csrc/include" -static \
  "$REPO/tools/aarch64/neon_check.cpp" "$REPO/csrc/src/model/kernels_scalar.cpp" "$REPO/csrc/src/model/kernels_neon.cpp" \
  -o "$OUT/neon_check"
for cpu in max cortex-a72; do
  echo "== qemu-aarch64 -cpu $cpu"
  nice -n 19 "$QEMU" -cpu "$cpu" "$OUT/neon_check"
done
