// The first look at a frame from the wire, before the msgpack decoder
// allocates by the counts the frame declares (see docs/protocol.md, "Trust
// model", Memory).
#ifndef IMGSWEEP_PROTOCOL_FRAME_SHAPE_H_
#define IMGSWEEP_PROTOCOL_FRAME_SHAPE_H_

#include <cstddef>
#include <string_view>

#include "protocol/status.h"

namespace imgsweep {

// Values one frame may hold, counting every array element, map key and map
// value. The decoder spends 16 to 32 bytes on each, so this caps what a frame
// of any size costs beyond its own bytes (4 MiB of objects at most); the
// largest frame a peer sends honestly (a hello with a long list of sparse
// files) holds a few thousand.
inline constexpr std::size_t kMaxFrameItems = 1u << 18;
// Containers inside containers; the deepest message nests four.
inline constexpr std::size_t kMaxFrameDepth = 8;

// OK when `frame` is one msgpack value whose containers declare, together,
// no more values than its bytes can hold (each takes one at least), that
// holds at most kMaxFrameItems values nested at most kMaxFrameDepth deep,
// and no ext value; else InvalidInput naming the first of these it breaks.
// Builds nothing: the cost is one pass over the bytes.
Status CheckFrameShape(std::string_view frame);

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_FRAME_SHAPE_H_
