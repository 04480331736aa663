// Each image's virtual size, as a qemu-img release reports it: what the
// windows of `map --start-offset --max-length` are computed from (see
// Window in protocol/command_table.h). The coordinator asks once, before it
// plans; the numbers are stored with the plan, so every worker runs the
// same command line.
// Thread-safety: a free function; it touches only the files and the child.
#ifndef IMGSWEEP_WORKER_VIRTUAL_SIZE_H_
#define IMGSWEEP_WORKER_VIRTUAL_SIZE_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "protocol/manifest.h"
#include "protocol/status.h"

namespace imgsweep {

struct VirtualSizes {
  std::map<std::string, std::uint64_t> by_id;
  // "<id>: <why>" for each image the binary could not size (it exited
  // non-zero, was killed, timed out, or printed no "virtual-size").
  std::vector<std::string> unsized;
};

// Runs `program info --output=json <testdata>/<path>` for each of `images`,
// from the testdata root. kInvalidInput naming the image when its file is
// not under the root or its sha256 is not the manifest's (a size from other
// bytes would not be the image's); kIoError when `program` cannot start.
Result<VirtualSizes> ProbeVirtualSizes(const std::filesystem::path& program,
                                       const std::filesystem::path& testdata,
                                       const std::vector<ImageEntry>& images);

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_VIRTUAL_SIZE_H_
