// A number computed from an image's virtual size, as a command table
// writes it for a window (protocol/command_table.h): "65536", "size",
// "size/4", "size-65536", "size/2+512".
// Thread-safety: an immutable value once made.
#ifndef IMGSWEEP_PROTOCOL_SIZE_EXPR_H_
#define IMGSWEEP_PROTOCOL_SIZE_EXPR_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace imgsweep {

// The value for an image of virtual size S: (S / divisor) + offset, or
// offset alone; below zero, 0.
struct SizeExpr {
  std::uint64_t divisor = 0;  // size/divisor; 0: no size term
  std::int64_t offset = 0;
  std::string text;  // as the table wrote it
  bool operator==(const SizeExpr&) const = default;

  // kInvalidInput naming the forms when `text` is none of them.
  static Result<SizeExpr> Parse(std::string_view text);
  std::uint64_t Of(std::uint64_t size) const;
};

// Whether `text` is a value Of may give, as a command line holds it: "0",
// "65536"; no sign, no leading zero, at most 19 digits (qemu-img's int64).
bool IsSizeValue(std::string_view text);

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_SIZE_EXPR_H_
