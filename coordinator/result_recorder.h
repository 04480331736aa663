// Turns what happened to a cell into its next record in the round's write:
// a worker's result, or an infrastructure attempt the coordinator records
// itself (the worker was lost, the lease expired). It owns the cells'
// states and the tallies of what closed.
//
// With an audit (sweep/audit.h) an audited cell closes only once two hosts
// agree on its output; until then its outcomes are held and it is queued
// for another host.
//
// The retry policy is a switch over FailureKind (RetryFor): an attempt that
// failed because of the host is retried elsewhere when another worker can
// take it; one that failed because the worker went away is retried
// anywhere. Either way, after `max_attempts` infrastructure attempts in a
// round the cell is failed.
//
// Thread-safety: the coordinator's thread only.
#ifndef IMGSWEEP_COORDINATOR_RESULT_RECORDER_H_
#define IMGSWEEP_COORDINATOR_RESULT_RECORDER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coordinator/committer.h"
#include "coordinator/peer_registry.h"
#include "protocol/clock.h"
#include "protocol/messages.h"
#include "storage/store.h"
#include "sweep/plan.h"

namespace imgsweep {

// Where one cell stands on this coordinator. Whether it is leased, and to
// whom, is the LeaseTable's to say.
struct CellSlot {
  bool closed = false;
  bool failed = false;            // closed without an outcome
  std::uint32_t attempts = 0;     // attempts stored so far
  std::uint32_t round_start = 0;  // attempts before this round (see CellRecord)
};

// Where a cell goes after an infrastructure failure.
enum class Retry {
  kElsewhere,  // this host cannot run it: another worker, if one holds the version
  kAnywhere,   // the worker went away holding it: any worker, that one too
};
Retry RetryFor(FailureKind kind);

class ResultRecorder {
 public:
  // REQUIRES: every pointer outlives the recorder.
  // `audit_percent` of the cells (AuditSelects) close only once two hosts
  // agree on their output.
  ResultRecorder(const Plan* plan, CommitPipeline* pipeline, const Clock* clock,
                 unsigned max_attempts, unsigned audit_percent);

  CellSlot& slot(std::size_t cell) { return cells_[cell]; }
  const CellSlot& slot(std::size_t cell) const { return cells_[cell]; }
  std::size_t cells() const { return cells_.size(); }
  std::size_t open() const { return open_; }
  // Closed cells of the plan's version `version`: with an outcome (stored
  // before, or now), and failed.
  std::size_t done_in(std::size_t version) const { return done_by_version_[version]; }
  std::size_t failed_in(std::size_t version) const { return failed_by_version_[version]; }
  // Cells of the plan's output type `type` without an outcome yet.
  std::size_t open_in_type(std::size_t type) const { return open_by_type_[type]; }

  // Stored outcomes reused as they are: the cells close, `counts` joins
  // the tally.
  void Reuse(std::size_t cell);
  void CountReused(const OutcomeCounts& counts) { counts_ = counts; }
  // The cell's result from `worker`, who may report it, run with the
  // plan's inputs: `result.key` is the cell's key and `result.inputs` its
  // Plan::CacheKey for this worker (the caller checked all three).
  void RecordResult(const WorkerEntry& worker, std::size_t cell, CellResult& result);
  // An infrastructure attempt the coordinator makes itself; `worker` is
  // the one that held the cell, when known.
  void RecordLoss(std::size_t cell, FailureKind kind, const std::string& why,
                  const WorkerEntry* worker);

  // Fails the cell at once, without a retry: no worker can run it (its
  // version is broken everywhere it was tried).
  void GiveUp(std::size_t cell, FailureKind kind, const std::string& why);

  const OutcomeCounts& counts() const { return counts_; }
  std::size_t ran_now() const { return ran_now_; }
  std::size_t infra_attempts() const { return infra_attempts_; }
  const std::map<std::string, std::size_t>& by_worker() const { return by_worker_; }

 private:
  // Files the attempt in the cell's write, then closes the cell or puts it
  // back for another try.
  void Append(std::size_t cell, CellWrite& write, Attempt attempt, const std::string& worker);
  // The audit's verdict on an audited cell's new outcome: true when the
  // cell closes (its record's state says how), false when it is held and
  // queued for another host.
  bool Audited(std::size_t cell, CellWrite& write);
  void Close(std::size_t cell, const CellRecord& record);

  const Plan* plan_;
  CommitPipeline* pipeline_;
  const Clock* clock_;
  const unsigned max_attempts_;
  const unsigned audit_percent_;
  std::vector<CellSlot> cells_;
  std::vector<std::size_t> done_by_version_, failed_by_version_;  // kept by Reuse and Close
  std::vector<std::size_t> open_by_type_;                         // likewise
  std::size_t open_;
  OutcomeCounts counts_;
  std::size_t ran_now_ = 0;
  std::size_t infra_attempts_ = 0;
  std::map<std::string, std::size_t> by_worker_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_RESULT_RECORDER_H_
