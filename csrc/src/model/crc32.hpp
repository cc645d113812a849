#pragma once
#include <cstddef>
#include <cstdint>

namespace mel {
// CRC-32/ISO-HDLC (the zlib / PNG CRC): reflected polynomial 0xEDB88320, init and xorout 0xFFFFFFFF.
uint32_t crc32(const void* data, size_t size) noexcept;
}
