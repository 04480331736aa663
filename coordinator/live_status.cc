#include "coordinator/live_status.h"

#include <map>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

namespace imgsweep {
namespace {

using nlohmann::ordered_json;

struct ShardCells {
  std::size_t done = 0, failed = 0, pending = 0, leased = 0;
};

// From the recorder's counts and the cells in flight: a status answer costs
// the versions and the leases, not the plan (a million cells, asked every
// few seconds while they run).
std::vector<ShardCells> CountShards(const LiveView& view) {
  std::size_t per_version = 0;  // every version runs every type's rows
  for (std::size_t t = 0; t < view.plan.types().size(); ++t) per_version += view.plan.rows(t).size();
  std::vector<ShardCells> shards(view.plan.versions().size());
  view.leases.ForEachLeasedCell([&view, &shards](std::size_t cell) {
    if (!view.recorder.slot(cell).closed) ++shards[view.plan.Ref(cell).version].leased;
  });
  for (std::size_t v = 0; v < shards.size(); ++v) {
    ShardCells& c = shards[v];
    c.done = view.recorder.done_in(v);
    c.failed = view.recorder.failed_in(v);
    c.pending = per_version - c.done - c.failed - c.leased;
  }
  return shards;
}

// The plan's output types with open cells that no connected worker runs.
std::vector<std::size_t> OpenTypesNoWorkerRuns(const LiveView& view) {
  std::vector<std::size_t> types;
  if (view.peers.workers().empty()) return types;
  for (std::size_t t = 0; t < view.plan.types().size(); ++t) {
    if (view.recorder.open_in_type(t) == 0) continue;
    bool run = false;
    for (const auto& [peer, w] : view.peers.workers()) {
      run = run || w.runs_type.empty() || w.runs_type[t];
    }
    if (!run) types.push_back(t);
  }
  return types;
}

ordered_json Workers(const LiveView& view) {
  const std::map<std::string, std::size_t> in_flight = view.leases.CellsByPeer();
  ordered_json workers = ordered_json::array();
  for (const auto& [peer, w] : view.peers.workers()) {
    ordered_json versions = ordered_json::array();
    for (const auto& [name, info] : w.versions) versions.push_back(name);
    auto done = view.recorder.by_worker().find(w.name);
    auto held = in_flight.find(peer);
    workers.push_back(
        {{"name", w.name},
         {"host", w.host},
         {"slots", w.slots},
         {"versions", versions},
         {"in_flight", held == in_flight.end() ? 0 : held->second},
         {"done", done == view.recorder.by_worker().end() ? 0 : done->second},
         {"last_heard_ms",
          std::chrono::duration_cast<std::chrono::milliseconds>(view.now - w.last_seen).count()}});
  }
  return workers;
}

}  // namespace

std::string LiveStatusJson(const LiveView& view) {
  const Progress& p = view.progress;
  ordered_json j;
  j["sweep_id"] = view.sweep_id;
  j["cells"] = p.cells;
  j["closed"] = p.closed;
  j["failed"] = p.failed;
  j["in_flight"] = p.leased;
  j["ran_now"] = p.ran_now;
  j["elapsed_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(p.elapsed).count();
  j["workers"] = Workers(view);
  const std::set<std::string> held = view.peers.HeldVersions();
  const std::vector<ShardCells> shards = CountShards(view);
  ordered_json shard_list = ordered_json::array();
  ordered_json missing = ordered_json::array();
  for (std::size_t v = 0; v < shards.size(); ++v) {
    const std::string& name = view.plan.versions()[v];
    const ShardCells& c = shards[v];
    shard_list.push_back({{"version", name},
                          {"done", c.done},
                          {"failed", c.failed},
                          {"pending", c.pending},
                          {"in_flight", c.leased}});
    if (c.pending + c.leased > 0 && !held.contains(name)) missing.push_back(name);
  }
  j["shards"] = shard_list;
  j["versions_without_worker"] = missing;
  ordered_json types = ordered_json::array();
  for (std::size_t t : OpenTypesNoWorkerRuns(view)) types.push_back(view.plan.types()[t].name);
  j["types_without_worker"] = types;
  j["broken_versions"] = view.broken_versions;
  j["layout_conflicts"] = view.layout_conflicts;
  // Every string from the wire was checked at the boundary; a store made
  // before that may still hold other bytes, which must not end the sweep.
  return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string VersionsWithoutWorker(const LiveView& view) {
  const std::set<std::string> held = view.peers.HeldVersions();
  const std::vector<ShardCells> shards = CountShards(view);
  std::string missing;
  for (std::size_t v = 0; v < shards.size(); ++v) {
    const std::string& name = view.plan.versions()[v];
    if (shards[v].pending == 0 || held.contains(name)) continue;
    missing += (missing.empty() ? "" : ", ") + name + " (" + std::to_string(shards[v].pending) +
               " cells)";
  }
  return missing;
}

std::string TypesWithoutWorker(const LiveView& view) {
  std::string missing;
  for (std::size_t t : OpenTypesNoWorkerRuns(view)) {
    missing += (missing.empty() ? "" : ", ") + view.plan.types()[t].name + " (" +
               std::to_string(view.recorder.open_in_type(t)) + " cells)";
  }
  return missing;
}

}  // namespace imgsweep
