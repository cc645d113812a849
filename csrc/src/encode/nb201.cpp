// NAS-Bench-201 encoder (space "nb201", feature schema version 3; 1 and 2 are its prefixes).
//
// Notation (the official one, nothing else): |op~0|+|op~0|op~1|+|op~0|op~1|op~2|, i.e. node 1
// <- node 0; node 2 <- nodes 0, 1; node 3 <- nodes 0, 1, 2. Edges are numbered 0..5 in that
// order. A node is the sum of its incoming edges; "none" contributes nothing.
//
// Macro skeleton (NAS-Bench-201's TinyNetwork): 3x3 stem conv (16 ch) + BN; three stages of
// five cells at 16, 32, 64 channels joined by ResNet basic blocks with stride 2
// (ReLU-Conv3x3(s2)-BN, ReLU-Conv3x3-BN, shortcut AvgPool(2) + Conv1x1, added); BN-ReLU;
// global average pool; linear head, 10 classes. nor_conv_KxK = ReLU-Conv(no bias)-BN(affine).
// FLOPs are counted as NAS-Bench-201 counts them: multiply-accumulates of the convolutions and
// the linear layer (plus its bias), nothing for pooling, BN, ReLU or additions; parameters
// include the BN scales and shifts.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../error.hpp"
#include "encode.hpp"

namespace mel::enc {
namespace {

enum Op : uint8_t { kNone, kSkip, kConv1, kConv3, kPool, kNumOps };
constexpr const char* kOpNames[kNumOps] = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"};
constexpr int kEdges = 6;
constexpr int kEdgeFrom[kEdges] = {0, 0, 1, 0, 1, 2};
constexpr int kEdgeTo[kEdges] = {1, 2, 2, 3, 3, 3};

// --- costs of the macro skeleton, computed once at compile time --------------------------------

constexpr int64_t kCellsPerStage = 5;
constexpr int64_t kStageChannels[3] = {16, 32, 64};
constexpr int64_t kClasses = 10;

struct Costs {
    // One edge carrying an op, summed over all 15 cells (the cells of a network are identical).
    int64_t edge_macs[kNumOps] = {};
    int64_t edge_params[kNumOps] = {};
    int64_t edge_act[kNumOps] = {};  // feature-map elements the op writes
    int64_t add_act = 0;             // one binary addition in every cell
    // Everything outside the cells.
    int64_t skel_macs = 0, skel_params = 0, skel_act = 0;
};

// res: input height = width (32 for CIFAR, 224).
constexpr Costs costs_at(int64_t res) {
    Costs c{};
    for (int s = 0; s < 3; ++s) {
        const int64_t ch = kStageChannels[s], side = res >> s, hw = side * side;
        for (int64_t k = 1; k <= 3; k += 2) {
            const int op = k == 1 ? kConv1 : kConv3;
            c.edge_macs[op] += kCellsPerStage * k * k * ch * ch * hw;
            c.edge_params[op] += kCellsPerStage * (k * k * ch * ch + 2 * ch);
            c.edge_act[op] += kCellsPerStage * ch * hw;
        }
        c.edge_act[kPool] += kCellsPerStage * ch * hw;
        c.add_act += kCellsPerStage * ch * hw;
    }
    // stem: conv3x3 3 -> 16, BN
    c.skel_macs += 9 * 3 * 16 * res * res;
    c.skel_params += 9 * 3 * 16 + 2 * 16;
    c.skel_act += 16 * res * res;
    // reduction blocks after stages 0 and 1
    for (int s = 0; s < 2; ++s) {
        const int64_t cin = kStageChannels[s], cout = kStageChannels[s + 1], side = res >> (s + 1), hw = side * side;
        c.skel_macs += 9 * cin * cout * hw + 9 * cout * cout * hw + cin * cout * hw;  // conv_a, conv_b, shortcut 1x1
        c.skel_params += (9 * cin * cout + 2 * cout) + (9 * cout * cout + 2 * cout) + cin * cout;
        c.skel_act += cout * hw * 3 + cin * hw + cout * hw;  // conv_a, conv_b, shortcut conv; avg pool; add
    }
    // BN-ReLU, global average pool, linear
    c.skel_params += 2 * 64;
    c.skel_macs += 64 * kClasses + kClasses;
    c.skel_params += 64 * kClasses + kClasses;
    c.skel_act += 64 + kClasses;
    return c;
}
constexpr Costs kCost32 = costs_at(32);
constexpr Costs kCost224 = costs_at(224);

// --- the feature schema -------------------------------------------------------------------------

constexpr int kSchemaVersion = 4;
constexpr size_t kFOneHot = 0;                         // edge{e}:{op}, 6 x 5
constexpr size_t kFCount = kFOneHot + kEdges * kNumOps;  // count:{op}
constexpr size_t kFConnected = kFCount + kNumOps;
constexpr size_t kFOpsNonzero = kFConnected + 1;
constexpr size_t kFOpsReachable = kFOpsNonzero + 1;
constexpr size_t kFOpsLive = kFOpsReachable + 1;
constexpr size_t kFLive = kFOpsLive + 1;  // live:{op} for the four ops other than none
constexpr size_t kFLongestConvs = kFLive + kNumOps - 1;
constexpr size_t kFLongestOps = kFLongestConvs + 1;
constexpr size_t kFAdds = kFLongestOps + 1;
constexpr size_t kFFlops32 = kFAdds + 1;
constexpr size_t kFFlopsLive32 = kFFlops32 + 1;
constexpr size_t kFFlops224 = kFFlopsLive32 + 1;
constexpr size_t kFParams = kFFlops224 + 1;
constexpr size_t kFAct32 = kFParams + 1;
constexpr size_t kFLiveEdge = kFAct32 + 1;  // live_edge{e}:{op}: the edge's op when it is live, 6 x 4
constexpr size_t kFExecEdge = kFLiveEdge + kEdges * (kNumOps - 1);  // exec_edge{e}:{op}, 6 x 4
constexpr size_t kFSharedPools = kFExecEdge + kEdges * (kNumOps - 1);  // schema 3
constexpr size_t kFExecAdds = kFSharedPools + 1;                          // schema 3
constexpr size_t kFTensorSharedPools = kFExecAdds + 1;                     // schema 4
constexpr size_t kDim = kFTensorSharedPools + 1;
// Schema 1: up to the live_edge one-hots; 2: + exec_edge one-hots; 3: + shared_avg_pools, exec_adds;
// 4: + tensor_shared_avg_pools.
constexpr size_t kVersionDims[kSchemaVersion] = {kFExecEdge, kFSharedPools, kFTensorSharedPools, kDim};

const std::vector<std::string>& names() {
    static const std::vector<std::string> v = [] {
        std::vector<std::string> n;
        for (int e = 0; e < kEdges; ++e)
            for (int o = 0; o < kNumOps; ++o) n.push_back("edge" + std::to_string(e) + ":" + kOpNames[o]);
        for (int o = 0; o < kNumOps; ++o) n.push_back(std::string("count:") + kOpNames[o]);
        n.push_back("cell_connected");
        n.push_back("ops_nonzero");
        n.push_back("ops_reachable");
        n.push_back("ops_live");
        for (int o = 1; o < kNumOps; ++o) n.push_back(std::string("live:") + kOpNames[o]);
        n.push_back("longest_path_convs");
        n.push_back("longest_path_ops");
        n.push_back("adds");
        n.push_back("flops_32");
        n.push_back("flops_live_32");
        n.push_back("flops_224");
        n.push_back("params");
        n.push_back("act_32");
        // Per-edge one-hot restricted to live edges: runtimes that prune dead branches (most
        // mobile converters) pay only for these; the plain one-hot describes runtimes that do not.
        for (int e = 0; e < kEdges; ++e)
            for (int o = 1; o < kNumOps; ++o) n.push_back("live_edge" + std::to_string(e) + ":" + kOpNames[o]);
        // Per-edge one-hot of the edges whose result reaches the output, whether or not their
        // input is zero: what a runtime executes when it drops dead ends but cannot know that a
        // zero node is zero (an exported `none` is x * 0, which is not 0 for inf or NaN).
        for (int e = 0; e < kEdges; ++e)
            for (int o = 1; o < kNumOps; ++o) n.push_back("exec_edge" + std::to_string(e) + ":" + kOpNames[o]);
        // Executed avg_pool_3x3 edges out of a node beyond the first: the same parameter-free op
        // on the same tensor, which a runtime that eliminates common subexpressions (ONNX Runtime,
        // OpenVINO, ncnn here) computes once (schema 3).
        n.push_back("shared_avg_pools");
        // Additions the network computes per cell: a node summing k executed edges adds k - 1
        // times (``adds`` counts non-none inputs, dead nodes included) (schema 3).
        n.push_back("exec_adds");
        // Executed avg_pool_3x3 edges on a tensor another executed pool edge already pools, nodes
        // taken as tensors: a node whose one executed input is a skip_connect is its source's
        // tensor, so pool(node 1) and pool(node 0) are one op on one tensor when node 1 = skip(node 0).
        // shared_avg_pools counts the same by source node only (schema 4).
        n.push_back("tensor_shared_avg_pools");
        return n;
    }();
    return v;
}

// --- parser -------------------------------------------------------------------------------------

[[noreturn]] void bad(const std::string& what) { fail(MEL_ERR_INVALID_ARGUMENT, what); }

std::string edge_where(int e) {
    return "edge " + std::to_string(e) + " (node " + std::to_string(kEdgeTo[e]) + " <- node " +
           std::to_string(kEdgeFrom[e]) + ")";
}

std::string op_list() {
    std::string s;
    for (int o = 0; o < kNumOps; ++o) s += (o ? ", " : "") + std::string(kOpNames[o]);
    return s;
}

std::string char_at(const char* s, size_t len, size_t p) {
    if (p >= len) return "the end of the string";
    return quoted(s + p, 1) + " at position " + std::to_string(p);
}

int find_op(const char* s, size_t n) {
    constexpr size_t kLen[kNumOps] = {cstr_len(kOpNames[0]), cstr_len(kOpNames[1]), cstr_len(kOpNames[2]),
                                      cstr_len(kOpNames[3]), cstr_len(kOpNames[4])};
    for (int o = 0; o < kNumOps; ++o)
        if (kLen[o] == n && std::memcmp(kOpNames[o], s, n) == 0) return o;
    return -1;
}

// Fills op[6] or throws. Accepts exactly the official notation: no spaces, no reordering, no
// missing or extra separators.
void parse(const char* s, size_t len, uint8_t op[kEdges]) {
    if (len == 0) bad("empty string; expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2|");
    size_t p = 0;
    int e = 0;
    for (int node = 1; node <= 3; ++node) {
        auto nd = [node] { return "node " + std::to_string(node); };  // for messages only
        if (node > 1) {
            if (p == len)
                bad("ends after node " + std::to_string(node - 1) +
                    "; expected 3 nodes separated by '+': |op~0|+|op~0|op~1|+|op~0|op~1|op~2|");
            if (s[p] != '+')
                bad("expected '+' between node " + std::to_string(node - 1) + " and " + nd() + ", found " +
                    char_at(s, len, p));
            ++p;
        }
        if (p == len || s[p] != '|') bad(nd() + ": expected '|', found " + char_at(s, len, p));
        ++p;
        for (int k = 0; k < node; ++k, ++e) {
            size_t q = p;
            while (q < len && s[q] != '|' && s[q] != '+') ++q;
            if (q == p) {  // "||", "|+" or "|" at the end
                if (q == len || s[q] == '+')
                    bad(nd() + " has " + std::to_string(k) + " input edge" + (k == 1 ? "" : "s") + ", expected " +
                        std::to_string(node));
                bad(edge_where(e) + ": empty edge ('||' at position " + std::to_string(p - 1) + ")");
            }
            if (q == len || s[q] != '|')
                bad(edge_where(e) + ": expected '|' after " + quoted(s + p, q - p) + ", found " + char_at(s, len, q));
            const char* tilde = static_cast<const char*>(std::memchr(s + p, '~', q - p));
            if (!tilde) bad(edge_where(e) + ": expected 'op~" + std::to_string(kEdgeFrom[e]) + "', found " + quoted(s + p, q - p));
            const size_t name_len = size_t(tilde - (s + p));
            const int o = find_op(s + p, name_len);
            if (o < 0) bad(edge_where(e) + ": unknown op " + quoted(s + p, name_len) + "; expected one of " + op_list());
            const char* idx = tilde + 1;
            const size_t idx_len = size_t((s + q) - idx);
            if (!(idx_len == 1 && idx[0] == char('0' + kEdgeFrom[e])))
                bad(edge_where(e) + ": input node index " + quoted(idx, idx_len) + ", expected " +
                    std::to_string(kEdgeFrom[e]) + " (the inputs of " + nd() + " are listed in order, ~0 to ~" +
                    std::to_string(node - 1) + ")");
            op[e] = static_cast<uint8_t>(o);
            p = q + 1;
        }
        if (node < 3 && p < len && s[p] != '+') {
            const char c = s[p];
            if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')  // another "op~k|"
                bad(nd() + " has more than " + std::to_string(node) + " input edge" + (node == 1 ? "" : "s"));
            bad("expected '+' between " + nd() + " and node " + std::to_string(node + 1) + ", found " + char_at(s, len, p));
        }
    }
    if (p != len) bad("trailing characters after node 3: " + quoted(s + p, len - p));
}

// --- encoder ------------------------------------------------------------------------------------

inline float mega(int64_t v) { return static_cast<float>(double(v) / 1e6); }

void encode(const char* s, size_t len, float* out) {
    uint8_t op[kEdges];
    parse(s, len, op);
    std::fill(out, out + kDim, 0.0f);

    int count[kNumOps] = {};
    for (int e = 0; e < kEdges; ++e) {
        out[kFOneHot + size_t(e) * kNumOps + op[e]] = 1.0f;
        ++count[op[e]];
    }
    // Nodes reachable from the input (edges are in topological order), and nodes from which
    // the output is reachable (reverse order), along non-none edges.
    bool reach[4] = {true, false, false, false}, coreach[4] = {false, false, false, true};
    for (int e = 0; e < kEdges; ++e)
        if (op[e] != kNone && reach[kEdgeFrom[e]]) reach[kEdgeTo[e]] = true;
    for (int e = kEdges - 1; e >= 0; --e)
        if (op[e] != kNone && coreach[kEdgeTo[e]]) coreach[kEdgeFrom[e]] = true;
    // Longest input->output path in convolutions and in computing ops (convs and pools);
    // -1 marks a node no path reaches.
    int convs[4] = {0, -1, -1, -1}, ops[4] = {0, -1, -1, -1};
    int nonzero = 0, reachable = 0, live = 0, adds = 0, in_nonzero[4] = {}, exec_pools_from[4] = {}, exec_in[4] = {};
    int last_exec_in[4] = {-1, -1, -1, -1};  // the last executed edge into each node
    int64_t macs32 = kCost32.skel_macs, macs_live32 = kCost32.skel_macs, macs224 = kCost224.skel_macs;
    int64_t params = kCost32.skel_params, act32 = kCost32.skel_act;
    for (int e = 0; e < kEdges; ++e) {
        const int o = op[e], from = kEdgeFrom[e], to = kEdgeTo[e];
        if (o == kNone) continue;
        ++nonzero;
        ++in_nonzero[to];
        macs32 += kCost32.edge_macs[o];
        macs224 += kCost224.edge_macs[o];
        params += kCost32.edge_params[o];
        act32 += kCost32.edge_act[o];
        if (reach[from]) ++reachable;
        if (coreach[to]) {
            out[kFExecEdge + size_t(e) * (kNumOps - 1) + size_t(o) - 1] = 1.0f;
            if (o == kPool) ++exec_pools_from[from];
            ++exec_in[to];
            last_exec_in[to] = e;
        }
        if (reach[from] && coreach[to]) {
            ++live;
            out[kFLive + size_t(o) - 1] += 1.0f;
            out[kFLiveEdge + size_t(e) * (kNumOps - 1) + size_t(o) - 1] = 1.0f;
            macs_live32 += kCost32.edge_macs[o];
        }
        if (convs[from] >= 0) {
            const bool conv = o == kConv1 || o == kConv3;
            convs[to] = std::max(convs[to], convs[from] + (conv ? 1 : 0));
            ops[to] = std::max(ops[to], ops[from] + (conv || o == kPool ? 1 : 0));
        }
    }
    for (int j = 1; j < 4; ++j) adds += std::max(0, in_nonzero[j] - 1);
    int shared_pools = 0;
    int exec_adds = 0;
    for (int j = 0; j < 3; ++j) shared_pools += std::max(0, exec_pools_from[j] - 1);
    for (int j = 1; j < 4; ++j) exec_adds += std::max(0, exec_in[j] - 1);
    act32 += adds * kCost32.add_act;

    for (int o = 0; o < kNumOps; ++o) out[kFCount + size_t(o)] = float(count[o]);
    out[kFConnected] = reach[3] ? 1.0f : 0.0f;
    out[kFOpsNonzero] = float(nonzero);
    out[kFOpsReachable] = float(reachable);
    out[kFOpsLive] = float(live);
    out[kFLongestConvs] = float(std::max(convs[3], 0));
    out[kFLongestOps] = float(std::max(ops[3], 0));
    out[kFAdds] = float(adds);
    out[kFFlops32] = mega(macs32);
    out[kFFlopsLive32] = mega(macs_live32);
    out[kFFlops224] = mega(macs224);
    out[kFParams] = mega(params);
    out[kFAct32] = mega(act32);
    out[kFSharedPools] = float(shared_pools);
    out[kFExecAdds] = float(exec_adds);
    // Tensors: node j (1, 2; node 3 feeds nothing inside the cell) whose one executed input is a
    // skip_connect is the tensor of that input's node (nodes in topological order); the executed
    // pools out of each node then count on its tensor.
    int tensor[4] = {0, 1, 2, 3}, pools_on[4] = {};
    for (int j = 1; j < 3; ++j)
        if (exec_in[j] == 1 && op[last_exec_in[j]] == kSkip) tensor[j] = tensor[kEdgeFrom[last_exec_in[j]]];
    for (int j = 0; j < 3; ++j) pools_on[tensor[j]] += exec_pools_from[j];
    int tensor_shared = 0;
    for (int t = 0; t < 3; ++t) tensor_shared += std::max(0, pools_on[t] - 1);
    out[kFTensorSharedPools] = float(tensor_shared);
}

}  // namespace

const Encoder& nb201_encoder() {
    static const Encoder e{"nb201", kSpaceNb201, kSchemaVersion, &names, &encode, kVersionDims};
    return e;
}

}  // namespace mel::enc
