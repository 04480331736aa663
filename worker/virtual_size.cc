#include "worker/virtual_size.h"

#include <nlohmann/json.hpp>

#include "protocol/sha256.h"
#include "worker/subprocess.h"

namespace imgsweep {
namespace fs = std::filesystem;

namespace {

constexpr auto kProbeTimeout = std::chrono::seconds(30);

// The "virtual-size" of `info --output=json`, or why there is none.
Result<std::uint64_t> SizeFrom(const RunOutput& out) {
  if (out.ending == RunOutput::Ending::kTimeout) return Status::InvalidInput("timed out");
  if (out.ending == RunOutput::Ending::kSignaled) {
    return Status::InvalidInput("killed by signal " + std::to_string(out.signal));
  }
  if (out.exit_code != 0) {
    const std::string first = out.stderr_text.substr(0, out.stderr_text.find('\n'));
    return Status::InvalidInput("exit " + std::to_string(out.exit_code) + ": " + first);
  }
  const nlohmann::json info = nlohmann::json::parse(out.stdout_text, nullptr, /*allow_exceptions=*/false);
  if (!info.is_object() || !info.contains("virtual-size") || !info["virtual-size"].is_number_unsigned()) {
    return Status::InvalidInput("no \"virtual-size\" in its JSON");
  }
  return info["virtual-size"].get<std::uint64_t>();
}

}  // namespace

Result<VirtualSizes> ProbeVirtualSizes(const fs::path& program, const fs::path& testdata,
                                       const std::vector<ImageEntry>& images) {
  std::error_code ec;
  const fs::path root = fs::canonical(testdata, ec);
  if (ec) return Status::NotFound("testdata " + testdata.string() + ": " + ec.message());
  VirtualSizes sizes;
  for (const ImageEntry& image : images) {
    const std::string where = "testdata " + testdata.string() + ": image \"" + image.id + "\": ";
    Result<fs::path> file = ResolveInsideRoot(root, image.path);
    if (!file.ok()) return Status::InvalidInput(where + file.status().message());
    Result<std::string> digest = Sha256File(file.value());
    if (!digest.ok()) return Status::InvalidInput(where + digest.status().message());
    if (digest.value() != image.sha256) {
      return Status::InvalidInput(where + "sha256 is " + digest.value() + ", the manifest says " +
                                  image.sha256 + "; its virtual size would not be the image's");
    }
    RunRequest request;
    request.program = program;
    request.args = {"info", "--output=json", file.value().string()};
    request.cwd = root;
    request.timeout = kProbeTimeout;
    Result<RunOutput> out = RunCaptured(request);
    if (!out.ok()) return out.status();
    Result<std::uint64_t> size = SizeFrom(out.value());
    if (size.ok()) {
      sizes.by_id[image.id] = size.value();
    } else {
      sizes.unsized.push_back(image.id + ": " + size.status().message());
    }
  }
  return sizes;
}

}  // namespace imgsweep
