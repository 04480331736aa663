#include "coordinator/peer_registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/command_table.h"
#include "protocol/manifest.h"
#include "protocol/sha256.h"
#include "protocol/version_name.h"

namespace imgsweep {

PeerRegistry::PeerRegistry(std::size_t max_rejected_frames)
    : max_rejected_frames_(max_rejected_frames),
      overflow_{"peers beyond the first " + std::to_string(kMaxTrackedPeers)} {}

PeerState& PeerRegistry::StateOf(const Envelope& envelope) {
  if (peers_.size() >= kMaxTrackedPeers && !peers_.contains(envelope.peer)) return overflow_;
  auto [it, inserted] = peers_.try_emplace(envelope.peer);
  if (inserted) {
    it->second.key = envelope.key;
    it->second.label = "peer " +
                       (envelope.address.empty() ? std::string("(local)") : envelope.address) +
                       " #" + std::to_string(++peers_seen_);
  }
  return it->second;
}

bool PeerRegistry::Reject(const std::string& peer, const std::string& why) {
  ++rejected_frames_;
  auto tracked = peers_.find(peer);
  PeerState& state = tracked == peers_.end() ? overflow_ : tracked->second;
  if (++state.rejected <= kLoggedRejections) {
    spdlog::warn("coordinator: dropped a frame from {}: {}", state.label, why);
  }
  if (state.rejected < max_rejected_frames_ || state.cut_off) return false;
  state.cut_off = true;
  spdlog::warn("coordinator: cut off {} after {} rejected frames: connection closed, its "
               "frames ignored from now on",
               state.label, state.rejected);
  return true;
}

bool PeerRegistry::CutOff(const std::string& peer, const std::string& why) {
  ++rejected_frames_;
  auto tracked = peers_.find(peer);
  PeerState& state = tracked == peers_.end() ? overflow_ : tracked->second;
  ++state.rejected;
  if (state.cut_off) return false;
  state.cut_off = true;
  spdlog::warn("coordinator: cut off {}: {}; its frames ignored from now on", state.label, why);
  return true;
}

std::vector<std::string> PeerRegistry::PeersOutside(const std::set<std::string>& keys) const {
  std::vector<std::string> out;
  for (const auto& [peer, state] : peers_) {
    if (!state.key.empty() && !state.cut_off && !keys.contains(state.key)) out.push_back(peer);
  }
  return out;
}

bool PeerRegistry::TakeStatusToken(PeerState& state, Clock::TimePoint now) {
  if (!state.status_seen) {
    state.status_seen = true;
    state.status_tokens = kStatusRequestBurst;
  } else {
    const double seconds = std::chrono::duration<double>(now - state.status_refilled).count();
    state.status_tokens = std::min(kStatusRequestBurst,
                                   state.status_tokens + seconds * kStatusRequestsPerSecond);
  }
  state.status_refilled = now;
  if (state.status_tokens < 1) return false;
  state.status_tokens -= 1;
  return true;
}

std::string PeerRegistry::CheckHello(const Hello& hello) {
  std::string problem;
  if (!IsSafeName(hello.name)) problem = "worker name \"" + hello.name + "\" is not [A-Za-z0-9._-]";
  if (hello.slots == 0 || hello.slots > kMaxSlots) {
    problem = "slots must be 1.." + std::to_string(kMaxSlots);
  }
  for (const VersionInfo& v : hello.versions) {
    if (!IsVersionName(v.name)) problem = "\"" + v.name + "\" is not a version name";
    if (!IsSha256Hex(v.binary_sha256)) problem = "version " + v.name + ": bad binary sha256";
  }
  if (!hello.command_table.empty()) {
    Result<CommandTable> table = CommandTable::Parse(hello.command_table, "its command table");
    if (!table.ok()) problem = table.status().message();
  }
  for (const FileLayout& f : hello.sparse) {
    if (f.path.empty() || !StaysInsideRoot(f.path)) {
      problem = "sparse file \"" + f.path + "\" is not a path inside the testdata root";
    } else if (!IsLayoutFingerprint(f.fingerprint) || f.fingerprint == kDenseLayout) {
      problem = "sparse file " + f.path + ": bad layout fingerprint";
    }
  }
  return problem;
}

WorkerEntry* PeerRegistry::Worker(const std::string& peer) {
  auto it = workers_.find(peer);
  return it == workers_.end() ? nullptr : &it->second;
}

WorkerEntry* PeerRegistry::WorkerNamed(const std::string& name, const std::string& except_peer) {
  for (auto& [peer, worker] : workers_) {
    if (worker.name == name && peer != except_peer) return &worker;
  }
  return nullptr;
}

WorkerEntry& PeerRegistry::Admit(WorkerEntry entry) {
  if (auto tracked = peers_.find(entry.peer); tracked != peers_.end()) {
    tracked->second.label = "worker " + entry.name;
  }
  const std::string peer = entry.peer;
  return workers_[peer] = std::move(entry);
}

void PeerRegistry::Remove(const std::string& peer) { workers_.erase(peer); }

bool PeerRegistry::OtherHolds(const std::string& version, const std::string& except_peer) const {
  for (const auto& [peer, worker] : workers_) {
    if (peer != except_peer && worker.versions.contains(version)) return true;
  }
  return false;
}

std::set<std::string> PeerRegistry::HeldVersions() const {
  std::set<std::string> held;
  for (const auto& [peer, worker] : workers_) {
    for (const auto& [name, info] : worker.versions) held.insert(name);
  }
  return held;
}

std::vector<PeerRejections> PeerRegistry::Rejections() const {
  std::vector<PeerRejections> out;
  for (const auto& [peer, state] : peers_) {
    if (state.rejected > 0) out.push_back({state.label, state.rejected, state.cut_off});
  }
  if (overflow_.rejected > 0) out.push_back({overflow_.label, overflow_.rejected, overflow_.cut_off});
  return out;
}

}  // namespace imgsweep
