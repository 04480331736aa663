// Finished cells a worker holds back so that several go to the coordinator
// in one frame, with one credit. Each frame costs both ends a wake-up, a
// round and an acknowledgement, and the coordinator a synced commit; a
// worker whose cells take a few milliseconds would otherwise send one per
// cell (docs/BENCHMARKS.md, "Where the time goes, 2026-12-03", third pass).
// The linger is long beside a real cell (tens of ms), so that those go
// several to a frame too (eighth pass); a result reaches the store at most
// that much later.
//
// They are due as soon as a slot could run out of cells (fewer cells wait
// than there are slots: only the credit they carry brings the next ones),
// when a frame's worth is here (kResultsPerFrame), when the first has
// waited kResultsLinger, or whenever holding is not allowed (not welcomed,
// or draining).
//
// Thread-safety: one thread (the worker's driver).
#ifndef IMGSWEEP_WORKER_HELD_RESULTS_H_
#define IMGSWEEP_WORKER_HELD_RESULTS_H_

#include <chrono>
#include <cstddef>
#include <vector>

#include "protocol/clock.h"
#include "protocol/messages.h"

namespace imgsweep {

class HeldResults {
 public:
  static constexpr std::chrono::milliseconds kResultsLinger{200};

  // Holds `done`, finished at `now`.
  void Add(std::vector<CellResult> done, Clock::TimePoint now);
  std::size_t size() const { return results_.size(); }
  // Whether they should go at `now`, with `waiting` cells queued for
  // `slots` slots.
  bool Due(Clock::TimePoint now, std::size_t waiting, unsigned slots, bool hold_allowed) const;
  // How long a driver may wait for other events before Due turns true by
  // itself; milliseconds::max() when nothing is held.
  std::chrono::milliseconds Until(Clock::TimePoint now) const;
  // Every held result, oldest first; holds none afterwards.
  std::vector<CellResult> Take();

 private:
  std::vector<CellResult> results_;
  Clock::TimePoint since_;  // when the oldest held one finished
};

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_HELD_RESULTS_H_
