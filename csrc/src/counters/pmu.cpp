#include "pmu.hpp"

#include <dirent.h>
#include <linux/perf_event.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace mel {

namespace {

bool read_text(const std::string& path, std::string& out) {
    std::FILE* f = std::fopen(path.c_str(), "r");
    if (!f) return false;
    char buf[4096];
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    out.assign(buf, n);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\r')) out.pop_back();
    return true;
}

std::vector<std::string> list_dir(const std::string& path, bool& exists) {
    std::vector<std::string> v;
    DIR* d = opendir(path.c_str());
    exists = d != nullptr;
    if (!d) return v;
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') v.emplace_back(e->d_name);
    closedir(d);
    std::sort(v.begin(), v.end());
    return v;
}

bool parse_u64(const std::string& s, uint64_t& v) {
    if (s.empty()) return false;
    errno = 0;
    char* end = nullptr;
    v = std::strtoull(s.c_str(), &end, 0);
    return errno == 0 && end && *end == '\0';
}

constexpr uint64_t cache(uint64_t id, uint64_t op, uint64_t result) { return id | (op << 8) | (result << 16); }

}  // namespace

const std::string* Pmu::event_text(const std::string& ev) const {
    for (const auto& e : events)
        if (e.first == ev) return &e.second;
    return nullptr;
}

std::vector<Pmu> read_pmus(const std::string& dir) {
    std::vector<Pmu> out;
    bool exists = false;
    for (const std::string& name : list_dir(dir, exists)) {
        const std::string base = dir + "/" + name;
        std::string t;
        uint64_t type = 0;
        if (!read_text(base + "/type", t) || !parse_u64(t, type) || type > 0xFFFFFFFFull) continue;
        Pmu p;
        p.name = name;
        p.type = uint32_t(type);
        const bool has_cpus = read_text(base + "/cpus", p.cpus);
        p.core = name == "cpu" || has_cpus;
        p.arm = p.core && (name.rfind("armv8_", 0) == 0 || name.rfind("armv9_", 0) == 0);
        bool ev_exists = false;
        for (const std::string& ev : list_dir(base + "/events", ev_exists)) {
            std::string text;
            if (read_text(base + "/events/" + ev, text)) p.events.emplace_back(ev, text);
        }
        p.has_events = ev_exists;
        bool fmt_exists = false;
        for (const std::string& term : list_dir(base + "/format", fmt_exists)) {
            std::string text;
            if (read_text(base + "/format/" + term, text)) p.formats.emplace_back(term, text);
        }
        out.push_back(std::move(p));
    }
    return out;
}

std::vector<Pmu> core_pmus(const std::vector<Pmu>& all) {
    std::vector<Pmu> v;
    for (const Pmu& p : all)
        if (p.core) v.push_back(p);
    return v;
}

bool event_config(const Pmu& pmu, const std::string& text, uint64_t& config, std::string& problem) {
    config = 0;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find(',', pos);
        if (end == std::string::npos) end = text.size();
        const std::string term = text.substr(pos, end - pos);
        pos = end + 1;
        if (term.empty()) continue;
        const size_t eq = term.find('=');
        const std::string key = term.substr(0, eq);
        uint64_t value = 1;  // a bare term means 1
        if (eq != std::string::npos && !parse_u64(term.substr(eq + 1), value)) {
            problem = "cannot parse '" + term + "' in " + pmu.name + "'s event '" + text + "'";
            return false;
        }
        std::string fmt;
        for (const auto& f : pmu.formats)
            if (f.first == key) fmt = f.second;
        if (fmt.empty()) {
            // PMUs without a format/ folder: "event" and "config" are the whole config.
            if ((key == "event" || key == "config") && pmu.formats.empty()) {
                config |= value;
                continue;
            }
            problem = pmu.name + " has no format for the term '" + key + "' of '" + text + "'";
            return false;
        }
        if (fmt.rfind("config:", 0) != 0) {
            problem = "term '" + key + "' of " + pmu.name + " goes to " + fmt.substr(0, fmt.find(':')) +
                      ", which this library does not set: register the event with its config instead";
            return false;
        }
        // Bit ranges in order, low bits of the value first: "0-7,32-35", "21".
        std::string ranges = fmt.substr(7);
        size_t rp = 0;
        int used = 0;
        while (rp <= ranges.size()) {
            size_t re = ranges.find(',', rp);
            if (re == std::string::npos) re = ranges.size();
            const std::string r = ranges.substr(rp, re - rp);
            rp = re + 1;
            if (r.empty()) continue;
            const size_t dash = r.find('-');
            const int lo = std::atoi(r.substr(0, dash).c_str());
            const int hi = dash == std::string::npos ? lo : std::atoi(r.substr(dash + 1).c_str());
            if (lo < 0 || hi > 63 || hi < lo) {
                problem = "bad format '" + fmt + "' for " + pmu.name + "/" + key;
                return false;
            }
            for (int b = lo; b <= hi; ++b, ++used)
                if (used < 64 && ((value >> used) & 1)) config |= uint64_t(1) << b;
        }
        if (used < 64 && (value >> used) != 0) {
            problem = "value of '" + term + "' does not fit " + pmu.name + "'s format " + fmt;
            return false;
        }
    }
    return true;
}

std::vector<ArmEvent> arm_events_for(uint32_t type, uint64_t config) {
    static const char* const kLL =
        "last-level-cache read events are Armv8.1 (PMUv3p1) and later: Cortex-A53/A57/A72/A73 have none; their L2 "
        "events are l2d_cache and l2d_cache_refill, which can be counted as <pmu>/l2d_cache/";
    static const char* const kPcWrite =
        "Cortex-A57/A72 count no architecturally executed branches (BR_RETIRED is Armv8.1+, PC_WRITE_RETIRED "
        "absent); they have speculative branch events, e.g. <pmu>/br_pred/";
    if (type == PERF_TYPE_HARDWARE) {
        switch (config) {
            case PERF_COUNT_HW_CPU_CYCLES: return {{0x11, "cpu_cycles", ""}};
            case PERF_COUNT_HW_INSTRUCTIONS: return {{0x08, "inst_retired", ""}};
            case PERF_COUNT_HW_CACHE_REFERENCES: return {{0x04, "l1d_cache", ""}};
            case PERF_COUNT_HW_CACHE_MISSES: return {{0x03, "l1d_cache_refill", ""}};
            case PERF_COUNT_HW_BRANCH_INSTRUCTIONS:
                return {{0x21, "br_retired", kPcWrite}, {0x0C, "pc_write_retired", kPcWrite}};
            case PERF_COUNT_HW_BRANCH_MISSES: return {{0x10, "br_mis_pred", ""}};
            case PERF_COUNT_HW_BUS_CYCLES: return {{0x1D, "bus_cycles", ""}};
            case PERF_COUNT_HW_STALLED_CYCLES_FRONTEND: return {{0x23, "stall_frontend", ""}};
            case PERF_COUNT_HW_STALLED_CYCLES_BACKEND: return {{0x24, "stall_backend", ""}};
            default: return {};
        }
    }
    if (type == PERF_TYPE_HW_CACHE) {
        const uint64_t R = PERF_COUNT_HW_CACHE_OP_READ, A = PERF_COUNT_HW_CACHE_RESULT_ACCESS,
                       M = PERF_COUNT_HW_CACHE_RESULT_MISS;
        if (config == cache(PERF_COUNT_HW_CACHE_L1D, R, A)) return {{0x04, "l1d_cache", ""}};
        if (config == cache(PERF_COUNT_HW_CACHE_L1D, R, M)) return {{0x03, "l1d_cache_refill", ""}};
        if (config == cache(PERF_COUNT_HW_CACHE_L1I, R, A)) return {{0x14, "l1i_cache", ""}};
        if (config == cache(PERF_COUNT_HW_CACHE_L1I, R, M)) return {{0x01, "l1i_cache_refill", ""}};
        if (config == cache(PERF_COUNT_HW_CACHE_DTLB, R, A)) return {{0x25, "l1d_tlb", ""}};
        if (config == cache(PERF_COUNT_HW_CACHE_DTLB, R, M)) return {{0x05, "l1d_tlb_refill", ""}};
        if (config == cache(PERF_COUNT_HW_CACHE_ITLB, R, A)) return {{0x26, "l1i_tlb", ""}};
        if (config == cache(PERF_COUNT_HW_CACHE_ITLB, R, M)) return {{0x02, "l1i_tlb_refill", ""}};
        if (config == cache(PERF_COUNT_HW_CACHE_LL, R, A)) return {{0x36, "ll_cache_rd", kLL}};
        if (config == cache(PERF_COUNT_HW_CACHE_LL, R, M)) return {{0x37, "ll_cache_miss_rd", kLL}};
        if (config == cache(PERF_COUNT_HW_CACHE_BPU, R, A)) return {{0x12, "br_pred", ""}};
        if (config == cache(PERF_COUNT_HW_CACHE_BPU, R, M)) return {{0x10, "br_mis_pred", ""}};
    }
    return {};
}

}  // namespace mel
