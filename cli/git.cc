#include "cli/git.h"

#include <chrono>

#include "worker/subprocess.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

// Git may walk thousands of files; nothing here should take longer.
constexpr auto kGitTimeout = std::chrono::minutes(10);
// An archive of a tree of 80 versions and several types is far below this.
constexpr std::size_t kArchiveLimit = std::size_t{4} << 30;

Result<RunOutput> Run(const fs::path& program, std::vector<std::string> args) {
  RunRequest request;
  request.program = program;
  request.args = std::move(args);
  request.timeout = kGitTimeout;
  request.output_limit = kArchiveLimit;
  return RunCaptured(request);
}

bool Succeeded(const RunOutput& out) {
  return out.ending == RunOutput::Ending::kExited && out.exit_code == 0 && !out.output_limit_hit;
}

}  // namespace

Result<std::string> Git(const fs::path& git, const fs::path& repo,
                        const std::vector<std::string>& args) {
  std::vector<std::string> all = {"-C", repo.string()};
  all.insert(all.end(), args.begin(), args.end());
  Result<RunOutput> ran = Run(git, all);
  if (!ran.ok()) return ran.status();
  const RunOutput& out = ran.value();
  if (!Succeeded(out)) {
    std::string what = "git";
    for (const std::string& a : args) what += " " + a;
    return Status::IoError(what + " failed: " +
                           (out.stderr_text.empty() ? out.stdout_text : out.stderr_text));
  }
  return out.stdout_text;
}

Result<fs::path> RepositoryTop(const fs::path& git, const fs::path& dir) {
  Result<std::string> top = Git(git, dir, {"rev-parse", "--show-toplevel"});
  if (!top.ok()) {
    return Status::InvalidInput(dir.string() + " is not a git repository: " +
                                top.status().message());
  }
  return fs::path(top.value().substr(0, top.value().find('\n')));
}

Status ExtractCommitted(const fs::path& git, const fs::path& repo, const std::string& rev,
                        const std::vector<std::string>& paths, const fs::path& dest) {
  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec) return Status::FromErrno("cannot make " + dest.string(), ec.value());
  if (!Git(git, repo, {"rev-parse", "--verify", "--quiet", rev + "^{commit}"}).ok()) {
    // A repository whose first commit is still to come has no tree yet.
    const bool unborn = rev == "HEAD" && !Git(git, repo, {"rev-parse", "--verify", "--quiet", "HEAD"}).ok() &&
                        Git(git, repo, {"rev-parse", "--git-dir"}).ok();
    if (unborn) return Status::Ok();
    return Status::InvalidInput(rev + " names no commit in " + repo.string());
  }
  std::vector<std::string> list = {"ls-tree", "--name-only", rev, "--"};
  list.insert(list.end(), paths.begin(), paths.end());
  Result<std::string> present = Git(git, repo, list);
  if (!present.ok()) return present.status();
  if (present.value().empty()) return Status::Ok();
  const fs::path archive = dest / ".committed.tar";
  std::vector<std::string> args = {"archive", "--format=tar", "-o", archive.string(), rev, "--"};
  for (std::size_t start = 0; start < present.value().size();) {
    const std::size_t end = present.value().find('\n', start);
    args.push_back(present.value().substr(start, end - start));
    start = end == std::string::npos ? present.value().size() : end + 1;
  }
  Result<std::string> archived = Git(git, repo, args);
  if (!archived.ok()) return archived.status();
  Result<fs::path> tar = FindProgram("tar");
  if (!tar.ok()) return tar.status();
  Result<RunOutput> unpacked = Run(tar.value(), {"-xf", archive.string(), "-C", dest.string()});
  if (!unpacked.ok()) return unpacked.status();
  if (!Succeeded(unpacked.value())) {
    return Status::IoError("tar could not unpack " + rev + "'s tree: " + unpacked.value().stderr_text);
  }
  fs::remove(archive, ec);
  return Status::Ok();
}

}  // namespace imgsweep
