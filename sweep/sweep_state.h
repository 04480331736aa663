// What a store says about its sweep, for people (`imgsweep status`), and
// putting chosen cells back in the queue (`imgsweep rerun`).
// Thread-safety: free functions over a Store, which serialises them.
#ifndef IMGSWEEP_SWEEP_SWEEP_STATE_H_
#define IMGSWEEP_SWEEP_SWEEP_STATE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "sweep/audit.h"
#include "sweep/plan.h"
#include "protocol/status.h"
#include "storage/store.h"

namespace imgsweep {

// Cells of one version (a shard) by state and outcome.
struct ShardCounts : OutcomeCounts {
  std::string version;
  std::size_t cells = 0;
  std::size_t pending = 0;  // no outcome yet, including never run
  std::size_t infra_attempts = 0;  // retried or not, over every round
};

struct CellStatus {
  std::string key;
  const char* state = "";  // "pending", "done", "failed"
  CellRecord record;       // empty when the cell never ran
};

struct SweepState {
  Plan plan;
  ShardCounts total;
  std::vector<ShardCounts> shards;  // in plan order
  std::vector<CellStatus> cells;    // every cell, in plan order
  std::vector<AuditFinding> findings;  // cells whose hosts printed differently
};

// The stored plan; kNotFound when the store holds none.
Result<Plan> LoadPlan(Store& store);

// kNotFound when the store holds no plan.
Result<SweepState> ReadSweepState(Store& store);

// Per shard and in total, then each failed cell with every attempt of its
// last round and why, then each timed-out cell, then the audit's findings; with `every_cell`, one line
// per cell after that: "KEY STATE OUTCOME attempts=N[ kinds]".
std::string FormatSweepState(const SweepState& state, bool every_cell);

// The same as one JSON document, every failed and timed-out cell listed:
// {"types", "versions", "images", "total", "shards", "failed", "timed_out",
// "findings"}, and "cells" with `every_cell`.
std::string SweepStateJson(const SweepState& state, bool every_cell);

// Which cells `imgsweep rerun` puts back in the queue; together, the union.
struct RerunSelection {
  bool failed = false;              // failed on every attempt, or timed out
  std::vector<std::string> shards;  // every cell of these versions
  std::vector<std::string> images;  // every cell of these image ids
};

// Makes the selected cells pending again in one durable write, keeping
// every attempt they had: the next attempt is numbered after them, and the
// attempt limit counts from it. The number of cells put back.
// kInvalidInput naming a version or image id the plan does not have, or
// when nothing is selected.
Result<std::size_t> ReopenCells(Store& store, const Plan& plan, const RerunSelection& selection);

// Makes `plan` the store's sweep. A store without a plan gets it; one
// with another plan (versions added or dropped, images added, dropped or
// changed, another timeout) keeps every cell record: outcomes whose inputs
// are unchanged are reused by the next run (Plan::CacheKey), the rest run
// again. Done records written before keys were kept get theirs from the
// plan they ran under first, in the same durable write. The change in
// words ("2 versions added: 9.0.0, 9.1.0; 1 image changed: raw-empty"),
// empty when the plan is the stored one.
Result<std::string> AdoptPlan(Store& store, const Plan& plan);

}  // namespace imgsweep

#endif  // IMGSWEEP_SWEEP_SWEEP_STATE_H_
