// Text from the wire, checked at the boundary: every string a person or a
// JSON document reads must be UTF-8 (nlohmann's dump throws on anything
// else). Thread-safety: free functions over values.
#ifndef IMGSWEEP_PROTOCOL_UTF8_H_
#define IMGSWEEP_PROTOCOL_UTF8_H_

#include <string>
#include <string_view>

#include "protocol/messages.h"

namespace imgsweep {

// True when `text` is well-formed UTF-8 (no overlong forms,
// surrogates or code points past U+10FFFF).
bool IsUtf8(std::string_view text);
// `text` with every byte that is not part of a well-formed UTF-8 sequence
// replaced by U+FFFD.
std::string ToUtf8(std::string_view text);
// The first field of `message` a person or a JSON document reads (names,
// hosts, version lines, reasons, paths, keys, failures) that is not UTF-8,
// as "field \"host\""; empty when there is none. Outputs (stdout, stderr)
// are bytes and not checked.
std::string FirstNonUtf8Field(const Message& message);

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_UTF8_H_
