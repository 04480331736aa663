#include "coordinator/broken_versions.h"

#include <algorithm>

namespace imgsweep {

namespace {
// A reason is for people; a worker cannot make it fill the coordinator.
constexpr std::size_t kMaxReasonBytes = 512;
}  // namespace

BrokenVersions::BrokenVersions(std::size_t reports_to_give_up)
    : reports_to_give_up_(std::max<std::size_t>(1, reports_to_give_up)) {}

void BrokenVersions::Report(const std::string& worker, const std::string& version,
                            const std::string& reason) {
  reasons_[version][worker] = reason.substr(0, kMaxReasonBytes);
}

bool BrokenVersions::GivenUp(const std::string& version, bool runnable) const {
  auto it = reasons_.find(version);
  return !runnable && it != reasons_.end() && it->second.size() >= reports_to_give_up_;
}

std::string BrokenVersions::Why(const std::string& version) const {
  std::string why;
  auto it = reasons_.find(version);
  if (it == reasons_.end()) return why;
  for (const auto& [worker, reason] : it->second) {
    why += (why.empty() ? "" : "; ") + worker + ": " + reason;
  }
  return why;
}

std::vector<std::string> BrokenVersions::Describe() const {
  std::vector<std::string> out;
  for (const auto& [version, by_worker] : reasons_) out.push_back(version + " (" + Why(version) + ")");
  return out;
}

}  // namespace imgsweep
