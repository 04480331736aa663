// libFuzzer target for the wire decoder: any bytes a peer can send. Decode
// must return (never crash, hang or read out of bounds), and whatever it
// accepts must survive Encode and Decode again unchanged.
// Built by `scripts/test --fuzz` (clang, ASan, UBSan); seeds in tests/fuzz/seeds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/messages.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  imgsweep::Result<imgsweep::Message> message = imgsweep::Decode(frame);
  if (!message.ok()) return 0;
  imgsweep::Result<imgsweep::Message> again = imgsweep::Decode(imgsweep::Encode(message.value()));
  if (!again.ok() || !(again.value() == message.value())) __builtin_trap();
  return 0;
}
