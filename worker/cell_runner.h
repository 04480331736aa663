// What a worker does with one cell. CellExecutor is the seam: the real one
// (CellRunner) runs qemu-img; benchmarks substitute one that starts nothing.
#ifndef IMGSWEEP_WORKER_CELL_RUNNER_H_
#define IMGSWEEP_WORKER_CELL_RUNNER_H_

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "protocol/command_table.h"
#include "protocol/messages.h"
#include "worker/binaries.h"
#include "worker/subprocess.h"

namespace imgsweep {

// Thread-safety: Run may be called from several threads at once.
class CellExecutor {
 public:
  virtual ~CellExecutor() = default;
  // Never fails as a call: every way a cell can go wrong is in the result.
  // Sets key and attempt; the caller sets lease_id.
  virtual CellResult Run(const CellSpec& cell) = 0;
};

// "NAME=VALUE" for PATH (a default when unset), TMPDIR and each of `names`
// that this process has.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& names);

// Replaces every occurrence of `from` in `text` with `to`.
std::string ReplaceAll(std::string text, std::string_view from, std::string_view to);

class CellRunner final : public CellExecutor {
 public:
  // The bytes kept per stream of one cell; beyond it the process is killed
  // and the attempt is an output-limit failure.
  static constexpr std::size_t kDefaultOutputLimit = 64u << 20;

  // REQUIRES: `testdata_root` is canonical (no symlinks, absolute);
  // `launcher` outlives the runner.
  CellRunner(std::filesystem::path testdata_root, std::vector<InstalledVersion> versions,
             std::chrono::milliseconds grace, std::size_t output_limit = kDefaultOutputLimit,
             const ProcessLauncher* launcher = &SystemLauncher());

  // Refuses (kInfraFailure, with its FailureKind) a version it does not
  // hold, an image path that leaves the root, and an image whose bytes
  // differ from the cell's sha256; each image's digest is computed once per
  // process. A process that cannot start, prints more than the limit, or
  // exits 126/127 with nothing on stdout (its loader or interpreter failed)
  // is an infrastructure failure too. The process runs with
  // the testdata root as its working directory (qemu resolves a qcow2
  // external data file against it).
  CellResult Run(const CellSpec& cell) override;

  // Files under the root (relative paths) whose layout this host cannot
  // keep as the sweep wants it (StagedTree::not_dense). While there are
  // any, every cell is an image-layout infrastructure failure and runs
  // elsewhere: an image may read any file (a backing file, an extent).
  void RefuseLayoutOf(std::set<std::string> paths) { bad_layout_ = std::move(paths); }

  // The sha256 of files under the root (relative paths), known already
  // (StagedTree::digests): a cell on one of them compares the manifest's
  // digest with this one instead of reading the image again.
  // REQUIRES: before the first Run.
  void KnowDigests(std::map<std::string, std::string> digests) { digests_ = std::move(digests); }

  // Cells run with PATH and TMPDIR of this process and nothing else of its
  // environment (ChildEnvironment), so neither secrets nor a host's locale
  // reach them; these variables are passed on too, when set.
  void PassEnvironment(const std::vector<std::string>& names) {
    child_environment_ = ChildEnvironment(names);
  }

  // The command lines it runs: those of `table` (the built-in one unless
  // told otherwise).
  void UseCommandTable(CommandTable table) { table_ = std::move(table); }

 private:
  // The image's digest, cached; an error message when it cannot be read.
  bool ImageMatches(const CellSpec& cell, FailureKind* kind, std::string* failure);

  const std::filesystem::path root_;
  CommandTable table_ = CommandTable::BuiltIn();
  const std::string root_text_;
  std::map<std::string, InstalledVersion, std::less<>> versions_;
  const std::chrono::milliseconds grace_;
  const std::size_t output_limit_;
  std::vector<std::string> child_environment_ = ChildEnvironment({});
  const ProcessLauncher* const launcher_;
  std::set<std::string> bad_layout_;

  std::mutex mu_;
  std::map<std::string, std::string> digests_;  // guarded by mu_; path -> sha256
};

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_CELL_RUNNER_H_
