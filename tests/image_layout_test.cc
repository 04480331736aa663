// A worker's view of how images lie on disk, on real files: the layout
// fingerprint, the files with holes, and the dense staged copy.
#include "worker/image_layout.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "protocol/clock.h"
#include "protocol/sha256.h"
#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

namespace fs = std::filesystem;

constexpr char kHost[] = "this-host";  // the worker's host name

// 1 MiB with 4 KiB of data in the middle and holes around it, as
// `qemu-img create` and `cp --sparse=always` leave a raw image.
void WriteSparse(const fs::path& file) {
  fs::create_directories(file.parent_path());
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
  const std::string data(4096, 'x');
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 512 << 10), 4096);
  ::close(fd);
}

class ImageLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::canonical(dir_.path()) / "testdata";
    WriteSparse(root_ / "images/raw/sparse.raw");
    dir_.Write("testdata/images/raw/dense.raw", std::string(8192, 'y'));
    WriteSparse(root_ / ".git/objects/pack.raw");       // not an image
    WriteSparse(root_ / "expected-outputs/x/y.raw");  // not an image
    fs::create_symlink("sparse.raw", root_ / "images/raw/link.raw");
    Result<std::string> layout = LayoutFingerprint(root_ / "images/raw/sparse.raw");
    ASSERT_TRUE(layout.ok()) << layout.status().ToString();
    if (layout.value() == kDenseLayout) GTEST_SKIP() << "this filesystem reports no holes";
  }

  TempDir dir_;
  fs::path root_;
};

TEST_F(ImageLayoutTest, FingerprintsHolesAndNotBytes) {
  const std::string sparse = LayoutFingerprint(root_ / "images/raw/sparse.raw").value();
  EXPECT_TRUE(IsLayoutFingerprint(sparse)) << sparse;
  EXPECT_TRUE(sparse.starts_with("sparse:"));
  EXPECT_EQ(LayoutFingerprint(root_ / "images/raw/dense.raw").value(), "dense");
  // Other bytes, the same holes: the same fingerprint.
  WriteSparse(dir_.path() / "other.raw");
  EXPECT_EQ(LayoutFingerprint(dir_.path() / "other.raw").value(), sparse);
  EXPECT_EQ(LayoutFingerprint(dir_.path() / "missing.raw").status().code(), StatusCode::kNotFound);
}

TEST_F(ImageLayoutTest, ListsTheFilesWithHolesOutsideGitAndTheTree) {
  Result<std::vector<FileLayout>> sparse = SparseFiles(root_);
  ASSERT_TRUE(sparse.ok()) << sparse.status().ToString();
  ASSERT_EQ(sparse.value().size(), 1u);
  EXPECT_EQ(sparse.value()[0].path, "images/raw/sparse.raw");
}

// A copy per testdata location would otherwise stay for ever: a CI runner
// that sweeps a fresh clone each time would fill its disk.
TEST_F(ImageLayoutTest, RemovesTheCopiesOfTreesThatAreGone) {
  const fs::path cache = dir_.path() / "cache";
  const fs::path other = fs::canonical(dir_.path()) / "other";
  const fs::path kept = fs::canonical(dir_.path()) / "kept";
  dir_.Write("other/images/a.raw", std::string(4096, 'a'));
  dir_.Write("kept/images/b.raw", std::string(4096, 'b'));
  Result<StagedTree> other_copy = StageDense(other, cache, kHost);
  Result<StagedTree> kept_copy = StageDense(kept, cache, kHost);
  ASSERT_TRUE(other_copy.ok() && kept_copy.ok());
  kept_copy.value().in_use.reset();  // its tree stays: nothing else keeps it
  const std::string other_name = other_copy.value().root.filename().string();
  std::ifstream source(cache / (other_name + ".source"));
  std::string named, host;
  ASSERT_TRUE(std::getline(source, named) && std::getline(source, host));
  EXPECT_EQ(named, other.string());
  EXPECT_EQ(host, kHost);
  fs::remove_all(other);

  // Gone, but cells still run on the copy: kept.
  ASSERT_TRUE(StageDense(root_, cache, kHost).ok());
  EXPECT_TRUE(fs::exists(other_copy.value().root / "images/a.raw"));
  other_copy.value().in_use.reset();

  // Gone, but a process is staging it: kept.
  const int held = ::open((cache / (other_name + ".lock")).c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  ASSERT_TRUE(StageDense(root_, cache, kHost).ok());
  EXPECT_TRUE(fs::exists(other_copy.value().root / "images/a.raw"));
  ::close(held);

  // Gone and unused: removed, with its stamps; the others stay.
  Result<StagedTree> mine = StageDense(root_, cache, kHost);
  ASSERT_TRUE(mine.ok());
  EXPECT_FALSE(fs::exists(other_copy.value().root));
  EXPECT_FALSE(fs::exists(cache / (other_name + ".stamps")));
  EXPECT_FALSE(fs::exists(cache / (other_name + ".source")));
  EXPECT_TRUE(fs::exists(kept_copy.value().root / "images/b.raw"));
  EXPECT_TRUE(fs::exists(mine.value().root / "images/raw/dense.raw"));
}

// A copy made before sources were recorded names no tree, and one another
// host staged names a path that is not ours to judge: both are kept.
TEST_F(ImageLayoutTest, KeepsCopiesItCannotJudge) {
  const fs::path cache = dir_.path() / "cache";
  dir_.Write("cache/0123456789abcdef/images/old.raw", "old");
  dir_.Write("cache/fedcba9876543210/images/theirs.raw", "theirs");
  dir_.Write("cache/fedcba9876543210.source", "/no/such/testdata\nanother-host\n");
  ASSERT_TRUE(StageDense(root_, cache, kHost).ok());
  EXPECT_TRUE(fs::exists(cache / "0123456789abcdef/images/old.raw"));
  EXPECT_TRUE(fs::exists(cache / "fedcba9876543210/images/theirs.raw"));
}

TEST_F(ImageLayoutTest, StagesADenseMirrorOnceAndKeepsItWhileTheBytesMatch) {
  const fs::path cache = dir_.path() / "cache";
  Result<StagedTree> staged = StageDense(root_, cache, kHost);
  ASSERT_TRUE(staged.ok()) << staged.status().ToString();
  const fs::path copy = staged.value().root / "images/raw/sparse.raw";
  EXPECT_EQ(staged.value().files, 2u);
  EXPECT_EQ(staged.value().copied, 2u);
  EXPECT_TRUE(staged.value().not_dense.empty());
  EXPECT_EQ(LayoutFingerprint(copy).value(), "dense");
  EXPECT_EQ(Sha256File(copy).value(), Sha256File(root_ / "images/raw/sparse.raw").value());
  EXPECT_EQ(fs::read_symlink(staged.value().root / "images/raw/link.raw"), "sparse.raw");
  EXPECT_FALSE(fs::exists(staged.value().root / ".git"));
  EXPECT_FALSE(fs::exists(staged.value().root / "expected-outputs"));

  // Again: nothing to copy. Then a changed source is copied again, and a
  // file gone from the source leaves the mirror.
  Result<StagedTree> again = StageDense(root_, cache, kHost);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value().root, staged.value().root);
  EXPECT_EQ(again.value().copied, 0u);
  dir_.Write("testdata/images/raw/dense.raw", std::string(8192, 'z'));
  fs::remove(root_ / "images/raw/link.raw");
  Result<StagedTree> changed = StageDense(root_, cache, kHost);
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed.value().copied, 1u);
  EXPECT_EQ(Sha256File(changed.value().root / "images/raw/dense.raw").value(),
            Sha256Hex(std::string(8192, 'z')));
  EXPECT_FALSE(fs::exists(fs::symlink_status(changed.value().root / "images/raw/link.raw")));
}

// The lines of the stamps file beside the staged tree, header aside.
std::vector<std::string> StampLines(const fs::path& cache) {
  std::vector<std::string> lines;
  for (const fs::directory_entry& e : fs::directory_iterator(cache)) {
    if (e.path().extension() != ".stamps") continue;
    std::ifstream in(e.path());
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "imgsweep-stamps 1");
    while (std::getline(in, line)) lines.push_back(line);
  }
  return lines;
}

// Rewrites the stamps file with every digest replaced by `digest`.
void ForgeStampDigests(const fs::path& cache, const std::string& digest) {
  for (const fs::directory_entry& e : fs::directory_iterator(cache)) {
    if (e.path().extension() != ".stamps") continue;
    std::vector<std::string> lines = StampLines(cache);
    std::ofstream out(e.path(), std::ios::trunc);
    out << "imgsweep-stamps 1\n";
    for (const std::string& line : lines) out << digest << line.substr(64) << "\n";
  }
}

TEST_F(ImageLayoutTest, AStampedFileIsNotReadAgainUntilItsIdentityChanges) {
  const fs::path cache = dir_.path() / "cache";
  const std::string dense_sha = Sha256Hex(std::string(8192, 'y'));
  // Files written a moment ago get no stamp: a write in the same clock tick
  // would not show in their identity.
  Result<StagedTree> fresh = StageDense(root_, cache, kHost);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh.value().digests.at("images/raw/dense.raw"), dense_sha);
  EXPECT_EQ(fresh.value().digests.size(), 2u);  // the link is not a file of its own
  EXPECT_TRUE(StampLines(cache).empty());

  // Later (the fake clock is in 2027), both files are stamped.
  FakeClock later;
  ASSERT_TRUE(StageDense(root_, cache, kHost, later).ok());
  ASSERT_EQ(StampLines(cache).size(), 2u);
  EXPECT_TRUE(StampLines(cache)[0].ends_with(" images/raw/dense.raw")) << StampLines(cache)[0];

  // A stamp that still matches both files is believed without reading
  // them: its (forged) digest comes back.
  const std::string forged(64, 'a');
  ForgeStampDigests(cache, forged);
  Result<StagedTree> stamped = StageDense(root_, cache, kHost, later);
  ASSERT_TRUE(stamped.ok());
  EXPECT_EQ(stamped.value().copied, 0u);
  EXPECT_EQ(stamped.value().digests.at("images/raw/dense.raw"), forged);

  // Staged again after a rewrite: the copy is made anew and holds the
  // source's new bytes, whatever the stamps said.
  const std::string new_sha = Sha256Hex(std::string(8192, 'z'));
  const auto expect_copied_again = [&] {
    Result<StagedTree> again = StageDense(root_, cache, kHost, later);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again.value().copied, 1u);
    EXPECT_EQ(again.value().digests.at("images/raw/dense.raw"), new_sha);
    EXPECT_EQ(Sha256File(again.value().root / "images/raw/dense.raw").value(), new_sha);
  };
  // New bytes in the source change its identity: hashed, copied, stamped anew.
  dir_.Write("testdata/images/raw/dense.raw", std::string(8192, 'z'));
  expect_copied_again();
  // So does a staged copy written over.
  ForgeStampDigests(cache, forged);
  dir_.Write("cache/" + stamped.value().root.filename().string() + "/images/raw/dense.raw",
             std::string(8192, 'q'));
  expect_copied_again();
}

TEST_F(ImageLayoutTest, AStampsFileNotUnderstoodOnlyCostsHashing) {
  const fs::path cache = dir_.path() / "cache";
  FakeClock later;
  Result<StagedTree> staged = StageDense(root_, cache, kHost, later);
  ASSERT_TRUE(staged.ok());
  const fs::path stamps = cache / (staged.value().root.filename().string() + ".stamps");
  ASSERT_TRUE(fs::exists(stamps));
  for (const std::string& text : {std::string("imgsweep-stamps 9\n"), std::string("garbage"),
                                  std::string("imgsweep-stamps 1\nnot-a-digest 1 2 3\n")}) {
    { std::ofstream(stamps, std::ios::trunc) << text; }
    Result<StagedTree> again = StageDense(root_, cache, kHost, later);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again.value().copied, 0u);
    EXPECT_EQ(again.value().digests.at("images/raw/dense.raw"), Sha256Hex(std::string(8192, 'y')));
  }
}

TEST_F(ImageLayoutTest, ACacheInsideTheTestdataIsNotStagedIntoItself) {
  Result<StagedTree> staged = StageDense(root_, root_ / ".stage", kHost);
  ASSERT_TRUE(staged.ok()) << staged.status().ToString();
  EXPECT_EQ(staged.value().files, 2u);
  EXPECT_FALSE(fs::exists(staged.value().root / ".stage"));
}

}  // namespace
}  // namespace imgsweep
