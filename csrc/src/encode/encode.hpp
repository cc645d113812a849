// Architecture encoders: an architecture string of a search space -> a fixed, ordered, named
// feature vector (the space's feature schema). Implemented once, here; the C API
// (c_api_encode.cpp), the Python package (through _core) and mel_model_predict_arch all call
// these functions, so the host trains on exactly the features the board computes.
//
// Spaces: "nb201" (NAS-Bench-201 cells, nb201.cpp) and "fbnet" (FBNet-v1 layer choices,
// fbnet.cpp). The schemas are listed in docs/format.md ("ENCODER"). Encoding a string does not
// allocate: it parses in place and writes dim floats; an invalid string throws
// mel::Error(MEL_ERR_INVALID_ARGUMENT) with a message that names what is wrong.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "maple_edge_lite/maple_edge_lite.h"

namespace mel::enc {

// Space ids as stored in the ENCODER section of a .melw file (docs/format.md, kind 6).
constexpr uint32_t kSpaceNb201 = MEL_SPACE_NB201;
constexpr uint32_t kSpaceFbnet = MEL_SPACE_FBNET;

// Longest architecture string the encoders look at (valid ones are < 200 bytes); longer
// input is refused without being scanned to its end.
constexpr size_t kMaxArchBytes = 1024;

struct Encoder {
    const char* name;  // "nb201", "fbnet"
    uint32_t space_id;
    int schema_version;
    // The feature schema, in order: names live for the whole process.
    const std::vector<std::string>& (*feature_names)();
    // Encodes one string of len bytes (no NUL inside) into out[0, dim). Throws
    // mel::Error(MEL_ERR_INVALID_ARGUMENT) naming the problem; out is then partly written.
    void (*encode)(const char* s, size_t len, float* out);
    // Features of each schema version, 1..schema_version (version_dims[v - 1]). A schema only
    // grows at its end, so version v's features are the first version_dims[v - 1] of this
    // encoder's: a model made on an older version still loads and predicts (docs/format.md).
    const size_t* version_dims;
    size_t dim() const { return feature_names().size(); }
    // Features of schema `version`, 0 if this encoder does not know that version.
    size_t dim_of(uint32_t version) const {
        return version >= 1 && version <= uint32_t(schema_version) ? version_dims[version - 1] : 0;
    }
};

const Encoder& nb201_encoder();
const Encoder& fbnet_encoder();

// Lookup by name (nullptr if unknown) and by file-format space id (nullptr if unknown).
const Encoder* find_encoder(const char* name);
const Encoder* encoder_by_id(uint32_t space_id);
// As find_encoder, but an unknown or NULL name throws MEL_ERR_INVALID_ARGUMENT listing the
// known spaces.
const Encoder& require_encoder(const char* name);
// "nb201, fbnet"
std::string known_spaces();

// Encodes archs[0, n) into out (n * dim floats, row-major). A failure names the row, counted
// from first_index: "archs[i]: invalid nb201 architecture '...': <what is wrong>". Rows before
// it are written.
void encode_batch(const Encoder& e, const char* const* archs, size_t n, float* out, size_t first_index = 0);

// strlen at compile time (for the op-name tables).
constexpr size_t cstr_len(const char* s) { return *s ? 1 + cstr_len(s + 1) : 0; }

// For the encoders' messages: s quoted for an error message, non-printable bytes escaped as
// \xNN and long strings shortened.
std::string quoted(const char* s, size_t len);

}  // namespace mel::enc
