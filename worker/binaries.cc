#include "worker/binaries.h"

#include <unistd.h>

#include <map>

#include "protocol/sha256.h"
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

Result<std::vector<InstalledVersion>> DiscoverBinaries(const fs::path& given,
                                                       std::chrono::milliseconds timeout) {
  // Cells run in the testdata root: a program named relative to where the
  // worker started would not be found there.
  std::error_code absolute_ec;
  const fs::path dir = fs::absolute(given, absolute_ec);
  if (absolute_ec) return Status::FromErrno("binaries tree " + given.string(), absolute_ec.value());
  Result<std::vector<std::string>> names = ListVersions(dir);
  if (!names.ok()) return names.status();
  // One file behind several version names (links) is hashed and asked for
  // its version once: the answer cannot differ.
  std::map<fs::path, std::string> digest_of;        // canonical binary -> sha256
  std::map<fs::path, std::string> version_line_of;  // canonical program -> --version line
  std::vector<InstalledVersion> installed;
  for (const std::string& name : names.value()) {
    InstalledVersion v;
    v.info.name = name;
    v.program = dir / "x86_64" / name / "qemu-img";
    std::error_code ec;
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

    const fs::path real_program = fs::canonical(v.program, ec);
    auto known_line = ec ? version_line_of.end() : version_line_of.find(real_program);
    if (known_line != version_line_of.end()) {
      v.info.version_line = known_line->second;
      installed.push_back(std::move(v));
      continue;
    }
    RunRequest request;
    request.program = v.program;
    request.args = {"--version"};
    request.timeout = timeout;
    Result<RunOutput> run = RunCaptured(request);
    const std::string what = "x86_64/" + name + "/qemu-img --version";
    if (!run.ok()) return Status::InvalidInput(what + ": " + run.status().message());
    const RunOutput& out = run.value();
    if (out.ending != RunOutput::Ending::kExited || out.exit_code != 0) {
      const std::string err = out.stderr_text.substr(0, out.stderr_text.find('\n'));
      return Status::InvalidInput(what + ": failed (" +
                                  (out.ending == RunOutput::Ending::kTimeout
                                       ? std::string("timed out")
                                       : "status " + std::to_string(out.exit_code)) +
                                  "): " + err);
    }
    v.info.version_line = out.stdout_text.substr(0, out.stdout_text.find('\n'));
    if (!ec) version_line_of.emplace(real_program, v.info.version_line);
    installed.push_back(std::move(v));
  }
  return installed;
}

}  // namespace imgsweep
