// The syscall layer under the counters: perf_event_open, read, ioctl, close, and the system
// facts the error messages need. Low-level calls return -errno (like libperf); the counter
// code turns that into a state and a message. Tests swap in a scripted fake (fake_sys.cpp).
#pragma once
#include <linux/perf_event.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace mel {

struct Syscalls {
    // fd >= 0, or -errno.
    long (*perf_event_open)(perf_event_attr* attr, pid_t pid, int cpu, int group_fd, unsigned long flags);
    // bytes read, or -errno.
    long (*read)(int fd, void* buf, size_t n);
    // 0 or -errno.
    int (*ioctl)(int fd, unsigned long request, unsigned long arg);
    int (*close)(int fd);
    // kernel.perf_event_paranoid, or INT32_MIN if unreadable.
    int (*paranoid)();
    // Seccomp mode from /proc/self/status (0 none, 1 strict, 2 filter), -1 if unknown.
    int (*seccomp)();
    // The folder of the PMUs (/sys/bus/event_source/devices; the fake's recorded tree).
    std::string (*pmu_dir)();
};

const Syscalls& real_syscalls();
// The layer new counter sets use (real unless a test installed the fake). Sets keep the layer
// they were opened with.
const Syscalls& current_syscalls();

// The scripted fake (tests only). spec: ';'-separated rules, e.g.
//   "errno:cpu-cycles=ENOENT;errno:instructions=EACCES;member=EINVAL;group_max=2;"
//   "kernel=EACCES;emfile_after=3;read=short;read_errno=EIO;running=0;running=half;paranoid=3;seccomp=2"
// and, for the PMUs of a board (a recorded sysfs tree, tests/data/sysfs/<board>):
//   "sysfs=<dir>;counters=6;ext_type=ENOENT;share:armv8_cortex_a53=0.25"
// sysfs: the PMU folder the library and the fake kernel see; counters: general-purpose counters
// per core PMU (Arm: plus the cycle counter), more hardware events in a group are refused with
// EINVAL, and groups of one PMU that cannot be on it together are multiplexed; ext_type: the
// kernel refuses extended hardware types (config |= pmu type << 32) with this errno (ENOENT: an
// Arm kernel before 6.6, EINVAL: any kernel before 5.13); share:<pmu>: the share of the task's
// time on that PMU's CPUs (default: equal shares).
// Throws mel::Error(MEL_ERR_INVALID_ARGUMENT) on a bad spec. An empty spec installs a fake
// that accepts everything.
void install_fake_syscalls(const std::string& spec);
void uninstall_fake_syscalls();
// Fds the fake handed out and that are still open; closes of unknown fds (double closes).
long fake_open_fds();
long fake_bad_closes();

}  // namespace mel
