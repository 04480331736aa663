// What a coordinator starts from: its incarnation on the store, the sweep's
// binary digests, and which stored outcomes still stand. A stored outcome
// is reused only while its inputs (Plan::CacheKey, with the version's
// digest and the image's layout) are the same and it is not a failure; every other stored cell is
// put back in the queue in one durable write, keeping its attempts, so a
// tree is never written from an outcome whose inputs have changed.
//
// Thread-safety: a function over a Store, which serialises it.
#ifndef IMGSWEEP_COORDINATOR_STORED_CELLS_H_
#define IMGSWEEP_COORDINATOR_STORED_CELLS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "coordinator/image_layouts.h"
#include "protocol/status.h"
#include "storage/store.h"
#include "sweep/plan.h"

namespace imgsweep {

struct StoredCells {
  std::uint64_t incarnation = 1;  // this start on the store: 1, 2, ...
  // 32 random hex digits, made at the store's first start and kept: one id
  // per sweep, whatever restarts it.
  std::string sweep_id;
  // Version -> the sweep's binary sha256: a pin (`binary_digests`) over the
  // one stored by an earlier run.
  std::map<std::string, std::string> digests;
  // Image path -> the layout its stored outcomes ran on (ImageLayout::kAsIs).
  std::map<std::string, std::string> layouts;
  struct Slot {
    std::uint32_t attempts = 0;
    std::uint32_t round_start = 0;
  };
  std::vector<Slot> slots;                   // by cell
  std::vector<bool> reused;      // by cell: its stored outcome stands
  OutcomeCounts reused_counts;   // those outcomes
  std::size_t reopened = 0;      // stored outcomes that run again
  // Pending cells with outcomes in their round (held by the audit) -> the
  // hosts that gave them.
  std::map<std::size_t, std::set<std::string>> held;
  // Leases of earlier incarnations, as stored: whose late results count.
  std::vector<LeaseRecord> leases;
};

// kInvalidInput when `binary_digests` names a version the plan does not
// have, or the store's incarnation is not a number; the store's errors as
// they are. Records the new incarnation and digests durably.
Result<StoredCells> LoadStoredCells(const Plan& plan, Store* store,
                                    const std::map<std::string, std::string>& binary_digests,
                                    bool force, ImageLayout image_layout);

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_STORED_CELLS_H_
