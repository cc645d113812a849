#!/usr/bin/env bash
# mounts.sh mount|umount ROOT: /proc, /sys, /dev, /dev/pts and /tmp of a chroot. Unmounting is
# lazy and tolerant, so an interrupted run can always clean up.
# On a host that is not aarch64, /proc/cpuinfo in the root is an aarch64 one (a file bound over
# it): qemu-user 7.2 passes the host's x86 /proc/cpuinfo through to the emulated programs, and
# onnxruntime's cpuinfo library dies with SIGSEGV on import when it parses that with the host's
# /sys next to it. The fake lists one Cortex-A72-like core per host CPU (the CPU features that
# programs use come from the auxiliary vector, which qemu fills for the emulated CPU).
set -euo pipefail
cmd=$1 ROOT=$2
case $cmd in
  mount)
    for d in proc sys dev dev/pts tmp; do mkdir -p "$ROOT/$d"; done
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    mountpoint -q "$ROOT/sys" || mount -t sysfs sysfs "$ROOT/sys"
    mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
    mountpoint -q "$ROOT/dev/pts" || mount --bind /dev/pts "$ROOT/dev/pts"
    mountpoint -q "$ROOT/tmp" || mount -t tmpfs -o size=4g tmpfs "$ROOT/tmp"
    if [ "$(uname -m)" != aarch64 ] && ! mountpoint -q "$ROOT/proc/cpuinfo"; then
      fake=$(dirname "$ROOT")/cpuinfo.aarch64
      for i in $(seq 0 $(( $(nproc --all) - 1 ))); do
        printf 'processor\t: %d\nBogoMIPS\t: 125.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"
      done > "$fake"
      mount --bind "$fake" "$ROOT/proc/cpuinfo"
    fi
    ;;
  umount)
    for d in proc/cpuinfo tmp dev/pts dev sys proc; do
      mountpoint -q "$ROOT/$d" && umount -l "$ROOT/$d" || true
    done
    ;;
  *) echo "usage: mounts.sh mount|umount ROOT" >&2; exit 2 ;;
esac
