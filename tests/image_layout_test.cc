// A worker's view of how images lie on disk, on real files: the layout
// fingerprint, the files with holes, and the dense staged copy.
#include "worker/image_layout.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "protocol/sha256.h"
#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

namespace fs = std::filesystem;

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

TEST_F(ImageLayoutTest, StagesADenseMirrorOnceAndKeepsItWhileTheBytesMatch) {
  const fs::path cache = dir_.path() / "cache";
  Result<StagedTree> staged = StageDense(root_, cache);
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
  Result<StagedTree> again = StageDense(root_, cache);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value().root, staged.value().root);
  EXPECT_EQ(again.value().copied, 0u);
  dir_.Write("testdata/images/raw/dense.raw", std::string(8192, 'z'));
  fs::remove(root_ / "images/raw/link.raw");
  Result<StagedTree> changed = StageDense(root_, cache);
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed.value().copied, 1u);
  EXPECT_EQ(Sha256File(changed.value().root / "images/raw/dense.raw").value(),
            Sha256Hex(std::string(8192, 'z')));
  EXPECT_FALSE(fs::exists(fs::symlink_status(changed.value().root / "images/raw/link.raw")));
}

TEST_F(ImageLayoutTest, ACacheInsideTheTestdataIsNotStagedIntoItself) {
  Result<StagedTree> staged = StageDense(root_, root_ / ".stage");
  ASSERT_TRUE(staged.ok()) << staged.status().ToString();
  EXPECT_EQ(staged.value().files, 2u);
  EXPECT_FALSE(fs::exists(staged.value().root / ".stage"));
}

}  // namespace
}  // namespace imgsweep
