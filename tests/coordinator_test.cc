// The coordinator's rules, against real ZeroMQ sockets and a real store:
// the test plays the workers with DEALER sockets.
#include "coordinator/coordinator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <type_traits>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "protocol/sha256.h"
#include "protocol/transport.h"
#include "tests/fault_store.h"
#include "tests/manifest_json.h"
#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

using std::chrono::milliseconds;
constexpr auto kWait =
    milliseconds(20'000);  // per expected message; never reached when all is well

const std::string kSha(64, 'e');

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plan_ = Plan::Make(ManifestOf(ImageJson("a", "images/a.raw", "raw", "safe", kSha)),
                       {"7.2.0", "10.0.2"}, milliseconds(30'000))
                .value();
    store_ = std::move(Store::Open(dir_.path() / "db", Store::Mode::kCreateIfMissing)).value();
    Start();
  }

  // A coordinator of plan_ on store_, running.
  void Start() {
    ASSERT_TRUE(store_->PutMeta("plan", plan_.ToJson()).ok());
    CoordinatorOptions options;
    options.heartbeat = milliseconds(50);
    options.liveness = Liveness();
    options.output_limit_bytes = OutputLimit();
    options.security = Security();
    options.allowed_keys_update = [this]() -> std::optional<std::set<std::string>> {
      std::lock_guard<std::mutex> lock(keys_mu_);
      std::optional<std::set<std::string>> keys = std::exchange(next_keys_, std::nullopt);
      if (keys) keys_taken_.notify_all();
      return keys;
    };
    options.keep_going = [this] {
      return stop_ ? Status::InvalidInput("stopped by the test") : Status::Ok();
    };
    coordinator_ = std::move(Coordinator::Create(options, plan_, Backing())).value();
    run_ = std::async(std::launch::async, [this] { return coordinator_->Run(); });
  }

  // Stops the coordinator, which stores what it has, and starts another on
  // the same store with `plan`.
  void Restart(const Plan& plan) {
    stop_ = true;
    EXPECT_EQ(run_.get().status().message(), "stopped by the test");
    coordinator_.reset();
    stop_ = false;
    plan_ = plan;
    Start();
  }

  // Test workers send no heartbeats unless a test says so: by default they
  // are given 10 s of silence.
  virtual unsigned Liveness() const { return 200; }
  virtual std::size_t OutputLimit() const { return std::size_t{64} << 20; }
  virtual ServerSecurity Security() const { return {}; }
  // The store the coordinator writes to: store_, or one in front of it.
  virtual Store* Backing() { return store_.get(); }

  void TearDown() override {
    stop_ = true;  // Run returns at its next round
    if (run_.valid()) {
      EXPECT_EQ(run_.get().status().message(), "stopped by the test");
    }
  }

  static std::vector<VersionInfo> Versions() {
    return {{"7.2.0", kSha, "qemu-img version 7.2.22"},
            {"10.0.2", kSha, "qemu-img version 10.0.2"}};
  }

  std::unique_ptr<DealerSocket> Connect() {
    return std::move(DealerSocket::Connect(context_, coordinator_->endpoint())).value();
  }

  // Sends once the connection is up (frames are queued only on one).
  static void Send(DealerSocket& socket, const Message& m) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < deadline) {
      Result<bool> sent = socket.Send(Encode(m));
      ASSERT_TRUE(sent.ok()) << sent.status().ToString();
      if (sent.value()) return;
      ASSERT_TRUE(socket.Receive(milliseconds(10)).ok());  // lets the connection complete
    }
    ADD_FAILURE() << "no connection within the deadline";
  }
  static void SendRaw(DealerSocket& socket, const std::string& frame) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < deadline) {
      Result<bool> sent = socket.Send(frame);
      ASSERT_TRUE(sent.ok()) << sent.status().ToString();
      if (sent.value()) return;
      ASSERT_TRUE(socket.Receive(milliseconds(10)).ok());
    }
    ADD_FAILURE() << "no connection within the deadline";
  }

  // A worker w1 with one slot that has joined the sweep.
  std::unique_ptr<DealerSocket> Join() {
    auto socket = Connect();
    Send(*socket, Hello{"w1", "h", 1, Versions(), "session-1"});
    Expect<Welcome>(*socket);
    return socket;
  }

  // The next message that is not a heartbeat, which must be a T.
  template <typename T>
  T Expect(DealerSocket& socket) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < deadline) {
      Result<std::optional<std::string>> frame = socket.Receive(kWait);
      if (!frame.ok()) break;
      if (!frame.value()) continue;  // woken by a connection event, not a frame
      Result<Message> m = Decode(*frame.value());
      EXPECT_TRUE(m.ok()) << m.status().ToString();
      if (!m.ok()) break;
      if (std::holds_alternative<T>(m.value())) {
        if constexpr (std::is_same_v<T, Welcome>) sweep_id_ = std::get<T>(m.value()).sweep_id;
        return std::get<T>(m.value());
      }
      if (std::holds_alternative<Heartbeat>(m.value())) continue;
      ADD_FAILURE() << "got " << MessageName(m.value());
      break;
    }
    ADD_FAILURE() << "no message within the deadline";
    return T{};
  }

  // A worker that joins and does every open cell; the sweep's summary.
  Result<SweepSummary> FinishWithOneWorker() {
    auto worker = Join();
    return FinishWith(*worker);
  }

  // `worker`, which has joined, does every open cell; the sweep's summary.
  Result<SweepSummary> FinishWith(DealerSocket& joined) {
    DealerSocket* worker = &joined;
    Send(*worker, Credit{static_cast<std::uint32_t>(plan_.cell_count())});
    std::size_t acked = 0;
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (acked < plan_.cell_count() && std::chrono::steady_clock::now() < deadline) {
      Result<std::optional<std::string>> frame = worker->Receive(kWait);
      if (!frame.ok() || !frame.value()) break;
      Result<Message> m = Decode(*frame.value());
      if (!m.ok()) return m.status();
      if (auto* a = std::get_if<Assignment>(&m.value())) {
        for (const CellSpec& cell : a->cells) Send(*worker, Done(cell, a->lease_id));
      } else if (auto* ack = std::get_if<Ack>(&m.value())) {
        acked += ack->keys.size();
      }
    }
    return run_.get();
  }

  // The result an honest worker sends for `cell`, in the sweep that
  // welcomed the last worker.
  // Stores an outcome for the cell, run with the plan's inputs on a dense
  // layout: a coordinator started afterwards reuses it.
  void StoreDone(const std::string& key, const CellRef& ref) {
    Attempt ran;
    ran.number = 1;
    ran.binary_sha256 = kSha;
    ran.image_layout = "dense";
    ran.stdout_sha256 = ran.stderr_sha256 = Sha256Hex("");
    ASSERT_TRUE(store_
                    ->Commit({{key,
                               {CellState::kDone, {ran}, 0, plan_.CacheKey(ref, kSha, "dense")},
                               {{Sha256Hex(""), ""}}}})
                    .ok());
  }

  CellResult Done(const CellSpec& cell, std::uint64_t lease) const {
    CellResult r;
    r.key = cell.key;
    r.attempt = cell.attempt;
    r.lease_id = lease;
    r.sweep_id = sweep_id_;
    r.inputs = cell.inputs;
    r.outcome = Outcome::kExited;
    r.stdout_text = "Offset          Length          Mapped to       File\n";
    return r;
  }

  // Gives the coordinator a new allowlist at its next round, and waits
  // until it has taken it (AllowOnly then runs before any frame is read).
  void AllowOnly(std::set<std::string> keys) {
    std::unique_lock<std::mutex> lock(keys_mu_);
    next_keys_ = std::move(keys);
    ASSERT_TRUE(keys_taken_.wait_for(lock, kWait, [this] { return !next_keys_; }))
        << "the coordinator did not take the new keys within the deadline";
  }

  std::mutex keys_mu_;
  std::condition_variable keys_taken_;
  std::optional<std::set<std::string>> next_keys_;
  TempDir dir_;
  Plan plan_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::future<Result<SweepSummary>> run_;
  Context context_;
  std::string sweep_id_;  // of the last welcome
  std::atomic<bool> stop_{false};
};

TEST_F(CoordinatorTest, RefusesAnotherProtocolVersionWithTheReason) {
  auto socket = Connect();
  // A hello whose envelope says protocol version 1: [1, 1, [...]].
  std::string frame = Encode(Hello{"w", "h", 1, {}, ""});
  frame[1] = 1;
  SendRaw(*socket, frame);
  EXPECT_EQ(Expect<Refused>(*socket).reason,
            "protocol version 1 is not supported (this side speaks " +
                std::to_string(kProtocolVersion) + ")");
}

TEST_F(CoordinatorTest, ANewProcessUnderTheSameNameReplacesTheOldOne) {
  auto first = Join();
  Send(*first, Credit{1});
  const Assignment a = Expect<Assignment>(*first);
  auto second = Connect();
  Send(*second, Hello{"w1", "h2", 1, Versions(), "session-2"});
  Expect<Welcome>(*second);
  // The lost cell comes back once its worker-lost attempt is stored, after
  // the cells still pending.
  Send(*second, Credit{4});
  std::optional<CellSpec> again;
  for (int i = 0; i < 4 && !again; ++i) {
    for (const CellSpec& cell : Expect<Assignment>(*second).cells) {
      if (cell.key == a.cells[0].key) again = cell;
    }
  }
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->attempt, 2u);
  const std::optional<CellRecord> stored = store_->GetCell(a.cells[0].key).value();
  ASSERT_TRUE(stored.has_value());
  const CellRecord& record = *stored;
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].failure_kind, FailureKind::kWorkerLost);
  EXPECT_EQ(record.attempts[0].failure,
            "worker-lost: worker w1 replaced by a new worker process of the same name");
}

TEST_F(CoordinatorTest, TheSameProcessOnANewConnectionKeepsItsLease) {
  auto first = Join();
  Send(*first, Credit{1});
  const Assignment a = Expect<Assignment>(*first);
  auto again = Connect();
  Send(*again, Hello{"w1", "h", 1, Versions(), "session-1"});
  Expect<Welcome>(*again);
  Send(*again, Done(a.cells[0], a.lease_id));
  EXPECT_EQ(Expect<Ack>(*again).keys, std::vector<std::string>{a.cells[0].key});
  const CellRecord record = *store_->GetCell(a.cells[0].key).value();
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].outcome, Outcome::kExited);
}

// The store keeps every lease's grant: after a restart the worker process
// that held a cell may still return it, and no other peer may.
TEST_F(CoordinatorTest, ARestartedCoordinatorTakesResultsOfTheLeasesBefore) {
  auto worker = Join();
  Send(*worker, Credit{1});
  const Assignment a = Expect<Assignment>(*worker);
  Restart(plan_);
  // Another process that holds the version, with the lease's id; and a
  // lease id of a later incarnation.
  auto other = Connect();
  Send(*other, Hello{"w2", "h2", 1, Versions(), "session-2"});
  Expect<Welcome>(*other);
  Send(*other, Done(a.cells[0], a.lease_id));
  auto back = Connect();
  Send(*back, Hello{"w1", "h", 1, Versions(), "session-1"});
  Expect<Welcome>(*back);
  Send(*back, Done(a.cells[0], (std::uint64_t{3} << 32) | 1));
  Send(*back, Done(a.cells[0], a.lease_id));
  EXPECT_EQ(Expect<Ack>(*back).keys, std::vector<std::string>{a.cells[0].key});
  const CellRecord record = *store_->GetCell(a.cells[0].key).value();
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.state, CellState::kDone);
  EXPECT_EQ(record.attempts[0].worker, "w1");
  EXPECT_EQ(record.attempts[0].host, "h");
}

// A worker's late result ran with the plan of its lease: after a restart
// with another plan (here another timeout) it is forgotten, and the cell
// runs again with the new inputs.
TEST_F(CoordinatorTest, AfterARestartWithAChangedPlanALateResultIsNotStored) {
  auto worker = Join();
  Send(*worker, Credit{1});
  const Assignment a = Expect<Assignment>(*worker);
  Restart(Plan::Make(ManifestOf(ImageJson("a", "images/a.raw", "raw", "safe", kSha)),
                     {"7.2.0", "10.0.2"}, milliseconds(20'000))
              .value());
  auto back = Connect();
  Send(*back, Hello{"w1", "h", 1, Versions(), "session-1"});
  Expect<Welcome>(*back);
  Send(*back, Done(a.cells[0], a.lease_id));
  EXPECT_EQ(Expect<Ack>(*back).keys, std::vector<std::string>{a.cells[0].key});  // forgotten
  const std::optional<CellRecord> kept = store_->GetCell(a.cells[0].key).value();
  EXPECT_TRUE(!kept.has_value() || kept->state == CellState::kPending);

  ASSERT_TRUE(FinishWith(*back).ok());
  const CellRecord record = *store_->GetCell(a.cells[0].key).value();
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_NE(record.inputs, a.cells[0].inputs);
  EXPECT_EQ(record.inputs, plan_.CacheKey(plan_.Ref(0), kSha, "dense"));
}

// A worker that held a result of a coordinator on another store (another
// sweep) sends it in: nothing of it is stored, even where the lease ids and
// keys coincide.
TEST_F(CoordinatorTest, AResultOfAnotherSweepIsNotStored) {
  auto worker = Join();
  Send(*worker, Credit{1});
  const Assignment a = Expect<Assignment>(*worker);
  CellResult elsewhere = Done(a.cells[0], a.lease_id);
  elsewhere.sweep_id = "another-sweep";
  elsewhere.stdout_text = "from another sweep\n";
  Send(*worker, elsewhere);
  EXPECT_EQ(Expect<Ack>(*worker).keys, std::vector<std::string>{a.cells[0].key});  // forgotten
  Send(*worker, Done(a.cells[0], a.lease_id));  // the lease still stands
  EXPECT_EQ(Expect<Ack>(*worker).keys, std::vector<std::string>{a.cells[0].key});
  const CellRecord record = *store_->GetCell(a.cells[0].key).value();
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(store_->GetBlob(record.attempts[0].stdout_sha256).value(),
            "Offset          Length          Mapped to       File\n");
}

TEST_F(CoordinatorTest, AWorkerWithOtherBytesForAVersionGetsNoneOfItsCells) {
  auto first = Join();  // the sweep now uses kSha for both versions
  const std::string other(64, 'f');
  auto second = Connect();
  Send(*second, Hello{"w2", "h", 4, {{"7.2.0", other, "qemu-img version 7.2.0 (rebuilt)"},
                                     {"10.0.2", kSha, "qemu-img version 10.0.2"}},
                      "session-2"});
  Expect<Welcome>(*second);
  Send(*second, Credit{4});
  const Assignment a = Expect<Assignment>(*second);
  ASSERT_EQ(a.cells.size(), 2u);  // 10.0.2's two cells; none of 7.2.0's
  for (const CellSpec& cell : a.cells) EXPECT_EQ(cell.version, "10.0.2");
  EXPECT_EQ(store_->GetMeta("digest/7.2.0").value(), std::optional<std::string>(kSha));
}

// A stored outcome is reused while its inputs (binary, image, output type,
// argv, timeout) are the same; anything else runs again, put back durably.
TEST_F(CoordinatorTest, ReusesAStoredOutcomeOnlyWhileItsInputsAreTheSame) {
  auto done = [](const std::string& key, const std::string& inputs) {
    Attempt ran;
    ran.number = 1;
    ran.binary_sha256 = kSha;
    ran.image_layout = "dense";
    ran.stdout_sha256 = Sha256Hex("");
    ran.stderr_sha256 = Sha256Hex("");
    return CellWrite{key, {CellState::kDone, {ran}, 0, inputs}, {{Sha256Hex(""), ""}}};
  };
  const Plan slower = Plan::Make(ManifestOf(ImageJson("a", "images/a.raw", "raw", "safe", kSha)),
                                 {"7.2.0", "10.0.2"}, milliseconds(60'000))
                          .value();
  Attempt lost;
  lost.number = 1;
  lost.outcome = Outcome::kInfraFailure;
  lost.failure_kind = FailureKind::kWorkerLost;
  ASSERT_TRUE(store_
                  ->Commit({done("map-human/7.2.0/a", plan_.CacheKey(CellRef{0, 0, 0}, kSha, "dense")),
                            done("map-json/7.2.0/a", ""),  // a record from before keys were kept
                            done("map-human/10.0.2/a", slower.CacheKey(CellRef{0, 1, 0}, kSha, "dense")),
                            {"map-json/10.0.2/a", {CellState::kFailed, {lost}, 0, ""}, {}}})
                  .ok());
  CoordinatorOptions options;
  options.listen = "tcp://127.0.0.1:*";
  std::unique_ptr<Coordinator> same = std::move(Coordinator::Create(options, plan_, store_.get())).value();
  // 7.2.0's two outcomes are reused; 10.0.2's ran with another timeout, and
  // a failed cell (infrastructure) is never reused.
  EXPECT_EQ(same->open_cells(), 2u);
  const CellRecord changed = *store_->GetCell("map-human/10.0.2/a").value();
  EXPECT_EQ(changed.state, CellState::kPending);
  EXPECT_EQ(changed.round_start, 1u);  // the attempt limit starts again
  ASSERT_EQ(changed.attempts.size(), 1u);  // and the attempt is kept
  EXPECT_EQ(store_->GetCell("map-human/7.2.0/a").value()->state, CellState::kDone);

  // Other bytes for 7.2.0 (a pin, or `run`'s local binary) run its cells again.
  options.binary_digests["7.2.0"] = std::string(64, 'f');
  EXPECT_EQ(Coordinator::Create(options, plan_, store_.get()).value()->open_cells(), 4u);
  EXPECT_EQ(store_->GetMeta("digest/7.2.0").value(), options.binary_digests["7.2.0"]);
  options.binary_digests = {{"9.9.9", kSha}};
  EXPECT_EQ(Coordinator::Create(options, plan_, store_.get()).status().message(),
            "--binary-digest names 9.9.9, which is not a version of this sweep");
}

// `qemu-img map` prints holes: the layout an outcome ran on is one of its
// inputs. The default sweep wants dense files; as-is keeps the stored one.
TEST_F(CoordinatorTest, AStoredOutcomeOnAnotherLayoutRunsAgain) {
  const std::string sparse = "sparse:0123456789abcdef";
  auto ran_on = [&](const std::string& key, const std::string& layout, const CellRef& ref) {
    Attempt ran;
    ran.number = 1;
    ran.binary_sha256 = kSha;
    ran.image_layout = layout;
    ran.stdout_sha256 = ran.stderr_sha256 = Sha256Hex("");
    return CellWrite{key,
                     {CellState::kDone, {ran}, 0, plan_.CacheKey(ref, kSha, layout)},
                     {{Sha256Hex(""), ""}}};
  };
  Attempt before_layouts;  // a record from before layouts were kept
  before_layouts.number = 1;
  before_layouts.binary_sha256 = kSha;
  before_layouts.stdout_sha256 = before_layouts.stderr_sha256 = Sha256Hex("");
  ASSERT_TRUE(store_
                  ->Commit({ran_on("map-human/7.2.0/a", sparse, CellRef{0, 0, 0}),
                            ran_on("map-human/10.0.2/a", sparse, CellRef{0, 1, 0}),
                            ran_on("map-json/7.2.0/a", "dense", CellRef{1, 0, 0}),
                            {"map-json/10.0.2/a",
                             {CellState::kDone, {before_layouts}, 0, ""},
                             {{Sha256Hex(""), ""}}}})
                  .ok());
  CoordinatorOptions options;
  options.listen = "tcp://127.0.0.1:*";
  options.image_layout = ImageLayout::kAsIs;
  // As-is: the image's layout is the one it ran on (the first record's); the
  // record without a layout runs again, and so does the one on "dense".
  EXPECT_EQ(Coordinator::Create(options, plan_, store_.get()).value()->open_cells(), 2u);
  EXPECT_EQ(store_->GetCell("map-json/7.2.0/a").value()->state, CellState::kPending);
  EXPECT_EQ(store_->GetCell("map-human/7.2.0/a").value()->state, CellState::kDone);
  // Dense, the default: the sparse outcomes run again.
  options.image_layout = ImageLayout::kDense;
  EXPECT_EQ(Coordinator::Create(options, plan_, store_.get()).value()->open_cells(), 4u);
  EXPECT_EQ(store_->GetCell("map-human/7.2.0/a").value()->state, CellState::kPending);
}

// A worker with a file that has holes (here a backing file: any file an
// image may read) gets none of the cells in a dense sweep; the conflict is
// reported, and a dense worker runs them.
TEST_F(CoordinatorTest, AWorkerWithAnImageLaidOutOtherwiseGetsNoneOfItsCells) {
  auto sparse = Connect();
  Hello hello{"w2", "h", 4, Versions(), "session-2"};
  hello.sparse = {{"images/a.raw.backing", "sparse:0123456789abcdef"}};
  const std::string layout = TreeLayout(hello.sparse);
  EXPECT_TRUE(IsLayoutFingerprint(layout) && layout != "dense") << layout;
  Send(*sparse, hello);
  Expect<Welcome>(*sparse);
  Send(*sparse, Credit{4});
  Send(*sparse, StatusRequest{});
  const auto status = nlohmann::json::parse(Expect<StatusReply>(*sparse).json);
  EXPECT_EQ(status.at("layout_conflicts"),
            nlohmann::json::array({"worker w2 has its testdata on " + layout +
                                   ", the sweep uses dense for images/a.raw"}));
  auto dense = Connect();
  Send(*dense, Hello{"w1", "h", 4, Versions(), "session-1"});
  Expect<Welcome>(*dense);
  Send(*dense, Credit{4});
  std::size_t cells = Expect<Assignment>(*dense).cells.size();
  if (cells < 4) cells += Expect<Assignment>(*dense).cells.size();
  EXPECT_EQ(cells, 4u);  // every cell: w2 took none
}

// Results that come several to a frame are judged each as one alone would
// be: the honest ones stored and acknowledged, a bad one refused by itself
// (and counted against its worker, as a frame of its own would be).
TEST_F(CoordinatorTest, ResultsInOneFrameAreJudgedEachAsAlone) {
  auto worker = Connect();
  Send(*worker, Hello{"w1", "h", 4, Versions(), "session-1"});
  Expect<Welcome>(*worker);
  Send(*worker, Credit{4});
  // One assignment per shard (a version): both output types of image a.
  const Assignment a = Expect<Assignment>(*worker);
  const Assignment b = Expect<Assignment>(*worker);
  ASSERT_EQ(a.cells.size(), 2u);
  ASSERT_EQ(b.cells.size(), 2u);
  Send(*worker, Results{{Done(a.cells[0], a.lease_id), Done(a.cells[1], a.lease_id)}});
  std::vector<std::string> acked = Expect<Ack>(*worker).keys;
  if (acked.size() < 2) {
    const std::vector<std::string> more = Expect<Ack>(*worker).keys;
    acked.insert(acked.end(), more.begin(), more.end());
  }
  std::sort(acked.begin(), acked.end());
  std::vector<std::string> want = {a.cells[0].key, a.cells[1].key};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(acked, want);
  CellResult forged = Done(b.cells[0], b.lease_id);
  forged.attempt = 7;  // not its spec's
  Send(*worker, Results{{forged, Done(b.cells[1], b.lease_id)}});
  Send(*worker, StatusRequest{});
  const auto status = nlohmann::json::parse(Expect<StatusReply>(*worker).json);
  EXPECT_EQ(status.at("closed"), 3) << status.dump();     // b's honest one was stored
  EXPECT_EQ(status.at("in_flight"), 1) << status.dump();  // the other still waits for its own
  const Result<std::optional<CellRecord>> refused = store_->GetCell(b.cells[0].key);
  ASSERT_TRUE(refused.ok()) << refused.status().message();
  EXPECT_TRUE(!refused.value() || refused.value()->attempts.empty());  // nothing of the bad one stored
}

// A worker whose command table lacks an output type of the sweep gets none
// of its cells (it would refuse each), and one with the built-in table runs
// them; a table that does not parse is refused at hello.
TEST_F(CoordinatorTest, AWorkerGetsCellsOfTheOutputTypesItsCommandTableHasOnly) {
  auto narrow = Connect();
  Hello hello{"w2", "h", 4, Versions(), "session-2"};
  hello.command_table = R"({"table_format": 1, "commands": [{"name": "map", "layout": "by-format",
      "output_types": [{"name": "map-human", "argv": "{binary} map {image}"}]}]})";
  Send(*narrow, hello);
  Expect<Welcome>(*narrow);
  Send(*narrow, Credit{4});
  // Gathers `n` cells' keys from `socket`'s assignments.
  const auto keys_of = [this](DealerSocket& socket, std::size_t n) {
    std::vector<std::string> keys;
    while (keys.size() < n) {
      const Assignment a = Expect<Assignment>(socket);
      if (a.cells.empty()) break;
      for (const CellSpec& c : a.cells) keys.push_back(c.key);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  };
  EXPECT_EQ(keys_of(*narrow, 2), (std::vector<std::string>{"map-human/10.0.2/a", "map-human/7.2.0/a"}));
  // Status says which output type waits for a worker that runs it.
  const auto types_waiting = [this](DealerSocket& socket) {
    Send(socket, StatusRequest{});
    return nlohmann::json::parse(Expect<StatusReply>(socket).json).at("types_without_worker");
  };
  EXPECT_EQ(types_waiting(*narrow), nlohmann::json::array({"map-json"}));
  auto wide = Connect();
  Send(*wide, Hello{"w1", "h", 4, Versions(), "session-1"});
  Expect<Welcome>(*wide);
  EXPECT_EQ(types_waiting(*narrow), nlohmann::json::array());
  Send(*wide, Credit{4});
  EXPECT_EQ(keys_of(*wide, 2), (std::vector<std::string>{"map-json/10.0.2/a", "map-json/7.2.0/a"}));
  auto bad = Connect();
  hello = Hello{"w3", "h", 1, Versions(), "session-3"};
  hello.command_table = "{";
  Send(*bad, hello);
  EXPECT_TRUE(Expect<Refused>(*bad).reason.starts_with("its command table: not JSON")) << "refused";
}

// Text from the wire ends up in the status JSON, which would throw on bytes
// that are not UTF-8 and abort the coordinator: such a hello is refused.
TEST_F(CoordinatorTest, RefusesAHelloWhoseTextIsNotUtf8AndStillAnswersStatus) {
  auto bad_host = Connect();
  Send(*bad_host, Hello{"w9", "host\xff\xfe", 1, Versions(), "session-9"});
  EXPECT_EQ(Expect<Refused>(*bad_host).reason, "hello: field \"host\" is not UTF-8");
  auto bad_line = Connect();
  Send(*bad_line, Hello{"w8", "h", 1, {{"7.2.0", kSha, "qemu-img version \xc0\xaf"}}, "s-8"});
  EXPECT_EQ(Expect<Refused>(*bad_line).reason,
            "hello: field \"versions.version_line\" is not UTF-8");
  auto asker = Connect();
  Send(*asker, StatusRequest{});
  const auto status = nlohmann::json::parse(Expect<StatusReply>(*asker).json);
  EXPECT_EQ(status.at("workers").size(), 0u);
}

// Thousands of status requests from a peer that never reads: the
// coordinator answers a few (the rate limit), cuts it off, never blocks on
// it, and a worker's cells go on.
TEST_F(CoordinatorTest, APeerThatNeverReadsCannotStallTheCoordinator) {
  auto flood = Connect();
  Send(*flood, StatusRequest{});
  const std::string frame = Encode(StatusRequest{});
  for (int i = 0; i < 20'000; ++i) {
    Result<bool> sent = flood->Send(frame);
    ASSERT_TRUE(sent.ok());
    if (!sent.value()) break;  // its own queue is full, or it was cut off
  }
  auto worker = Join();
  Send(*worker, Credit{1});
  const Assignment a = Expect<Assignment>(*worker);
  ASSERT_EQ(a.cells.size(), 1u);
  Send(*worker, Done(a.cells[0], a.lease_id));
  EXPECT_EQ(Expect<Ack>(*worker).keys, std::vector<std::string>{a.cells[0].key});
  std::size_t replies = 0;
  for (;;) {
    Result<std::optional<std::string>> got = flood->Receive(milliseconds(0));
    ASSERT_TRUE(got.ok());
    if (!got.value()) break;
    ++replies;
  }
  // A burst per connection it made (it is cut off and reconnects).
  EXPECT_LE(replies, 200u);
}

// A peer whose queue is full is never waited for: Send says so at once.
TEST(RouterSocketTest, SendingToAPeerThatNeverReadsFailsFastWhenItsQueueIsFull) {
  Context context;
  auto router = std::move(RouterSocket::Bind(context, "tcp://127.0.0.1:*", {}, kMaxFrameBytes)).value();
  auto dealer = std::move(DealerSocket::Connect(context, router->endpoint())).value();
  std::optional<Envelope> hello;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!hello && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(dealer->Send("hi").ok());
    hello = router->Receive(milliseconds(10), -1).value();
  }
  ASSERT_TRUE(hello.has_value());
  const std::string big(64 << 10, 'x');
  std::size_t sent = 0;
  Status st = Status::Ok();
  while (st.ok() && sent < 1'000'000) {
    st = router->Send(hello->peer, big);
    if (st.ok()) ++sent;
  }
  EXPECT_EQ(st.code(), StatusCode::kBusy) << st.ToString();
  EXPECT_GE(sent, kPeerQueueFrames);
}

TEST_F(CoordinatorTest, ForceRunsEveryStoredCellAgain) {
  const std::string key = "map-human/7.2.0/a";
  StoreDone(key, CellRef{0, 0, 0});
  CoordinatorOptions options;
  options.listen = "tcp://127.0.0.1:*";
  EXPECT_EQ(Coordinator::Create(options, plan_, store_.get()).value()->open_cells(), 3u);
  options.force = true;
  EXPECT_EQ(Coordinator::Create(options, plan_, store_.get()).value()->open_cells(), 4u);
  EXPECT_EQ(store_->GetCell(key).value()->state, CellState::kPending);
}

TEST_F(CoordinatorTest, AnswersAStatusRequestWithoutAHello) {
  auto worker = Join();
  Send(*worker, Credit{1});
  Expect<Assignment>(*worker);
  auto asker = Connect();
  Send(*asker, StatusRequest{});
  const StatusReply reply = Expect<StatusReply>(*asker);
  EXPECT_NE(reply.json.find(R"("cells":4,"closed":0,"failed":0,"in_flight":1)"), std::string::npos)
      << reply.json;
  EXPECT_NE(reply.json.find(R"({"name":"w1","host":"h","slots":1,"versions":["10.0.2","7.2.0"],)"
                            R"("in_flight":1,"done":0,)"),
            std::string::npos)
      << reply.json;
  EXPECT_NE(reply.json.find(R"({"version":"7.2.0","done":0,"failed":0,"pending":1,"in_flight":1})"),
            std::string::npos)
      << reply.json;
  EXPECT_NE(reply.json.find(R"("versions_without_worker":[])"), std::string::npos) << reply.json;
}

// The per-version counts come from the recorder and the leases, not from a
// pass over the plan: a stored outcome reused, a new one, and the rest.
TEST_F(CoordinatorTest, StatusCountsEachVersionsDonePendingAndInFlightCells) {
  StoreDone("map-human/7.2.0/a", CellRef{0, 0, 0});
  Restart(plan_);  // map-human/7.2.0/a is reused as stored
  auto worker = Join();
  Send(*worker, Credit{1});
  const Assignment first = Expect<Assignment>(*worker);
  ASSERT_EQ(first.cells.size(), 1u);
  // The shard with the most open cells first.
  ASSERT_EQ(first.cells[0].version, "10.0.2");
  Send(*worker, Done(first.cells[0], first.lease_id));
  ASSERT_EQ(Expect<Ack>(*worker).keys, std::vector<std::string>{first.cells[0].key});
  Send(*worker, Credit{1});
  const Assignment second = Expect<Assignment>(*worker);
  ASSERT_EQ(second.cells.size(), 1u);
  ASSERT_EQ(second.cells[0].version, "10.0.2");  // it keeps to its shard

  auto asker = Connect();
  Send(*asker, StatusRequest{});
  const StatusReply reply = Expect<StatusReply>(*asker);
  EXPECT_NE(reply.json.find(R"("cells":4,"closed":2,"failed":0,"in_flight":1)"), std::string::npos)
      << reply.json;
  EXPECT_NE(reply.json.find(R"({"version":"7.2.0","done":1,"failed":0,"pending":1,"in_flight":0})"),
            std::string::npos)
      << reply.json;
  EXPECT_NE(reply.json.find(R"({"version":"10.0.2","done":1,"failed":0,"pending":0,"in_flight":1})"),
            std::string::npos)
      << reply.json;
}

TEST_F(CoordinatorTest, AssignsOneShardWithinTheCreditAndAcksAfterStoring) {
  auto socket = Join();
  Send(*socket, Credit{1});
  const Assignment first = Expect<Assignment>(*socket);
  ASSERT_EQ(first.cells.size(), 1u);
  Send(*socket, Credit{1});
  const Assignment second = Expect<Assignment>(*socket);
  ASSERT_EQ(second.cells.size(), 1u);
  EXPECT_EQ(second.cells[0].version, first.cells[0].version);

  Send(*socket, Done(first.cells[0], first.lease_id));
  const Ack ack = Expect<Ack>(*socket);
  ASSERT_EQ(ack.keys, std::vector<std::string>{first.cells[0].key});
  // The store has it by the time the ack arrives.
  Result<std::optional<CellRecord>> stored = store_->GetCell(first.cells[0].key);
  ASSERT_TRUE(stored.ok() && stored.value());
  EXPECT_EQ(stored.value()->state, CellState::kDone);
  EXPECT_EQ(stored.value()->attempts[0].worker, "w1");
  EXPECT_EQ(stored.value()->attempts[0].version_line.rfind("qemu-img version", 0), 0u);
}

// A peer that says hello with real digests and guesses lease ids: its
// results for cells another worker holds, or that are still queued, are
// never stored, and the honest result is.
TEST_F(CoordinatorTest, AForgerWithRealDigestsCannotStoreResultsItWasNotGiven) {
  auto honest = Join();
  Send(*honest, Credit{1});
  const Assignment a = Expect<Assignment>(*honest);
  ASSERT_EQ(a.cells.size(), 1u);
  auto forger = Connect();
  Send(*forger, Hello{"w2", "h2", 1, Versions(), "session-2"});
  Expect<Welcome>(*forger);
  CellResult forged = Done(a.cells[0], a.lease_id);  // the honest worker's lease
  forged.stdout_text = "forged\n";
  Send(*forger, forged);
  for (std::size_t i = 0; i < plan_.cell_count(); ++i) {  // and guesses at queued cells
    CellResult guess = Done(plan_.Spec(plan_.Ref(i), 1), a.lease_id + 1 + i);
    guess.stdout_text = "forged\n";
    Send(*forger, guess);
  }
  // Its frames are handled in order: by this reply, every guess was judged.
  Send(*forger, StatusRequest{});
  Expect<StatusReply>(*forger);
  Send(*honest, Done(a.cells[0], a.lease_id));
  EXPECT_EQ(Expect<Ack>(*honest).keys, std::vector<std::string>{a.cells[0].key});
  const CellRecord record = *store_->GetCell(a.cells[0].key).value();
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].worker, "w1");
  bool any_forged = false;
  ASSERT_TRUE(store_
                  ->ForEachCell([&](std::string_view, const CellRecord& r) {
                    for (const Attempt& at : r.attempts) any_forged |= at.worker == "w2";
                    return true;
                  })
                  .ok());
  EXPECT_FALSE(any_forged);
}

TEST_F(CoordinatorTest, DropsAResultForACellThePeerWasNotGiven) {
  auto socket = Join();
  const CellSpec forged = plan_.Spec(CellRef{0, 0, 0}, 1);
  Send(*socket, Done(forged, 999));
  Send(*socket, Credit{1});
  // The forged result earns no ack; the next message is the assignment.
  const Assignment assignment = Expect<Assignment>(*socket);
  EXPECT_EQ(assignment.cells.size(), 1u);
  EXPECT_FALSE(store_->GetCell(forged.key).value().has_value());
}

TEST_F(CoordinatorTest, RetriesAnInfrastructureFailureAndKeepsTheAttempt) {
  auto socket = Join();
  Send(*socket, Credit{1});
  const Assignment a = Expect<Assignment>(*socket);
  CellResult failed = Done(a.cells[0], a.lease_id);
  failed.outcome = Outcome::kInfraFailure;
  failed.failure = "image images/a.raw: this host's copy has sha256 x, the manifest says e";
  Send(*socket, failed);
  Expect<Ack>(*socket);
  Send(*socket, Credit{1});
  const Assignment retry = Expect<Assignment>(*socket);
  ASSERT_EQ(retry.cells.size(), 1u);
  EXPECT_EQ(retry.cells[0].key, a.cells[0].key);
  EXPECT_EQ(retry.cells[0].attempt, 2u);
  const CellRecord record = *store_->GetCell(a.cells[0].key).value();
  EXPECT_EQ(record.state, CellState::kPending);
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].failure, failed.failure);
}

TEST_F(CoordinatorTest, CutsOffAPeerThatKeepsSendingGarbageAndCountsIt) {
  auto rogue = Connect();
  for (int i = 0; i < 15; ++i) {
    SendRaw(*rogue, "\xc1 not msgpack");  // 0xc1: never used by msgpack
    EXPECT_FALSE(Expect<Refused>(*rogue).reason.empty());
  }
  SendRaw(*rogue, "\xc1 not msgpack");  // the 16th: the default cut-off
  // Its connection is closed, so the DEALER reconnects as a new peer, which
  // a hello then gets welcomed as. (Frames sent into the closing connection
  // are lost; hence the hello is repeated until a welcome, on a deadline.)
  bool welcomed = false;
  const auto until = std::chrono::steady_clock::now() + kWait;
  while (!welcomed && std::chrono::steady_clock::now() < until) {
    Send(*rogue, Hello{"reformed", "h", 1, {}, ""});
    Result<std::optional<std::string>> frame = rogue->Receive(milliseconds(200));
    ASSERT_TRUE(frame.ok());
    if (!frame.value()) continue;
    Result<Message> m = Decode(*frame.value());
    ASSERT_TRUE(m.ok());
    welcomed = std::holds_alternative<Welcome>(m.value());
  }
  EXPECT_TRUE(welcomed) << "the cut-off peer's connection was not closed";
  // A worker then does the whole sweep, and the summary says what happened.
  Result<SweepSummary> s = FinishWithOneWorker();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value().rejected_frames, 16u);
  ASSERT_EQ(s.value().rejections.size(), 1u);
  EXPECT_EQ(s.value().rejections[0].peer, "peer 127.0.0.1 #1");
  EXPECT_EQ(s.value().rejections[0].frames, 16u);
  EXPECT_TRUE(s.value().rejections[0].cut_off);
}

// What ZeroMQ hands over whole: a multipart message, and frames whose
// declared sizes are more than they hold or whose values really are too
// many. Each is refused before it costs memory, counted, and the sweep goes on.
TEST_F(CoordinatorTest, RefusesMultipartMessagesAndSizesTheFrameCannotHold) {
  zmq::context_t raw_context;
  zmq::socket_t raw(raw_context, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(coordinator_->endpoint());
  const std::string status = Encode(StatusRequest{});
  ASSERT_TRUE(raw.send(zmq::buffer(status), zmq::send_flags::sndmore));
  ASSERT_TRUE(raw.send(zmq::buffer(status), zmq::send_flags::sndmore));
  ASSERT_TRUE(raw.send(zmq::buffer(status), zmq::send_flags::none));
  const std::string lying("\xdd\xff\xff\xff\xff", 5);  // 2^32-1 elements, in 5 bytes
  ASSERT_TRUE(raw.send(zmq::buffer(lying), zmq::send_flags::none));
  std::string many = std::string("\x93\x04\x08\xdd", 4);  // a heartbeat of 8 Mi nils
  for (int shift = 24; shift >= 0; shift -= 8) many += static_cast<char>(((8u << 20) >> shift) & 0xff);
  many += std::string(8u << 20, '\xc0');
  ASSERT_TRUE(raw.send(zmq::buffer(many), zmq::send_flags::none));
  std::vector<std::string> reasons;
  while (reasons.size() < 2) {
    std::array<zmq::pollitem_t, 1> items{{{raw.handle(), 0, ZMQ_POLLIN, 0}}};
    ASSERT_GT(zmq::poll(items.data(), items.size(), kWait), 0) << "no refusal within the deadline";
    zmq::message_t reply;
    ASSERT_TRUE(raw.recv(reply, zmq::recv_flags::none));
    Result<Message> m = Decode(reply.to_string_view());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_TRUE(std::holds_alternative<Refused>(m.value())) << MessageName(m.value());
    reasons.push_back(std::get<Refused>(m.value()).reason);
  }
  EXPECT_EQ(reasons[0], "frame declares an array of 4294967295 items, more than its 5 bytes can hold");
  EXPECT_EQ(reasons[1], "frame holds more than " + std::to_string(kMaxFrameItems) + " values");
  Result<SweepSummary> s = FinishWithOneWorker();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value().rejected_frames, 3u);  // the multipart message, and the two frames
  ASSERT_EQ(s.value().rejections.size(), 1u);
  EXPECT_EQ(s.value().rejections[0].frames, 3u);
  EXPECT_FALSE(s.value().rejections[0].cut_off);
  EXPECT_EQ(s.value().ran_now, plan_.cell_count());
}

// A coordinator whose store can be made slow to commit.
class SlowStoreCoordinatorTest : public CoordinatorTest {
 protected:
  Store* Backing() override {
    if (!slow_) slow_ = std::make_unique<FaultStore>(store_.get());
    return slow_.get();
  }
  void TearDown() override {
    slow_->ReleaseWrites();  // never leave the coordinator waiting on a commit
    CoordinatorTest::TearDown();
  }

  std::unique_ptr<FaultStore> slow_;
};

// Stopped while a commit is slow (a loaded disk), the coordinator tells its
// workers to go at once: had it waited for the commit, a worker would take
// the silence for a lost link, connect again, and never hear it.
TEST_F(SlowStoreCoordinatorTest, TellsItsWorkersToGoBeforeASlowLastCommit) {
  auto worker = Join();
  Send(*worker, Credit{1});
  const Assignment a = Expect<Assignment>(*worker);
  slow_->HoldWrites();
  Send(*worker, Done(a.cells[0], a.lease_id));
  Send(*worker, StatusRequest{});  // answered once the result before it is taken
  const auto status = nlohmann::json::parse(Expect<StatusReply>(*worker).json);
  EXPECT_EQ(status.at("closed"), 1) << status.dump();
  ASSERT_TRUE(slow_->AwaitHeldWrite(kWait)) << "no commit came";
  stop_ = true;
  const Shutdown shutdown = Expect<Shutdown>(*worker);
  EXPECT_EQ(shutdown.reason, "the coordinator stopped: stopped by the test");
  slow_->ReleaseWrites();
  ASSERT_EQ(run_.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(run_.get().status().message(), "stopped by the test");
  Result<std::optional<CellRecord>> stored = store_->GetCell(a.cells[0].key);
  ASSERT_TRUE(stored.ok() && stored.value().has_value()) << "the received result was not stored";
  EXPECT_EQ(stored.value()->state, CellState::kDone);
}

// At the end of a sweep the workers hear that it is complete once every
// result is durable, not after the store's tidying (dropping the leases,
// the flush): a flush of a big memtable on a loaded disk outlasts a
// worker's patience, and a worker that connected again would not hear it.
TEST_F(SlowStoreCoordinatorTest, SaysTheSweepIsCompleteBeforeASlowFlush) {
  auto worker = Join();
  slow_->HoldFlushes();
  Send(*worker, Credit{static_cast<std::uint32_t>(plan_.cell_count())});
  std::optional<Shutdown> shutdown;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!shutdown && std::chrono::steady_clock::now() < deadline) {
    Result<std::optional<std::string>> frame = worker->Receive(kWait);
    ASSERT_TRUE(frame.ok() && frame.value()) << "the coordinator went quiet mid-sweep";
    Result<Message> m = Decode(*frame.value());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    if (auto* a = std::get_if<Assignment>(&m.value())) {
      for (const CellSpec& cell : a->cells) Send(*worker, Done(cell, a->lease_id));
    } else if (auto* s = std::get_if<Shutdown>(&m.value())) {
      shutdown = *s;
    }
  }
  ASSERT_TRUE(shutdown.has_value()) << "no word that the sweep is complete";
  EXPECT_EQ(shutdown->reason, "the sweep is complete");
  ASSERT_TRUE(slow_->AwaitHeldWrite(kWait)) << "the flush did not come";
  EXPECT_NE(run_.wait_for(std::chrono::milliseconds(0)), std::future_status::ready);
  slow_->ReleaseWrites();
  ASSERT_EQ(run_.wait_for(kWait), std::future_status::ready);
  Result<SweepSummary> s = run_.get();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value().ran_now, plan_.cell_count());
}

class SmallOutputLimitTest : public CoordinatorTest {
 protected:
  std::size_t OutputLimit() const override { return 1024; }
};

// A result over the coordinator's output limit is not stored: its attempt
// fails with output-limit, the frame counts as rejected, and the cell runs
// again.
TEST_F(SmallOutputLimitTest, RefusesAResultOverTheOutputLimitAndRunsTheCellAgain) {
  auto socket = Join();
  Send(*socket, Credit{1});
  const Assignment a = Expect<Assignment>(*socket);
  ASSERT_EQ(a.cells.size(), 1u);
  CellResult big = Done(a.cells[0], a.lease_id);
  big.stdout_text = std::string(2048, 'x');
  Send(*socket, big);
  EXPECT_EQ(Expect<Ack>(*socket).keys, std::vector<std::string>{a.cells[0].key});
  const CellRecord failed = *store_->GetCell(a.cells[0].key).value();
  EXPECT_EQ(failed.state, CellState::kPending);
  ASSERT_EQ(failed.attempts.size(), 1u);
  EXPECT_EQ(failed.attempts[0].failure,
            "output-limit: the coordinator refused a result for " + a.cells[0].key +
                " with 2048 bytes of stdout, over the output limit of 1024");
  Send(*socket, Credit{1});
  const Assignment retry = Expect<Assignment>(*socket);
  ASSERT_EQ(retry.cells.size(), 1u);
  EXPECT_EQ(retry.cells[0].key, a.cells[0].key);
  EXPECT_EQ(retry.cells[0].attempt, 2u);
  Send(*socket, Done(retry.cells[0], retry.lease_id));
  Expect<Ack>(*socket);
  const CellRecord done = *store_->GetCell(a.cells[0].key).value();
  EXPECT_EQ(done.state, CellState::kDone);
  ASSERT_EQ(done.attempts.size(), 2u);
  EXPECT_EQ(done.attempts[1].outcome, Outcome::kExited);
}

// A coordinator on CURVE whose allowlist holds two keys.
class CurveCoordinatorTest : public CoordinatorTest {
 protected:
  CurveCoordinatorTest()
      : server_(GenerateCurveKeyPair().value()),
        alice_(GenerateCurveKeyPair().value()),
        mallory_(GenerateCurveKeyPair().value()) {}
  ServerSecurity Security() const override {
    ServerSecurity security;
    security.curve = server_;
    security.allowed_clients = {alice_.public_key, mallory_.public_key};
    return security;
  }
  std::unique_ptr<DealerSocket> ConnectAs(const CurveKeyPair& keys) {
    return std::move(DealerSocket::Connect(context_, coordinator_->endpoint(),
                                           ClientSecurity{keys, server_.public_key}))
        .value();
  }
  // A worker `name` on `keys` that has joined the sweep.
  std::unique_ptr<DealerSocket> JoinAs(const CurveKeyPair& keys, const std::string& name,
                                       const std::string& session) {
    auto socket = ConnectAs(keys);
    Send(*socket, Hello{name, "h-" + name, 1, Versions(), session});
    Expect<Welcome>(*socket);
    return socket;
  }
  const CurveKeyPair server_, alice_, mallory_;
};

// With CURVE a name belongs to the key that first used it: another allowed
// peer that says hello under it is refused and evicts nobody, while the
// owner's next process (a new session, the same key) still replaces the old.
TEST_F(CurveCoordinatorTest, AnotherKeyCannotTakeAWorkersName) {
  auto alice = JoinAs(alice_, "w1", "session-1");
  auto mallory = ConnectAs(mallory_);
  Send(*mallory, Hello{"w1", "h2", 1, Versions(), "session-2"});
  EXPECT_EQ(Expect<Refused>(*mallory).reason,
            "the name w1 belongs to another key (" + alice_.public_key.substr(0, 8) +
                "...) in this sweep");
  Send(*alice, Credit{1});
  const Assignment a = Expect<Assignment>(*alice);  // still the sweep's w1
  ASSERT_EQ(a.cells.size(), 1u);
  Send(*alice, Done(a.cells[0], a.lease_id));
  Expect<Ack>(*alice);
  auto alice_again = JoinAs(alice_, "w1", "session-3");
  const CellRecord record = *store_->GetCell(a.cells[0].key).value();
  ASSERT_EQ(record.attempts.size(), 1u);
  EXPECT_EQ(record.attempts[0].host, "h-w1");
}

// A key taken off the allowlist mid-sweep (SIGHUP): its worker is cut off at
// once, its lease goes back to the queue, it can make no new connection,
// and the others finish the sweep.
TEST_F(CurveCoordinatorTest, ARevokedKeyIsCutOffAndCannotConnectAgain) {
  auto alice = JoinAs(alice_, "w1", "session-1");
  auto mallory = JoinAs(mallory_, "w2", "session-2");
  Send(*mallory, Credit{1});
  const Assignment held = Expect<Assignment>(*mallory);
  ASSERT_EQ(held.cells.size(), 1u);

  AllowOnly({alice_.public_key});
  Send(*alice, StatusRequest{});
  const auto status = nlohmann::json::parse(Expect<StatusReply>(*alice).json);
  ASSERT_EQ(status.at("workers").size(), 1u);
  EXPECT_EQ(status.at("workers")[0].at("name"), "w1");
  Send(*mallory, Done(held.cells[0], held.lease_id));  // ignored: it is cut off
  auto again = ConnectAs(mallory_);
  Status refused = Status::Ok();
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (refused.ok() && std::chrono::steady_clock::now() < deadline) {
    refused = again->Receive(kWait).status();
  }
  EXPECT_NE(refused.message().find("the coordinator does not allow this worker's key"),
            std::string::npos)
      << refused.ToString();

  Result<SweepSummary> s = FinishWith(*alice);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value().by_worker.count("w2"), 0u);
  EXPECT_EQ(s.value().by_worker.at("w1"), plan_.cell_count());
  ASSERT_EQ(s.value().rejections.size(), 1u);
  EXPECT_EQ(s.value().rejections[0].peer, "worker w2");
  EXPECT_TRUE(s.value().rejections[0].cut_off);
}

}  // namespace
}  // namespace imgsweep
