#include "coordinator/coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <set>
#include <vector>

#include "protocol/messages.h"
#include "protocol/sha256.h"
#include "protocol/transport.h"
#include "protocol/version_name.h"

namespace imgsweep {
namespace {

using Clock = std::chrono::steady_clock;

// Results gathered before one durable write and its acknowledgements: big
// enough to amortise the sync, small enough that acks flow steadily.
constexpr std::size_t kMaxResultsPerCommit = 512;
constexpr unsigned kMaxSlots = 4096;
// A lease outlives its cells' own deadlines by this much before the
// coordinator takes them back.
constexpr auto kLeaseSlack = std::chrono::seconds(30);

std::int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct CellSlot {
  enum class State : std::uint8_t { kPending, kLeased, kClosed };
  State state = State::kPending;
  std::uint32_t attempts = 0;  // attempts stored so far
  std::uint64_t lease = 0;
};

struct WorkerEntry {
  std::string peer;
  std::string name;
  std::string host;
  unsigned slots = 0;
  std::map<std::string, VersionInfo> versions;
  std::int64_t credit = 0;
  std::optional<std::size_t> last_version;
  Clock::time_point last_seen;
};

struct Lease {
  std::string peer;
  std::set<std::size_t> open;  // cell indices without a stored result yet
  Clock::time_point deadline;
};

// What the coordinator knows of any peer that sent a frame, worker or not.
struct PeerState {
  std::string label;  // "peer 127.0.0.1 #3"
  std::size_t rejected = 0;
  bool cut_off = false;
};

// Rejections logged per peer; the rest are only counted.
constexpr std::size_t kLoggedRejections = 5;
constexpr std::size_t kMaxTrackedPeers = 65536;

// A result waiting for the durable write, and whom to acknowledge after it.
struct PendingAck {
  std::string peer;
  std::string key;
};

}  // namespace

class Coordinator::Impl {
 public:
  Impl(CoordinatorOptions options, Plan plan, Store* store, std::unique_ptr<Context> context,
       std::unique_ptr<RouterSocket> socket)
      : options_(std::move(options)),
        plan_(std::move(plan)),
        store_(store),
        context_(std::move(context)),
        socket_(std::move(socket)),
        cells_(plan_.cell_count()),
        pending_(plan_.versions().size()) {}

  const std::string& endpoint() const { return socket_->endpoint(); }
  std::size_t open_cells() const { return open_cells_; }

  Status Load() {
    std::size_t closed = 0;
    Status st = store_->ForEachCell([&](std::string_view key, const CellRecord& record) {
      Result<std::size_t> index = plan_.IndexOfKey(key);
      if (!index.ok()) return true;  // a cell of no concern to this plan
      CellSlot& slot = cells_[index.value()];
      slot.attempts = static_cast<std::uint32_t>(record.attempts.size());
      if (record.state != CellState::kPending) {
        slot.state = CellSlot::State::kClosed;
        ++closed;
      }
      return true;
    });
    if (!st.ok()) return st;
    for (std::size_t i = 0; i < cells_.size(); ++i) {
      if (cells_[i].state == CellSlot::State::kPending) pending_[plan_.Ref(i).version].push_back(i);
    }
    open_cells_ = cells_.size() - closed;
    spdlog::info("coordinator: {} cells planned, {} already stored, listening on {}", cells_.size(),
                 closed, endpoint());
    return Status::Ok();
  }

  Result<SweepSummary> Run() {
    Clock::time_point next_missing_report = Clock::now() + options_.missing_report_interval;
    while (open_cells_ > 0) {
      if (options_.keep_going) {
        Status st = options_.keep_going();
        if (!st.ok()) return st;
      }
      Status st = ReceiveRound();
      if (!st.ok()) return st;
      for (const Refusal& r : socket_->TakeRefusals()) {
        ++refused_connections_;
        spdlog::warn("coordinator: refused a connection from {}: {}", r.address,
                     r.public_key.empty() ? "no CURVE key" : "key " + r.public_key + " is not allowed");
      }
      st = CommitAndAck();
      if (!st.ok()) return st;
      Dispatch();
      ExpireLeases();
      if (Clock::now() >= next_missing_report) {
        ReportMissingVersions();
        next_missing_report = Clock::now() + options_.missing_report_interval;
      }
    }
    for (const auto& [peer, worker] : workers_) {
      Tell(peer, Shutdown{"the sweep is complete"});
    }
    Result<SweepSummary> summary = Summarize(plan_, *store_);
    if (!summary.ok()) return summary;
    SweepSummary& s = summary.value();
    s.ran_now = ran_now_;
    s.by_worker = by_worker_;
    s.rejected_frames = rejected_frames_;
    s.ignored_frames = ignored_frames_;
    s.refused_connections = refused_connections_;
    s.discarded_results = discarded_results_;
    for (const auto& [peer, state] : peers_) {
      if (state.rejected > 0) s.rejections.push_back({state.label, state.rejected, state.cut_off});
    }
    if (overflow_.rejected > 0) {
      s.rejections.push_back({overflow_.label, overflow_.rejected, overflow_.cut_off});
    }
    return summary;
  }

 private:
  // Waits for the first frame up to a heartbeat, then takes what is queued.
  Status ReceiveRound() {
    std::chrono::milliseconds wait = options_.heartbeat;
    while (acks_.size() < kMaxResultsPerCommit) {
      Result<std::optional<Envelope>> got = socket_->Receive(wait);
      if (!got.ok()) return got.status();
      if (!got.value()) break;
      Handle(*got.value());
      wait = std::chrono::milliseconds(0);
    }
    return Status::Ok();
  }

  // Sends without an answer to wait for. A peer that has gone cannot be
  // told anything; what it held comes back through its leases, so the
  // failure is only logged.
  void Tell(const std::string& peer, const Message& message) {
    Status st = socket_->Send(peer, Encode(message));
    if (!st.ok())
      spdlog::debug("coordinator: {} not delivered: {}", MessageName(message), st.message());
  }

  // A peer as people can find it in the log.
  // Past kMaxTrackedPeers identities (a flood of connections), new ones
  // share one state, which is cut off like any other.
  PeerState& StateOf(const Envelope& envelope) {
    if (peers_.size() >= kMaxTrackedPeers && !peers_.contains(envelope.peer)) return overflow_;
    auto [it, inserted] = peers_.try_emplace(envelope.peer);
    if (inserted) {
      it->second.label = "peer " + (envelope.address.empty() ? std::string("(local)")
                                                             : envelope.address) +
                         " #" + std::to_string(++peers_seen_);
    }
    return it->second;
  }

  void Drop(const std::string& peer, const std::string& why) {
    ++rejected_frames_;
    auto tracked = peers_.find(peer);
    PeerState& state = tracked == peers_.end() ? overflow_ : tracked->second;
    const std::string& label = state.label;
    if (++state.rejected <= kLoggedRejections) {
      spdlog::warn("coordinator: dropped a frame from {}: {}", label, why);
    }
    if (state.rejected >= options_.max_rejected_frames && !state.cut_off) {
      state.cut_off = true;
      spdlog::warn("coordinator: cut off {} after {} rejected frames: connection closed, its "
                   "frames ignored from now on",
                   label, state.rejected);
      if (handling_ != nullptr && handling_->peer == peer) {
        Status closed = socket_->Disconnect(*handling_);
        if (!closed.ok()) spdlog::debug("coordinator: {}", closed.message());
      }
      if (auto worker = workers_.find(peer); worker != workers_.end()) {
        ReleaseLeasesOf(peer);
        workers_.erase(worker);
      }
    }
  }

  void Handle(const Envelope& envelope) {
    handling_ = &envelope;
    HandleFrame(envelope);
    handling_ = nullptr;
  }

  void HandleFrame(const Envelope& envelope) {
    PeerState& state = StateOf(envelope);
    if (state.cut_off) {
      ++ignored_frames_;
      return;
    }
    if (envelope.parts != 1) return Drop(envelope.peer, "not a single frame");
    Result<Message> decoded = Decode(envelope.frame);
    auto worker = workers_.find(envelope.peer);
    if (!decoded.ok()) {
      if (worker == workers_.end()) {
        Tell(envelope.peer, Refused{decoded.status().message()});
      }
      return Drop(envelope.peer, decoded.status().message());
    }
    Message& message = decoded.value();
    if (auto* hello = std::get_if<Hello>(&message)) return HandleHello(envelope.peer, *hello);
    if (worker == workers_.end()) {
      Tell(envelope.peer, Refused{"say hello first"});
      return Drop(envelope.peer, std::string(MessageName(message)) + " before hello");
    }
    worker->second.last_seen = Clock::now();
    if (auto* credit = std::get_if<Credit>(&message)) {
      worker->second.credit = std::min<std::int64_t>(worker->second.credit + credit->cells,
                                                     4 * static_cast<std::int64_t>(kMaxSlots));
    } else if (auto* result = std::get_if<CellResult>(&message)) {
      HandleResult(worker->second, *result);
    } else if (!std::holds_alternative<Heartbeat>(message)) {
      Drop(envelope.peer, std::string("unexpected ") + MessageName(message));
    }
  }

  void HandleHello(const std::string& peer, const Hello& hello) {
    std::string problem;
    if (!IsSafeName(hello.name))
      problem = "worker name \"" + hello.name + "\" is not [A-Za-z0-9._-]";
    if (hello.slots == 0 || hello.slots > kMaxSlots) {
      problem = "slots must be 1.." + std::to_string(kMaxSlots);
    }
    for (const VersionInfo& v : hello.versions) {
      if (!IsVersionName(v.name)) problem = "\"" + v.name + "\" is not a version name";
      if (!IsSha256Hex(v.binary_sha256)) problem = "version " + v.name + ": bad binary sha256";
    }
    for (const auto& [other_peer, other] : workers_) {
      if (other.name == hello.name && other_peer != peer) {
        problem = "a worker named " + hello.name + " is already connected";
      }
    }
    if (!problem.empty()) {
      spdlog::warn("coordinator: refused worker {}@{}: {}", hello.name, hello.host, problem);
      Tell(peer, Refused{problem});
      return;
    }
    WorkerEntry entry;
    entry.peer = peer;
    entry.name = hello.name;
    entry.host = hello.host;
    entry.slots = hello.slots;
    entry.last_seen = Clock::now();
    for (const VersionInfo& v : hello.versions) {
      auto [seen, inserted] = first_digest_.emplace(v.name, v.binary_sha256);
      if (!inserted && seen->second != v.binary_sha256) {
        spdlog::warn(
            "coordinator: worker {} has other bytes for {} ({} where the sweep has {}); "
            "it gets none of that version's cells",
            hello.name, v.name, v.binary_sha256, seen->second);
        continue;
      }
      entry.versions.emplace(v.name, v);
    }
    spdlog::info("coordinator: worker {}@{} joined: {} slots, {} versions", hello.name, hello.host,
                 hello.slots, entry.versions.size());
    ReleaseLeasesOf(peer);
    if (auto tracked = peers_.find(peer); tracked != peers_.end()) {
      tracked->second.label = "worker " + hello.name;
    }
    workers_[peer] = std::move(entry);
    Tell(peer, Welcome{options_.sweep_id, static_cast<std::uint32_t>(options_.heartbeat.count())});
    ReportMissingVersions();  // at once, so whoever starts workers sees what is still missing
  }

  void HandleResult(WorkerEntry& worker, const CellResult& result) {
    Result<std::size_t> index = plan_.IndexOfKey(result.key);
    if (!index.ok()) return Drop(worker.peer, index.status().message());
    CellSlot& slot = cells_[index.value()];
    auto lease = leases_.find(result.lease_id);
    const bool given = slot.state == CellSlot::State::kLeased && slot.lease == result.lease_id &&
                       lease != leases_.end() && lease->second.peer == worker.peer;
    if (!given) {
      if (slot.state == CellSlot::State::kClosed) {
        ++discarded_results_;
        acks_.push_back(PendingAck{worker.peer, result.key});  // let it forget the copy
        return;
      }
      return Drop(worker.peer, "a result for " + result.key + " which it was not given");
    }
    const CellRef ref = plan_.Ref(index.value());
    const std::string& version = plan_.versions()[ref.version];
    Attempt attempt;
    attempt.number = slot.attempts + 1;
    attempt.outcome = result.outcome;
    attempt.exit_code = result.exit_code;
    attempt.signal = result.signal;
    attempt.duration_us = result.duration_us;
    attempt.started_unix_ms = result.started_unix_ms;
    attempt.worker = worker.name;
    attempt.host = worker.host;
    attempt.failure = result.failure;
    if (auto v = worker.versions.find(version); v != worker.versions.end()) {
      attempt.version_line = v->second.version_line;
      attempt.binary_sha256 = v->second.binary_sha256;
    }
    CellWrite write;
    write.key = result.key;
    if (slot.attempts > 0) {
      Result<std::optional<CellRecord>> stored = store_->GetCell(result.key);
      if (stored.ok() && stored.value()) write.record = *stored.value();
    }
    if (result.outcome == Outcome::kInfraFailure) {
      spdlog::warn("coordinator: {} attempt {} on {}: {}", result.key, attempt.number, worker.name,
                   result.failure);
      write.record.state =
          attempt.number >= options_.max_attempts ? CellState::kFailed : CellState::kPending;
    } else {
      attempt.stdout_sha256 = Sha256Hex(result.stdout_text);
      attempt.stderr_sha256 = Sha256Hex(result.stderr_text);
      attempt.stdout_bytes = result.stdout_text.size();
      attempt.stderr_bytes = result.stderr_text.size();
      write.blobs = {{attempt.stdout_sha256, result.stdout_text},
                     {attempt.stderr_sha256, result.stderr_text}};
      write.record.state = CellState::kDone;
    }
    write.record.attempts.push_back(std::move(attempt));
    lease->second.open.erase(index.value());
    if (lease->second.open.empty()) leases_.erase(lease);
    slot.attempts += 1;
    if (write.record.state == CellState::kPending) {
      slot.state = CellSlot::State::kPending;
      pending_[ref.version].push_front(index.value());
    } else {
      slot.state = CellSlot::State::kClosed;
      --open_cells_;
      ++ran_now_;
      ++by_worker_[worker.name];
    }
    writes_.push_back(std::move(write));
    acks_.push_back(PendingAck{worker.peer, result.key});
  }

  // The durable write first, then the acknowledgements: a result is
  // acknowledged only once the store has it.
  Status CommitAndAck() {
    if (!writes_.empty()) {
      Status st = store_->Commit(writes_);
      if (!st.ok()) return st;
      writes_.clear();
    }
    std::map<std::string, Ack> by_peer;
    for (PendingAck& ack : acks_) by_peer[ack.peer].keys.push_back(std::move(ack.key));
    acks_.clear();
    for (const auto& [peer, ack] : by_peer) Tell(peer, ack);
    return Status::Ok();
  }

  // The shard (version) to give `worker` next: the one it worked on last if
  // cells remain there, else the one it holds with the most pending cells.
  std::optional<std::size_t> PickShard(const WorkerEntry& worker) const {
    if (worker.last_version && !pending_[*worker.last_version].empty()) return worker.last_version;
    std::optional<std::size_t> best;
    for (std::size_t v = 0; v < pending_.size(); ++v) {
      if (pending_[v].empty() || !worker.versions.contains(plan_.versions()[v])) continue;
      if (!best || pending_[v].size() > pending_[*best].size()) best = v;
    }
    return best;
  }

  void Dispatch() {
    for (auto& [peer, worker] : workers_) {
      while (worker.credit > 0) {
        std::optional<std::size_t> shard = PickShard(worker);
        if (!shard) break;
        std::deque<std::size_t>& queue = pending_[*shard];
        const std::size_t n =
            std::min({static_cast<std::size_t>(worker.credit), queue.size(), options_.max_batch});
        const std::uint64_t lease_id = ++last_lease_;
        Lease lease;
        lease.peer = peer;
        Assignment assignment;
        assignment.lease_id = lease_id;
        for (std::size_t i = 0; i < n; ++i) {
          const std::size_t index = queue.front();
          queue.pop_front();
          CellSlot& slot = cells_[index];
          slot.state = CellSlot::State::kLeased;
          slot.lease = lease_id;
          lease.open.insert(index);
          assignment.cells.push_back(plan_.Spec(plan_.Ref(index), slot.attempts + 1));
        }
        // Every cell could run one after another on one slot, each to its
        // deadline: only after that (and some slack) is the lease lost.
        const auto span =
            plan_.timeout() * static_cast<std::int64_t>((n + worker.slots - 1) / worker.slots) +
            kLeaseSlack;
        lease.deadline = Clock::now() + span;
        assignment.deadline_unix_ms =
            UnixMillis() + std::chrono::duration_cast<std::chrono::milliseconds>(span).count();
        worker.credit -= static_cast<std::int64_t>(n);
        worker.last_version = *shard;
        leases_.emplace(lease_id, std::move(lease));
        if (!socket_->Send(peer, Encode(assignment)).ok()) {
          ReleaseLease(lease_id);
          worker.credit = 0;
          break;
        }
      }
    }
  }

  void ReleaseLease(std::uint64_t lease_id) {
    auto lease = leases_.find(lease_id);
    if (lease == leases_.end()) return;
    for (std::size_t index : lease->second.open) {
      cells_[index].state = CellSlot::State::kPending;
      pending_[plan_.Ref(index).version].push_front(index);
    }
    leases_.erase(lease);
  }

  void ReleaseLeasesOf(const std::string& peer) {
    std::vector<std::uint64_t> ids;
    for (const auto& [id, lease] : leases_) {
      if (lease.peer == peer) ids.push_back(id);
    }
    for (std::uint64_t id : ids) ReleaseLease(id);
  }

  void ExpireLeases() {
    const Clock::time_point now = Clock::now();
    std::vector<std::uint64_t> expired;
    for (const auto& [id, lease] : leases_) {
      if (now >= lease.deadline) expired.push_back(id);
    }
    for (std::uint64_t id : expired) {
      spdlog::warn("coordinator: lease {} expired; its {} cells go back to the queue", id,
                   leases_[id].open.size());
      ReleaseLease(id);
    }
  }

  void ReportMissingVersions() const {
    std::set<std::string> held;
    for (const auto& [peer, worker] : workers_) {
      for (const auto& [name, info] : worker.versions) held.insert(name);
    }
    std::string missing;
    for (std::size_t v = 0; v < pending_.size(); ++v) {
      const std::string& name = plan_.versions()[v];
      if (pending_[v].empty() || held.contains(name)) continue;
      missing += (missing.empty() ? "" : ", ") + name + " (" + std::to_string(pending_[v].size()) +
                 " cells)";
    }
    if (workers_.empty()) {
      spdlog::warn("coordinator: waiting for workers at {}; {} cells to go", endpoint(),
                   open_cells_);
    } else if (!missing.empty()) {
      spdlog::warn("coordinator: waiting for a worker that holds {}", missing);
    }
  }

  CoordinatorOptions options_;
  const Plan plan_;
  Store* store_;
  std::unique_ptr<Context> context_;
  std::unique_ptr<RouterSocket> socket_;
  std::vector<CellSlot> cells_;
  std::vector<std::deque<std::size_t>> pending_;  // per version: cells to hand out
  std::size_t open_cells_ = 0;
  std::map<std::string, WorkerEntry> workers_;       // by peer identity
  std::map<std::string, std::string> first_digest_;  // version -> binary sha256
  std::map<std::uint64_t, Lease> leases_;
  std::uint64_t last_lease_ = 0;
  std::vector<CellWrite> writes_;
  std::vector<PendingAck> acks_;
  std::size_t ran_now_ = 0;
  std::map<std::string, PeerState> peers_;  // by peer identity
  const Envelope* handling_ = nullptr;       // the frame being handled, if any
  PeerState overflow_{"peers beyond the first " + std::to_string(kMaxTrackedPeers)};
  std::size_t peers_seen_ = 0;
  std::size_t rejected_frames_ = 0;
  std::size_t ignored_frames_ = 0;
  std::size_t refused_connections_ = 0;
  std::size_t discarded_results_ = 0;
  std::map<std::string, std::size_t> by_worker_;
};

Result<SweepSummary> Summarize(const Plan& plan, Store& store) {
  SweepSummary summary;
  summary.cells = plan.cell_count();
  Status st = store.ForEachCell([&](std::string_view key, const CellRecord& record) {
    if (!plan.IndexOfKey(key).ok()) return true;
    if (record.state == CellState::kFailed) ++summary.failed;
    if (record.state != CellState::kDone || record.attempts.empty()) return true;
    const Attempt& last = record.attempts.back();
    switch (last.outcome) {
      case Outcome::kExited:
        ++(last.exit_code == 0 ? summary.exited_zero : summary.exited_nonzero);
        break;
      case Outcome::kSignaled:
        ++summary.signaled;
        break;
      case Outcome::kTimeout:
        ++summary.timeout;
        break;
      case Outcome::kInfraFailure:
        break;
    }
    return true;
  });
  if (!st.ok()) return st;
  return summary;
}

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Coordinator::~Coordinator() = default;

Result<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options, Plan plan,
                                                         Store* store) {
  auto context = std::make_unique<Context>();
  Result<std::unique_ptr<RouterSocket>> socket =
      RouterSocket::Bind(*context, options.listen, options.security, options.max_frame_bytes);
  if (!socket.ok()) return socket.status();
  auto impl = std::make_unique<Impl>(std::move(options), std::move(plan), store, std::move(context),
                                     std::move(socket).value());
  Status st = impl->Load();
  if (!st.ok()) return st;
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

const std::string& Coordinator::endpoint() const { return impl_->endpoint(); }
std::size_t Coordinator::open_cells() const { return impl_->open_cells(); }
Result<SweepSummary> Coordinator::Run() { return impl_->Run(); }

}  // namespace imgsweep
