#!/usr/bin/env bash
# Make an arm64 Debian root on an x86_64 Linux host, finished and used under qemu-user-static:
#   sudo tools/aarch64/make_root.sh [ROOT]        (default ROOT=/tmp/aarch64/root)
# The root gets the distro toolchain (g++, cmake, ninja), Python with a venv in /opt/venv holding
# what the test suite and a --no-build-isolation build need. tools/aarch64/test_in_root.sh then
# builds the sdist of this checkout inside it and runs the tests. Idempotent: a finished step is
# not redone. Needs root (debootstrap, chroot, mount) and the network to Debian's mirror and PyPI.
#
# Environment: SUITE (bookworm), MIRROR (http://deb.debian.org/debian), VARIANT (minbase);
# ONNX=1 also installs onnx and onnxruntime (aarch64 wheels) in the venv: the tests that build or
# time ONNX models, the slow end-to-end one included, skip without them.
# CPU-heavy steps run under nice/ionice: the machine may be shared with latency measurements.
set -euo pipefail

ROOT=${1:-/tmp/aarch64/root}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
VARIANT=${VARIANT:-minbase}
QEMU=/usr/bin/qemu-aarch64-static
LOW="nice -n 19 ionice -c3"
HERE=$(cd "$(dirname "$0")" && pwd)

log() { printf '[make_root] %s\n' "$*" >&2; }
# Commands in the root get a clean environment: the host's PIP_*, SSL_CERT_* or proxy settings
# name host paths that do not exist there.
in_root() {
  $LOW chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
    PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

[ "$(id -u)" = 0 ] || { echo "make_root.sh: run as root (debootstrap, chroot and mount need it)" >&2; exit 1; }

# --- host tools -------------------------------------------------------------------------------
need_pkgs=()
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
[ -x "$QEMU" ] || need_pkgs+=(qemu-user-static)
command -v update-binfmts >/dev/null || need_pkgs+=(binfmt-support)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}"
fi

# --- binfmt_misc: every aarch64 exec in the root (compilers, pip's subprocesses, the tests'
# own subprocesses) must go through qemu, so the handler must be registered. Running only the
# first process through qemu-aarch64-static explicitly is not enough for a build.
"$HERE/binfmt.sh"

# --- first stage (host side: download and unpack) ---------------------------------------------
mkdir -p "$(dirname "$ROOT")"
if [ ! -e "$ROOT/.stage1-done" ] && [ ! -e "$ROOT/.stage2-done" ]; then
  log "debootstrap --foreign $SUITE arm64 into $ROOT"
  rm -rf "$ROOT"
  $LOW debootstrap --arch=arm64 --foreign --variant="$VARIANT" \
    --include=ca-certificates "$SUITE" "$ROOT" "$MIRROR"
  touch "$ROOT/.stage1-done"
fi
# The F flag of Debian's registration makes the kernel open the interpreter at registration, so a
# copy inside the root is not needed; it does no harm and covers registrations without F.
install -m 0755 "$QEMU" "$ROOT/usr/bin/qemu-aarch64-static"

# --- second stage (inside the root, emulated) -------------------------------------------------
if [ ! -e "$ROOT/.stage2-done" ]; then
  log "debootstrap --second-stage under qemu (a few minutes)"
  $LOW chroot "$ROOT" /debootstrap/debootstrap --second-stage
  rm -f "$ROOT/.stage1-done"
  touch "$ROOT/.stage2-done"
fi
chroot "$ROOT" /bin/true || { echo "make_root.sh: chroot $ROOT /bin/true failed: binfmt handler for aarch64 missing?" >&2; exit 1; }

# --- packages and the venv ---------------------------------------------------------------------
"$HERE/mounts.sh" mount "$ROOT"
trap '"$HERE/mounts.sh" umount "$ROOT"' EXIT
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
cat > "$ROOT/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
SRC
if [ ! -e "$ROOT/.apt-done" ]; then
  log "apt-get install toolchain and python (emulated dpkg: several minutes)"
  in_root sh -c \
    'apt-get update -q && apt-get install -y -q --no-install-recommends \
       python3 python3-venv python3-dev python3-pip g++ make cmake ninja-build file binutils && apt-get clean'
  touch "$ROOT/.apt-done"
fi
# pip inside the root trusts what the host trusts (a TLS-inspecting proxy's CA, if the host has
# one): the host's CA bundle, copied in and named by PIP_CERT (in_root).
if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-certificates.crt"
fi
if [ ! -e "$ROOT/.venv-done" ]; then
  log "venv /opt/venv with the build backend and the test dependencies (numpy comes as a wheel)"
  in_root sh -c \
    'python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --upgrade pip &&
     /opt/venv/bin/pip install -q --only-binary=numpy numpy pytest pytest-benchmark "scikit-build-core>=0.10" "pybind11>=2.12" "cython>=3.0" build'
  touch "$ROOT/.venv-done" "$ROOT/.cython-done"
fi
if [ ! -e "$ROOT/.cython-done" ]; then  # roots made before 0.2 (the Cython module): add its build requirement
  log "cython and numpy >= 2 in /opt/venv (0.2's build requirements)"
  in_root /opt/venv/bin/pip install -q --only-binary=numpy "numpy>=2.0" "cython>=3.0"
  touch "$ROOT/.cython-done"
fi
if [ "${ONNX:-0}" = 1 ] && [ ! -e "$ROOT/.onnx-done" ]; then
  log "onnx and onnxruntime in /opt/venv (binary wheels only)"
  in_root /opt/venv/bin/pip install -q --only-binary=:all: "onnx>=1.14" "onnxruntime>=1.16"
  touch "$ROOT/.onnx-done"
fi
log "root ready: $(in_root /opt/venv/bin/python -c 'import platform,numpy; print(platform.machine(), platform.python_version(), "numpy", numpy.__version__)')"
log "g++: $(in_root g++ -dumpfullversion), cmake: $(in_root cmake --version | head -1)"
