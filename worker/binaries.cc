#include "worker/binaries.h"

#include <unistd.h>

#include <map>

#include "protocol/sha256.h"
#include "protocol/utf8.h"
#include "protocol/version_name.h"
#include "worker/subprocess.h"

namespace imgsweep {
namespace fs = std::filesystem;

Result<std::vector<std::string>> ListVersions(const fs::path& dir) {
  const std::string where = "binaries tree " + dir.string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound(where + ": no such directory");
  const fs::path arch = dir / "x86_64";
  if (!fs::is_directory(arch, ec)) return Status::NotFound(where + ": has no x86_64/ folder");
  std::vector<std::string> versions;
  for (fs::directory_iterator it(arch, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!IsVersionName(name)) {
      return Status::InvalidInput(where + ": x86_64/" + name + " is not a version name (X.Y.Z)");
    }
    const fs::path program = it->path() / "qemu-img";
    if (::access(program.c_str(), X_OK) != 0) {
      return Status::InvalidInput(where + ": x86_64/" + name + " has no executable qemu-img");
    }
    versions.push_back(name);
  }
  if (ec) return Status::FromErrno(where + ": cannot list x86_64/", ec.value());
  if (versions.empty()) return Status::InvalidInput(where + ": no versions under x86_64/");
  SortVersions(&versions);
  return versions;
}

fs::path DigestedBinary(const fs::path& dir, const std::string& version) {
  const fs::path real = dir / "x86_64" / version / "bin" / "qemu-img";
  std::error_code ec;
  return fs::exists(real, ec) ? real : dir / "x86_64" / version / "qemu-img";
}

namespace {

// The first line of `--version`, or why the version cannot run.
Result<std::string> VersionLine(const fs::path& program, std::chrono::milliseconds timeout) {
  RunRequest request;
  request.program = program;
  request.args = {"--version"};
  request.timeout = timeout;
  Result<RunOutput> run = RunCaptured(request);
  if (!run.ok()) return Status::InvalidInput("--version cannot start: " + run.status().message());
  const RunOutput& out = run.value();
  const std::string err = out.stderr_text.substr(0, out.stderr_text.find('\n'));
  const std::string said = err.empty() ? "" : ": " + err;
  switch (out.ending) {
    case RunOutput::Ending::kTimeout:
      return Status::InvalidInput("--version timed out after " +
                                  (timeout.count() % 1000 == 0
                                       ? std::to_string(timeout.count() / 1000) + " s"
                                       : std::to_string(timeout.count()) + " ms"));
    case RunOutput::Ending::kSignaled:
      return Status::InvalidInput("--version killed by signal " + std::to_string(out.signal) + said);
    case RunOutput::Ending::kExited:
      if (out.exit_code != 0) {
        return Status::InvalidInput("--version exited " + std::to_string(out.exit_code) + said);
      }
      break;
  }
  return out.stdout_text.substr(0, out.stdout_text.find('\n'));
}

}  // namespace

Result<Binaries> DiscoverBinaries(const fs::path& given, std::chrono::milliseconds timeout) {
  // Cells run in the testdata root: a program named relative to where the
  // worker started would not be found there.
  std::error_code absolute_ec;
  const fs::path dir = fs::absolute(given, absolute_ec);
  if (absolute_ec) return Status::FromErrno("binaries tree " + given.string(), absolute_ec.value());
  Result<std::vector<std::string>> names = ListVersions(dir);
  if (!names.ok()) return names.status();
  // One file behind several version names (links) is hashed and asked for
  // its version once: the answer cannot differ.
  std::map<fs::path, std::string> digest_of;                // canonical binary -> sha256
  std::map<fs::path, Result<std::string>> version_line_of;  // canonical program -> --version
  Binaries found;
  for (const std::string& name : names.value()) {
    InstalledVersion v;
    v.info.name = name;
    v.program = dir / "x86_64" / name / "qemu-img";
    std::error_code ec;
    const fs::path real_program = fs::canonical(v.program, ec);
    auto known_line = ec ? version_line_of.end() : version_line_of.find(real_program);
    Result<std::string> line =
        known_line != version_line_of.end() ? known_line->second : VersionLine(v.program, timeout);
    if (!ec) version_line_of.emplace(real_program, line);
    if (!line.ok()) {
      // The reason may quote the build's stderr: the hello takes only UTF-8.
      found.broken.push_back({name, ToUtf8(line.status().message())});
      continue;
    }
    v.info.version_line = ToUtf8(line.value());

    const fs::path binary = DigestedBinary(dir, name);
    const fs::path real_binary = fs::canonical(binary, ec);
    auto known_digest = ec ? digest_of.end() : digest_of.find(real_binary);
    if (known_digest != digest_of.end()) {
      v.info.binary_sha256 = known_digest->second;
    } else {
      Result<std::string> digest = Sha256File(binary);
      if (!digest.ok()) return digest.status();
      v.info.binary_sha256 = digest.value();
      if (!ec) digest_of.emplace(real_binary, digest.value());
    }
    found.working.push_back(std::move(v));
  }
  return found;
}

}  // namespace imgsweep
