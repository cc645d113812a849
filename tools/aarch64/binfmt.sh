#!/usr/bin/env bash
# Make sure the kernel runs aarch64 ELF binaries through qemu-user-static (binfmt_misc), which
# chroot builds need: every exec in the root is an aarch64 binary. Mounts binfmt_misc if it is
# not mounted and enables Debian's qemu-aarch64 registration (flags PF: the interpreter is opened
# at registration time, so it works inside a chroot). Exits non-zero with the reason otherwise.
set -euo pipefail
BM=/proc/sys/fs/binfmt_misc
if [ ! -e "$BM/register" ]; then
  mount -t binfmt_misc binfmt_misc "$BM" 2>/dev/null || {
    echo "binfmt.sh: cannot mount binfmt_misc at $BM (a container without it?): aarch64 programs in the root" \
         "cannot start their own subprocesses, so a build there is impossible; use a VM (tools/aarch64/vm.sh)" >&2
    exit 1
  }
fi
if [ ! -e "$BM/qemu-aarch64" ]; then
  if command -v update-binfmts >/dev/null; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
  fi
fi
if [ ! -e "$BM/qemu-aarch64" ]; then
  # Register by hand: ELF64, little endian, EM_AARCH64 (0xb7); F = open the interpreter now.
  echo ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:FP' \
    > "$BM/register"
fi
grep -q '^enabled' "$BM/qemu-aarch64" || echo 1 > "$BM/qemu-aarch64"
