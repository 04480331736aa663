#include "coordinator/broken_versions.h"

#include <spdlog/spdlog.h>

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

std::size_t BrokenVersions::GiveUp(const Plan& plan, const std::set<std::string>& runnable,
                                   const LeaseTable& leases, ResultRecorder* recorder) {
  std::size_t failed = 0;
  for (std::size_t v = 0; v < plan.versions().size(); ++v) {
    const std::string& version = plan.versions()[v];
    if (!GivenUp(version, runnable.contains(version))) continue;
    const bool first = given_up_versions_.insert(version).second;
    const std::string why =
        "version " + version + " cannot run on any worker that holds it: " + Why(version);
    std::size_t cells = 0;
    for (std::size_t cell = 0; cell < plan.cell_count(); ++cell) {
      if (plan.Ref(cell).version != v || recorder->slot(cell).closed || leases.IsLeased(cell)) {
        continue;
      }
      recorder->GiveUp(cell, FailureKind::kBinaryUnrunnable, why);
      ++cells;
    }
    failed += cells;
    if (!first) continue;  // cells that came back from a lost worker's lease
    given_up_.push_back(version + " (" + Why(version) + ")");
    spdlog::error("coordinator: {}; its {} cells fail, the sweep goes on", why, cells);
  }
  return failed;
}

}  // namespace imgsweep
