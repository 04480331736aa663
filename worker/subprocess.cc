// The Boost.Process adapter: the only file that includes Boost.Process.
#include "worker/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// Boost.Process 1.74 compiles its vfork path only under an X/Open level
// that glibc's POSIX 2008 headers no longer announce; Linux has vfork.
#define BOOST_POSIX_HAS_VFORK 1

// With vfork the child reports a failed exec by writing into our memory.
// ThreadSanitizer runs vfork as fork, where that write would be lost (a
// missing program would look like an exit 1): there cells start with fork
// and Boost.Process's error pipe.
#if defined(__SANITIZE_THREAD__)
#define IMGSWEEP_SPAWN_WITH_VFORK 0
#else
#define IMGSWEEP_SPAWN_WITH_VFORK 1
#endif

#include <array>
#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/environment.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/group.hpp>
#include <boost/process/io.hpp>
#include <boost/process/pipe.hpp>
#include <boost/process/posix.hpp>
#include <boost/process/search_path.hpp>
#include <boost/process/start_dir.hpp>
#include <atomic>
#include <charconv>
#include <cerrno>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>

#include "worker/running_groups.h"

namespace imgsweep {
namespace bp = boost::process;
namespace {

using Clock = std::chrono::steady_clock;

// Run in the child before exec (vforked: system calls only): no core files,
// and no regular file written past `file_bytes`, so a cell cannot fill the
// worker's disk. A write beyond it gets SIGXFSZ.
struct ChildLimits : bp::extend::handler {
  rlim_t file_bytes;
  explicit ChildLimits(std::size_t bytes) : file_bytes(static_cast<rlim_t>(bytes)) {}
  template <typename Executor>
  void on_exec_setup(Executor&) const {
    const rlimit core{0, 0};
    (void)::setrlimit(RLIMIT_CORE, &core);
    const rlimit size{file_bytes, file_bytes};
    (void)::setrlimit(RLIMIT_FSIZE, &size);
  }
};

// Both ends close-on-exec, so a cell started from another thread never
// inherits this cell's write end (which would delay our EOF until it exits).
// The child's dup2 onto 1 and 2 clears the flag there.
Result<bp::pipe> MakePipe(const std::filesystem::path& program) {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
    return Status::FromErrno("cannot make a pipe for " + program.string(), errno);
  }
  return bp::pipe(fds[0], fds[1]);
}

// A file descriptor that becomes readable when `pid` exits, without reaping
// it; -1 on a kernel without pidfds (the caller then relies on the pipes).
// Called through syscall(): glibc 2.36's <sys/pidfd.h> lacks C linkage.
int PidFdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Boost.Process 1.74 makes its exec-error pipe with pipe() and sets
// close-on-exec afterwards: a fork on another thread in between would hand
// that pipe to an unrelated child, and this spawn would then wait for that
// child to exit. Spawns therefore take turns; one takes about a millisecond.
std::mutex& SpawnMutex() {
  static std::mutex mu;
  return mu;
}

// The children this layer started and has not reaped yet: every other
// child of a process that adopts orphans is a descendant that outlived its
// parent. Guarded by SpawnMutex, so a child is in it from its fork on.
std::set<pid_t>& Started() {
  static std::set<pid_t> pids;
  return pids;
}
std::atomic<bool> adopting_orphans{false};

// This process's children, from every thread's list. Opening each list
// costs about 40 us with a worker's threads: see Orphans.
std::vector<pid_t> AllChildren() {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream list(task.path() / "children");
    for (pid_t pid; list >> pid;) pids.push_back(pid);
  }
  return pids;
}

// Scans between two that read every thread's list.
constexpr int kFullScanEvery = 64;

// The children that may be orphans. The kernel hands a subreaper's
// orphans to its first live thread, the main one (kernel/exit.c,
// find_alive_thread), so most scans read only the main thread's list,
// through a descriptor kept open: a pread at offset 0 renders it afresh in
// half a microsecond. Every kFullScanEvery-th scan reads every thread's
// list, should the main thread ever be exiting. REQUIRES: SpawnMutex held.
std::vector<pid_t> Orphans() {
  static int fd = -1;
  static unsigned scans = 0;
  static std::string text(4096, '\0');  // grown to the longest list seen
  if (fd < 0) {
    const std::string main_list = "/proc/self/task/" + std::to_string(::getpid()) + "/children";
    fd = ::open(main_list.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0 || ++scans % kFullScanEvery == 0) return AllChildren();
  std::size_t length = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, text.data(), text.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return AllChildren();
    length = static_cast<std::size_t>(n);
    if (length < text.size()) break;
    text.resize(text.size() * 2);  // a full buffer may have cut the list
  }
  std::vector<pid_t> pids;  // the list is "PID PID ... "
  const char* at = text.data();
  const char* const end = at + length;
  while (at < end) {
    pid_t pid = 0;
    const auto [next, error] = std::from_chars(at, end, pid);
    if (error == std::errc()) pids.push_back(pid);
    at = next + 1;
  }
  return pids;
}

// Kills and reaps every child that this layer did not start, until none
// is left: killing one hands its own children to this process in turn.
void KillOrphans() {
  if (!adopting_orphans) return;
  std::lock_guard<std::mutex> lock(SpawnMutex());
  for (int round = 0; round < 64; ++round) {
    bool found = false;
    for (pid_t pid : Orphans()) {
      if (Started().contains(pid)) continue;
      found = true;
      ::kill(pid, SIGKILL);
      int status;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (!found) return;
  }
}

// The child is reaped: it is no longer this layer's.
void Forget(pid_t pid) {
  std::lock_guard<std::mutex> lock(SpawnMutex());
  Started().erase(pid);
}

// Decodes a wait status into the exit code, or minus the signal number.
int DecodeWaitStatus(int status) {
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return WEXITSTATUS(status);
}

// One stream of the child, read until EOF into at most `limit` bytes.
struct Stream {
  int fd = -1;
  std::string* text = nullptr;
  bool open = true;
};

// Reads what is there; false when the stream ended or errored.
bool ReadSome(Stream* stream, std::size_t limit, bool* over_limit) {
  // Not zeroed: read() fills what is used, and zeroing 64 KiB for each read
  // of a cell's few hundred bytes was a worker's biggest user-space cost.
  std::array<char, 65536> buffer;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  ssize_t n;
  do {
    n = ::read(stream->fd, buffer.data(), buffer.size());
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  const std::size_t room = limit - std::min(limit, stream->text->size());
  stream->text->append(buffer.data(), std::min(room, static_cast<std::size_t>(n)));
  if (static_cast<std::size_t>(n) > room) *over_limit = true;
  return true;
}

// Watches the child's pipes and exit until both pipes closed and it exited,
// applying the deadline and grace periods. Fills `out` except the exit status.
class Watch {
 public:
  Watch(const RunRequest& request, pid_t group, int pidfd, Clock::time_point start)
      : request_(request), group_(group), pidfd_(pidfd), deadline_(start + request.timeout) {}

  void Run(int out_fd, int err_fd, RunOutput* out) {
    std::array<Stream, 2> streams{Stream{out_fd, &out->stdout_text},
                                  Stream{err_fd, &out->stderr_text}};
    // Without a pidfd the child counts as exited once its pipes close.
    exited_ = pidfd_ < 0;
    while (streams[0].open || streams[1].open || !exited_) {
      const Clock::time_point now = Clock::now();
      Escalate(now, out);
      if (give_up_ && (streams[0].open || streams[1].open)) break;
      std::array<pollfd, 3> fds{};
      nfds_t n = 0;
      std::array<Stream*, 2> polled{};
      for (Stream& s : streams) {
        if (!s.open) continue;
        polled[n] = &s;
        fds[n++] = pollfd{s.fd, POLLIN, 0};
      }
      const nfds_t pid_index = n;
      if (!exited_) fds[n++] = pollfd{pidfd_, POLLIN, 0};
      const int ready = ::poll(fds.data(), n, PollTimeout(now));
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) break;  // cannot happen with valid fds; never spin
      for (nfds_t i = 0; i < pid_index; ++i) {
        if (fds[i].revents == 0) continue;
        bool over = false;
        if (!ReadSome(polled[i], request_.output_limit, &over)) polled[i]->open = false;
        if (over && !out->output_limit_hit) {
          out->output_limit_hit = true;
          Kill(SIGKILL);
        }
      }
      if (!exited_ && pid_index < n && fds[pid_index].revents != 0) {
        exited_ = true;
        exited_at_ = Clock::now();
      }
    }
  }

 private:
  void Kill(int signal) {
    if (signal == SIGKILL) killed_ = true;
    ::killpg(group_, signal);
  }

  // Deadline: TERM, then KILL after the grace. Child gone but a pipe still
  // open (a grandchild holds it): KILL the group after the grace, then stop
  // reading after one more.
  void Escalate(Clock::time_point now, RunOutput* out) {
    if (!timed_out_ && now >= deadline_) {
      timed_out_ = true;
      out->ending = RunOutput::Ending::kTimeout;
      Kill(SIGTERM);
      kill_at_ = now + request_.grace;
    }
    if (exited_ && exited_at_ && !kill_at_) kill_at_ = *exited_at_ + request_.grace;
    if (kill_at_ && now >= *kill_at_ && !killed_) {
      Kill(SIGKILL);
      give_up_at_ = now + request_.grace;
    }
    if (give_up_at_ && now >= *give_up_at_) give_up_ = true;
  }

  int PollTimeout(Clock::time_point now) const {
    Clock::time_point next = deadline_;
    if (timed_out_) next = Clock::time_point::max();
    if (kill_at_ && !killed_) next = std::min(next, *kill_at_);
    if (give_up_at_) next = std::min(next, *give_up_at_);
    if (exited_ && !kill_at_ && exited_at_) next = std::min(next, *exited_at_ + request_.grace);
    if (next == Clock::time_point::max()) return -1;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
    return static_cast<int>(std::clamp<std::int64_t>(ms, 0, 60'000));
  }

  const RunRequest& request_;
  pid_t group_;
  int pidfd_;
  Clock::time_point deadline_;
  bool exited_ = false;
  std::optional<Clock::time_point> exited_at_;
  bool timed_out_ = false;
  bool killed_ = false;
  bool give_up_ = false;
  std::optional<Clock::time_point> kill_at_;
  std::optional<Clock::time_point> give_up_at_;
};

class ChildProcess final : public BackgroundProcess {
 public:
  // The pidfd is opened once: `run` asks after its workers on every round
  // of its coordinator.
  ChildProcess(bp::child child, bp::group group)
      : child_(std::move(child)), group_(std::move(group)), pidfd_(PidFdOpen(child_.id())) {}
  ~ChildProcess() override {
    Stop(std::chrono::milliseconds(0));
    if (pidfd_ >= 0) ::close(pidfd_);
  }

  int pid() const override { return child_.id(); }

  Result<int> WaitFor(std::chrono::milliseconds timeout) override {
    if (exit_status_) return *exit_status_;
    if (pidfd_ >= 0) {
      pollfd fd{pidfd_, POLLIN, 0};
      int ready;
      do {
        ready = ::poll(&fd, 1, static_cast<int>(timeout.count()));
      } while (ready < 0 && errno == EINTR);
      if (ready == 0) return StillRuns();
    }
    std::error_code ec;
    if (child_.running(ec)) return StillRuns();
    Reap();
    return *exit_status_;
  }

  void Stop(std::chrono::milliseconds grace) override {
    if (exit_status_) return;
    std::error_code ec;
    if (child_.running(ec)) {
      ::killpg(child_.id(), SIGTERM);
      if (!WaitFor(grace).ok()) ::killpg(child_.id(), SIGKILL);
    }
    Reap();
  }

 private:
  void Reap() {
    if (exit_status_) return;
    std::error_code ec;
    child_.wait(ec);
    Forget(child_.id());
    exit_status_ = DecodeWaitStatus(child_.native_exit_code());
    group_.detach();  // never signal a process group id after it may be reused
  }

  Status StillRuns() const {
    return Status::NotFound("process " + std::to_string(child_.id()) + " still runs");
  }

  bp::child child_;
  bp::group group_;
  const int pidfd_;  // -1 on a kernel without pidfds
  std::optional<int> exit_status_;
};

}  // namespace

ProcessUsage MeasureUsage() {
  auto seconds = [](const rusage& u) {
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  rusage own{};
  ::getrusage(RUSAGE_SELF, &own);
  rusage children{};
  ::getrusage(RUSAGE_CHILDREN, &children);
  return ProcessUsage{seconds(own), seconds(children), static_cast<double>(own.ru_maxrss) / 1024.0};
}

namespace {
class SystemProcessLauncher final : public ProcessLauncher {
 public:
  Result<RunOutput> Run(const RunRequest& request) const override { return RunCaptured(request); }
};
}  // namespace

const ProcessLauncher& SystemLauncher() {
  static const SystemProcessLauncher* const launcher = new SystemProcessLauncher;
  return *launcher;
}

Result<std::filesystem::path> FindProgram(const std::string& name) {
  const boost::filesystem::path found = bp::search_path(name);
  if (found.empty()) return Status::NotFound(name + ": not found on PATH");
  return std::filesystem::path(found.string());
}

Status AdoptOrphans() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    return Status::FromErrno("prctl(PR_SET_CHILD_SUBREAPER)", errno);
  }
  adopting_orphans = true;
  return Status::Ok();
}

Result<RunOutput> RunCaptured(const RunRequest& request) {
  Result<bp::pipe> out_pipe = MakePipe(request.program);
  if (!out_pipe.ok()) return out_pipe.status();
  Result<bp::pipe> err_pipe = MakePipe(request.program);
  if (!err_pipe.ok()) return err_pipe.status();
  const std::filesystem::path cwd =
      request.cwd.empty() ? std::filesystem::current_path() : request.cwd;

  RunOutput out;
  const Clock::time_point start = Clock::now();
  bp::group group;
  bp::child child;
  // A cell's small environment is built from nothing; copying this
  // process's whole one is only for callers that ask to inherit it.
  bp::environment environment = request.environment
                                    ? bp::environment()
                                    : bp::environment(boost::this_process::environment());
  if (request.environment) {
    for (const std::string& entry : *request.environment) {
      const std::size_t eq = entry.find('=');
      if (eq != std::string::npos && eq > 0) environment[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
  }
  try {
    std::lock_guard<std::mutex> lock(SpawnMutex());
    // vfork: a fork would copy this process's page tables and make every
    // page it writes afterwards fault once, about a millisecond of a
    // cell's few; the child only sets up its pipes and folder and execs.
#if IMGSWEEP_SPAWN_WITH_VFORK
    child = bp::child(bp::exe = request.program.string(), bp::args = request.args,
                      bp::std_in<bp::null, bp::std_out> out_pipe.value(),
                      bp::std_err > err_pipe.value(), bp::start_dir = cwd.string(), group,
                      ChildLimits(request.output_limit), environment, bp::posix::use_vfork);
#else
    child = bp::child(bp::exe = request.program.string(), bp::args = request.args,
                      bp::std_in<bp::null, bp::std_out> out_pipe.value(),
                      bp::std_err > err_pipe.value(), bp::start_dir = cwd.string(), group,
                      ChildLimits(request.output_limit), environment);
#endif
    Started().insert(child.id());
    TrackGroup(child.id());  // the child leads its group
  } catch (const std::exception& e) {
    group.detach();
    return Status::IoError("cannot start " + request.program.string() + ": " + e.what());
  }
  const int pidfd = PidFdOpen(child.id());
  Watch(request, child.id(), pidfd, start)
      .Run(out_pipe.value().native_source(), err_pipe.value().native_source(), &out);
  if (pidfd >= 0) ::close(pidfd);

  std::error_code ec;
  child.wait(ec);
  ForgetGroup(child.id());
  group.detach();
  Forget(child.id());
  KillOrphans();  // what left the group and outlived the child
  out.duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  if (out.ending == RunOutput::Ending::kTimeout) return out;
  const int status = DecodeWaitStatus(child.native_exit_code());
  if (status < 0) {
    out.ending = RunOutput::Ending::kSignaled;
    out.signal = -status;
  } else {
    out.ending = RunOutput::Ending::kExited;
    out.exit_code = status;
  }
  return out;
}

Result<std::unique_ptr<BackgroundProcess>> BackgroundProcess::Start(
    const std::filesystem::path& program, const std::vector<std::string>& args) {
  bp::group group;
  const pid_t parent = ::getpid();
  // In the child before exec: ask for SIGTERM when the parent dies, and
  // exit if it already has (it may die between fork and prctl).
  auto die_with_parent = [parent](auto&) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
  };
  try {
    std::lock_guard<std::mutex> lock(SpawnMutex());
    bp::child child(bp::exe = program.string(), bp::args = args, bp::std_in < bp::null, group,
                    bp::extend::on_exec_setup = die_with_parent);
    Started().insert(child.id());
    return std::unique_ptr<BackgroundProcess>(
        std::make_unique<ChildProcess>(std::move(child), std::move(group)));
  } catch (const std::exception& e) {
    group.detach();
    return Status::IoError("cannot start " + program.string() + ": " + e.what());
  }
}

}  // namespace imgsweep
