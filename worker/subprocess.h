// Starting processes: the Boost.Process adapter. Nothing else includes
// Boost.Process.
//
// RunCaptured runs one short command to completion the way ninja's
// subprocess layer does, plus a deadline: the child gets its own process
// group and stdin from /dev/null; stdout and stderr are read concurrently from
// close-on-exec pipes, so a full pipe never blocks it; at the deadline the
// whole group gets SIGTERM, then SIGKILL after a grace period; a grandchild
// that keeps a pipe open after the child exits is killed after the grace
// period instead of hanging the caller; the child is always reaped.
//
// Thread-safety: every function may be called from several threads at once.
#ifndef IMGSWEEP_WORKER_SUBPROCESS_H_
#define IMGSWEEP_WORKER_SUBPROCESS_H_

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/status.h"

namespace imgsweep {

struct RunRequest {
  std::filesystem::path program;
  std::vector<std::string> args;  // after the program name
  std::filesystem::path cwd;      // empty: the caller's
  std::chrono::milliseconds timeout{30'000};
  // After SIGTERM at the deadline, and after the child exits while its
  // group still holds a pipe open, how long before SIGKILL.
  std::chrono::milliseconds grace{500};
  // Bytes kept per stream; beyond it the group is killed (output_limit_hit).
  // Also the largest file the child may write (RLIMIT_FSIZE); it dumps no
  // core (RLIMIT_CORE 0).
  std::size_t output_limit = 64u << 20;
  // "NAME=VALUE" entries, the child's whole environment; nullopt: the
  // caller's.
  std::optional<std::vector<std::string>> environment;
};

struct RunOutput {
  enum class Ending { kExited, kSignaled, kTimeout };
  Ending ending = Ending::kExited;
  int exit_code = 0;  // kExited
  int signal = 0;     // kSignaled
  bool output_limit_hit = false;
  std::string stdout_text;
  std::string stderr_text;
  std::chrono::microseconds duration{0};
};

// Makes this process the reaper of the descendants its children orphan
// (PR_SET_CHILD_SUBREAPER), so that a descendant that leaves its process
// group (setsid) cannot outlive its command: when a RunCaptured command
// ends, every child of this process that this layer did not start is
// killed. For a process whose every child starts here (a worker); kIoError
// when the kernel refuses.
Status AdoptOrphans();

// `name` as a search of PATH finds it; kNotFound naming it otherwise.
Result<std::filesystem::path> FindProgram(const std::string& name);

// kIoError naming the program when it cannot be started (missing, not
// executable, bad interpreter) or a pipe cannot be made.
Result<RunOutput> RunCaptured(const RunRequest& request);

// The seam between running cells and starting processes: the real one is
// RunCaptured; a test one returns what the test says a process did.
// Thread-safety: Run may be called from several threads at once.
class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  virtual Result<RunOutput> Run(const RunRequest& request) const = 0;
};
// RunCaptured behind the seam; lives as long as the process.
const ProcessLauncher& SystemLauncher();

// What this process has used so far: cpu (user + system) of its own
// threads and of the children it has reaped, and its peak resident size.
struct ProcessUsage {
  double own_cpu_seconds = 0;
  double children_cpu_seconds = 0;
  double peak_rss_mib = 0;
};
ProcessUsage MeasureUsage();

// A long-running child (a local worker of `imgsweep run`), in its own
// process group, with the caller's stdout and stderr. It gets SIGTERM when
// the caller dies, however the caller dies, so no local worker outlives it.
class BackgroundProcess {
 public:
  static Result<std::unique_ptr<BackgroundProcess>> Start(const std::filesystem::path& program,
                                                          const std::vector<std::string>& args);
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  // Kills the group and reaps the child if it still runs.
  virtual ~BackgroundProcess() = default;

  virtual int pid() const = 0;
  // Waits up to `timeout` for the child to exit. Its exit status (minus the
  // signal number when killed), or kNotFound when it still runs.
  virtual Result<int> WaitFor(std::chrono::milliseconds timeout) = 0;
  // SIGTERM to the group, then SIGKILL after `grace`; reaps the child.
  virtual void Stop(std::chrono::milliseconds grace) = 0;

 protected:
  BackgroundProcess() = default;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_SUBPROCESS_H_
