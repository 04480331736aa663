// Which bytes the sweep runs for each version: the sha256 of its qemu-img.
// One version's cells never mix binaries: the digest is a pin, else the one
// an earlier run stored, else the first worker's (stored at once); a worker
// with other bytes for the version gets none of its cells, and the conflict
// is reported.
// Thread-safety: the coordinator's thread only.
#ifndef IMGSWEEP_COORDINATOR_VERSION_DIGESTS_H_
#define IMGSWEEP_COORDINATOR_VERSION_DIGESTS_H_

#include <map>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "storage/store.h"
#include "sweep/plan.h"

namespace imgsweep {

class VersionDigests {
 public:
  // REQUIRES: `plan` and `store` outlive this.
  VersionDigests(const Plan* plan, Store* store, std::map<std::string, std::string> digests);

  // Whether `worker` may run `v` in this sweep: a version of the plan, with
  // the sweep's digest.
  bool Accept(const std::string& worker, const VersionInfo& v);

  // "worker w2 has 7.2.0 as <sha>, the sweep uses <sha>", once each.
  const std::vector<std::string>& conflicts() const { return conflicts_; }

 private:
  const Plan* plan_;
  Store* const store_;
  std::map<std::string, std::string> digests_;  // version -> sha256
  std::vector<std::string> conflicts_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_VERSION_DIGESTS_H_
