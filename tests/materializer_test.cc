#include "coordinator/materializer.h"

#include <gtest/gtest.h>

#include "protocol/sha256.h"
#include "tests/manifest_json.h"
#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

namespace fs = std::filesystem;

class MaterializerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Manifest manifest =
        ManifestOf(ImageJson("a", "images/a.qcow2", "qcow2", "safe", std::string(64, 'c')));
    plan_ = Plan::Make(manifest, {"7.2.0"}, std::chrono::seconds(30)).value();
    store_ = std::move(Store::Open(dir_.path() / "db", Store::Mode::kCreateIfMissing)).value();
    ASSERT_TRUE(store_->PutMeta("plan", plan_.ToJson()).ok());
  }

  void StoreCell(const std::string& key, Outcome outcome, int code, const std::string& out) {
    Attempt a;
    a.number = 1;
    a.outcome = outcome;
    a.exit_code = outcome == Outcome::kExited ? code : 0;
    a.signal = outcome == Outcome::kSignaled ? code : 0;
    a.stdout_sha256 = Sha256Hex(out);
    a.stderr_sha256 = Sha256Hex("");
    a.stdout_bytes = out.size();
    a.version_line = "qemu-img version 7.2.22";
    a.binary_sha256 = std::string(64, 'd');
    a.worker = "w1";
    ASSERT_TRUE(store_
                    ->Commit({CellWrite{key,
                                        CellRecord{CellState::kDone, {a}},
                                        {{a.stdout_sha256, out}, {a.stderr_sha256, ""}}}})
                    .ok());
  }

  TempDir dir_;
  Plan plan_;
  std::unique_ptr<Store> store_;
};

TEST_F(MaterializerTest, WritesTheContractLayoutAndMeta) {
  StoreCell("map-human/7.2.0/a", Outcome::kSignaled, 11, "");
  StoreCell("map-json/7.2.0/a", Outcome::kTimeout, 0, "[");
  Result<MaterializeSummary> s = Materialize(*store_, dir_.path() / "out", {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value().files_written, 6u);
  const fs::path json_dir = dir_.path() / "out/map-json/qcow2/7.2.0";
  EXPECT_EQ(ReadFile(json_dir / "a.stdout.txt"), "[");
  EXPECT_EQ(ReadFile(json_dir / "a.stderr.txt"), "");
  EXPECT_EQ(ReadFile(json_dir / "a.meta.json"), R"({
  "argv": [
    "7.2.0/qemu-img",
    "map",
    "--output=json",
    "$TESTDATA_ROOT/images/a.qcow2"
  ],
  "binary_sha256": "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
  "cwd": "$TESTDATA_ROOT",
  "format": "qcow2",
  "image_id": "a",
  "image_sha256": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
  "outcome": "timeout",
  "output_type": "map-json",
  "return_code": null,
  "stderr_bytes": 0,
  "stdout_bytes": 1,
  "timeout_seconds": 30,
  "version": "7.2.0",
  "version_line": "qemu-img version 7.2.22"
}
)");
  const std::string human = ReadFile(dir_.path() / "out/map-human/qcow2/7.2.0/a.meta.json");
  EXPECT_NE(human.find("\"return_code\": -11,"), std::string::npos) << human;
  EXPECT_NE(human.find("\"signal\": 11,"), std::string::npos) << human;
  EXPECT_EQ(human.find("worker"), std::string::npos) << "provenance is off by default";
}

TEST_F(MaterializerTest, RewritingAnUnchangedStoreTouchesNoFile) {
  StoreCell("map-human/7.2.0/a", Outcome::kExited, 0, "Offset\n");
  StoreCell("map-json/7.2.0/a", Outcome::kExited, 0, "[]\n");
  ASSERT_TRUE(Materialize(*store_, dir_.path() / "out", {}).ok());
  const fs::path file = dir_.path() / "out/map-human/qcow2/7.2.0/a.stdout.txt";
  const auto mtime = fs::last_write_time(file);
  Result<MaterializeSummary> again = Materialize(*store_, dir_.path() / "out", {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value().files_written, 0u);
  EXPECT_EQ(again.value().files_unchanged, 6u);
  EXPECT_EQ(fs::last_write_time(file), mtime);
}

TEST_F(MaterializerTest, AStoreWithoutEveryOutcomeWritesNothing) {
  StoreCell("map-human/7.2.0/a", Outcome::kExited, 0, "Offset\n");
  Result<MaterializeSummary> s = Materialize(*store_, dir_.path() / "out", {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(),
            "1 of 2 cells have no outcome (map-json/7.2.0/a); nothing written");
  EXPECT_FALSE(fs::exists(dir_.path() / "out"));
}

TEST_F(MaterializerTest, ProvenanceAddsWorkerAndDuration) {
  StoreCell("map-human/7.2.0/a", Outcome::kExited, 0, "");
  StoreCell("map-json/7.2.0/a", Outcome::kExited, 0, "");
  ASSERT_TRUE(Materialize(*store_, dir_.path() / "out", {.provenance = true}).ok());
  const std::string meta = ReadFile(dir_.path() / "out/map-json/qcow2/7.2.0/a.meta.json");
  EXPECT_NE(meta.find("\"worker\": \"w1\""), std::string::npos) << meta;
  EXPECT_NE(meta.find("\"duration_ms\""), std::string::npos) << meta;
}

}  // namespace
}  // namespace imgsweep
