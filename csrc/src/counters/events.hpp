// Event table: name -> (perf type, config). Holds the generic Linux events (the eleven that
// MAPLE-Edge sampled, branches, the software events), raw "rXXXX" codes, and events a user
// registers at run time.
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
};

// Resolve a name: the built-in table, registered events, or "r" + hex digits (a raw PMU code,
// PERF_TYPE_RAW). Throws mel::Error(MEL_ERR_INVALID_ARGUMENT) naming the unknown event.
EventSpec resolve_event(const std::string& name);

// Register (or replace) a named event. Thread-safe. Throws on a bad name.
void register_event(const std::string& name, uint32_t type, uint64_t config);

// Every named event known now, built-ins first in table order, then registered ones.
std::vector<std::string> known_events();
// The same as C strings that stay valid for the life of the process; returns the total count
// and writes at most cap pointers.
size_t known_event_names(const char** out, size_t cap);

}  // namespace mel
