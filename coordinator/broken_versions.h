// Versions that workers hold but cannot run (their `--version` failed: a
// missing library, a wrong loader), by worker, with the reason. A version
// is given up on once enough workers have reported it broken and no
// connected worker runs it: its open cells then fail with the reasons, and
// the sweep goes on with the others.
// Thread-safety: the coordinator's thread only.
#ifndef IMGSWEEP_COORDINATOR_BROKEN_VERSIONS_H_
#define IMGSWEEP_COORDINATOR_BROKEN_VERSIONS_H_

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "coordinator/lease_table.h"
#include "coordinator/result_recorder.h"
#include "sweep/plan.h"

namespace imgsweep {

class BrokenVersions {
 public:
  // REQUIRES: reports_to_give_up >= 1.
  explicit BrokenVersions(std::size_t reports_to_give_up);

  void Report(const std::string& worker, const std::string& version, const std::string& reason);
  bool empty() const { return reasons_.empty(); }
  // Reported by enough workers, and `runnable` (some connected worker runs
  // it) is false.
  bool GivenUp(const std::string& version, bool runnable) const;
  // "w1: --version timed out after 30 s; w2: ..."
  std::string Why(const std::string& version) const;
  // Fails, through `recorder`, every open cell not leased of each version
  // given up on (GivenUp, with `runnable` the versions a connected worker
  // runs), including cells that came back from a lease since. The number
  // of cells failed. Reads every cell of those versions: call it when
  // workers come or go, not every round.
  std::size_t GiveUp(const Plan& plan, const std::set<std::string>& runnable,
                     const LeaseTable& leases, ResultRecorder* recorder);
  // "9.9.9 (w1: --version exited 127: ...)", one per version given up on.
  const std::vector<std::string>& given_up() const { return given_up_; }

 private:
  const std::size_t reports_to_give_up_;
  std::map<std::string, std::map<std::string, std::string>> reasons_;  // version -> worker -> why
  std::set<std::string> given_up_versions_;
  std::vector<std::string> given_up_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_BROKEN_VERSIONS_H_
