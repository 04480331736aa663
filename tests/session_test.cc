// The worker's session as a state machine: events in, frames out, on a
// FakeClock. No socket, no slots.
#include "worker/session.h"

#include <gtest/gtest.h>

namespace imgsweep {
namespace {

using std::chrono::milliseconds;

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() : session_(Options(), &clock_, [this](std::string_view f) { return Send(f); }) {}

  static SessionOptions Options() {
    SessionOptions o;
    o.name = "w1";
    o.connect = "tcp://127.0.0.1:1";
    o.hello = Hello{"w1", "h", 2, {}, "s1"};
    o.capacity = 4;
    o.heartbeat = milliseconds(1000);
    o.liveness = 3;
    o.give_up_after = milliseconds(60'000);
    return o;
  }

  Result<bool> Send(std::string_view frame) {
    if (!connected_) return false;
    Result<Message> m = Decode(frame);
    EXPECT_TRUE(m.ok());
    if (m.ok()) sent_.push_back(std::move(m).value());
    return true;
  }

  // What went out since the last call.
  std::vector<Message> Sent() { return std::exchange(sent_, {}); }

  void Receive(const Message& m, std::size_t held = 0) {
    std::vector<Work> work;
    ASSERT_TRUE(session_.OnFrame(Encode(m), held, &work).ok());
    for (Work& w : work) work_.push_back(std::move(w));
  }

  void Welcome() {
    ASSERT_TRUE(session_.OnConnected().ok());
    ASSERT_TRUE(session_.OnTick().ok());
    Receive(imgsweep::Welcome{"sweep-1", 1000, 3});
  }

  static CellResult ResultFor(const std::string& key) {
    CellResult r;
    r.key = key;
    r.lease_id = 7;
    return r;
  }

  FakeClock clock_;
  bool connected_ = true;
  std::vector<Message> sent_;
  std::vector<Work> work_;
  Session session_;
};

TEST_F(SessionTest, SaysHelloFirstOnEveryConnectionAndRetriesWithoutOne) {
  connected_ = false;
  ASSERT_TRUE(session_.OnConnected().ok());
  ASSERT_TRUE(session_.OnTick().ok());
  EXPECT_TRUE(Sent().empty());
  EXPECT_EQ(session_.NextWait(), milliseconds(50));  // a hello is due: try again soon
  connected_ = true;
  ASSERT_TRUE(session_.OnTick().ok());
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::get<Hello>(sent[0]).name, "w1");
  EXPECT_EQ(session_.state(), Session::State::kConnecting);
}

TEST_F(SessionTest, OffersItsFreeCapacityOnTheWelcome) {
  ASSERT_TRUE(session_.OnConnected().ok());
  ASSERT_TRUE(session_.OnTick().ok());
  Sent();
  Receive(imgsweep::Welcome{"sweep-1", 250, 5}, /*held=*/1);
  EXPECT_EQ(session_.state(), Session::State::kWelcomed);
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::get<Credit>(sent[0]).cells, 3u);
  EXPECT_EQ(session_.NextWait(), milliseconds(250));  // the coordinator's heartbeat now
}

TEST_F(SessionTest, HandsAssignedCellsToTheSlotsAndReportsThemWithCredit) {
  Welcome();
  Sent();
  Assignment a;
  a.lease_id = 7;
  a.cells.resize(2);
  a.cells[0].key = "map-json/7.2.0/a";
  a.cells[1].key = "map-json/7.2.0/b";
  Receive(a);
  ASSERT_EQ(work_.size(), 2u);
  EXPECT_EQ(work_[1].spec.key, "map-json/7.2.0/b");
  EXPECT_EQ(work_[1].lease_id, 7u);
  EXPECT_EQ(work_[1].sweep_id, "sweep-1");  // the welcome's: its result carries it
  ASSERT_TRUE(session_.OnResults({ResultFor("map-json/7.2.0/a")}).ok());
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(std::get<CellResult>(sent[0]).key, "map-json/7.2.0/a");
  EXPECT_EQ(std::get<Credit>(sent[1]).cells, 1u);
  EXPECT_EQ(session_.unacked(), 1u);
  Receive(Ack{{"map-json/7.2.0/a"}});
  EXPECT_EQ(session_.unacked(), 0u);
}

TEST_F(SessionTest, DrainingSendsResultsButNoCreditAndEndsWhenAllAreAcknowledged) {
  Welcome();
  Sent();
  session_.Drain();
  EXPECT_FALSE(session_.Drained(/*held=*/1));  // a cell still runs
  ASSERT_TRUE(session_.OnResults({ResultFor("k1")}).ok());
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);  // the result, and no credit for its slot
  EXPECT_EQ(std::get<CellResult>(sent[0]).key, "k1");
  EXPECT_FALSE(session_.Drained(0));  // not acknowledged yet
  Receive(Ack{{"k1"}});
  EXPECT_TRUE(session_.Drained(0));
}

TEST_F(SessionTest, ADrainingWorkerOffersNoCapacityOnAWelcome) {
  session_.Drain();
  ASSERT_TRUE(session_.OnConnected().ok());
  ASSERT_TRUE(session_.OnTick().ok());
  Sent();
  Receive(imgsweep::Welcome{"sweep-1", 1000, 3});
  EXPECT_TRUE(Sent().empty());
  EXPECT_TRUE(session_.Drained(0));
}

// What finished at once goes in one frame; a result alone in a frame of
// its own kind; a frame holds at most kResultsPerFrame.
TEST_F(SessionTest, SendsResultsFinishedTogetherInOneFrame) {
  Welcome();
  Sent();
  ASSERT_TRUE(session_.OnResults({ResultFor("k1"), ResultFor("k2"), ResultFor("k3")}).ok());
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 2u);  // the results, then their credit
  const Results& batch = std::get<Results>(sent[0]);
  ASSERT_EQ(batch.results.size(), 3u);
  EXPECT_EQ(batch.results[2].key, "k3");
  EXPECT_EQ(std::get<Credit>(sent[1]).cells, 3u);
  ASSERT_TRUE(session_.OnResults({ResultFor("k4")}).ok());
  EXPECT_EQ(std::get<CellResult>(Sent().at(0)).key, "k4");
  std::vector<CellResult> many;
  for (std::size_t i = 0; i < kResultsPerFrame + 1; ++i) many.push_back(ResultFor("m" + std::to_string(i)));
  ASSERT_TRUE(session_.OnResults(many).ok());
  sent = Sent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(std::get<Results>(sent[0]).results.size(), kResultsPerFrame);
  EXPECT_EQ(std::get<CellResult>(sent[1]).key, "m" + std::to_string(kResultsPerFrame));
  EXPECT_EQ(session_.unacked(), 4u + kResultsPerFrame + 1);
}

TEST_F(SessionTest, ResendsOnlyWhatWasNotAcknowledgedAfterANewConnection) {
  Welcome();
  ASSERT_TRUE(session_.OnResults({ResultFor("k1"), ResultFor("k2")}).ok());
  Receive(Ack{{"k1"}});
  Sent();
  ASSERT_TRUE(session_.OnConnected().ok());  // the coordinator restarted
  EXPECT_EQ(session_.state(), Session::State::kConnecting);
  ASSERT_TRUE(session_.OnTick().ok());
  ASSERT_TRUE(std::holds_alternative<Hello>(Sent().at(0)));
  Receive(imgsweep::Welcome{"sweep-1", 1000, 3}, /*held=*/4);
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);  // no credit: its capacity is taken
  EXPECT_EQ(std::get<CellResult>(sent[0]).key, "k2");
}

TEST_F(SessionTest, AnswersEveryWelcomeWithItsCreditAndUnacknowledgedResults) {
  // Two hellos crossed a reconnection: the coordinator welcomes both and
  // counts this worker's credit from zero after each.
  Welcome();
  ASSERT_TRUE(session_.OnResults({ResultFor("k1")}).ok());
  Sent();
  Receive(imgsweep::Welcome{"sweep-1", 1000, 3}, /*held=*/1);
  EXPECT_EQ(session_.state(), Session::State::kWelcomed);
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(std::get<CellResult>(sent[0]).key, "k1");
  EXPECT_EQ(std::get<Credit>(sent[1]).cells, 3u);
}

TEST_F(SessionTest, KeepsResultsWhileNotWelcomedAndSendsThemAfter) {
  ASSERT_TRUE(session_.OnConnected().ok());
  ASSERT_TRUE(session_.OnTick().ok());
  Sent();
  ASSERT_TRUE(session_.OnResults({ResultFor("k1")}).ok());
  EXPECT_TRUE(Sent().empty());
  Receive(imgsweep::Welcome{"sweep-1", 1000, 3});
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(std::get<CellResult>(sent[0]).key, "k1");
}

TEST_F(SessionTest, SaysHelloAgainWhenTheCoordinatorNoLongerKnowsIt) {
  Welcome();
  Sent();
  Receive(HelloFirst{});
  EXPECT_EQ(session_.state(), Session::State::kConnecting);
  ASSERT_TRUE(session_.OnTick().ok());
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<Hello>(sent[0]));
}

TEST_F(SessionTest, AsksForANewConnectionAfterLivenessHeartbeatsOfSilence) {
  Welcome();
  clock_.Advance(milliseconds(2999));
  Result<bool> again = session_.OnTick();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.value());
  clock_.Advance(milliseconds(1));
  again = session_.OnTick();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again.value());
  EXPECT_EQ(session_.state(), Session::State::kConnecting);
  session_.OnReconnected();
  again = session_.OnTick();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.value());
}

TEST_F(SessionTest, SendsAHeartbeatWhenNothingElseWentForOne) {
  Welcome();
  Sent();
  clock_.Advance(milliseconds(999));
  ASSERT_TRUE(session_.OnResults({}).ok());
  EXPECT_TRUE(Sent().empty());
  clock_.Advance(milliseconds(1));
  ASSERT_TRUE(session_.OnResults({}).ok());
  std::vector<Message> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<Heartbeat>(sent[0]));
}

TEST_F(SessionTest, GivesUpWithoutACoordinatorForGiveUpAfter) {
  clock_.Advance(milliseconds(60'000));
  ASSERT_TRUE(session_.OnTick().ok());
  EXPECT_TRUE(session_.finished());
  EXPECT_EQ(session_.end().ToString(),
            "I/O error: no coordinator answered at tcp://127.0.0.1:1 for 60 s; giving up");
}

TEST_F(SessionTest, EndsOnRefusalAndOnShutdown) {
  Receive(Refused{"key not allowed"});
  EXPECT_TRUE(session_.finished());
  EXPECT_EQ(session_.end().ToString(),
            "invalid input: the coordinator refused this worker: key not allowed");
  Session other(Options(), &clock_, [this](std::string_view f) { return Send(f); });
  std::vector<Work> work;
  ASSERT_TRUE(other.OnFrame(Encode(Shutdown{"the sweep is complete"}), 0, &work).ok());
  EXPECT_TRUE(other.finished());
  EXPECT_TRUE(other.end().ok());
}

}  // namespace
}  // namespace imgsweep
