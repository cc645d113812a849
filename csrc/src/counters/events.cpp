#include "events.hpp"

#include <linux/perf_event.h>

#include <cctype>
#include <cstdlib>
#include <deque>
#include <mutex>

#include "../error.hpp"

namespace mel {
namespace {

constexpr uint64_t cache(uint64_t id, uint64_t op, uint64_t result) { return id | (op << 8) | (result << 16); }

struct Builtin {
    const char* name;
    uint32_t type;
    uint64_t config;
};

// Same names and encodings as perf(1)'s generic events.
const Builtin kBuiltins[] = {
    {"cpu-cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES},
    {"instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS},
    {"cache-references", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_REFERENCES},
    {"cache-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES},
    {"L1-dcache-loads", PERF_TYPE_HW_CACHE,
     cache(PERF_COUNT_HW_CACHE_L1D, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_ACCESS)},
    {"L1-dcache-load-misses", PERF_TYPE_HW_CACHE,
     cache(PERF_COUNT_HW_CACHE_L1D, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_MISS)},
    {"LLC-loads", PERF_TYPE_HW_CACHE,
     cache(PERF_COUNT_HW_CACHE_LL, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_ACCESS)},
    {"LLC-load-misses", PERF_TYPE_HW_CACHE,
     cache(PERF_COUNT_HW_CACHE_LL, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_MISS)},
    {"LLC-stores", PERF_TYPE_HW_CACHE,
     cache(PERF_COUNT_HW_CACHE_LL, PERF_COUNT_HW_CACHE_OP_WRITE, PERF_COUNT_HW_CACHE_RESULT_ACCESS)},
    {"LLC-store-misses", PERF_TYPE_HW_CACHE,
     cache(PERF_COUNT_HW_CACHE_LL, PERF_COUNT_HW_CACHE_OP_WRITE, PERF_COUNT_HW_CACHE_RESULT_MISS)},
    {"cpu-migrations", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_MIGRATIONS},
    {"branch-instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_INSTRUCTIONS},
    {"branch-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_MISSES},
    {"task-clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK},
    {"cpu-clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK},
    {"page-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS},
    {"minor-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MIN},
    {"major-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MAJ},
    {"context-switches", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES},
    {"alignment-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_ALIGNMENT_FAULTS},
    {"emulation-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_EMULATION_FAULTS},
};

// perf(1)'s aliases.
const std::pair<const char*, const char*> kAliases[] = {
    {"cycles", "cpu-cycles"},          {"branches", "branch-instructions"}, {"faults", "page-faults"},
    {"cs", "context-switches"},        {"migrations", "cpu-migrations"},
};

std::mutex g_mu;
// A deque: entries never move, so the C API can hand out pointers to their names.
std::deque<EventSpec>& registered() {
    static std::deque<EventSpec> v;
    return v;
}

bool valid_name(const std::string& n) {
    if (n.empty() || n.size() > 128) return false;
    for (unsigned char c : n)
        if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '=' || c == ','))
            return false;
    return true;
}

}  // namespace

EventSpec resolve_event(const std::string& name_in) {
    std::string name = name_in;
    for (const auto& a : kAliases)
        if (name == a.first) name = a.second;
    for (const Builtin& b : kBuiltins)
        if (name == b.name) return {b.name, b.type, b.config, b.type == PERF_TYPE_SOFTWARE};
    {
        std::lock_guard<std::mutex> lock(g_mu);
        for (const EventSpec& e : registered())
            if (e.name == name) return e;
    }
    if (name.size() >= 2 && name.size() <= 17 && name[0] == 'r') {
        bool hex = true;
        for (size_t i = 1; i < name.size(); ++i) hex = hex && std::isxdigit(static_cast<unsigned char>(name[i]));
        if (hex) return {name, PERF_TYPE_RAW, std::strtoull(name.c_str() + 1, nullptr, 16), false};
    }
    fail(MEL_ERR_INVALID_ARGUMENT, "unknown event '" + name_in +
                                       "': use a name from maple_edge_lite.counters.known_events(), a raw code "
                                       "such as r00c0, or register it with register_event(name, type, config)");
}

void register_event(const std::string& name, uint32_t type, uint64_t config) {
    if (!valid_name(name))
        fail(MEL_ERR_INVALID_ARGUMENT, "event name '" + name + "' is empty, too long or has characters outside [A-Za-z0-9-_.:/=,]");
    for (const Builtin& b : kBuiltins)
        if (name == b.name) fail(MEL_ERR_INVALID_ARGUMENT, "'" + name + "' is a built-in event and cannot be redefined");
    std::lock_guard<std::mutex> lock(g_mu);
    for (EventSpec& e : registered())
        if (e.name == name) {
            e.type = type;
            e.config = config;
            e.software = type == PERF_TYPE_SOFTWARE;
            return;
        }
    registered().push_back({name, type, config, type == PERF_TYPE_SOFTWARE});
}

std::vector<std::string> known_events() {
    std::vector<std::string> v;
    for (const Builtin& b : kBuiltins) v.emplace_back(b.name);
    std::lock_guard<std::mutex> lock(g_mu);
    for (const EventSpec& e : registered()) v.push_back(e.name);
    return v;
}

size_t known_event_names(const char** out, size_t cap) {
    size_t n = 0;
    for (const Builtin& b : kBuiltins) {
        if (n < cap) out[n] = b.name;
        ++n;
    }
    std::lock_guard<std::mutex> lock(g_mu);
    for (const EventSpec& e : registered()) {
        if (n < cap) out[n] = e.name.c_str();
        ++n;
    }
    return n;
}

}  // namespace mel
