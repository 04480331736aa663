// libFuzzer target for the manifest loader: any bytes given as manifest.json.
// Parse must return, and whatever it accepts must keep its promises: every
// safe-tier image has a safe id, a path that stays inside the testdata root,
// and a format that is a safe name and a known driver in some case (it is
// kept as written, since it names the bucket folder), since those become
// paths and arguments.
// Built by `scripts/test --fuzz`; seeds in tests/fuzz/manifest-seeds.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  imgsweep::Result<imgsweep::Manifest> manifest = imgsweep::Manifest::Parse(text, "fuzz.json");
  if (!manifest.ok()) return 0;
  const auto& formats = imgsweep::KnownFormats();
  for (const imgsweep::ImageEntry& image : manifest.value().SafeTier()) {
    std::string driver = image.format;
    std::transform(driver.begin(), driver.end(), driver.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (!imgsweep::IsSafeName(image.id) || !imgsweep::StaysInsideRoot(image.path) ||
        !imgsweep::IsSafeName(image.format) ||
        std::find(formats.begin(), formats.end(), driver) == formats.end()) {
      __builtin_trap();
    }
  }
  return 0;
}
