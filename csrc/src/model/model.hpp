// In-memory form of a loaded .melw model. Immutable after load; owned by struct mel_model.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mel {

// Weight blocks: kOB output channels by kIB inputs, so that one 32- or 64-byte load feeds
// a dot-product instruction (vpdpbusd, vpmaddubsw, sdot) without horizontal sums.
constexpr uint32_t kOB = 16;  // outputs per block
constexpr uint32_t kIB = 4;   // inputs per step

// Stack budget of one predict call for activations and accumulators, and the most rows a
// tile holds (kernels reuse each weight block across the rows of a tile).
constexpr size_t kTileStackBytes = 32768;
constexpr uint32_t kMaxTileRows = 8;

inline uint32_t round_up(uint32_t v, uint32_t m) { return (v + m - 1) / m * m; }

// Memory aligned to 64 bytes.
struct AlignedFree { void operator()(void* p) const noexcept; };
using AlignedBuf = std::unique_ptr<unsigned char, AlignedFree>;
AlignedBuf aligned_alloc64(size_t bytes);  // zero-filled; throws mel::Error(MEL_ERR_NO_MEMORY)

struct Layer {
    uint32_t in = 0, out = 0;          // logical sizes
    uint32_t in_pad = 0, out_pad = 0;  // in rounded up to kIB, out rounded up to kOB
    bool signed_input = false;         // layer 0 sees int8 in [-127, 127]; later layers [0, 127]
    bool is_output = false;
    // Weights in blocked layout: w[((ob * in_pad/kIB) + ib) * kOB*kIB + o * kIB + i]
    // holds W[ob*kOB + o][ib*kIB + i] (zero where out of range).
    const int8_t* w = nullptr;
    const int32_t* bias = nullptr;  // [out_pad]
    const int32_t* wsum = nullptr;  // [out_pad], sum_i W[o][i] (for kernels that offset signed input to u8)
    const int32_t* mult = nullptr;  // [out] hidden layers: requantization multiplier
    const int32_t* shift = nullptr; // [out] hidden layers: right shift, 1..62
    const float* deq = nullptr;     // [out] output layer: accumulator -> float scale
};

// LAYER_COST section (format 3; scheme 2 in format 4, scheme 3 in format 5, scheme 4 in format 6, docs/format.md): a network's latency
// from its layer table.
// Part 0 is the per-inference cost, parts 1.. the cost classes; each kind and each activation
// that runs as a pass of its own names its part, resolved when the model was packed.
struct LayerCost {
    uint32_t table_schema = 0, n_columns = 0;
    uint32_t col_kind = 0, col_macs = 0, col_read = 0, col_written = 0, col_act = 0;
    uint32_t n_parts = 0, rank = 0;
    double c0 = 0.0, level = 0.0, z = 0.0, noise = 0.0;
    uint32_t scheme = 1;
    // Scheme 2 (format 4): the bytes each layer moves beyond a core's cache, priced into one part:
    // part[spill_part] += spill_w * max(0, bytes_read + bytes_written - spill_threshold) / 1e6.
    // spill_part 0: no such term (scheme 1).
    uint32_t spill_part = 0;
    double spill_threshold = 0.0;  // bytes
    double spill_w = 0.0;          // ms per MB (10^6 bytes) beyond the threshold
    // Scheme 3 (format 5): the alignment term (and the spill term, spill_part 0 when it has none): a
    // layer whose cout, or whose cin when above align_min_cin, is not a multiple of align adds
    // align_w[kind] * MMACs to its kind's part. align 0: no such term (schemes 1 and 2).
    uint32_t align = 0, align_min_cin = 0, col_cin = 0, col_cout = 0;
    std::vector<double> align_w;  // [kinds] ms per MMAC of an unaligned layer
    // Scheme 4 (format 6): the channel term beside the alignment term: a layer whose cout is not a
    // multiple of chan_align adds chan_w[kind] * cout / 1000 to its kind's part. chan_align 0: none.
    uint32_t chan_align = 0;
    std::vector<double> chan_w;  // [kinds] ms per 1000 output channels of a layer off chan_align
    std::vector<std::string> kinds, activations;  // names, in the rows' index order
    std::vector<uint32_t> kind_part;              // [kinds] part of each kind, 1..n_parts-1
    std::vector<uint32_t> act_part;               // [activations] part of its pass, 0 = no pass
    std::vector<double> kind_w;                   // [kinds][4] ms per [1, MMACs, MB read, MB written]
    std::vector<double> act_w;                    // [activations][4] the pass, over [1, 0, MB written, MB written]
    std::vector<double> mult;                     // [n_parts] calibration multiplier of each part
    std::vector<double> post;                     // [n_parts][rank] factor of the multipliers' covariance
};
constexpr uint32_t kLayerCostMaxParts = 64;
constexpr uint32_t kLayerCostMaxNames = 1024;

struct Model {
    // A layer cost model (format 3) has no MLP: input_dim is its row width, layers is empty.
    bool is_layer_cost = false;
    LayerCost lc;
    uint32_t input_dim = 0;
    std::vector<float> in_mean, in_mul;  // q = round_half_up(clamp((x - mean) * mul, -127, 127))
    std::vector<Layer> layers;
    uint32_t transform = 0;  // 0 identity, 1 exp, 2 identity with a positive floor (format 2)
    double out_scale = 1.0, out_shift = 0.0;
    float out_floor = 0.0f;  // transform 2: the smallest value predict returns (> 0)
    uint16_t format_version = 1;
    std::vector<std::string> feature_names;
    std::string metadata;  // JSON text
    // ENCODER section (optional): the search space whose encoder computes the first features
    // (mel::enc::kSpaceNb201, kSpaceFbnet; 0 = no section) and its feature schema version.
    uint32_t encoder_space = 0;
    uint32_t encoder_version = 0;
    // INTERVAL section (optional): a central `level` interval around each prediction ms,
    // ms * exp(+-z * sqrt(|F^T a|^2 + (noise_rel * ms)^2) / ms) with a = [1, x[index[0]], ...].
    bool has_interval = false;
    double iv_level = 0.0, iv_z = 0.0, iv_noise = 0.0;
    uint32_t iv_terms = 0, iv_rank = 0;      // rows (1 + index.size()) and columns of F
    std::vector<uint32_t> iv_index;          // feature index of each term after the intercept
    std::vector<double> iv_factor;           // F, terms x rank, row-major (read from f32)
    uint32_t tile_rows = 1;  // rows per forward tile, chosen from the stack budget
    AlignedBuf arena;        // backing store of the layer arrays
};

}  // namespace mel
