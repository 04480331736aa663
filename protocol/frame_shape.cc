#include "protocol/frame_shape.h"

#include <cstdint>
#include <msgpack.hpp>
#include <string>

namespace imgsweep {
namespace {

// msgpack's parser calls these as it walks the frame; returning false stops
// it. Each value takes at least one byte, so the items a frame's containers
// declare, together, can be no more than its size: a frame that claims more
// is lying about its lengths.
class FrameShape : public msgpack::null_visitor {
 public:
  explicit FrameShape(std::size_t frame_size) : frame_size_(frame_size) {}

  bool start_array(std::uint32_t n) { return Open(n, "an array"); }
  bool end_array() { return Close(); }
  bool start_map(std::uint32_t n) { return Open(2 * std::uint64_t{n}, "a map"); }
  bool end_map() { return Close(); }
  bool visit_ext(const char*, std::uint32_t) {
    problem_ = "holds a msgpack ext value, which no message has";
    return false;
  }
  void parse_error(std::size_t, std::size_t offset) {
    if (problem_.empty()) problem_ = "is not msgpack (bad byte at offset " + std::to_string(offset) + ")";
  }
  void insufficient_bytes(std::size_t, std::size_t) {
    if (problem_.empty()) problem_ = "ends in the middle of a value";
  }

  const std::string& problem() const { return problem_; }

 private:
  bool Open(std::uint64_t items, const char* what) {
    items_ += items;
    if (++depth_ > kMaxFrameDepth) {
      problem_ = "nests containers deeper than " + std::to_string(kMaxFrameDepth);
      return false;
    }
    if (items_ > frame_size_) {
      problem_ = "declares " + std::string(what) + " of " + std::to_string(items) +
                 " items, more than its " + std::to_string(frame_size_) + " bytes can hold";
      return false;
    }
    if (items_ > kMaxFrameItems) {
      problem_ = "holds more than " + std::to_string(kMaxFrameItems) + " values";
      return false;
    }
    return true;
  }
  bool Close() {
    --depth_;
    return true;
  }

  const std::size_t frame_size_;
  std::uint64_t items_ = 0;
  std::size_t depth_ = 0;
  std::string problem_;
};

}  // namespace

Status CheckFrameShape(std::string_view frame) {
  FrameShape shape(frame.size());
  std::size_t parsed = 0;
  if (!msgpack::parse(frame.data(), frame.size(), parsed, shape)) {
    return Status::InvalidInput("frame " + (shape.problem().empty() ? std::string("is not msgpack")
                                                                     : shape.problem()));
  }
  if (parsed != frame.size()) {
    return Status::InvalidInput("frame has " + std::to_string(frame.size() - parsed) +
                                " bytes after the message");
  }
  return Status::Ok();
}

}  // namespace imgsweep
