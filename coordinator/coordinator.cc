#include "coordinator/coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include "coordinator/broken_versions.h"
#include "coordinator/committer.h"
#include "coordinator/lease_table.h"
#include "coordinator/live_status.h"
#include "coordinator/result_recorder.h"
#include "coordinator/scheduler.h"
#include "coordinator/stored_cells.h"
#include "coordinator/version_digests.h"
#include "protocol/messages.h"
#include "protocol/utf8.h"
#include "protocol/version_name.h"
#include "sweep/audit.h"

namespace imgsweep {
namespace {

// A lease outlives its cells' own deadlines by this much before the
// coordinator takes them back.
constexpr auto kLeaseSlack = std::chrono::seconds(30);

}  // namespace

// Wires the parts to the transport: frames in, decisions by the parts,
// frames out. Each handler below is one message's rule.
class Coordinator::Impl {
 public:
  Impl(CoordinatorOptions options, Plan plan, Store* store, std::unique_ptr<Context> context,
       std::unique_ptr<ServerTransport> transport, const Clock* clock, StoredCells stored)
      : options_(std::move(options)),
        plan_(std::move(plan)),
        clock_(clock),
        context_(std::move(context)),
        transport_(std::move(transport)),
        pipeline_(store, clock),
        recorder_(&plan_, &pipeline_, clock, options_.max_attempts, options_.audit_percent),
        leases_(plan_.cell_count(), stored.incarnation),
        scheduler_(&plan_),
        peers_(options_.max_rejected_frames),
        broken_(options_.broken_reports_to_give_up),
        store_(store),
        digests_(&plan_, store, std::move(stored.digests)),
        layouts_(&plan_, options_.image_layout, std::move(stored.layouts)),
        started_(clock->Now()),
        next_missing_report_(started_ + options_.missing_report_interval) {
    for (std::size_t i = 0; i < stored.slots.size(); ++i) {
      CellSlot& slot = recorder_.slot(i);
      slot.attempts = stored.slots[i].attempts;
      slot.round_start = stored.slots[i].round_start;
      if (stored.reused[i]) {
        recorder_.Reuse(i);
      } else {
        scheduler_.Enqueue(i);
      }
    }
    recorder_.CountReused(stored.reused_counts);
    for (const auto& [cell, hosts] : stored.held) {  // outcomes waiting for another host
      if (AuditSelects(plan_.Key(plan_.Ref(cell)), options_.audit_percent)) {
        scheduler_.KeepFrom(cell, hosts);
      }
    }
    if (options_.sweep_id.empty()) options_.sweep_id = stored.sweep_id;
    for (const LeaseRecord& grant : stored.leases) {
      std::vector<std::size_t> cells;
      for (const std::string& key : grant.cells) {
        if (Result<std::size_t> index = plan_.IndexOfKey(key); index.ok()) cells.push_back(index.value());
      }
      leases_.Restore(grant.id, grant.session, std::move(cells));
    }
  }

  const std::string& endpoint() const { return transport_->endpoint(); }
  std::size_t open_cells() const { return recorder_.open(); }

  Result<SweepSummary> Run() {
    while (recorder_.open() > 0) {
      if (options_.keep_going) {
        Status st = options_.keep_going();
        if (!st.ok()) {
          // Stopped: the workers are told to go first, then what was
          // received and granted is stored, so a restart takes the workers'
          // late results. In the other order a synced commit slower than
          // the workers' liveness (a loaded disk) sent nothing meanwhile:
          // a worker took the silence for a lost link, made a new
          // connection, and the shutdown went to the old one.
          for (const auto& [peer, worker] : peers_.workers()) {
            Tell(peer, Shutdown{"the coordinator stopped: " + st.message()});
          }
          Status stored = CommitAndAck(/*wait=*/true);
          if (!stored.ok()) spdlog::warn("coordinator: {}", stored.message());
          return st;
        }
      }
      Status st = Round();
      if (!st.ok()) return st;
    }
    return Finish();
  }

  Status Round() {
    if (options_.allowed_keys_update) {
      if (std::optional<std::set<std::string>> keys = options_.allowed_keys_update()) {
        AllowOnly(*keys);
      }
    }
    Status st = ReceiveRound();
    if (!st.ok()) return st;
    for (const Refusal& r : transport_->TakeRefusals()) {
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
    EvictBusy();
    Notify();
    if (clock_->Now() >= next_missing_report_) {
      GiveUpBrokenVersions();  // a worker that ran one may have gone, its cells come back
      ReportMissingVersions();
      next_missing_report_ = clock_->Now() + options_.missing_report_interval;
    }
    return Status::Ok();
  }

  Result<SweepSummary> Finish() {
    Status st = CommitAndAck(/*wait=*/true);  // what is still in flight, then the rest
    if (!st.ok()) return st;
    // Every result is durable: the workers may go now, not after the
    // tidying below. This loop answers no heartbeat while it tidies, and a
    // worker that waited out its liveness would connect again and miss
    // the word.
    for (const auto& [peer, worker] : peers_.workers()) Tell(peer, Shutdown{"the sweep is complete"});
    if (recorder_.open() == 0) {  // no late result is left to check against a grant
      st = store_->DropLeases();
      if (!st.ok()) return st;
    }
    st = store_->Flush();
    if (!st.ok()) return st;
    Notify();
    return Summary();
  }

 private:
  SweepSummary Summary() const {
    SweepSummary s;
    static_cast<OutcomeCounts&>(s) = recorder_.counts();
    s.cells = plan_.cell_count();
    s.ran_now = recorder_.ran_now();
    s.by_worker = recorder_.by_worker();
    s.rejected_frames = peers_.rejected_frames();
    s.ignored_frames = peers_.ignored_frames();
    s.refused_connections = refused_connections_;
    s.discarded_results = discarded_results_;
    s.workers_lost = workers_lost_;
    s.late_results = late_results_;
    s.infra_attempts = recorder_.infra_attempts();
    s.digest_conflicts = digests_.conflicts();
    s.layout_conflicts = layouts_.conflicts();
    s.rejections = peers_.Rejections();
    s.broken_versions = broken_.given_up();
    s.broken_cells = broken_cells_;
    return s;
  }

  // Waits for the first frame up to half a heartbeat (so heartbeats leave
  // on time), or until the round's write is due or the one in flight ends,
  // then takes what is queued. A full round waits only for the write.
  Status ReceiveRound() {
    std::chrono::milliseconds wait = pipeline_.WaitBudget(options_.heartbeat / 2);
    if (pipeline_.full()) {
      Result<std::optional<CommitPipeline::Written>> written = pipeline_.Collect(wait);
      if (!written.ok()) return written.status();
      if (written.value()) Acknowledge(*written.value());
      return Status::Ok();
    }
    const int wake_fd = pipeline_.wake_fd();
    while (!pipeline_.full()) {
      Result<std::optional<Envelope>> got = transport_->Receive(wait, wake_fd);
      if (!got.ok()) return got.status();
      if (!got.value()) break;
      handling_ = &*got.value();
      HandleFrame(*got.value());
      EvictBusy();
      handling_ = nullptr;
      wait = std::chrono::milliseconds(0);
    }
    return Status::Ok();
  }

  // Sends without an answer to wait for. A peer that has gone cannot be
  // told anything; what it held comes back through its leases, so the
  // failure is only logged.
  bool Tell(const std::string& peer, const Message& message) {
    Status st = transport_->Send(peer, Encode(message));
    if (st.code() == StatusCode::kBusy) {
      // It has not read what it was sent (a whole queue): it never blocks
      // this thread, and it is cut off; what it held goes back at EvictBusy.
      if (peers_.CutOff(peer, "it left its queue of frames unread")) busy_.push_back(peer);
      return false;
    }
    if (!st.ok()) {
      spdlog::debug("coordinator: {} not delivered: {}", MessageName(message), st.message());
      return false;
    }
    if (WorkerEntry* worker = peers_.Worker(peer)) worker->last_told = clock_->Now();
    return true;
  }

  void Drop(const std::string& peer, const std::string& why) {
    if (peers_.Reject(peer, why)) Evict(peer);
  }

  // A peer just cut off: its connection closed when its frame is the one
  // in hand, and as a worker, its leases back to the queue.
  void Evict(const std::string& peer) {
    if (handling_ != nullptr && handling_->peer == peer) {
      Status closed = transport_->Disconnect(*handling_);
      if (!closed.ok()) spdlog::debug("coordinator: {}", closed.message());
    }
    if (peers_.Worker(peer) != nullptr) {
      ReleaseLeasesOf(peer);
      peers_.Remove(peer);
    }
  }

  // A new allowlist: later handshakes need one of `keys`, and whoever is
  // connected with another key is cut off (its leases go back to the queue,
  // its frames are ignored; its next connection fails the handshake).
  void AllowOnly(const std::set<std::string>& keys) {
    if (Status st = transport_->AllowKeys(keys); !st.ok()) {
      spdlog::error("coordinator: cannot change the allowed keys: {}", st.message());
      return;
    }
    const std::vector<std::string> revoked = peers_.PeersOutside(keys);
    const bool own = options_.security.curve && keys.count(options_.security.curve->public_key) > 0;
    spdlog::info("coordinator: {} worker keys allowed now; {} connected peers lose theirs",
                 keys.size() - (own ? 1 : 0), revoked.size());
    for (const std::string& peer : revoked) {
      if (peers_.CutOff(peer, "its key is no longer allowed")) Evict(peer);
    }
  }

  // Tell cuts a peer off while loops may walk the workers; they are
  // evicted here, between steps.
  void EvictBusy() {
    std::vector<std::string> busy;
    busy.swap(busy_);
    for (const std::string& peer : busy) Evict(peer);
  }

  void HandleFrame(const Envelope& envelope) {
    PeerState& state = peers_.StateOf(envelope);
    if (state.cut_off) return peers_.CountIgnored();
    if (envelope.parts != 1) {
      return Drop(envelope.peer, "a message of " + std::to_string(envelope.parts) +
                                     " frames; the protocol sends one");
    }
    Result<Message> decoded = Decode(envelope.frame);
    WorkerEntry* worker = peers_.Worker(envelope.peer);
    if (!decoded.ok()) {
      if (worker == nullptr) Tell(envelope.peer, Refused{decoded.status().message()});
      return Drop(envelope.peer, decoded.status().message());
    }
    Message& message = decoded.value();
    if (const std::string bad = FirstNonUtf8Field(message); !bad.empty()) {
      const std::string why = std::string(MessageName(message)) + ": " + bad + " is not UTF-8";
      if (worker == nullptr) Tell(envelope.peer, Refused{why});
      return Drop(envelope.peer, why);
    }
    if (std::holds_alternative<StatusRequest>(message)) {
      if (!PeerRegistry::TakeStatusToken(state, clock_->Now())) {
        return Drop(envelope.peer, "status requests faster than the limit");
      }
      Tell(envelope.peer, StatusReply{LiveStatusJson(View())});
      return;
    }
    if (auto* hello = std::get_if<Hello>(&message)) {
      return HandleHello(envelope.peer, envelope.key, *hello);
    }
    if (worker == nullptr) return HandleStranger(envelope.peer, state, message);
    worker->last_seen = clock_->Now();
    if (auto* credit = std::get_if<Credit>(&message)) {
      worker->credit = std::min<std::int64_t>(worker->credit + credit->cells,
                                              4 * static_cast<std::int64_t>(kMaxSlots));
    } else if (auto* result = std::get_if<CellResult>(&message)) {
      HandleResult(*worker, *result);
    } else if (auto* results = std::get_if<Results>(&message)) {
      // A bad one may get the worker evicted: the rest of the frame goes with it.
      for (CellResult& r : results->results) {
        if (worker != peers_.Worker(envelope.peer)) break;
        HandleResult(*worker, r);
      }
    } else if (!std::holds_alternative<Heartbeat>(message)) {
      Drop(envelope.peer, std::string("unexpected ") + MessageName(message));
    }
  }

  // A worker the coordinator does not know (it restarted, or took the
  // worker for lost): results and credit are not stored, and it is asked,
  // at most once a heartbeat, to say hello again.
  void HandleStranger(const std::string& peer, PeerState& state, const Message& message) {
    if (std::holds_alternative<CellResult>(message) || std::holds_alternative<Results>(message) ||
        std::holds_alternative<Credit>(message) ||
        std::holds_alternative<Heartbeat>(message)) {
      const Clock::TimePoint now = clock_->Now();
      if (now - state.told_hello_first >= options_.heartbeat) {
        state.told_hello_first = now;
        Tell(peer, HelloFirst{});
      }
      return;
    }
    Tell(peer, Refused{"say hello first"});
    Drop(peer, std::string(MessageName(message)) + " before hello");
  }

  // `key`: the peer's CURVE key, empty in plain text. With CURVE a name
  // belongs to the key that first said hello with it in this run, so no
  // other allowed peer can take it over and evict its worker.
  void HandleHello(const std::string& peer, const std::string& key, const Hello& hello) {
    const std::string problem = PeerRegistry::CheckHello(hello);
    if (!problem.empty()) {
      spdlog::warn("coordinator: refused worker {}@{}: {}", hello.name, hello.host, problem);
      Tell(peer, Refused{problem});
      return;
    }
    if (!key.empty()) {
      const auto [owner, first] = name_keys_.try_emplace(hello.name, key);
      if (!first && owner->second != key) {
        const std::string why = "the name " + hello.name + " belongs to another key (" +
                                owner->second.substr(0, 8) + "...) in this sweep";
        Tell(peer, Refused{why});
        return Drop(peer, "hello: " + why);
      }
    }
    // The same name again: the same process on a new connection keeps its
    // leases; another process under the name replaces the one before. A
    // hello again on the same connection from the same process (a retried
    // hello that crossed a reconnection) keeps them too: the worker still
    // runs those cells, and handing them out again would run them twice.
    bool returning = false;
    std::optional<std::size_t> last_version;
    if (const WorkerEntry* again = peers_.Worker(peer);
        again != nullptr && !hello.session.empty() && again->session == hello.session &&
        again->name == hello.name) {
      returning = true;
      last_version = again->last_version;
    } else if (WorkerEntry* before = peers_.WorkerNamed(hello.name, peer)) {
      const std::string before_peer = before->peer;
      if (!hello.session.empty() && before->session == hello.session) {
        returning = true;
        last_version = before->last_version;
        leases_.Rebind(before_peer, peer);
        peers_.Remove(before_peer);
      } else {
        LoseWorker(before_peer, "replaced by a new worker process of the same name");
      }
    }
    WorkerEntry entry{peer, hello.name, hello.host, hello.session, hello.slots, {}, 0,
                      last_version, clock_->Now(), {}};
    for (const VersionInfo& v : hello.versions) {
      if (digests_.Accept(hello.name, v)) entry.versions.emplace(v.name, v);
    }
    for (const std::string& v : plan_.versions()) entry.holds_version.push_back(entry.versions.contains(v));
    entry.layout = TreeLayout(hello.sparse);
    entry.refused_images = layouts_.Refused(hello.name, entry.layout);
    entry.runs_type = TypesRunBy(hello);
    for (const BrokenVersion& b : hello.broken) {
      if (IsVersionName(b.name)) broken_.Report(hello.name, b.name, b.reason);
    }
    if (returning) {
      spdlog::info("coordinator: worker {}@{} is back; its {} leases stand", hello.name, hello.host,
                   leases_.HeldBy(peer).size());
    } else {
      spdlog::info("coordinator: worker {}@{} joined: {} slots, {} versions", hello.name,
                   hello.host, hello.slots, entry.versions.size());
      ReleaseLeasesOf(peer);
    }
    peers_.Admit(std::move(entry));
    Tell(peer, Welcome{options_.sweep_id, static_cast<std::uint32_t>(options_.heartbeat.count()),
                       options_.liveness});
    GiveUpBrokenVersions();
    ReportMissingVersions();  // at once, so whoever starts workers sees what is still missing
  }

  // Per output type of the plan, whether the worker's command table (which
  // CheckHello parsed; the built-in one when it sent none) runs its cells;
  // says which it does not.
  std::vector<bool> TypesRunBy(const Hello& hello) const {
    Result<CommandTable> table = hello.command_table.empty()
                                     ? Result<CommandTable>(CommandTable::BuiltIn())
                                     : CommandTable::Parse(hello.command_table, "its command table");
    if (!table.ok()) return std::vector<bool>(plan_.types().size(), false);
    std::vector<bool> runs = plan_.TypesRunBy(table.value());
    std::string lacking;
    for (std::size_t t = 0; t < runs.size(); ++t) {
      if (!runs[t]) lacking += (lacking.empty() ? "" : ", ") + plan_.types()[t].name;
    }
    if (!lacking.empty()) {
      spdlog::warn("coordinator: worker {}@{} does not run {} (not in its command table); "
                   "their cells go to workers that do",
                   hello.name, hello.host, lacking);
    }
    return runs;
  }

  // Fails the open cells of each version that enough workers hold broken
  // and no connected worker runs; the sweep goes on with the others.
  void GiveUpBrokenVersions() {
    if (broken_.empty()) return;
    broken_cells_ += broken_.GiveUp(plan_, peers_.HeldVersions(), leases_, &recorder_);
  }

  // A result over the output limit is refused as a frame and recorded as
  // an output-limit failure of its attempt, so the cell runs elsewhere.
  void HandleResult(WorkerEntry& worker, CellResult& result) {
    std::string over;
    for (const auto* stream : {&result.stdout_text, &result.stderr_text}) {
      if (stream->size() > options_.output_limit_bytes && over.empty()) {
        over = "a result for " + result.key + " with " + std::to_string(stream->size()) +
               " bytes of " + (stream == &result.stdout_text ? "stdout" : "stderr") +
               ", over the output limit of " + std::to_string(options_.output_limit_bytes);
      }
    }
    if (over.empty()) return AcceptResult(worker, result);
    result.outcome = Outcome::kInfraFailure;
    result.failure_kind = FailureKind::kOutputLimit;
    result.failure = "output-limit: the coordinator refused " + over;
    result.stdout_text.clear();
    result.stderr_text.clear();
    const std::string peer = worker.peer;  // AcceptResult may evict the worker
    AcceptResult(worker, result);
    Drop(peer, over);
  }

  // A result counts when it is of this sweep and its worker holds the cell
  // under that lease, run with the inputs its spec named. One from a lease
  // no longer current is the cell's outcome while the cell is open, if that
  // lease gave the cell to this worker process (it was taken for lost and
  // came back, or the coordinator restarted: the store keeps the grants),
  // and it ran with the inputs the plan has now. The first stored result
  // wins; one the worker was never given is forged and dropped.
  void AcceptResult(WorkerEntry& worker, CellResult& result) {
    Result<std::size_t> index = plan_.IndexOfKey(result.key);
    if (!index.ok()) return Drop(worker.peer, index.status().message());
    const std::size_t cell = index.value();
    // An honest worker may hold one from a coordinator on another store.
    if (result.sweep_id != options_.sweep_id) return Discard(worker, result, "it is of another sweep");
    const LeaseTable::Lease* lease = leases_.Find(result.lease_id);
    const bool given = leases_.Holds(result.lease_id, worker.peer, cell);
    // A standing lease keeps what its spec named; hashing the inputs again
    // for every result would cost a digest per cell.
    const std::string* named = given ? leases_.InputsOf(result.lease_id, cell) : nullptr;
    const bool same_inputs =
        named != nullptr ? result.inputs == *named : result.inputs == InputsFor(worker, cell);
    if (given && (!same_inputs || result.attempt != recorder_.slot(cell).attempts + 1)) {
      return Drop(worker.peer,
                  "a result for " + result.key + " with another attempt or inputs than its spec's");
    }
    if (!given) {
      const bool closed = recorder_.slot(cell).closed;
      const bool granted = leases_.Granted(result.lease_id, worker.session, cell);
      // A lease of an earlier incarnation that the store does not have
      // may have been this worker's: the coordinator stopped first.
      const bool unrecorded =
          leases_.FromEarlierIncarnation(result.lease_id) && !leases_.Recorded(result.lease_id);
      if (!closed && !granted && !unrecorded) {
        return Drop(worker.peer, "a result for " + result.key + " which it was not given");
      }
      if (closed) return Discard(worker, result, "another attempt is stored");
      if (!granted) return Discard(worker, result, "its lease was not stored before a restart");
      if (!same_inputs) return Discard(worker, result, "it ran with other inputs than the plan's now");
      if (result.outcome == Outcome::kInfraFailure) {  // a late failure is only forgotten
        pipeline_.Ack(worker.peer, result.key);
        return;
      }
      ++late_results_;
    }
    const Clock::TimePoint sent = given ? lease->sent : Clock::TimePoint{};
    leases_.Close(cell);  // a late result ends whatever lease holds the cell now
    recorder_.RecordResult(worker, cell, result);
    if (given) pipeline_.SetSent(cell, sent);
    pipeline_.Ack(worker.peer, result.key);
  }

  // Stores nothing of `result`, and lets its worker forget it.
  void Discard(const WorkerEntry& worker, const CellResult& result, const char* why) {
    ++discarded_results_;
    spdlog::info("coordinator: discarded {}'s result for {}: {}", worker.name, result.key, why);
    pipeline_.Ack(worker.peer, result.key);
  }

  // The durable write first, then the acknowledgements: a result is
  // acknowledged only once the store has it. `wait` waits for the write in
  // flight and writes the rest of the round (the sweep's end).
  Status CommitAndAck(bool wait) {
    for (;;) {
      if (pipeline_.busy()) {
        Result<std::optional<CommitPipeline::Written>> written =
            pipeline_.Collect(wait ? options_.heartbeat : std::chrono::milliseconds(0));
        if (!written.ok()) return written.status();
        if (!written.value()) {
          if (wait) continue;
          return Status::Ok();
        }
        Acknowledge(*written.value());
      }
      SendAcks(pipeline_.StartIfDue(wait));
      if (!wait || pipeline_.idle()) return Status::Ok();
    }
  }

  // After a durable write: tells the observers, acknowledges its results,
  // and queues its retried cells again.
  void Acknowledge(const CommitPipeline::Written& written) {
    if (!options_.observers.empty()) {
      std::vector<Clock::Duration> waits;
      for (Clock::TimePoint sent : written.batch.sent_of) {
        if (sent != Clock::TimePoint{}) waits.push_back(written.stored - sent);
      }
      for (CoordinatorObserver* o : options_.observers) {
        o->OnCommit(written.took, written.results);
        o->OnStored(waits);
      }
    }
    SendAcks(written.batch.acks);
    for (const Requeue& r : written.batch.requeue) {
      if (!recorder_.slot(r.cell).closed && !leases_.IsLeased(r.cell)) {
        scheduler_.Requeue(r.cell, r.avoid);
        if (!r.hosts.empty()) scheduler_.KeepFrom(r.cell, r.hosts);
      }
    }
  }

  void SendAcks(const std::vector<PendingAck>& acks) {
    std::map<std::string, Ack> by_peer;
    for (const PendingAck& ack : acks) by_peer[ack.peer].keys.push_back(ack.key);
    for (const auto& [peer, ack] : by_peer) Tell(peer, ack);
  }

  void Dispatch() {
    auto takeable = [this](std::size_t cell) {
      return !recorder_.slot(cell).closed && !leases_.IsLeased(cell);
    };
    for (auto& [peer_id, worker] : peers_.workers()) {
      const std::string& peer = peer_id;  // a lambda may not capture a structured binding
      auto other_holds = [&peer, this](const std::string& version) {
        return peers_.OtherHolds(version, peer);
      };
      while (worker.credit > 0) {
        const std::size_t most =
            std::min(static_cast<std::size_t>(worker.credit), options_.max_batch);
        std::vector<std::size_t> cells = scheduler_.Take(worker, most, takeable, other_holds);
        if (cells.empty()) break;
        if (!Assign(worker, cells)) break;
      }
    }
  }

  // The digest of what `worker` runs a cell with: its binary, its layout,
  // and `args` (the cell's Plan::Args: an assignment has them in its spec).
  std::string InputsFor(const WorkerEntry& worker, const CellRef& ref,
                        const std::vector<std::string>& args) const {
    auto version = worker.versions.find(plan_.versions()[ref.version]);
    return plan_.CacheKey(ref,
                          version == worker.versions.end() ? "" : version->second.binary_sha256,
                          worker.layout, args);
  }
  std::string InputsFor(const WorkerEntry& worker, std::size_t cell) const {
    const CellRef ref = plan_.Ref(cell);
    return InputsFor(worker, ref, plan_.Args(ref));
  }

  // Leases `cells` to the worker and sends them; false when the worker
  // cannot be reached (the cells go back to the queue).
  bool Assign(WorkerEntry& worker, const std::vector<std::size_t>& cells) {
    // Every cell could run one after another on one slot, each to its
    // deadline: only after that (and some slack) is the lease lost.
    const auto span =
        plan_.timeout() * static_cast<std::int64_t>((cells.size() + worker.slots - 1) / worker.slots) +
        kLeaseSlack;
    const Clock::TimePoint sending = clock_->Now();
    Assignment assignment;
    std::vector<std::string> inputs;
    inputs.reserve(cells.size());
    LeaseRecord grant{0, worker.session, {}};
    for (std::size_t cell : cells) {
      const CellRef ref = plan_.Ref(cell);
      CellSpec& spec = assignment.cells.emplace_back(plan_.Spec(ref, recorder_.slot(cell).attempts + 1));
      spec.inputs = InputsFor(worker, ref, spec.args);
      inputs.push_back(spec.inputs);
      grant.cells.push_back(spec.key);
    }
    assignment.lease_id = leases_.Issue(worker.peer, worker.session, cells, sending, sending + span,
                                        std::move(inputs));
    assignment.deadline_unix_ms =
        clock_->UnixMillis() + std::chrono::duration_cast<std::chrono::milliseconds>(span).count();
    grant.id = assignment.lease_id;
    pipeline_.Grant(std::move(grant));
    worker.credit -= static_cast<std::int64_t>(cells.size());
    const std::uint64_t lease_id = assignment.lease_id;
    // Moved, not copied, into the message: a batch holds up to a few
    // hundred specs.
    const bool sent = Tell(worker.peer, Message(std::move(assignment)));
    for (CoordinatorObserver* o : options_.observers) {
      o->OnDispatch(clock_->Now() - sending, cells.size());
    }
    if (!sent) {
      for (std::size_t cell : leases_.End(lease_id)) scheduler_.Requeue(cell, "");
      worker.credit = 0;
    }
    return sent;
  }

  // Tells every worker the coordinator is still here, when nothing else did
  // for a heartbeat.
  void SendHeartbeats() {
    const Clock::TimePoint now = clock_->Now();
    for (auto& [peer, worker] : peers_.workers()) {
      if (now - worker.last_told >= options_.heartbeat) Tell(peer, Heartbeat{});
    }
  }

  // Gives each open cell of a lease an infrastructure attempt (`kind`) on
  // the lease's worker; the recorder puts it back or fails it.
  void FailLease(std::uint64_t id, FailureKind kind, const std::string& why) {
    const LeaseTable::Lease* lease = leases_.Find(id);
    if (lease == nullptr) return;
    const WorkerEntry* worker = peers_.Worker(lease->peer);
    for (std::size_t cell : leases_.End(id)) recorder_.RecordLoss(cell, kind, why, worker);
  }

  // The worker is gone as far as the sweep is concerned: its cells go to
  // others. If it comes back it says hello again.
  // REQUIRES: `peer` is not the registry's own copy, which this erases.
  void LoseWorker(const std::string& peer, const std::string& why) {
    WorkerEntry* worker = peers_.Worker(peer);
    if (worker == nullptr) return;
    const std::string name = worker->name;
    spdlog::warn("coordinator: lost worker {}: {}; its {} cells go back to the queue", name, why,
                 leases_.CellsHeldBy(peer));
    for (std::uint64_t id : leases_.HeldBy(peer)) {
      FailLease(id, FailureKind::kWorkerLost, "worker " + name + " " + why);
    }
    ++workers_lost_;
    peers_.Remove(peer);
  }

  void LoseSilentWorkers() {
    const Clock::TimePoint now = clock_->Now();
    const auto allowed = options_.heartbeat * static_cast<std::int64_t>(options_.liveness);
    std::vector<std::string> silent;
    for (const auto& [peer, worker] : peers_.workers()) {
      if (now - worker.last_seen >= allowed) silent.push_back(peer);
    }
    for (const std::string& peer : silent) {
      LoseWorker(peer, "silent for " + std::to_string(allowed.count()) + " ms");
    }
  }

  // Without an attempt: the cells never reached the worker's slots as far
  // as anyone knows (it said hello anew, or was cut off).
  void ReleaseLeasesOf(const std::string& peer) {
    for (std::uint64_t id : leases_.HeldBy(peer)) {
      for (std::size_t cell : leases_.End(id)) scheduler_.Requeue(cell, "");
    }
  }

  void ExpireLeases() {
    for (std::uint64_t id : leases_.ExpiredAt(clock_->Now())) {
      spdlog::warn("coordinator: lease {} expired; its {} cells go back to the queue", id,
                   leases_.Find(id)->open);
      FailLease(id, FailureKind::kLeaseExpired, "not returned before the lease's deadline");
    }
  }

  const Progress& Snapshot() {
    static_cast<OutcomeCounts&>(progress_) = recorder_.counts();
    progress_.cells = plan_.cell_count();
    progress_.closed = plan_.cell_count() - recorder_.open();
    progress_.ran_now = recorder_.ran_now();
    progress_.workers = peers_.workers().size();
    progress_.leased = leases_.leased_cells();
    progress_.rejected_frames = peers_.rejected_frames();
    progress_.workers_lost = workers_lost_;
    progress_.elapsed = clock_->Now() - started_;
    return progress_;
  }

  LiveView View() {
    return LiveView{options_.sweep_id, Snapshot(), plan_,
                    peers_,            leases_,    recorder_,
                    broken_.given_up(), layouts_.conflicts(), clock_->Now()};
  }

  void Notify() {
    if (options_.observers.empty()) return;
    const Progress& p = Snapshot();
    for (CoordinatorObserver* o : options_.observers) o->OnProgress(p);
  }

  void ReportMissingVersions() {
    if (peers_.workers().empty()) {
      spdlog::warn("coordinator: waiting for workers at {}; {} cells to go", endpoint(),
                   recorder_.open());
      return;
    }
    const std::string missing = VersionsWithoutWorker(View());
    if (!missing.empty()) spdlog::warn("coordinator: waiting for a worker that holds {}", missing);
    const std::string types = TypesWithoutWorker(View());
    if (!types.empty()) {
      spdlog::warn("coordinator: waiting for a worker whose command table runs {}", types);
    }
  }

  CoordinatorOptions options_;
  const Plan plan_;
  const Clock* const clock_;
  std::unique_ptr<Context> context_;  // may be null: a transport of the caller's
  std::unique_ptr<ServerTransport> transport_;
  // Before the recorder, which writes through it; destroyed after it.
  CommitPipeline pipeline_;
  ResultRecorder recorder_;
  LeaseTable leases_;
  Scheduler scheduler_;
  PeerRegistry peers_;
  BrokenVersions broken_;
  Store* const store_;
  VersionDigests digests_;
  ImageLayouts layouts_;
  const Clock::TimePoint started_;
  Clock::TimePoint next_missing_report_;
  Progress progress_;
  const Envelope* handling_ = nullptr;  // the frame being handled, if any
  std::size_t refused_connections_ = 0;
  std::size_t discarded_results_ = 0;
  std::size_t workers_lost_ = 0;
  std::size_t late_results_ = 0;
  std::size_t broken_cells_ = 0;
  std::vector<std::string> busy_;  // peers cut off by Tell, to evict
  std::map<std::string, std::string> name_keys_;  // worker name -> its CURVE key
};

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Coordinator::~Coordinator() = default;

Result<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options, Plan plan,
                                                         Store* store) {
  auto context = std::make_unique<Context>();
  Result<std::unique_ptr<RouterSocket>> socket =
      RouterSocket::Bind(*context, options.listen, options.security, options.max_frame_bytes);
  if (!socket.ok()) return socket.status();
  Result<StoredCells> stored = LoadStoredCells(plan, store, options.binary_digests, options.force,
                                                options.image_layout);
  if (!stored.ok()) return stored.status();
  auto impl = std::make_unique<Impl>(std::move(options), std::move(plan), store, std::move(context),
                                     std::move(socket).value(), &SystemClock(),
                                     std::move(stored).value());
  spdlog::info("coordinator: listening on {}", impl->endpoint());
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

Result<std::unique_ptr<Coordinator>> Coordinator::CreateWith(
    CoordinatorOptions options, Plan plan, Store* store, std::unique_ptr<ServerTransport> transport,
    const Clock* clock) {
  Result<StoredCells> stored = LoadStoredCells(plan, store, options.binary_digests, options.force,
                                                options.image_layout);
  if (!stored.ok()) return stored.status();
  auto impl = std::make_unique<Impl>(std::move(options), std::move(plan), store, nullptr,
                                     std::move(transport), clock, std::move(stored).value());
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

const std::string& Coordinator::endpoint() const { return impl_->endpoint(); }
std::size_t Coordinator::open_cells() const { return impl_->open_cells(); }
Result<SweepSummary> Coordinator::Run() { return impl_->Run(); }
Status Coordinator::Round() { return impl_->Round(); }
Result<SweepSummary> Coordinator::Finish() { return impl_->Finish(); }

}  // namespace imgsweep
