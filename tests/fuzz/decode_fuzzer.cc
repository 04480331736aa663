// libFuzzer target for the wire decoder: any bytes a peer can send. Decode
// must return (never crash, hang or read out of bounds), and whatever it
// accepts must survive Encode and Decode again unchanged.
//
// Byte mutations alone seldom get past the envelope, so half the time the
// custom mutator below writes a well-formed envelope [version, kind, body]
// of a real kind whose body is hostile: the right number of fields or one
// off, each a value of any type, a length that lies, deep nesting, an ext,
// text that is not UTF-8, or a long string.
// Built by `scripts/test --fuzz` (clang, ASan, UBSan) with inputs up to
// 1 MiB; seeds in tests/fuzz/seeds.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

#include "protocol/messages.h"

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size,
                                        std::size_t max_size);

namespace {

// Big-endian, as msgpack writes lengths.
void PutBig(std::string* out, std::uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

void HostileValue(std::mt19937_64& rng, std::size_t room, int depth, std::string* out) {
  switch (rng() % 11) {
    case 0:
      out->push_back('\xc0');  // nil
      return;
    case 1:
      out->push_back('\xcf');  // uint64
      PutBig(out, rng(), 8);
      return;
    case 2:
      out->push_back('\xd3');  // int64, often negative
      PutBig(out, rng() | (std::uint64_t{1} << 63), 8);
      return;
    case 3: {  // a string of any bytes (not UTF-8 as often as not), now and then a long one
      const std::size_t longest = rng() % 16 == 0 ? room : std::min<std::size_t>(room, 64);
      const std::size_t n = rng() % (longest + 1);
      out->push_back('\xdb');
      PutBig(out, n, 4);
      for (std::size_t i = 0; i < n; ++i) out->push_back(static_cast<char>(rng() % 256));
      return;
    }
    case 4:  // an array that claims more than follows
      out->push_back('\xdd');
      PutBig(out, 0xffffffffu - rng() % 16, 4);
      out->push_back('\xc0');
      return;
    case 5:  // a map that claims more than follows
      out->push_back('\xdf');
      PutBig(out, rng() % 0xffffffffu, 4);
      return;
    case 6:  // nesting deeper than any message
      for (int i = 0; i < 4 + static_cast<int>(rng() % 60); ++i) out->push_back('\x91');
      out->push_back('\xc0');
      return;
    case 7:  // an ext
      out->push_back('\xd4');
      out->push_back(static_cast<char>(rng() % 256));
      out->push_back('\x00');
      return;
    case 8:  // an honest array of hostile values
      if (depth < 3) {
        const std::size_t n = rng() % 5;
        out->push_back(static_cast<char>(0x90 | n));
        for (std::size_t i = 0; i < n; ++i) HostileValue(rng, room / 4, depth + 1, out);
        return;
      }
      out->push_back('\x90');
      return;
    case 9:
      out->push_back(static_cast<char>(rng() % 128));  // a small positive int
      return;
    default:
      out->push_back(rng() % 2 == 0 ? '\xc2' : '\xc3');  // a bool
      return;
  }
}

}  // namespace

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                               std::size_t max_size, unsigned int seed) {
  std::mt19937_64 rng(seed);
  if (rng() % 2 == 0 || max_size < 16) return LLVMFuzzerMutate(data, size, max_size);
  std::string frame = "\x93";
  frame.push_back(static_cast<char>(imgsweep::kProtocolVersion));
  frame.push_back(static_cast<char>(1 + rng() % 12));  // a real kind
  const std::size_t fields = rng() % 10;
  frame.push_back(static_cast<char>(0x90 | fields));
  for (std::size_t i = 0; i < fields && frame.size() < max_size; ++i) {
    HostileValue(rng, (max_size - frame.size()) / (fields + 1), 0, &frame);
  }
  if (frame.size() > max_size) frame.resize(max_size);
  std::memcpy(data, frame.data(), frame.size());
  return frame.size();
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  imgsweep::Result<imgsweep::Message> message = imgsweep::Decode(frame);
  if (!message.ok()) return 0;
  imgsweep::Result<imgsweep::Message> again = imgsweep::Decode(imgsweep::Encode(message.value()));
  if (!again.ok() || !(again.value() == message.value())) __builtin_trap();
  return 0;
}
