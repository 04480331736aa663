// How the image files lie on this host's disk, and the dense copy cells run
// on by default. `qemu-img map` prints where a file has holes, so the same
// bytes laid out otherwise (a sparse `qemu-img create`, a `cp` or tar
// copy, a git checkout that writes every byte) print different extents.
//
// StageDense mirrors the testdata tree into a cache, every byte allocated
// as in the consumers' git checkouts: relative backing files and VMDK
// extents resolve there as in the checkout, and the staged root stands in
// for the real one (its path becomes $TESTDATA_ROOT in the outputs).
//
// Thread-safety: free functions; StageDense serialises processes of one
// host that stage the same tree with a lock file.
#ifndef IMGSWEEP_WORKER_IMAGE_LAYOUT_H_
#define IMGSWEEP_WORKER_IMAGE_LAYOUT_H_

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "protocol/clock.h"
#include "protocol/messages.h"
#include "protocol/status.h"

namespace imgsweep {

// "dense" when every byte of the file is allocated (or the filesystem
// reports no holes), else "sparse:" and 16 hex digits of the sha256 of its
// data extents. Errors name the path.
Result<std::string> LayoutFingerprint(const std::filesystem::path& file);

// The regular files under `root` that have holes, by path relative to it,
// sorted; the top-level .git and expected-outputs folders are left out
// (neither holds images).
Result<std::vector<FileLayout>> SparseFiles(const std::filesystem::path& root);

struct StagedTree {
  std::filesystem::path root;  // canonical
  std::size_t files = 0;
  std::size_t copied = 0;  // the rest were already there with the same bytes
  // Files whose staged copy still has holes: this host's filesystem turns
  // zero blocks into holes, so cells on them cannot run here.
  std::set<std::string> not_dense;
  // Every staged regular file's sha256, by path relative to the root.
  std::map<std::string, std::string> digests;
  // A shared lock on the copy (cache/<digits>.inuse) while any copy of this
  // pointer lives: keep it for as long as cells run on the copy, and no
  // other process's StageDense removes it meanwhile.
  std::shared_ptr<void> in_use;
};

// `cache/<16 hex digits of the root's path>`, a dense copy of every regular
// file under `root` (outside .git and expected-outputs) and its symbolic
// links as they are. A staged file is kept while its sha256 equals the
// source's; files no longer in the source are removed. Each staged file is
// checked with SEEK_HOLE. `cache/<same digits>.stamps` keeps, for each file,
// what stat said of it and its copy when they were last hashed alike: while
// both still say so (device, inode, size, mtime and ctime), neither is read
// again. Files changed in the 2 s before a check get no stamp.
// `cache/<same digits>.source` names `root` and `host` (the worker's host
// name); each StageDense then removes the other copies in `cache` that
// `host` staged from a tree that no longer exists (a deleted checkout, a CI
// job's clone), unless a process is staging one or holds its
// StagedTree::in_use. An empty `host` removes none. REQUIRES: `root`
// canonical.
Result<StagedTree> StageDense(const std::filesystem::path& root, const std::filesystem::path& cache,
                              const std::string& host, const Clock& clock = SystemClock());

// $XDG_CACHE_HOME/imgsweep/staged, else $HOME/.cache/imgsweep/staged.
Result<std::filesystem::path> DefaultStageCache();

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_IMAGE_LAYOUT_H_
