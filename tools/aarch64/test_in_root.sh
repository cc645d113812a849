#!/usr/bin/env bash
# Build this checkout's sdist on the host, pip-install it inside the arm64 root made by
# make_root.sh (the distro's g++ and CMake, under qemu-user), and run the test suite there:
#   sudo tools/aarch64/test_in_root.sh [ROOT] [-- PYTEST_ARGS...]
# Default pytest arguments: -m "not slow" (the slow tests build again or run a sanitizer fuzzer,
# which take long or cannot run under qemu-user). A second pass runs tests/test_kernels.py as a
# Cortex-A72 (QEMU_CPU; no SDOT, as on a Raspberry Pi 4), so both NEON matmuls are tested.
# Prints the build and test times. Exit status: the first failing pytest's.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$REPO/tools/aarch64"
ROOT=/tmp/aarch64/root
if [ $# -gt 0 ] && [ "$1" != "--" ]; then ROOT=$1; shift; fi
[ "${1:-}" = "--" ] && shift
PYTEST_ARGS=("$@")
[ ${#PYTEST_ARGS[@]} -eq 0 ] && PYTEST_ARGS=(-m "not slow")
PYTHON=${PYTHON:-python3}
LOW="nice -n 19 ionice -c3"
[ -e "$ROOT/.venv-done" ] || { echo "test_in_root.sh: $ROOT is not ready: run tools/aarch64/make_root.sh first" >&2; exit 1; }

in_root() {
  $LOW chroot "$ROOT" /usr/bin/env -i PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C.UTF-8 TERM=dumb ${QEMU_CPU:+QEMU_CPU=$QEMU_CPU} "$@"
}

"$HERE/binfmt.sh"
DIST=$(mktemp -d /tmp/aarch64/dist.XXXXXX)
echo "== sdist (host)"
(cd "$REPO" && "$PYTHON" -c "from scikit_build_core.build import build_sdist; print(build_sdist('$DIST'))")
SDIST=$(ls "$DIST"/*.tar.gz)

"$HERE/mounts.sh" mount "$ROOT"
trap '"$HERE/mounts.sh" umount "$ROOT"; rm -rf "$DIST"' EXIT
mkdir -p "$ROOT/tmp/mel"
cp "$SDIST" "$ROOT/tmp/mel/"
NAME=$(basename "$SDIST")

echo "== pip install $NAME in the arm64 root (g++ $(in_root g++ -dumpfullversion), $(in_root cmake --version | head -1))"
t0=$(date +%s)
# No network at build time: the build backend and pybind11 are in the venv already.
in_root sh -c "cd /tmp/mel && pip install --no-deps --no-build-isolation --no-index -q ./$NAME"
t1=$(date +%s)
echo "build+install: $((t1 - t0)) s"
in_root sh -c "cd /tmp/mel && tar xzf $NAME && python -c 'import maple_edge_lite as m, platform; print(platform.machine(), \"kernel:\", m._core.kernel_name())'"
SRC=/tmp/mel/${NAME%.tar.gz}

echo "== pytest ${PYTEST_ARGS[*]} (as QEMU's default CPU)"
rc=0
t0=$(date +%s)
# pytest's console script, not python -m pytest: the sdist folder holds the source package, which
# must not shadow the installed one.
in_root sh -c "cd $SRC && pytest -q -p no:cacheprovider --durations=5 $(printf '%q ' "${PYTEST_ARGS[@]}")" || rc=$?
t1=$(date +%s)
echo "pytest: $((t1 - t0)) s, exit $rc"

echo "== pytest tests/test_kernels.py as a Cortex-A72 (no SDOT)"
t0=$(date +%s)
rc2=0
QEMU_CPU=cortex-a72 in_root sh -c "cd / && python -c 'import maple_edge_lite as m; print(\"kernel:\", m._core.kernel_name())' && cd $SRC && pytest -q -p no:cacheprovider tests/test_kernels.py" || rc2=$?
t1=$(date +%s)
echo "pytest (cortex-a72): $((t1 - t0)) s, exit $rc2"
[ $rc -ne 0 ] && exit $rc
exit $rc2
