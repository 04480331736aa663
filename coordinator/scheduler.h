// Which pending cells go to which worker. Pending cells wait in one queue
// per version (a shard). A worker keeps to the shard it had while that
// shard has cells, else takes the one it holds with the most; one
// assignment is cells of one shard.
//
// A cell that failed on a worker for a reason of that host (its image or
// binary is missing or differs, the process could not start) is not given
// back to that worker while another connected worker holds its version: the
// retry goes elsewhere when it can. A worker never gets a cell of an image
// it holds laid out otherwise than the sweep's (WorkerEntry::refused_images),
// nor one of an output type its command table lacks (WorkerEntry::runs_type).
//
// Thread-safety: the coordinator's thread only.
#ifndef IMGSWEEP_COORDINATOR_SCHEDULER_H_
#define IMGSWEEP_COORDINATOR_SCHEDULER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/peer_registry.h"
#include "sweep/plan.h"

namespace imgsweep {

class Scheduler {
 public:
  explicit Scheduler(const Plan* plan);

  // At the back of its shard's queue.
  void Enqueue(std::size_t cell);
  // At the front: it was handed out before. `avoid` (a worker name, or
  // empty) should not get it again while another worker can take it.
  void Requeue(std::size_t cell, const std::string& avoid);
  // From now on no worker on one of `hosts` gets the cell, however long it
  // waits (the audit wants another host's output).
  void KeepFrom(std::size_t cell, std::set<std::string> hosts) { keep_from_[cell] = std::move(hosts); }

  // Up to `most` cells of one shard `worker` holds, and sets the worker's
  // last shard. `takeable` is false for queued cells that were closed or
  // leased since; they leave the queue. `other_holds(version)` says
  // whether another connected worker holds the version.
  std::vector<std::size_t> Take(WorkerEntry& worker, std::size_t most,
                                const std::function<bool(std::size_t cell)>& takeable,
                                const std::function<bool(const std::string& version)>& other_holds);

  // Cells queued for `version`, counting ones closed since they were queued.
  std::size_t queued(std::size_t version) const { return queues_[version].size(); }
  std::size_t shards() const { return queues_.size(); }

 private:
  // The worker's shards with cells, the largest first, other than its last.
  std::vector<std::size_t> Preference(const WorkerEntry& worker) const;
  // Moves up to `most` cells of the shard that `worker` may take into `taken`.
  void TakeFrom(std::size_t shard, const WorkerEntry& worker, std::size_t most,
                const std::function<bool(std::size_t cell)>& takeable,
                const std::function<bool(const std::string& version)>& other_holds,
                std::vector<std::size_t>* taken);
  static bool Holds(const WorkerEntry& worker, std::size_t version) {
    return version < worker.holds_version.size() && worker.holds_version[version];
  }

  const Plan* plan_;
  std::vector<std::deque<std::size_t>> queues_;  // by version
  std::unordered_map<std::size_t, std::string> avoid_;  // cell -> the worker it failed on
  std::unordered_map<std::size_t, std::set<std::string>> keep_from_;  // cell -> hosts
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_SCHEDULER_H_
