// The coordinator: hands the plan's cells to workers and stores what they
// report. Workers say what they hold (hello); each grants credit for the
// cells it can take; the coordinator answers with assignments, a batch of
// cells of one shard (one version) under a lease. Each result is stored and
// only then acknowledged. Run returns when every cell has an outcome (or has
// failed every allowed attempt), after telling every worker to shut down.
//
// Faults: heartbeats flow both ways; a worker silent for `liveness`
// heartbeats is lost, and so is one whose lease runs out: each cell it held
// gets a worker-lost (or lease-expired) attempt and goes back to the queue.
// A worker that comes back says hello again; a result it still holds is
// stored if its cell is still open (the first stored result wins) and
// discarded otherwise. Lease ids carry the coordinator's incarnation (one
// more at every start on a store), so after a restart results of the
// previous incarnation's leases are still recognised.
//
// Thread-safety: Run is called once, from one thread.
#ifndef IMGSWEEP_COORDINATOR_COORDINATOR_H_
#define IMGSWEEP_COORDINATOR_COORDINATOR_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/image_layouts.h"
#include "coordinator/peer_registry.h"
#include "protocol/clock.h"
#include "sweep/plan.h"
#include "protocol/status.h"
#include "protocol/transport.h"
#include "storage/store.h"

namespace imgsweep {

// What the coordinator has done so far, for progress lines and metrics.
struct Progress : OutcomeCounts {
  std::size_t cells = 0;
  std::size_t closed = 0;  // with an outcome, or failed
  std::size_t ran_now = 0;  // closed by this run
  std::size_t leased = 0;   // in flight on workers
  std::size_t workers = 0;  // connected
  std::size_t workers_lost = 0;
  std::size_t rejected_frames = 0;
  std::chrono::steady_clock::duration elapsed{};
};

// Told what happens, on the coordinator's thread; must return quickly.
class CoordinatorObserver {
 public:
  virtual ~CoordinatorObserver() = default;
  // After every round, and once more when the sweep is complete.
  virtual void OnProgress(const Progress& progress) = 0;
  // One durable write of `results` results.
  virtual void OnCommit(std::chrono::steady_clock::duration took, std::size_t results) = 0;
  // One assignment of `cells` cells built and handed to ZeroMQ.
  virtual void OnDispatch(std::chrono::steady_clock::duration took, std::size_t cells) = 0;
  // After each durable write: for every result in it that came back on its
  // lease, the time from its assignment leaving the coordinator (the cell
  // queued on its worker) to the write that stored it.
  virtual void OnStored(const std::vector<std::chrono::steady_clock::duration>& waits) = 0;
};

struct CoordinatorOptions {
  std::string listen = "tcp://127.0.0.1:*";
  // Empty: the store's own, made at its first start (LoadStoredCells).
  std::string sweep_id;
  std::chrono::milliseconds heartbeat = kDefaultHeartbeat;
  // Heartbeats a worker may miss in a row before it is taken for lost.
  unsigned liveness = kDefaultLiveness;
  // Digests the user says are right, by version: a worker with other bytes
  // for the version gets none of its cells. Versions not named take the
  // digest stored by an earlier run, else the first worker's.
  std::map<std::string, std::string> binary_digests;
  // Runs every cell again, whatever the store holds for its inputs.
  bool force = false;
  // The layout on disk each image's cells run on (coordinator/image_layouts.h).
  ImageLayout image_layout = ImageLayout::kDense;
  // Infrastructure failures of one cell before it is failed for good.
  unsigned max_attempts = 3;
  // Percent of cells (sweep/audit.h) run on a second host and compared;
  // a cell whose hosts differ waits for a third.
  unsigned audit_percent = 0;
  // Workers that must report a version broken (its --version fails there)
  // before its cells fail, when no connected worker runs it. `run` sets it
  // to its number of local workers (at most 2): they share one tree.
  std::size_t broken_reports_to_give_up = 2;
  // Cells per assignment at most; a worker's credit may cap it lower.
  std::size_t max_batch = 64;
  // How often to say which versions no connected worker holds.
  std::chrono::milliseconds missing_report_interval{5000};
  // Called between rounds; a non-OK Status ends Run with it (`run` uses it
  // to stop when every local worker has exited).
  std::function<Status()> keep_going;
  // Who may connect (CURVE keys), and the largest frame a peer may send.
  ServerSecurity security;
  // With CURVE, asked each round: a new list of allowed keys (`coordinator`
  // reloads its --allow-workers folder on SIGHUP), or nullopt. Connected
  // peers whose key is not on a new list are cut off.
  std::function<std::optional<std::set<std::string>>()> allowed_keys_update;
  std::size_t max_frame_bytes = kMaxFrameBytes;
  // The most a result may hold per stream (workers stop a cell there); a
  // result over it is refused and its attempt fails with output-limit.
  std::size_t output_limit_bytes = std::size_t{64} << 20;
  // Frames a peer may get rejected before it is cut off: its later frames
  // are ignored unread and whatever it leased goes back to the queue.
  std::size_t max_rejected_frames = 16;
  // Progress lines, metrics; not owned, outlive Run.
  std::vector<CoordinatorObserver*> observers;
};

struct SweepSummary : OutcomeCounts {
  std::size_t cells = 0;
  std::size_t ran_now = 0;  // results stored by this run (the rest were stored before)
  std::map<std::string, std::size_t> by_worker;
  // What was turned away during this run.
  std::size_t rejected_frames = 0;     // dropped after decoding or checking
  std::size_t ignored_frames = 0;      // from peers already cut off
  std::size_t refused_connections = 0;  // CURVE keys not allowed
  std::size_t discarded_results = 0;   // duplicates of stored results
  std::vector<PeerRejections> rejections;
  // Faults met during this run.
  std::size_t workers_lost = 0;     // silent past liveness, or replaced by a new process
  std::size_t late_results = 0;     // stored from a lease no longer current
  std::size_t infra_attempts = 0;   // infrastructure failures recorded, retried or not
  // "worker w2 has 7.2.0 as <sha>, the sweep uses <sha>"
  std::vector<std::string> digest_conflicts;
  std::vector<std::string> layout_conflicts;  // workers whose images lie otherwise
  // Versions given up on: "9.9.9 (w1: --version timed out after 30 s)".
  std::vector<std::string> broken_versions;
  std::size_t broken_cells = 0;  // failed because their version is broken
};

class Coordinator {
 public:
  // Binds the socket and loads which cells the store already holds: a
  // stored outcome counts only while its inputs (Plan::CacheKey, with the
  // version's digest) are the same; other stored cells, and failed ones,
  // are put back in the queue, durably. kInvalidInput when
  // `binary_digests` names a version the plan does not have.
  // REQUIRES: `store` holds `plan` and outlives the coordinator.
  static Result<std::unique_ptr<Coordinator>> Create(CoordinatorOptions options, Plan plan,
                                                     Store* store);
  // The same over a transport and a clock of the caller's (tests: their
  // own transport on a FakeClock). `options.listen` and `security` are
  // not used. REQUIRES: `clock` outlives the coordinator.
  static Result<std::unique_ptr<Coordinator>> CreateWith(CoordinatorOptions options, Plan plan,
                                                         Store* store,
                                                         std::unique_ptr<ServerTransport> transport,
                                                         const Clock* clock);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // The bound endpoint, e.g. tcp://127.0.0.1:41957.
  const std::string& endpoint() const;
  // Cells without an outcome yet; Run returns at once when there are none.
  std::size_t open_cells() const;
  // Rounds until every cell has an outcome (or failed), then Finish.
  Result<SweepSummary> Run();
  // One round: take what the peers sent (waiting up to half a heartbeat),
  // take back what expired or went silent, write and acknowledge, hand out
  // cells, send heartbeats. Run's loop body, for tests that step it.
  Status Round();
  // Writes what is still in flight, tells every worker to shut down, and
  // sums up. REQUIRES: open_cells() == 0.
  Result<SweepSummary> Finish();

 private:
  class Impl;
  explicit Coordinator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_COORDINATOR_H_
