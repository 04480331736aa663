// Writing a file so that a reader sees the old bytes or the new ones, never
// half of them: a temporary beside it, then rename; a file not there yet is
// written unnamed in its folder (O_TMPFILE) and linked once whole. A file that already
// holds the bytes is left alone, mtime included.
// Thread-safety: concurrent calls must name different files.
#ifndef IMGSWEEP_PROTOCOL_ATOMIC_FILE_H_
#define IMGSWEEP_PROTOCOL_ATOMIC_FILE_H_

#include <filesystem>
#include <string_view>

#include "protocol/status.h"

namespace imgsweep {

// `*written` says whether the file changed. kIoError naming the path when a
// step fails; the temporary is removed then.
// REQUIRES: the parent folder exists.
Status WriteFileAtomically(const std::filesystem::path& path, std::string_view content,
                           bool* written);

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_ATOMIC_FILE_H_
