// A private scratch folder for a command: made with mkdtemp (0700), removed
// with everything in it when the object goes.
// Thread-safety: one owner.
#ifndef IMGSWEEP_CLI_PRIVATE_FOLDER_H_
#define IMGSWEEP_CLI_PRIVATE_FOLDER_H_

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>

#include "protocol/status.h"

namespace imgsweep {

// A folder only this user may enter (mkdtemp makes it 0700), removed with
// everything in it at the end. For example `run`'s coordinator listens on an ipc socket
// inside: tcp on loopback would let every other user of the host join the
// sweep or feed it results.
class PrivateFolder {
 public:
  static Result<std::unique_ptr<PrivateFolder>> Make() {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::temp_directory_path(ec);
    // A socket's path must fit in 108 bytes; a long TMPDIR cannot hold one.
    if (ec || base.string().size() > kMaxBaseLength) base = "/tmp";
    std::string pattern = (base / "imgsweep-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return Status::FromErrno("cannot make a private folder under " + base.string(), errno);
    }
    return std::unique_ptr<PrivateFolder>(new PrivateFolder(pattern));
  }
  ~PrivateFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  PrivateFolder(const PrivateFolder&) = delete;
  PrivateFolder& operator=(const PrivateFolder&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  static constexpr std::size_t kMaxBaseLength = 64;
  explicit PrivateFolder(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_CLI_PRIVATE_FOLDER_H_
