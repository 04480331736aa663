// A worker's qemu-img binaries tree: <dir>/x86_64/<version>/qemu-img, the
// version directory's name being the version (see the contract).
// Thread-safety: free functions; they touch only the filesystem.
#ifndef IMGSWEEP_WORKER_BINARIES_H_
#define IMGSWEEP_WORKER_BINARIES_H_

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "protocol/status.h"

namespace imgsweep {

struct InstalledVersion {
  VersionInfo info;
  std::filesystem::path program;  // <dir>/x86_64/<version>/qemu-img, run as it is
};

// The version names in numeric order. kNotFound when `dir` or its x86_64/
// folder is missing; kInvalidInput naming the entry when a directory is not
// a version name or holds no executable qemu-img, or when there is none.
Result<std::vector<std::string>> ListVersions(const std::filesystem::path& dir);

// The file whose sha256 is the version's binary digest: bin/qemu-img when
// the version directory holds a wrapper and its build, else qemu-img.
std::filesystem::path DigestedBinary(const std::filesystem::path& dir, const std::string& version);

// What a worker can offer: the versions that run, and the ones that do not
// with the reason.
struct Binaries {
  std::vector<InstalledVersion> working;
  std::vector<BrokenVersion> broken;
};

// ListVersions, then for each: the first line of `qemu-img --version`, run
// with `timeout`, and the binary's sha256 (bin/qemu-img when the directory
// holds a wrapper and its build). `program` is absolute, since cells run
// with the testdata root as their working directory. A version whose
// `--version` cannot start, times out, is killed or exits non-zero is
// broken, with the reason (the first line of its stderr when it said one);
// the others still work.
Result<Binaries> DiscoverBinaries(const std::filesystem::path& dir, std::chrono::milliseconds timeout);

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_BINARIES_H_
