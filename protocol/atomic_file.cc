#include "protocol/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <string>

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

// `status`: the path's own (a link's, not its target's).
bool SameContent(const fs::path& path, fs::file_status status, std::string_view content) {
  std::error_code ec;
  // A link or anything else in the file's place is replaced, never read.
  if (!fs::is_regular_file(status)) return false;
  if (fs::file_size(path, ec) != content.size() || ec) return false;
  std::ifstream in(path, std::ios::binary);
  std::string existing((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return in.good() || in.eof() ? existing == content : false;
}

Status WriteAll(int fd, std::string_view content, const fs::path& path) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("cannot write " + path.string(), errno);
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status::Ok();
}

// A file not there yet: an unnamed inode in its folder (O_TMPFILE), linked
// under its name once whole. One change to the folder instead of a
// temporary's create and rename, which matters when thousands of files go
// into few folders. False when the filesystem, or a missing /proc, does not
// allow it, or the name was taken meanwhile: the caller falls back.
Result<bool> WriteNew(const fs::path& path, std::string_view content) {
  const fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  const int fd = ::open(parent.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  Status st = WriteAll(fd, content, path);
  bool linked = false;
  if (st.ok()) {
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    linked = ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0;
  }
  if (::close(fd) != 0 && st.ok()) st = Status::FromErrno("cannot write " + path.string(), errno);
  if (!st.ok()) return st;
  return linked;
}

}  // namespace

Status WriteFileAtomically(const fs::path& path, std::string_view content, bool* written) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path, ec);
  if (SameContent(path, status, content)) {
    *written = false;
    return Status::Ok();
  }
  if (!fs::exists(status)) {
    Result<bool> linked = WriteNew(path, content);
    if (!linked.ok()) return linked.status();
    if (linked.value()) {
      *written = true;
      return Status::Ok();
    }
  }
  std::string temp_name = ".";  // appended, not a literal + temporary: GCC 12 -O3 -Wrestrict
  temp_name += path.filename().string();
  temp_name += ".tmp";
  const fs::path temp = path.parent_path() / temp_name;
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Status::FromErrno("cannot create " + temp.string(), errno);
  Status st = WriteAll(fd, content, temp);
  if (::close(fd) != 0 && st.ok()) st = Status::FromErrno("cannot write " + temp.string(), errno);
  if (st.ok() && ::rename(temp.c_str(), path.c_str()) != 0) {
    st = Status::FromErrno("cannot rename " + temp.string() + " to " + path.string(), errno);
  }
  if (!st.ok()) ::unlink(temp.c_str());
  *written = st.ok();
  return st;
}

}  // namespace imgsweep
