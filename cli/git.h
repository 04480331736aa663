// Git as the data commit and the diff use it: the git command, run through
// the process adapter in one repository.
// Thread-safety: free functions; each runs its own processes.
#ifndef IMGSWEEP_CLI_GIT_H_
#define IMGSWEEP_CLI_GIT_H_

#include <filesystem>
#include <string>
#include <vector>

#include "protocol/status.h"

namespace imgsweep {

// Runs `git -C repo args...`; its stdout, or kIoError with what it printed.
Result<std::string> Git(const std::filesystem::path& git, const std::filesystem::path& repo,
                        const std::vector<std::string>& args);

// The top folder of the git repository `dir` is in; kInvalidInput when it
// is in none.
Result<std::filesystem::path> RepositoryTop(const std::filesystem::path& git,
                                            const std::filesystem::path& dir);

// The files under `paths` (relative to the repository's top) as commit
// `rev` holds them, written below `dest` at the same relative paths. Paths
// the commit does not have, and a repository with no commit yet when `rev`
// is HEAD, give nothing. kInvalidInput when `rev` names no commit.
Status ExtractCommitted(const std::filesystem::path& git, const std::filesystem::path& repo,
                        const std::string& rev, const std::vector<std::string>& paths,
                        const std::filesystem::path& dest);

}  // namespace imgsweep

#endif  // IMGSWEEP_CLI_GIT_H_
