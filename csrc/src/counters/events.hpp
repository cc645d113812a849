// Event table: name -> (perf type, config). Holds the generic Linux events (the eleven that
// MAPLE-Edge sampled, branches, the software events), raw "rXXXX" codes, events a user
// registers at run time, and perf's "<pmu>/<event>/" names: an event of one PMU, either from its
// sysfs events/ folder ("armv8_cortex_a72/l2d_cache/"), a raw code ("armv8_cortex_a53/r11/"),
// or a generic hardware event restricted to that core PMU ("armv8_cortex_a53/cpu-cycles/").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mel {

struct EventSpec {
    std::string name;
    uint32_t type = 0;    // PERF_TYPE_*
    uint64_t config = 0;  // perf_event_attr.config
    bool software = false;
    // Set for "<pmu>/<event>/" names: the PMU the event is bound to.
    std::string pmu;
    // A generic PERF_TYPE_HARDWARE / PERF_TYPE_HW_CACHE event (the kernel maps it to the PMU's own
    // event); with pmu set, config carries the PMU's type in its upper 32 bits (extended type).
    bool generic = false;
};

struct Pmu;

// Resolve a name: the built-in table, registered events, or "r" + hex digits (a raw PMU code,
// PERF_TYPE_RAW). Throws mel::Error(MEL_ERR_INVALID_ARGUMENT) naming the unknown event.
EventSpec resolve_event(const std::string& name);
// The same with the PMUs already read (for "<pmu>/<event>/" names); nullptr reads them from the
// current syscall layer's sysfs folder.
EventSpec resolve_event(const std::string& name, const std::vector<Pmu>* pmus);

// Register (or replace) a named event. Thread-safe. Throws on a bad name.
void register_event(const std::string& name, uint32_t type, uint64_t config);

// Every named event known now, built-ins first in table order, then registered ones.
std::vector<std::string> known_events();
// The same as C strings that stay valid for the life of the process; returns the total count
// and writes at most cap pointers.
size_t known_event_names(const char** out, size_t cap);

}  // namespace mel
