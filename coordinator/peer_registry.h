// Every peer that sent the coordinator a frame, and the workers among them.
// Policing: frames a peer got rejected are counted, the first few logged,
// and a peer that reaches the limit is cut off (its later frames are
// ignored unread). Past kMaxTrackedPeers identities (a flood of
// connections) new ones share one state, which is cut off like any other.
//
// Thread-safety: the coordinator's thread only.
#ifndef IMGSWEEP_COORDINATOR_PEER_REGISTRY_H_
#define IMGSWEEP_COORDINATOR_PEER_REGISTRY_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "protocol/clock.h"
#include "protocol/messages.h"
#include "protocol/transport.h"

namespace imgsweep {

// The most slots a worker may claim.
inline constexpr unsigned kMaxSlots = 4096;

// A worker that said hello and was welcomed.
struct WorkerEntry {
  std::string peer;  // its identity on the socket
  std::string name;
  std::string host;
  std::string session;
  unsigned slots = 0;
  std::map<std::string, VersionInfo> versions;  // of this sweep, with the sweep's digest
  std::int64_t credit = 0;                      // cells it can take now
  std::optional<std::size_t> last_version;      // the shard it worked on last
  Clock::TimePoint last_seen;                   // its last frame
  Clock::TimePoint last_told;                   // the coordinator's last frame to it
  std::string layout = {};                    // of its testdata (TreeLayout)
  std::set<std::size_t> refused_images = {};  // laid out otherwise than the sweep's
  std::vector<bool> runs_type = {};  // per output type of the plan: in its command table
  // Per version of the plan: in `versions`. The scheduler asks it for
  // every shard on every assignment, too often for a lookup by name.
  std::vector<bool> holds_version = {};
};

// What the coordinator knows of any peer, worker or not.
struct PeerState {
  std::string label;  // "peer 127.0.0.1 #3", then "worker NAME"
  std::string key{};  // its CURVE public key; empty in plain text
  std::size_t rejected = 0;
  bool cut_off = false;
  Clock::TimePoint told_hello_first{};  // the last hello-first sent to it
  // Status requests it may still send now (a token bucket, refilled at
  // kStatusRequestsPerSecond up to kStatusRequestBurst).
  double status_tokens = 0;
  Clock::TimePoint status_refilled{};
  bool status_seen = false;
};

// Status requests a peer may send in a burst, and on average per second;
// beyond that each is a rejected frame. `status --connect` sends one.
inline constexpr double kStatusRequestBurst = 10;
inline constexpr double kStatusRequestsPerSecond = 5;

// Frames the coordinator refused from one peer.
struct PeerRejections {
  std::string peer;  // "worker NAME" or "peer ADDRESS #N"
  std::size_t frames = 0;
  bool cut_off = false;
};

class PeerRegistry {
 public:
  static constexpr std::size_t kMaxTrackedPeers = 65536;

  explicit PeerRegistry(std::size_t max_rejected_frames);

  PeerState& StateOf(const Envelope& envelope);
  // Counts a rejected frame from `peer`, logging the first few. True when
  // this one cuts the peer off: the caller closes its connection and takes
  // back what it held.
  bool Reject(const std::string& peer, const std::string& why);
  void CountIgnored() { ++ignored_frames_; }
  // Cuts `peer` off at once, counted as a rejected frame: its frames are
  // ignored from now on. False if it already was.
  bool CutOff(const std::string& peer, const std::string& why);
  // The peers not yet cut off whose CURVE key is not in `keys`.
  std::vector<std::string> PeersOutside(const std::set<std::string>& keys) const;
  // Takes one of `state`'s status-request tokens; false when it has none.
  static bool TakeStatusToken(PeerState& state, Clock::TimePoint now);

  // Empty, or why the hello is refused (names, slots, digests).
  static std::string CheckHello(const Hello& hello);

  WorkerEntry* Worker(const std::string& peer);
  // The worker called `name` on a peer other than `except_peer`.
  WorkerEntry* WorkerNamed(const std::string& name, const std::string& except_peer);
  // REQUIRES: no worker on entry.peer.
  WorkerEntry& Admit(WorkerEntry entry);
  void Remove(const std::string& peer);
  std::map<std::string, WorkerEntry>& workers() { return workers_; }
  const std::map<std::string, WorkerEntry>& workers() const { return workers_; }

  // True when a worker other than the one on `except_peer` holds `version`.
  bool OtherHolds(const std::string& version, const std::string& except_peer) const;
  std::set<std::string> HeldVersions() const;

  std::vector<PeerRejections> Rejections() const;
  std::size_t rejected_frames() const { return rejected_frames_; }
  std::size_t ignored_frames() const { return ignored_frames_; }

 private:
  // Rejections logged per peer; the rest are only counted.
  static constexpr std::size_t kLoggedRejections = 5;

  const std::size_t max_rejected_frames_;
  std::map<std::string, PeerState> peers_;       // by identity
  std::map<std::string, WorkerEntry> workers_;   // by identity
  PeerState overflow_;
  std::size_t peers_seen_ = 0;
  std::size_t rejected_frames_ = 0;
  std::size_t ignored_frames_ = 0;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_PEER_REGISTRY_H_
