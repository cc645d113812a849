// A set of perf_event counters over this process (and, with inherit, the threads it creates),
// in as few groups as the PMU accepts. Counting windows are delimited by two group reads, so a
// window covers exactly the code between start() and stop().
//
// What the caller asks for (a view: one name) may be several perf events (parts). On a
// heterogeneous system (big.LITTLE, Intel hybrid: more than one core PMU in sysfs) a generic
// hardware event counts only on the cores of the one PMU the kernel binds it to, so it is opened
// once per core PMU (extended type: config |= pmu type << 32; on kernels that refuse that, the
// PMU's own type with the Arm PMUv3 event the kernel would use) and the parts are summed. Each
// part counts while the task runs on its core type, so the parts' running times add up to the
// window when nothing is multiplexed.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "events.hpp"
#include "maple_edge_lite/maple_edge_lite.h"
#include "pmu.hpp"
#include "sys.hpp"

namespace mel {

// One perf event (a part of a view).
struct CounterEvent {
    EventSpec spec;
    size_t view = 0;
    std::string pmu;  // the core PMU it is bound to ("" = the kernel's choice)
    bool ext = false; // spec.config carries the PMU type (extended hardware type)
    int fd = -1;
    int group = -1;
    uint64_t id = 0;
    int open_state = MEL_COUNTER_COUNTED;  // UNSUPPORTED / DENIED when fd < 0
    int open_errno = 0;
    uint32_t flags = 0;  // MEL_COUNTER_FLAG_*
    std::string open_reason;
    std::string note;  // extra detail gathered while opening
    // Result of the last window.
    int state = MEL_COUNTER_NOT_COUNTED;
    int read_errno = 0;
    uint64_t value = 0, raw = 0, enabled_ns = 0, running_ns = 0;
    std::string reason;
};

// What the caller asked for under one name, and its result for the last window.
struct CounterView {
    std::string name;
    std::vector<size_t> parts;  // indices into CounterSet::events_
    bool per_pmu = false;       // a generic hardware event opened on every core PMU, summed
    bool core_bound = false;    // "<pmu>/<event>/" on a heterogeneous system: that core type only
    int state = MEL_COUNTER_NOT_COUNTED;
    int err = 0;
    uint32_t flags = 0;
    uint64_t value = 0, raw = 0, enabled_ns = 0, running_ns = 0;
    std::string reason;
};

struct CounterGroup {
    int leader_fd = -1;
    bool software = false;
    std::string pmu;  // the PMU its hardware events are bound to ("" = unbound)
    bool enabled = false;
    bool enable_failed = false;
    std::vector<size_t> events;  // indices into CounterSet::events_, leader first
    // Snapshot at start(): per event raw value, plus the group's enabled/running times.
    std::vector<uint64_t> start_values;
    uint64_t start_enabled = 0, start_running = 0;
    bool start_ok = false;
    std::string start_problem;
    int start_errno = 0;
};

class CounterSet {
public:
    CounterSet(const std::vector<std::string>& names, unsigned flags);
    ~CounterSet();
    CounterSet(const CounterSet&) = delete;
    CounterSet& operator=(const CounterSet&) = delete;

    void start();
    void stop();
    void read(mel_counter_value* out, size_t n) const;
    // What the caller asked for, in order (names, states, reasons).
    const std::vector<CounterView>& views() const { return views_; }
    // The perf events opened for them.
    const std::vector<CounterEvent>& events() const { return events_; }
    int paranoid() const { return paranoid_; }

private:
    struct Snapshot;
    void open_event(size_t i);
    bool to_pmu_raw(CounterEvent& e);
    const Pmu* pmu_named(const std::string& name) const;
    std::string arm_note(const CounterEvent& e) const;
    bool arm_listed(const CounterEvent& e) const;
    std::string group_key(const CounterEvent& e) const;
    void set_open_failure(CounterEvent& e, int err, const std::string& note);
    void finish_views(bool window);
    long open_with_fallback(CounterEvent& e, int group_fd, bool leader);
    bool read_group(CounterGroup& g, std::vector<uint64_t>& values, uint64_t& enabled, uint64_t& running,
                    std::string& problem, int& err);
    void close_all() noexcept;

    const Syscalls& sys_;
    unsigned flags_;
    int paranoid_;
    int seccomp_;
    bool exclude_kernel_;  // chosen for the whole set (flipped by the first EACCES/EPERM fallback)
    int state_ = 0;        // 0 opened, 1 started, 2 stopped
    std::vector<CounterEvent> events_;
    std::vector<CounterGroup> groups_;
    std::vector<CounterView> views_;
    std::vector<Pmu> pmus_;        // every PMU in sysfs
    std::vector<Pmu> cores_;       // the core PMUs among them
    std::vector<std::string> no_ext_;  // core PMUs whose kernel refused extended hardware types
};

// Text for an errno at open time: the state it implies and a reason with the remedy.
int state_for_open_errno(int err);
std::string reason_for_open_errno(int err, int paranoid, int seccomp, bool kernel_excluded);

}  // namespace mel
