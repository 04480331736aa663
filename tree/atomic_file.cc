#include "tree/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <string>

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

bool SameContent(const fs::path& path, std::string_view content) {
  std::error_code ec;
  // A link or anything else in the file's place is replaced, never read.
  if (!fs::is_regular_file(fs::symlink_status(path, ec))) return false;
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

}  // namespace

Status WriteFileAtomically(const fs::path& path, std::string_view content, bool* written) {
  if (SameContent(path, content)) {
    *written = false;
    return Status::Ok();
  }
  const fs::path temp = path.parent_path() / ("." + path.filename().string() + ".tmp");
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
