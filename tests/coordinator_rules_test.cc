// The coordinator's rules on a FakeClock, through a transport the test
// drives: liveness, lease expiry, retries and store faults take no real
// time. The store is real RocksDB, wrapped to fail on request.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>

#include "coordinator/coordinator.h"
#include "coordinator/lease_table.h"
#include "protocol/clock.h"
#include "sweep/audit.h"
#include "tests/fake_transport.h"
#include "tests/fault_store.h"
#include "tests/manifest_json.h"
#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

using std::chrono::milliseconds;
const std::string kSha(64, 'e');
// Each round the clock moves this much, and every worker the test keeps
// alive sends a heartbeat.
constexpr auto kStep = milliseconds(100);
// Rounds a test may run before it gives up waiting for something.
constexpr int kMaxRounds = 2000;

class CoordinatorRules : public ::testing::Test {
 protected:
  void SetUp() override {
    plan_ = Plan::Make(ManifestOf(ImageJson("a", "images/a.raw", "raw", "safe", kSha)), {"7.2.0"},
                       milliseconds(30'000))
                .value();
    real_ = std::move(Store::Open(dir_.path() / "db", Store::Mode::kCreateIfMissing)).value();
    ASSERT_TRUE(real_->PutMeta("plan", plan_.ToJson()).ok());
    faults_ = std::make_unique<FaultStore>(real_.get());
  }

  Status Start(unsigned max_attempts = 3) {
    CoordinatorOptions options;
    options.max_attempts = max_attempts;
    options.broken_reports_to_give_up = 2;
    options.audit_percent = audit_percent_;
    wire_ = FakeTransport::Wire{};
    Result<std::unique_ptr<Coordinator>> c = Coordinator::CreateWith(
        options, plan_, faults_.get(), std::make_unique<FakeTransport>(&clock_, &wire_), &clock_);
    if (!c.ok()) return c.status();
    coordinator_ = std::move(c).value();
    return Status::Ok();
  }

  void Join(const std::string& peer, const std::string& session = "") {
    wire_.Deliver(peer, Hello{peer, "host-" + peer, 1,
                              {{"7.2.0", kSha, "qemu-img version 7.2.22"}},
                              session.empty() ? "session-" + peer : session});
    std::optional<Welcome> welcome = Await<Welcome>(peer);
    ASSERT_TRUE(welcome.has_value());
    sweep_id_ = welcome->sweep_id;
    alive_.insert(peer);
  }

  // Rounds until the coordinator has sent `peer` a T, the first not yet
  // awaited; other messages stay for later Awaits.
  template <typename T>
  std::optional<T> Await(const std::string& peer) {
    std::vector<Message>& inbox = inbox_[peer];
    for (int i = 0; i < kMaxRounds; ++i) {
      for (Message& m : wire_.Take(peer)) inbox.push_back(std::move(m));
      for (auto it = inbox.begin(); it != inbox.end(); ++it) {
        if (auto* t = std::get_if<T>(&*it)) {
          T found = std::move(*t);
          inbox.erase(it);
          return found;
        }
      }
      clock_.Advance(kStep);
      for (const std::string& p : alive_) wire_.Deliver(p, Heartbeat{});
      Status st = coordinator_->Round();
      if (!st.ok()) {
        ADD_FAILURE() << st.ToString();
        return std::nullopt;
      }
    }
    ADD_FAILURE() << "nothing of the kind within " << kMaxRounds << " rounds";
    return std::nullopt;
  }

  CellRecord Stored(const std::string& key) {
    Result<std::optional<CellRecord>> r = real_->GetCell(key);
    EXPECT_TRUE(r.ok() && r.value().has_value()) << key;
    return r.ok() && r.value() ? *r.value() : CellRecord{};
  }

  // The result an honest worker sends for `cell`.
  CellResult Done(const CellSpec& cell, std::uint64_t lease) const {
    CellResult r;
    r.key = cell.key;
    r.attempt = cell.attempt;
    r.lease_id = lease;
    r.sweep_id = sweep_id_;
    r.inputs = cell.inputs;
    r.stdout_text = "Offset          Length          Mapped to       File\n";
    return r;
  }
  CellResult HostFailure(const CellSpec& cell, std::uint64_t lease) const {
    CellResult r = Done(cell, lease);
    r.stdout_text.clear();
    r.outcome = Outcome::kInfraFailure;
    r.failure_kind = FailureKind::kImageMismatch;
    r.failure = "image images/a.raw: this host's copy has other bytes";
    return r;
  }

  TempDir dir_;
  Plan plan_;
  std::unique_ptr<Store> real_;
  std::unique_ptr<FaultStore> faults_;
  FakeClock clock_;
  FakeTransport::Wire wire_;
  std::set<std::string> alive_;  // workers that send a heartbeat every round
  std::map<std::string, std::vector<Message>> inbox_;  // sent, not yet awaited
  std::unique_ptr<Coordinator> coordinator_;
  std::string sweep_id_;  // of the last welcome
  unsigned audit_percent_ = 0;
};

TEST_F(CoordinatorRules, TakesASilentWorkerForLostAfterLivenessHeartbeats) {
  ASSERT_TRUE(Start().ok());
  Join("w1");
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  const Clock::TimePoint silent_since = clock_.Now();
  alive_.erase("w1");  // w1 says nothing from here on; w2 keeps talking
  Join("w2");
  wire_.Deliver("w2", Credit{2});
  std::optional<Assignment> b;
  while (!b || b->cells[0].key != a->cells[0].key) {
    b = Await<Assignment>("w2");
    ASSERT_TRUE(b.has_value());
  }
  const auto silence = clock_.Now() - silent_since;
  EXPECT_GE(silence, kDefaultHeartbeat * kDefaultLiveness);
  EXPECT_LE(silence, kDefaultHeartbeat * kDefaultLiveness + kDefaultHeartbeat / 2 + kStep);
  EXPECT_EQ(b->cells[0].attempt, 2u);
  const CellRecord record = Stored(a->cells[0].key);
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].failure_kind, FailureKind::kWorkerLost);
  EXPECT_EQ(record.attempts[0].failure, "worker-lost: worker w1 silent for 3000 ms");
  EXPECT_EQ(record.attempts[0].worker, "w1");

  // w1 comes back with its result: not known any more, it is asked to say
  // hello again; after that the result is the cell's, and w2's is discarded.
  wire_.Deliver("w1", Done(a->cells[0], a->lease_id));
  ASSERT_TRUE(Await<HelloFirst>("w1").has_value());
  Join("w1");
  wire_.Deliver("w1", Done(a->cells[0], a->lease_id));
  std::optional<Ack> ack = Await<Ack>("w1");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->keys, std::vector<std::string>{a->cells[0].key});
  wire_.Deliver("w2", Done(b->cells[0], b->lease_id));
  ack = Await<Ack>("w2");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->keys, std::vector<std::string>{a->cells[0].key});
  const CellRecord after = Stored(a->cells[0].key);
  EXPECT_EQ(after.state, CellState::kDone);
  ASSERT_EQ(after.attempts.size(), 2u);
  EXPECT_EQ(after.attempts[1].worker, "w1");
  EXPECT_EQ(after.attempts[1].outcome, Outcome::kExited);
}

// Two hellos of one worker process can cross a reconnection and arrive on
// the same connection: the second is not a new worker, and the cells the
// first was given stay its own.
TEST_F(CoordinatorRules, AHelloRepeatedOnOneConnectionKeepsTheWorkersLeases) {
  ASSERT_TRUE(Start().ok());
  Join("w1");
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  Join("w1");
  Join("w2");
  wire_.Deliver("w2", Credit{2});
  const std::optional<Assignment> b = Await<Assignment>("w2");
  ASSERT_TRUE(b.has_value());
  ASSERT_EQ(b->cells.size(), 1u);  // the plan's other cell, not w1's again
  EXPECT_NE(b->cells[0].key, a->cells[0].key);

  wire_.Deliver("w1", Done(a->cells[0], a->lease_id));
  const std::optional<Ack> ack = Await<Ack>("w1");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->keys, std::vector<std::string>{a->cells[0].key});
  const CellRecord record = Stored(a->cells[0].key);
  EXPECT_EQ(record.state, CellState::kDone);
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].worker, "w1");
}

TEST_F(CoordinatorRules, ALeaseExpiresWhenItsCellsOutliveTheirDeadlines) {
  ASSERT_TRUE(Start().ok());
  Join("w1");
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  const Clock::TimePoint leased = clock_.Now();
  // The worker stays alive but never returns a cell; it asks for more, and
  // gets the other cell, then both again once their leases expire.
  wire_.Deliver("w1", Credit{3});
  const CellSpec* retried = nullptr;
  std::optional<Assignment> again;
  while (retried == nullptr) {
    again = Await<Assignment>("w1");
    ASSERT_TRUE(again.has_value());
    for (const CellSpec& cell : again->cells) {
      if (cell.key == a->cells[0].key) retried = &cell;
    }
  }
  // One cell on one slot: its 30 s deadline plus the lease's 30 s slack.
  EXPECT_GE(clock_.Now() - leased, std::chrono::seconds(60));
  EXPECT_EQ(retried->attempt, 2u);
  const CellRecord record = Stored(a->cells[0].key);
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].failure_kind, FailureKind::kLeaseExpired);
}

TEST_F(CoordinatorRules, RetriesAHostFailureOnAnotherWorkerThatHoldsTheVersion) {
  ASSERT_TRUE(Start().ok());
  Join("w1");
  Join("w2");
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  const std::string failed_key = a->cells[0].key;
  wire_.Deliver("w1", HostFailure(a->cells[0], a->lease_id));
  ASSERT_TRUE(Await<Ack>("w1").has_value());
  wire_.Deliver("w1", Credit{1});
  // w1 has credit first, but gets the other cell: the failed one waits for w2.
  const std::optional<Assignment> next = Await<Assignment>("w1");
  ASSERT_TRUE(next.has_value());
  EXPECT_NE(next->cells[0].key, failed_key);
  wire_.Deliver("w2", Credit{1});
  const std::optional<Assignment> retry = Await<Assignment>("w2");
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->cells[0].key, failed_key);
  EXPECT_EQ(retry->cells[0].attempt, 2u);
}

TEST_F(CoordinatorRules, RetriesOnTheSameWorkerWhenNoOtherHoldsTheVersion) {
  ASSERT_TRUE(Start().ok());
  Join("w1");
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  wire_.Deliver("w1", HostFailure(a->cells[0], a->lease_id));
  ASSERT_TRUE(Await<Ack>("w1").has_value());
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> retry = Await<Assignment>("w1");
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->cells[0].key, a->cells[0].key);
  EXPECT_EQ(retry->cells[0].attempt, 2u);
}

TEST_F(CoordinatorRules, FailsACellOnItsLastAllowedAttempt) {
  ASSERT_TRUE(Start(/*max_attempts=*/2).ok());
  Join("w1");
  const std::size_t open = coordinator_->open_cells();
  std::string key;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    wire_.Deliver("w1", Credit{1});
    std::optional<Assignment> a = Await<Assignment>("w1");
    ASSERT_TRUE(a.has_value());
    if (key.empty()) key = a->cells[0].key;
    ASSERT_EQ(a->cells[0].key, key);
    ASSERT_EQ(a->cells[0].attempt, static_cast<std::uint32_t>(attempt));
    wire_.Deliver("w1", HostFailure(a->cells[0], a->lease_id));
    ASSERT_TRUE(Await<Ack>("w1").has_value());
  }
  EXPECT_EQ(coordinator_->open_cells(), open - 1);
  const CellRecord record = Stored(key);
  EXPECT_EQ(record.state, CellState::kFailed);
  EXPECT_EQ(record.attempts.size(), 2u);
}

TEST_F(CoordinatorRules, AFailedCommitAcknowledgesNothingAndLosesNothing) {
  ASSERT_TRUE(Start().ok());
  Join("w1");
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  faults_->FailNextCommit();
  wire_.Deliver("w1", Done(a->cells[0], a->lease_id));
  Status failed;
  for (int i = 0; i < kMaxRounds && failed.ok(); ++i) failed = coordinator_->Round();
  EXPECT_EQ(failed.ToString(), "I/O error: injected: the WAL sync failed");
  for (const Message& m : wire_.Take("w1")) {
    EXPECT_FALSE(std::holds_alternative<Ack>(m)) << "acknowledged a result that is not stored";
  }
  Result<std::optional<CellRecord>> none = real_->GetCell(a->cells[0].key);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none.value().has_value());

  // Restarted on the same store, which lost the lease's grant with the
  // failed write: the worker's unacknowledged copy is forgotten, not
  // stored, and the cell runs again.
  coordinator_.reset();
  ASSERT_TRUE(Start().ok());
  Join("w1", "session-w1");
  wire_.Deliver("w1", Done(a->cells[0], a->lease_id));
  const std::optional<Ack> ack = Await<Ack>("w1");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->keys, std::vector<std::string>{a->cells[0].key});
  none = real_->GetCell(a->cells[0].key);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none.value().has_value());

  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> again = Await<Assignment>("w1");
  ASSERT_TRUE(again.has_value());
  ASSERT_EQ(again->cells.size(), 1u);
  wire_.Deliver("w1", Done(again->cells[0], again->lease_id));
  ASSERT_TRUE(Await<Ack>("w1").has_value());
  const CellRecord record = Stored(again->cells[0].key);
  EXPECT_EQ(record.state, CellState::kDone);
  EXPECT_EQ(record.attempts.size(), 1u);
}

// A lease's grant is stored within a round even when no result comes:
// after a restart the worker that held it may return its result.
TEST_F(CoordinatorRules, ALeaseGrantIsStoredWithoutAResultAndOutlivesARestart) {
  ASSERT_TRUE(Start().ok());
  Join("w1");
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  std::vector<LeaseRecord> stored;
  for (int i = 0; i < kMaxRounds && stored.empty(); ++i) {
    clock_.Advance(kStep);
    ASSERT_TRUE(coordinator_->Round().ok());
    ASSERT_TRUE(real_->ForEachLease([&](const LeaseRecord& lease) {
                       stored.push_back(lease);
                       return true;
                     }).ok());
  }
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0], (LeaseRecord{a->lease_id, "session-w1", {a->cells[0].key}}));

  coordinator_.reset();  // as if killed: nothing more is written
  ASSERT_TRUE(Start().ok());
  // w2 holds the version but was never given the cell: its copy, first,
  // is dropped, and w1's is stored.
  Join("w2");
  wire_.Deliver("w2", Done(a->cells[0], a->lease_id));
  Join("w1", "session-w1");
  wire_.Deliver("w1", Done(a->cells[0], a->lease_id));
  const std::optional<Ack> ack = Await<Ack>("w1");
  ASSERT_TRUE(ack.has_value());
  const CellRecord record = Stored(a->cells[0].key);
  EXPECT_EQ(record.state, CellState::kDone);
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].worker, "w1");
}

TEST_F(CoordinatorRules, ADamagedStoreStopsTheStartAndWritesNothing) {
  faults_->CorruptReads(true);
  const Status st = Start();
  EXPECT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
  EXPECT_EQ(faults_->commits(), 0);
}

TEST_F(CoordinatorRules, GivesUpOnAVersionNoWorkerRunsOnceTwoReportItBroken) {
  ASSERT_TRUE(Start().ok());
  const std::size_t open = coordinator_->open_cells();
  const auto broken = [this](const std::string& name) {
    wire_.Deliver(name, Hello{name, "h", 1, {}, "s-" + name,
                              {{"7.2.0", "--version exited 127: libaio.so.1: cannot open"}}});
    ASSERT_TRUE(Await<Welcome>(name).has_value());
  };
  broken("w1");
  EXPECT_EQ(coordinator_->open_cells(), open);  // another worker may run it
  broken("w2");
  EXPECT_EQ(coordinator_->open_cells(), 0u);
  Result<SweepSummary> s = coordinator_->Finish();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value().broken_cells, open);
  EXPECT_EQ(s.value().broken_versions,
            std::vector<std::string>{"7.2.0 (w1: --version exited 127: libaio.so.1: cannot open; "
                                     "w2: --version exited 127: libaio.so.1: cannot open)"});
  const CellRecord record = Stored(plan_.Key(plan_.Ref(0)));
  EXPECT_EQ(record.state, CellState::kFailed);
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].failure_kind, FailureKind::kBinaryUnrunnable);
}

TEST_F(CoordinatorRules, KeepsAVersionThatAConnectedWorkerRuns) {
  ASSERT_TRUE(Start().ok());
  const std::size_t open = coordinator_->open_cells();
  Join("runs-it");
  for (const std::string name : {"w1", "w2"}) {
    wire_.Deliver(name, Hello{name, "h", 1, {}, "s-" + name, {{"7.2.0", "--version timed out"}}});
    ASSERT_TRUE(Await<Welcome>(name).has_value());
  }
  EXPECT_EQ(coordinator_->open_cells(), open);
  wire_.Deliver("runs-it", Credit{1});
  EXPECT_TRUE(Await<Assignment>("runs-it").has_value());
}

// A result under the lease that holds its cell must be the attempt and
// inputs the cell was sent with; a copy with others is dropped unstored.
TEST_F(CoordinatorRules, AResultWithAnotherAttemptOrInputsThanItsSpecIsDropped) {
  ASSERT_TRUE(Start().ok());
  Join("w1");
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  CellResult other_attempt = Done(a->cells[0], a->lease_id);
  other_attempt.attempt = 7;
  other_attempt.stdout_text = "not this attempt\n";
  CellResult other_inputs = Done(a->cells[0], a->lease_id);
  other_inputs.inputs = std::string(64, '0');
  other_inputs.stdout_text = "not these inputs\n";
  wire_.Deliver("w1", other_attempt);
  wire_.Deliver("w1", other_inputs);
  wire_.Deliver("w1", Done(a->cells[0], a->lease_id));
  const std::optional<Ack> ack = Await<Ack>("w1");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->keys, std::vector<std::string>{a->cells[0].key});
  const CellRecord record = Stored(a->cells[0].key);
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].stdout_bytes, Done(a->cells[0], 0).stdout_text.size());
}

// With --audit 100 a cell's first outcome is held, and the cell goes only
// to a worker of another host; the same output there closes it.
TEST_F(CoordinatorRules, AnAuditedCellClosesWhenASecondHostAgrees) {
  audit_percent_ = 100;
  ASSERT_TRUE(Start().ok());
  Join("w1");
  wire_.Deliver("w1", Credit{2});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->cells.size(), 2u);  // both cells of the plan
  for (const CellSpec& cell : a->cells) wire_.Deliver("w1", Done(cell, a->lease_id));
  ASSERT_TRUE(Await<Ack>("w1").has_value());
  EXPECT_EQ(Stored(a->cells[0].key).state, CellState::kPending);  // held
  EXPECT_EQ(coordinator_->open_cells(), 2u);

  Join("w2");
  wire_.Deliver("w2", Credit{2});
  const std::optional<Assignment> b = Await<Assignment>("w2");
  ASSERT_TRUE(b.has_value());
  ASSERT_EQ(b->cells.size(), 2u);
  for (const CellSpec& cell : b->cells) wire_.Deliver("w2", Done(cell, b->lease_id));
  ASSERT_TRUE(Await<Ack>("w2").has_value());
  const CellRecord record = Stored(a->cells[0].key);
  EXPECT_EQ(record.state, CellState::kDone);
  ASSERT_EQ(record.attempts.size(), 2u);
  EXPECT_EQ(record.attempts[0].host, "host-w1");
  EXPECT_EQ(record.attempts[1].host, "host-w2");
  EXPECT_EQ(coordinator_->open_cells(), 0u);
  EXPECT_TRUE(FindingsOf(*real_, a->cells[0].key, record).value().empty());
}

// Two hosts differ: the cell waits for a third, never back on the first
// two, and the third's output decides. The record keeps the finding.
TEST_F(CoordinatorRules, AnAuditMismatchWaitsForAThirdHostWhoBreaksTheTie) {
  audit_percent_ = 100;
  ASSERT_TRUE(Start().ok());
  Join("w1");
  wire_.Deliver("w1", Credit{1});
  const std::optional<Assignment> a = Await<Assignment>("w1");
  ASSERT_TRUE(a.has_value());
  const CellSpec cell = a->cells[0];
  wire_.Deliver("w1", Done(cell, a->lease_id));
  ASSERT_TRUE(Await<Ack>("w1").has_value());

  Join("liar");
  wire_.Deliver("liar", Credit{1});
  const std::optional<Assignment> b = Await<Assignment>("liar");
  ASSERT_TRUE(b.has_value());
  ASSERT_EQ(b->cells[0].key, cell.key);  // the held cell comes first
  CellResult lie = Done(b->cells[0], b->lease_id);
  lie.stdout_text = "Offset          Length          Mapped to       File\n0x0 0x1 0x0 forged\n";
  wire_.Deliver("liar", lie);
  ASSERT_TRUE(Await<Ack>("liar").has_value());
  EXPECT_EQ(Stored(cell.key).state, CellState::kPending);

  // Neither host that ran it gets it again.
  wire_.Deliver("w1", Credit{1});
  wire_.Deliver("liar", Credit{1});
  Join("w3");
  wire_.Deliver("w3", Credit{2});
  std::optional<CellSpec> third;
  for (int i = 0; i < 2 && !third; ++i) {
    const std::optional<Assignment> c = Await<Assignment>("w3");
    ASSERT_TRUE(c.has_value());
    for (const CellSpec& s : c->cells) {
      if (s.key == cell.key) {
        third = s;
        wire_.Deliver("w3", Done(s, c->lease_id));
      }
    }
  }
  ASSERT_TRUE(third.has_value());
  ASSERT_TRUE(Await<Ack>("w3").has_value());
  for (const std::string peer : {"w1", "liar"}) {
    for (Message& m : wire_.Take(peer)) inbox_[peer].push_back(std::move(m));
    for (Message& m : inbox_[peer]) {
      if (auto* given = std::get_if<Assignment>(&m)) {
        for (const CellSpec& s : given->cells) EXPECT_NE(s.key, cell.key) << peer;
      }
    }
  }
  const CellRecord record = Stored(cell.key);
  EXPECT_EQ(record.state, CellState::kDone);
  ASSERT_EQ(record.attempts.size(), 3u);
  EXPECT_EQ(record.attempts[2].host, "host-w3");
  EXPECT_EQ(record.attempts[2].stdout_sha256, record.attempts[0].stdout_sha256);
  const std::vector<AuditFinding> findings = FindingsOf(*real_, cell.key, record).value();
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].host_a, "host-w1");
  EXPECT_EQ(findings[0].host_b, "host-liar");
  EXPECT_EQ(findings[0].difference, "stdout line 2: (end) / \"0x0 0x1 0x0 forged\"");
  EXPECT_EQ(findings[0].resolution, "host-w3 agrees with host-w1");
}

TEST(Audit, SelectsTheSameCellsByKeyAlone) {
  std::size_t chosen = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "map-json/7.2.0/image-" + std::to_string(i);
    EXPECT_FALSE(AuditSelects(key, 0));
    EXPECT_TRUE(AuditSelects(key, 100));
    EXPECT_EQ(AuditSelects(key, 30), AuditSelects(key, 30));
    // A cell chosen at 30% is chosen at every larger share.
    if (AuditSelects(key, 30)) {
      ++chosen;
      EXPECT_TRUE(AuditSelects(key, 31)) << key;
    }
  }
  EXPECT_GT(chosen, 250u);
  EXPECT_LT(chosen, 350u);
}

TEST(LeaseTable, KnowsTheLeasesOfEarlierIncarnationsAndNoneAhead) {
  LeaseTable first(4, 1);
  const std::uint64_t a = first.Issue("p", "s", {0, 1}, {}, {});
  LeaseTable second(4, 2);
  EXPECT_TRUE(second.IssuedBySweep(a));
  const std::uint64_t b = second.Issue("p", "s", {2}, {}, {});
  EXPECT_TRUE(second.IssuedBySweep(b));
  EXPECT_FALSE(second.IssuedBySweep(b + 1));           // not issued yet
  EXPECT_FALSE(second.IssuedBySweep((3ull << 32) | 1));  // a later incarnation
  EXPECT_FALSE(second.IssuedBySweep(0));
}

TEST(LeaseTable, GrantsALeaseToOneSessionForItsCellsOnly) {
  LeaseTable first(4, 1);
  const std::uint64_t before = first.Issue("p", "s", {3}, {}, {});
  LeaseTable leases(4, 2);
  const std::uint64_t id = leases.Issue("p", "s", {2, 0}, {}, {});
  leases.End(id);
  EXPECT_TRUE(leases.Granted(id, "s", 0));   // ended, still granted
  EXPECT_FALSE(leases.Granted(id, "s", 1));  // not in it
  EXPECT_FALSE(leases.Granted(id, "t", 2));  // another worker process
  EXPECT_FALSE(leases.Granted(id + 1, "s", 2));
  EXPECT_TRUE(leases.FromEarlierIncarnation(before));
  EXPECT_FALSE(leases.FromEarlierIncarnation(id));
}

TEST(LeaseTable, RestoresOnlyGrantsOfEarlierIncarnations) {
  LeaseTable first(4, 1);
  const std::uint64_t before = first.Issue("p", "s", {3, 1}, {}, {});
  LeaseTable leases(4, 2);
  leases.Restore(before, "s", {3, 1});
  leases.Restore((2ull << 32) | 1, "s", {0});  // this incarnation's: not from a record
  EXPECT_TRUE(leases.Recorded(before));
  EXPECT_TRUE(leases.Granted(before, "s", 1));
  EXPECT_FALSE(leases.Granted(before, "t", 1));
  EXPECT_FALSE(leases.Granted(before, "s", 2));
  EXPECT_FALSE(leases.Recorded((2ull << 32) | 1));
  EXPECT_FALSE(leases.Granted((2ull << 32) | 1, "s", 0));
}

TEST(LeaseTable, ALeaseEndsWithItsLastOpenCell) {
  LeaseTable leases(3, 1);
  const std::uint64_t id = leases.Issue("p", "s", {0, 2}, {}, {});
  EXPECT_TRUE(leases.Holds(id, "p", 2));
  EXPECT_FALSE(leases.Holds(id, "q", 2));
  leases.Close(0);
  EXPECT_NE(leases.Find(id), nullptr);
  EXPECT_EQ(leases.leased_cells(), 1u);
  leases.Close(2);
  EXPECT_EQ(leases.Find(id), nullptr);
  EXPECT_EQ(leases.leased_cells(), 0u);
}

TEST(LeaseTable, KeepsTheInputsEachSpecNamedAndEndsWithTheOpenCellsInOrder) {
  LeaseTable leases(4, 1);
  const std::uint64_t id = leases.Issue("p", "s", {3, 0, 2}, {}, {}, {"in-3", "in-0", "in-2"});
  ASSERT_NE(leases.InputsOf(id, 0), nullptr);
  EXPECT_EQ(*leases.InputsOf(id, 0), "in-0");
  EXPECT_EQ(*leases.InputsOf(id, 2), "in-2");
  EXPECT_EQ(*leases.InputsOf(id, 3), "in-3");
  EXPECT_EQ(leases.InputsOf(id, 1), nullptr);      // not in the lease
  EXPECT_EQ(leases.InputsOf(id + 1, 0), nullptr);  // no such lease
  leases.Close(2);
  EXPECT_EQ(leases.CellsHeldBy("p"), 2u);
  EXPECT_EQ(leases.End(id), (std::vector<std::size_t>{0, 3}));
  EXPECT_FALSE(leases.IsLeased(0));
  EXPECT_EQ(leases.leased_cells(), 0u);
  EXPECT_EQ(leases.InputsOf(id, 0), nullptr);  // the lease no longer stands
}

}  // namespace
}  // namespace imgsweep
