#!/usr/bin/env bash
# maple_edge_lite.device.counters against the guest's `perf stat` inside the arm64 VM (vm.sh):
#   sudo tools/aarch64/perf_compare.sh [ROOT]
# 1. installs Debian's linux-perf in the root once (emulated apt under qemu-user, like vm.sh's
#    kernel) and checks that its perf matches the guest kernel (6.1; else a versioned perf_X.Y);
# 2. cross-compiles tools/aarch64/perf_workload.c (-O1 -static: a loop of exactly 2N instructions)
#    into the root's /opt/mel-perf with tools/aarch64/perf_compare.py;
# 3. boots the VM (vm.sh, VM_EXTRA) which runs perf_compare.py (perf stat -x, -e cycles,
#    instructions,cycles:u,instructions:u vs Counters(inherit=True) around posix_spawn of the same
#    workload; prints the table) and then pytest tests/test_counters_perf_stat.py and the other
#    counter tests. The table is saved in /tmp/aarch64/perf_compare.log, the raw counts in
#    /tmp/aarch64/perf_compare.json. About 2 minutes once perf is installed.
# Needs the root with the package installed (make_root.sh, test_in_root.sh), qemu-system-arm and
# gcc-aarch64-linux-gnu. Environment: N (the loop counts, default 0,10000000,40000000), REPS (3).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$REPO/tools/aarch64"
ROOT=${1:-/tmp/aarch64/root}
OUT=$(dirname "$ROOT")
N=${N:-0,10000000,40000000}
REPS=${REPS:-3}
CC=${CC:-aarch64-linux-gnu-gcc}
LOW="nice -n 19 ionice -c3"
log() { printf '[perf_compare] %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "perf_compare.sh: run as root (chroot, mount)" >&2; exit 1; }
[ -e "$ROOT/.venv-done" ] || { echo "perf_compare.sh: $ROOT is not ready: run make_root.sh and test_in_root.sh first" >&2; exit 1; }
command -v "$CC" >/dev/null || { echo "perf_compare.sh: $CC missing: apt-get install gcc-aarch64-linux-gnu" >&2; exit 1; }
"$HERE/binfmt.sh"

in_root() {
  $LOW chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"
}

# --- 1. linux-perf in the root ------------------------------------------------------------------
if [ ! -e "$ROOT/.perf-done" ]; then
  log "apt-get install linux-perf in the root (emulated apt and dpkg: a few minutes)"
  "$HERE/mounts.sh" mount "$ROOT"
  trap '"$HERE/mounts.sh" umount "$ROOT"' EXIT
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
  in_root sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends linux-perf && apt-get clean'
  "$HERE/mounts.sh" umount "$ROOT"
  trap - EXIT
  touch "$ROOT/.perf-done"
fi
KVER=$(basename "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)" | sed 's/^vmlinuz-//')
PERF_VER=$(in_root dpkg-query -W -f='${Version}' linux-perf 2>/dev/null || echo none)
log "guest kernel $KVER, linux-perf $PERF_VER, perf binaries: $(cd "$ROOT" && ls usr/bin/perf* 2>/dev/null | tr '\n' ' ')"
# Debian bookworm's linux-perf ships /usr/bin/perf itself, built from the same 6.1 source as the
# kernel. Older releases (linux-perf-X.Y) installed perf_X.Y behind a wrapper that refuses to run
# on another kernel version; the test and perf_compare.py fall back to perf_X.Y then.
PERF=/usr/bin/perf
if ! in_root "$PERF" --version >/dev/null 2>&1; then
  PERF=$(cd "$ROOT" && ls usr/bin/perf_[0-9]* 2>/dev/null | sort -V | tail -1 | sed 's|^|/|')
  [ -n "$PERF" ] || { echo "perf_compare.sh: no usable perf in the root" >&2; exit 1; }
fi
log "perf in the guest: $PERF ($(in_root "$PERF" --version 2>&1 | head -1))"

# --- 2. the workload and the comparison script ----------------------------------------------------
mkdir -p "$ROOT/opt/mel-perf"
$LOW "$CC" -O1 -static -Wall -Wextra -o "$ROOT/opt/mel-perf/perf_workload" "$HERE/perf_workload.c"
install -m 0755 "$HERE/perf_compare.py" "$ROOT/opt/mel-perf/perf_compare.py"
rm -f "$ROOT/opt/mel-perf/result.json"
# The loop instructions of the binary, as disassembled: subs + b.ne.
aarch64-linux-gnu-objdump -d "$ROOT/opt/mel-perf/perf_workload" 2>/dev/null | awk '/<main>:/,/ret/' | grep -E 'subs|b\.ne' >&2 || true

# --- 3. the VM ----------------------------------------------------------------------------------------
export VM_EXTRA="echo MEL-PERF-BEGIN; /opt/venv/bin/python /opt/mel-perf/perf_compare.py /opt/mel-perf/perf_workload \
--perf $PERF --n $N --reps $REPS --json /opt/mel-perf/result.json; rc=\$?; echo MEL-PERF-END; (exit \$rc)"
rc=0
"$HERE/vm.sh" "$ROOT" -- -v -rA tests/test_counters_perf_stat.py tests/test_counters.py tests/test_counters_arm.py || rc=$?
cp "$OUT/vm.log" "$OUT/perf_compare_vm.log"
sed -n '/MEL-PERF-BEGIN/,/MEL-PERF-END/p' "$OUT/vm.log" | tr -d '\r' | grep -v 'MEL-PERF-' > "$OUT/perf_compare.log" || true
# The guest wrote result.json into the image, not into the root: read it back without mounting.
debugfs -R "cat /opt/mel-perf/result.json" "$OUT/vm.ext4" > "$OUT/perf_compare.json" 2>/dev/null || true
echo "== table (also in $OUT/perf_compare.log)"
cat "$OUT/perf_compare.log"
grep -q "MEL-VM: extra exit 0" "$OUT/vm.log" || { echo "perf_compare.sh: the comparison failed in the guest (see $OUT/vm.log)" >&2; exit 1; }
exit $rc
