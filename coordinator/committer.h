// The commit pipeline: results become durable in batches, and are
// acknowledged only after the write that holds them. One write runs at a
// time, on the committer's own thread, while the coordinator goes on
// receiving results and handing out cells; meanwhile the next round's
// writes gather here.
//
// A round's write starts once kCommitBatch results wait, or the first of
// them has waited kCommitDelay: with cells of a few ms a sync per result is
// a cost of its own, and workers do not wait for acknowledgements to go on.
//
// Thread-safety: every method is called from the coordinator's thread; the
// committer thread touches only the write it was handed.
#ifndef IMGSWEEP_COORDINATOR_COMMITTER_H_
#define IMGSWEEP_COORDINATOR_COMMITTER_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "protocol/clock.h"
#include "protocol/status.h"
#include "storage/store.h"

namespace imgsweep {

// Results gathered before one durable write and its acknowledgements: big
// enough to amortise the sync, small enough that acks flow steadily.
inline constexpr std::size_t kMaxResultsPerCommit = 512;
inline constexpr std::size_t kCommitBatch = kMaxResultsPerCommit / 2;
inline constexpr auto kCommitDelay = std::chrono::milliseconds(50);

// A result waiting for the durable write, and whom to acknowledge after it.
struct PendingAck {
  std::string peer;
  std::string key;
};

// A cell to queue again once its attempt is stored, and the worker that
// should not get it back if another can take it (empty: any).
struct Requeue {
  std::size_t cell = 0;
  std::string avoid;
  std::set<std::string> hosts = {};  // hosts that must not get it (the audit's)
};

// The writes of one round, and what waits for them.
struct Batch {
  std::vector<CellWrite> writes;                          // one per cell
  std::unordered_map<std::size_t, std::size_t> write_of;  // cell -> its place in writes
  std::vector<Clock::TimePoint> sent_of;  // by place in writes: its lease's assignment, if any
  std::vector<PendingAck> acks;
  // Cells given an infrastructure attempt: back in the queue once it is
  // stored, so a cell is never handed out ahead of its own record.
  std::vector<Requeue> requeue;
  std::vector<LeaseRecord> leases;  // granted in the round, stored with its writes
};

class CommitPipeline {
 public:
  // REQUIRES: `store` and `clock` outlive the pipeline.
  CommitPipeline(Store* store, const Clock* clock);
  ~CommitPipeline();
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // This round's write for the cell, made on first use from the write in
  // flight, else from the store (read only when `has_attempts`): each cell
  // is written once per commit, whatever happened to it in the round.
  // The reference lasts until the next call.
  CellWrite& WriteFor(std::size_t cell, const std::string& key, bool has_attempts);
  // The cell's result came back on a lease sent at `sent`.
  void SetSent(std::size_t cell, Clock::TimePoint sent);
  void Ack(std::string peer, std::string key);
  void Requeue(std::size_t cell, std::string avoid, std::set<std::string> hosts = {});
  // A lease granted now: stored with this round's write, so that a late
  // result of it still counts after a coordinator restart. Without results
  // the round is written after kCommitDelay all the same.
  void Grant(LeaseRecord lease);

  // A full round takes nothing more until it is written.
  bool full() const { return round_.acks.size() >= kMaxResultsPerCommit; }
  bool busy() const { return busy_; }
  // Readable when the write in flight finishes; -1 when none is.
  int wake_fd() const { return busy_ ? wake_fd_ : -1; }
  // How long the coordinator may wait for frames, at most `most`, before
  // this round's write is due.
  std::chrono::milliseconds WaitBudget(std::chrono::milliseconds most) const;

  // The round's writes themselves stay behind: the writer thread frees
  // them with its next write, off the coordinator's thread.
  struct Written {
    Batch batch;  // without its writes
    std::size_t results = 0;  // how many cells the write stored
    Clock::Duration took;
    Clock::TimePoint stored;
  };
  // The write in flight once it has finished, waiting up to `wait`:
  // nullopt while it still runs or when none is. The write's failure as a
  // Status: its results are not acknowledged, and the workers keep them.
  Result<std::optional<Written>> Collect(std::chrono::milliseconds wait);
  // Starts this round's write when it is due, or now with `now`.
  // REQUIRES: !busy(). A round without writes (its results were stored
  // before) hands back its acks to send at once.
  std::vector<PendingAck> StartIfDue(bool now);
  // Nothing waits to be written or acknowledged.
  bool idle() const { return !busy_ && RoundEmpty() && round_.acks.empty(); }
  // Results of this round waiting for their write.
  std::size_t waiting() const { return round_.writes.size(); }

 private:
  void Loop();
  // Nothing of this round waits for a write (acknowledgements aside).
  bool RoundEmpty() const { return round_.writes.empty() && round_.leases.empty(); }

  Store* const store_;
  const Clock* const clock_;
  const int wake_fd_;
  Batch round_;                       // what this round stores and acknowledges
  Batch committing_;                  // the write in flight (when busy_)
  std::vector<CellWrite> spent_;      // a written round's writes, to free on the writer thread
  Clock::TimePoint round_started_;    // when round_ got its first write
  Clock::TimePoint commit_started_;
  bool busy_ = false;

  std::mutex mu_;
  std::condition_variable changed_;
  const Batch* start_ = nullptr;                   // guarded by mu_: the write to start
  std::vector<CellWrite> start_spent_;             // guarded by mu_: writes for the writer to free
  std::optional<Status> done_;                     // guarded by mu_: the finished write's
  bool stopping_ = false;                          // guarded by mu_
  std::thread thread_;                             // last: started once the rest is set
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_COMMITTER_H_
