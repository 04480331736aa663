#include "sweep/sweep_state.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include <nlohmann/json.hpp>


namespace imgsweep {
namespace {

// The number of cells named in a list before "and N more".
constexpr std::size_t kListedCells = 50;

void Count(const CellRecord* record, ShardCounts* counts) {
  ++counts->cells;
  if (record == nullptr) {
    ++counts->pending;
    return;
  }
  for (const Attempt& a : record->attempts) {
    if (a.outcome == Outcome::kInfraFailure) ++counts->infra_attempts;
  }
  if (!counts->Add(*record)) ++counts->pending;
}

bool TimedOut(const CellRecord& record) {
  return record.state == CellState::kDone && !record.attempts.empty() &&
         record.attempts.back().outcome == Outcome::kTimeout;
}

std::string Row(const ShardCounts& c, const std::string& name) {
  char line[256];
  std::snprintf(line, sizeof line, "  %-12s %6zu %6zu %8zu %8zu %8zu %8zu %7zu %8zu\n",
                name.c_str(), c.cells, c.exited_zero, c.exited_nonzero, c.signaled, c.timeout,
                c.failed, c.pending, c.infra_attempts);
  return line;
}

std::string AttemptText(const Attempt& a) {
  std::string text = "#" + std::to_string(a.number) + " ";
  switch (a.outcome) {
    case Outcome::kExited:
      text += "exited " + std::to_string(a.exit_code);
      break;
    case Outcome::kSignaled:
      text += "signal " + std::to_string(a.signal);
      break;
    case Outcome::kTimeout:
      text += "timeout";
      break;
    case Outcome::kUnsupported:
      text += "unsupported";
      break;
    case Outcome::kInfraFailure:
      text += a.failure.empty() ? std::string(FailureKindName(a.failure_kind)) : a.failure;
      break;
  }
  if (!a.worker.empty()) text += " (" + a.worker + ")";
  return text;
}

}  // namespace

Result<Plan> LoadPlan(Store& store) {
  Result<std::optional<std::string>> text = store.GetMeta("plan");
  if (!text.ok()) return text.status();
  if (!text.value()) return Status::NotFound("the store holds no sweep plan");
  return Plan::FromJson(*text.value());
}

Result<SweepState> ReadSweepState(Store& store) {
  Result<Plan> plan = LoadPlan(store);
  if (!plan.ok()) return plan.status();
  SweepState state{std::move(plan).value(), {}, {}, {}, {}};
  const Plan& p = state.plan;
  std::vector<std::optional<CellRecord>> records(p.cell_count());
  Status st = store.ForEachCell([&](std::string_view key, const CellRecord& record) {
    Result<std::size_t> index = p.IndexOfKey(key);
    if (index.ok()) records[index.value()] = record;
    return true;
  });
  if (!st.ok()) return st;
  state.total.version = "all";
  for (const std::string& v : p.versions()) state.shards.emplace_back().version = v;
  state.cells.reserve(p.cell_count());
  for (std::size_t i = 0; i < p.cell_count(); ++i) {
    const CellRecord* record = records[i] ? &*records[i] : nullptr;
    Count(record, &state.shards[p.Ref(i).version]);
    Count(record, &state.total);
    CellStatus cell{p.Key(p.Ref(i)), CellStateName(CellState::kPending), {}};
    if (record != nullptr) {
      cell.state = CellStateName(record->state);
      cell.record = *record;
      Result<std::vector<AuditFinding>> findings = FindingsOf(store, cell.key, *record);
      if (!findings.ok()) return findings.status();
      for (AuditFinding& f : findings.value()) state.findings.push_back(std::move(f));
    }
    state.cells.push_back(std::move(cell));
  }
  return state;
}

namespace {

// "imgsweep: N cells (T output types x V versions x I images)".
std::string Headline(const SweepState& state) {
  const Plan& plan = state.plan;
  // A type with axes or formats may have other rows than images: no product then.
  bool dense = true;
  for (std::size_t t = 0; t < plan.types().size(); ++t) {
    dense = dense && plan.rows(t).size() == plan.images().size();
  }
  return "imgsweep: " + std::to_string(state.total.cells) + " cells (" +
         std::to_string(plan.types().size()) + " output types" + (dense ? " x " : ", ") +
         std::to_string(plan.versions().size()) + " versions" + (dense ? " x " : ", ") +
         std::to_string(plan.images().size()) + " images" +
         (dense ? "" : ", with their axes and formats") + ")\n";
}

}  // namespace

std::string FormatSweepState(const SweepState& state, bool every_cell) {
  std::string out = Headline(state);
  char header[256];
  std::snprintf(header, sizeof header, "  %-12s %6s %6s %8s %8s %8s %8s %7s %8s\n", "shard",
                "cells", "exit 0", "exit !0", "signaled", "timeout", "failed", "pending",
                "infra");
  out += header;
  for (const ShardCounts& shard : state.shards) out += Row(shard, shard.version);
  out += Row(state.total, "all");
  if (state.total.unsupported > 0) {
    out += "  " + std::to_string(state.total.unsupported) +
           " of the done cells are unsupported: their release is older than their output "
           "type's \"since\", so none ran\n";
  }

  std::size_t listed = 0;
  std::string failed, timed_out;
  std::size_t failed_count = 0, timeout_count = 0;
  for (const CellStatus& cell : state.cells) {
    if (cell.record.state == CellState::kFailed) {
      ++failed_count;
      if (listed++ >= kListedCells) continue;
      failed += "  " + cell.key + ":";
      for (std::size_t i = cell.record.round_start; i < cell.record.attempts.size(); ++i) {
        failed += (i == cell.record.round_start ? " " : "; ") +
                  AttemptText(cell.record.attempts[i]);
      }
      failed += "\n";
    } else if (TimedOut(cell.record)) {
      ++timeout_count;
      if (listed++ >= kListedCells) continue;
      timed_out += "  " + cell.key + ": " + AttemptText(cell.record.attempts.back()) + "\n";
    }
  }
  if (failed_count > 0) {
    out += "failed on every allowed attempt (" + std::to_string(failed_count) + "):\n" + failed;
  }
  if (timeout_count > 0) {
    out += "timed out (" + std::to_string(timeout_count) + "):\n" + timed_out;
  }
  if (listed > kListedCells) {
    out += "  ... and " + std::to_string(listed - kListedCells) + " more (--cells lists all)\n";
  }
  if (!state.findings.empty()) {
    out += "audit findings: hosts that printed differently (" +
           std::to_string(state.findings.size()) + "):\n";
    for (const AuditFinding& f : state.findings) {
      out += "  " + f.key + ": " + f.host_a + " / " + f.host_b + ", " + f.difference + "; " +
             f.resolution + "\n";
    }
  }
  if (failed_count + timeout_count > 0) {
    out += "`imgsweep rerun --failed` runs these " + std::to_string(failed_count + timeout_count) +
           " cells again.\n";
  }
  if (every_cell) {
    for (const CellStatus& cell : state.cells) {
      out += cell.key + " " + cell.state;
      const std::vector<Attempt>& attempts = cell.record.attempts;
      if (!attempts.empty() && cell.record.state == CellState::kDone) {
        out += std::string(" ") + OutcomeName(attempts.back().outcome);
      }
      out += " attempts=" + std::to_string(attempts.size());
      std::string kinds;
      for (const Attempt& a : attempts) {
        if (a.outcome != Outcome::kInfraFailure) continue;
        kinds += (kinds.empty() ? "" : ",") + std::string(FailureKindName(a.failure_kind));
      }
      if (!kinds.empty()) out += " " + kinds;
      out += "\n";
    }
  }
  return out;
}

namespace {

nlohmann::json CountsJson(const ShardCounts& c) {
  return {{"cells", c.cells},         {"exited_zero", c.exited_zero},
          {"exited_nonzero", c.exited_nonzero}, {"signaled", c.signaled},
          {"timeout", c.timeout},     {"failed", c.failed},
          {"pending", c.pending},     {"infra_attempts", c.infra_attempts},
          {"unsupported", c.unsupported}};
}

nlohmann::json CellJson(const CellStatus& cell) {
  nlohmann::json attempts = nlohmann::json::array();
  for (const Attempt& a : cell.record.attempts) attempts.push_back(AttemptText(a));
  nlohmann::json j = {{"key", cell.key}, {"state", cell.state}, {"attempts", attempts}};
  if (!cell.record.attempts.empty() && cell.record.state == CellState::kDone) {
    j["outcome"] = OutcomeName(cell.record.attempts.back().outcome);
  }
  return j;
}

}  // namespace

std::string SweepStateJson(const SweepState& state, bool every_cell) {
  nlohmann::json types = nlohmann::json::array();
  for (const OutputType& t : state.plan.types()) types.push_back(t.name);
  nlohmann::json shards = nlohmann::json::array();
  for (const ShardCounts& shard : state.shards) {
    nlohmann::json j = CountsJson(shard);
    j["version"] = shard.version;
    shards.push_back(std::move(j));
  }
  nlohmann::json failed = nlohmann::json::array(), timed_out = nlohmann::json::array(),
                 cells = nlohmann::json::array();
  for (const CellStatus& cell : state.cells) {
    if (cell.record.state == CellState::kFailed) failed.push_back(CellJson(cell));
    if (cell.record.state != CellState::kFailed && TimedOut(cell.record)) {
      timed_out.push_back(CellJson(cell));
    }
    if (every_cell) cells.push_back(CellJson(cell));
  }
  nlohmann::json findings = nlohmann::json::array();
  for (const AuditFinding& f : state.findings) {
    findings.push_back({{"key", f.key},
                        {"host_a", f.host_a},
                        {"host_b", f.host_b},
                        {"difference", f.difference},
                        {"resolution", f.resolution}});
  }
  nlohmann::json out = {{"types", types},
                        {"versions", state.plan.versions()},
                        {"images", state.plan.images().size()},
                        {"total", CountsJson(state.total)},
                        {"shards", shards},
                        {"failed", failed},
                        {"timed_out", timed_out},
                        {"findings", findings}};
  if (every_cell) out["cells"] = cells;
  return out.dump(2) + "\n";
}

namespace {

// "2 versions added: a, b" when `names` is not empty.
void Describe(const std::vector<std::string>& names, const char* what, const char* how,
              std::string* out) {
  if (names.empty()) return;
  std::string list;
  for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
  *out += (out->empty() ? "" : "; ") + std::to_string(names.size()) + " " + what +
          (names.size() == 1 ? " " : "s ") + how + ": " + list;
}

std::string PlanChanges(const Plan& before, const Plan& after) {
  auto missing_from = [](const std::vector<std::string>& a, const std::vector<std::string>& b) {
    std::vector<std::string> out;
    for (const std::string& x : a) {
      if (std::find(b.begin(), b.end(), x) == b.end()) out.push_back(x);
    }
    return out;
  };
  std::string changes;
  Describe(missing_from(after.versions(), before.versions()), "version", "added", &changes);
  Describe(missing_from(before.versions(), after.versions()), "version", "dropped", &changes);
  std::vector<std::string> old_ids, new_ids, changed;
  for (const PlannedImage& i : before.images()) old_ids.push_back(i.id);
  for (const PlannedImage& i : after.images()) {
    new_ids.push_back(i.id);
    for (const PlannedImage& o : before.images()) {
      if (o.id == i.id && !(o == i)) changed.push_back(i.id);
    }
  }
  Describe(missing_from(new_ids, old_ids), "image", "added", &changes);
  Describe(missing_from(old_ids, new_ids), "image", "dropped", &changes);
  Describe(changed, "image", "changed", &changes);
  if (before.timeout() != after.timeout()) {
    changes += (changes.empty() ? "" : "; ") + std::string("timeout ") +
               std::to_string(before.timeout().count()) + " ms -> " +
               std::to_string(after.timeout().count()) + " ms";
  }
  if (changes.empty()) changes = "the output types or image order changed";
  return changes;
}

}  // namespace

Result<std::string> AdoptPlan(Store& store, const Plan& plan) {
  Result<std::optional<std::string>> stored = store.GetMeta("plan");
  if (!stored.ok()) return stored.status();
  const std::string wanted = plan.ToJson();
  if (stored.value() && *stored.value() == wanted) return std::string();
  std::string changes;
  if (stored.value()) {
    Result<Plan> before = Plan::FromJson(*stored.value());
    if (!before.ok()) return before.status();
    changes = PlanChanges(before.value(), plan);
    std::vector<CellWrite> keyed;
    Status st = store.ForEachCell([&](std::string_view key, const CellRecord& record) {
      Result<std::size_t> index = before.value().IndexOfKey(key);
      if (!index.ok() || record.state != CellState::kDone || !record.inputs.empty() ||
          record.attempts.empty()) {
        return true;
      }
      CellWrite& write = keyed.emplace_back();
      write.key = std::string(key);
      write.record = record;
      write.record.inputs = before.value().CacheKey(before.value().Ref(index.value()),
                                                    record.attempts.back().binary_sha256,
                                                    record.attempts.back().image_layout);
      return true;
    });
    if (!st.ok()) return st;
    if (!keyed.empty()) {
      st = store.Commit(keyed);
      if (!st.ok()) return st;
    }
  }
  Status st = store.PutMeta("plan", wanted);
  if (!st.ok()) return st;
  return changes;
}

Result<std::size_t> ReopenCells(Store& store, const Plan& plan, const RerunSelection& selection) {
  if (!selection.failed && selection.shards.empty() && selection.images.empty()) {
    return Status::InvalidInput("rerun: say which cells: --failed, --shard VERSION or --image ID");
  }
  const std::vector<std::string>& versions = plan.versions();
  for (const std::string& v : selection.shards) {
    if (std::find(versions.begin(), versions.end(), v) == versions.end()) {
      std::string known;
      for (const std::string& k : versions) known += (known.empty() ? "" : ", ") + k;
      return Status::InvalidInput("rerun --shard " + v + ": not a version of this sweep (it has " +
                                  known + ")");
    }
  }
  // An image id reopens all its rows, a row id ("cirros__qcow2") that row.
  std::set<std::string, std::less<>> ids;
  for (const PlannedImage& image : plan.images()) ids.insert(image.id);
  for (std::size_t t = 0; t < plan.types().size(); ++t) {
    for (const PlannedRow& row : plan.rows(t)) ids.insert(row.id);
  }
  for (const std::string& id : selection.images) {
    if (!ids.contains(id)) {
      return Status::InvalidInput("rerun --image " + id + ": not an image or row of this sweep");
    }
  }
  std::vector<CellWrite> writes;
  Status st = store.ForEachCell([&](std::string_view key, const CellRecord& record) {
    Result<std::size_t> index = plan.IndexOfKey(key);
    if (!index.ok() || record.state == CellState::kPending) return true;
    const CellRef ref = plan.Ref(index.value());
    const bool chosen =
        (selection.failed && (record.state == CellState::kFailed || TimedOut(record))) ||
        std::find(selection.shards.begin(), selection.shards.end(), versions[ref.version]) !=
            selection.shards.end() ||
        std::find(selection.images.begin(), selection.images.end(), plan.ImageOf(ref).id) !=
            selection.images.end() ||
        std::find(selection.images.begin(), selection.images.end(), plan.RowOf(ref).id) !=
            selection.images.end();
    if (!chosen) return true;
    writes.push_back(Reopened(key, record));
    return true;
  });
  if (!st.ok()) return st;
  if (!writes.empty()) {
    st = store.Commit(writes);
    if (!st.ok()) return st;
  }
  return writes.size();
}

}  // namespace imgsweep
