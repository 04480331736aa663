#include "tree/materializer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tree/profile_report.h"
#include "tree/tree_check.h"
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
  // 2 cells x 3 files, and per output type one profile of 3 files and a map.
  EXPECT_EQ(s.value().files_written, 14u);
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
  EXPECT_EQ(again.value().files_unchanged, 14u);
  EXPECT_EQ(fs::last_write_time(file), mtime);
}

TEST_F(MaterializerTest, AStoreWithoutEveryOutcomeWritesNothing) {
  StoreCell("map-human/7.2.0/a", Outcome::kExited, 0, "Offset\n");
  Result<MaterializeSummary> s = Materialize(*store_, dir_.path() / "out", {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(),
            "1 of 2 cells have no outcome (map-json/7.2.0/a); nothing written (--allow-partial "
            "writes the rest)");
  EXPECT_FALSE(fs::exists(dir_.path() / "out"));
}

// --allow-partial never leaves a consumer a type without version-map.json.
TEST_F(MaterializerTest, PartialRefusesATypeWithoutACompleteVersion) {
  StoreCell("map-human/7.2.0/a", Outcome::kExited, 0, "Offset\n");
  const Status st = Materialize(*store_, dir_.path() / "out", {.allow_partial = true}).status();
  EXPECT_EQ(st.message(),
            "output type map-json has no version with an outcome for every image, so it would "
            "have no version-map.json; nothing written (1 cells have no outcome)");
  EXPECT_FALSE(fs::exists(dir_.path() / "out"));
}

TEST_F(MaterializerTest, RefusesToWriteThroughALinkPlantedInTheTree) {
  StoreCell("map-human/7.2.0/a", Outcome::kExited, 0, "Offset\n");
  StoreCell("map-json/7.2.0/a", Outcome::kExited, 0, "[]\n");
  const fs::path out = dir_.path() / "out";
  fs::create_directories(out);
  fs::create_directory(dir_.path() / "elsewhere");
  fs::create_directory_symlink(dir_.path() / "elsewhere", out / "map-json");
  EXPECT_EQ(Materialize(*store_, out, {}).status().message(),
            (out / "map-json").string() + " is a symbolic link; refusing to write through it");
  EXPECT_TRUE(fs::is_empty(dir_.path() / "elsewhere"));
}

TEST_F(MaterializerTest, ReplacesALinkPlantedAsAFileWithoutTouchingItsTarget) {
  StoreCell("map-human/7.2.0/a", Outcome::kExited, 0, "Offset\n");
  StoreCell("map-json/7.2.0/a", Outcome::kExited, 0, "[]\n");
  const fs::path target = dir_.Write("precious.txt", "Offset\n");  // even the same bytes
  const fs::path file = dir_.path() / "out/map-human/qcow2/7.2.0/a.stdout.txt";
  fs::create_directories(file.parent_path());
  fs::create_symlink(target, file);
  ASSERT_TRUE(Materialize(*store_, dir_.path() / "out", {}).ok());
  EXPECT_FALSE(fs::is_symlink(file));
  EXPECT_EQ(ReadFile(file), "Offset\n");
  EXPECT_EQ(ReadFile(target), "Offset\n");
  EXPECT_EQ(fs::hard_link_count(target), 1u);
}

// New files are written unnamed and linked once whole: each has exactly one
// name, the mode a created file gets, and nothing is left beside them.
TEST_F(MaterializerTest, NewFilesHaveOneNameTheUsualModeAndNoLeftovers) {
  StoreCell("map-human/7.2.0/a", Outcome::kExited, 0, "Offset\n");
  StoreCell("map-json/7.2.0/a", Outcome::kExited, 0, "[]\n");
  const fs::path out = dir_.path() / "out";
  ASSERT_TRUE(Materialize(*store_, out, {}).ok());
  const mode_t mask = ::umask(0);
  ::umask(mask);
  const auto expected = static_cast<fs::perms>(0644 & ~mask);
  std::size_t files = 0;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(out)) {
    if (e.is_directory()) continue;
    ++files;
    EXPECT_TRUE(e.is_regular_file()) << e.path();
    EXPECT_EQ(e.path().filename().string().front() == '.', false) << e.path();
    EXPECT_EQ(fs::hard_link_count(e.path()), 1u) << e.path();
    EXPECT_EQ(fs::status(e.path()).permissions(), expected) << e.path();
  }
  EXPECT_GT(files, 4u);
  EXPECT_EQ(ReadFile(out / "map-human/qcow2/7.2.0/a.stdout.txt"), "Offset\n");
  EXPECT_EQ(ReadFile(out / "map-json/qcow2/7.2.0/a.stdout.txt"), "[]\n");
}

TEST_F(MaterializerTest, ProvenanceAddsWorkerAndDuration) {
  StoreCell("map-human/7.2.0/a", Outcome::kExited, 0, "");
  StoreCell("map-json/7.2.0/a", Outcome::kExited, 0, "");
  ASSERT_TRUE(Materialize(*store_, dir_.path() / "out", {.provenance = true}).ok());
  const std::string meta = ReadFile(dir_.path() / "out/map-json/qcow2/7.2.0/a.meta.json");
  EXPECT_NE(meta.find("\"worker\": \"w1\""), std::string::npos) << meta;
  EXPECT_NE(meta.find("\"duration_ms\""), std::string::npos) << meta;
}

// Images a (qcow2) and b (raw) at 7.2.0, 8.0.0 and 9.0.0. In map-json,
// 8.0.0 and 9.0.0 print something else on b only: image b alone splits
// 7.2.0 from 8.0.0. In map-human every version prints the same.
class ProfilesTest : public ::testing::Test {
 protected:
  static constexpr const char* kVersions[] = {"7.2.0", "8.0.0", "9.0.0"};

  std::unique_ptr<Store> OpenStore(const std::string& name) {
    const Manifest manifest =
        ManifestOf(ImageJson("a", "images/a.qcow2", "qcow2", "safe", std::string(64, 'c')) +
                   "," + ImageJson("b", "images/b.raw", "raw", "safe", std::string(64, 'e')));
    const Plan plan = Plan::Make(manifest, {std::begin(kVersions), std::end(kVersions)},
                                 std::chrono::seconds(30))
                          .value();
    std::unique_ptr<Store> store =
        std::move(Store::Open(dir_.path() / name, Store::Mode::kCreateIfMissing)).value();
    EXPECT_TRUE(store->PutMeta("plan", plan.ToJson()).ok());
    return store;
  }

  // Stores every cell but `skip`; `split` false makes all versions alike.
  static void Fill(Store& store, bool split, const std::string& skip = "") {
    for (const char* type : {"map-human", "map-json"}) {
      for (const char* v : kVersions) {
        for (const char* id : {"a", "b"}) {
          const std::string key = std::string(type) + "/" + v + "/" + id;
          if (key == skip) continue;
          const bool newer = split && std::string(type) == "map-json" &&
                             std::string(id) == "b" && std::string(v) != "7.2.0";
          const std::string out = std::string(type) + " " + id + (newer ? " new\n" : "\n");
          Attempt a;
          a.number = 1;
          a.stdout_sha256 = Sha256Hex(out);
          a.stderr_sha256 = Sha256Hex("");
          a.stdout_bytes = out.size();
          a.version_line = std::string("qemu-img version ") + v;
          ASSERT_TRUE(store
                          .Commit({CellWrite{key,
                                             CellRecord{CellState::kDone, {a}},
                                             {{a.stdout_sha256, out}, {a.stderr_sha256, ""}}}})
                          .ok());
        }
      }
    }
  }

  TempDir dir_;
};

TEST_F(ProfilesTest, OneImageAloneSplitsTwoVersions) {
  std::unique_ptr<Store> store = OpenStore("db");
  Fill(*store, true);
  const fs::path out = dir_.path() / "out";
  Result<MaterializeSummary> s = Materialize(*store, out, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s.value().types.size(), 2u);
  EXPECT_EQ(s.value().types[0].profiles, 1u);
  EXPECT_EQ(s.value().types[1].profiles, 2u);
  EXPECT_EQ(ReadFile(out / "map-json/version-map.json"), R"({
  "profiles": {
    "profile-7-2-0": "7.2.0",
    "profile-8-0-0": "8.0.0"
  },
  "version_to_profile": {
    "7.2.0": "profile-7-2-0",
    "8.0.0": "profile-8-0-0",
    "9.0.0": "profile-8-0-0"
  }
}
)");
  // A profile holds every image's three files, copied from its earliest version.
  for (const char* file : {"a.stdout.txt", "a.stderr.txt", "a.meta.json", "b.stdout.txt",
                           "b.stderr.txt", "b.meta.json"}) {
    EXPECT_EQ(ReadFile(out / "map-json/profiles/profile-8-0-0" / file),
              ReadFile(out / "map-json" / (file[0] == 'a' ? "qcow2" : "raw") / "8.0.0" / file))
        << file;
  }
  EXPECT_EQ(ReadFile(out / "map-json/profiles/profile-8-0-0/b.stdout.txt"), "map-json b new\n");
  EXPECT_EQ(ReadFile(out / "map-json/profiles/profile-7-2-0/b.stdout.txt"), "map-json b\n");
  EXPECT_FALSE(fs::exists(out / "map-human/profiles/profile-8-0-0"));
  EXPECT_EQ(ValidateTree(out).value(), std::vector<std::string>{});
}

// The sweep owns its output types' folders and nothing else: inside them
// the tree equals the sweep (a stale profile, captures of a version and of
// an image no longer swept, a note, a planted link all go; the link's
// target stays), and beside them another command's tree and a README stay.
TEST_F(ProfilesTest, InsideItsTypesTheTreeEqualsTheSweepAndNothingBesideIsTouched) {
  const fs::path out = dir_.path() / "out";
  {
    std::unique_ptr<Store> split = OpenStore("split");
    Fill(*split, true);
    ASSERT_TRUE(Materialize(*split, out, {}).ok());
  }
  ASSERT_TRUE(fs::is_directory(out / "map-json/profiles/profile-8-0-0"));
  dir_.Write("out/map-json/notes.txt", "mine");
  dir_.Write("out/map-json/profiles/README", "mine too");
  dir_.Write("out/map-json/raw/6.0.0/b.stdout.txt", "a version no longer swept");
  dir_.Write("out/map-json/raw/9.0.0/gone.stdout.txt", "an image no longer swept");
  dir_.Write("outside/keep.txt", "outside");
  fs::create_directory_symlink(dir_.path() / "outside", out / "map-json/profiles/profile-1-0-0");
  dir_.Write("out/README.md", "the testdata's own");
  dir_.Write("out/qemu-img-human/profiles/profile-6-0-0/a.stdout.txt", "another command's");

  std::unique_ptr<Store> alike = OpenStore("alike");
  Fill(*alike, false);
  Result<MaterializeSummary> s = Materialize(*alike, out, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_GT(s.value().stale_removed, 0u);
  for (const char* gone : {"map-json/profiles/profile-8-0-0", "map-json/notes.txt",
                           "map-json/profiles/README", "map-json/raw/6.0.0",
                           "map-json/raw/9.0.0/gone.stdout.txt", "map-json/profiles/profile-1-0-0"}) {
    EXPECT_FALSE(fs::exists(fs::symlink_status(out / gone))) << gone;
  }
  EXPECT_EQ(ReadFile(dir_.path() / "outside/keep.txt"), "outside");
  EXPECT_EQ(ReadFile(out / "README.md"), "the testdata's own");
  EXPECT_EQ(ReadFile(out / "qemu-img-human/profiles/profile-6-0-0/a.stdout.txt"), "another command's");
  EXPECT_EQ(ReadFile(out / "map-json/raw/9.0.0/b.stdout.txt"), "map-json b\n");
  Result<std::vector<TypeFacts>> scanned = ScanTree(out);
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  for (const TypeFacts& type : scanned.value()) {
    if (type.type.rfind("map-", 0) == 0) {
      EXPECT_EQ(CheckType(type), std::vector<std::string>{}) << type.type;
    }
  }
}

// A type's folder that the materialisation makes is not walked for stale
// files; one that was there before is, in the same run.
TEST_F(ProfilesTest, CleansTheTypeFolderThatWasThereAndFillsTheNewOne) {
  const fs::path out = dir_.path() / "out";
  dir_.Write("out/map-json/notes.txt", "mine");
  std::unique_ptr<Store> store = OpenStore("alike");
  Fill(*store, false);
  Result<MaterializeSummary> s = Materialize(*store, out, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value().stale_removed, 1u);
  EXPECT_FALSE(fs::exists(out / "map-json/notes.txt"));
  EXPECT_EQ(ValidateTree(out).value(), std::vector<std::string>{});
}

TEST_F(ProfilesTest, PartialLeavesOutVersionsWithoutEveryImage) {
  std::unique_ptr<Store> store = OpenStore("db");
  Fill(*store, true, "map-json/9.0.0/a");
  const fs::path out = dir_.path() / "out";
  EXPECT_EQ(Materialize(*store, out, {}).status().message(),
            "1 of 12 cells have no outcome (map-json/9.0.0/a); nothing written (--allow-partial "
            "writes the rest)");
  EXPECT_FALSE(fs::exists(out));

  Result<MaterializeSummary> s = Materialize(*store, out, {.allow_partial = true});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value().cells_missing, 1u);
  EXPECT_EQ(s.value().types[1].left_out, std::vector<std::string>{"9.0.0"});
  EXPECT_EQ(s.value().types[0].left_out, std::vector<std::string>{});
  EXPECT_TRUE(fs::exists(out / "map-json/raw/9.0.0/b.stdout.txt"));
  EXPECT_FALSE(fs::exists(out / "map-json/qcow2/9.0.0/a.stdout.txt"));
  const std::string map = ReadFile(out / "map-json/version-map.json");
  EXPECT_EQ(map.find("9.0.0"), std::string::npos) << map;
  EXPECT_NE(map.find("\"8.0.0\": \"profile-8-0-0\""), std::string::npos) << map;
}

TEST_F(ProfilesTest, AStoreThatWouldMakeAnInvalidTreeWritesNothing) {
  std::unique_ptr<Store> store = OpenStore("db");
  Fill(*store, true);
  // An attempt whose stdout_bytes disagrees with its blob.
  Attempt a;
  a.number = 1;
  a.stdout_sha256 = Sha256Hex("short\n");
  a.stderr_sha256 = Sha256Hex("");
  a.stdout_bytes = 99;
  ASSERT_TRUE(store
                  ->Commit({CellWrite{"map-human/8.0.0/a",
                                      CellRecord{CellState::kDone, {a}},
                                      {{a.stdout_sha256, "short\n"}}}})
                  .ok());
  const Status st = Materialize(*store, dir_.path() / "out", {}).status();
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_EQ(st.message(),
            "the tree would not be valid; nothing written:\n"
            "  map-human/qcow2/8.0.0/a.stdout.txt: 6 bytes, but meta.json says stdout_bytes 99\n"
            "  map-human/profiles/profile-8-0-0/a.stdout.txt: 6 bytes, but meta.json says "
            "stdout_bytes 99");
  EXPECT_FALSE(fs::exists(dir_.path() / "out"));
}

TEST_F(ProfilesTest, ExplainsTheBoundaryAndTheImageThatAloneSplits) {
  std::unique_ptr<Store> store = OpenStore("db");
  Fill(*store, true);
  Result<std::string> report = ExplainProfiles(*store, {.type = "map-json"});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report.value(), R"(map-json: 2 profiles over 3 versions and 2 images
  profile-7-2-0: 7.2.0
  profile-8-0-0: 8.0.0, 9.0.0

  7.2.0 -> 8.0.0: 1/2 images differ
    b:
      --- 7.2.0
      +++ 8.0.0
      @@ -1,1 +1,1 @@
      -map-json b
      +map-json b new

  images that never differ (1): a
  b alone separates profile-7-2-0 from profile-8-0-0
)");
  EXPECT_EQ(ExplainProfiles(*store, {.type = "info"}).status().message(),
            "no output type \"info\" in this sweep (it has map-human, map-json)");
}

}  // namespace
}  // namespace imgsweep
