#include "sys.hpp"

#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

namespace mel {
namespace {

long real_open(perf_event_attr* attr, pid_t pid, int cpu, int group_fd, unsigned long flags) {
#ifdef SYS_perf_event_open
    long fd = syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags);
    return fd < 0 ? -errno : fd;
#else
    (void)attr; (void)pid; (void)cpu; (void)group_fd; (void)flags;
    return -ENOSYS;
#endif
}

long real_read(int fd, void* buf, size_t n) {
    for (;;) {
        ssize_t r = ::read(fd, buf, n);
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

int real_ioctl(int fd, unsigned long request, unsigned long arg) {
    return ::ioctl(fd, request, arg) < 0 ? -errno : 0;
}

int real_close(int fd) { return ::close(fd) < 0 ? -errno : 0; }

int read_int_file(const char* path, int fallback) {
    std::FILE* f = std::fopen(path, "r");
    if (!f) return fallback;
    int v;
    const bool ok = std::fscanf(f, "%d", &v) == 1;
    std::fclose(f);
    return ok ? v : fallback;
}

int real_paranoid() { return read_int_file("/proc/sys/kernel/perf_event_paranoid", INT_MIN); }

int real_seccomp() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int mode = -1;
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, "Seccomp:", 8) == 0) {
            mode = std::atoi(line + 8);
            break;
        }
    std::fclose(f);
    return mode;
}

std::string real_pmu_dir() { return "/sys/bus/event_source/devices"; }

const Syscalls kReal{real_open, real_read, real_ioctl, real_close, real_paranoid, real_seccomp, real_pmu_dir};

}  // namespace

std::atomic<const Syscalls*> g_current{&kReal};

const Syscalls& real_syscalls() { return kReal; }
const Syscalls& current_syscalls() { return *g_current.load(std::memory_order_acquire); }

}  // namespace mel
