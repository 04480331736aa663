// `imgsweep report`: one self-contained HTML file (no network) showing a
// stored sweep as, per output type, a matrix of images (grouped by format)
// x versions (grouped by profile). Each cell is coloured by which of its
// image's distinct outputs it printed; failed, timed-out and missing cells
// are marked; clicking a cell shows its stdout, stderr and the diff against
// the previous version. A header sums up the profiles and boundaries.
// Opening the file with "#cell=<key>" selects that cell, as a click does.
// Thread-safety: a free function over a Store.
#ifndef IMGSWEEP_TREE_REPORT_H_
#define IMGSWEEP_TREE_REPORT_H_

#include <string>

#include "protocol/status.h"
#include "storage/store.h"

namespace imgsweep {

// The page. kNotFound when the store holds no plan.
Result<std::string> RenderReport(Store& store);

}  // namespace imgsweep

#endif  // IMGSWEEP_TREE_REPORT_H_
