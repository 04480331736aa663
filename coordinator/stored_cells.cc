#include "coordinator/stored_cells.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <random>

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
  // Stores from before digests were kept: the cells say which bytes ran.
  auto digest = out->digests.try_emplace(plan.versions()[ref.version], last.binary_sha256).first;
  std::string layout(kDenseLayout);
  if (mode == ImageLayout::kAsIs) {
    if (last.image_layout.empty()) return false;  // from before layouts were kept
    layout = out->layouts.try_emplace(plan.images()[ref.image].path, last.image_layout)
                 .first->second;
  }
  const std::string inputs = record.inputs.empty()
                                 ? plan.CacheKey(ref, last.binary_sha256, last.image_layout)
                                 : record.inputs;
  return inputs == plan.CacheKey(ref, digest->second, layout);
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
  std::map<std::string, std::string> stored_digests;
  for (const std::string& version : plan.versions()) {
    Result<std::optional<std::string>> digest = store->GetMeta("digest/" + version);
    if (!digest.ok()) return digest.status();
    if (digest.value()) stored_digests[version] = *digest.value();
  }

  out.slots.resize(plan.cell_count());
  out.reused.assign(plan.cell_count(), false);
  std::vector<CellWrite> reopened;
  st = store->ForEachCell([&](std::string_view key, const CellRecord& record) {
    Result<std::size_t> index = plan.IndexOfKey(key);
    if (!index.ok()) return true;  // a cell of no concern to this plan
    StoredCells::Slot& slot = out.slots[index.value()];
    slot.attempts = static_cast<std::uint32_t>(record.attempts.size());
    slot.round_start = record.round_start;
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
    slot.round_start = slot.attempts;  // a new round: the attempt limit counts from here
    if (record.state == CellState::kDone) reopened.push_back(Reopened(key, record));
    return true;
  });
  if (!st.ok()) return st;
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
    auto was = stored_digests.find(version);
    if (was != stored_digests.end() && was->second == digest) continue;
    st = store->PutMeta("digest/" + version, digest);
    if (!st.ok()) return st;
  }
  out.reopened = reopened.size();
  const std::size_t reused = std::count(out.reused.begin(), out.reused.end(), true);
  spdlog::info("coordinator: {} cells planned, {} already stored with the same inputs{}",
               plan.cell_count(), reused,
               reopened.empty() ? std::string()
                                : ", " + std::to_string(reopened.size()) +
                                      " stored with other inputs run again" +
                                      (force ? " (--force)" : ""));
  return out;
}

}  // namespace imgsweep
