#include "counters.hpp"

#include <linux/perf_event.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <set>

#include "../error.hpp"

namespace mel {

namespace {

constexpr uint64_t kReadFormat =
    PERF_FORMAT_GROUP | PERF_FORMAT_ID | PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;

std::string errno_name(int err) {
    switch (err) {
        case ENOENT: return "ENOENT";
        case EOPNOTSUPP: return "EOPNOTSUPP";
        case ENODEV: return "ENODEV";
        case EACCES: return "EACCES";
        case EPERM: return "EPERM";
        case EINVAL: return "EINVAL";
        case EMFILE: return "EMFILE";
        case ENFILE: return "ENFILE";
        case EBUSY: return "EBUSY";
        case ENOSYS: return "ENOSYS";
        case E2BIG: return "E2BIG";
        case ENOSPC: return "ENOSPC";
        case EIO: return "EIO";
        default: return "errno " + std::to_string(err);
    }
}

std::string paranoid_text(int paranoid) {
    return paranoid == INT_MIN ? std::string("unknown (/proc/sys/kernel/perf_event_paranoid unreadable)")
                               : std::to_string(paranoid);
}

}  // namespace

int state_for_open_errno(int err) {
    return (err == EACCES || err == EPERM) ? MEL_COUNTER_DENIED : MEL_COUNTER_UNSUPPORTED;
}

std::string reason_for_open_errno(int err, int paranoid, int seccomp, bool kernel_excluded) {
    const std::string code = " (" + errno_name(err) + ", errno " + std::to_string(err) + ")";
    switch (err) {
        case ENOENT:
            return "the kernel has no such event on this CPU" + code +
                   ": no hardware PMU is exposed (usual in VMs and many containers) or this PMU lacks the event";
        case EOPNOTSUPP:
            return "the PMU cannot count this event here" + code +
                   (kernel_excluded ? std::string(": it may be unable to exclude kernel mode, which perf_event_paranoid "
                                                  "requires; lower the paranoid level or grant CAP_PERFMON")
                                    : std::string(": the hardware or hypervisor does not support it"));
        case ENODEV: return "no PMU for this event type on this CPU" + code;
        case EINVAL: return "the kernel rejected this event's configuration" + code;
        case E2BIG: return "the kernel is older than this library's perf_event_attr" + code;
        case EBUSY: return "the PMU is in exclusive use by another process" + code;
        case ENOSYS:
            return "perf_event_open is unavailable" + code +
                   ": the kernel is built without CONFIG_PERF_EVENTS, or a seccomp filter blocks the syscall";
        case EACCES:
        case EPERM: {
            std::string r = "permission denied" + code + " at kernel.perf_event_paranoid=" + paranoid_text(paranoid);
            if (paranoid != INT_MIN && paranoid >= 3)
                r += ": level 3 (Debian's default) forbids unprivileged counting; run `sudo sysctl -w "
                     "kernel.perf_event_paranoid=2` (user-space counting) or grant CAP_PERFMON (`sudo setcap "
                     "cap_perfmon+ep <python>`)";
            else
                r += ": grant CAP_PERFMON (`sudo setcap cap_perfmon+ep <python>`) or lower the level with `sudo sysctl -w "
                     "kernel.perf_event_paranoid=1`";
            if (seccomp == 2)
                r += "; this process also runs under a seccomp filter (a container?): allow perf_event_open in its "
                     "profile (e.g. docker run --cap-add PERFMON --security-opt seccomp=<profile>)";
            return r;
        }
        default: return std::string("perf_event_open failed: ") + std::strerror(err) + code;
    }
}

CounterSet::CounterSet(const std::vector<std::string>& names, unsigned flags)
    : sys_(current_syscalls()), flags_(flags), paranoid_(sys_.paranoid()), seccomp_(sys_.seccomp()) {
    if (flags & ~(MEL_COUNTERS_NO_INHERIT | MEL_COUNTERS_EXCLUDE_KERNEL | MEL_COUNTERS_NO_GROUP))
        fail(MEL_ERR_INVALID_ARGUMENT, "unknown flag bits in mel_counters_open flags");
    if (names.empty()) fail(MEL_ERR_INVALID_ARGUMENT, "no events requested");
    if (names.size() > 256) fail(MEL_ERR_LIMIT, "more than 256 events requested");
    // Unprivileged processes may not count kernel mode at paranoid >= 2: ask for user space only
    // from the start rather than failing and retrying every event.
    exclude_kernel_ = (flags & MEL_COUNTERS_EXCLUDE_KERNEL) || (paranoid_ >= 2 && geteuid() != 0);
    pmus_ = read_pmus(sys_.pmu_dir());
    cores_ = core_pmus(pmus_);
    const bool hetero = cores_.size() > 1;
    std::set<std::string> seen;
    for (const std::string& n : names) {
        // Throws on an unknown name, before any fd is opened.
        EventSpec spec = resolve_event(n, &pmus_);
        if (!seen.insert(spec.name).second)
            fail(MEL_ERR_INVALID_ARGUMENT, "event '" + n + "' is requested twice");
        spec.name = n;  // report under the caller's spelling (aliases stay aliases)
        CounterView v;
        v.name = n;
        if (hetero && spec.generic && spec.pmu.empty()) {
            // Once per core type: PERF_TYPE_HARDWARE alone would count on one core type only.
            v.per_pmu = true;
            for (const Pmu& p : cores_) {
                CounterEvent e;
                e.spec = spec;
                e.spec.config |= uint64_t(p.type) << 32;  // PERF_PMU_TYPE_SHIFT
                e.pmu = p.name;
                e.ext = true;
                e.view = views_.size();
                v.parts.push_back(events_.size());
                events_.push_back(std::move(e));
            }
        } else {
            CounterEvent e;
            e.spec = spec;
            e.pmu = spec.pmu;
            e.ext = spec.generic && !spec.pmu.empty();
            e.view = views_.size();
            const Pmu* p = spec.pmu.empty() ? nullptr : pmu_named(spec.pmu);
            v.core_bound = hetero && p && p->core;
            v.parts.push_back(events_.size());
            events_.push_back(std::move(e));
        }
        views_.push_back(std::move(v));
    }
    try {
        for (size_t i = 0; i < events_.size(); ++i) open_event(i);
    } catch (...) {
        close_all();
        throw;
    }
    finish_views(false);
}

CounterSet::~CounterSet() { close_all(); }

void CounterSet::close_all() noexcept {
    // Members before leaders, so a group is never left with a closed leader and live members.
    for (auto it = events_.rbegin(); it != events_.rend(); ++it)
        if (it->fd >= 0) {
            sys_.close(it->fd);
            it->fd = -1;
        }
}

long CounterSet::open_with_fallback(CounterEvent& e, int group_fd, bool leader) {
    perf_event_attr a;
    std::memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = e.spec.type;
    a.config = e.spec.config;
    a.read_format = kReadFormat;
    a.disabled = leader ? 1 : 0;  // members follow their leader
    // inherit: threads the runtime creates after open are counted too. Costs a counter per
    // thread in the kernel and some overhead at thread creation and exit.
    a.inherit = (flags_ & MEL_COUNTERS_NO_INHERIT) ? 0 : 1;
    a.exclude_kernel = exclude_kernel_ ? 1 : 0;
    a.exclude_hv = exclude_kernel_ ? 1 : 0;
    long fd = sys_.perf_event_open(&a, 0, -1, group_fd, PERF_FLAG_FD_CLOEXEC);
    if ((fd == -EACCES || fd == -EPERM) && !a.exclude_kernel) {
        // Kernel-mode counting is forbidden here: count user space only, for this event and
        // every later one, and record it.
        const long denied = fd;
        a.exclude_kernel = 1;
        a.exclude_hv = 1;
        fd = sys_.perf_event_open(&a, 0, -1, group_fd, PERF_FLAG_FD_CLOEXEC);
        if (fd >= 0) {
            exclude_kernel_ = true;
        } else if (fd != -EACCES && fd != -EPERM && fd != -EINVAL && fd != -ENOSPC) {
            // Some ARM PMUs cannot exclude kernel mode: the root cause is still the permission.
            e.note = "; counting user space only was tried and failed too (" + errno_name(int(-fd)) +
                     "): this PMU may be unable to exclude kernel mode";
            fd = denied;
        }
    }
    if (fd == -EINVAL && a.inherit && leader) {
        // Old kernels refuse inherit with PERF_FORMAT_GROUP: count this thread only, and say so.
        a.inherit = 0;
        fd = sys_.perf_event_open(&a, 0, -1, group_fd, PERF_FLAG_FD_CLOEXEC);
        if (fd >= 0) e.flags |= MEL_COUNTER_FLAG_NO_INHERIT;
    }
    if (fd >= 0 && a.exclude_kernel) e.flags |= MEL_COUNTER_FLAG_KERNEL_EXCLUDED;
    return fd;
}

const Pmu* CounterSet::pmu_named(const std::string& name) const {
    for (const Pmu& p : pmus_)
        if (p.name == name) return &p;
    return nullptr;
}

// Hardware events share a group only when they are on the same PMU (the kernel refuses the rest).
std::string CounterSet::group_key(const CounterEvent& e) const {
    if (e.spec.software) return "";
    if (!e.pmu.empty()) return e.pmu;
    if (e.spec.type >= PERF_TYPE_MAX)
        for (const Pmu& p : pmus_)
            if (p.type == e.spec.type) return p.name;
    return cores_.size() == 1 ? cores_[0].name : std::string();
}

// True unless an Arm core's sysfs listing shows it lacks every PMUv3 event behind this generic
// event (then the kernel refuses it with ENOENT, extended type or not).
bool CounterSet::arm_listed(const CounterEvent& e) const {
    const Pmu* p = !e.pmu.empty() ? pmu_named(e.pmu) : (cores_.size() == 1 ? &cores_[0] : nullptr);
    if (!e.spec.generic || !p || !p->arm) return true;
    const std::vector<ArmEvent> cands = arm_events_for(e.spec.type, e.spec.config & 0xFFFFFFFFull);
    if (cands.empty()) return false;
    if (!p->has_events) return true;
    for (const ArmEvent& a : cands)
        if (p->event_text(a.sysfs_name)) return true;
    return false;
}

void CounterSet::set_open_failure(CounterEvent& e, int err, const std::string& note) {
    e.open_errno = err;
    e.open_state = state_for_open_errno(err);
    e.open_reason = reason_for_open_errno(err, paranoid_, seccomp_, exclude_kernel_) + e.note + note;
    e.state = e.open_state;
    e.reason = e.open_reason;
}

// Why an Arm core lacks a generic event, from the Arm PMUv3 event the kernel maps it to and the
// events the PMU lists in sysfs (which, for PMUv3, are the common events the core implements).
std::string CounterSet::arm_note(const CounterEvent& e) const {
    if (!e.spec.generic) return "";
    const Pmu* p = !e.pmu.empty() ? pmu_named(e.pmu) : (cores_.size() == 1 ? &cores_[0] : nullptr);
    if (!p || !p->arm) return "";
    const std::vector<ArmEvent> cands = arm_events_for(e.spec.type, e.spec.config & 0xFFFFFFFFull);
    if (cands.empty())
        return "; the kernel maps this generic event to no Arm PMUv3 event (there is none for last-level-cache "
               "writes): it cannot be counted on " + p->name;
    if (!p->has_events) return "";
    for (const ArmEvent& a : cands)
        if (p->event_text(a.sysfs_name)) return "";
    char num[8];
    std::snprintf(num, sizeof num, "0x%02X", unsigned(cands[0].number));
    std::string r = "; " + p->name + " does not implement " + cands[0].sysfs_name + " (PMUv3 event " + num + ")";
    if (cands.size() > 1) r += std::string(" nor ") + cands[1].sysfs_name;
    if (*cands[0].note) {
        std::string note = cands[0].note;
        const size_t at = note.find("<pmu>");
        if (at != std::string::npos) note.replace(at, 5, p->name);
        r += ": " + note;
    }
    return r;
}

// The kernel refused the extended type for this Arm PMU (before Linux 6.6): open the PMUv3 event
// the kernel would have used, as a raw event of the PMU's own type. The kernel accepts any raw
// number there and counts zero for events the core lacks, so the event must be listed in sysfs.
// Returns false (with the event's state set) when there is no such event on this core.
bool CounterSet::to_pmu_raw(CounterEvent& e) {
    const Pmu* p = pmu_named(e.pmu);
    const std::vector<ArmEvent> cands = arm_events_for(e.spec.type, e.spec.config & 0xFFFFFFFFull);
    const ArmEvent* pick = nullptr;
    for (const ArmEvent& a : cands)
        if (!pick && (!p || !p->has_events || p->event_text(a.sysfs_name))) pick = &a;
    if (!p || !p->arm || !pick) {
        set_open_failure(e, ENOENT, p && p->arm ? arm_note(e)
                                                : "; the kernel refuses extended hardware types (Linux 5.13 and later "
                                                  "have them) and " + e.pmu + " is not an Arm PMUv3 PMU");
        return false;
    }
    e.spec.type = p->type;
    e.spec.config = pick->number;
    e.ext = false;
    return true;
}

void CounterSet::open_event(size_t i) {
    CounterEvent& e = events_[i];
    if (e.ext && std::find(no_ext_.begin(), no_ext_.end(), e.pmu) != no_ext_.end() && !to_pmu_raw(e)) return;
    long fd = -1;
    // Join the open group of the same kind (software events in one group, hardware ones in as
    // few as the PMU accepts); a group the PMU cannot schedule whole is refused with EINVAL
    // (or ENOSPC), and the event starts a new group.
    if (!(flags_ & MEL_COUNTERS_NO_GROUP)) {
        for (size_t g = groups_.size(); g-- > 0;) {
            if (groups_[g].software != e.spec.software || groups_[g].pmu != group_key(e)) continue;
            fd = open_with_fallback(e, groups_[g].leader_fd, false);
            if (fd >= 0) {
                e.group = int(g);
                groups_[g].events.push_back(i);
            }
            break;  // only the newest group of this kind is tried
        }
    }
    if (fd == -EMFILE || fd == -ENFILE)
        fail(MEL_ERR_RESOURCE, "too many open files opening counter '" + e.spec.name + "' (" + errno_name(int(-fd)) +
                                   "): raise the limit (`ulimit -n`) or count fewer events");
    if (fd < 0 && !(fd == -EINVAL || fd == -ENOSPC || fd == -1)) {
        // A member failed for a reason of its own (unsupported, denied): it would fail alone too.
        // Confirm by opening it alone, which also gives the errno for a leader.
        fd = -1;
    }
    if (e.group < 0) {
        fd = open_with_fallback(e, -1, true);
        if (fd == -EMFILE || fd == -ENFILE)
            fail(MEL_ERR_RESOURCE, "too many open files opening counter '" + e.spec.name + "' (" +
                                       errno_name(int(-fd)) + "): raise the limit (`ulimit -n`) or count fewer events");
        if (fd < 0) {
            const int err = int(-fd);
            const Pmu* p = e.ext ? pmu_named(e.pmu) : nullptr;
            if ((err == ENOENT || err == EINVAL || err == EOPNOTSUPP) && p && p->arm && arm_listed(e)) {
                // The core has the event, so the kernel refused the extended type (Arm before
                // Linux 6.6: ENOENT; before 5.13: EINVAL): this PMU's events go by its own type.
                no_ext_.push_back(e.pmu);
                if (to_pmu_raw(e)) open_event(i);
                return;
            }
            set_open_failure(e, err, err == ENOENT ? arm_note(e) : std::string());
            return;
        }
        CounterGroup g;
        g.leader_fd = int(fd);
        g.software = e.spec.software;
        g.pmu = group_key(e);
        g.events.push_back(i);
        groups_.push_back(g);
        e.group = int(groups_.size() - 1);
    }
    e.fd = int(fd);
    uint64_t id = 0;
    const int rc = sys_.ioctl(e.fd, PERF_EVENT_IOC_ID, reinterpret_cast<unsigned long>(&id));
    if (rc < 0) {
        // Without its id the event cannot be found in a group read: treat it as unsupported.
        // (Only possible for the newest event of its group, so the group stays consistent.)
        CounterGroup& g = groups_[size_t(e.group)];
        g.events.pop_back();
        sys_.close(e.fd);
        e.fd = -1;
        if (g.events.empty()) groups_.pop_back();
        e.group = -1;
        e.open_errno = -rc;
        e.open_state = MEL_COUNTER_UNSUPPORTED;
        e.open_reason = "PERF_EVENT_IOC_ID failed (" + errno_name(-rc) + "): this kernel is too old for group reads";
        e.state = e.open_state;
        e.reason = e.open_reason;
        return;
    }
    e.id = id;
    e.state = MEL_COUNTER_NOT_COUNTED;
    e.reason = "no counting window yet: call start and stop";
}

bool CounterSet::read_group(CounterGroup& g, std::vector<uint64_t>& values, uint64_t& enabled, uint64_t& running,
                            std::string& problem, int& err) {
    const size_t nr = g.events.size();
    uint64_t buf[3 + 2 * 256];
    const size_t expect = (3 + 2 * nr) * sizeof(uint64_t);
    const long got = sys_.read(g.leader_fd, buf, sizeof buf);
    if (got < 0) {
        err = int(-got);
        problem = "reading the counter group failed (" + errno_name(err) + ")";
        return false;
    }
    if (size_t(got) != expect || buf[0] != nr) {
        err = EIO;
        problem = "short or malformed read of the counter group: the kernel returned " + std::to_string(got) +
                  " bytes for " + std::to_string(buf[0] * (size_t(got) >= 8)) + " events, expected " +
                  std::to_string(expect) + " bytes for " + std::to_string(nr);
        return false;
    }
    enabled = buf[1];
    running = buf[2];
    values.assign(nr, 0);
    for (size_t k = 0; k < nr; ++k) {
        const uint64_t v = buf[3 + 2 * k], id = buf[4 + 2 * k];
        bool found = false;
        for (size_t j = 0; j < nr; ++j)
            if (events_[g.events[j]].id == id) {
                values[j] = v;
                found = true;
                break;
            }
        if (!found) {
            err = EIO;
            problem = "the kernel returned an unknown event id in the group read";
            return false;
        }
    }
    return true;
}

void CounterSet::start() {
    for (CounterGroup& g : groups_) {
        g.start_ok = false;
        g.start_problem.clear();
        g.start_errno = 0;
        if (!g.enabled && !g.enable_failed) {
            // Enabled once and left running: a window is then two reads, two syscalls per group.
            const int rc = sys_.ioctl(g.leader_fd, PERF_EVENT_IOC_ENABLE, PERF_IOC_FLAG_GROUP);
            if (rc < 0) {
                g.enable_failed = true;
                g.start_errno = -rc;
                g.start_problem = "enabling the counter group failed (" + errno_name(-rc) + ")";
                continue;
            }
            g.enabled = true;
        }
        if (g.enable_failed) continue;
        g.start_ok = read_group(g, g.start_values, g.start_enabled, g.start_running, g.start_problem, g.start_errno);
    }
    state_ = 1;
}

void CounterSet::stop() {
    if (state_ != 1) fail(MEL_ERR_INVALID_ARGUMENT, "mel_counters_stop called without a matching mel_counters_start");
    std::vector<uint64_t> values;
    for (CounterGroup& g : groups_) {
        uint64_t en = 0, run = 0;
        std::string problem = g.start_problem;
        int err = g.start_errno;
        bool ok = g.start_ok && read_group(g, values, en, run, problem, err);
        for (size_t k = 0; k < g.events.size(); ++k) {
            CounterEvent& e = events_[g.events[k]];
            e.read_errno = ok ? 0 : err;
            if (!ok) {
                e.state = MEL_COUNTER_NOT_COUNTED;
                e.value = e.raw = e.enabled_ns = e.running_ns = 0;
                e.reason = problem;
                continue;
            }
            e.raw = values[k] - g.start_values[k];
            e.enabled_ns = en - g.start_enabled;
            e.running_ns = run - g.start_running;
            if (e.running_ns == 0) {
                e.state = MEL_COUNTER_NOT_COUNTED;
                e.value = 0;
                e.reason = "opened but never scheduled on a counter during the window (time_running = 0): more events "
                           "than hardware counters, or the PMU was busy; count fewer events at once";
            } else if (e.running_ns >= e.enabled_ns) {
                e.state = MEL_COUNTER_COUNTED;
                e.value = e.raw;
                e.reason.clear();
            } else {
                // Multiplexed: estimate the full-window count from the share of time counted.
                e.state = MEL_COUNTER_SCALED;
                const long double v = (long double)e.raw * (long double)e.enabled_ns / (long double)e.running_ns;
                e.value = v >= 1.8e19L ? UINT64_MAX : uint64_t(v + 0.5L);
                e.reason = "multiplexed: counted " + std::to_string(e.running_ns) + " of " + std::to_string(e.enabled_ns) +
                           " ns and scaled";
            }
        }
    }
    finish_views(true);
    state_ = 2;
}

void CounterSet::finish_views(bool window) {
    for (CounterView& v : views_) {
        v.flags = v.per_pmu ? MEL_COUNTER_FLAG_PER_PMU : v.core_bound ? MEL_COUNTER_FLAG_CORE_TYPE : 0u;
        if (!v.per_pmu) {
            const CounterEvent& e = events_[v.parts[0]];
            v.state = e.state;
            v.value = e.value;
            v.raw = e.raw;
            v.enabled_ns = e.enabled_ns;
            v.running_ns = e.running_ns;
            v.err = e.fd < 0 ? e.open_errno : e.read_errno;
            v.flags |= e.flags;
            v.reason = e.reason;
            if (window && v.core_bound && e.fd >= 0 && e.read_errno == 0) {
                const Pmu* p = pmu_named(e.pmu);
                const std::string where = e.pmu + "'s CPUs (" + (p && !p->cpus.empty() ? p->cpus : "?") + ")";
                if (v.state == MEL_COUNTER_SCALED) {
                    // Time off the counter is (mostly) time on other core types, not multiplexing:
                    // the count on this core type is the raw count.
                    v.state = MEL_COUNTER_COUNTED;
                    v.value = e.raw;
                    v.reason.clear();
                } else if (v.state == MEL_COUNTER_NOT_COUNTED) {
                    v.reason = "never on a counter during the window (time_running = 0): the task did not run on " +
                               where + ", or the PMU was busy";
                }
            }
            continue;
        }
        // Generic event on every core type: the sum of the parts that opened.
        std::vector<const CounterEvent*> open, closed;
        for (size_t k : v.parts) (events_[k].fd >= 0 ? open : closed).push_back(&events_[k]);
        v.value = v.raw = v.enabled_ns = v.running_ns = 0;
        v.err = 0;
        v.reason.clear();
        std::string missing;
        for (const CounterEvent* e : closed) missing += (missing.empty() ? "" : "; ") + e->pmu + ": " + e->reason;
        if (open.empty()) {
            const CounterEvent& e = *closed.front();
            v.state = e.open_state;
            v.err = e.open_errno;
            bool same = true;
            for (const CounterEvent* c : closed) same = same && c->reason == e.reason;
            v.reason = same ? e.reason : "on no core type: " + missing;
            continue;
        }
        if (!window) {
            v.state = MEL_COUNTER_NOT_COUNTED;
            v.reason = "no counting window yet: call start and stop";
            continue;
        }
        const CounterEvent* bad = nullptr;
        uint64_t raw = 0, run = 0, en_min = UINT64_MAX, en_max = 0;
        for (const CounterEvent* e : open) {
            v.flags |= e->flags;
            if (e->read_errno != 0 && !bad) bad = e;
            raw += e->raw;
            run += e->running_ns;
            en_min = std::min(en_min, e->enabled_ns);
            en_max = std::max(en_max, e->enabled_ns);
        }
        if (bad) {
            v.state = MEL_COUNTER_NOT_COUNTED;
            v.err = bad->read_errno;
            v.reason = bad->pmu + ": " + bad->reason;
            continue;
        }
        v.raw = raw;
        v.enabled_ns = en_max;
        v.running_ns = std::min(run, en_max);
        const std::string elsewhere =
            missing.empty() ? std::string() : "; not countable on some core types, whose time is extrapolated (" + missing + ")";
        if (run == 0) {
            v.state = MEL_COUNTER_NOT_COUNTED;
            v.raw = 0;
            v.reason = "opened on every core type but never scheduled on a counter during the window (time_running = 0): "
                       "more events than hardware counters, or the PMU was busy; count fewer events at once" + elsewhere;
        } else if (run >= en_min) {
            // The parts' running times add up to the window (each group is read a little later
            // than the one before, so each enabled time differs by the reads' cost): exact.
            v.state = MEL_COUNTER_COUNTED;
            v.value = raw;
        } else {
            v.state = MEL_COUNTER_SCALED;
            const long double x = (long double)raw * (long double)en_max / (long double)run;
            v.value = x >= 1.8e19L ? UINT64_MAX : uint64_t(x + 0.5L);
            v.reason = "multiplexed: counted " + std::to_string(run) + " of " + std::to_string(en_max) +
                       " ns over the core types and scaled" + elsewhere;
        }
    }
}

void CounterSet::read(mel_counter_value* out, size_t n) const {
    if (n != views_.size())
        fail(MEL_ERR_INVALID_ARGUMENT, "mel_counters_read needs room for exactly " + std::to_string(views_.size()) +
                                           " values (got " + std::to_string(n) + ")");
    if (state_ != 2) fail(MEL_ERR_INVALID_ARGUMENT, "no finished counting window: call mel_counters_start, then mel_counters_stop");
    for (size_t i = 0; i < n; ++i)
        if (out[i].size < sizeof(mel_counter_value))
            fail(MEL_ERR_INVALID_ARGUMENT, "mel_counter_value.size must be set to sizeof(mel_counter_value) (" +
                                               std::to_string(sizeof(mel_counter_value)) + ")");
    for (size_t i = 0; i < n; ++i) {
        const CounterView& e = views_[i];
        mel_counter_value& v = out[i];
        v.state = e.state;
        v.value = (e.state == MEL_COUNTER_COUNTED || e.state == MEL_COUNTER_SCALED) ? e.value : 0;
        v.raw = v.state == MEL_COUNTER_NOT_COUNTED ? 0 : e.raw;
        v.enabled_ns = e.enabled_ns;
        v.running_ns = e.running_ns;
        v.error = e.err;
        v.flags = e.flags;
    }
}

}  // namespace mel
