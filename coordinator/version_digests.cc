#include "coordinator/version_digests.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace imgsweep {

VersionDigests::VersionDigests(const Plan* plan, Store* store,
                               std::map<std::string, std::string> digests)
    : plan_(plan), store_(store), digests_(std::move(digests)) {}

bool VersionDigests::Accept(const std::string& worker, const VersionInfo& v) {
  const std::vector<std::string>& versions = plan_->versions();
  if (std::find(versions.begin(), versions.end(), v.name) == versions.end()) return false;
  auto [sweep_digest, first] = digests_.emplace(v.name, v.binary_sha256);
  if (first) {
    Status st = store_->PutMeta("digest/" + v.name, v.binary_sha256);
    if (!st.ok()) spdlog::error("coordinator: cannot record the digest of {}: {}", v.name, st.message());
    return true;
  }
  if (sweep_digest->second == v.binary_sha256) return true;
  const std::string conflict = "worker " + worker + " has " + v.name + " as " + v.binary_sha256 +
                               ", the sweep uses " + sweep_digest->second;
  if (std::find(conflicts_.begin(), conflicts_.end(), conflict) == conflicts_.end()) {
    conflicts_.push_back(conflict);
  }
  spdlog::error("coordinator: {}: it gets none of {}'s cells, so one version's cells are "
                "not run by two different binaries (if its bytes are the right ones, "
                "`imgsweep rerun --shard {} --binary-digest {}={}`)",
                conflict, v.name, v.name, v.name, v.binary_sha256);
  return false;
}

}  // namespace imgsweep
