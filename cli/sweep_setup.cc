// What `run` and `coordinator` share: inputs checked and a store that holds
// the plan, before any socket or process exists.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "sweep/sweep_state.h"
#include "protocol/manifest.h"
#include "protocol/sha256.h"
#include "protocol/version_name.h"
#include "worker/binaries.h"
#include "worker/virtual_size.h"

namespace imgsweep {
namespace fs = std::filesystem;

namespace {
bool json_errors = false;
}  // namespace

void SetJsonErrors(bool on) { json_errors = on; }

void ErrorLine(const std::string& what) {
  if (json_errors) {
    spdlog::error("{}", what);
  } else {
    std::fprintf(stderr, "imgsweep: %s\n", what.c_str());
  }
}

int Fail(const Status& status) {
  ErrorLine(status.message());
  switch (status.code()) {
    case StatusCode::kInvalidInput:
    case StatusCode::kNotFound:
      return kExitBadInput;
    default:
      return kExitFailed;
  }
}

namespace {

// Every swept image is in the testdata; one whose manifest entry has no
// sha256 gets the digest of this copy, said in the log.
Status CheckTestdata(const fs::path& testdata, Manifest* manifest) {
  std::error_code ec;
  if (!fs::is_directory(testdata, ec)) {
    return Status::NotFound("testdata " + testdata.string() + ": no such directory");
  }
  const fs::path root = fs::canonical(testdata, ec);
  for (const ImageEntry& image : manifest->SafeTier()) {
    const std::string where = "testdata " + testdata.string() + ": image \"" + image.id + "\": ";
    Result<fs::path> real = ResolveInsideRoot(root, image.path);
    if (real.status().code() == StatusCode::kInvalidInput) {
      return Status::InvalidInput(where + real.status().message());
    }
    if (!real.ok() || !fs::is_regular_file(real.value(), ec)) {
      return Status::NotFound(where + image.path + " is not there");
    }
    if (!image.sha256.empty()) continue;
    Result<std::string> digest = Sha256File(real.value());
    if (!digest.ok()) return digest.status();
    spdlog::info("manifest: image \"{}\" has no sha256; using {}, this host's copy's ({})",
                 image.id, digest.value(), image.path);
    Status st = manifest->SetDigest(image.id, digest.value());
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

// kInvalidInput naming the first swept entry without a sha256 (a sweep
// without a copy of the testdata cannot compute one).
Status RequireDigests(const fs::path& source, const Manifest& manifest) {
  const std::vector<ImageEntry>& all = manifest.images();
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (!InSafeTier(all[i]) || !all[i].sha256.empty()) continue;
    return Status::InvalidInput(source.string() + ": images[" + std::to_string(i) + "] (\"" +
                                all[i].id + "\"): field \"sha256\": missing, and this sweep has "
                                "no copy of the testdata to compute it from");
  }
  return Status::Ok();
}

// The virtual sizes the windows of `types` are computed from, by image id:
// none when no type has windows. The newest version sizes the images.
Result<std::map<std::string, std::uint64_t>> SizeImages(const SweepInputs& inputs, const Manifest& manifest,
                                                        const std::vector<OutputType>& types) {
  std::vector<ImageEntry> images;
  std::string windowed;  // the first type with windows, for messages
  for (const ImageEntry& image : manifest.SafeTier()) {
    for (const OutputType& type : types) {
      if (type.windows.empty() || !type.RunsOn(image.format)) continue;
      if (windowed.empty()) windowed = type.name;
      images.push_back(image);
      break;
    }
  }
  if (images.empty()) return std::map<std::string, std::uint64_t>();
  if (inputs.testdata.empty() || inputs.probe_binaries.empty() || inputs.versions.empty()) {
    return Status::InvalidInput("output type " + windowed + " has windows, computed from each image's "
                                "virtual size: give --testdata and --binaries (its newest version "
                                "sizes the images)");
  }
  std::vector<std::string> versions = inputs.versions;
  SortVersions(&versions);
  const fs::path program = inputs.probe_binaries / "x86_64" / versions.back() / "qemu-img";
  Result<VirtualSizes> sizes = ProbeVirtualSizes(program, inputs.testdata, images);
  if (!sizes.ok()) return sizes.status();
  for (const std::string& why : sizes.value().unsized) {
    spdlog::warn("qemu-img {} cannot size image {}; it gets no cells of the types with windows",
                 versions.back(), why);
  }
  spdlog::info("{} images sized by qemu-img {} for the windows of {}", sizes.value().by_id.size(),
               versions.back(), windowed);
  return std::move(sizes).value().by_id;
}

}  // namespace

Result<PreparedSweep> PrepareSweep(const SweepInputs& inputs) {
  // The table and --commands first: a mistake there is found before any
  // image is read.
  Result<CommandTable> table = inputs.command_table.empty()
                                   ? Result<CommandTable>(CommandTable::BuiltIn())
                                   : CommandTable::Load(inputs.command_table);
  if (!table.ok()) return table.status();
  Result<std::vector<OutputType>> types = table.value().OutputTypesOf(inputs.commands);
  if (!types.ok()) return types.status();
  Result<Manifest> manifest = Manifest::Load(inputs.manifest);
  if (!manifest.ok()) return manifest.status();
  if (!inputs.testdata.empty()) {
    Status st = CheckTestdata(inputs.testdata, &manifest.value());
    if (!st.ok()) return st;
  }
  Status st = RequireDigests(inputs.manifest, manifest.value());
  if (!st.ok()) return st;
  Result<std::map<std::string, std::uint64_t>> sizes = SizeImages(inputs, manifest.value(), types.value());
  if (!sizes.ok()) return sizes.status();
  Result<Plan> plan = Plan::Make(manifest.value(), inputs.versions, inputs.timeout,
                                 std::move(types).value(), sizes.value());
  if (!plan.ok()) return plan.status();

  Result<std::unique_ptr<Store>> store = Store::Open(inputs.db, Store::Mode::kCreateIfMissing);
  if (!store.ok()) return store.status();
  // Another plan on the store is a changed sweep: what is still current is
  // reused, the rest runs again.
  Result<std::string> changes = AdoptPlan(*store.value(), plan.value());
  if (!changes.ok()) return changes.status();
  if (!changes.value().empty()) {
    spdlog::info("store {}: the sweep changed: {}; outcomes whose inputs are the same are reused",
                 inputs.db.string(), changes.value());
  }
  return PreparedSweep{std::move(plan).value(), std::move(store).value()};
}

namespace {

// What identifies a file's bytes without reading them: "dev ino size
// mtime_ns ctime_ns". A rewrite in place changes ctime even when it keeps
// the size and sets the mtime back.
Result<std::string> FileIdentity(const fs::path& file) {
  struct stat st{};
  if (::stat(file.c_str(), &st) != 0) return Status::FromErrno("stat " + file.string(), errno);
  auto ns = [](const timespec& t) {
    return std::to_string(static_cast<long long>(t.tv_sec) * 1'000'000'000LL + t.tv_nsec);
  };
  return std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " +
         std::to_string(st.st_size) + " " + ns(st.st_mtim) + " " + ns(st.st_ctim);
}

}  // namespace

Result<std::map<std::string, std::string>> LocalDigests(Store& store, const fs::path& binaries,
                                                        const std::vector<std::string>& versions) {
  std::map<std::string, std::string> digests;
  std::map<std::string, std::string> by_identity;  // within this call: links to one file
  for (const std::string& version : versions) {
    const fs::path file = DigestedBinary(binaries, version);
    Result<std::string> identity = FileIdentity(file);
    if (!identity.ok()) return identity.status();
    const std::string meta = "binary-stat/" + version;
    Result<std::optional<std::string>> known = store.GetMeta(meta);
    if (!known.ok()) return known.status();
    // "IDENTITY SHA256": the digest stands while the identity does.
    const std::string& id = identity.value();
    if (known.value() && known.value()->size() == id.size() + 65 &&
        known.value()->compare(0, id.size(), id) == 0 && (*known.value())[id.size()] == ' ') {
      digests[version] = known.value()->substr(id.size() + 1);
      continue;
    }
    auto seen = by_identity.find(id);
    std::string digest;
    if (seen != by_identity.end()) {
      digest = seen->second;
    } else {
      Result<std::string> hashed = Sha256File(file);
      if (!hashed.ok()) return hashed.status();
      digest = hashed.value();
      by_identity.emplace(id, digest);
    }
    Status st = store.PutMeta(meta, id + " " + digest);
    if (!st.ok()) return st;
    digests[version] = digest;
  }
  return digests;
}

}  // namespace imgsweep
