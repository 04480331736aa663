#include "worker/image_layout.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "protocol/atomic_file.h"
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

// What stat says of a file: while none of it changes, neither have its
// bytes. ctime cannot be set by a program, so a rewrite that restores size
// and mtime still shows.
struct Identity {
  std::uint64_t dev = 0, ino = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  bool operator==(const Identity&) const = default;
};

std::optional<Identity> IdentityOf(const fs::path& file) {
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  constexpr std::int64_t kNs = 1'000'000'000;
  return Identity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                  static_cast<std::uint64_t>(st.st_size),
                  st.st_mtim.tv_sec * kNs + st.st_mtim.tv_nsec,
                  st.st_ctim.tv_sec * kNs + st.st_ctim.tv_nsec};
}

// A staged file checked against its source, and the sha256 they share.
struct Stamp {
  Identity source, staged;
  std::string sha256;
};
using Stamps = std::map<std::string, Stamp>;  // by path relative to the root

constexpr std::string_view kStampsHeader = "imgsweep-stamps 1";

// The stamps a previous staging left; none when the file is missing or was
// written otherwise (they only save hashing: a line not understood is
// hashed again).
Stamps ReadStamps(const fs::path& file) {
  Stamps stamps;
  std::ifstream in(file);
  std::string line;
  if (!std::getline(in, line) || line != kStampsHeader) return stamps;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Stamp s;
    fields >> s.sha256 >> s.source.dev >> s.source.ino >> s.source.size >> s.source.mtime_ns >>
        s.source.ctime_ns >> s.staged.dev >> s.staged.ino >> s.staged.size >> s.staged.mtime_ns >>
        s.staged.ctime_ns;
    std::string relative;
    if (!fields || fields.get() != ' ' || !std::getline(fields, relative) || relative.empty() ||
        !IsSha256Hex(s.sha256)) {
      continue;
    }
    stamps.emplace(std::move(relative), std::move(s));
  }
  return stamps;
}

// Written whole or not at all; a failure costs only the next start's hashing.
void WriteStamps(const fs::path& file, const Stamps& stamps) {
  std::ostringstream out;
  out << kStampsHeader << "\n";
  for (const auto& [relative, s] : stamps) {
    out << s.sha256 << ' ' << s.source.dev << ' ' << s.source.ino << ' ' << s.source.size << ' '
        << s.source.mtime_ns << ' ' << s.source.ctime_ns << ' ' << s.staged.dev << ' '
        << s.staged.ino << ' ' << s.staged.size << ' ' << s.staged.mtime_ns << ' '
        << s.staged.ctime_ns << ' ' << relative << "\n";
  }
  bool written = false;
  (void)WriteFileAtomically(file, out.str(), &written);  // without it, the next start hashes all
}

// The sha256 the source and its staged copy share, or nullopt when the copy
// is missing, differs or has holes. A file whose stamp still matches both is
// not read.
std::optional<std::string> CurrentDigest(const fs::path& source, const fs::path& staged,
                                         const Stamp* stamp) {
  const std::optional<Identity> src = IdentityOf(source), stg = IdentityOf(staged);
  if (!src || !stg || src->size != stg->size) return std::nullopt;
  Result<std::string> layout = LayoutFingerprint(staged);
  if (!layout.ok() || layout.value() != kDenseLayout) return std::nullopt;
  if (stamp != nullptr && stamp->source == *src && stamp->staged == *stg) return stamp->sha256;
  Result<std::string> want = Sha256File(source), have = Sha256File(staged);
  if (!want.ok() || !have.ok() || want.value() != have.value()) return std::nullopt;
  return want.value();
}

// Stages `relative` (a regular file of the source) and notes its digest in
// `tree`, and its identities in `after` unless it changed at `recent_ns` or
// later (a write in the same clock tick as the stat would leave its
// identity as it was).
Status StageFile(const fs::path& source, const fs::path& staged, const std::string& relative,
                 const Stamps& before, std::int64_t recent_ns, Stamps* after, StagedTree* tree) {
  ++tree->files;
  auto stamp = before.find(relative);
  std::optional<std::string> digest =
      CurrentDigest(source, staged, stamp == before.end() ? nullptr : &stamp->second);
  if (!digest) {
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
    Result<std::string> copied = Sha256File(staged);
    if (!copied.ok()) return copied.status();
    digest = copied.value();
  }
  tree->digests[relative] = *digest;
  const std::optional<Identity> src = IdentityOf(source), stg = IdentityOf(staged);
  if (src && stg && relative.find('\n') == std::string::npos && src->ctime_ns < recent_ns &&
      stg->ctime_ns < recent_ns && src->mtime_ns < recent_ns && stg->mtime_ns < recent_ns) {
    (*after)[relative] = Stamp{*src, *stg, *digest};
  }
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

// Records which tree `cache/<name>` mirrors and on which host ("path\nhost\n"),
// so a later StageDense on this host can tell when that tree is gone.
// Best effort: without it the copy is kept.
void WriteSource(const fs::path& cache, const std::string& name, const fs::path& root,
                 const std::string& host) {
  bool written = false;
  (void)WriteFileAtomically(cache / (name + ".source"), root.string() + "\n" + host + "\n",
                            &written);
}

// Removes the copies in `cache`, other than `keep`'s, that this host
// staged from a tree that no longer exists (a checkout deleted since, a CI
// job's clone). A copy is removed only under both its locks, taken without
// waiting: a process staging it (.lock) or running cells on it (.inuse)
// keeps it. A source that cannot be looked at (a mount that is away, no
// permission), one staged by another host sharing the cache (its paths are
// not ours to judge) and a copy from before sources were recorded keep
// their copies. The lock files stay: a process may already hold them open.
void PruneGoneSources(const fs::path& cache, const std::string& keep, const std::string& host) {
  std::error_code ec;
  std::vector<std::string> names;
  for (auto it = fs::directory_iterator(cache, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string file = it->path().filename().string();
    constexpr std::string_view kSuffix = ".source";
    if (file.size() != 16 + kSuffix.size() || !file.ends_with(kSuffix)) continue;
    const std::string name = file.substr(0, 16);
    auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    if (!std::all_of(name.begin(), name.end(), hex)) continue;
    if (name != keep) names.push_back(name);
  }
  for (const std::string& name : names) {
    auto gone = [&] {
      std::ifstream in(cache / (name + ".source"));
      std::string source, staged_by;
      if (!in || !std::getline(in, source) || !std::getline(in, staged_by)) return false;
      if (source.empty() || source[0] != '/' || host.empty() || staged_by != host) return false;
      std::error_code status_ec;
      const fs::file_status status = fs::symlink_status(source, status_ec);
      return status.type() == fs::file_type::not_found;
    };
    if (!gone()) continue;
    const fs::path lock_path = cache / (name + ".lock");
    const fs::path in_use_path = cache / (name + ".inuse");
    Fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock.ok() || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) continue;
    Fd in_use(::open(in_use_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!in_use.ok() || ::flock(in_use.get(), LOCK_EX | LOCK_NB) != 0 || !gone()) continue;
    fs::remove_all(cache / name, ec);
    if (ec) continue;  // what is left is tried again next time
    fs::remove(cache / (name + ".stamps"), ec);
    fs::remove(cache / (name + ".source"), ec);
  }
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

Result<StagedTree> StageDense(const fs::path& root, const fs::path& cache, const std::string& host,
                              const Clock& clock) {
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
  const fs::path stamps_file = cache / (name + ".stamps");
  const Stamps before = ReadStamps(stamps_file);
  constexpr std::int64_t kStampAgeMs = 2000;
  const std::int64_t recent_ns = (clock.UnixMillis() - kStampAgeMs) * 1'000'000;
  Stamps after;
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
      st = StageFile(it->path(), staged, relative.string(), before, recent_ns, &after, &tree);
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
  WriteStamps(stamps_file, after);
  // Held for as long as the caller keeps the tree: no StageDense of
  // another tree removes this copy while cells run on it.
  const fs::path in_use_path = cache / (name + ".inuse");
  auto in_use =
      std::make_shared<Fd>(::open(in_use_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!in_use->ok()) return Status::FromErrno(in_use_path.string(), errno);
  while (::flock(in_use->get(), LOCK_SH) != 0) {
    if (errno != EINTR) return Status::FromErrno(in_use_path.string(), errno);
  }
  tree.in_use = std::move(in_use);
  WriteSource(cache, name, root, host);
  PruneGoneSources(cache, name, host);
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
