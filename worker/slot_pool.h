// The threads that run a worker's cells: `slots` of them, fed from one
// queue. A finished cell's result waits in the pool until the socket thread
// takes it; wake_fd() becomes readable when one is waiting.
//
// Thread-safety: Add, TakeDone and held are called from the socket thread;
// the slot threads touch only the guarded queue and results.
#ifndef IMGSWEEP_WORKER_SLOT_POOL_H_
#define IMGSWEEP_WORKER_SLOT_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "protocol/status.h"
#include "worker/cell_runner.h"
#include "worker/session.h"

namespace imgsweep {

class SlotPool {
 public:
  // REQUIRES: `executor` outlives the pool. `cpus`: empty, or one per slot,
  // the cpu that slot and so the cells it starts keep to (cpu_budget.h).
  SlotPool(unsigned slots, CellExecutor* executor, std::vector<unsigned> cpus = {});
  // Stops the slots after the cells they are running; queued ones are dropped.
  ~SlotPool();
  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;

  // kIoError when the wake-up descriptor could not be made or a slot could
  // not be pinned to its cpu.
  Status Start();
  void Add(std::vector<Work> work);
  std::vector<CellResult> TakeDone();
  // Cells queued, running, or finished and not yet taken.
  std::size_t held();
  // Cells queued that no slot has started.
  std::size_t waiting();
  unsigned slots() const { return slots_; }
  int wake_fd() const { return wake_fd_; }

 private:
  void Slot();

  const unsigned slots_;
  CellExecutor* const executor_;
  const std::vector<unsigned> cpus_;
  int wake_fd_ = -1;
  std::mutex mu_;
  std::condition_variable work_ready_;
  std::deque<Work> queue_;        // guarded by mu_
  std::vector<CellResult> done_;  // guarded by mu_
  std::size_t running_ = 0;       // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_SLOT_POOL_H_
