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
  // "9.9.9 (w1: --version exited 127: ...)", one per broken version.
  std::vector<std::string> Describe() const;

 private:
  const std::size_t reports_to_give_up_;
  std::map<std::string, std::map<std::string, std::string>> reasons_;  // version -> worker -> why
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_BROKEN_VERSIONS_H_
