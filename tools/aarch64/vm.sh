#!/usr/bin/env bash
# Boot the arm64 root made by make_root.sh (with the package installed by test_in_root.sh) as a
# full arm64 virtual machine, so the counter tests meet a real Arm PMU: QEMU's "max" CPU emulates
# PMUv3 (the guest kernel registers it as armv8_pmuv3), and with -icount shift=0 every guest
# instruction is one virtual nanosecond, so cycles and instructions count deterministically.
#   sudo tools/aarch64/vm.sh [ROOT] [-- PYTEST_ARGS...]     (default: tests/test_counters*.py)
#   VM_EXTRA='shell command' runs that command in the guest before pytest (perf_compare.sh uses it)
# Steps: installs Debian's arm64 kernel (linux-image-arm64) in the root once, makes an ext4 image
# of the root (mke2fs -d, no loop mount), boots it with the root's own vmlinuz/initrd.img on a
# virtio disk, runs /opt/mel-vm-run.sh as init (mounts, pytest, poweroff) and prints its output.
# Needs qemu-system-arm (apt). Slow: TCG with icount runs a few hundred MIPS on this host.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$REPO/tools/aarch64"
ROOT=/tmp/aarch64/root
if [ $# -gt 0 ] && [ "$1" != "--" ]; then ROOT=$1; shift; fi
[ "${1:-}" = "--" ] && shift
PYTEST_ARGS=("$@")
[ ${#PYTEST_ARGS[@]} -eq 0 ] && PYTEST_ARGS=(tests/test_counters.py tests/test_counters_arm.py tests/test_counters_perf_stat.py)
IMG=${IMG:-$(dirname "$ROOT")/vm.ext4}
MEM=${MEM:-2048}
TIMEOUT=${TIMEOUT:-3600}
LOW="nice -n 19 ionice -c3"
[ -e "$ROOT/.venv-done" ] || { echo "vm.sh: $ROOT is not ready: run make_root.sh and test_in_root.sh first" >&2; exit 1; }
command -v qemu-system-aarch64 >/dev/null || {
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-system-arm
}
"$HERE/binfmt.sh"

# --- the guest kernel, installed in the root (emulated dpkg and initramfs: several minutes) ----
if [ ! -e "$ROOT/.kernel-done" ]; then
  "$HERE/mounts.sh" mount "$ROOT"
  trap '"$HERE/mounts.sh" umount "$ROOT"' EXIT
  $LOW chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
    sh -c 'apt-get install -y -q --no-install-recommends linux-image-arm64 initramfs-tools kmod udev && apt-get clean'
  "$HERE/mounts.sh" umount "$ROOT"
  trap - EXIT
  touch "$ROOT/.kernel-done"
fi
KERNEL=$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)
INITRD=$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -1)

# --- what the guest runs as PID 1 ------------------------------------------------------------
SRC=$(ls -d "$ROOT"/tmp/mel/maple_edge_lite-* 2>/dev/null | grep -v '\.tar\.gz$' | tail -1 || true)
if [ -z "$SRC" ]; then
  # test_in_root.sh unpacks the sdist in the root's /tmp, a tmpfs gone after it: copy the tests.
  SRC="$ROOT/opt/mel-src"
  rm -rf "$SRC" && mkdir -p "$SRC"
  cp -a "$REPO/tests" "$REPO/pyproject.toml" "$SRC/"
fi
GUEST_SRC=${SRC#"$ROOT"}
EXTRA_CMD=""
if [ -n "${VM_EXTRA:-}" ]; then
  EXTRA_CMD="$VM_EXTRA
echo \"MEL-VM: extra exit \$?\""
fi
cat > "$ROOT/opt/mel-vm-run.sh" <<RUN
#!/bin/sh
# PID 1 of the test VM (tools/aarch64/vm.sh): mount, run the counter tests, power off.
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp; mount -o remount,rw /
echo "MEL-VM: kernel \$(uname -r), PMUs: \$(ls /sys/bus/event_source/devices | tr '\n' ' ')"
echo "MEL-VM: perf_event_paranoid \$(cat /proc/sys/kernel/perf_event_paranoid)"
echo "MEL-VM: events: \$(ls /sys/bus/event_source/devices/armv8_pmuv3*/events 2>/dev/null | tr '\n' ' ')"
export HOME=/root PATH=/opt/venv/bin:/usr/bin:/bin LC_ALL=C.UTF-8
cd /
maple-edge-lite counters
echo "MEL-VM: counters exit \$?"
python3 - <<'PY'
# Determinism under -icount: the same work gives the same counts.
from maple_edge_lite.device.counters import Counters
for user_only in (False, True):
    c = Counters(["cpu-cycles", "instructions", "task-clock"], inherit=False, exclude_kernel=user_only)
    vals = []
    for _ in range(4):
        with c:
            sum(range(100000))
        r = c.results
        vals.append((r["cpu-cycles"].state, r["cpu-cycles"].value, r["instructions"].value, r["task-clock"].value))
    c.close()
    print("MEL-VM: sum(range(100000)), exclude_kernel=%s, 4 windows (state, cycles, instructions, task-clock ns):"
          % user_only, vals)
PY
$EXTRA_CMD
cd $GUEST_SRC
pytest -q -p no:cacheprovider --color=no -rs $(printf '%q ' "${PYTEST_ARGS[@]}")
echo "MEL-VM: pytest exit \$?"
sync
echo o > /proc/sysrq-trigger
sleep 10
RUN
chmod +x "$ROOT/opt/mel-vm-run.sh"

# --- disk image: the root as ext4, without mounting anything --------------------------------
# mke2fs -d copies whatever is mounted in the root too: refuse while a chroot's mounts are there.
for d in proc sys dev tmp; do
  if mountpoint -q "$ROOT/$d"; then
    echo "vm.sh: $ROOT/$d is mounted (test_in_root.sh or make_root.sh running?): wait for it, or" \
         "tools/aarch64/mounts.sh umount $ROOT" >&2
    exit 1
  fi
done
SIZE_MB=$(( $(du -sm --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./tmp "$ROOT" | cut -f1) + 1024 ))
rm -f "$IMG"
$LOW mke2fs -q -t ext4 -d "$ROOT" -L melroot "$IMG" "${SIZE_MB}M"

# --- boot ----------------------------------------------------------------------------------
echo "== booting $(basename "$KERNEL") under qemu-system-aarch64 -M virt -cpu max -icount shift=0"
t0=$(date +%s)
$LOW timeout "$TIMEOUT" qemu-system-aarch64 -M virt -cpu max -icount shift=0 -m "$MEM" -smp 1 -nographic -no-reboot -nic none \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -drive file="$IMG",format=raw,if=none,id=hd0 -device virtio-blk-pci,drive=hd0,romfile= \
  -append "root=/dev/vda rw console=ttyAMA0 init=/opt/mel-vm-run.sh quiet" | tee "$(dirname "$ROOT")/vm.log"
echo "vm: $(( $(date +%s) - t0 )) s"
grep -q "MEL-VM: pytest exit 0" "$(dirname "$ROOT")/vm.log"
