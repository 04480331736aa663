#include "coordinator/coordinator.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

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
// A write starts once this many results wait, or the first of them has
// waited kCommitDelay: with cells of a few ms a sync per one or two results
// is a cost of its own (with sync off the test bed's sweep took about 15%
// less), and workers do not wait for acknowledgements to go on.
constexpr std::size_t kCommitBatch = kMaxResultsPerCommit / 2;
constexpr auto kCommitDelay = std::chrono::milliseconds(50);
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
  std::uint32_t attempts = 0;     // attempts stored so far
  std::uint32_t round_start = 0;  // attempts before this round (see CellRecord)
  std::uint64_t lease = 0;
  bool failed = false;  // closed without an outcome
};

struct WorkerEntry {
  std::string peer;
  std::string name;
  std::string host;
  std::string session;
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
  Clock::time_point sent;  // when the assignment left
};

// What the coordinator knows of any peer that sent a frame, worker or not.
struct PeerState {
  std::string label;  // "peer 127.0.0.1 #3"
  std::size_t rejected = 0;
  bool cut_off = false;
  Clock::time_point told_hello_first{};  // last hello-first sent to it
};

// Rejections logged per peer; the rest are only counted.
constexpr std::size_t kLoggedRejections = 5;
constexpr std::size_t kMaxTrackedPeers = 65536;

// Lease ids: the coordinator's incarnation in the high half, a counter in
// the low half.
constexpr int kLeaseCounterBits = 32;

// A result waiting for the durable write, and whom to acknowledge after it.
struct PendingAck {
  std::string peer;
  std::string key;
};

// The writes of one round, and the acknowledgements that wait for them.
struct Batch {
  std::vector<CellWrite> writes;                          // one per cell
  std::unordered_map<std::size_t, std::size_t> write_of;  // cell index -> its place in writes
  std::vector<Clock::time_point> sent_of;  // by place in writes: its lease's assignment, if any
  std::vector<PendingAck> acks;
  // Cells given an infrastructure attempt: back in the queue once it is
  // stored, so a cell is never handed out ahead of its own record.
  std::vector<std::size_t> requeue;
};

// Runs one durable write at a time on its own thread, so the coordinator
// goes on receiving results and handing out cells while RocksDB syncs.
// wake_fd() becomes readable when a write finishes.
class Committer {
 public:
  explicit Committer(Store* store)
      : store_(store), wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), thread_([this] { Loop(); }) {}
  ~Committer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  int wake_fd() const { return wake_fd_; }
  bool busy() const { return busy_; }

  // REQUIRES: !busy(); `writes` stays untouched until the write is finished.
  void Start(const std::vector<CellWrite>* writes) {
    busy_ = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writes_ = writes;
      done_.reset();
    }
    changed_.notify_all();
  }
  // The finished write's Status, or nullopt while it runs (after `wait` at
  // most). REQUIRES: busy().
  std::optional<Status> Finish(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, wait, [this] { return done_.has_value(); });
    if (!done_) return std::nullopt;
    std::uint64_t count;
    (void)!::read(wake_fd_, &count, sizeof count);
    busy_ = false;
    return std::exchange(done_, std::nullopt);
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      changed_.wait(lock, [this] { return stopping_ || writes_ != nullptr; });
      if (writes_ == nullptr) return;  // stopping, nothing left to write
      const std::vector<CellWrite>* writes = std::exchange(writes_, nullptr);
      lock.unlock();
      Status st = store_->Commit(*writes);
      lock.lock();
      done_ = std::move(st);
      changed_.notify_all();
      const std::uint64_t one = 1;
      (void)!::write(wake_fd_, &one, sizeof one);
    }
  }

  Store* const store_;
  const int wake_fd_;
  bool busy_ = false;  // used by the coordinator's thread only
  std::mutex mu_;
  std::condition_variable changed_;
  const std::vector<CellWrite>* writes_ = nullptr;  // guarded by mu_: the write to start
  std::optional<Status> done_;                      // guarded by mu_: the finished write's
  bool stopping_ = false;                           // guarded by mu_
  std::thread thread_;
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
        pending_(plan_.versions().size()),
        committer_(store) {}

  const std::string& endpoint() const { return socket_->endpoint(); }
  std::size_t open_cells() const { return open_cells_; }

  Status Load() {
    Result<std::optional<std::string>> stored = store_->GetMeta("incarnation");
    if (!stored.ok()) return stored.status();
    if (stored.value()) {
      try {
        incarnation_ = std::stoul(*stored.value()) + 1;
      } catch (const std::exception&) {
        return Status::InvalidInput("store: meta/incarnation is not a number");
      }
    }
    Status st = store_->PutMeta("incarnation", std::to_string(incarnation_));
    if (!st.ok()) return st;
    // The sweep's digest per version: a pin (for `run`, the local binary's)
    // over the one stored by an earlier run. Stored cells of a version whose
    // pin is new ran other bytes: they run again.
    for (const std::string& version : plan_.versions()) {
      Result<std::optional<std::string>> digest = store_->GetMeta("digest/" + version);
      if (!digest.ok()) return digest.status();
      if (digest.value()) digests_[version] = *digest.value();
    }
    const std::map<std::string, std::string> stored_digests = digests_;
    for (const auto& [version, digest] : options_.binary_digests) {
      if (std::find(plan_.versions().begin(), plan_.versions().end(), version) ==
          plan_.versions().end()) {
        return Status::InvalidInput("--binary-digest names " + version +
                                    ", which is not a version of this sweep");
      }
      auto was = digests_.find(version);
      if (was != digests_.end() && was->second != digest) {
        spdlog::info("coordinator: {} is now the binary with sha256 {} (was {}): its stored "
                     "cells run again",
                     version, digest, was->second);
      }
      digests_[version] = digest;
    }

    // Each stored outcome is reused only while its inputs are the same
    // (Plan::CacheKey); infrastructure failures are never reused. Cells to
    // run again are put back durably, so a tree is never written from an
    // outcome whose inputs have changed.
    std::size_t reused = 0;
    std::vector<CellWrite> reopened;
    st = store_->ForEachCell([&](std::string_view key, const CellRecord& record) {
      Result<std::size_t> index = plan_.IndexOfKey(key);
      if (!index.ok()) return true;  // a cell of no concern to this plan
      const CellRef ref = plan_.Ref(index.value());
      CellSlot& slot = cells_[index.value()];
      slot.attempts = static_cast<std::uint32_t>(record.attempts.size());
      slot.round_start = record.round_start;
      if (record.state == CellState::kPending) return true;
      bool current = false;
      if (record.state == CellState::kDone && !record.attempts.empty() && !options_.force) {
        const std::string& ran = record.attempts.back().binary_sha256;
        const std::string& version = plan_.versions()[ref.version];
        // Stores from before digests were kept: the cells say which bytes ran.
        auto digest = digests_.try_emplace(version, ran).first;
        const std::string inputs =
            record.inputs.empty() ? plan_.CacheKey(ref, ran) : record.inputs;
        current = inputs == plan_.CacheKey(ref, digest->second);
      }
      if (!current) {
        slot.round_start = slot.attempts;
        if (record.state == CellState::kDone) {
          CellWrite& write = reopened.emplace_back();
          write.key = std::string(key);
          write.record = record;
          write.record.state = CellState::kPending;
          write.record.round_start = slot.round_start;
        }
        return true;
      }
      slot.state = CellSlot::State::kClosed;
      ++reused;
      CountOutcome(record, &progress_);
      return true;
    });
    if (!st.ok()) return st;
    if (!reopened.empty()) {
      st = store_->Commit(reopened);
      if (!st.ok()) return st;
    }
    for (const auto& [version, digest] : digests_) {  // only what is new: each write is synced
      auto was = stored_digests.find(version);
      if (was != stored_digests.end() && was->second == digest) continue;
      st = store_->PutMeta("digest/" + version, digest);
      if (!st.ok()) return st;
    }
    for (std::size_t i = 0; i < cells_.size(); ++i) {
      if (cells_[i].state == CellSlot::State::kPending) pending_[plan_.Ref(i).version].push_back(i);
    }
    open_cells_ = cells_.size() - reused;
    spdlog::info("coordinator: {} cells planned, {} already stored with the same inputs{}, "
                 "listening on {}",
                 cells_.size(), reused,
                 reopened.empty() ? std::string()
                                  : ", " + std::to_string(reopened.size()) +
                                        " stored with other inputs run again" +
                                        (options_.force ? " (--force)" : ""),
                 endpoint());
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
      ExpireLeases();
      LoseSilentWorkers();
      st = CommitAndAck(/*wait=*/false);
      if (!st.ok()) return st;
      Dispatch();
      SendHeartbeats();
      Notify();
      if (Clock::now() >= next_missing_report) {
        ReportMissingVersions();
        next_missing_report = Clock::now() + options_.missing_report_interval;
      }
    }
    Status st = CommitAndAck(/*wait=*/true);  // what is still in flight, then the rest
    if (!st.ok()) return st;
    st = store_->Flush();
    if (!st.ok()) return st;
    for (const auto& [peer, worker] : workers_) {
      Tell(peer, Shutdown{"the sweep is complete"});
    }
    Notify();
    // Counted as cells closed (on load and since), so a million-cell
    // store is not read again.
    SweepSummary s;
    s.cells = cells_.size();
    s.exited_zero = progress_.exited_zero;
    s.exited_nonzero = progress_.exited_nonzero;
    s.signaled = progress_.signaled;
    s.timeout = progress_.timeout;
    s.failed = progress_.failed;
    s.ran_now = ran_now_;
    s.by_worker = by_worker_;
    s.rejected_frames = rejected_frames_;
    s.ignored_frames = ignored_frames_;
    s.refused_connections = refused_connections_;
    s.discarded_results = discarded_results_;
    s.workers_lost = workers_lost_;
    s.late_results = late_results_;
    s.infra_attempts = infra_attempts_;
    s.digest_conflicts = digest_conflicts_;
    for (const auto& [peer, state] : peers_) {
      if (state.rejected > 0) s.rejections.push_back({state.label, state.rejected, state.cut_off});
    }
    if (overflow_.rejected > 0) {
      s.rejections.push_back({overflow_.label, overflow_.rejected, overflow_.cut_off});
    }
    return s;
  }

 private:
  // Waits for the first frame up to half a heartbeat (so heartbeats leave
  // on time), or until a durable write finishes, then takes what is queued.
  // A full round waits only for the write.
  Status ReceiveRound() {
    std::chrono::milliseconds wait = options_.heartbeat / 2;
    if (!round_.writes.empty() && !committer_.busy()) {  // until the round's write is due
      wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(
                            round_started_ + kCommitDelay - Clock::now()),
                        std::chrono::milliseconds(0), wait);
    }
    const int wake_fd = committer_.busy() ? committer_.wake_fd() : -1;
    if (round_.acks.size() >= kMaxResultsPerCommit) {
      if (committer_.busy()) {
        std::optional<Status> done = committer_.Finish(wait);
        if (done) return FinishCommit(*done);
      }
      return Status::Ok();
    }
    while (round_.acks.size() < kMaxResultsPerCommit) {
      Result<std::optional<Envelope>> got = socket_->Receive(wait, wake_fd);
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
    if (!st.ok()) {
      spdlog::debug("coordinator: {} not delivered: {}", MessageName(message), st.message());
    } else if (workers_.contains(peer)) {
      last_told_[peer] = Clock::now();
    }
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
    if (std::holds_alternative<StatusRequest>(message)) {
      return Tell(envelope.peer, StatusReply{LiveStatusJson()});
    }
    if (auto* hello = std::get_if<Hello>(&message)) return HandleHello(envelope.peer, *hello);
    if (worker == workers_.end()) {
      // A worker the coordinator does not know (it restarted, or took the
      // worker for lost): results and credit are not stored, and it is
      // asked, at most once a heartbeat, to say hello again.
      if (std::holds_alternative<CellResult>(message) || std::holds_alternative<Credit>(message) ||
          std::holds_alternative<Heartbeat>(message)) {
        const Clock::time_point now = Clock::now();
        if (now - state.told_hello_first >= options_.heartbeat) {
          state.told_hello_first = now;
          Tell(envelope.peer, HelloFirst{});
        }
        return;
      }
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
    if (!problem.empty()) {
      spdlog::warn("coordinator: refused worker {}@{}: {}", hello.name, hello.host, problem);
      Tell(peer, Refused{problem});
      return;
    }
    // The same name again: the same process on a new connection keeps its
    // leases; another process under the name replaces the one before.
    std::optional<WorkerEntry> returning;
    for (auto it = workers_.begin(); it != workers_.end(); ++it) {
      if (it->second.name != hello.name || it->first == peer) continue;
      if (!hello.session.empty() && it->second.session == hello.session) {
        returning = std::move(it->second);
        for (auto& [id, lease] : leases_) {
          if (lease.peer == it->first) lease.peer = peer;
        }
        workers_.erase(it);
      } else {
        LoseWorker(it->first, "replaced by a new worker process of the same name");
      }
      break;
    }
    WorkerEntry entry;
    entry.peer = peer;
    entry.name = hello.name;
    entry.host = hello.host;
    entry.session = hello.session;
    entry.slots = hello.slots;
    entry.last_seen = Clock::now();
    if (returning) entry.last_version = returning->last_version;
    for (const VersionInfo& v : hello.versions) {
      if (std::find(plan_.versions().begin(), plan_.versions().end(), v.name) ==
          plan_.versions().end()) {
        continue;  // not in this sweep
      }
      auto [sweep_digest, first] = digests_.emplace(v.name, v.binary_sha256);
      if (first) {
        Status st = store_->PutMeta("digest/" + v.name, v.binary_sha256);
        if (!st.ok()) spdlog::error("coordinator: cannot record the digest of {}: {}", v.name, st.message());
      } else if (sweep_digest->second != v.binary_sha256) {
        const std::string conflict = "worker " + hello.name + " has " + v.name + " as " +
                                     v.binary_sha256 + ", the sweep uses " + sweep_digest->second;
        if (std::find(digest_conflicts_.begin(), digest_conflicts_.end(), conflict) ==
            digest_conflicts_.end()) {
          digest_conflicts_.push_back(conflict);
        }
        spdlog::error("coordinator: {}: it gets none of {}'s cells, so one version's cells are "
                      "not run by two different binaries (if its bytes are the right ones, "
                      "`imgsweep rerun --shard {} --binary-digest {}={}`)",
                      conflict, v.name, v.name, v.name, v.binary_sha256);
        continue;
      }
      entry.versions.emplace(v.name, v);
    }
    if (returning) {
      spdlog::info("coordinator: worker {}@{} is back; its {} leases stand", hello.name, hello.host,
                   LeasesOf(peer));
    } else {
      spdlog::info("coordinator: worker {}@{} joined: {} slots, {} versions", hello.name,
                   hello.host, hello.slots, entry.versions.size());
      ReleaseLeasesOf(peer);
    }
    if (auto tracked = peers_.find(peer); tracked != peers_.end()) {
      tracked->second.label = "worker " + hello.name;
    }
    workers_[peer] = std::move(entry);
    Tell(peer, Welcome{options_.sweep_id, static_cast<std::uint32_t>(options_.heartbeat.count()),
                       options_.liveness});
    ReportMissingVersions();  // at once, so whoever starts workers sees what is still missing
  }

  std::size_t LeasesOf(const std::string& peer) const {
    std::size_t n = 0;
    for (const auto& [id, lease] : leases_) n += lease.peer == peer ? 1 : 0;
    return n;
  }

  // A lease id this sweep handed out, in this incarnation or an earlier one.
  bool IssuedLease(std::uint64_t lease_id) const {
    const std::uint64_t incarnation = lease_id >> kLeaseCounterBits;
    const std::uint64_t counter = lease_id & ((std::uint64_t{1} << kLeaseCounterBits) - 1);
    if (incarnation == 0 || incarnation > incarnation_ || counter == 0) return false;
    return incarnation < incarnation_ || counter <= last_lease_;
  }

  void HandleResult(WorkerEntry& worker, CellResult& result) {
    Result<std::size_t> index = plan_.IndexOfKey(result.key);
    if (!index.ok()) return Drop(worker.peer, index.status().message());
    CellSlot& slot = cells_[index.value()];
    auto lease = leases_.find(result.lease_id);
    const bool given = slot.state == CellSlot::State::kLeased && slot.lease == result.lease_id &&
                       lease != leases_.end() && lease->second.peer == worker.peer;
    if (!given) {
      if (slot.state == CellSlot::State::kClosed) {
        ++discarded_results_;
        spdlog::info("coordinator: discarded {}'s result for {}: another attempt is stored",
                     worker.name, result.key);
        round_.acks.push_back(PendingAck{worker.peer, result.key});  // let it forget the copy
        return;
      }
      // A result from a lease that is no longer current (the worker was
      // taken for lost, or the coordinator restarted) is the cell's outcome
      // if the worker could have been given it; an infrastructure failure
      // of such a lease is only forgotten.
      const std::string& version = plan_.versions()[plan_.Ref(index.value()).version];
      if (!IssuedLease(result.lease_id) || !worker.versions.contains(version)) {
        return Drop(worker.peer, "a result for " + result.key + " which it was not given");
      }
      if (result.outcome == Outcome::kInfraFailure) {
        round_.acks.push_back(PendingAck{worker.peer, result.key});
        return;
      }
      ++late_results_;
      if (slot.state == CellSlot::State::kLeased) {
        if (auto other = leases_.find(slot.lease); other != leases_.end()) {
          other->second.open.erase(index.value());
          if (other->second.open.empty()) leases_.erase(other);
        }
      }
      // A pending cell stays in its queue; Dispatch skips it once closed.
      lease = leases_.end();
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
    CellWrite& write = WriteFor(index.value());
    if (lease != leases_.end()) round_.sent_of[round_.write_of[index.value()]] = lease->second.sent;
    attempt.failure_kind = result.failure_kind;
    if (result.outcome == Outcome::kInfraFailure) {
      spdlog::warn("coordinator: {} attempt {} on {}: {}", result.key, attempt.number, worker.name,
                   result.failure);
      ++infra_attempts_;
      if (attempt.failure_kind == FailureKind::kNone) attempt.failure_kind = FailureKind::kSpawnError;
      write.record.state = attempt.number - slot.round_start >= options_.max_attempts
                               ? CellState::kFailed
                               : CellState::kPending;
    } else {
      attempt.stdout_sha256 = Sha256Hex(result.stdout_text);
      attempt.stderr_sha256 = Sha256Hex(result.stderr_text);
      attempt.stdout_bytes = result.stdout_text.size();
      attempt.stderr_bytes = result.stderr_text.size();
      write.blobs.push_back({attempt.stdout_sha256, std::move(result.stdout_text)});
      write.blobs.push_back({attempt.stderr_sha256, std::move(result.stderr_text)});
      write.record.state = CellState::kDone;
    }
    write.record.round_start = slot.round_start;
    if (write.record.state == CellState::kDone) {
      write.record.inputs = plan_.CacheKey(ref, attempt.binary_sha256);
    }
    write.record.attempts.push_back(std::move(attempt));
    if (lease != leases_.end()) {
      lease->second.open.erase(index.value());
      if (lease->second.open.empty()) leases_.erase(lease);
    }
    slot.attempts += 1;
    if (write.record.state == CellState::kPending) {
      slot.state = CellSlot::State::kPending;
      round_.requeue.push_back(index.value());
    } else {
      slot.state = CellSlot::State::kClosed;
      slot.failed = write.record.state == CellState::kFailed;
      CountOutcome(write.record, &progress_);
      --open_cells_;
      ++ran_now_;
      ++by_worker_[worker.name];
    }
    round_.acks.push_back(PendingAck{worker.peer, result.key});
  }

  // The durable write first, then the acknowledgements: a result is
  // acknowledged only once the store has it. Writes run on the committer's
  // thread, one at a time, while this thread goes on; `wait` waits for the
  // one in flight and writes the rest of the round (the sweep's end).
  Status CommitAndAck(bool wait) {
    if (committer_.busy()) {
      std::optional<Status> done = committer_.Finish(std::chrono::milliseconds(0));
      while (wait && !done) done = committer_.Finish(options_.heartbeat);
      if (!done) return Status::Ok();
      Status st = FinishCommit(*done);
      if (!st.ok()) return st;
    }
    // A full round is due at once: ReceiveRound takes nothing more until it
    // is written, and would otherwise come straight back.
    const bool due = wait || round_.writes.size() >= kCommitBatch ||
                     round_.acks.size() >= kMaxResultsPerCommit ||
                     Clock::now() - round_started_ >= kCommitDelay;
    if (!round_.writes.empty() && !due) return Status::Ok();
    if (!round_.writes.empty()) {
      committing_ = std::move(round_);
      round_ = Batch{};
      commit_started_ = Clock::now();
      committer_.Start(&committing_.writes);
      if (wait) return CommitAndAck(true);
    } else if (!round_.acks.empty()) {
      SendAcks(round_.acks);  // results whose cells were stored before
      round_.acks.clear();
    }
    return Status::Ok();
  }

  // After the committer's write of `committing_`: tells the observers and
  // acknowledges its results.
  Status FinishCommit(const Status& written) {
    if (!written.ok()) return written;
    const Clock::time_point stored = Clock::now();
    if (!options_.observers.empty()) {
      std::vector<Clock::duration> waits;
      waits.reserve(committing_.sent_of.size());
      for (Clock::time_point sent : committing_.sent_of) {
        if (sent != Clock::time_point{}) waits.push_back(stored - sent);
      }
      for (CoordinatorObserver* o : options_.observers) {
        o->OnCommit(stored - commit_started_, committing_.writes.size());
        o->OnStored(waits);
      }
    }
    SendAcks(committing_.acks);
    for (std::size_t index : committing_.requeue) {
      if (cells_[index].state == CellSlot::State::kPending) {
        pending_[plan_.Ref(index).version].push_front(index);
      }
    }
    committing_ = Batch{};
    return Status::Ok();
  }

  void SendAcks(std::vector<PendingAck>& acks) {
    std::map<std::string, Ack> by_peer;
    for (PendingAck& ack : acks) by_peer[ack.peer].keys.push_back(std::move(ack.key));
    for (const auto& [peer, ack] : by_peer) Tell(peer, ack);
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
        const std::uint64_t lease_id =
            (std::uint64_t{incarnation_} << kLeaseCounterBits) | ++last_lease_;
        Lease lease;
        lease.peer = peer;
        Assignment assignment;
        assignment.lease_id = lease_id;
        while (assignment.cells.size() < n && !queue.empty()) {
          const std::size_t index = queue.front();
          queue.pop_front();
          CellSlot& slot = cells_[index];
          if (slot.state != CellSlot::State::kPending) continue;  // closed by a late result
          slot.state = CellSlot::State::kLeased;
          slot.lease = lease_id;
          lease.open.insert(index);
          assignment.cells.push_back(plan_.Spec(plan_.Ref(index), slot.attempts + 1));
        }
        if (assignment.cells.empty()) continue;  // the queue held only closed cells
        const std::size_t given = assignment.cells.size();
        // Every cell could run one after another on one slot, each to its
        // deadline: only after that (and some slack) is the lease lost.
        const auto span =
            plan_.timeout() * static_cast<std::int64_t>((given + worker.slots - 1) / worker.slots) +
            kLeaseSlack;
        lease.deadline = Clock::now() + span;
        assignment.deadline_unix_ms =
            UnixMillis() + std::chrono::duration_cast<std::chrono::milliseconds>(span).count();
        worker.credit -= static_cast<std::int64_t>(given);
        worker.last_version = *shard;
        const Clock::time_point sending = Clock::now();
        lease.sent = sending;
        leases_.emplace(lease_id, std::move(lease));
        const bool sent = socket_->Send(peer, Encode(assignment)).ok();
        for (CoordinatorObserver* o : options_.observers) o->OnDispatch(Clock::now() - sending, given);
        if (!sent) {
          ReleaseLease(lease_id);
          worker.credit = 0;
          break;
        }
        last_told_[peer] = Clock::now();
      }
    }
  }

  // Tells every worker the coordinator is still here, when nothing else did
  // for a heartbeat.
  void SendHeartbeats() {
    const Clock::time_point now = Clock::now();
    for (const auto& [peer, worker] : workers_) {
      Clock::time_point& last = last_told_[peer];
      if (now - last < options_.heartbeat) continue;
      Tell(peer, Heartbeat{});
      last = now;
    }
  }

  // The write of this round for the cell, made on first use from the write
  // still in flight, else what the store holds (read only when the cell has
  // attempts): each cell is written once per commit, whatever happened to
  // it in the round. The reference lasts until the next call.
  CellWrite& WriteFor(std::size_t index) {
    auto [it, inserted] = round_.write_of.emplace(index, round_.writes.size());
    if (!inserted) return round_.writes[it->second];
    if (round_.writes.empty()) round_started_ = Clock::now();
    CellWrite& write = round_.writes.emplace_back();
    round_.sent_of.emplace_back();
    write.key = plan_.Key(plan_.Ref(index));
    if (cells_[index].attempts > 0) {
      if (auto in_flight = committing_.write_of.find(index);
          in_flight != committing_.write_of.end()) {
        write.record = committing_.writes[in_flight->second].record;
      } else {
        Result<std::optional<CellRecord>> stored = store_->GetCell(write.key);
        if (stored.ok() && stored.value()) write.record = *stored.value();
      }
    }
    return write;
  }

  // Gives each open cell of a lease an infrastructure attempt (`kind`) on
  // the lease's worker and puts it back in the queue, or fails it when
  // that was its last allowed attempt.
  void FailLease(std::uint64_t lease_id, FailureKind kind, const std::string& why) {
    auto lease = leases_.find(lease_id);
    if (lease == leases_.end()) return;
    const WorkerEntry* worker = nullptr;
    if (auto w = workers_.find(lease->second.peer); w != workers_.end()) worker = &w->second;
    for (std::size_t index : lease->second.open) {
      CellSlot& slot = cells_[index];
      CellWrite& write = WriteFor(index);
      Attempt attempt;
      attempt.number = slot.attempts + 1;
      attempt.outcome = Outcome::kInfraFailure;
      attempt.failure_kind = kind;
      attempt.failure = std::string(FailureKindName(kind)) + ": " + why;
      attempt.started_unix_ms = UnixMillis();
      if (worker != nullptr) {
        attempt.worker = worker->name;
        attempt.host = worker->host;
      }
      slot.attempts += 1;
      ++infra_attempts_;
      write.record.round_start = slot.round_start;
      write.record.attempts.push_back(std::move(attempt));
      if (slot.attempts - slot.round_start >= options_.max_attempts) {
        write.record.state = CellState::kFailed;
        slot.state = CellSlot::State::kClosed;
        slot.failed = true;
        CountOutcome(write.record, &progress_);
        --open_cells_;
        spdlog::error("coordinator: {} failed on every allowed attempt ({} of {})", write.key,
                      slot.attempts - slot.round_start, options_.max_attempts);
      } else {
        write.record.state = CellState::kPending;
        slot.state = CellSlot::State::kPending;
        round_.requeue.push_back(index);
      }
    }
    leases_.erase(lease);
  }

  // The worker is gone as far as the sweep is concerned: its cells go to
  // others. If it comes back it says hello again.
  // `peer` may be the key of the entry erased here: it is not used after.
  void LoseWorker(const std::string& peer, const std::string& why) {
    auto worker = workers_.find(peer);
    if (worker == workers_.end()) return;
    const std::string name = worker->second.name;
    std::vector<std::uint64_t> ids;
    std::size_t cells = 0;
    for (const auto& [id, lease] : leases_) {
      if (lease.peer != peer) continue;
      ids.push_back(id);
      cells += lease.open.size();
    }
    spdlog::warn("coordinator: lost worker {}: {}; its {} cells go back to the queue", name, why,
                 cells);
    for (std::uint64_t id : ids) FailLease(id, FailureKind::kWorkerLost, "worker " + name + " " + why);
    ++workers_lost_;
    last_told_.erase(peer);
    workers_.erase(worker);  // last: it may own `peer`
  }

  void LoseSilentWorkers() {
    const Clock::time_point now = Clock::now();
    const auto allowed = options_.heartbeat * static_cast<std::int64_t>(options_.liveness);
    std::vector<std::string> silent;
    for (const auto& [peer, worker] : workers_) {
      if (now - worker.last_seen >= allowed) silent.push_back(peer);
    }
    for (const std::string& peer : silent) {
      LoseWorker(peer, "silent for " + std::to_string(allowed.count()) + " ms");
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
      FailLease(id, FailureKind::kLeaseExpired, "not returned before the lease's deadline");
    }
  }

  const Progress& Snapshot() {
    progress_.cells = cells_.size();
    progress_.closed = cells_.size() - open_cells_;
    progress_.ran_now = ran_now_;
    progress_.workers = workers_.size();
    progress_.leased = 0;
    for (const auto& [id, lease] : leases_) progress_.leased += lease.open.size();
    progress_.rejected_frames = rejected_frames_;
    progress_.workers_lost = workers_lost_;
    progress_.elapsed = Clock::now() - started_;
    return progress_;
  }

  void Notify() {
    if (options_.observers.empty()) return;
    const Progress& p = Snapshot();
    for (CoordinatorObserver* o : options_.observers) o->OnProgress(p);
  }

  // The live state for `imgsweep status --connect` (docs/protocol.md).
  std::string LiveStatusJson() {
    const Clock::time_point now = Clock::now();
    const Progress& p = Snapshot();
    nlohmann::ordered_json j;
    j["sweep_id"] = options_.sweep_id;
    j["cells"] = p.cells;
    j["closed"] = p.closed;
    j["failed"] = p.failed;
    j["in_flight"] = p.leased;
    j["ran_now"] = p.ran_now;
    j["elapsed_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(p.elapsed).count();
    std::map<std::string, std::size_t> in_flight;  // by peer
    for (const auto& [id, lease] : leases_) in_flight[lease.peer] += lease.open.size();
    nlohmann::ordered_json workers = nlohmann::ordered_json::array();
    std::set<std::string> held;
    for (const auto& [peer, w] : workers_) {
      nlohmann::ordered_json versions = nlohmann::ordered_json::array();
      for (const auto& [name, info] : w.versions) {
        versions.push_back(name);
        held.insert(name);
      }
      auto done = by_worker_.find(w.name);
      workers.push_back({{"name", w.name},
                         {"host", w.host},
                         {"slots", w.slots},
                         {"versions", versions},
                         {"in_flight", in_flight[peer]},
                         {"done", done == by_worker_.end() ? 0 : done->second},
                         {"last_heard_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                               now - w.last_seen)
                                               .count()}});
    }
    j["workers"] = workers;
    struct Counts {
      std::size_t done = 0, failed = 0, pending = 0, leased = 0;
    };
    std::vector<Counts> shards(plan_.versions().size());
    for (std::size_t i = 0; i < cells_.size(); ++i) {
      Counts& c = shards[plan_.Ref(i).version];
      switch (cells_[i].state) {
        case CellSlot::State::kPending:
          ++c.pending;
          break;
        case CellSlot::State::kLeased:
          ++c.leased;
          break;
        case CellSlot::State::kClosed:
          ++(cells_[i].failed ? c.failed : c.done);
          break;
      }
    }
    nlohmann::ordered_json shard_list = nlohmann::ordered_json::array();
    nlohmann::ordered_json missing = nlohmann::ordered_json::array();
    for (std::size_t v = 0; v < shards.size(); ++v) {
      const std::string& name = plan_.versions()[v];
      const Counts& c = shards[v];
      shard_list.push_back({{"version", name},
                            {"done", c.done},
                            {"failed", c.failed},
                            {"pending", c.pending},
                            {"in_flight", c.leased}});
      if (c.pending + c.leased > 0 && !held.contains(name)) missing.push_back(name);
    }
    j["shards"] = shard_list;
    j["versions_without_worker"] = missing;
    return j.dump();
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
  std::map<std::uint64_t, Lease> leases_;
  std::uint64_t incarnation_ = 1;  // this start on the store: 1, 2, ...
  std::uint64_t last_lease_ = 0;   // the counter half of the last lease id
  std::map<std::string, std::string> digests_;  // version -> the sweep's binary sha256
  std::map<std::string, Clock::time_point> last_told_;  // by peer: the last frame sent
  std::vector<std::string> digest_conflicts_;
  std::size_t workers_lost_ = 0;
  std::size_t late_results_ = 0;
  Progress progress_;  // outcome counts kept as cells close; the rest filled by Snapshot
  const Clock::time_point started_ = Clock::now();
  std::size_t infra_attempts_ = 0;
  Batch round_;       // what this round stores and acknowledges
  Batch committing_;  // the write in flight on the committer (if busy)
  Clock::time_point round_started_;  // when round_ got its first write
  Clock::time_point commit_started_;
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
  // Last, so it is destroyed first: its thread may still read committing_.
  Committer committer_;
};

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
