#include "format.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <string_view>

#include "../encode/encode.hpp"
#include "../error.hpp"
#include "crc32.hpp"

namespace mel {

void AlignedFree::operator()(void* p) const noexcept { std::free(p); }

AlignedBuf aligned_alloc64(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) fail(MEL_ERR_NO_MEMORY, "out of memory allocating " + std::to_string(rounded) + " bytes for the model");
    std::memset(p, 0, rounded);
    return AlignedBuf(static_cast<unsigned char*>(p));
}

namespace {

// Optional section (docs/format.md): the search space and feature schema version of the
// encoder whose features the model takes first. Older readers skip it (it is written with the
// optional flag); this reader checks it against its own encoders.
constexpr uint32_t kSecEncoder = 6;
constexpr uint32_t kSecInterval = 7;

// Little-endian loads that do not depend on the host's byte order or on alignment.
uint32_t rd_u32(const unsigned char* p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint16_t rd_u16(const unsigned char* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint64_t rd_u64(const unsigned char* p) { return uint64_t(rd_u32(p)) | (uint64_t(rd_u32(p + 4)) << 32); }
int32_t rd_i32(const unsigned char* p) {
    uint32_t u = rd_u32(p);
    int32_t v;
    std::memcpy(&v, &u, 4);
    return v;
}
float rd_f32(const unsigned char* p) {
    uint32_t u = rd_u32(p);
    float v;
    std::memcpy(&v, &u, 4);
    return v;
}
double rd_f64(const unsigned char* p) {
    uint64_t u = rd_u64(p);
    double v;
    std::memcpy(&v, &u, 8);
    return v;
}

std::string hex32(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08X", v);
    return buf;
}

[[noreturn]] void bad(const std::string& what) { fail(MEL_ERR_FORMAT, "invalid .melw file: " + what); }

struct Section {
    uint32_t kind, flags;
    uint64_t offset, size;
};

const char* kind_name(uint32_t k) {
    switch (k) {
        case kSecInput: return "INPUT";
        case kSecLayer: return "LAYER";
        case kSecOutput: return "OUTPUT";
        case kSecFeatures: return "FEATURES";
        case kSecMetadata: return "METADATA";
        case kSecEncoder: return "ENCODER";
        case kSecInterval: return "INTERVAL";
        case kSecLayerCost: return "LAYER_COST";
        default: return "unknown";
    }
}

// Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF); NUL is refused too.
bool valid_utf8(const unsigned char* s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return false;
        if (c < 0x80) { ++i; continue; }
        size_t len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return false;
        if (n - i < len) return false;
        for (size_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

struct LayerRaw {
    uint32_t in, out, kind;
    const unsigned char* w;      // int8 [out][in]
    const unsigned char* bias;   // i32 [out]
    const unsigned char* extra1; // hidden: mult i32[out]; output: deq f32[out]
    const unsigned char* extra2; // hidden: shift i32[out]
};

}  // namespace

// INTERVAL (docs/format.md): u32 kind (1), u32 terms, u32 rank, u32 reserved; f64 level, z,
// noise_rel; u32 index[terms - 1], zero-padded to 8 bytes; f32 F[terms * rank].
void parse_interval(Model& m, const unsigned char* p, uint64_t size, const std::string& where) {
    if (size < 40) bad(where + " is too short");
    if (rd_u32(p) != 1) fail(MEL_ERR_VERSION, where + " has kind " + std::to_string(rd_u32(p)) +
                                                   ", unknown to this reader; upgrade maple_edge_lite");
    const uint32_t terms = rd_u32(p + 4), rank = rd_u32(p + 8);
    if (rd_u32(p + 12) != 0) bad(where + " reserved field is not zero");
    if (terms < 1 || terms - 1 > m.input_dim)
        bad(where + " has " + std::to_string(terms) + " terms for " + std::to_string(m.input_dim) + " features");
    if (rank < 1 || rank > terms) bad(where + " rank " + std::to_string(rank) + " is not in 1.." + std::to_string(terms));
    const double level = rd_f64(p + 16), z = rd_f64(p + 24), noise = rd_f64(p + 32);
    if (!(level > 0.0 && level < 1.0)) bad(where + " level is not in (0, 1)");
    if (!(std::isfinite(z) && z > 0.0)) bad(where + " z is not a finite positive number");
    if (!(std::isfinite(noise) && noise >= 0.0)) bad(where + " noise is not a finite number >= 0");
    const uint64_t idx_bytes = 4ull * (terms - 1), idx_pad = (idx_bytes + 7) / 8 * 8;
    const uint64_t expect = 40 + idx_pad + 4ull * terms * rank;
    if (size != expect) bad(where + " size " + std::to_string(size) + " does not match its terms and rank (expected " +
                            std::to_string(expect) + ")");
    m.iv_index.resize(terms - 1);
    for (uint32_t k = 0; k + 1 < terms; ++k) {
        const uint32_t i = rd_u32(p + 40 + 4ull * k);
        if (i >= m.input_dim) bad(where + " term " + std::to_string(k + 1) + " names feature " + std::to_string(i) +
                                  " of " + std::to_string(m.input_dim));
        if (k > 0 && i <= m.iv_index[k - 1]) bad(where + " feature indices are not increasing");
        m.iv_index[k] = i;
    }
    for (uint64_t b = 40 + idx_bytes; b < 40 + idx_pad; ++b)
        if (p[b] != 0) bad(where + " padding is not zero");
    m.iv_factor.resize(size_t(terms) * rank);
    for (size_t k = 0; k < m.iv_factor.size(); ++k) {
        const float f = rd_f32(p + 40 + idx_pad + 4 * k);
        if (!std::isfinite(f)) bad(where + " factor value " + std::to_string(k) + " is not finite");
        m.iv_factor[k] = f;
    }
    m.has_interval = true;
    m.iv_level = level;
    m.iv_z = z;
    m.iv_noise = noise;
    m.iv_terms = terms;
    m.iv_rank = rank;
}

// LAYER_COST (docs/format.md): the fixed head (88 bytes in scheme 1; 112 in scheme 2, which adds
// the spill term; 128 in scheme 3, which adds the alignment term; 136 in scheme 4, which adds the
// channel term), the part indices, the f32 coefficient tables, the multipliers and the
// posterior factor, then the kind and activation names.
void parse_layer_cost(Model& m, const unsigned char* p, uint64_t size, const std::string& where) {
    LayerCost& lc = m.lc;
    if (size < 88) bad(where + " is too short (" + std::to_string(size) + " bytes)");
    const uint32_t scheme = rd_u32(p);
    if (scheme < 1 || scheme > 4)
        fail(MEL_ERR_VERSION, where + " has arithmetic scheme " + std::to_string(scheme) +
                                  ", unknown to this reader (it knows 1 to 4); upgrade maple_edge_lite");
    if (scheme == 2 && m.format_version < 4)
        bad(where + " has arithmetic scheme 2 (the spill term) in a format-" + std::to_string(m.format_version) +
            " file (scheme 2 is format 4)");
    if (scheme == 3 && m.format_version < 5)
        bad(where + " has arithmetic scheme 3 (the alignment term) in a format-" + std::to_string(m.format_version) +
            " file (scheme 3 is format 5)");
    if (scheme == 4 && m.format_version < 6)
        bad(where + " has arithmetic scheme 4 (the channel term) in a format-" + std::to_string(m.format_version) +
            " file (scheme 4 is format 6)");
    lc.scheme = scheme;
    const uint64_t head = scheme == 1 ? 88 : scheme == 2 ? 112 : scheme == 3 ? 128 : 136;
    if (size < head) bad(where + " is too short (" + std::to_string(size) + " bytes)");
    lc.table_schema = rd_u32(p + 4);
    lc.n_columns = rd_u32(p + 8);
    const uint32_t n_kinds = rd_u32(p + 12), n_acts = rd_u32(p + 16);
    lc.n_parts = rd_u32(p + 20);
    lc.rank = rd_u32(p + 24);
    if (rd_u32(p + 28) != 0 || rd_u32(p + 52) != 0) bad(where + " reserved field is not zero");
    if (lc.table_schema == 0) bad(where + " layer-table schema is 0");
    if (lc.n_columns == 0) bad(where + " has 0 columns");
    if (lc.n_columns > MEL_MAX_DIM)
        fail(MEL_ERR_LIMIT, where + " has " + std::to_string(lc.n_columns) + " columns, more than this reader's limit of " +
                                std::to_string(MEL_MAX_DIM));
    if (n_kinds == 0 || n_kinds > kLayerCostMaxNames || n_acts == 0 || n_acts > kLayerCostMaxNames)
        bad(where + " has " + std::to_string(n_kinds) + " kinds and " + std::to_string(n_acts) +
            " activations (each must be 1.." + std::to_string(kLayerCostMaxNames) + ")");
    if (lc.n_parts < 2 || lc.n_parts > kLayerCostMaxParts)
        bad(where + " has " + std::to_string(lc.n_parts) + " parts (must be 2.." + std::to_string(kLayerCostMaxParts) + ")");
    if (lc.rank < 1 || lc.rank > lc.n_parts)
        bad(where + " rank " + std::to_string(lc.rank) + " is not in 1.." + std::to_string(lc.n_parts));
    const char* col_names[5] = {"kind", "macs", "bytes_read", "bytes_written", "activation"};
    uint32_t* cols[5] = {&lc.col_kind, &lc.col_macs, &lc.col_read, &lc.col_written, &lc.col_act};
    for (int k = 0; k < 5; ++k) {
        *cols[k] = rd_u32(p + 32 + 4 * k);
        if (*cols[k] >= lc.n_columns)
            bad(where + " column of " + col_names[k] + " is " + std::to_string(*cols[k]) + ", beyond the " +
                std::to_string(lc.n_columns) + " columns");
    }
    lc.c0 = rd_f64(p + 56);
    lc.level = rd_f64(p + 64);
    lc.z = rd_f64(p + 72);
    lc.noise = rd_f64(p + 80);
    if (!(std::isfinite(lc.c0) && lc.c0 >= 0.0)) bad(where + " per-inference cost c0 is not a finite number >= 0");
    if (!(lc.level > 0.0 && lc.level < 1.0)) bad(where + " level is not in (0, 1)");
    if (!(std::isfinite(lc.z) && lc.z > 0.0)) bad(where + " z is not a finite positive number");
    if (!(std::isfinite(lc.noise) && lc.noise >= 0.0)) bad(where + " noise is not a finite number >= 0");
    if (scheme >= 2) {  // the spill term: u32 part, u32 reserved, f64 threshold (bytes), f64 ms per MB
        lc.spill_part = rd_u32(p + 88);
        if (rd_u32(p + 92) != 0) bad(where + " reserved field is not zero");
        lc.spill_threshold = rd_f64(p + 96);
        lc.spill_w = rd_f64(p + 104);
        if (scheme >= 3 && lc.spill_part == 0) {  // schemes 3, 4 without the spill term: its fields zero
            if (lc.spill_threshold != 0.0 || lc.spill_w != 0.0)
                bad(where + " has no spill term (part 0) but a nonzero spill threshold or coefficient");
        } else {
            if (lc.spill_part < 1 || lc.spill_part >= lc.n_parts)
                bad(where + " spill term names part " + std::to_string(lc.spill_part) + " (must be " +
                    (scheme >= 3 ? "0, none, or " : "") + "1.." + std::to_string(lc.n_parts - 1) + ")");
            if (!(std::isfinite(lc.spill_threshold) && lc.spill_threshold >= 0.0))
                bad(where + " spill threshold is not a finite number of bytes >= 0");
            if (!(std::isfinite(lc.spill_w) && lc.spill_w >= 0.0))
                bad(where + " spill coefficient is not a finite number of ms per MB >= 0");
        }
    }
    if (scheme >= 3) {  // the alignment term: u32 alignment, u32 min_cin, u32 column of cin, of cout
        lc.align = rd_u32(p + 112);
        lc.align_min_cin = rd_u32(p + 116);
        lc.col_cin = rd_u32(p + 120);
        lc.col_cout = rd_u32(p + 124);
        if (lc.align < 2 || lc.align > 1024)
            bad(where + " channel alignment is " + std::to_string(lc.align) + " (must be 2..1024)");
        if (lc.col_cin >= lc.n_columns || lc.col_cout >= lc.n_columns)
            bad(where + " column of cin or cout is beyond the " + std::to_string(lc.n_columns) + " columns");
    }
    if (scheme == 4) {  // the channel term: u32 channel alignment, u32 reserved
        lc.chan_align = rd_u32(p + 128);
        if (rd_u32(p + 132) != 0) bad(where + " reserved field is not zero");
        if (lc.chan_align < 2 || lc.chan_align > 1024)
            bad(where + " channel term's alignment is " + std::to_string(lc.chan_align) + " (must be 2..1024)");
    }
    // Fixed-size part; every count is bounded above, so no product overflows 64 bits.
    const uint64_t idx_bytes = 4ull * (n_kinds + n_acts), idx_pad = (idx_bytes + 7) / 8 * 8;
    const uint64_t flt = 4ull * (4ull * n_kinds + 4ull * n_acts + (scheme >= 3 ? n_kinds : 0) +
                                 (scheme == 4 ? n_kinds : 0) + lc.n_parts +
                                 uint64_t(lc.n_parts) * lc.rank);
    const uint64_t flt_pad = (flt + 7) / 8 * 8;
    const uint64_t names_at = head + idx_pad + flt_pad;
    if (size < names_at) bad(where + " ends inside its tables (" + std::to_string(size) + " bytes, tables end at " +
                             std::to_string(names_at) + ")");
    lc.kind_part.resize(n_kinds);
    lc.act_part.resize(n_acts);
    for (uint32_t k = 0; k < n_kinds; ++k) {
        lc.kind_part[k] = rd_u32(p + head + 4ull * k);
        if (lc.kind_part[k] < 1 || lc.kind_part[k] >= lc.n_parts)
            bad(where + " kind " + std::to_string(k) + " names part " + std::to_string(lc.kind_part[k]) + " (must be 1.." +
                std::to_string(lc.n_parts - 1) + ")");
    }
    for (uint32_t a = 0; a < n_acts; ++a) {
        lc.act_part[a] = rd_u32(p + head + 4ull * (n_kinds + a));
        if (lc.act_part[a] >= lc.n_parts)
            bad(where + " activation " + std::to_string(a) + " names part " + std::to_string(lc.act_part[a]) +
                " (must be 0, no pass, or 1.." + std::to_string(lc.n_parts - 1) + ")");
    }
    for (uint64_t b = head + idx_bytes; b < head + idx_pad; ++b)
        if (p[b] != 0) bad(where + " padding is not zero");
    uint64_t at = head + idx_pad;
    auto floats = [&](std::vector<double>& v, size_t n, const char* what) {
        v.resize(n);
        for (size_t k = 0; k < n; ++k) {
            const float f = rd_f32(p + at + 4 * k);
            if (!std::isfinite(f)) bad(where + " " + what + " value " + std::to_string(k) + " is not finite");
            v[k] = f;
        }
        at += 4ull * n;
    };
    floats(lc.kind_w, 4ull * n_kinds, "kind coefficient");
    floats(lc.act_w, 4ull * n_acts, "activation pass coefficient");
    if (scheme >= 3) {
        floats(lc.align_w, n_kinds, "alignment coefficient");
        for (uint32_t k = 0; k < n_kinds; ++k)
            if (lc.align_w[k] < 0.0) bad(where + " alignment coefficient " + std::to_string(k) + " is negative");
    }
    if (scheme == 4) {
        floats(lc.chan_w, n_kinds, "channel coefficient");
        for (uint32_t k = 0; k < n_kinds; ++k)
            if (lc.chan_w[k] < 0.0) bad(where + " channel coefficient " + std::to_string(k) + " is negative");
    }
    floats(lc.mult, lc.n_parts, "multiplier");
    floats(lc.post, size_t(lc.n_parts) * lc.rank, "posterior factor");
    for (uint64_t b = at; b < names_at; ++b)
        if (p[b] != 0) bad(where + " padding is not zero");
    // Names: u32 length (0..1024) + strict UTF-8; kinds non-empty; each list without repeats.
    at = names_at;
    for (int list = 0; list < 2; ++list) {
        const uint32_t n = list == 0 ? n_kinds : n_acts;
        std::vector<std::string>& out = list == 0 ? lc.kinds : lc.activations;
        const char* what = list == 0 ? "kind" : "activation";
        out.reserve(n);
        for (uint32_t k = 0; k < n; ++k) {
            if (size - at < 4) bad(where + " ends inside " + what + " name " + std::to_string(k));
            const uint32_t len = rd_u32(p + at);
            at += 4;
            if (len > 1024 || (list == 0 && len == 0))
                bad(where + " " + what + " name " + std::to_string(k) + " has length " + std::to_string(len));
            if (size - at < len) bad(where + " ends inside " + what + " name " + std::to_string(k));
            if (!valid_utf8(p + at, len)) bad(where + " " + what + " name " + std::to_string(k) + " is not valid UTF-8");
            out.emplace_back(reinterpret_cast<const char*>(p + at), len);
            at += len;
        }
        std::vector<std::string_view> sorted(out.begin(), out.end());
        std::sort(sorted.begin(), sorted.end());
        for (size_t k = 1; k < sorted.size(); ++k)
            if (sorted[k] == sorted[k - 1]) bad(where + " " + what + " name '" + std::string(sorted[k]) + "' appears twice");
    }
    if (at != size) bad(where + " has trailing bytes");
    m.is_layer_cost = true;
    m.input_dim = lc.n_columns;
    m.has_interval = true;  // the level is the model's; the interval itself is mel_model_predict_layers'
    m.iv_level = lc.level;
}

std::unique_ptr<Model> parse_model(const unsigned char* d, size_t size) {
    // --- fixed header ---------------------------------------------------------------------
    if (size < kHeaderSize)
        bad("file is " + std::to_string(size) + " bytes, shorter than the 64-byte header (truncated?)");
    if (std::memcmp(d, kMagic, 8) != 0)
        bad("bad magic: this is not a maple_edge_lite weights file (.melw)");
    const uint32_t bom = rd_u32(d + 8);
    if (bom != kByteOrderMark) {
        if (bom == 0x04030201u)
            bad("byte-order mark says big-endian: v1 files are little-endian; re-pack it with maple_edge_lite.pack");
        bad("corrupt byte-order mark " + hex32(bom));
    }
    const uint16_t version = rd_u16(d + 12);
    const uint16_t qscheme = rd_u16(d + 14);
    if (version < 1 || version > MEL_FORMAT_VERSION)
        fail(MEL_ERR_VERSION, "weights file format version " + std::to_string(version) +
                                  " is not supported by this library (reads versions 1 to " +
                                  std::to_string(MEL_FORMAT_VERSION) + "); upgrade maple_edge_lite or re-pack the model");
    const uint32_t hcrc_stored = rd_u32(d + 60);
    const uint32_t hcrc = crc32(d, 60);
    if (hcrc != hcrc_stored)
        fail(MEL_ERR_CHECKSUM, "header CRC-32 mismatch (stored " + hex32(hcrc_stored) + ", computed " + hex32(hcrc) +
                                   "): the file is damaged; re-copy or re-pack it");
    if (qscheme != MEL_QUANT_SCHEME_VERSION)
        fail(MEL_ERR_VERSION, "quantization scheme " + std::to_string(qscheme) +
                                  " is not supported by this library (knows scheme " +
                                  std::to_string(MEL_QUANT_SCHEME_VERSION) + "); upgrade maple_edge_lite");
    const uint32_t header_size = rd_u32(d + 16);
    const uint32_t n_sections = rd_u32(d + 20);
    const uint64_t file_size = rd_u64(d + 24);
    const uint64_t table_off = rd_u64(d + 32);
    const uint32_t pcrc_stored = rd_u32(d + 40);
    if (header_size != kHeaderSize) bad("header_size is " + std::to_string(header_size) + ", expected 64");
    for (int i = 44; i < 60; ++i)
        if (d[i] != 0) bad("reserved header bytes 44..59 are not zero");
    if (file_size != size)
        bad("header says the file is " + std::to_string(file_size) + " bytes but " + std::to_string(size) +
            " were read" + (size < file_size ? " (truncated: re-copy the file)" : " (trailing bytes)"));
    const uint32_t pcrc = crc32(d + kHeaderSize, size - kHeaderSize);
    if (pcrc != pcrc_stored)
        fail(MEL_ERR_CHECKSUM, "payload CRC-32 mismatch (stored " + hex32(pcrc_stored) + ", computed " + hex32(pcrc) +
                                   "): the file is damaged; re-copy or re-pack it");

    // --- section table --------------------------------------------------------------------
    // An MLP needs INPUT, LAYER, OUTPUT, FEATURES and METADATA; format 3 may hold a layer cost
    // model instead: LAYER_COST, FEATURES and METADATA.
    if (n_sections < (version >= 3 ? 3u : 5u) || n_sections > 4 + MEL_MAX_LAYERS + 64)
        bad("section count " + std::to_string(n_sections) + " is out of range");
    if (table_off != kHeaderSize) bad("section table offset " + std::to_string(table_off) + " is not 64");
    const uint64_t table_end = table_off + uint64_t(n_sections) * kSectionEntrySize;
    if (table_end > size) bad("section table runs past the end of the file");
    std::vector<Section> secs(n_sections);
    for (uint32_t i = 0; i < n_sections; ++i) {
        const unsigned char* e = d + table_off + uint64_t(i) * kSectionEntrySize;
        Section s{rd_u32(e), rd_u32(e + 4), rd_u64(e + 8), rd_u64(e + 16)};
        const std::string where = "section " + std::to_string(i) + " (" + kind_name(s.kind) + ")";
        if (s.flags & ~kSectionOptional) bad(where + " has unknown flag bits");
        if (s.offset % 8 != 0) bad(where + " offset " + std::to_string(s.offset) + " is not 8-byte aligned");
        if (s.offset < table_end || s.offset > size || s.size > size - s.offset)
            bad(where + " [" + std::to_string(s.offset) + ", +" + std::to_string(s.size) +
                ") lies outside the payload (file is " + std::to_string(size) + " bytes)");
        secs[i] = s;
    }
    {  // sections must not overlap: sort by offset and compare neighbours
        std::vector<Section> sorted = secs;
        std::sort(sorted.begin(), sorted.end(), [](const Section& a, const Section& b) { return a.offset < b.offset; });
        for (size_t i = 1; i < sorted.size(); ++i)
            if (sorted[i - 1].offset + sorted[i - 1].size > sorted[i].offset) bad("sections overlap");
    }

    auto model = std::make_unique<Model>();
    model->format_version = version;
    int n_input = 0, n_output = 0, n_features = 0, n_meta = 0, n_encoder = 0, n_interval = 0, n_layer_cost = 0;
    const unsigned char* lc_p = nullptr;
    uint64_t lc_size = 0;
    std::string lc_where;
    const unsigned char* iv_p = nullptr;
    uint64_t iv_size = 0;
    std::string iv_where;
    uint32_t enc_space = 0, enc_version = 0;
    std::vector<LayerRaw> raw;
    for (uint32_t i = 0; i < n_sections; ++i) {
        const Section& s = secs[i];
        const unsigned char* p = d + s.offset;
        const std::string where = "section " + std::to_string(i) + " (" + kind_name(s.kind) + ")";
        switch (s.kind) {
            case kSecInput: {
                if (++n_input > 1) bad("more than one INPUT section");
                if (s.size < 8) bad(where + " is too short");
                const uint32_t dim = rd_u32(p);
                if (rd_u32(p + 4) != 0) bad(where + " reserved field is not zero");
                if (dim == 0) bad(where + " input_dim is 0");
                if (dim > MEL_MAX_DIM)
                    fail(MEL_ERR_LIMIT, "input_dim " + std::to_string(dim) + " exceeds this reader's limit of " +
                                            std::to_string(MEL_MAX_DIM));
                if (s.size != 8 + uint64_t(dim) * 8) bad(where + " size does not match input_dim");
                model->input_dim = dim;
                model->in_mean.resize(dim);
                model->in_mul.resize(dim);
                for (uint32_t k = 0; k < dim; ++k) {
                    const float m = rd_f32(p + 8 + 4 * k), u = rd_f32(p + 8 + 4 * (uint64_t(dim) + k));
                    if (!std::isfinite(m)) bad("input mean of feature " + std::to_string(k) + " is not finite");
                    if (!std::isfinite(u) || !(u > 0.0f))
                        bad("input scale of feature " + std::to_string(k) + " is not a finite positive number");
                    model->in_mean[k] = m;
                    model->in_mul[k] = u;
                }
                break;
            }
            case kSecLayer: {
                if (raw.size() >= MEL_MAX_LAYERS)
                    fail(MEL_ERR_LIMIT, "more than " + std::to_string(MEL_MAX_LAYERS) + " layers");
                if (s.size < 16) bad(where + " is too short");
                LayerRaw L{rd_u32(p), rd_u32(p + 4), rd_u32(p + 8), nullptr, nullptr, nullptr, nullptr};
                if (rd_u32(p + 12) != 0) bad(where + " reserved field is not zero");
                if (L.in == 0 || L.out == 0) bad(where + " has a zero dimension");
                if (L.in > MEL_MAX_DIM || L.out > MEL_MAX_DIM)
                    fail(MEL_ERR_LIMIT, where + " dimensions " + std::to_string(L.out) + "x" + std::to_string(L.in) +
                                            " exceed this reader's limit of " + std::to_string(MEL_MAX_DIM));
                if (L.kind > 1) bad(where + " has unknown layer kind " + std::to_string(L.kind));
                const uint64_t wbytes = (uint64_t(L.in) * L.out + 3) / 4 * 4;
                const uint64_t expect = 16 + wbytes + 4ull * L.out + 8ull * L.out;
                if (s.size != expect) bad(where + " size " + std::to_string(s.size) + " does not match its dimensions (expected " + std::to_string(expect) + ")");
                L.w = p + 16;
                for (uint64_t k = uint64_t(L.in) * L.out; k < wbytes; ++k)
                    if (p[16 + k] != 0) bad(where + " weight padding is not zero");
                L.bias = p + 16 + wbytes;
                L.extra1 = L.bias + 4ull * L.out;
                L.extra2 = L.extra1 + 4ull * L.out;
                raw.push_back(L);
                break;
            }
            case kSecOutput: {
                if (++n_output > 1) bad("more than one OUTPUT section");
                if (s.size != 24) bad(where + " size is not 24");
                model->transform = rd_u32(p);
                if (model->transform > 2 || (model->transform == 2 && version < 2))
                    bad(where + " has unknown output transform " + std::to_string(model->transform) +
                        (model->transform == 2 ? " for format version 1" : ""));
                if (model->transform == 2) {
                    // Format 2: the field after the transform is the floor, an f32 > 0.
                    model->out_floor = rd_f32(p + 4);
                    if (!std::isfinite(model->out_floor) || !(model->out_floor > 0.0f))
                        bad(where + " output floor is not a finite positive number");
                } else if (rd_u32(p + 4) != 0) {
                    bad(where + " reserved field is not zero");
                }
                model->out_scale = rd_f64(p + 8);
                model->out_shift = rd_f64(p + 16);
                if (!std::isfinite(model->out_scale) || !std::isfinite(model->out_shift))
                    bad(where + " output scale or shift is not finite");
                break;
            }
            case kSecFeatures: {
                if (++n_features > 1) bad("more than one FEATURES section");
                if (s.size < 4) bad(where + " is too short");
                const uint32_t count = rd_u32(p);
                if (count > MEL_MAX_DIM) fail(MEL_ERR_LIMIT, where + " lists more than " + std::to_string(MEL_MAX_DIM) + " features");
                uint64_t pos = 4;
                model->feature_names.reserve(count);
                for (uint32_t k = 0; k < count; ++k) {
                    if (s.size - pos < 4) bad(where + " ends inside feature name " + std::to_string(k));
                    const uint32_t len = rd_u32(p + pos);
                    pos += 4;
                    if (len == 0 || len > 1024) bad(where + " feature name " + std::to_string(k) + " has length " + std::to_string(len) + " (must be 1..1024)");
                    if (s.size - pos < len) bad(where + " ends inside feature name " + std::to_string(k));
                    if (!valid_utf8(p + pos, len)) bad(where + " feature name " + std::to_string(k) + " is not valid UTF-8");
                    model->feature_names.emplace_back(reinterpret_cast<const char*>(p + pos), len);
                    pos += len;
                }
                if (pos != s.size) bad(where + " has trailing bytes");
                std::vector<std::string_view> names(model->feature_names.begin(), model->feature_names.end());
                std::sort(names.begin(), names.end());
                for (size_t k = 1; k < names.size(); ++k)
                    if (names[k] == names[k - 1]) bad("feature name '" + std::string(names[k]) + "' appears twice");
                break;
            }
            case kSecMetadata: {
                if (++n_meta > 1) bad("more than one METADATA section");
                if (s.size > (16u << 20)) fail(MEL_ERR_LIMIT, where + " is larger than 16 MiB");
                if (!valid_utf8(p, s.size)) bad(where + " is not valid UTF-8");
                model->metadata.assign(reinterpret_cast<const char*>(p), s.size);
                break;
            }
            case kSecEncoder: {
                if (++n_encoder > 1) bad("more than one ENCODER section");
                if (s.size != 8) bad(where + " size is " + std::to_string(s.size) + ", expected 8");
                enc_space = rd_u32(p);
                enc_version = rd_u32(p + 4);
                break;
            }
            case kSecInterval: {  // checked after FEATURES (it needs input_dim)
                if (++n_interval > 1) bad("more than one INTERVAL section");
                iv_p = p;
                iv_size = s.size;
                iv_where = where;
                break;
            }
            case kSecLayerCost: {  // checked after the loop (it must be the model's only form)
                if (version < 3)
                    bad(where + " in a format-" + std::to_string(version) + " file (layer cost models are format 3)");
                if (++n_layer_cost > 1) bad("more than one LAYER_COST section");
                lc_p = p;
                lc_size = s.size;
                lc_where = where;
                break;
            }
            default:
                if (!(s.flags & kSectionOptional))
                    fail(MEL_ERR_VERSION, where + " has kind " + std::to_string(s.kind) +
                                              ", unknown to this reader and not marked optional; upgrade maple_edge_lite");
        }
    }
    if (n_layer_cost) {
        if (n_input || n_output || !raw.empty() || n_encoder || n_interval)
            bad("a layer cost model (LAYER_COST section) has no INPUT, LAYER, OUTPUT, ENCODER or INTERVAL section");
        if (n_features != 1) bad("missing FEATURES section");
        if (n_meta != 1) bad("missing METADATA section");
        parse_layer_cost(*model, lc_p, lc_size, lc_where);
        if (model->feature_names.size() != model->input_dim)
            bad("FEATURES lists " + std::to_string(model->feature_names.size()) + " names but the LAYER_COST section has " +
                std::to_string(model->input_dim) + " columns");
        return model;
    }
    if (n_input != 1) bad("missing INPUT section");
    if (n_output != 1) bad("missing OUTPUT section");
    if (n_features != 1) bad("missing FEATURES section");
    if (n_meta != 1) bad("missing METADATA section");
    if (raw.empty()) bad("no LAYER section");
    if (model->feature_names.size() != model->input_dim)
        bad("FEATURES lists " + std::to_string(model->feature_names.size()) + " names but input_dim is " +
            std::to_string(model->input_dim));
    if (n_interval) parse_interval(*model, iv_p, iv_size, iv_where);
    if (n_encoder) {  // the encoder must compute exactly the model's first features
        if (enc_space == 0) bad("ENCODER section: search space id 0 is not valid");
        const enc::Encoder* e = enc::encoder_by_id(enc_space);
        if (!e)
            fail(MEL_ERR_VERSION, "ENCODER section names search space id " + std::to_string(enc_space) +
                                      ", unknown to this library (it knows 1 = nb201, 2 = fbnet); upgrade maple_edge_lite");
        const size_t enc_dim = e->dim_of(enc_version);
        if (enc_dim == 0)
            fail(MEL_ERR_VERSION, "the model takes " + std::string(e->name) + " features of schema version " +
                                      std::to_string(enc_version) + " but this library's " + e->name +
                                      " encoder computes versions 1 to " + std::to_string(e->schema_version) +
                                      "; use the maple_edge_lite the model was made with, or upgrade maple_edge_lite");
        // A schema grows only at its end: an older version's features are the encoder's first ones.
        const auto& names = e->feature_names();
        for (size_t k = 0; k < enc_dim && k < model->input_dim; ++k)
            if (model->feature_names[k] != names[k])
                bad("ENCODER section: feature " + std::to_string(k) + " of the model is '" + model->feature_names[k] +
                    "' but the " + e->name + " encoder's feature " + std::to_string(k) + " is '" + names[k] +
                    "'; a model's first features must be its encoder's, in order");
        if (model->input_dim < enc_dim)
            bad("ENCODER section: the " + std::string(e->name) + " encoder computes " + std::to_string(enc_dim) +
                " features (schema version " + std::to_string(enc_version) + ") but the model takes only " +
                std::to_string(model->input_dim));
        model->encoder_space = enc_space;
        model->encoder_version = enc_version;
    }

    // --- layers: chain, ranges, accumulator bound; then copy into the blocked layout -------
    size_t arena_bytes = 0;
    for (size_t l = 0; l < raw.size(); ++l) {
        const LayerRaw& L = raw[l];
        const std::string where = "layer " + std::to_string(l);
        const uint32_t prev = l == 0 ? model->input_dim : raw[l - 1].out;
        if (L.in != prev)
            bad(where + " takes " + std::to_string(L.in) + " inputs but receives " + std::to_string(prev));
        const bool last = l + 1 == raw.size();
        if (L.kind != (last ? 1u : 0u))
            bad(where + " is marked " + (L.kind ? "output" : "hidden") + " but is " + (last ? "the last" : "not the last") + " layer");
        if (last && L.out != 1) bad("the output layer has " + std::to_string(L.out) + " outputs; v1 models predict one value");
        const uint32_t in_pad = round_up(L.in, kIB), out_pad = round_up(L.out, kOB);
        arena_bytes += size_t(in_pad) * out_pad + 64;          // weights
        arena_bytes += 3 * (size_t(out_pad) * 4 + 64);        // bias, wsum, mult/deq
        arena_bytes += size_t(out_pad) * 4 + 64;              // shift
    }
    model->arena = aligned_alloc64(arena_bytes);
    unsigned char* cur = model->arena.get();
    auto take = [&cur](size_t bytes) {
        unsigned char* p = cur;
        cur += (bytes + 63) / 64 * 64;
        return p;
    };
    uint32_t max_in_pad = round_up(model->input_dim, kIB), max_out_pad = 0;
    for (size_t l = 0; l < raw.size(); ++l) {
        const LayerRaw& R = raw[l];
        const std::string where = "layer " + std::to_string(l);
        Layer L;
        L.in = R.in;
        L.out = R.out;
        L.in_pad = round_up(R.in, kIB);
        L.out_pad = round_up(R.out, kOB);
        L.signed_input = l == 0;
        L.is_output = R.kind == 1;
        auto* w = reinterpret_cast<int8_t*>(take(size_t(L.in_pad) * L.out_pad));
        auto* bias = reinterpret_cast<int32_t*>(take(size_t(L.out_pad) * 4));
        auto* wsum = reinterpret_cast<int32_t*>(take(size_t(L.out_pad) * 4));
        auto* e1 = take(size_t(L.out_pad) * 4);
        auto* shift = reinterpret_cast<int32_t*>(take(size_t(L.out_pad) * 4));
        // A row's largest possible |accumulator| is |bias| + 127 * sum|W[o][i]|; it must fit int32.
        const int64_t act_max = 127;
        for (uint32_t o = 0; o < R.out; ++o) {
            int64_t abs_sum = 0, sum = 0;
            for (uint32_t i = 0; i < R.in; ++i) {
                const int8_t v = static_cast<int8_t>(R.w[uint64_t(o) * R.in + i]);
                if (v == -128) bad(where + " weight [" + std::to_string(o) + "," + std::to_string(i) + "] is -128; weights are symmetric int8 in [-127, 127]");
                abs_sum += v < 0 ? -v : v;
                sum += v;
                const uint32_t ob = o / kOB, oo = o % kOB, ib = i / kIB, ii = i % kIB;
                w[(size_t(ob) * (L.in_pad / kIB) + ib) * (kOB * kIB) + oo * kIB + ii] = v;
            }
            const int32_t b = rd_i32(R.bias + 4ull * o);
            const int64_t bound = (b < 0 ? -int64_t(b) : int64_t(b)) + act_max * abs_sum;
            if (bound > std::numeric_limits<int32_t>::max())
                bad(where + " output " + std::to_string(o) + " could overflow its int32 accumulator (|bias| + 127*sum|W| = " + std::to_string(bound) + ")");
            bias[o] = b;
            wsum[o] = static_cast<int32_t>(sum);
            if (L.is_output) {
                const float dq = rd_f32(R.extra1 + 4ull * o);
                if (!std::isfinite(dq) || !(dq > 0.0f)) bad(where + " output scale " + std::to_string(o) + " is not a finite positive number");
                reinterpret_cast<float*>(e1)[o] = dq;
                if (rd_i32(R.extra2 + 4ull * o) != 0) bad(where + " reserved field of output " + std::to_string(o) + " is not zero");
            } else {
                const int32_t m = rd_i32(R.extra1 + 4ull * o), sh = rd_i32(R.extra2 + 4ull * o);
                if (m < 0) bad(where + " requantization multiplier " + std::to_string(o) + " is negative");
                if (sh < 1 || sh > 62) bad(where + " requantization shift " + std::to_string(o) + " is " + std::to_string(sh) + " (must be 1..62)");
                reinterpret_cast<int32_t*>(e1)[o] = m;
                shift[o] = sh;
            }
        }
        L.w = w;
        L.bias = bias;
        L.wsum = wsum;
        if (L.is_output) L.deq = reinterpret_cast<float*>(e1);
        else { L.mult = reinterpret_cast<int32_t*>(e1); L.shift = shift; }
        max_in_pad = std::max(max_in_pad, L.in_pad);
        max_out_pad = std::max(max_out_pad, L.out_pad);
        model->layers.push_back(L);
    }
    // Rows per tile: two int8 activation buffers and one int32 accumulator buffer per row
    // must fit the predict functions' stack budget (predict.cpp).
    const size_t per_row = 2 * size_t(max_in_pad) + 4 * size_t(max_out_pad);
    size_t rows = kTileStackBytes / per_row;
    model->tile_rows = static_cast<uint32_t>(std::clamp<size_t>(rows, 1, kMaxTileRows));
    return model;
}

}  // namespace mel
