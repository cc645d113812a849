// Cost of one counting window (start + stop + read) through the C API, for a 4-event group and
// MAPLE-Edge's 11 events, and the error in counting a known amount of work (freshly touched
// pages -> page-faults). Usage: bench_counters [--json] [--iters N]
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "maple_edge_lite/maple_edge_lite.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Set {
    const char* label;
    std::vector<const char*> names;
};

bool counts(const char* name) {
    mel_counters* c = nullptr;
    if (mel_counters_open(&name, 1, 0, &c) != MEL_OK) return false;
    mel_counter_value v{};
    v.size = sizeof v;
    mel_counters_start(c);
    mel_counters_stop(c);
    mel_counters_read(c, &v, 1);
    mel_counters_free(c);
    return v.state == MEL_COUNTER_COUNTED || v.state == MEL_COUNTER_SCALED;
}

struct Result {
    double median_ns = 0, p10_ns = 0, p90_ns = 0;
    int counted = 0, groups_hint = 0;
};

Result time_window(const std::vector<const char*>& names, int iters) {
    Result r;
    mel_counters* c = nullptr;
    if (mel_counters_open(names.data(), names.size(), 0, &c) != MEL_OK) {
        std::fprintf(stderr, "open failed: %s\n", mel_last_error());
        std::exit(1);
    }
    std::vector<mel_counter_value> v(names.size());
    for (auto& x : v) x.size = sizeof x;
    for (int i = 0; i < 1000; ++i) {  // warm-up (also enables the groups)
        mel_counters_start(c);
        mel_counters_stop(c);
        mel_counters_read(c, v.data(), v.size());
    }
    std::vector<double> reps;
    for (int rep = 0; rep < 21; ++rep) {
        const auto t0 = Clock::now();
        for (int i = 0; i < iters; ++i) {
            mel_counters_start(c);
            mel_counters_stop(c);
            mel_counters_read(c, v.data(), v.size());
        }
        reps.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / iters);
    }
    std::sort(reps.begin(), reps.end());
    r.median_ns = reps[reps.size() / 2];
    r.p10_ns = reps[reps.size() / 10];
    r.p90_ns = reps[reps.size() * 9 / 10];
    for (auto& x : v) r.counted += (x.state == MEL_COUNTER_COUNTED || x.state == MEL_COUNTER_SCALED);
    mel_counters_free(c);
    return r;
}

// Touch `pages` fresh pages inside a window; return the page-faults counted (-1 if unavailable).
long long fault_error(long pages) {
    const char* name = "page-faults";
    mel_counters* c = nullptr;
    if (mel_counters_open(&name, 1, 0, &c) != MEL_OK) return -1;
    const long ps = sysconf(_SC_PAGESIZE);
    char* p = static_cast<char*>(mmap(nullptr, size_t(pages) * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p == MAP_FAILED) return -1;
#ifdef MADV_NOHUGEPAGE
    madvise(p, size_t(pages) * ps, MADV_NOHUGEPAGE);
#endif
    mel_counter_value v{};
    v.size = sizeof v;
    mel_counters_start(c);
    for (long i = 0; i < pages; ++i) p[i * ps] = 1;
    mel_counters_stop(c);
    mel_counters_read(c, &v, 1);
    munmap(p, size_t(pages) * ps);
    mel_counters_free(c);
    return v.state == MEL_COUNTER_COUNTED ? (long long)v.value : -1;
}

}  // namespace

int main(int argc, char** argv) {
    bool json = false;
    int iters = 20000;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--json")) json = true;
        else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::atoi(argv[++i]);
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof set, &set);

    const bool hw = counts("cpu-cycles");
    Set four{hw ? "4 hardware events (one group)" : "4 software events (one group; no hardware PMU here)",
             hw ? std::vector<const char*>{"cpu-cycles", "instructions", "cache-references", "cache-misses"}
                : std::vector<const char*>{"task-clock", "page-faults", "context-switches", "cpu-migrations"}};
    Set eleven{"MAPLE-Edge's 11 events",
               {"cpu-cycles", "instructions", "cache-references", "cache-misses", "L1-dcache-loads",
                "L1-dcache-load-misses", "LLC-loads", "LLC-load-misses", "LLC-stores", "LLC-store-misses",
                "cpu-migrations"}};
    const Result r4 = time_window(four.names, iters);
    const Result r11 = time_window(eleven.names, iters);
    const long pages = 4096;
    const long long faults = fault_error(pages);
    if (json) {
        std::printf("{\"hardware_pmu\": %s, \"iters\": %d,\n", hw ? "true" : "false", iters);
        std::printf(" \"four\": {\"label\": \"%s\", \"counted\": %d, \"median_ns\": %.1f, \"p10_ns\": %.1f, \"p90_ns\": %.1f},\n",
                    four.label, r4.counted, r4.median_ns, r4.p10_ns, r4.p90_ns);
        std::printf(" \"eleven\": {\"label\": \"%s\", \"counted\": %d, \"median_ns\": %.1f, \"p10_ns\": %.1f, \"p90_ns\": %.1f},\n",
                    eleven.label, r11.counted, r11.median_ns, r11.p10_ns, r11.p90_ns);
        std::printf(" \"page_faults\": {\"touched\": %ld, \"counted\": %lld}}\n", pages, faults);
    } else {
        std::printf("start + stop + read through the C API (median of 21 x %d windows, one CPU):\n", iters);
        std::printf("  %-55s %2d counted  %8.0f ns  (p10 %.0f, p90 %.0f)\n", four.label, r4.counted, r4.median_ns, r4.p10_ns, r4.p90_ns);
        std::printf("  %-55s %2d counted  %8.0f ns  (p10 %.0f, p90 %.0f)\n", eleven.label, r11.counted, r11.median_ns, r11.p10_ns, r11.p90_ns);
        std::printf("known work: touched %ld fresh pages, page-faults counted %lld\n", pages, faults);
    }
    return 0;
}
