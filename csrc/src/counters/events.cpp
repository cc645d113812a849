#include "events.hpp"

#include <linux/perf_event.h>

#include <cctype>
#include <cstdlib>
#include <deque>
#include <mutex>

#include "../error.hpp"
#include "pmu.hpp"
#include "sys.hpp"

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

namespace {

bool raw_code(const std::string& name, uint64_t& config) {
    if (name.size() < 2 || name.size() > 17 || name[0] != 'r') return false;
    for (size_t i = 1; i < name.size(); ++i)
        if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
    config = std::strtoull(name.c_str() + 1, nullptr, 16);
    return true;
}

// A built-in name (after aliases), or nullptr.
const Builtin* builtin(const std::string& name_in) {
    std::string name = name_in;
    for (const auto& a : kAliases)
        if (name == a.first) name = a.second;
    for (const Builtin& b : kBuiltins)
        if (name == b.name) return &b;
    return nullptr;
}

// "<pmu>/<event>/" (the trailing slash optional, as perf writes them).
EventSpec resolve_pmu_event(const std::string& name, const std::vector<Pmu>& pmus) {
    const size_t slash = name.find('/');
    const std::string pmu_name = name.substr(0, slash);
    std::string ev = name.substr(slash + 1);
    if (!ev.empty() && ev.back() == '/') ev.pop_back();
    const Pmu* pmu = nullptr;
    for (const Pmu& p : pmus)
        if (p.name == pmu_name) pmu = &p;
    if (!pmu) {
        std::string have;
        for (const Pmu& p : pmus)
            if (p.core) have += (have.empty() ? "" : ", ") + p.name;
        fail(MEL_ERR_INVALID_ARGUMENT, "unknown event '" + name + "': there is no PMU '" + pmu_name +
                                           "' in /sys/bus/event_source/devices (core PMUs here: " +
                                           (have.empty() ? std::string("none") : have) + ")");
    }
    if (ev.empty() || ev.find('/') != std::string::npos)
        fail(MEL_ERR_INVALID_ARGUMENT, "unknown event '" + name + "': write a PMU event as <pmu>/<event>/");
    EventSpec spec;
    spec.name = pmu->name + "/" + ev + "/";  // one spelling, so duplicates are found
    spec.pmu = pmu->name;
    uint64_t config = 0;
    if (const Builtin* b = builtin(ev)) {
        if (b->type != PERF_TYPE_HARDWARE && b->type != PERF_TYPE_HW_CACHE)
            fail(MEL_ERR_INVALID_ARGUMENT, "'" + name + "': '" + ev + "' is a software event; it belongs to no PMU");
        if (!pmu->core)
            fail(MEL_ERR_INVALID_ARGUMENT, "'" + name + "': generic hardware events exist only on CPU PMUs, and " +
                                               pmu->name + " is not one");
        spec.type = b->type;
        spec.config = b->config | (uint64_t(pmu->type) << 32);  // PERF_PMU_TYPE_SHIFT
        spec.generic = true;
        return spec;
    }
    if (raw_code(ev, config)) {
        spec.type = pmu->type;
        spec.config = config;
        return spec;
    }
    if (const std::string* text = pmu->event_text(ev)) {
        std::string problem;
        if (!event_config(*pmu, *text, config, problem)) fail(MEL_ERR_INVALID_ARGUMENT, "event '" + name + "': " + problem);
        spec.type = pmu->type;
        spec.config = config;
        return spec;
    }
    fail(MEL_ERR_INVALID_ARGUMENT,
         "unknown event '" + name + "': " + pmu->name +
             (pmu->has_events ? " lists no event '" + ev + "' in its events/ folder" : " has no events/ folder") +
             "; use a generic name (cpu-cycles, ...), a raw code (" + pmu->name + "/r11/) or a listed event");
}

}  // namespace

EventSpec resolve_event(const std::string& name) { return resolve_event(name, nullptr); }

EventSpec resolve_event(const std::string& name_in, const std::vector<Pmu>* pmus) {
    if (const Builtin* b = builtin(name_in)) {
        EventSpec e;
        e.name = b->name;
        e.type = b->type;
        e.config = b->config;
        e.software = b->type == PERF_TYPE_SOFTWARE;
        e.generic = b->type == PERF_TYPE_HARDWARE || b->type == PERF_TYPE_HW_CACHE;
        return e;
    }
    {
        std::lock_guard<std::mutex> lock(g_mu);
        for (const EventSpec& e : registered())
            if (e.name == name_in) return e;
    }
    uint64_t config = 0;
    if (raw_code(name_in, config)) {
        EventSpec e;
        e.name = name_in;
        e.type = PERF_TYPE_RAW;
        e.config = config;
        return e;
    }
    if (name_in.find('/') != std::string::npos) {
        if (pmus) return resolve_pmu_event(name_in, *pmus);
        return resolve_pmu_event(name_in, read_pmus(current_syscalls().pmu_dir()));
    }
    const std::string& name = name_in;
    fail(MEL_ERR_INVALID_ARGUMENT, "unknown event '" + name +
                                       "': use a name from maple_edge_lite.counters.known_events(), a raw code "
                                       "such as r00c0, a PMU's event such as armv8_pmuv3_0/l2d_cache/, or register "
                                       "it with register_event(name, type, config)");
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
    EventSpec e;
    e.name = name;
    e.type = type;
    e.config = config;
    e.software = type == PERF_TYPE_SOFTWARE;
    registered().push_back(std::move(e));
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
