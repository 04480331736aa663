#include "worker/cell_runner.h"

#include <cstdlib>

#include "protocol/manifest.h"
#include "protocol/sha256.h"
#include "protocol/utf8.h"
#include "worker/subprocess.h"

namespace imgsweep {

std::vector<std::string> ChildEnvironment(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  const char* path = std::getenv("PATH");
  out.push_back(std::string("PATH=") + (path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin"));
  std::vector<std::string> passed = {"TMPDIR"};
  passed.insert(passed.end(), names.begin(), names.end());
  for (const std::string& name : passed) {
    if (name == "PATH") continue;
    if (const char* value = std::getenv(name.c_str())) out.push_back(name + "=" + value);
  }
  return out;
}

namespace {

CellResult InfraFailure(const CellSpec& cell, FailureKind kind, const std::string& failure) {
  CellResult result;
  result.key = cell.key;
  result.attempt = cell.attempt;
  result.outcome = Outcome::kInfraFailure;
  result.failure_kind = kind;
  // It may quote a process's stderr; the coordinator takes only UTF-8.
  result.failure = ToUtf8(std::string(FailureKindName(kind)) + ": " + failure);
  return result;
}

// What a shell or loader exits with when the program cannot run (POSIX:
// found but not executable, not found). qemu-img itself never uses them.
constexpr int kCannotExecute = 126;
constexpr int kCommandNotFound = 127;

std::int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) return text;
  std::string out;
  std::size_t pos = 0;
  for (std::size_t hit; (hit = text.find(from, pos)) != std::string::npos;
       pos = hit + from.size()) {
    out.append(text, pos, hit - pos);
    out.append(to);
  }
  if (pos == 0) return text;
  out.append(text, pos, std::string::npos);
  return out;
}

CellRunner::CellRunner(std::filesystem::path testdata_root, std::vector<InstalledVersion> versions,
                       std::chrono::milliseconds grace, std::size_t output_limit,
                       const ProcessLauncher* launcher)
    : root_(std::move(testdata_root)),
      root_text_(root_.string()),
      grace_(grace),
      output_limit_(output_limit),
      launcher_(launcher) {
  for (InstalledVersion& v : versions) versions_.emplace(v.info.name, std::move(v));
}

bool CellRunner::ImageMatches(const CellSpec& cell, FailureKind* kind, std::string* failure) {
  *kind = FailureKind::kImageMismatch;
  std::string digest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = digests_.find(cell.image_path);
    if (it != digests_.end()) digest = it->second;
  }
  if (digest.empty()) {
    // A link inside the testdata that leads out of it is refused like "..".
    Result<std::filesystem::path> real = ResolveInsideRoot(root_, cell.image_path);
    if (!real.ok()) {
      if (real.status().code() == StatusCode::kInvalidInput) *kind = FailureKind::kPathRefused;
      *failure = "image " + real.status().message();
      return false;
    }
    Result<std::string> computed = Sha256File(real.value());
    if (!computed.ok()) {
      *failure = "image " + cell.image_path + ": " + computed.status().message();
      return false;  // not cached: the file may appear
    }
    digest = computed.value();
    std::lock_guard<std::mutex> lock(mu_);
    digests_.emplace(cell.image_path, digest);
  }
  if (digest != cell.image_sha256) {
    *failure = "image " + cell.image_path + ": this host's copy has sha256 " + digest +
               ", the manifest says " + cell.image_sha256;
    return false;
  }
  return true;
}

CellResult CellRunner::Run(const CellSpec& cell) {
  auto version = versions_.find(cell.version);
  if (version == versions_.end()) {
    return InfraFailure(cell, FailureKind::kBinaryMissing,
                        "version " + cell.version + " is not on this worker");
  }
  if (!StaysInsideRoot(cell.image_path)) {
    return InfraFailure(cell, FailureKind::kPathRefused,
                        "image path \"" + cell.image_path + "\" leaves the testdata root");
  }
  std::string failure;
  FailureKind kind = FailureKind::kNone;
  if (!ImageMatches(cell, &kind, &failure)) return InfraFailure(cell, kind, failure);
  if (!bad_layout_.empty()) {  // an image may read any of them: a backing file, an extent
    return InfraFailure(cell, FailureKind::kImageLayout,
                        std::to_string(bad_layout_.size()) + " files under " + root_text_ +
                            " (" + *bad_layout_.begin() +
                            ", ...) have holes after staging; this host's filesystem does not "
                            "keep zero blocks allocated");
  }

  RunRequest request;
  request.program = version->second.program;
  request.cwd = root_;
  request.timeout = std::chrono::milliseconds(cell.timeout_ms);
  request.grace = grace_;
  request.output_limit = output_limit_;
  request.environment = child_environment_;
  // Only a command line of this worker's table, whose one path is the image
  // just checked (which stays inside the root: StaysInsideRoot above).
  if (Status allowed = table_.CheckCellArgs(cell.args, cell.image_path); !allowed.ok()) {
    return InfraFailure(cell, FailureKind::kPathRefused, "command line refused: " + allowed.message());
  }
  const std::string token = std::string(kTestdataRootToken) + "/";
  for (const std::string& arg : cell.args) {
    request.args.push_back(arg.starts_with(token) ? root_text_ + "/" + arg.substr(token.size())
                                                  : arg);
  }
  CellResult result;
  result.key = cell.key;
  result.attempt = cell.attempt;
  result.started_unix_ms = UnixMillis();
  Result<RunOutput> run = launcher_->Run(request);
  if (!run.ok()) return InfraFailure(cell, FailureKind::kSpawnError, run.status().message());
  RunOutput& out = run.value();
  if (out.output_limit_hit) {
    return InfraFailure(cell, FailureKind::kOutputLimit,
                        "more than " + std::to_string(request.output_limit) +
                            " bytes on one stream; the process was killed");
  }
  if (out.ending == RunOutput::Ending::kExited &&
      (out.exit_code == kCannotExecute || out.exit_code == kCommandNotFound) &&
      out.stdout_text.empty()) {
    const std::string err = out.stderr_text.substr(0, out.stderr_text.find('\n'));
    return InfraFailure(cell, FailureKind::kBinaryUnrunnable,
                        version->second.program.string() + " exited " +
                            std::to_string(out.exit_code) + (err.empty() ? "" : ": " + err));
  }
  switch (out.ending) {
    case RunOutput::Ending::kExited:
      result.outcome = Outcome::kExited;
      result.exit_code = out.exit_code;
      break;
    case RunOutput::Ending::kSignaled:
      result.outcome = Outcome::kSignaled;
      result.signal = out.signal;
      break;
    case RunOutput::Ending::kTimeout:
      result.outcome = Outcome::kTimeout;
      break;
  }
  result.stdout_text = ReplaceAll(std::move(out.stdout_text), root_text_, kTestdataRootToken);
  result.stderr_text = ReplaceAll(std::move(out.stderr_text), root_text_, kTestdataRootToken);
  result.duration_us = static_cast<std::uint64_t>(out.duration.count());
  return result;
}

}  // namespace imgsweep
