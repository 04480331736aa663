// SHA-256 digests of files, as lower-case hex, for image and binary checks.
#ifndef IMGSWEEP_PROTOCOL_SHA256_H_
#define IMGSWEEP_PROTOCOL_SHA256_H_

#include <array>
#include <filesystem>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace imgsweep {

// 64 lower-case hex digits of the digest of `bytes`.
std::string Sha256Hex(std::string_view bytes);

// The digest of the file's contents, read in chunks (memory stays bounded
// whatever the file's size). Errors name the path.
Result<std::string> Sha256File(const std::filesystem::path& file);

// True for 64 lower-case hex digits.
bool IsSha256Hex(std::string_view text);

// A digest's 32 bytes, and their 64 lower-case hex digits.
using Sha256Bytes = std::array<char, 32>;
// The bytes `hex` spells; false (and `bytes` unspecified) unless it is 64
// lower-case hex digits. One pass, by table: the store packs four digests
// per result this way.
bool Sha256FromHex(std::string_view hex, Sha256Bytes* bytes);
std::string Sha256ToHex(const Sha256Bytes& bytes);

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_SHA256_H_
