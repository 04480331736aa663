#include "coordinator/scheduler.h"

#include <algorithm>

namespace imgsweep {

Scheduler::Scheduler(const Plan* plan) : plan_(plan), queues_(plan->versions().size()) {}

void Scheduler::Enqueue(std::size_t cell) { queues_[plan_->Ref(cell).version].push_back(cell); }

void Scheduler::Requeue(std::size_t cell, const std::string& avoid) {
  queues_[plan_->Ref(cell).version].push_front(cell);
  if (avoid.empty()) {
    avoid_.erase(cell);
  } else {
    avoid_[cell] = avoid;
  }
}

std::vector<std::size_t> Scheduler::Preference(const WorkerEntry& worker) const {
  std::vector<std::size_t> shards;
  for (std::size_t v = 0; v < queues_.size(); ++v) {
    if (!queues_[v].empty() && Holds(worker, v) && worker.last_version != v) shards.push_back(v);
  }
  // The largest first: the longest shards start early.
  std::stable_sort(shards.begin(), shards.end(), [&](std::size_t a, std::size_t b) {
    return queues_[a].size() > queues_[b].size();
  });
  return shards;
}

std::vector<std::size_t> Scheduler::Take(
    WorkerEntry& worker, std::size_t most, const std::function<bool(std::size_t)>& takeable,
    const std::function<bool(const std::string&)>& other_holds) {
  std::vector<std::size_t> taken;
  // The shard it had first, without ranking them all: a worker takes from
  // it many times over, a few cells each time.
  if (worker.last_version && Holds(worker, *worker.last_version)) {
    TakeFrom(*worker.last_version, worker, most, takeable, other_holds, &taken);
    if (!taken.empty()) return taken;
  }
  for (std::size_t shard : Preference(worker)) {
    TakeFrom(shard, worker, most, takeable, other_holds, &taken);
    if (!taken.empty()) {
      worker.last_version = shard;
      break;
    }
  }
  return taken;
}

void Scheduler::TakeFrom(std::size_t shard, const WorkerEntry& worker, std::size_t most,
                         const std::function<bool(std::size_t)>& takeable,
                         const std::function<bool(const std::string&)>& other_holds,
                         std::vector<std::size_t>* taken) {
  std::deque<std::size_t>& queue = queues_[shard];
  const std::string& version = plan_->versions()[shard];
  std::vector<std::size_t> set_aside;
  while (taken->size() < most && !queue.empty()) {
    const std::size_t cell = queue.front();
    queue.pop_front();
    if (!takeable(cell)) continue;
    auto kept = keep_from_.find(cell);
    const CellRef ref = plan_->Ref(cell);
    if (worker.refused_images.contains(plan_->RowOf(ref).image) ||
        (!worker.runs_type.empty() && !worker.runs_type[ref.type]) ||
        (kept != keep_from_.end() && kept->second.contains(worker.host))) {
      set_aside.push_back(cell);
      continue;
    }
    auto avoid = avoid_.find(cell);
    if (avoid != avoid_.end()) {
      if (avoid->second == worker.name && other_holds(version)) {
        set_aside.push_back(cell);
        continue;
      }
      avoid_.erase(avoid);
    }
    taken->push_back(cell);
  }
  queue.insert(queue.begin(), set_aside.begin(), set_aside.end());
}

}  // namespace imgsweep
