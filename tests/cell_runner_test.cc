// The worker's side of a cell, against a fake qemu-img (a shell script) in a
// binaries tree made for each test.
#include "worker/cell_runner.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "protocol/sha256.h"
#include "tests/temp_dir.h"
#include "worker/binaries.h"

namespace imgsweep {
namespace {

using std::chrono::milliseconds;

constexpr const char* kFakeQemuImg = R"sh(#!/bin/sh
if [ "$1" = --version ]; then echo "qemu-img version $(basename "$(dirname "$0")") (fake)"; echo second; exit 0; fi
echo "args: $*"
echo "cwd: $(pwd)"
echo "warning: $*" >&2
exit 1
)sh";

void AddVersion(const TempDir& dir, const std::string& version, const std::string& script) {
  const auto program = dir.Write("bin/x86_64/" + version + "/qemu-img", script);
  ::chmod(program.c_str(), 0755);
}

class CellRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AddVersion(dir_, "7.2.0", kFakeQemuImg);
    image_ = "images/raw/a.raw";
    dir_.Write("testdata/" + image_, "image bytes");
    root_ = std::filesystem::canonical(dir_.path() / "testdata");
  }

  CellSpec Cell() const {
    return CellSpec{"map-human/7.2.0/a",
                    "7.2.0",
                    {"map", "$TESTDATA_ROOT/" + image_},
                    image_,
                    Sha256Hex("image bytes"),
                    20'000,
                    1};
  }

  CellRunner Runner() const {
    Result<std::vector<InstalledVersion>> v =
        DiscoverBinaries(dir_.path() / "bin", milliseconds(20'000));
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return CellRunner(root_, v.value(), milliseconds(200));
  }

  TempDir dir_;
  std::string image_;
  std::filesystem::path root_;
};

TEST_F(CellRunnerTest, DiscoversVersionsWithTheirVersionLineAndDigest) {
  AddVersion(dir_, "10.0.2", kFakeQemuImg);
  Result<std::vector<InstalledVersion>> v =
      DiscoverBinaries(dir_.path() / "bin", milliseconds(20'000));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v.value().size(), 2u);
  EXPECT_EQ(v.value()[0].info.name, "7.2.0");
  EXPECT_EQ(v.value()[1].info.name, "10.0.2");
  EXPECT_EQ(v.value()[0].info.version_line, "qemu-img version 7.2.0 (fake)");
  EXPECT_EQ(v.value()[0].info.binary_sha256, Sha256Hex(kFakeQemuImg));
}

TEST_F(CellRunnerTest, RefusesABinariesTreeWithAStrayEntry) {
  AddVersion(dir_, "latest", kFakeQemuImg);
  EXPECT_EQ(ListVersions(dir_.path() / "bin").status().message(),
            "binaries tree " + (dir_.path() / "bin").string() +
                ": x86_64/latest is not a version name (X.Y.Z)");
}

TEST_F(CellRunnerTest, RefusesAnEmptyBinariesTree) {
  std::filesystem::create_directories(dir_.path() / "empty/x86_64");
  EXPECT_EQ(ListVersions(dir_.path() / "empty").status().message(),
            "binaries tree " + (dir_.path() / "empty").string() + ": no versions under x86_64/");
  EXPECT_EQ(ListVersions(dir_.path() / "absent").status().code(), StatusCode::kNotFound);
}

TEST_F(CellRunnerTest, RunsInTheRootAndReplacesItInBothStreams) {
  CellResult r = Runner().Run(Cell());
  EXPECT_EQ(r.outcome, Outcome::kExited) << r.failure;
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.key, "map-human/7.2.0/a");
  EXPECT_EQ(r.stdout_text, "args: map $TESTDATA_ROOT/images/raw/a.raw\ncwd: $TESTDATA_ROOT\n");
  EXPECT_EQ(r.stderr_text, "warning: map $TESTDATA_ROOT/images/raw/a.raw\n");
}

TEST_F(CellRunnerTest, RefusesAnImageWhoseDigestDiffers) {
  CellSpec cell = Cell();
  cell.image_sha256 = std::string(64, 'f');
  CellResult r = Runner().Run(cell);
  EXPECT_EQ(r.outcome, Outcome::kInfraFailure);
  EXPECT_EQ(r.failure, "image images/raw/a.raw: this host's copy has sha256 " +
                           Sha256Hex("image bytes") + ", the manifest says " +
                           std::string(64, 'f'));
  EXPECT_EQ(r.stdout_text, "");
}

TEST_F(CellRunnerTest, RefusesAVersionItDoesNotHold) {
  CellSpec cell = Cell();
  cell.version = "9.9.9";
  EXPECT_EQ(Runner().Run(cell).failure, "version 9.9.9 is not on this worker");
}

TEST_F(CellRunnerTest, RefusesPathsThatLeaveTheRoot) {
  CellSpec cell = Cell();
  cell.image_path = "../secret";
  EXPECT_EQ(Runner().Run(cell).failure, "image path \"../secret\" leaves the testdata root");
  cell = Cell();
  cell.args.back() = "$TESTDATA_ROOT/../../etc/passwd";
  EXPECT_EQ(Runner().Run(cell).failure,
            "argument \"$TESTDATA_ROOT/../../etc/passwd\" leaves the testdata root");
}

TEST_F(CellRunnerTest, RefusesALinkThatLeadsOutOfTheRoot) {
  // Same bytes outside the root, so only the link's destination is wrong.
  const std::filesystem::path outside = dir_.Write("outside/a.raw", "image bytes");
  std::filesystem::create_symlink(outside, root_ / "images/raw/link.raw");
  CellSpec cell = Cell();
  cell.image_path = "images/raw/link.raw";
  cell.args.back() = "$TESTDATA_ROOT/images/raw/link.raw";
  EXPECT_EQ(Runner().Run(cell).failure, "image images/raw/link.raw resolves to " +
                                            std::filesystem::canonical(outside).string() +
                                            ", outside the testdata root");
}

TEST_F(CellRunnerTest, RunsEveryPathTheManifestAccepts) {
  CellSpec cell = Cell();
  cell.image_path = "images/./raw//a.raw";
  cell.args.back() = "$TESTDATA_ROOT/images/./raw//a.raw";
  CellResult r = Runner().Run(cell);
  EXPECT_EQ(r.outcome, Outcome::kExited) << r.failure;
}

TEST(ReplaceAll, ReplacesEveryOccurrence) {
  EXPECT_EQ(ReplaceAll("/t/a /t/b /tx", "/t", "$R"), "$R/a $R/b $Rx");
  EXPECT_EQ(ReplaceAll("none", "/t", "$R"), "none");
  EXPECT_EQ(ReplaceAll("", "/t", "$R"), "");
}

}  // namespace
}  // namespace imgsweep
