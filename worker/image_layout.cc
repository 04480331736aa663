#include "worker/image_layout.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <vector>

#include "protocol/sha256.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

// Closes on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

// The folders of a testdata checkout that hold no images.
bool Skipped(const fs::path& relative) {
  const std::string top = relative.begin()->string();
  return top == ".git" || top == "expected-outputs";
}

// The data extents of an open file, "start-end\n" each; empty when the
// file has no hole before its end.
Result<std::string> DataExtents(int fd, const fs::path& file) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::FromErrno(file.string(), errno);
  const off_t size = st.st_size;
  std::string extents;
  off_t data = 0;
  while (data < size) {
    data = ::lseek(fd, data, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;                  // only a hole from here to the end
      if (errno == EINVAL) return std::string();  // no hole reporting here: dense as far as qemu sees
      return Status::FromErrno(file.string(), errno);
    }
    const off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return Status::FromErrno(file.string(), errno);
    if (data == 0 && hole >= size) return std::string();  // no hole at all
    extents += std::to_string(data) + "-" + std::to_string(hole) + "\n";
    data = hole;
  }
  if (extents.empty() && size > 0) extents = "none\n";  // all hole
  return extents;
}

Result<std::string> FingerprintOf(int fd, const fs::path& file) {
  Result<std::string> extents = DataExtents(fd, file);
  if (!extents.ok()) return extents.status();
  if (extents.value().empty()) return std::string(kDenseLayout);
  return "sparse:" + Sha256Hex(extents.value()).substr(0, 16);
}

// Writes every byte of `from` to `to` (created or truncated), so none of
// it is a hole, with `from`'s permission bits.
Status CopyDense(const fs::path& from, const fs::path& to) {
  Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.ok()) return Status::FromErrno(from.string(), errno);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return Status::FromErrno(from.string(), errno);
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777));
  if (!out.ok()) return Status::FromErrno(to.string(), errno);
  std::vector<char> buffer(1 << 20);
  for (;;) {
    const ssize_t n = ::read(in.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(from.string(), errno);
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out.get(), buffer.data() + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Status::FromErrno(to.string(), errno);
      done += w;
    }
  }
  return Status::Ok();
}

// Whether the staged file holds the source's bytes, all allocated.
bool Current(const fs::path& source, const fs::path& staged) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(staged, ec)) ||
      fs::file_size(staged, ec) != fs::file_size(source, ec) || ec) {
    return false;
  }
  Result<std::string> want = Sha256File(source), have = Sha256File(staged);
  if (!want.ok() || !have.ok() || want.value() != have.value()) return false;
  Result<std::string> layout = LayoutFingerprint(staged);
  return layout.ok() && layout.value() == kDenseLayout;
}

Status StageFile(const fs::path& source, const fs::path& staged, StagedTree* tree) {
  ++tree->files;
  if (Current(source, staged)) return Status::Ok();
  fs::path partial = staged;
  partial += ".imgsweep-partial";
  Status st = CopyDense(source, partial);
  std::error_code ec;
  if (st.ok()) {
    fs::rename(partial, staged, ec);
    if (ec) st = Status::FromErrno("cannot put " + staged.string() + " in place", ec.value());
  }
  if (!st.ok()) {
    fs::remove(partial, ec);
    return st;
  }
  ++tree->copied;
  return Status::Ok();
}

Status StageLink(const fs::path& source, const fs::path& staged) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(source, ec);
  if (ec) return Status::FromErrno(source.string(), ec.value());
  if (fs::is_symlink(fs::symlink_status(staged, ec)) && fs::read_symlink(staged, ec) == target) {
    return Status::Ok();
  }
  fs::remove_all(staged, ec);
  fs::create_symlink(target, staged, ec);
  if (ec) return Status::FromErrno(staged.string(), ec.value());
  return Status::Ok();
}

// Removes what the source no longer has.
void RemoveStale(const fs::path& staged_root, const std::set<fs::path>& wanted) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (auto it = fs::recursive_directory_iterator(staged_root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) continue;
    const fs::path relative = it->path().lexically_relative(staged_root);
    if (!wanted.contains(relative)) stale.push_back(it->path());
  }
  for (const fs::path& p : stale) fs::remove(p, ec);
}

}  // namespace

Result<std::string> LayoutFingerprint(const fs::path& file) {
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) return Status::FromErrno(file.string(), errno);
  return FingerprintOf(fd.get(), file);
}

Result<std::vector<FileLayout>> SparseFiles(const fs::path& root) {
  std::vector<FileLayout> sparse;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path relative = it->path().lexically_relative(root);
    if (it->is_directory(ec) && Skipped(relative)) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    Result<std::string> layout = LayoutFingerprint(it->path());
    if (!layout.ok()) return layout.status();
    if (layout.value() != kDenseLayout) sparse.push_back({relative.string(), layout.value()});
  }
  if (ec) return Status::FromErrno("testdata " + root.string(), ec.value());
  std::sort(sparse.begin(), sparse.end(),
            [](const FileLayout& a, const FileLayout& b) { return a.path < b.path; });
  return sparse;
}

Result<StagedTree> StageDense(const fs::path& root, const fs::path& cache) {
  std::error_code ec;
  fs::create_directories(cache, ec);
  if (ec) return Status::FromErrno("stage cache " + cache.string(), ec.value());
  const std::string name = Sha256Hex(root.string()).substr(0, 16);
  const fs::path lock_path = cache / (name + ".lock");
  Fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock.ok()) return Status::FromErrno(lock_path.string(), errno);
  // Another worker of this host staging the same tree: it finishes first.
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Status::FromErrno(lock_path.string(), errno);
  }
  StagedTree tree;
  fs::create_directories(cache / name, ec);
  tree.root = fs::canonical(cache / name, ec);
  if (ec) return Status::FromErrno("stage " + (cache / name).string(), ec.value());
  // The cache itself, when it lies inside the testdata, is not staged.
  const fs::path cache_inside = fs::canonical(cache, ec).lexically_relative(root);
  std::set<fs::path> wanted;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path relative = it->path().lexically_relative(root);
    const fs::path staged = tree.root / relative;
    const bool link = it->is_symlink(ec);
    if (!link && it->is_directory(ec)) {
      if (Skipped(relative) || relative == cache_inside) {
        it.disable_recursion_pending();
      } else {
        fs::create_directories(staged, ec);
        if (ec) return Status::FromErrno(staged.string(), ec.value());
      }
      continue;
    }
    Status st = Status::Ok();
    if (link) {
      st = StageLink(it->path(), staged);
    } else if (it->is_regular_file(ec)) {
      st = StageFile(it->path(), staged, &tree);
      if (st.ok()) {
        Result<std::string> layout = LayoutFingerprint(staged);
        if (!layout.ok()) return layout.status();
        if (layout.value() != kDenseLayout) tree.not_dense.insert(relative.string());
      }
    } else {
      continue;  // sockets, fifos: not images
    }
    if (!st.ok()) return st;
    wanted.insert(relative);
  }
  if (ec) return Status::FromErrno("testdata " + root.string(), ec.value());
  RemoveStale(tree.root, wanted);
  return tree;
}

Result<fs::path> DefaultStageCache() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') {
    return fs::path(xdg) / "imgsweep" / "staged";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return fs::path(home) / ".cache" / "imgsweep" / "staged";
  }
  return Status::InvalidInput(
      "no place for the staged images: set HOME or XDG_CACHE_HOME, or give --stage-dir");
}

}  // namespace imgsweep
