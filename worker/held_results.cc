#include "worker/held_results.h"

#include <algorithm>
#include <utility>

namespace imgsweep {

void HeldResults::Add(std::vector<CellResult> done, Clock::TimePoint now) {
  if (done.empty()) return;
  if (results_.empty()) since_ = now;
  for (CellResult& r : done) results_.push_back(std::move(r));
}

bool HeldResults::Due(Clock::TimePoint now, std::size_t waiting, unsigned slots,
                      bool hold_allowed) const {
  if (results_.empty()) return false;
  return !hold_allowed || waiting < slots || results_.size() >= kResultsPerFrame ||
         now - since_ >= kResultsLinger;
}

std::chrono::milliseconds HeldResults::Until(Clock::TimePoint now) const {
  if (results_.empty()) return std::chrono::milliseconds::max();
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(since_ + kResultsLinger - now);
  return std::max(std::chrono::milliseconds(0), left);
}

std::vector<CellResult> HeldResults::Take() {
  std::vector<CellResult> out;
  out.swap(results_);
  return out;
}

}  // namespace imgsweep
