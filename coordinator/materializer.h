// Writes the contract's raw tree from the store:
//   <out>/<output type>/<format>/<version>/<image id>.{stdout.txt,stderr.txt,meta.json}
// Each file is written to a temporary beside it and renamed over, and a file
// whose bytes would not change is not touched, so re-materialising an
// unchanged store changes no byte (and no mtime).
// Thread-safety: one Materialize per output folder at a time.
#ifndef IMGSWEEP_COORDINATOR_MATERIALIZER_H_
#define IMGSWEEP_COORDINATOR_MATERIALIZER_H_

#include <cstddef>
#include <filesystem>
#include <string>

#include "coordinator/plan.h"
#include "protocol/status.h"
#include "storage/store.h"

namespace imgsweep {

struct MaterializeOptions {
  // Adds each cell's duration, worker, host and attempt count to its
  // meta.json. Off by default: they differ from run to run, and the tree of
  // an unchanged sweep should not.
  bool provenance = false;
};

struct MaterializeSummary {
  std::size_t files_written = 0;
  std::size_t files_unchanged = 0;
};

// The stored plan; kNotFound when the store holds none.
Result<Plan> LoadPlan(Store& store);

// kInvalidInput listing (the first few) cells without an outcome, before
// anything is written; kIoError naming the path when a write fails.
Result<MaterializeSummary> Materialize(Store& store, const std::filesystem::path& out,
                                       const MaterializeOptions& options);

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_MATERIALIZER_H_
