// FBNet encoder (space "fbnet", feature schema version 1).
//
// Notation: 22 op names joined by '|', each one of k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1,
// k5_e1_g2, k5_e3, k5_e6, skip (the order of HW-NAS-Bench's and HELP's op indices). Layers are
// numbered 0..21.
//
// Macro-architecture (FBNet, Wu et al. 2019, Table 1; ImageNet, 224x224 input), as built by
// HW-NAS-Bench's FBNet_Infer, whose networks HELP's FBNet latencies were measured on:
// conv3x3 16 ch stride 2 + BN + ReLU; 22 searchable layers in 7 stages, (layers, channels,
// stride of the first layer) = (1, 16, 1), (4, 24, 2), (4, 32, 2), (4, 64, 2), (4, 112, 1),
// (4, 184, 2), (1, 352, 1); conv1x1 1984 + BN + ReLU; global average pool; fc 1000.
// A block kK_eE[_g2] on C_in -> C_out channels: 1x1 conv C_in -> E*C_in (groups g) + BN + ReLU,
// channel shuffle (g = 2), depthwise KxK with the layer's stride + BN + ReLU, 1x1 conv
// E*C_in -> C_out (groups g) + BN; residual addition when stride 1 and C_in == C_out.
// "skip" is the identity when stride 1 and C_in == C_out, and otherwise (the first layer of
// stages 1-6) a 1x1 conv C_in -> C_out with the layer's stride + BN + ReLU: HW-NAS-Bench's Skip
// module and FBNet's own Identity (mobile-cv / maskrcnn-benchmark fbnet_building_blocks) both
// do this.
// FLOPs are multiply-accumulates of the convolutions and the fc (plus its bias), as for
// NAS-Bench-201; parameters include the BN scales and shifts.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../error.hpp"
#include "encode.hpp"

namespace mel::enc {
namespace {

struct OpSpec {
    const char* name;
    int64_t k, e, g;  // kernel, expansion, groups of the 1x1 convs; k = 0 for skip
};
constexpr int kNumOps = 9;
constexpr int kSkip = 8;
constexpr OpSpec kOps[kNumOps] = {
    {"k3_e1", 3, 1, 1}, {"k3_e1_g2", 3, 1, 2}, {"k3_e3", 3, 3, 1}, {"k3_e6", 3, 6, 1}, {"k5_e1", 5, 1, 1},
    {"k5_e1_g2", 5, 1, 2}, {"k5_e3", 5, 3, 1}, {"k5_e6", 5, 6, 1}, {"skip", 0, 0, 1},
};

constexpr int kLayers = 22;
constexpr int kStages = 7;
constexpr int kStageLayers[kStages] = {1, 4, 4, 4, 4, 4, 1};
constexpr int64_t kStageChannels[kStages] = {16, 24, 32, 64, 112, 184, 352};
constexpr int64_t kStageStride[kStages] = {1, 2, 2, 2, 1, 2, 1};
constexpr int64_t kInput = 224, kStemChannels = 16, kStemStride = 2, kHeadChannels = 1984, kClasses = 1000;

// --- costs, computed once at compile time -------------------------------------------------------

struct LayerCost {
    int64_t macs = 0, dw_macs = 0, params = 0, act = 0;  // act: feature-map elements written
    bool identity = false, residual = false, projection = false;
};

struct Table {
    LayerCost cost[kLayers][kNumOps] = {};
    int stage[kLayers] = {};
    int64_t skel_macs = 0, skel_params = 0, skel_act = 0;
};

constexpr LayerCost layer_cost(const OpSpec& op, int64_t cin, int64_t cout, int64_t stride, int64_t side_in) {
    LayerCost c{};
    const int64_t side_out = side_in / stride, hw_in = side_in * side_in, hw_out = side_out * side_out;
    const bool same_shape = stride == 1 && cin == cout;
    if (op.k == 0) {
        if (same_shape) {
            c.identity = true;
        } else {
            c.projection = true;
            c.macs = hw_out * cin * cout;
            c.params = cin * cout + 2 * cout;
            c.act = cout * hw_out;
        }
        return c;
    }
    const int64_t mid = cin * op.e;
    c.macs = hw_in * cin * mid / op.g;                   // 1x1 expand
    c.params = cin * mid / op.g + 2 * mid;
    c.act = mid * hw_in + (op.g > 1 ? mid * hw_in : 0);  // expand output, channel shuffle
    c.dw_macs = hw_out * mid * op.k * op.k;              // depthwise KxK
    c.params += mid * op.k * op.k + 2 * mid;
    c.act += mid * hw_out;
    c.macs += c.dw_macs + hw_out * mid * cout / op.g;    // 1x1 project
    c.params += mid * cout / op.g + 2 * cout;
    c.act += cout * hw_out;
    c.residual = same_shape;
    if (same_shape) c.act += cout * hw_out;
    return c;
}

constexpr Table make_table() {
    Table t{};
    int64_t side = kInput / kStemStride;
    t.skel_macs += 9 * 3 * kStemChannels * side * side;
    t.skel_params += 9 * 3 * kStemChannels + 2 * kStemChannels;
    t.skel_act += kStemChannels * side * side;
    int64_t cin = kStemChannels;
    int layer = 0;
    for (int s = 0; s < kStages; ++s) {
        for (int j = 0; j < kStageLayers[s]; ++j, ++layer) {
            const int64_t stride = j == 0 ? kStageStride[s] : 1, cout = kStageChannels[s];
            for (int o = 0; o < kNumOps; ++o) t.cost[layer][o] = layer_cost(kOps[o], cin, cout, stride, side);
            t.stage[layer] = s;
            side /= stride;
            cin = cout;
        }
    }
    const int64_t hw = side * side;
    t.skel_macs += hw * cin * kHeadChannels + kHeadChannels * kClasses + kClasses;  // head 1x1, fc + bias
    t.skel_params += cin * kHeadChannels + 2 * kHeadChannels + kHeadChannels * kClasses + kClasses;
    t.skel_act += kHeadChannels * hw + kHeadChannels + kClasses;  // head, pool, fc
    return t;
}
constexpr Table kTable = make_table();
static_assert(kTable.stage[kLayers - 1] == kStages - 1, "the stages must hold exactly 22 layers");

// --- the feature schema -------------------------------------------------------------------------

constexpr int kSchemaVersion = 1;
constexpr size_t kFOneHot = 0;  // layer{i}:{op}, 22 x 9
constexpr size_t kFCount = kFOneHot + size_t(kLayers) * kNumOps;
constexpr size_t kFFlops = kFCount + kNumOps;
constexpr size_t kFFlopsDw = kFFlops + 1;
constexpr size_t kFParams = kFFlopsDw + 1;
constexpr size_t kFAct = kFParams + 1;
constexpr size_t kFExpansion = kFAct + 1;
constexpr size_t kFKernel5 = kFExpansion + 1;
constexpr size_t kFGroup2 = kFKernel5 + 1;
constexpr size_t kFResidual = kFGroup2 + 1;
constexpr size_t kFSkipProj = kFResidual + 1;
constexpr size_t kFDepth = kFSkipProj + 1;
constexpr size_t kFStageFlops = kFDepth + 1;
constexpr size_t kFStageSkips = kFStageFlops + kStages;
constexpr size_t kFStageExpansion = kFStageSkips + kStages;
constexpr size_t kDim = kFStageExpansion + kStages;

const std::vector<std::string>& names() {
    static const std::vector<std::string> v = [] {
        std::vector<std::string> n;
        for (int i = 0; i < kLayers; ++i)
            for (int o = 0; o < kNumOps; ++o) n.push_back("layer" + std::to_string(i) + ":" + kOps[o].name);
        for (int o = 0; o < kNumOps; ++o) n.push_back(std::string("count:") + kOps[o].name);
        for (const char* s : {"flops_224", "flops_dw_224", "params", "act_224", "expansion_sum", "kernel5_count",
                              "group2_count", "residual_count", "skips_projecting", "depth"})
            n.push_back(s);
        for (const char* what : {"flops_224", "skips", "expansion"})
            for (int s = 0; s < kStages; ++s) n.push_back("stage" + std::to_string(s) + ":" + what);
        return n;
    }();
    return v;
}

// --- parser -------------------------------------------------------------------------------------

[[noreturn]] void bad(const std::string& what) { fail(MEL_ERR_INVALID_ARGUMENT, what); }

std::string op_list() {
    std::string s;
    for (int o = 0; o < kNumOps; ++o) s += (o ? ", " : "") + std::string(kOps[o].name);
    return s;
}

int find_op(const char* s, size_t n) {
    constexpr size_t kLen[kNumOps] = {cstr_len(kOps[0].name), cstr_len(kOps[1].name), cstr_len(kOps[2].name),
                                      cstr_len(kOps[3].name), cstr_len(kOps[4].name), cstr_len(kOps[5].name),
                                      cstr_len(kOps[6].name), cstr_len(kOps[7].name), cstr_len(kOps[8].name)};
    for (int o = 0; o < kNumOps; ++o)
        if (kLen[o] == n && std::memcmp(kOps[o].name, s, n) == 0) return o;
    return -1;
}

void parse(const char* s, size_t len, uint8_t op[kLayers]) {
    if (len == 0) bad("empty string; expected 22 ops separated by '|' (e.g. k3_e1|k3_e6|...|skip)");
    const size_t seps = size_t(std::count(s, s + len, '|'));
    if (seps + 1 != size_t(kLayers)) {
        std::string hint;
        if (s[0] == '|' || s[len - 1] == '|') hint = " (a leading or trailing '|'?)";
        bad("expected 22 layers separated by '|', got " + std::to_string(seps + 1) + hint);
    }
    size_t p = 0;
    for (int i = 0; i < kLayers; ++i) {
        const char* bar = static_cast<const char*>(std::memchr(s + p, '|', len - p));
        const size_t q = bar ? size_t(bar - s) : len;
        if (q == p) bad("layer " + std::to_string(i) + ": empty op name (two '|' in a row?)");
        const int o = find_op(s + p, q - p);
        if (o < 0)
            bad("layer " + std::to_string(i) + ": unknown op " + quoted(s + p, q - p) + "; expected one of " + op_list());
        op[i] = static_cast<uint8_t>(o);
        p = q + 1;
    }
}

// --- encoder ------------------------------------------------------------------------------------

inline float mega(int64_t v) { return static_cast<float>(double(v) / 1e6); }

void encode(const char* str, size_t len, float* out) {
    uint8_t op[kLayers];
    parse(str, len, op);
    std::fill(out, out + kDim, 0.0f);
    int64_t macs = kTable.skel_macs, dw = 0, params = kTable.skel_params, act = kTable.skel_act;
    int64_t stage_macs[kStages] = {};
    int count[kNumOps] = {}, stage_skips[kStages] = {}, stage_exp[kStages] = {};
    int expansion = 0, kernel5 = 0, group2 = 0, residual = 0, projecting = 0, depth = 0;
    for (int i = 0; i < kLayers; ++i) {
        const int o = op[i], s = kTable.stage[i];
        const OpSpec& spec = kOps[o];
        const LayerCost& c = kTable.cost[i][o];
        out[kFOneHot + size_t(i) * kNumOps + size_t(o)] = 1.0f;
        ++count[o];
        macs += c.macs;
        dw += c.dw_macs;
        params += c.params;
        act += c.act;
        stage_macs[s] += c.macs;
        if (o == kSkip) {
            ++stage_skips[s];
            projecting += c.projection;
        } else {
            expansion += int(spec.e);
            stage_exp[s] += int(spec.e);
            kernel5 += spec.k == 5;
            group2 += spec.g == 2;
        }
        residual += c.residual;
        depth += !c.identity;
    }
    for (int o = 0; o < kNumOps; ++o) out[kFCount + size_t(o)] = float(count[o]);
    out[kFFlops] = mega(macs);
    out[kFFlopsDw] = mega(dw);
    out[kFParams] = mega(params);
    out[kFAct] = mega(act);
    out[kFExpansion] = float(expansion);
    out[kFKernel5] = float(kernel5);
    out[kFGroup2] = float(group2);
    out[kFResidual] = float(residual);
    out[kFSkipProj] = float(projecting);
    out[kFDepth] = float(depth);
    for (int s = 0; s < kStages; ++s) {
        out[kFStageFlops + size_t(s)] = mega(stage_macs[s]);
        out[kFStageSkips + size_t(s)] = float(stage_skips[s]);
        out[kFStageExpansion + size_t(s)] = float(stage_exp[s]);
    }
}

}  // namespace

const Encoder& fbnet_encoder() {
    static constexpr size_t kVersionDims[kSchemaVersion] = {kDim};
    static const Encoder e{"fbnet", kSpaceFbnet, kSchemaVersion, &names, &encode, kVersionDims};
    return e;
}

}  // namespace mel::enc
