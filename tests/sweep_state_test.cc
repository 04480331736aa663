// What `status` reports and which cells `rerun` reopens, against a real store.
#include "sweep/sweep_state.h"

#include <gtest/gtest.h>

#include "protocol/sha256.h"
#include "tests/manifest_json.h"
#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

class SweepStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string sha(64, 'c');
    const Manifest manifest = ManifestOf(ImageJson("a", "images/a.raw", "raw", "safe", sha) +
                                         ", " + ImageJson("b", "images/b.raw", "raw", "safe", sha));
    plan_ = Plan::Make(manifest, {"7.2.0", "10.0.2"}, std::chrono::seconds(30)).value();
    store_ = std::move(Store::Open(dir_.path() / "db", Store::Mode::kCreateIfMissing)).value();
    ASSERT_TRUE(store_->PutMeta("plan", plan_.ToJson()).ok());
  }

  static Attempt Ended(Outcome outcome, int code) {
    Attempt a;
    a.number = 1;
    a.outcome = outcome;
    a.exit_code = outcome == Outcome::kExited ? code : 0;
    a.stdout_sha256 = a.stderr_sha256 = Sha256Hex("");
    a.worker = "w1";
    return a;
  }
  static Attempt Infra(std::uint32_t n, FailureKind kind) {
    Attempt a;
    a.number = n;
    a.outcome = Outcome::kInfraFailure;
    a.failure_kind = kind;
    a.failure = std::string(FailureKindName(kind)) + ": details";
    a.worker = "w2";
    return a;
  }
  void Put(const std::string& key, CellState state, std::vector<Attempt> attempts) {
    ASSERT_TRUE(store_->Commit({CellWrite{key, CellRecord{state, std::move(attempts), 0},
                                          {{Sha256Hex(""), ""}}}})
                    .ok());
  }
  // A sweep with one of everything: 10.0.2/b never ran.
  void StoreMixedSweep() {
    Put("map-human/7.2.0/a", CellState::kDone, {Ended(Outcome::kExited, 0)});
    Put("map-human/7.2.0/b", CellState::kDone, {Ended(Outcome::kExited, 1)});
    Put("map-json/7.2.0/a", CellState::kDone, {Ended(Outcome::kTimeout, 0)});
    Put("map-json/7.2.0/b", CellState::kFailed,
        {Infra(1, FailureKind::kImageMismatch), Infra(2, FailureKind::kWorkerLost),
         Infra(3, FailureKind::kOutputLimit)});
    Put("map-human/10.0.2/a", CellState::kDone,
        {Infra(1, FailureKind::kWorkerLost), Ended(Outcome::kSignaled, 0)});
    Put("map-json/10.0.2/a", CellState::kDone, {Ended(Outcome::kExited, 0)});
  }

  TempDir dir_;
  Plan plan_;
  std::unique_ptr<Store> store_;
};

TEST_F(SweepStateTest, CountsEachShardByOutcome) {
  StoreMixedSweep();
  Result<SweepState> state = ReadSweepState(*store_);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  const ShardCounts& v7 = state.value().shards[0];
  EXPECT_EQ(v7.version, "7.2.0");
  EXPECT_EQ(v7.cells, 4u);
  EXPECT_EQ(v7.exited_zero, 1u);
  EXPECT_EQ(v7.exited_nonzero, 1u);
  EXPECT_EQ(v7.timeout, 1u);
  EXPECT_EQ(v7.failed, 1u);
  EXPECT_EQ(v7.infra_attempts, 3u);
  const ShardCounts& v10 = state.value().shards[1];
  EXPECT_EQ(v10.signaled, 1u);
  EXPECT_EQ(v10.pending, 2u);  // 10.0.2/b never ran
  EXPECT_EQ(state.value().total.cells, 8u);

  const std::string text = FormatSweepState(state.value(), true);
  EXPECT_NE(text.find("failed on every allowed attempt (1):\n  map-json/7.2.0/b: #1 "
                      "image-mismatch: details (w2); #2 worker-lost: details (w2); #3 "
                      "output-limit: details (w2)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("timed out (1):\n  map-json/7.2.0/a: #1 timeout (w1)\n"), std::string::npos);
  EXPECT_NE(text.find("`imgsweep rerun --failed` runs these 2 cells again."), std::string::npos);
  EXPECT_NE(text.find("\nmap-human/10.0.2/a done signaled attempts=2 worker-lost\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nmap-human/10.0.2/b pending attempts=0\n"), std::string::npos);
}

TEST_F(SweepStateTest, FailedReopensFailedAndTimedOutCellsKeepingTheirAttempts) {
  StoreMixedSweep();
  Result<std::size_t> n = ReopenCells(*store_, plan_, RerunSelection{true, {}, {}});
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n.value(), 2u);
  const CellRecord failed = *store_->GetCell("map-json/7.2.0/b").value();
  EXPECT_EQ(failed.state, CellState::kPending);
  EXPECT_EQ(failed.attempts.size(), 3u);
  EXPECT_EQ(failed.round_start, 3u);  // the attempt limit counts from here
  EXPECT_EQ(store_->GetCell("map-json/7.2.0/a").value()->state, CellState::kPending);
  EXPECT_EQ(store_->GetCell("map-human/7.2.0/b").value()->state, CellState::kDone);
}

TEST_F(SweepStateTest, ShardAndImageReopenTheirCells) {
  StoreMixedSweep();
  EXPECT_EQ(ReopenCells(*store_, plan_, RerunSelection{false, {"10.0.2"}, {}}).value(), 2u);
  EXPECT_EQ(store_->GetCell("map-json/10.0.2/a").value()->state, CellState::kPending);
  EXPECT_EQ(store_->GetCell("map-human/7.2.0/a").value()->state, CellState::kDone);
  EXPECT_EQ(ReopenCells(*store_, plan_, RerunSelection{false, {}, {"a"}}).value(), 2u);
  EXPECT_EQ(store_->GetCell("map-human/7.2.0/a").value()->state, CellState::kPending);
  EXPECT_EQ(store_->GetCell("map-human/7.2.0/b").value()->state, CellState::kDone);
}

TEST_F(SweepStateTest, RefusesSelectionsThePlanDoesNotHave) {
  EXPECT_EQ(ReopenCells(*store_, plan_, RerunSelection{false, {"9.9.9"}, {}}).status().message(),
            "rerun --shard 9.9.9: not a version of this sweep (it has 7.2.0, 10.0.2)");
  EXPECT_EQ(ReopenCells(*store_, plan_, RerunSelection{false, {}, {"c"}}).status().message(),
            "rerun --image c: not an image or row of this sweep");
  EXPECT_EQ(ReopenCells(*store_, plan_, RerunSelection{}).status().message(),
            "rerun: say which cells: --failed, --shard VERSION or --image ID");
}

}  // namespace
}  // namespace imgsweep
