// The coordinator: hands the plan's cells to workers and stores what they
// report. Workers say what they hold (hello); each grants credit for the
// cells it can take; the coordinator answers with assignments, a batch of
// cells of one shard (one version) under a lease. Each result is stored and
// only then acknowledged. Run returns when every cell has an outcome (or has
// failed every allowed attempt), after telling every worker to shut down.
//
// Thread-safety: Run is called once, from one thread.
#ifndef IMGSWEEP_COORDINATOR_COORDINATOR_H_
#define IMGSWEEP_COORDINATOR_COORDINATOR_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "coordinator/plan.h"
#include "protocol/status.h"
#include "storage/store.h"

namespace imgsweep {

struct CoordinatorOptions {
  std::string listen = "tcp://127.0.0.1:*";
  std::string sweep_id = "sweep";
  std::chrono::milliseconds heartbeat{1000};
  // Infrastructure failures of one cell before it is failed for good.
  unsigned max_attempts = 3;
  // Cells per assignment at most; a worker's credit may cap it lower.
  std::size_t max_batch = 64;
  // How often to say which versions no connected worker holds.
  std::chrono::milliseconds missing_report_interval{5000};
  // Called between rounds; a non-OK Status ends Run with it (`run` uses it
  // to stop when every local worker has exited).
  std::function<Status()> keep_going;
};

struct SweepSummary {
  std::size_t cells = 0;
  std::size_t exited_zero = 0;
  std::size_t exited_nonzero = 0;
  std::size_t signaled = 0;
  std::size_t timeout = 0;
  std::size_t failed = 0;
  std::size_t ran_now = 0;  // results stored by this run (the rest were stored before)
  std::map<std::string, std::size_t> by_worker;
};

// Counts the outcomes the store holds for the plan's cells.
Result<SweepSummary> Summarize(const Plan& plan, Store& store);

class Coordinator {
 public:
  // Binds the socket and loads which cells the store already holds.
  // REQUIRES: `store` holds `plan` and outlives the coordinator.
  static Result<std::unique_ptr<Coordinator>> Create(CoordinatorOptions options, Plan plan,
                                                     Store* store);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // The bound endpoint, e.g. tcp://127.0.0.1:41957.
  const std::string& endpoint() const;
  // Cells without an outcome yet; Run returns at once when there are none.
  std::size_t open_cells() const;
  Result<SweepSummary> Run();

 private:
  class Impl;
  explicit Coordinator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_COORDINATOR_H_
