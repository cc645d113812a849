// Fuzz target for the .melw reader and the C API around a loaded model.
//
// With clang's libFuzzer:  clang++ -fsanitize=fuzzer,address,undefined ... fuzz_reader.cpp
//   (configure with -DMEL_BUILD_TOOLS=ON -DMEL_LIBFUZZER=ON -DMEL_SANITIZE=ON).
// Anywhere else (gcc): MEL_FUZZ_STANDALONE adds a main() that is a small, deterministic
// mutation fuzzer around the same LLVMFuzzerTestOneInput (see usage() below). It knows the
// container layout, so besides blind bit flips it overwrites header, section-table and
// section-header fields with boundary values and, for most inputs, re-fixes file_size and both
// CRC-32s afterwards so that mutations get past the checksums to the deeper validation.
//
// The target aborts (a crash for the fuzzer) on any broken contract, not only on memory errors:
// a failed load that leaves *out non-NULL or reports no message, a status a load cannot return,
// inconsistent accessors, predict failing on finite input, or kernels / tilings that disagree.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "internal.h"
#include "maple_edge_lite/maple_edge_lite.h"

namespace {

int g_last_status = 0;  // status of the last load (for the standalone driver's statistics)

[[noreturn]] void broken(const char* what, int status) {
    std::fprintf(stderr, "fuzz_reader: contract violated: %s (status %d %s, last error: %s)\n", what, status,
                 mel_status_name(status), mel_last_error());
    std::fflush(stderr);
    std::abort();
}

bool is_load_failure(int st) {
    return st == MEL_ERR_FORMAT || st == MEL_ERR_VERSION || st == MEL_ERR_CHECKSUM || st == MEL_ERR_LIMIT ||
           st == MEL_ERR_NO_MEMORY;
}

const char* const kKernels[] = {"scalar", "avx2", "avx512vnni", "neon"};
constexpr size_t kRows = 3;

void exercise(const mel_model* m) {
    const size_t d = mel_model_input_dim(m);
    if (d == 0 || d > MEL_MAX_DIM) broken("input_dim out of range after a successful load", MEL_OK);
    const size_t nl = mel_model_num_layers(m);
    if (nl == 0 || nl > MEL_MAX_LAYERS) broken("layer count out of range", MEL_OK);
    for (size_t l = 0; l < nl; ++l) {
        const size_t w = mel_model_layer_dim(m, l);
        if (w == 0 || w > MEL_MAX_DIM) broken("layer width out of range", MEL_OK);
    }
    if (mel_model_layer_dim(m, nl - 1) != 1) broken("the output layer is not 1 wide", MEL_OK);
    if (mel_model_layer_dim(m, nl) != 0) broken("layer_dim past the end is not 0", MEL_OK);

    for (size_t i = 0; i < d; ++i) {
        const char* s = nullptr;
        const int st = mel_model_feature_name(m, i, &s);
        if (st != MEL_OK || !s) broken("feature_name failed on a loaded model", st);
        const size_t n = std::strlen(s);
        if (n == 0 || n > 1024) broken("feature name length out of 1..1024", st);
    }
    const char* s = nullptr;
    int st = mel_model_feature_name(m, d, &s);
    if (st != MEL_ERR_INVALID_ARGUMENT) broken("feature_name past the end did not fail", st);

    const char* json = nullptr;
    size_t len = 0;
    st = mel_model_metadata(m, &json, &len);
    if (st != MEL_OK || !json || std::strlen(json) != len) broken("metadata is not a NUL-terminated string of len", st);

    // Three rows: zeros (the brief's one row), then the extremes that saturate the input
    // quantization at +-127 in alternating signs, which maximise the accumulators.
    std::vector<float> x(kRows * d, 0.0f);
    for (size_t i = 0; i < d; ++i) {
        x[d + i] = (i % 2) ? -1e30f : 1e30f;
        x[2 * d + i] = (i % 2) ? 1e30f : -1e30f;
    }
    float ms[kRows];
    st = mel_model_predict(m, x.data(), kRows, ms);
    if (st != MEL_OK && st != MEL_ERR_NUMERIC) broken("predict failed on finite input", st);
    if (st == MEL_OK)
        for (float v : ms)
            if (!std::isfinite(v)) broken("predict returned MEL_OK with a non-finite value", st);

    double raw[kRows];
    st = mel_model_predict_raw(m, x.data(), kRows, raw);
    if (st != MEL_OK && st != MEL_ERR_NUMERIC) broken("predict_raw failed on finite input", st);
    if (st != MEL_OK) return;

    // One row at a time must equal the batch (tiling does not change the arithmetic).
    for (size_t r = 0; r < kRows; ++r) {
        double one;
        const int st1 = mel_model_predict_raw(m, x.data() + r * d, 1, &one);
        if (st1 != MEL_OK || std::memcmp(&one, &raw[r], sizeof one) != 0) broken("row-by-row differs from batch", st1);
    }
    // Every kernel this build has must give the same integers, hence the same doubles.
    for (const char* k : kKernels) {
        if (!mel_internal_kernel_available(k)) continue;
        double rk[kRows];
        const int stk = mel_internal_predict_with_kernel(m, k, x.data(), kRows, nullptr, rk);
        if (stk != MEL_OK) broken("an available kernel failed where the default one succeeded", stk);
        if (std::memcmp(rk, raw, sizeof raw) != 0) {
            std::fprintf(stderr, "fuzz_reader: kernel %s disagrees with %s: %.17g %.17g %.17g vs %.17g %.17g %.17g\n", k,
                         mel_kernel_name(), rk[0], rk[1], rk[2], raw[0], raw[1], raw[2]);
            broken("kernels disagree", stk);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    mel_model* m = reinterpret_cast<mel_model*>(&g_last_status);  // must be overwritten with NULL on failure
    const int st = mel_model_load_buffer(data, size, &m);
    g_last_status = st;
    if (st != MEL_OK) {
        if (m) broken("a failed load left *out non-NULL", st);
        if (!is_load_failure(st)) broken("a load returned a status it cannot return for bad bytes", st);
        if (std::strcmp(mel_status_name(st), "MEL_UNKNOWN_STATUS") == 0) broken("unnamed status", st);
        const char* e = mel_last_error();
        if (!e || !*e) broken("a failed load left no error message", st);
        return 0;
    }
    if (!m) broken("a successful load returned a NULL model", st);
    exercise(m);
    mel_model_free(m);
    return 0;
}

#if defined(MEL_FUZZ_STANDALONE)

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include "model/crc32.hpp"

// Sanitizer runtime hook (present when linked with ASan/UBSan): called before the process dies.
extern "C" void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

namespace {

using Bytes = std::vector<uint8_t>;

struct Rng {  // splitmix64: small, fast, the same sequence on every platform
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
    bool chance(unsigned num, unsigned den) { return below(den) < num; }
};

uint32_t get_u32(const Bytes& b, size_t o) {
    return uint32_t(b[o]) | uint32_t(b[o + 1]) << 8 | uint32_t(b[o + 2]) << 16 | uint32_t(b[o + 3]) << 24;
}
uint64_t get_u64(const Bytes& b, size_t o) { return uint64_t(get_u32(b, o)) | uint64_t(get_u32(b, o + 4)) << 32; }
void put_u32(Bytes& b, size_t o, uint32_t v) {
    if (o + 4 > b.size()) return;
    for (int i = 0; i < 4; ++i) b[o + i] = uint8_t(v >> (8 * i));
}
void put_u64(Bytes& b, size_t o, uint64_t v) {
    if (o + 8 > b.size()) return;
    for (int i = 0; i < 8; ++i) b[o + i] = uint8_t(v >> (8 * i));
}

constexpr size_t kHeader = 64, kEntry = 24;

// Offsets worth mutating: the header fields, every section-table field, and the first fields of
// every section the table points at (dims, counts, name lengths), plus section ends.
std::vector<size_t> field_positions(const Bytes& b) {
    std::vector<size_t> pos;
    for (size_t o : {8, 12, 14, 16, 20, 24, 32, 40, 44, 48, 52, 56, 60})
        if (o < b.size()) pos.push_back(o);
    if (b.size() < kHeader) return pos;
    size_t n = get_u32(b, 20);
    n = std::min<size_t>(n, std::min<size_t>(96, (b.size() - kHeader) / kEntry));
    for (size_t i = 0; i < n; ++i) {
        const size_t e = kHeader + i * kEntry;
        for (size_t f : {0, 4, 8, 16}) pos.push_back(e + f);
        const uint64_t off = get_u64(b, e + 8), size = get_u64(b, e + 16);
        if (off >= b.size()) continue;
        for (size_t f : {0, 4, 8, 12, 16, 20})
            if (off + f < b.size()) pos.push_back(size_t(off + f));
        if (size < b.size() - off) {
            const size_t end = size_t(off + size);
            pos.push_back(end);
            if (end >= 4) pos.push_back(end - 4);
            if (end >= 8) pos.push_back(end - 8);
            if (size > 16) pos.push_back(size_t(off + 16 + (size - 16) / 2));  // middle of the weights
        }
    }
    return pos;
}

size_t pick_pos(const Bytes& b, Rng& rng, const std::vector<size_t>& fields) {
    if (b.empty()) return 0;
    if (!fields.empty() && rng.chance(1, 2)) {
        size_t p = fields[rng.below(fields.size())];
        if (rng.chance(1, 4)) p += rng.below(4);
        return std::min(p, b.size() - 1);
    }
    return rng.below(b.size());
}

const uint32_t kU32[] = {0u,          1u,         2u,          3u,          4u,    7u,    8u,    16u,
                         24u,         63u,        64u,         65u,         127u,  128u,  255u,  256u,
                         1023u,       1024u,      1025u,       4095u,       4096u, 4097u, 65535u, 65536u,
                         0x7FFFFFFEu, 0x7FFFFFFFu, 0x80000000u, 0x80000001u, 0xFFFFFF80u, 0xFFFFFFFEu, 0xFFFFFFFFu,
                         0x04030201u, 0x01020304u};
const uint64_t kU64[] = {0ull,          1ull,           8ull,           24ull,          64ull,         0xFFFFFFFFull,
                         0x100000000ull, 0x7FFFFFFFFFFFFFFFull, 0x8000000000000000ull, 0xFFFFFFFFFFFFFFF8ull,
                         0xFFFFFFFFFFFFFFFFull};
const uint8_t kU8[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, 0x81, 0xC0, 0xED, 0xF4, 0xF8};

uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
uint64_t f64_bits(double f) {
    uint64_t u;
    std::memcpy(&u, &f, 8);
    return u;
}

void mutate_once(Bytes& b, Rng& rng, const std::vector<Bytes>& corpus, size_t max_len) {
    const std::vector<size_t> fields = field_positions(b);
    switch (rng.below(14)) {
        case 0:  // flip a bit
            if (!b.empty()) b[pick_pos(b, rng, fields)] ^= uint8_t(1u << rng.below(8));
            break;
        case 1:  // set a byte to an interesting value
            if (!b.empty()) b[pick_pos(b, rng, fields)] = kU8[rng.below(sizeof kU8)];
            break;
        case 2:  // truncate, often at a field or section boundary
            if (!b.empty()) b.resize(rng.chance(1, 2) ? pick_pos(b, rng, fields) : rng.below(b.size()));
            break;
        case 3: {  // insert random or repeated bytes
            const size_t n = 1 + rng.below(rng.chance(1, 4) ? 64 : 8);
            if (b.size() + n > max_len) break;
            const size_t p = b.empty() ? 0 : pick_pos(b, rng, fields);
            const uint8_t fill = uint8_t(rng.next());
            Bytes ins(n);
            for (auto& c : ins) c = rng.chance(1, 2) ? fill : uint8_t(rng.next());
            b.insert(b.begin() + std::ptrdiff_t(p), ins.begin(), ins.end());
            break;
        }
        case 4: {  // delete a range
            if (b.empty()) break;
            const size_t p = pick_pos(b, rng, fields);
            const size_t n = std::min(b.size() - p, size_t(1 + rng.below(rng.chance(1, 4) ? 64 : 8)));
            b.erase(b.begin() + std::ptrdiff_t(p), b.begin() + std::ptrdiff_t(p + n));
            break;
        }
        case 5:
        case 6: {  // a u32 field to a boundary value (or the file size, or off by one)
            if (b.size() < 4) break;
            const size_t p = std::min(pick_pos(b, rng, fields) & ~size_t(rng.chance(1, 2) ? 3 : 0), b.size() - 4);
            uint32_t v = kU32[rng.below(sizeof kU32 / sizeof kU32[0])];
            if (rng.chance(1, 8)) v = uint32_t(b.size());
            if (rng.chance(1, 4)) v = get_u32(b, p) + uint32_t(rng.below(5)) - 2u;
            put_u32(b, p, v);
            break;
        }
        case 7: {  // a u64 field (offsets, sizes, file_size)
            if (b.size() < 8) break;
            const size_t p = std::min(pick_pos(b, rng, fields), b.size() - 8);
            uint64_t v = kU64[rng.below(sizeof kU64 / sizeof kU64[0])];
            if (rng.chance(1, 4)) v = b.size() - rng.below(b.size() + 1);
            if (rng.chance(1, 4)) v = get_u64(b, p) + uint64_t(rng.below(17)) - 8u;
            put_u64(b, p, v);
            break;
        }
        case 8: {  // a float: scales, means, deq
            if (b.size() < 4) break;
            const float vals[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-45f, -1.0f, 3.4e38f, 1e-38f, 1.0f};
            const size_t p = std::min(pick_pos(b, rng, fields) & ~size_t(3), b.size() - 4);
            put_u32(b, p, f32_bits(vals[rng.below(sizeof vals / sizeof vals[0])]));
            break;
        }
        case 9: {  // a double: output scale and shift
            if (b.size() < 8) break;
            const double vals[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1e308, -1e308, 5e-324, 710.0, -1.0};
            const size_t p = std::min(pick_pos(b, rng, fields) & ~size_t(7), b.size() - 8);
            put_u64(b, p, f64_bits(vals[rng.below(sizeof vals / sizeof vals[0])]));
            break;
        }
        case 10: {  // copy a chunk of the file over another place
            if (b.size() < 2) break;
            const size_t n = 1 + rng.below(std::min<size_t>(b.size() / 2, 48));
            const size_t from = rng.below(b.size() - n + 1), to = rng.below(b.size() - n + 1);
            std::memmove(b.data() + to, b.data() + from, n);
            break;
        }
        case 11: {  // splice: the head of this input, the tail of another
            const Bytes& o = corpus[rng.below(corpus.size())];
            if (b.empty() || o.empty()) break;
            const size_t cut = rng.below(std::min(b.size(), o.size()));
            b.resize(cut);
            b.insert(b.end(), o.begin() + std::ptrdiff_t(cut), o.end());
            if (b.size() > max_len) b.resize(max_len);
            break;
        }
        case 12: {  // swap or copy section-table entries (duplicate / reorder / alias sections)
            if (b.size() < kHeader + kEntry) break;
            const size_t n = std::min<size_t>(get_u32(b, 20), (b.size() - kHeader) / kEntry);
            if (n < 2) break;
            const size_t i = rng.below(n), j = rng.below(n);
            uint8_t* ei = b.data() + kHeader + i * kEntry;
            uint8_t* ej = b.data() + kHeader + j * kEntry;
            if (rng.chance(1, 2)) {
                uint8_t tmp[kEntry];
                std::memcpy(tmp, ei, kEntry);
                std::memcpy(ei, ej, kEntry);
                std::memcpy(ej, tmp, kEntry);
            } else {
                std::memcpy(ei, ej, rng.chance(1, 2) ? 4 : kEntry);  // same kind only, or the whole entry
            }
            break;
        }
        default: {  // section-table entry: kind / flags / offset / size to boundary values
            if (b.size() < kHeader + kEntry) break;
            const size_t n = std::min<size_t>(get_u32(b, 20), (b.size() - kHeader) / kEntry);
            if (n == 0) break;
            const size_t e = kHeader + rng.below(n) * kEntry;
            switch (rng.below(4)) {
                case 0: put_u32(b, e, uint32_t(rng.below(8))); break;             // kind 0..7 (6, 7 unknown)
                case 1: put_u32(b, e + 4, uint32_t(rng.below(4))); break;         // flags (optional bit, unknown bit)
                case 2: put_u64(b, e + 8, get_u64(b, e + 8) + 8 * rng.below(5) - 16); break;
                default: put_u64(b, e + 16, get_u64(b, e + 16) + rng.below(17) - 8); break;
            }
            break;
        }
    }
}

// Make the header agree with the mutated bytes so the mutation reaches the checks past the CRCs.
void fix_header(Bytes& b, bool fix_size) {
    if (b.size() < kHeader) return;
    if (fix_size) put_u64(b, 24, b.size());
    put_u32(b, 40, mel::crc32(b.data() + kHeader, b.size() - kHeader));
    put_u32(b, 60, mel::crc32(b.data(), 60));
}

// --- crash reproduction: the input being run is written out when the process dies ------------
const uint8_t* g_cur = nullptr;
size_t g_cur_size = 0;
char g_crash_path[4096] = "crash-fuzz_reader.melw";
volatile sig_atomic_t g_dumped = 0;

void dump_current() {
    if (g_dumped || !g_cur) return;
    g_dumped = 1;
    const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    size_t done = 0;
    while (done < g_cur_size) {
        const ssize_t w = ::write(fd, g_cur + done, g_cur_size - done);
        if (w <= 0) break;
        done += size_t(w);
    }
    ::close(fd);
    const char msg[] = "\nfuzz_reader: the failing input was written to ";
    if (::write(2, msg, sizeof msg - 1) < 0) return;
    if (::write(2, g_crash_path, std::strlen(g_crash_path)) < 0) return;
    if (::write(2, "\n", 1) < 0) return;
}

extern "C" void on_fatal_signal(int sig) {
    dump_current();
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

void run_one(const Bytes& in) {
    // An exactly-sized heap copy: a read one byte past the input is an ASan report.
    uint8_t* p = static_cast<uint8_t*>(std::malloc(in.size() ? in.size() : 1));
    if (!p) {
        std::fprintf(stderr, "fuzz_reader: out of memory\n");
        std::exit(2);
    }
    if (!in.empty()) std::memcpy(p, in.data(), in.size());
    g_cur = p;
    g_cur_size = in.size();
    LLVMFuzzerTestOneInput(p, in.size());
    g_cur = nullptr;
    std::free(p);
}

bool read_file(const std::filesystem::path& path, Bytes& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return true;
}

void usage() {
    std::fprintf(stderr,
                 "usage: fuzz_reader [--time SECONDS] [--seed N] [--runs N] [--max-len BYTES]\n"
                 "                   [--crash-dir DIR] [--replay] SEED_FILE_OR_DIR...\n"
                 "  Mutates the seed .melw files and loads every mutant with mel_model_load_buffer,\n"
                 "  for SECONDS (default 10) or N runs, whichever ends first; deterministic for a\n"
                 "  given --seed (default 1) and seeds. On a crash the input is written to\n"
                 "  DIR/crash-<run>.melw (default: the current directory). --replay runs each\n"
                 "  file once, unmutated (to reproduce a crash).\n"
                 "  --self-test-crash=asan|ubsan makes a deliberate error in this program, to check\n"
                 "  that the sanitizers are active and that a report fails the run.\n");
}

int self_test_crash(const std::string& kind) {
    if (kind == "asan") {
        char* volatile p = static_cast<char*>(std::malloc(16));  // volatile: opaque to the compiler
        volatile size_t i = 16;
        const char c = p[i];  // heap-buffer-overflow read
        std::free(p);
        std::printf("fuzz_reader: read %d past the buffer and nothing stopped it\n", c);
        return 0;
    }
    if (kind == "ubsan") {
        volatile int big = 0x7FFFFFFF;
        const int r = big + 1;  // signed overflow
        std::printf("fuzz_reader: computed %d by signed overflow and nothing stopped it\n", r);
        return 0;
    }
    usage();
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    double seconds = 10.0;
    uint64_t seed = 1, max_runs = UINT64_MAX;
    size_t max_len = 1 << 20;
    std::string crash_dir = ".";
    bool replay = false;
    std::vector<std::string> inputs;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i], val;
        const bool has_eq = a.rfind("--", 0) == 0 && a.find('=') != std::string::npos;
        if (has_eq) {
            val = a.substr(a.find('=') + 1);
            a = a.substr(0, a.find('='));
        }
        auto value = [&]() -> std::string {
            if (has_eq) return val;
            if (i + 1 >= argc) {
                usage();
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--time") seconds = std::atof(value().c_str());
        else if (a == "--seed") seed = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--runs") max_runs = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--max-len") max_len = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--crash-dir") crash_dir = value();
        else if (a == "--replay") replay = true;
        else if (a == "--self-test-crash") return self_test_crash(value());
        else if (a == "-h" || a == "--help") { usage(); return 0; }
        else if (a.rfind("--", 0) == 0) { usage(); return 2; }
        else inputs.push_back(a);
    }

    std::vector<Bytes> corpus;
    for (const std::string& in : inputs) {
        std::error_code ec;
        std::vector<std::filesystem::path> files;
        if (std::filesystem::is_directory(in, ec)) {
            for (const auto& e : std::filesystem::directory_iterator(in, ec))
                if (e.is_regular_file(ec)) files.push_back(e.path());
        } else {
            files.push_back(in);
        }
        for (const auto& f : files) {
            Bytes b;
            if (!read_file(f, b)) {
                std::fprintf(stderr, "fuzz_reader: cannot read %s\n", f.c_str());
                return 2;
            }
            corpus.push_back(std::move(b));
        }
    }
    if (corpus.empty()) {
        std::fprintf(stderr, "fuzz_reader: no seed inputs\n");
        usage();
        return 2;
    }

    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(dump_current);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, on_fatal_signal);

    if (replay) {
        for (const Bytes& b : corpus) run_one(b);
        std::printf("fuzz_reader: replayed %zu inputs\nexecutions: %zu\n", corpus.size(), corpus.size());
        return 0;
    }

    const size_t n_seeds = corpus.size();
    uint64_t status_count[128] = {};
    auto count = [&](int st) { status_count[size_t(-st) & 127]++; };
    uint64_t runs = 0;
    for (const Bytes& b : corpus) {  // the seeds themselves, unmutated
        run_one(b);
        count(g_last_status);
        ++runs;
    }

    Rng rng{seed};
    const auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0.0;
    while (runs < max_runs) {
        if ((runs & 63) == 0) {
            elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (elapsed >= seconds) break;
        }
        // Parents: mostly the seeds (valid files), sometimes a mutant that loaded.
        const size_t parent = rng.chance(3, 4) ? rng.below(n_seeds) : rng.below(corpus.size());
        Bytes b = corpus[parent];
        const unsigned n_mut = 1 + unsigned(rng.below(rng.chance(1, 4) ? 8 : 3));
        for (unsigned k = 0; k < n_mut; ++k) mutate_once(b, rng, corpus, max_len);
        // 1/8 untouched header (checksum and size checks), 3/8 CRCs re-fixed, 1/2 size and CRCs.
        const unsigned fix = unsigned(rng.below(8));
        if (fix >= 1) fix_header(b, fix >= 4);

        std::snprintf(g_crash_path, sizeof g_crash_path, "%s/crash-%llu.melw", crash_dir.c_str(),
                      static_cast<unsigned long long>(runs));
        run_one(b);
        count(g_last_status);
        ++runs;
        if (g_last_status == MEL_OK && corpus.size() < 1024 && b != corpus[parent]) corpus.push_back(std::move(b));
    }
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::printf("fuzz_reader: seed %llu, %zu seed inputs, %zu loadable mutants kept, kernel %s\n",
                static_cast<unsigned long long>(seed), n_seeds, corpus.size() - n_seeds, mel_kernel_name());
    std::printf("fuzz_reader: load results:");
    for (int st = 0; st < 128; ++st)
        if (status_count[st]) std::printf(" %s=%llu", mel_status_name(-st), static_cast<unsigned long long>(status_count[st]));
    std::printf("\n");
    std::printf("executions: %llu in %.1f s (%.0f exec/s)\n", static_cast<unsigned long long>(runs), elapsed,
                elapsed > 0 ? double(runs) / elapsed : 0.0);
    return 0;
}

#endif  // MEL_FUZZ_STANDALONE
