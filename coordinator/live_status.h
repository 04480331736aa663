// The coordinator's live state as JSON, for `imgsweep status --connect`
// (the fields are in docs/protocol.md), and the note of which versions no
// connected worker holds.
// Thread-safety: functions over the coordinator's parts, on its thread.
#ifndef IMGSWEEP_COORDINATOR_LIVE_STATUS_H_
#define IMGSWEEP_COORDINATOR_LIVE_STATUS_H_

#include <string>
#include <vector>

#include "coordinator/coordinator.h"
#include "coordinator/lease_table.h"
#include "coordinator/peer_registry.h"
#include "coordinator/result_recorder.h"
#include "protocol/clock.h"
#include "sweep/plan.h"

namespace imgsweep {

struct LiveView {
  const std::string& sweep_id;
  const Progress& progress;
  const Plan& plan;
  const PeerRegistry& peers;
  const LeaseTable& leases;
  const ResultRecorder& recorder;
  const std::vector<std::string>& broken_versions;  // given up on, with why
  const std::vector<std::string>& layout_conflicts;  // ImageLayouts::conflicts
  Clock::TimePoint now;
};

std::string LiveStatusJson(const LiveView& view);

// "9.9.9 (88 cells), 10.0.0 (88 cells)": versions with open cells that no
// connected worker holds; empty when there are none.
std::string VersionsWithoutWorker(const LiveView& view);

// "map-window (880 cells)": output types with open cells that no connected
// worker runs (its command table lacks them); empty when there are none.
// Without any worker connected, none is named: the coordinator is waiting
// for workers, not for a kind of worker.
std::string TypesWithoutWorker(const LiveView& view);

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_LIVE_STATUS_H_
