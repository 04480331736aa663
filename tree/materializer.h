// Writes the contract's tree from the store:
//   <out>/<output type>/<format>/<version>/<image id>.{stdout.txt,stderr.txt,meta.json}
//   <out>/<output type>/profiles/profile-X-Y-Z/<image id>.{stdout.txt,stderr.txt,meta.json}
//   <out>/<output type>/version-map.json
// The whole tree is checked (tree_check.h) before the first file is written.
// Each file is written to a temporary beside it and renamed over, and a file
// whose bytes would not change is not touched, so re-materialising an
// unchanged store changes no byte (and no mtime). Profile folders of an
// earlier materialisation that no longer exist are removed; nothing else is.
// Thread-safety: one Materialize per output folder at a time.
#ifndef IMGSWEEP_TREE_MATERIALIZER_H_
#define IMGSWEEP_TREE_MATERIALIZER_H_

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sweep/plan.h"
#include "sweep/sweep_state.h"
#include "tree/profiles.h"
#include "protocol/status.h"
#include "storage/store.h"

namespace imgsweep {

struct MaterializeOptions {
  // Adds each cell's duration, worker, host and attempt count to its
  // meta.json. Off by default: they differ from run to run, and the tree of
  // an unchanged sweep should not.
  bool provenance = false;
  // Writes what there is when cells have no outcome: their files are
  // absent, and a version without every image of an output type is left out
  // of that type's profiles and version-map.json.
  bool allow_partial = false;
};

struct TypeProfiles {
  std::string type;
  std::size_t profiles = 0;
  std::size_t versions = 0;           // in version-map.json
  std::vector<std::string> left_out;  // versions without every image (allow_partial)
};

struct MaterializeSummary {
  std::size_t files_written = 0;
  std::size_t files_unchanged = 0;
  std::size_t stale_removed = 0;  // files of an earlier tree in the types' folders, not in this one
  std::size_t cells_missing = 0;  // cells without an outcome (allow_partial)
  std::vector<TypeProfiles> types;
};

// The plan and each cell's record, by plan index; records[i] is set when
// cell i has an outcome.
struct StoredSweep {
  Plan plan;
  std::vector<std::optional<CellRecord>> records;

  // The versions of one output type, split by whether every image of it
  // has an outcome.
  struct TypeVersions {
    std::vector<std::size_t> complete;  // indices into plan.versions()
    std::vector<std::string> names;     // of the complete ones
    std::vector<std::string> left_out;  // the others
  };
  TypeVersions Versions(std::size_t type) const;
  // The stdout digests of `versions` of `type`, a row per version, a column
  // per image. REQUIRES: every cell named has an outcome.
  std::vector<std::vector<std::string>> StdoutRows(std::size_t type,
                                                   const std::vector<std::size_t>& versions) const;
};

Result<StoredSweep> LoadSweep(Store& store);

// kInvalidInput listing (the first few) cells without an outcome unless
// allow_partial; kIoError listing every violation of the tree it would write
// (the store disagrees with itself); both before anything is written.
// kIoError naming the path when a write fails.
Result<MaterializeSummary> Materialize(Store& store, const std::filesystem::path& out,
                                       const MaterializeOptions& options);

}  // namespace imgsweep

#endif  // IMGSWEEP_TREE_MATERIALIZER_H_
