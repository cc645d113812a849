// bench_predict: speed of the predictor core through the C API, per int8 kernel, against this
// core's measured int8 peak.
//
//   bench_predict MODEL.melw [--json | --json-out FILE] [--cpu N] [--reps N] [--batch-rows N] [--quick]
//
// * single row: median, p10 and p90 of the time per call over --reps repetitions of N calls
//   (N chosen so that one repetition takes about 4 ms), through mel_model_predict (the public
//   entry, default kernel) and through mel_internal_predict_with_kernel for every kernel this
//   build has and this CPU runs;
// * batch: --batch-rows rows (default 15625, the size of the NAS-Bench-201 space) in one call,
//   median/p10/p90 ms over repetitions, and the achieved int8 multiply-accumulates per second;
// * int8 peak: measured here with microkernels of independent dot-product instructions
//   (vpdpbusd on 12 accumulators for AVX-512 VNNI, vpmaddubsw+vpmaddwd+vpaddd on 8 for AVX2),
//   run only where the CPU supports them. The peak is max over those.
//
// The process pins itself to one CPU (the last one it may run on, or --cpu N; --cpu -1: no
// pinning). The model file comes from Python (benchmarks/run.py packs it).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "internal.h"
#include "maple_edge_lite/maple_edge_lite.h"

namespace {

using Clock = std::chrono::steady_clock;

inline double now_ns() {
    return double(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const double pos = p * double(v.size() - 1);
    const size_t lo = size_t(pos);
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

struct Summary {
    double median = NAN, p10 = NAN, p90 = NAN, min = NAN;
    int reps = 0;
};

Summary summarise(const std::vector<double>& v) {
    Summary s;
    s.median = percentile(v, 0.5);
    s.p10 = percentile(v, 0.1);
    s.p90 = percentile(v, 0.9);
    s.min = v.empty() ? NAN : *std::min_element(v.begin(), v.end());
    s.reps = int(v.size());
    return s;
}

// ------------------------------------------------------------------------------------------
// int8 peak microkernels. Each asm block issues independent dot-product chains (one per
// accumulator register), so the loop runs at the core's dot-product throughput, not latency.
// Returns int8 multiply-accumulates per loop iteration.
// ------------------------------------------------------------------------------------------
volatile int32_t g_sink;
alignas(64) const uint8_t kPeakSrc[192] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
    3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5,
    3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5,
    1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,
    1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,
};

struct PeakKernel {
    const char* name;    // JSON key
    const char* what;    // human-readable description
    const char* isa;     // the mel kernel this peak bounds
    bool (*supported)();
    uint64_t (*run)(uint64_t iters);  // returns MACs per iteration
};

#if defined(__x86_64__)
// 12 accumulators: "+v" operands count twice towards GCC's limit of 30 asm operands.
#define MEL_VNNI4(R) \
    "%{evex%} vpdpbusd %[b], %[a], %[c" #R "0]\n\t%{evex%} vpdpbusd %[b], %[a], %[c" #R "1]\n\t" \
    "%{evex%} vpdpbusd %[b], %[a], %[c" #R "2]\n\t%{evex%} vpdpbusd %[b], %[a], %[c" #R "3]\n\t"
#define MEL_VNNI12 MEL_VNNI4(0) MEL_VNNI4(1) MEL_VNNI4(2)
#define MEL_ACC12(T) T c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z, c20 = z, c21 = z, c22 = z, c23 = z
#define MEL_ACC12_OPS                                                                                     \
    [c00] "+v"(c00), [c01] "+v"(c01), [c02] "+v"(c02), [c03] "+v"(c03), [c10] "+v"(c10), [c11] "+v"(c11), \
        [c12] "+v"(c12), [c13] "+v"(c13), [c20] "+v"(c20), [c21] "+v"(c21), [c22] "+v"(c22), [c23] "+v"(c23)

bool have_vnni512() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
bool have_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

// vpdpbusd zmm: 16 u8*s8 groups of 4 = 64 MACs per instruction; 12 independent accumulators,
// twice per iteration.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), noinline)) uint64_t peak_vnni_zmm(uint64_t iters) {
    const __m512i a = _mm512_load_si512(kPeakSrc);
    const __m512i b = _mm512_load_si512(kPeakSrc + 64);
    const __m512i z = _mm512_setzero_si512();
    MEL_ACC12(__m512i);
    for (uint64_t i = 0; i < iters; ++i)
        __asm__ volatile(MEL_VNNI12 MEL_VNNI12 : MEL_ACC12_OPS : [a] "v"(a), [b] "v"(b));
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c00, c01), _mm512_add_epi32(c02, c03)),
                                 _mm512_add_epi32(_mm512_add_epi32(c10, c11), _mm512_add_epi32(c12, c13)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c20, c21), _mm512_add_epi32(c22, c23)));
    alignas(64) int32_t lanes[16];  // not _mm512_reduce_add_epi32: GCC 12 warns inside it
    _mm512_store_si512(lanes, s);
    int32_t t = 0;
    for (int32_t v : lanes) t += v;
    g_sink = t;
    return 2 * 12 * 64;
}

// vpdpbusd ymm (EVEX, AVX-512 VL): 32 MACs per instruction.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), noinline)) uint64_t peak_vnni_ymm(uint64_t iters) {
    const __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPeakSrc));
    const __m256i b = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPeakSrc + 64));
    const __m256i z = _mm256_setzero_si256();
    MEL_ACC12(__m256i);
    for (uint64_t i = 0; i < iters; ++i)
        __asm__ volatile(MEL_VNNI12 MEL_VNNI12 : MEL_ACC12_OPS : [a] "v"(a), [b] "v"(b));
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c00, c01), _mm256_add_epi32(c02, c03)),
                                 _mm256_add_epi32(_mm256_add_epi32(c10, c11), _mm256_add_epi32(c12, c13)));
    s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(c20, c21), _mm256_add_epi32(c22, c23)));
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
    int32_t t = 0;
    for (int32_t v : lanes) t += v;
    g_sink = t;
    return 2 * 12 * 32;
}

// AVX2: vpmaddubsw (32 u8*s8 products, pairwise summed to int16) + vpmaddwd with ones (to
// int32) + vpaddd, on 8 independent accumulators (4 temporaries, renamed by the core):
// 32 MACs per triple. 15 ymm registers: fits AVX2's 16.
#define MEL_AVX2_STEP(C, T)                          \
    "vpmaddubsw %[b], %[a], %[" T "]\n\t"            \
    "vpmaddwd %[one], %[" T "], %[" T "]\n\t"        \
    "vpaddd %[" T "], %[" C "], %[" C "]\n\t"
#define MEL_AVX2_8                                                                                      \
    MEL_AVX2_STEP("c0", "t0") MEL_AVX2_STEP("c1", "t1") MEL_AVX2_STEP("c2", "t2") MEL_AVX2_STEP("c3", "t3") \
    MEL_AVX2_STEP("c4", "t0") MEL_AVX2_STEP("c5", "t1") MEL_AVX2_STEP("c6", "t2") MEL_AVX2_STEP("c7", "t3")

__attribute__((target("avx2"), noinline)) uint64_t peak_avx2(uint64_t iters) {
    const __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPeakSrc));
    const __m256i b = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPeakSrc + 64));
    const __m256i one = _mm256_set1_epi16(1);
    const __m256i z = _mm256_setzero_si256();
    __m256i c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z;
    __m256i t0, t1, t2, t3;
    for (uint64_t i = 0; i < iters; ++i)
        __asm__ volatile(MEL_AVX2_8 MEL_AVX2_8
                         : [c0] "+x"(c0), [c1] "+x"(c1), [c2] "+x"(c2), [c3] "+x"(c3), [c4] "+x"(c4),
                           [c5] "+x"(c5), [c6] "+x"(c6), [c7] "+x"(c7), [t0] "=&x"(t0), [t1] "=&x"(t1),
                           [t2] "=&x"(t2), [t3] "=&x"(t3)
                         : [a] "x"(a), [b] "x"(b), [one] "x"(one));
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
    int32_t t = 0;
    for (int32_t v : lanes) t += v;
    g_sink = t;
    return 2 * 8 * 32;
}

const PeakKernel kPeaks[] = {
    {"avx512vnni_zmm", "vpdpbusd zmm, 12 independent accumulators", "avx512vnni", have_vnni512, peak_vnni_zmm},
    {"avx512vnni_ymm", "vpdpbusd ymm (EVEX), 12 independent accumulators", "avx512vnni", have_vnni512, peak_vnni_ymm},
    {"avx2", "vpmaddubsw+vpmaddwd+vpaddd ymm, 8 independent accumulators", "avx2", have_avx2, peak_avx2},
};
#else
const PeakKernel* const kPeaks = nullptr;  // no int8 peak microkernel for this architecture yet
#endif

struct PeakResult {
    const PeakKernel* k;
    double gmacs;
};

// Best of 7 runs of about 10 ms each (the peak is a maximum, so the best run is the estimate;
// more, shorter runs make it likelier that one runs undisturbed on a busy machine).
PeakResult measure_peak(const PeakKernel& k, bool quick) {
    uint64_t iters = 1000;
    double macs_per_iter = double(k.run(iters));
    for (;;) {  // calibrate
        const double t0 = now_ns();
        k.run(iters);
        const double dt = now_ns() - t0;
        if (dt > 2e6 || iters > (uint64_t(1) << 40)) {
            iters = uint64_t(double(iters) * (quick ? 5e6 : 1e7) / std::max(dt, 1.0)) + 1;
            break;
        }
        iters *= 4;
    }
    double best = 0;
    for (int r = 0; r < (quick ? 3 : 7); ++r) {
        const double t0 = now_ns();
        k.run(iters);
        const double dt = now_ns() - t0;
        best = std::max(best, macs_per_iter * double(iters) / dt);  // MAC/ns = GMAC/s
    }
    return {&k, best};
}

// ------------------------------------------------------------------------------------------

struct Options {
    const char* model = nullptr;
    const char* json_out = nullptr;
    bool json = false;
    bool quick = false;
    int cpu = -2;  // -2: choose, -1: do not pin
    int reps = 31;
    size_t batch_rows = 15625;
};

[[noreturn]] void usage(const char* msg) {
    if (msg) std::fprintf(stderr, "bench_predict: %s\n", msg);
    std::fprintf(stderr,
                 "usage: bench_predict MODEL.melw [--json | --json-out FILE] [--cpu N|-1] [--reps N] [--batch-rows N] [--quick]\n"
                 "  --json: JSON on stdout instead of text; --json-out FILE: text on stdout, JSON to FILE\n"
                 "  Times single-row and batch prediction through the C API for every int8 kernel\n"
                 "  available here, and this core's int8 peak. Generate MODEL.melw with\n"
                 "  benchmarks/run.py (or maple_edge_lite.pack).\n");
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage(("missing value after " + a).c_str());
            return argv[++i];
        };
        if (a == "--json") o.json = true;
        else if (a == "--json-out") o.json_out = value();
        else if (a == "--quick") o.quick = true;
        else if (a == "--cpu") o.cpu = std::atoi(value());
        else if (a == "--reps") o.reps = std::max(3, std::atoi(value()));
        else if (a == "--batch-rows") o.batch_rows = size_t(std::max(1L, std::atol(value())));
        else if (a == "-h" || a == "--help") usage(nullptr);
        else if (!a.empty() && a[0] == '-') usage(("unknown option " + a).c_str());
        else if (o.model) usage("more than one model file given");
        else o.model = argv[i];
    }
    if (!o.model) usage("no model file given");
    return o;
}

// Returns the CPU pinned to, or -1.
int pin_cpu(int want) {
#if defined(__linux__)
    if (want == -1) return -1;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    int cpu = want;
    if (cpu < 0)
        for (int c = CPU_SETSIZE - 1; c >= 0; --c)
            if (CPU_ISSET(c, &set)) {
                cpu = c;
                break;
            }
    if (cpu < 0) return -1;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        std::fprintf(stderr, "bench_predict: warning: cannot pin to CPU %d: %s\n", cpu, std::strerror(errno));
        return -1;
    }
    return cpu;
#else
    (void)want;
    return -1;
#endif
}

std::string cpu_model() {
    std::FILE* f = std::fopen("/proc/cpuinfo", "r");
    if (!f) return "unknown";
    char line[512];
    std::string name = "unknown";
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, "model name", 10) == 0) {
            const char* p = std::strchr(line, ':');
            if (p) {
                name = p + 1;
                while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.erase(0, 1);
                while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
            }
            break;
        }
    }
    std::fclose(f);
    return name;
}

std::string json_str(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\', o += c;
        else if (static_cast<unsigned char>(c) < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            o += b;
        } else o += c;
    }
    return o + "\"";
}

std::string json_num(double v) {
    if (!std::isfinite(v)) return "null";
    char b[64];
    std::snprintf(b, sizeof b, "%.6g", v);
    return b;
}

// Deterministic N(0, 1) features (xorshift64* + Box-Muller), like the Python suite's inputs.
std::vector<float> make_input(size_t rows, size_t d) {
    std::vector<float> x(rows * d);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    auto u01 = [&]() {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        return (double((s * 0x2545F4914F6CDD1Dull) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    };
    for (size_t i = 0; i < x.size(); i += 2) {
        const double r = std::sqrt(-2.0 * std::log(u01())), th = 6.283185307179586 * u01();
        x[i] = float(r * std::cos(th));
        if (i + 1 < x.size()) x[i + 1] = float(r * std::sin(th));
    }
    return x;
}

struct Target {
    std::string label;   // "default" or a kernel name
    std::string kernel;  // the kernel that runs
    const char* forced;  // nullptr: mel_model_predict
};

struct Result {
    Target t;
    Summary single_ns;
    long calls_per_rep = 0;
    Summary batch_ms;
    double gmacs = NAN;
    bool matches_default = true;
};

int call(const mel_model* m, const Target& t, const float* x, size_t n, float* out) {
    return t.forced ? mel_internal_predict_with_kernel(m, t.forced, x, n, out, nullptr) : mel_model_predict(m, x, n, out);
}

void die_status(int st, const char* what) {
    std::fprintf(stderr, "bench_predict: %s failed: %s: %s\n", what, mel_status_name(st), mel_last_error());
    std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
    const Options opt = parse(argc, argv);
    const int cpu = pin_cpu(opt.cpu);

    mel_model* model = nullptr;
    if (int st = mel_model_load_file(opt.model, &model)) die_status(st, "mel_model_load_file");
    const size_t d = mel_model_input_dim(model);
    std::vector<size_t> dims{d};
    double macs_per_row = 0;
    for (size_t l = 0, prev = d; l < mel_model_num_layers(model); ++l) {
        const size_t o = mel_model_layer_dim(model, l);
        dims.push_back(o);
        macs_per_row += double(prev) * double(o);
        prev = o;
    }
    std::string dims_str;
    for (size_t i = 0; i < dims.size(); ++i) dims_str += (i ? "->" : "") + std::to_string(dims[i]);

    // Peak first: the core is then warm and clocked up for what follows.
    std::vector<PeakResult> peaks;
#if defined(__x86_64__)
    for (const PeakKernel& k : kPeaks)
        if (k.supported()) peaks.push_back(measure_peak(k, opt.quick));
#endif
    double peak = 0;
    const PeakResult* best_peak = nullptr;
    for (const PeakResult& p : peaks)
        if (p.gmacs > peak) peak = p.gmacs, best_peak = &p;

    std::vector<Target> targets{{"default", mel_kernel_name(), nullptr}};
    static const char* const kKernels[] = {"scalar", "avx2", "avx512vnni", "neon"};
    for (const char* k : kKernels)
        if (mel_internal_kernel_available(k) == 1) targets.push_back({k, k, k});

    const size_t pool = std::max<size_t>(opt.batch_rows, 1024);
    const std::vector<float> x = make_input(pool, d);
    std::vector<float> out(pool), ref(opt.batch_rows);
    if (int st = mel_model_predict(model, x.data(), opt.batch_rows, ref.data())) die_status(st, "mel_model_predict");

    const int reps = opt.quick ? std::min(opt.reps, 11) : opt.reps;
    const double rep_target_ns = opt.quick ? 1e6 : 4e6;
    const double batch_budget_ns = opt.quick ? 0.5e9 : 2.0e9;
    std::vector<Result> results;
    for (const Target& t : targets) {
        Result r;
        r.t = t;
        // Single row, cycling through 1024 different rows. Warm up, then calibrate N from the
        // fastest of a few trials (an interrupt during one trial must not shrink N).
        auto run_calls = [&](long n) {
            const double t0 = now_ns();
            for (long i = 0; i < n; ++i)
                if (int st = call(model, t, x.data() + size_t(i & 1023) * d, 1, out.data())) die_status(st, "predict");
            return now_ns() - t0;
        };
        long n = 16;
        while (run_calls(n) < rep_target_ns / 4) n *= 2;
        double per = 1e300;
        for (int k = 0; k < 5; ++k) per = std::min(per, run_calls(n) / double(n));
        n = std::max(16L, long(rep_target_ns / per));
        std::vector<double> per_call;
        for (int k = 0; k < reps; ++k) {
            const double t0 = now_ns();
            for (long i = 0; i < n; ++i) call(model, t, x.data() + size_t(i & 1023) * d, 1, out.data() + (i & 1023));
            per_call.push_back((now_ns() - t0) / double(n));
        }
        r.single_ns = summarise(per_call);
        r.calls_per_rep = n;

        // Batch.
        double t0 = now_ns();
        if (int st = call(model, t, x.data(), opt.batch_rows, out.data())) die_status(st, "predict (batch)");
        const double first = now_ns() - t0;
        r.matches_default = std::memcmp(out.data(), ref.data(), opt.batch_rows * sizeof(float)) == 0;
        const int breps = int(std::min<double>(reps, std::max<double>(5, batch_budget_ns / std::max(first, 1.0))));
        std::vector<double> ms;
        for (int k = 0; k < breps; ++k) {
            t0 = now_ns();
            call(model, t, x.data(), opt.batch_rows, out.data());
            ms.push_back((now_ns() - t0) / 1e6);
        }
        r.batch_ms = summarise(ms);
        r.gmacs = double(opt.batch_rows) * macs_per_row / (r.batch_ms.median * 1e6);
        results.push_back(r);
    }
    mel_model_free(model);

    auto isa_peak = [&](const std::string& kernel) {
        double p = NAN;
        for (const PeakResult& q : peaks)
            if (kernel == q.k->isa) p = std::isnan(p) ? q.gmacs : std::max(p, q.gmacs);
        return p;
    };

    auto emit_json = [&](std::FILE* f) {
        std::fprintf(f, "{\n  \"tool\": \"bench_predict\",\n  \"version\": %s,\n  \"model\": %s,\n  \"dims\": [",
                    json_str(mel_version()).c_str(), json_str(opt.model).c_str());
        for (size_t i = 0; i < dims.size(); ++i) std::fprintf(f, "%s%zu", i ? ", " : "", dims[i]);
        std::fprintf(f, "],\n  \"macs_per_row\": %.0f,\n  \"cpu\": %d,\n  \"cpu_model\": %s,\n  \"default_kernel\": %s,\n",
                    macs_per_row, cpu, json_str(cpu_model()).c_str(), json_str(mel_kernel_name()).c_str());
        std::fprintf(f, "  \"reps\": %d,\n  \"batch_rows\": %zu,\n  \"peak_gmacs\": %s,\n  \"peak_name\": %s,\n  \"peaks\": {",
                    reps, opt.batch_rows, json_num(best_peak ? peak : NAN).c_str(),
                    best_peak ? json_str(best_peak->k->name).c_str() : "null");
        for (size_t i = 0; i < peaks.size(); ++i)
            std::fprintf(f, "%s\n    %s: {\"gmacs\": %s, \"what\": %s}", i ? "," : "", json_str(peaks[i].k->name).c_str(),
                        json_num(peaks[i].gmacs).c_str(), json_str(peaks[i].k->what).c_str());
        std::fprintf(f, "%s},\n  \"results\": [", peaks.empty() ? "" : "\n  ");
        for (size_t i = 0; i < results.size(); ++i) {
            const Result& r = results[i];
            const double ip = isa_peak(r.t.kernel);
            std::fprintf(f, 
                "%s\n    {\"label\": %s, \"kernel\": %s, \"entry\": %s,\n"
                "     \"single_ns\": {\"median\": %s, \"p10\": %s, \"p90\": %s, \"min\": %s, \"reps\": %d, \"calls_per_rep\": %ld},\n"
                "     \"batch_ms\": {\"median\": %s, \"p10\": %s, \"p90\": %s, \"min\": %s, \"reps\": %d},\n"
                "     \"gmacs\": %s, \"pct_of_peak\": %s, \"pct_of_isa_peak\": %s, \"matches_default\": %s}",
                i ? "," : "", json_str(r.t.label).c_str(), json_str(r.t.kernel).c_str(),
                json_str(r.t.forced ? "mel_internal_predict_with_kernel" : "mel_model_predict").c_str(),
                json_num(r.single_ns.median).c_str(), json_num(r.single_ns.p10).c_str(), json_num(r.single_ns.p90).c_str(),
                json_num(r.single_ns.min).c_str(), r.single_ns.reps, r.calls_per_rep, json_num(r.batch_ms.median).c_str(),
                json_num(r.batch_ms.p10).c_str(), json_num(r.batch_ms.p90).c_str(), json_num(r.batch_ms.min).c_str(),
                r.batch_ms.reps, json_num(r.gmacs).c_str(), json_num(peak > 0 ? 100 * r.gmacs / peak : NAN).c_str(),
                json_num(100 * r.gmacs / ip).c_str(), r.matches_default ? "true" : "false");
        }
        std::fprintf(f, "\n  ]\n}\n");
    };
    if (opt.json) {
        emit_json(stdout);
    } else {
        std::printf("maple_edge_lite %s bench_predict\n", mel_version());
        std::printf("model      %s  (%s, %.0f int8 MACs per row)\n", opt.model, dims_str.c_str(), macs_per_row);
        std::printf("cpu        %s, ", cpu_model().c_str());
        if (cpu >= 0) std::printf("pinned to CPU %d\n", cpu);
        else std::printf("not pinned\n");
        std::printf("kernel     default %s; available:", mel_kernel_name());
        for (size_t i = 1; i < targets.size(); ++i) std::printf(" %s", targets[i].kernel.c_str());
        std::printf("\n\nint8 peak of this core (measured, best of runs):\n");
        if (peaks.empty()) std::printf("  (no peak microkernel for this CPU)\n");
        for (const PeakResult& p : peaks)
            std::printf("  %-16s %8.1f GMAC/s  %s\n", p.k->name, p.gmacs, p.k->what);
        std::printf("\nsingle row, ns per call: median [p10, p90] over %d reps\n", reps);
        for (const Result& r : results)
            std::printf("  %-34s %9.0f ns  [%.0f, %.0f]  (%ld calls/rep)\n",
                        (r.t.forced ? "kernel " + r.t.kernel : "mel_model_predict (" + r.t.kernel + ")").c_str(),
                        r.single_ns.median, r.single_ns.p10, r.single_ns.p90, r.calls_per_rep);
        std::printf("\nbatch of %zu rows, ms per call: median [p10, p90]\n", opt.batch_rows);
        for (const Result& r : results) {
            std::printf("  %-34s %9.3f ms  [%.3f, %.3f]  %2d reps  %7.2f GMAC/s",
                        (r.t.forced ? "kernel " + r.t.kernel : "mel_model_predict (" + r.t.kernel + ")").c_str(),
                        r.batch_ms.median, r.batch_ms.p10, r.batch_ms.p90, r.batch_ms.reps, r.gmacs);
            if (peak > 0) std::printf("  %5.1f%% of peak", 100 * r.gmacs / peak);
            if (!r.matches_default) std::printf("  OUTPUT DIFFERS FROM DEFAULT KERNEL");
            std::printf("\n");
        }
    }
    if (opt.json_out) {
        std::FILE* f = std::fopen(opt.json_out, "w");
        if (!f) {
            std::fprintf(stderr, "bench_predict: cannot write %s: %s\n", opt.json_out, std::strerror(errno));
            return 1;
        }
        emit_json(f);
        std::fclose(f);
    }
    for (const Result& r : results)
        if (!r.matches_default) {
            std::fprintf(stderr, "bench_predict: kernel %s gives different predictions from the default kernel\n",
                         r.t.kernel.c_str());
            return 3;
        }
    return 0;
}
