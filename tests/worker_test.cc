// A whole Worker in process against a real coordinator over tcp loopback:
// real ZeroMQ sockets and RocksDB, and an executor that starts nothing.
#include "worker/worker.h"

#include <gtest/gtest.h>

#include <future>

#include "coordinator/coordinator.h"
#include "tests/manifest_json.h"
#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

using std::chrono::milliseconds;
const std::string kSha(64, 'e');

class EchoExecutor final : public CellExecutor {
 public:
  CellResult Run(const CellSpec& cell) override {
    CellResult r;
    r.key = cell.key;
    r.attempt = cell.attempt;
    r.stdout_text = "ran " + cell.key + "\n";
    return r;
  }
};

TEST(Worker, RunsEveryCellItIsGivenAndEndsWhenTheSweepIsDone) {
  TempDir dir;
  const Plan plan = Plan::Make(ManifestOf(ImageJson("a", "images/a.raw", "raw", "safe", kSha) +
                                          "," + ImageJson("b", "images/b.raw", "raw", "safe", kSha)),
                               {"7.2.0", "10.0.2"}, milliseconds(30'000))
                        .value();
  std::unique_ptr<Store> store =
      std::move(Store::Open(dir.path() / "db", Store::Mode::kCreateIfMissing)).value();
  ASSERT_TRUE(store->PutMeta("plan", plan.ToJson()).ok());
  CoordinatorOptions copts;
  copts.heartbeat = milliseconds(100);
  std::unique_ptr<Coordinator> coordinator =
      std::move(Coordinator::Create(copts, plan, store.get())).value();
  std::future<Result<SweepSummary>> run =
      std::async(std::launch::async, [&] { return coordinator->Run(); });

  WorkerOptions wopts;
  wopts.connect = coordinator->endpoint();
  wopts.name = "w1";
  wopts.host = "h";
  wopts.slots = 2;
  wopts.versions = {{"7.2.0", kSha, "qemu-img version 7.2.22"},
                    {"10.0.2", kSha, "qemu-img version 10.0.2"}};
  wopts.give_up_after = milliseconds(20'000);  // the test's deadline, should the sweep stall
  Worker worker(wopts, std::make_unique<EchoExecutor>());
  const Status st = worker.Run();
  EXPECT_TRUE(st.ok()) << st.ToString();

  ASSERT_EQ(run.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  Result<SweepSummary> summary = run.get();
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary.value().exited_zero, plan.cell_count());
  EXPECT_EQ(summary.value().by_worker.at("w1"), plan.cell_count());
  const CellRecord record = *store->GetCell("map-json/10.0.2/b").value();
  EXPECT_EQ(record.state, CellState::kDone);
  EXPECT_EQ(store->GetBlob(record.attempts.back().stdout_sha256).value(),
            "ran map-json/10.0.2/b\n");
}

}  // namespace
}  // namespace imgsweep
