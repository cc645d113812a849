// Reader of the .melw format v1 (docs/format.md). Every offset, count and size is checked
// against the buffer before use; failures throw mel::Error with the field and the remedy.
#pragma once
#include <cstddef>
#include <cstdint>

#include "model.hpp"

namespace mel {

constexpr unsigned char kMagic[8] = {0x89, 'M', 'E', 'L', 'W', '\r', '\n', 0x1A};
constexpr uint32_t kByteOrderMark = 0x01020304u;
constexpr uint32_t kHeaderSize = 64;
constexpr uint32_t kSectionEntrySize = 24;

enum SectionKind : uint32_t {
    kSecInput = 1,
    kSecLayer = 2,
    kSecOutput = 3,
    kSecFeatures = 4,
    kSecMetadata = 5,
    kSecLayerCost = 8,  // format 3: a layer cost model instead of INPUT, LAYER and OUTPUT
};
constexpr uint32_t kSectionOptional = 1u;  // flags bit: a reader may skip an unknown optional section

std::unique_ptr<Model> parse_model(const unsigned char* data, size_t size);

}  // namespace mel
