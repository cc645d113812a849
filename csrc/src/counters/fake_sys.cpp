// A scripted fake of the syscall layer, so tests drive every error path (ENOENT, EOPNOTSUPP,
// ENODEV, EACCES, EPERM, EINVAL on a group, EMFILE, short reads, time_running == 0) on any
// machine, and can prove that every fd handed out was closed.
//
// Given a recorded sysfs tree (sysfs=<dir>), it also plays the kernel of that board: generic
// hardware events go to the first core PMU (as the kernel binds them) or, with an extended type,
// to the PMU named in config's upper half; on an Arm PMU a generic event maps to the PMUv3
// event the kernel would use and is refused (ENOENT) when the core does not list it; a group
// takes as many hardware events as the PMU has counters (Arm: plus the cycle counter) and only
// events of one PMU; a task's time is split between the core types (share:<pmu>), an event
// counts only while the task is on its PMU's CPUs, and groups of one PMU that cannot be on it
// together share its time (multiplexing).
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
#include "pmu.hpp"
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
    std::string pmu;      // the core PMU it counts on ("" = software, or no PMUs recorded)
    bool hw = false;      // takes a hardware counter
    bool cycles = false;  // CPU cycles (Arm: may take the dedicated cycle counter)
};

struct Fake {
    std::map<std::string, int> errno_for;  // event name -> errno at open
    int member_errno = 0, group_max = 0, kernel_errno = 0, exclude_kernel_errno = 0, inherit_errno = 0;
    long emfile_after = -1;
    bool short_read = false;
    int read_errno = 0;
    int running_mode = 1;  // 1 full, 2 half, 0 zero
    int paranoid = 2, seccomp = 0;
    std::string sysfs;
    std::vector<Pmu> pmus, cores;
    int counters = 0, ext_errno = 0;
    std::map<std::string, double> share;
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

const Pmu* pmu_of_type(const Fake& f, uint32_t type) {
    for (const Pmu& p : f.pmus)
        if (p.type == type) return &p;
    return nullptr;
}

// The name errno rules use: a known event's name, "<pmu>/<generic name>" for an extended
// hardware type, "<pmu>/r<hex>" for a PMU's own type, else "type<T>:<config hex>".
std::string name_of(const Fake& f, const perf_event_attr* a) {
    const bool generic = a->type == PERF_TYPE_HARDWARE || a->type == PERF_TYPE_HW_CACHE;
    const uint32_t ext = generic ? uint32_t(a->config >> 32) : 0;
    const uint64_t config = ext ? (a->config & 0xFFFFFFFFull) : a->config;
    for (const std::string& n : known_events()) {
        const EventSpec e = resolve_event(n, &f.pmus);
        if (e.type == a->type && e.config == config) {
            if (!ext) return n;
            const Pmu* p = pmu_of_type(f, ext);
            return (p ? p->name : "type" + std::to_string(ext)) + "/" + n;
        }
    }
    char buf[64];
    if (const Pmu* p = generic ? nullptr : pmu_of_type(f, a->type)) {
        std::snprintf(buf, sizeof buf, "/r%llx", static_cast<unsigned long long>(a->config));
        return p->name + buf;
    }
    std::snprintf(buf, sizeof buf, "type%u:%llx", a->type, static_cast<unsigned long long>(a->config));
    return buf;
}

// The kernel's side of a hardware event on the recorded board: the PMU it lands on, whether it
// is CPU cycles, or -errno.
long bind_hw(const Fake& f, const perf_event_attr* a, FakeFd& ff) {
    const bool generic = a->type == PERF_TYPE_HARDWARE || a->type == PERF_TYPE_HW_CACHE;
    if (generic) {
        ff.hw = true;
        const uint32_t ext = uint32_t(a->config >> 32);
        const uint64_t config = a->config & 0xFFFFFFFFull;
        const Pmu* p = nullptr;
        if (ext) {
            p = pmu_of_type(f, ext);
            if (!p || !p->core) return -ENOENT;
            if (f.ext_errno) return -f.ext_errno;
        } else if (!f.cores.empty()) {
            p = &f.cores.front();  // the first CPU PMU that accepts the event
        }
        if (!p) {
            ff.cycles = a->type == PERF_TYPE_HARDWARE && config == PERF_COUNT_HW_CPU_CYCLES;
            return 0;
        }
        ff.pmu = p->name;
        if (p->arm) {
            const std::vector<ArmEvent> cands = arm_events_for(a->type, config);
            const ArmEvent* pick = nullptr;
            for (const ArmEvent& c : cands)
                if (!pick && (!p->has_events || p->event_text(c.sysfs_name))) pick = &c;
            if (!pick) return -ENOENT;
            ff.cycles = pick->number == 0x11;
        } else {
            ff.cycles = a->type == PERF_TYPE_HARDWARE && config == PERF_COUNT_HW_CPU_CYCLES;
        }
        return 0;
    }
    if (const Pmu* p = pmu_of_type(f, a->type)) {
        if (p->core) {
            // Any raw number is accepted (an Arm core counts zero for events it lacks).
            ff.hw = true;
            ff.pmu = p->name;
            ff.cycles = p->arm && a->config == 0x11;
        }
        return 0;
    }
    if (a->type == PERF_TYPE_RAW) {
        ff.hw = true;
        if (!f.cores.empty()) ff.pmu = f.cores.front().name;
    }
    return 0;
}

// Hardware counters a group needs: Arm puts one cycles event on the cycle counter.
int counters_needed(const Fake& f, const std::vector<int>& members, const FakeFd& extra) {
    int others = 0, cycles = 0;
    auto add = [&](const FakeFd& e) {
        if (!e.hw) return;
        if (e.cycles) ++cycles;
        else ++others;
    };
    for (int m : members) add(f.fds.at(m));
    add(extra);
    return others + (cycles > 1 ? cycles - 1 : 0);
}

long fake_open(perf_event_attr* attr, pid_t, int, int group_fd, unsigned long flags) {
    std::lock_guard<std::mutex> lock(g_mu);
    Fake& f = g_fake;
    if (!(flags & PERF_FLAG_FD_CLOEXEC)) return -EINVAL;  // the library must always ask for CLOEXEC
    if (f.emfile_after >= 0 && long(f.fds.size()) >= f.emfile_after) return -EMFILE;
    const std::string name = name_of(f, attr);
    auto it = f.errno_for.find(name);
    if (it != f.errno_for.end()) return -it->second;
    FakeFd ff{name, -1, 0, attr->read_format, {}, 0, 0, 0, "", false, false};
    if (const long rc = bind_hw(f, attr, ff)) return rc;
    if (attr->inherit && f.inherit_errno) return -f.inherit_errno;
    if (!attr->exclude_kernel && f.kernel_errno) return -f.kernel_errno;
    if (attr->exclude_kernel && f.exclude_kernel_errno) return -f.exclude_kernel_errno;
    if (group_fd != -1) {
        auto g = f.fds.find(group_fd);
        if (g == f.fds.end() || g->second.leader != group_fd) return -EBADF;
        if (f.member_errno) return -f.member_errno;
        if (f.group_max > 0 && int(g->second.members.size()) >= f.group_max) return -EINVAL;
        // Hardware events of one group must be on one PMU, and fit its counters.
        if (ff.hw && !ff.pmu.empty())
            for (int m : g->second.members)
                if (f.fds[m].hw && f.fds[m].pmu != ff.pmu) return -EINVAL;
        if (f.counters > 0 && ff.hw && counters_needed(f, g->second.members, ff) > f.counters) return -EINVAL;
    }
    const int fd = f.next_fd++;
    ff.leader = group_fd == -1 ? fd : group_fd;
    ff.id = f.next_id++;
    if (group_fd == -1) ff.members.push_back(fd);
    else f.fds[group_fd].members.push_back(fd);
    f.fds[fd] = ff;
    return fd;
}

// One read advances the group by 1 ms of the task's time. Of it, the group is on its PMU for
// the task's share on that core type, divided among the hardware groups of that PMU when more
// than one cannot fit (multiplexing); counts grow only while on the PMU.
void tick(Fake& f, FakeFd& leader) {
    double on = 1.0;
    bool hw = false;
    for (int m : leader.members) hw = hw || f.fds[m].hw;
    if (hw && !leader.pmu.empty() && f.cores.size() > 1) {
        auto s = f.share.find(leader.pmu);
        on = s != f.share.end() ? s->second : 1.0 / double(f.cores.size());
    }
    if (hw && f.counters > 0) {
        int groups = 0;
        for (const auto& kv : f.fds)
            if (kv.second.leader == kv.first && kv.second.hw && kv.second.pmu == leader.pmu) ++groups;
        if (groups > 1) on /= groups;
    }
    for (size_t k = 0; k < leader.members.size(); ++k) {
        FakeFd& e = f.fds[leader.members[k]];
        e.value += uint64_t(1000.0 * double(k + 1) * on + 0.5);
        e.enabled += 1000000;
        const uint64_t full = uint64_t(1000000.0 * on + 0.5);
        e.running += f.running_mode == 1 ? full : f.running_mode == 2 ? full / 2 : 0;
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

std::string fake_pmu_dir() {
    std::lock_guard<std::mutex> lock(g_mu);
    // No recorded tree: a folder that does not exist, so the set sees no PMUs.
    return g_fake.sysfs.empty() ? std::string("/nonexistent/maple_edge_lite/fake/sysfs") : g_fake.sysfs;
}

const Syscalls kFake{fake_open, fake_read, fake_ioctl, fake_close, fake_paranoid, fake_seccomp, fake_pmu_dir};

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
        else if (key == "sysfs") f.sysfs = val;
        else if (key == "counters") f.counters = std::stoi(val);
        else if (key == "ext_type") f.ext_errno = parse_errno(val);
        else if (key.rfind("share:", 0) == 0) f.share[key.substr(6)] = std::stod(val);
        else fail(MEL_ERR_INVALID_ARGUMENT, "fake syscalls: unknown rule '" + rule + "'");
    }
    if (!f.sysfs.empty()) {
        f.pmus = read_pmus(f.sysfs);
        f.cores = core_pmus(f.pmus);
        if (f.pmus.empty()) fail(MEL_ERR_INVALID_ARGUMENT, "fake syscalls: no PMUs under sysfs=" + f.sysfs);
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
