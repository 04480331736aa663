// The qemu-img command lines a worker is willing to run. A coordinator sends
// each cell's argv; the worker runs it only when it is one of these, so a
// coordinator (or whoever speaks for one) cannot make it run anything else.
#ifndef IMGSWEEP_WORKER_COMMAND_TABLE_H_
#define IMGSWEEP_WORKER_COMMAND_TABLE_H_

#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace imgsweep {

// OK when `args` is a subcommand of the table, then flags the table allows
// for it (each at most once), and exactly one image argument,
// "$TESTDATA_ROOT/<image_path>": the image the worker checked against its
// digest. Else InvalidInput naming the first argument that is not allowed.
Status CheckCellArgs(const std::vector<std::string>& args, std::string_view image_path);

// "map (--output=human, --output=json)": what the table allows, for messages.
std::string DescribeCommandTable();

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_COMMAND_TABLE_H_
