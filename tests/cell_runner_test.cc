// The worker's side of a cell, against a fake qemu-img (a shell script) in a
// binaries tree made for each test.
#include "worker/cell_runner.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>

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
    Result<Binaries> v =
        DiscoverBinaries(dir_.path() / "bin", milliseconds(20'000));
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return CellRunner(root_, v.value().working, milliseconds(200));
  }

  TempDir dir_;
  std::string image_;
  std::filesystem::path root_;
};

TEST_F(CellRunnerTest, DiscoversVersionsWithTheirVersionLineAndDigest) {
  AddVersion(dir_, "10.0.2", kFakeQemuImg);
  Result<Binaries> v =
      DiscoverBinaries(dir_.path() / "bin", milliseconds(20'000));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v.value().working.size(), 2u);
  EXPECT_EQ(v.value().working[0].info.name, "7.2.0");
  EXPECT_EQ(v.value().working[1].info.name, "10.0.2");
  EXPECT_EQ(v.value().working[0].info.version_line, "qemu-img version 7.2.0 (fake)");
  EXPECT_EQ(v.value().working[0].info.binary_sha256, Sha256Hex(kFakeQemuImg));
}

// A version directory that is a link to another is the same build: it is
// hashed and asked for its version once (the fake counts its --version runs).
TEST_F(CellRunnerTest, AsksOneBuildBehindSeveralVersionNamesOnce) {
  const std::string counting = std::string("#!/bin/sh\necho run >>\"") +
                               (dir_.path() / "asked").string() + "\"\n" +
                               (kFakeQemuImg + std::string_view(kFakeQemuImg).find('\n') + 1);
  AddVersion(dir_, "7.2.0", counting);
  std::filesystem::create_directory_symlink(dir_.path() / "bin/x86_64/7.2.0",
                                            dir_.path() / "bin/x86_64/7.2.1");
  AddVersion(dir_, "10.0.2", counting);
  Result<Binaries> v =
      DiscoverBinaries(dir_.path() / "bin", milliseconds(20'000));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v.value().working.size(), 3u);
  EXPECT_EQ(v.value().working[1].info.name, "7.2.1");
  EXPECT_EQ(v.value().working[1].info.version_line, v.value().working[0].info.version_line);
  EXPECT_EQ(v.value().working[1].info.binary_sha256, v.value().working[0].info.binary_sha256);
  EXPECT_EQ(v.value().working[1].program, dir_.path() / "bin/x86_64/7.2.1/qemu-img");
  // 7.2.0 (and its link) once, 10.0.2 once.
  std::ifstream asked(dir_.path() / "asked");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(asked), {}), "run\nrun\n");
}

// `--binaries bins` from where the worker started: cells run in the
// testdata root, so the program must not be named relative to the start.
TEST_F(CellRunnerTest, RunsFromABinariesTreeGivenByARelativePath) {
  const std::filesystem::path started = std::filesystem::current_path();
  std::filesystem::current_path(dir_.path());
  Result<Binaries> v = DiscoverBinaries("bin", milliseconds(20'000));
  std::filesystem::current_path(started);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v.value().working[0].program, dir_.path() / "bin/x86_64/7.2.0/qemu-img");
  CellRunner runner(root_, v.value().working, milliseconds(200));
  const CellResult r = runner.Run(Cell());
  EXPECT_EQ(r.outcome, Outcome::kExited) << r.failure;
  EXPECT_EQ(r.exit_code, 1);
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
  EXPECT_EQ(r.failure_kind, FailureKind::kImageMismatch);
  EXPECT_EQ(r.failure, "image-mismatch: image images/raw/a.raw: this host's copy has sha256 " +
                           Sha256Hex("image bytes") + ", the manifest says " +
                           std::string(64, 'f'));
  EXPECT_EQ(r.stdout_text, "");
}

TEST_F(CellRunnerTest, RefusesAVersionItDoesNotHold) {
  CellSpec cell = Cell();
  cell.version = "9.9.9";
  EXPECT_EQ(Runner().Run(cell).failure, "binary-missing: version 9.9.9 is not on this worker");
}

TEST_F(CellRunnerTest, RefusesPathsThatLeaveTheRoot) {
  CellSpec cell = Cell();
  cell.image_path = "../secret";
  EXPECT_EQ(Runner().Run(cell).failure,
            "path-refused: image path \"../secret\" leaves the testdata root");
}

// What a coordinator sends is run only when it is a command line of the
// worker's table whose one path is the image the worker checked.
TEST_F(CellRunnerTest, RunsOnlyCommandLinesOfItsTable) {
  const std::string refused = "path-refused: command line refused: ";
  CellSpec cell = Cell();
  cell.args.back() = "$TESTDATA_ROOT/../../etc/passwd";
  EXPECT_EQ(Runner().Run(cell).failure,
            refused + "the command line does not end with the image it checked "
                      "($TESTDATA_ROOT/images/raw/a.raw)");
  const std::string table = "(" + CommandTable::BuiltIn().Describe() + ")";
  EXPECT_EQ(table.rfind("(map (map-human: map; map-json: map --output=json); map-window (", 0), 0u) << table;
  cell = Cell();
  cell.args = {"convert", "-O", "raw", "$TESTDATA_ROOT/images/raw/a.raw", "/tmp/x"};
  EXPECT_EQ(Runner().Run(cell).failure,
            refused + "subcommand \"convert\" is not in this worker's table " + table);
  cell = Cell();
  cell.args.insert(cell.args.begin() + 1, "--object");
  EXPECT_EQ(Runner().Run(cell).failure,
            refused + "\"map --object\" is not an output type of this worker's table " +
                table);
  cell = Cell();
  cell.args.push_back(cell.args.back());
  EXPECT_EQ(Runner().Run(cell).failure,
            refused + "\"map $TESTDATA_ROOT/images/raw/a.raw\" is not an output type "
                      "of this worker's table " + table);
  cell = Cell();
  cell.args = {"map", "--output=json", "--output=json", "$TESTDATA_ROOT/images/raw/a.raw"};
  EXPECT_EQ(Runner().Run(cell).failure,
            refused + "\"map --output=json --output=json\" is not an output type of this "
                      "worker's table " + table);
  cell = Cell();
  cell.args = {"map", "--output=json"};
  EXPECT_EQ(Runner().Run(cell).failure,
            refused + "the command line does not end with the image it checked "
                      "($TESTDATA_ROOT/images/raw/a.raw)");
  // A table of the user's own: its command lines, and no other.
  cell = Cell();
  cell.args = {"info", "--output=json", "--force-share", "$TESTDATA_ROOT/images/raw/a.raw"};
  EXPECT_EQ(Runner().Run(cell).failure,
            refused + "\"info --output=json --force-share\" is not an output type of this "
                      "worker's table " + table);
  CellRunner own = Runner();
  Result<CommandTable> info = CommandTable::Parse(
      R"({"table_format": 1, "commands": [{"name": "info", "layout": "flat", "output_types": [
            {"name": "info-json", "argv": "{binary} info --output=json --force-share {image}"}]}]})",
      "test table");
  ASSERT_TRUE(info.ok()) << info.status().message();
  own.UseCommandTable(info.value());
  EXPECT_EQ(own.Run(cell).outcome, Outcome::kExited);
  EXPECT_EQ(own.Run(Cell()).failure,
            refused + "subcommand \"map\" is not in this worker's table "
                      "(info (info-json: info --output=json --force-share))");
  cell.args = {"map", "--output=json", "$TESTDATA_ROOT/images/raw/a.raw"};
  EXPECT_EQ(Runner().Run(cell).outcome, Outcome::kExited);
}

TEST_F(CellRunnerTest, RefusesALinkThatLeadsOutOfTheRoot) {
  // Same bytes outside the root, so only the link's destination is wrong.
  const std::filesystem::path outside = dir_.Write("outside/a.raw", "image bytes");
  std::filesystem::create_symlink(outside, root_ / "images/raw/link.raw");
  CellSpec cell = Cell();
  cell.image_path = "images/raw/link.raw";
  cell.args.back() = "$TESTDATA_ROOT/images/raw/link.raw";
  EXPECT_EQ(Runner().Run(cell).failure, "path-refused: image images/raw/link.raw resolves to " +
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

// Hostile binaries: each answers --version like a qemu-img, then misbehaves
// on a cell. Every one must end with its own outcome within the cell's
// timeout plus the grace, and the runner must serve the next cell after it.
class HostileBinaryTest : public CellRunnerTest {
 protected:
  CellResult RunAs(const std::string& version, const std::string& body, milliseconds timeout,
                   std::size_t output_limit = CellRunner::kDefaultOutputLimit) {
    AddVersion(dir_, version,
               "#!/bin/sh\nif [ \"$1\" = --version ]; then echo \"qemu-img version " + version +
                   "\"; exit 0; fi\n" + body + "\n");
    Result<Binaries> v =
        DiscoverBinaries(dir_.path() / "bin", milliseconds(20'000));
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    CellRunner runner(root_, v.value().working, milliseconds(200), output_limit);
    CellSpec cell = Cell();
    cell.version = version;
    cell.timeout_ms = static_cast<std::uint32_t>(timeout.count());
    const auto start = std::chrono::steady_clock::now();
    CellResult r = runner.Run(cell);
    elapsed_ = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    // The same runner, the well-behaved version: still serving.
    CellResult next = runner.Run(Cell());
    EXPECT_EQ(next.outcome, Outcome::kExited) << next.failure;
    EXPECT_EQ(next.exit_code, 1);
    return r;
  }
  milliseconds elapsed_{0};
};

// A cell dumps no core and writes no file past the output limit: dash's
// ulimit counts 512-byte blocks, so 1 MiB is 2048 of them.
TEST_F(HostileBinaryTest, OneRunsWithoutCoreFilesAndWithAFileSizeCap) {
  CellResult r = RunAs("1.0.8", "ulimit -c; ulimit -f", milliseconds(20'000), 1u << 20);
  EXPECT_EQ(r.outcome, Outcome::kExited) << r.failure;
  EXPECT_EQ(r.stdout_text, "0\n2048\n");
}

// A cell sees PATH and TMPDIR of the worker, the variables it is told to
// pass on, and nothing else of the worker's environment.
TEST_F(HostileBinaryTest, OneSeesOnlyTheEnvironmentItIsGiven) {
  ASSERT_EQ(::setenv("IMGSWEEP_TEST_SECRET", "hunter2", 1), 0);
  ASSERT_EQ(::setenv("IMGSWEEP_TEST_PASSED", "yes", 1), 0);
  const std::string body =
      "echo \"secret=${IMGSWEEP_TEST_SECRET:-unset} passed=${IMGSWEEP_TEST_PASSED:-unset} "
      "path=${PATH:+set} home=${HOME:-unset}\"";
  CellResult plain = RunAs("1.0.9", body, milliseconds(20'000));
  EXPECT_EQ(plain.stdout_text, "secret=unset passed=unset path=set home=unset\n");
  Result<Binaries> v = DiscoverBinaries(dir_.path() / "bin", milliseconds(20'000));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  CellRunner runner(root_, v.value().working, milliseconds(200));
  runner.PassEnvironment({"IMGSWEEP_TEST_PASSED", "IMGSWEEP_TEST_UNSET"});
  CellSpec cell = Cell();
  cell.version = "1.0.9";
  EXPECT_EQ(runner.Run(cell).stdout_text, "secret=unset passed=yes path=set home=unset\n");
  ::unsetenv("IMGSWEEP_TEST_SECRET");
  ::unsetenv("IMGSWEEP_TEST_PASSED");
}

TEST_F(HostileBinaryTest, OneThatHangsTimesOut) {
  CellResult r = RunAs("1.0.1", "exec sleep 600", milliseconds(300));
  EXPECT_EQ(r.outcome, Outcome::kTimeout);
  EXPECT_LT(elapsed_, milliseconds(300 + 200 + 2000));
}

TEST_F(HostileBinaryTest, OneThatIgnoresTermIsKilledAfterTheGrace) {
  CellResult r = RunAs("1.0.2", "trap '' TERM\nwhile :; do sleep 0.05; done", milliseconds(300));
  EXPECT_EQ(r.outcome, Outcome::kTimeout);
  EXPECT_LT(elapsed_, milliseconds(300 + 200 + 2000));
}

TEST_F(HostileBinaryTest, OneWhoseChildKeepsStdoutOpenEndsWithItsOwnExit) {
  CellResult r = RunAs("1.0.3", "echo early\n(sleep 600) &\nexit 3", milliseconds(20'000));
  EXPECT_EQ(r.outcome, Outcome::kExited);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.stdout_text, "early\n");
  EXPECT_LT(elapsed_, milliseconds(200 + 2000));  // the grace after its exit, not the timeout
}

TEST_F(HostileBinaryTest, OneThatPrints200MiBHitsTheOutputLimit) {
  CellResult r = RunAs("1.0.4", "head -c 209715200 /dev/zero", milliseconds(60'000));
  EXPECT_EQ(r.outcome, Outcome::kInfraFailure);
  EXPECT_EQ(r.failure_kind, FailureKind::kOutputLimit);
  EXPECT_EQ(r.failure,
            "output-limit: more than 67108864 bytes on one stream; the process was killed");
  EXPECT_EQ(r.stdout_text, "");  // nothing of it is kept in the result
}

TEST_F(HostileBinaryTest, TheOutputLimitIsTheCallersChoice) {
  CellResult r = RunAs("1.0.4", "head -c 5000 /dev/zero >&2", milliseconds(20'000), 4096);
  EXPECT_EQ(r.failure_kind, FailureKind::kOutputLimit);
  EXPECT_EQ(r.failure, "output-limit: more than 4096 bytes on one stream; the process was killed");
}

TEST_F(HostileBinaryTest, OneThatSegfaultsIsSignaled) {
  CellResult r = RunAs("1.0.5", "kill -SEGV $$", milliseconds(20'000));
  EXPECT_EQ(r.outcome, Outcome::kSignaled);
  EXPECT_EQ(r.signal, 11);
}

TEST_F(HostileBinaryTest, OneThatFailsKeepsItsStderr) {
  CellResult r = RunAs("1.0.6", "echo 'qemu-img: Could not open: boom' >&2\nexit 1",
                       milliseconds(20'000));
  EXPECT_EQ(r.outcome, Outcome::kExited);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.stderr_text, "qemu-img: Could not open: boom\n");
}

TEST_F(HostileBinaryTest, OneWhoseLoaderIsMissingIsUnrunnable) {
  CellResult r = RunAs("1.0.7", "echo 'loader: not found' >&2\nexit 127", milliseconds(20'000));
  EXPECT_EQ(r.outcome, Outcome::kInfraFailure);
  EXPECT_EQ(r.failure_kind, FailureKind::kBinaryUnrunnable);
  EXPECT_EQ(r.failure, "binary-unrunnable: " +
                           (dir_.path() / "bin/x86_64/1.0.7/qemu-img").string() +
                           " exited 127: loader: not found");
}

TEST_F(CellRunnerTest, OffersTheVersionsThatRunAndSaysWhyTheOthersDoNot) {
  AddVersion(dir_, "9.0.0", "#!/bin/sh\necho 'error while loading shared libraries: libaio.so.1' >&2\nexit 127\n");
  AddVersion(dir_, "9.1.0", "#!/bin/sh\nkill -SEGV $$\n");
  AddVersion(dir_, "9.2.0", "#!/bin/sh\nexec sleep 30\n");
  Result<Binaries> v = DiscoverBinaries(dir_.path() / "bin", milliseconds(300));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v.value().working.size(), 1u);
  EXPECT_EQ(v.value().working[0].info.name, "7.2.0");
  ASSERT_EQ(v.value().broken.size(), 3u);
  EXPECT_EQ(v.value().broken[0],
            (BrokenVersion{"9.0.0", "--version exited 127: error while loading shared libraries: libaio.so.1"}));
  EXPECT_EQ(v.value().broken[1], (BrokenVersion{"9.1.0", "--version killed by signal 11"}));
  EXPECT_EQ(v.value().broken[2], (BrokenVersion{"9.2.0", "--version timed out after 300 ms"}));
}

TEST(ReplaceAll, ReplacesEveryOccurrence) {
  EXPECT_EQ(ReplaceAll("/t/a /t/b /tx", "/t", "$R"), "$R/a $R/b $Rx");
  EXPECT_EQ(ReplaceAll("none", "/t", "$R"), "none");
  EXPECT_EQ(ReplaceAll("", "/t", "$R"), "");
}

}  // namespace
}  // namespace imgsweep

namespace imgsweep {
namespace {

// Says what a process did without starting one, and keeps what it was asked.
class ScriptedLauncher final : public ProcessLauncher {
 public:
  explicit ScriptedLauncher(RunOutput output) : output_(std::move(output)) {}
  Result<RunOutput> Run(const RunRequest& request) const override {
    asked_ = request;
    return output_;
  }
  mutable RunRequest asked_;

 private:
  RunOutput output_;
};

// `cell` run by a CellRunner over the binaries tree `bin` whose processes
// `launcher` plays.
CellResult RunScripted(const ScriptedLauncher& launcher,
                       const std::filesystem::path& bin, const std::filesystem::path& root,
                       const CellSpec& cell) {
  Result<Binaries> v = DiscoverBinaries(bin, milliseconds(20'000));
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  CellRunner runner(root, v.ok() ? v.value().working : std::vector<InstalledVersion>{}, milliseconds(200),
                    CellRunner::kDefaultOutputLimit, &launcher);
  return runner.Run(cell);
}

TEST_F(CellRunnerTest, ALoaderThatCannotStartTheBinaryIsTheHostsFailureNotABaseline) {
  RunOutput out;
  out.exit_code = 127;
  out.stderr_text = "error while loading shared libraries: libaio.so.1\nmore\n";
  ScriptedLauncher launcher(out);
  const CellResult r = RunScripted(launcher, dir_.path() / "bin", root_, Cell());
  EXPECT_EQ(r.outcome, Outcome::kInfraFailure);
  EXPECT_EQ(r.failure_kind, FailureKind::kBinaryUnrunnable);
  EXPECT_NE(r.failure.find("exited 127: error while loading shared libraries: libaio.so.1"),
            std::string::npos)
      << r.failure;
  // What the launcher was asked: the image under the real root, run in it.
  ASSERT_EQ(launcher.asked_.args.size(), 2u);
  EXPECT_EQ(launcher.asked_.args[1], root_.string() + "/" + image_);
  EXPECT_EQ(launcher.asked_.cwd, root_);
  EXPECT_EQ(launcher.asked_.timeout, milliseconds(20'000));
}

TEST_F(CellRunnerTest, AnExit127ThatPrintedItsOutputIsTheCellsOwn) {
  RunOutput out;
  out.exit_code = 127;
  out.stdout_text = "Offset          Length          Mapped to       File\n";
  ScriptedLauncher launcher(out);
  const CellResult r = RunScripted(launcher, dir_.path() / "bin", root_, Cell());
  EXPECT_EQ(r.outcome, Outcome::kExited);
  EXPECT_EQ(r.exit_code, 127);
}

}  // namespace
}  // namespace imgsweep
