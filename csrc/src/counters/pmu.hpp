// The PMUs the kernel exposes in sysfs (/sys/bus/event_source/devices/<pmu>/{type,cpus,events/,
// format/}), and what the counters need from them on heterogeneous (big.LITTLE, hybrid) systems:
// which PMUs are core PMUs, their perf type and CPU mask, the events a PMU lists, and the Arm
// PMUv3 event behind each generic hardware event.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mel {

struct Pmu {
    std::string name;
    uint32_t type = 0;
    std::string cpus;         // the "cpus" file as written ("0-3"), "" when absent
    bool core = false;        // a CPU PMU: named "cpu" or has a "cpus" file (perf's rule)
    bool arm = false;         // an Arm PMUv3 CPU PMU (armv8_*, armv9_*)
    bool has_events = false;  // has an events/ folder (for Arm PMUv3: the events the core implements)
    std::vector<std::pair<std::string, std::string>> events;   // events/<name> -> its text ("event=0x0011")
    std::vector<std::pair<std::string, std::string>> formats;  // format/<term> -> "config:0-15"

    const std::string* event_text(const std::string& ev) const;
};

// Every PMU under dir (PMUs whose type file is unreadable are skipped), sorted by name. An
// unreadable or missing dir gives an empty list.
std::vector<Pmu> read_pmus(const std::string& dir);

// The core PMUs among them, sorted by name.
std::vector<Pmu> core_pmus(const std::vector<Pmu>& all);

// config for an event text such as "event=0x11" or "event=0xc0,umask=0x1" by the PMU's format
// terms. Returns false with a message for terms it cannot place (no format, config1/config2).
bool event_config(const Pmu& pmu, const std::string& text, uint64_t& config, std::string& problem);

// The Arm PMUv3 common event the kernel uses for a generic PERF_TYPE_HARDWARE / PERF_TYPE_HW_CACHE
// event (type, config without the PMU bits), as in the kernel's armv8_pmuv3_perf_map and
// armv8_pmuv3_perf_cache_map. Several candidates are tried in order (branch-instructions:
// BR_RETIRED, else PC_WRITE_RETIRED). Empty when Arm PMUs have no such generic event.
struct ArmEvent {
    uint16_t number;
    const char* sysfs_name;  // the name in events/ when the core implements it
    const char* note;        // why a core may lack it ("" if every Armv8 core has it)
};
std::vector<ArmEvent> arm_events_for(uint32_t type, uint64_t config);

}  // namespace mel
