// The coordinator's rules, against real ZeroMQ sockets and a real store:
// the test plays the workers with DEALER sockets.
#include "coordinator/coordinator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "protocol/transport.h"
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
    ASSERT_TRUE(store_->PutMeta("plan", plan_.ToJson()).ok());
    CoordinatorOptions options;
    options.heartbeat = milliseconds(50);
    options.keep_going = [this] {
      return stop_ ? Status::InvalidInput("stopped by the test") : Status::Ok();
    };
    coordinator_ = std::move(Coordinator::Create(options, plan_, store_.get())).value();
    run_ = std::async(std::launch::async, [this] { return coordinator_->Run(); });
  }

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

  static void Send(DealerSocket& socket, const Message& m) {
    ASSERT_TRUE(socket.Send(Encode(m)).ok());
  }

  // A worker w1 with one slot that has joined the sweep.
  std::unique_ptr<DealerSocket> Join() {
    auto socket = Connect();
    Send(*socket, Hello{"w1", "h", 1, Versions()});
    Expect<Welcome>(*socket);
    return socket;
  }

  // The next message that is not a heartbeat, which must be a T.
  template <typename T>
  T Expect(DealerSocket& socket) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < deadline) {
      Result<std::optional<std::string>> frame = socket.Receive(kWait);
      if (!frame.ok() || !frame.value()) break;
      Result<Message> m = Decode(*frame.value());
      EXPECT_TRUE(m.ok()) << m.status().ToString();
      if (!m.ok()) break;
      if (std::holds_alternative<T>(m.value())) return std::get<T>(m.value());
      ADD_FAILURE() << "got " << MessageName(m.value());
      break;
    }
    ADD_FAILURE() << "no message within the deadline";
    return T{};
  }

  static CellResult Done(const CellSpec& cell, std::uint64_t lease) {
    CellResult r;
    r.key = cell.key;
    r.attempt = cell.attempt;
    r.lease_id = lease;
    r.outcome = Outcome::kExited;
    r.stdout_text = "Offset          Length          Mapped to       File\n";
    return r;
  }

  TempDir dir_;
  Plan plan_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::future<Result<SweepSummary>> run_;
  Context context_;
  std::atomic<bool> stop_{false};
};

TEST_F(CoordinatorTest, RefusesAnotherProtocolVersionWithTheReason) {
  auto socket = Connect();
  // A hello whose envelope says protocol version 2: [2, 1, [...]].
  std::string frame = Encode(Hello{"w", "h", 1, {}});
  frame[1] = 2;
  ASSERT_TRUE(socket->Send(frame).ok());
  EXPECT_EQ(Expect<Refused>(*socket).reason,
            "protocol version 2 is not supported (this side speaks 1)");
}

TEST_F(CoordinatorTest, RefusesASecondWorkerWithTheSameName) {
  auto first = Join();
  auto second = Connect();
  Send(*second, Hello{"w1", "h2", 1, Versions()});
  EXPECT_EQ(Expect<Refused>(*second).reason, "a worker named w1 is already connected");
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
    ASSERT_TRUE(rogue->Send("\xc1 not msgpack").ok());  // 0xc1: never used by msgpack
    EXPECT_FALSE(Expect<Refused>(*rogue).reason.empty());
  }
  ASSERT_TRUE(rogue->Send("\xc1 not msgpack").ok());  // the 16th: the default cut-off
  // Its connection is closed, so the DEALER reconnects as a new peer, which
  // a hello then gets welcomed as. (Frames sent into the closing connection
  // are lost; hence the hello is repeated until a welcome, on a deadline.)
  bool welcomed = false;
  const auto until = std::chrono::steady_clock::now() + kWait;
  while (!welcomed && std::chrono::steady_clock::now() < until) {
    Send(*rogue, Hello{"reformed", "h", 1, {}});
    Result<std::optional<std::string>> frame = rogue->Receive(milliseconds(200));
    ASSERT_TRUE(frame.ok());
    if (!frame.value()) continue;
    Result<Message> m = Decode(*frame.value());
    ASSERT_TRUE(m.ok());
    welcomed = std::holds_alternative<Welcome>(m.value());
  }
  EXPECT_TRUE(welcomed) << "the cut-off peer's connection was not closed";
  // A worker then does the whole sweep, and the summary says what happened.
  auto worker = Join();
  Send(*worker, Credit{static_cast<std::uint32_t>(plan_.cell_count())});
  std::size_t acked = 0;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (acked < plan_.cell_count() && std::chrono::steady_clock::now() < deadline) {
    Result<std::optional<std::string>> frame = worker->Receive(kWait);
    ASSERT_TRUE(frame.ok() && frame.value());
    Result<Message> m = Decode(*frame.value());
    ASSERT_TRUE(m.ok());
    if (auto* a = std::get_if<Assignment>(&m.value())) {
      for (const CellSpec& cell : a->cells) Send(*worker, Done(cell, a->lease_id));
    } else if (auto* ack = std::get_if<Ack>(&m.value())) {
      acked += ack->keys.size();
    }
  }
  Result<SweepSummary> s = run_.get();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value().rejected_frames, 16u);
  ASSERT_EQ(s.value().rejections.size(), 1u);
  EXPECT_EQ(s.value().rejections[0].peer, "peer 127.0.0.1 #1");
  EXPECT_EQ(s.value().rejections[0].frames, 16u);
  EXPECT_TRUE(s.value().rejections[0].cut_off);
}

}  // namespace
}  // namespace imgsweep
