#!/usr/bin/env bash
# mounts.sh mount|umount ROOT: /proc, /sys, /dev, /dev/pts and /tmp of a chroot. Unmounting is
# lazy and tolerant, so an interrupted run can always clean up.
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
    ;;
  umount)
    for d in tmp dev/pts dev sys proc; do
      mountpoint -q "$ROOT/$d" && umount -l "$ROOT/$d" || true
    done
    ;;
  *) echo "usage: mounts.sh mount|umount ROOT" >&2; exit 2 ;;
esac
