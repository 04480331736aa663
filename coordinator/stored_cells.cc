#include "coordinator/stored_cells.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iterator>
#include <random>

#include "protocol/sha256.h"

namespace imgsweep {
namespace {

Status LoadIncarnation(Store* store, StoredCells* out) {
  Result<std::optional<std::string>> stored = store->GetMeta("incarnation");
  if (!stored.ok()) return stored.status();
  if (stored.value()) {
    const std::string& text = *stored.value();
    std::uint64_t before = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), before);
    if (ec != std::errc() || end != text.data() + text.size()) {
      return Status::Corruption("store: meta/incarnation \"" + text + "\" is not a number");
    }
    out->incarnation = before + 1;
  }
  return store->PutMeta("incarnation", std::to_string(out->incarnation));
}

Status LoadSweepId(Store* store, StoredCells* out) {
  Result<std::optional<std::string>> stored = store->GetMeta("sweep_id");
  if (!stored.ok()) return stored.status();
  if (stored.value()) {
    out->sweep_id = *stored.value();
    return Status::Ok();
  }
  std::random_device random;
  char text[33];
  for (std::size_t i = 0; i < 4; ++i) std::snprintf(text + 8 * i, 9, "%08x", random());
  out->sweep_id = text;
  return store->PutMeta("sweep_id", out->sweep_id);
}

// A pin (for `run`, the local binary's) over the one stored by an earlier
// run. Stored cells of a version whose pin is new ran other bytes: they run
// again, through their cache keys.
Status LoadDigests(const Plan& plan, Store* store,
                   const std::map<std::string, std::string>& pins, StoredCells* out) {
  for (const std::string& version : plan.versions()) {
    Result<std::optional<std::string>> digest = store->GetMeta("digest/" + version);
    if (!digest.ok()) return digest.status();
    if (digest.value()) out->digests[version] = *digest.value();
  }
  for (const auto& [version, digest] : pins) {
    if (std::find(plan.versions().begin(), plan.versions().end(), version) ==
        plan.versions().end()) {
      return Status::InvalidInput("--binary-digest names " + version +
                                  ", which is not a version of this sweep");
    }
    auto was = out->digests.find(version);
    if (was != out->digests.end() && was->second != digest) {
      spdlog::info("coordinator: {} is now the binary with sha256 {} (was {}): its stored "
                   "cells run again",
                   version, digest, was->second);
    }
    out->digests[version] = digest;
  }
  return Status::Ok();
}

// Whether the stored outcome still stands for the plan, digests and layouts.
// With kAsIs, an image's layout is the one its stored outcomes ran on.
bool Current(const Plan& plan, const CellRef& ref, const CellRecord& record, bool force,
             ImageLayout mode, StoredCells* out) {
  if (record.state != CellState::kDone || record.attempts.empty() || force) return false;
  const Attempt& last = record.attempts.back();
  // A "since" moved: an unsupported outcome whose release now runs the
  // type, or a run whose release no longer does.
  const bool supported = plan.types()[ref.type].Supports(plan.versions()[ref.version]);
  if ((last.outcome == Outcome::kUnsupported) == supported) return false;
  // Stores from before digests were kept: the cells say which bytes ran.
  auto digest = out->digests.try_emplace(plan.versions()[ref.version], last.binary_sha256).first;
  std::string layout(kDenseLayout);
  if (mode == ImageLayout::kAsIs) {
    if (last.image_layout.empty()) return false;  // from before layouts were kept
    layout = out->layouts.try_emplace(plan.ImageOf(ref).path, last.image_layout)
                 .first->second;
  }
  const std::string inputs = record.inputs.empty()
                                 ? plan.CacheKey(ref, last.binary_sha256, last.image_layout)
                                 : record.inputs;
  return inputs == plan.CacheKey(ref, digest->second, layout);
}

// The outcome of cell `index`, whose release is older than its output
// type's "since": recorded by the coordinator, with nothing run (no start
// time, no duration), after `record`'s attempts; it stands as stored.
CellWrite Unsupported(const Plan& plan, std::size_t index, CellRecord record, StoredCells* out) {
  static const std::string kEmpty = Sha256Hex("");
  const CellRef ref = plan.Ref(index);
  const std::string& version = plan.versions()[ref.version];
  const auto digest = out->digests.find(version);
  const std::string binary = digest == out->digests.end() ? std::string() : digest->second;
  Attempt& a = record.attempts.emplace_back();
  a.number = static_cast<std::uint32_t>(record.attempts.size());
  a.outcome = Outcome::kUnsupported;
  a.stdout_sha256 = kEmpty;
  a.stderr_sha256 = kEmpty;
  a.worker = "coordinator";
  a.binary_sha256 = binary;
  a.image_layout = std::string(kDenseLayout);
  record.state = CellState::kDone;
  record.inputs = plan.CacheKey(ref, binary, kDenseLayout);
  out->reused[index] = true;
  out->reused_counts.Add(record);
  out->slots[index].attempts = static_cast<std::uint32_t>(record.attempts.size());
  return CellWrite{plan.Key(ref), std::move(record), {Blob{kEmpty, ""}}};
}

// Version -> the binary digest an earlier start stored.
Result<std::map<std::string, std::string>> StoredDigests(const Plan& plan, Store* store) {
  std::map<std::string, std::string> stored;
  for (const std::string& version : plan.versions()) {
    Result<std::optional<std::string>> digest = store->GetMeta("digest/" + version);
    if (!digest.ok()) return digest.status();
    if (digest.value()) stored[version] = *digest.value();
  }
  return stored;
}

void LogStart(const Plan& plan, const StoredCells& out, std::size_t unsupported, bool force) {
  const std::size_t reused = std::count(out.reused.begin(), out.reused.end(), true);
  if (unsupported > 0) {
    spdlog::info("coordinator: {} cells recorded as unsupported, without a run: their release is "
                 "older than their output type's \"since\"",
                 unsupported);
  }
  spdlog::info("coordinator: {} cells planned, {} already stored with the same inputs{}",
               plan.cell_count(), reused - unsupported,
               out.reopened == 0 ? std::string()
                                 : ", " + std::to_string(out.reopened) +
                                       " stored with other inputs run again" +
                                       (force ? " (--force)" : ""));
}

}  // namespace

Result<StoredCells> LoadStoredCells(const Plan& plan, Store* store,
                                    const std::map<std::string, std::string>& binary_digests,
                                    bool force, ImageLayout image_layout) {
  StoredCells out;
  Status st = LoadIncarnation(store, &out);
  if (!st.ok()) return st;
  st = LoadSweepId(store, &out);
  if (!st.ok()) return st;
  st = LoadDigests(plan, store, binary_digests, &out);
  if (!st.ok()) return st;
  Result<std::map<std::string, std::string>> stored_digests = StoredDigests(plan, store);
  if (!stored_digests.ok()) return stored_digests.status();

  out.slots.resize(plan.cell_count());
  out.reused.assign(plan.cell_count(), false);
  std::vector<CellWrite> reopened;
  std::vector<CellWrite> unsupported;
  std::vector<bool> stored(plan.cell_count(), false);
  const auto supported = [&plan](std::size_t index) {
    const CellRef ref = plan.Ref(index);
    return plan.types()[ref.type].Supports(plan.versions()[ref.version]);
  };
  st = store->ForEachCell([&](std::string_view key, const CellRecord& record) {
    Result<std::size_t> index = plan.IndexOfKey(key);
    if (!index.ok()) return true;  // a cell of no concern to this plan
    stored[index.value()] = true;
    StoredCells::Slot& slot = out.slots[index.value()];
    slot.attempts = static_cast<std::uint32_t>(record.attempts.size());
    slot.round_start = record.round_start;
    if (record.state == CellState::kPending && !supported(index.value())) {
      unsupported.push_back(Unsupported(plan, index.value(), record, &out));
      return true;
    }
    if (record.state == CellState::kPending) {
      for (std::size_t i = record.round_start; i < record.attempts.size(); ++i) {
        const Attempt& attempt = record.attempts[i];
        if (attempt.outcome != Outcome::kInfraFailure) out.held[index.value()].insert(attempt.host);
      }
      return true;
    }
    if (Current(plan, plan.Ref(index.value()), record, force, image_layout, &out)) {
      out.reused[index.value()] = true;
      out.reused_counts.Add(record);
      return true;
    }
    if (!supported(index.value())) {
      unsupported.push_back(Unsupported(plan, index.value(), record, &out));
      return true;
    }
    slot.round_start = slot.attempts;  // a new round: the attempt limit counts from here
    if (record.state == CellState::kDone) reopened.push_back(Reopened(key, record));
    return true;
  });
  if (!st.ok()) return st;
  for (std::size_t i = 0; i < plan.cell_count(); ++i) {
    if (!stored[i] && !supported(i)) unsupported.push_back(Unsupported(plan, i, {}, &out));
  }
  reopened.insert(reopened.end(), std::make_move_iterator(unsupported.begin()),
                  std::make_move_iterator(unsupported.end()));
  if (!reopened.empty()) {
    st = store->Commit(reopened);
    if (!st.ok()) return st;
  }
  st = store->ForEachLease([&](const LeaseRecord& lease) {
    out.leases.push_back(lease);
    return true;
  });
  if (!st.ok()) return st;
  for (const auto& [version, digest] : out.digests) {  // only what is new: each write is synced
    auto was = stored_digests.value().find(version);
    if (was != stored_digests.value().end() && was->second == digest) continue;
    st = store->PutMeta("digest/" + version, digest);
    if (!st.ok()) return st;
  }
  out.reopened = reopened.size() - unsupported.size();
  LogStart(plan, out, unsupported.size(), force);
  return out;
}

}  // namespace imgsweep
