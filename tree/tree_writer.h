// Writing the tree's files: the folders first, each checked on the way
// (safe names only, never through a symbolic link), then the files on a
// few threads, each written beside and renamed over only when its bytes
// change; and the removal of what an earlier tree left.
// Thread-safety: one writer per output folder at a time.
#ifndef IMGSWEEP_TREE_TREE_WRITER_H_
#define IMGSWEEP_TREE_TREE_WRITER_H_

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "protocol/status.h"

namespace imgsweep {

// Calls work(i) for every i below `count`, on up to one thread per core
// (at most 8) that each take the next `chunk` indices; `work` must be safe
// to call concurrently. Returns when every call has.
void ForEachIndex(std::size_t count, std::size_t chunk,
                  const std::function<void(std::size_t)>& work);

// A file of the tree, relative to the output folder; the content must stay
// alive until the file is written.
struct PlannedFile {
  std::filesystem::path relative;
  std::string_view content;
};

struct WrittenFiles {
  std::size_t written = 0;    // new or changed
  std::size_t unchanged = 0;  // already held these bytes: not touched
};

// Makes the folders of `relative` under `out` one at a time. Every component
// must be a safe name (no "..", nothing absolute), and an existing one must
// be a real folder: a symbolic link planted inside the tree is refused, never
// followed, so nothing is written outside `out`.
class TreeFolders {
 public:
  explicit TreeFolders(std::filesystem::path out) : out_(std::move(out)) {}

  // kInvalidInput naming the path when it is unsafe or passes through a link
  // or a file; kIoError when a folder cannot be made.
  Status Make(const std::filesystem::path& relative);

 private:
  const std::filesystem::path out_;
  // By the native string: a path's own comparison walks its components, and
  // a tree of 20,000 files spent a fifth of its time there.
  std::unordered_set<std::string> made_;
};

// One file, its folders first.
Status WriteFile(const std::filesystem::path& out, const std::filesystem::path& relative,
                 std::string_view content, TreeFolders* folders, WrittenFiles* counts);

// Every one of `files`: their folders first, then the files on a few
// threads, a folder to a thread at a time. The first failure, after which
// the threads stop at their next file.
Status WriteFiles(const std::filesystem::path& out, const std::vector<PlannedFile>& files,
                  TreeFolders* folders, WrittenFiles* counts);

// Inside `out`/`type`, which the sweep owns, removes every file that is not
// `planned` (paths relative to `out`), then every folder left empty. A
// symbolic link is removed as a link; nothing it points at is touched, and
// nothing outside the folder is.
Status RemoveUnplanned(const std::filesystem::path& out, const std::string& type,
                       const std::unordered_set<std::string>& planned, std::size_t* removed);

}  // namespace imgsweep

#endif  // IMGSWEEP_TREE_TREE_WRITER_H_
