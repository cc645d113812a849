// A scripted fake of the syscall layer, so tests drive every error path (ENOENT, EOPNOTSUPP,
// ENODEV, EACCES, EPERM, EINVAL on a group, EMFILE, short reads, time_running == 0) on any
// machine, and can prove that every fd handed out was closed.
#include <linux/perf_event.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "../error.hpp"
#include "events.hpp"
#include "sys.hpp"

namespace mel {

extern std::atomic<const Syscalls*> g_current;

namespace {

struct FakeFd {
    std::string name;
    int leader;  // own fd if leader
    uint64_t id;
    uint64_t read_format;
    std::vector<int> members;  // leader only: members in open order (leader first)
    uint64_t value = 0, enabled = 0, running = 0;
};

struct Fake {
    std::map<std::string, int> errno_for;  // event name -> errno at open
    int member_errno = 0, group_max = 0, kernel_errno = 0, exclude_kernel_errno = 0, inherit_errno = 0;
    long emfile_after = -1;
    bool short_read = false;
    int read_errno = 0;
    int running_mode = 1;  // 1 full, 2 half, 0 zero
    int paranoid = 2, seccomp = 0;
    std::map<int, FakeFd> fds;
    int next_fd = 100000;
    uint64_t next_id = 1;
    long bad_closes = 0;
};

std::mutex g_mu;
Fake g_fake;

int parse_errno(const std::string& s) {
    static const std::pair<const char*, int> names[] = {
        {"ENOENT", ENOENT}, {"EOPNOTSUPP", EOPNOTSUPP}, {"ENODEV", ENODEV}, {"EACCES", EACCES}, {"EPERM", EPERM},
        {"EINVAL", EINVAL}, {"EMFILE", EMFILE},         {"EBUSY", EBUSY},   {"ENOSYS", ENOSYS}, {"EIO", EIO},
        {"E2BIG", E2BIG},   {"ENOSPC", ENOSPC},         {"EFAULT", EFAULT}, {"EINTR", EINTR},
    };
    for (const auto& n : names)
        if (s == n.first) return n.second;
    fail(MEL_ERR_INVALID_ARGUMENT, "fake syscalls: unknown errno name '" + s + "'");
}

std::string name_of(const perf_event_attr* a) {
    for (const std::string& n : known_events()) {
        const EventSpec e = resolve_event(n);
        if (e.type == a->type && e.config == a->config) return n;
    }
    char buf[48];
    std::snprintf(buf, sizeof buf, "type%u:%llx", a->type, static_cast<unsigned long long>(a->config));
    return buf;
}

long fake_open(perf_event_attr* attr, pid_t, int, int group_fd, unsigned long flags) {
    std::lock_guard<std::mutex> lock(g_mu);
    Fake& f = g_fake;
    if (!(flags & PERF_FLAG_FD_CLOEXEC)) return -EINVAL;  // the library must always ask for CLOEXEC
    if (f.emfile_after >= 0 && long(f.fds.size()) >= f.emfile_after) return -EMFILE;
    const std::string name = name_of(attr);
    auto it = f.errno_for.find(name);
    if (it != f.errno_for.end()) return -it->second;
    if (attr->inherit && f.inherit_errno) return -f.inherit_errno;
    if (!attr->exclude_kernel && f.kernel_errno) return -f.kernel_errno;
    if (attr->exclude_kernel && f.exclude_kernel_errno) return -f.exclude_kernel_errno;
    if (group_fd != -1) {
        auto g = f.fds.find(group_fd);
        if (g == f.fds.end() || g->second.leader != group_fd) return -EBADF;
        if (f.member_errno) return -f.member_errno;
        if (f.group_max > 0 && int(g->second.members.size()) >= f.group_max) return -EINVAL;
    }
    const int fd = f.next_fd++;
    FakeFd ff{name, group_fd == -1 ? fd : group_fd, f.next_id++, attr->read_format, {}, 0, 0, 0};
    if (group_fd == -1) ff.members.push_back(fd);
    else f.fds[group_fd].members.push_back(fd);
    f.fds[fd] = ff;
    return fd;
}

void tick(Fake& f, FakeFd& leader) {
    for (size_t k = 0; k < leader.members.size(); ++k) {
        FakeFd& e = f.fds[leader.members[k]];
        e.value += 1000 * (k + 1);
        e.enabled += 1000000;
        e.running += f.running_mode == 1 ? 1000000 : f.running_mode == 2 ? 500000 : 0;
    }
}

long fake_read(int fd, void* buf, size_t n) {
    std::lock_guard<std::mutex> lock(g_mu);
    Fake& f = g_fake;
    auto it = f.fds.find(fd);
    if (it == f.fds.end()) return -EBADF;
    if (f.read_errno) return -f.read_errno;
    FakeFd& e = it->second;
    std::vector<uint64_t> out;
    if (e.read_format & PERF_FORMAT_GROUP) {
        if (e.leader != fd) return -EINVAL;
        tick(f, e);
        out.push_back(e.members.size());
        out.push_back(e.enabled);
        out.push_back(e.running);
        for (int m : e.members) {
            out.push_back(f.fds[m].value);
            out.push_back(f.fds[m].id);
        }
    } else {
        tick(f, f.fds[e.leader]);
        out.push_back(e.value);
        out.push_back(e.enabled);
        out.push_back(e.running);
        out.push_back(e.id);
    }
    size_t bytes = out.size() * 8;
    if (f.short_read) bytes -= 8;
    if (n < bytes) return -ENOSPC;
    std::memcpy(buf, out.data(), bytes);
    return long(bytes);
}

int fake_ioctl(int fd, unsigned long request, unsigned long arg) {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_fake.fds.find(fd);
    if (it == g_fake.fds.end()) return -EBADF;
    if (request == PERF_EVENT_IOC_ID) {
        *reinterpret_cast<uint64_t*>(arg) = it->second.id;
        return 0;
    }
    if (request == PERF_EVENT_IOC_ENABLE || request == PERF_EVENT_IOC_DISABLE || request == PERF_EVENT_IOC_RESET) return 0;
    return -ENOTTY;
}

int fake_close(int fd) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_fake.fds.erase(fd) == 0) {
        ++g_fake.bad_closes;
        return -EBADF;
    }
    return 0;
}

int fake_paranoid() {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_fake.paranoid;
}
int fake_seccomp() {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_fake.seccomp;
}

const Syscalls kFake{fake_open, fake_read, fake_ioctl, fake_close, fake_paranoid, fake_seccomp};

}  // namespace

void install_fake_syscalls(const std::string& spec) {
    Fake f;
    size_t pos = 0;
    while (pos <= spec.size()) {
        size_t end = spec.find(';', pos);
        if (end == std::string::npos) end = spec.size();
        const std::string rule = spec.substr(pos, end - pos);
        pos = end + 1;
        if (rule.empty()) continue;
        const size_t eq = rule.find('=');
        if (eq == std::string::npos) fail(MEL_ERR_INVALID_ARGUMENT, "fake syscalls: rule '" + rule + "' has no '='");
        const std::string key = rule.substr(0, eq), val = rule.substr(eq + 1);
        if (key.rfind("errno:", 0) == 0) f.errno_for[key.substr(6)] = parse_errno(val);
        else if (key == "member") f.member_errno = parse_errno(val);
        else if (key == "group_max") f.group_max = std::stoi(val);
        else if (key == "kernel") f.kernel_errno = parse_errno(val);
        else if (key == "exclude_kernel") f.exclude_kernel_errno = parse_errno(val);
        else if (key == "inherit") f.inherit_errno = parse_errno(val);
        else if (key == "emfile_after") f.emfile_after = std::stol(val);
        else if (key == "read" && val == "short") f.short_read = true;
        else if (key == "read_errno") f.read_errno = parse_errno(val);
        else if (key == "running") f.running_mode = val == "0" ? 0 : val == "half" ? 2 : 1;
        else if (key == "paranoid") f.paranoid = std::stoi(val);
        else if (key == "seccomp") f.seccomp = std::stoi(val);
        else fail(MEL_ERR_INVALID_ARGUMENT, "fake syscalls: unknown rule '" + rule + "'");
    }
    std::lock_guard<std::mutex> lock(g_mu);
    // Keep the fd table: counter sets opened under an earlier script still close through it.
    f.fds = std::move(g_fake.fds);
    f.next_fd = g_fake.next_fd;
    f.next_id = g_fake.next_id;
    f.bad_closes = g_fake.bad_closes;
    g_fake = std::move(f);
    g_current.store(&kFake, std::memory_order_release);
}

void uninstall_fake_syscalls() { g_current.store(&real_syscalls(), std::memory_order_release); }

long fake_open_fds() {
    std::lock_guard<std::mutex> lock(g_mu);
    return long(g_fake.fds.size());
}

long fake_bad_closes() {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_fake.bad_closes;
}

}  // namespace mel
