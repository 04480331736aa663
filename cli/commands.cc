#include "cli/commands.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/keys.h"
#include "cli/metrics.h"
#include "cli/private_folder.h"
#include "cli/progress.h"
#include "cli/signals.h"
#include "coordinator/coordinator.h"
#include "protocol/atomic_file.h"
#include "tree/materializer.h"
#include "tree/report.h"
#include "tree/tree_check.h"
#include "protocol/sha256.h"
#include "protocol/version_name.h"
#include "worker/binaries.h"
#include "worker/cell_runner.h"
#include "worker/cpu_budget.h"
#include "worker/image_layout.h"
#include "worker/subprocess.h"
#include "worker/worker.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

using SteadyClock = std::chrono::steady_clock;

// How long local workers get to exit after the sweep says shutdown.
constexpr auto kWorkerExitWait = std::chrono::seconds(10);
// How often the progress line is redrawn on a terminal, or logged elsewhere.
constexpr auto kLiveProgressInterval = std::chrono::milliseconds(200);
constexpr auto kLoggedProgressInterval = std::chrono::milliseconds(10'000);

void PrintSummary(const SweepSummary& s, double seconds) {
  const std::size_t closed = s.closed();
  const std::string unsupported =
      s.unsupported == 0 ? std::string() : ", " + std::to_string(s.unsupported) + " unsupported (not run)";
  std::printf(
      "imgsweep: %zu cells: %zu exited 0, %zu exited non-zero, %zu signaled, %zu timed out, "
      "%zu failed%s; %zu run now, %zu already stored; %.1f s\n",
      s.cells, s.exited_zero, s.exited_nonzero, s.signaled, s.timeout, s.failed,
      unsupported.c_str(), s.ran_now, closed - std::min(closed, s.ran_now), seconds);
  for (const auto& [worker, cells] : s.by_worker) {
    std::printf("imgsweep:   %s ran %zu cells\n", worker.c_str(), cells);
  }
  for (const std::string& broken : s.broken_versions) {
    std::printf("imgsweep: broken version, left out: %s\n", broken.c_str());
  }
  if (s.rejected_frames + s.ignored_frames + s.refused_connections + s.discarded_results > 0) {
    std::printf(
        "imgsweep: turned away: %zu frames rejected, %zu ignored from peers cut off, %zu "
        "connections refused, %zu duplicate results discarded\n",
        s.rejected_frames, s.ignored_frames, s.refused_connections, s.discarded_results);
    for (const PeerRejections& p : s.rejections) {
      std::printf("imgsweep:   %s: %zu frames rejected%s\n", p.peer.c_str(), p.frames,
                  p.cut_off ? ", cut off" : "");
    }
  }
  if (s.workers_lost + s.late_results + s.infra_attempts > 0) {
    std::printf("imgsweep: faults: %zu workers lost, %zu infrastructure failures retried or "
                "failed, %zu results stored from an earlier lease\n",
                s.workers_lost, s.infra_attempts, s.late_results);
  }
  for (const std::string& conflict : s.digest_conflicts) {
    std::printf("imgsweep: binary conflict: %s\n", conflict.c_str());
  }
  for (const std::string& conflict : s.layout_conflicts) {
    std::printf("imgsweep: layout conflict: %s\n", conflict.c_str());
  }
}

// CURVE when the flags ask for it; plain text only where no other host can
// reach the socket, unless the user says --insecure.
Status ServerSecurityOf(const CoordinatorFlags& flags, ServerSecurity* security) {
  if (flags.curve_secret.empty() != flags.allow_workers.empty()) {
    return Status::InvalidInput("--curve-secret and --allow-workers go together");
  }
  if (!flags.curve_secret.empty()) {
    Result<CurveKeyPair> keys = LoadSecretKey(flags.curve_secret);
    if (!keys.ok()) return keys.status();
    Result<std::set<std::string>> allowed = LoadAllowedKeys(flags.allow_workers);
    if (!allowed.ok()) return allowed.status();
    security->curve = keys.value();
    security->allowed_clients = allowed.value();
    // Its own key too: `status --connect` with the coordinator's key (a
    // container's healthcheck) is the coordinator's holder asking.
    security->allowed_clients.insert(keys.value().public_key);
    spdlog::info("coordinator: CURVE on; {} worker keys allowed", allowed.value().size());
    return Status::Ok();
  }
  if (IsLoopbackEndpoint(flags.listen)) return Status::Ok();
  if (!flags.insecure) {
    return Status::InvalidInput(
        "refusing to listen on " + flags.listen +
        " without CURVE: give --curve-secret and --allow-workers (keys from `imgsweep keys "
        "generate`), or --insecure on a network you trust");
  }
  spdlog::warn("coordinator: listening on {} WITHOUT authentication (--insecure): anyone who "
               "reaches it can join the fleet and submit results",
               flags.listen);
  return Status::Ok();
}

// Runs the coordinator, then writes the tree. The exit code.
int SweepAndMaterialize(Coordinator& coordinator, Store& store, const fs::path& out,
                        const MaterializeOptions& options) {
  const SteadyClock::time_point start = SteadyClock::now();
  Result<SweepSummary> summary = coordinator.Run();
  if (!summary.ok()) return Fail(summary.status());
  PrintSummary(summary.value(), std::chrono::duration<double>(SteadyClock::now() - start).count());
  spdlog::info("coordinator: cpu {:.2f} s so far (this process, every thread)", MeasureUsage().own_cpu_seconds);
  if (summary.value().failed > 0 && summary.value().failed == summary.value().broken_cells) {
    // Only broken builds failed: the tree holds every other version.
    ErrorLine(std::to_string(summary.value().failed) +
              " cells failed because their version cannot run; the tree leaves those versions "
              "out");
    MaterializeOptions partial = options;
    partial.allow_partial = true;
    const int code = WriteTree(store, out, partial);
    return code == kExitOk ? kExitFailed : code;
  }
  if (summary.value().failed > 0) {
    if (!options.allow_partial) {
      ErrorLine(std::to_string(summary.value().failed) +
                " cells failed on every attempt (infrastructure); no tree written "
                "(--allow-partial writes the rest)");
      return kExitFailed;
    }
    ErrorLine(std::to_string(summary.value().failed) +
              " cells failed on every attempt (infrastructure)");
    const int code = WriteTree(store, out, options);
    return code == kExitOk ? kExitFailed : code;
  }
  return WriteTree(store, out, options);
}

}  // namespace

// Writes the tree and says what it holds. The exit code.
int WriteTree(Store& store, const fs::path& out, const MaterializeOptions& options) {
  Result<MaterializeSummary> written = Materialize(store, out, options);
  if (!written.ok()) return Fail(written.status());
  const MaterializeSummary& s = written.value();
  std::printf("imgsweep: tree at %s (%zu files written, %zu unchanged, %zu stale removed)\n",
              out.c_str(), s.files_written, s.files_unchanged, s.stale_removed);
  for (const TypeProfiles& t : s.types) {
    std::printf("imgsweep:   %s: %zu %s over %zu versions", t.type.c_str(), t.profiles,
                t.profiles == 1 ? "profile" : "profiles", t.versions);
    if (!t.left_out.empty()) {
      std::string left;
      for (const std::string& v : t.left_out) left += (left.empty() ? "" : ", ") + v;
      std::printf(" (left out, without every image: %s)", left.c_str());
    }
    std::printf("\n");
  }
  if (s.cells_missing > 0) {
    ErrorLine(std::to_string(s.cells_missing) +
              " cells have no outcome; their files are not in the tree");
  }
  return kExitOk;
}


namespace {

// The observers a sweep's watchers asked for; they outlive the coordinator's Run.
struct Watchers {
  std::unique_ptr<ProgressPrinter> progress;
  std::unique_ptr<MetricsServer> metrics;
};

// Progress lines unless --quiet (live on a terminal, else a log line every
// 10 s), and metrics when asked. Prints where the metrics are.
Status StartWatchers(const WatchFlags& watch, CoordinatorOptions* options, Watchers* out) {
  if (!watch.metrics.empty()) {
    Result<std::unique_ptr<MetricsServer>> metrics = MetricsServer::Start(watch.metrics);
    if (!metrics.ok()) return metrics.status();
    out->metrics = std::move(metrics).value();
    options->observers.push_back(out->metrics.get());
    std::printf("imgsweep: metrics at %s\n", out->metrics->url().c_str());
    std::fflush(stdout);
  }
  if (!watch.quiet) {
    const bool live = ::isatty(::fileno(stderr)) == 1 && watch.log_format == "text";
    out->progress = std::make_unique<ProgressPrinter>(
        stderr, live, live ? kLiveProgressInterval : kLoggedProgressInterval);
    options->observers.push_back(out->progress.get());
  }
  return Status::Ok();
}

// The coordinator's fault handling from the flags; kInvalidInput naming a
// digest flag that is not VERSION=SHA256.
Result<CoordinatorOptions> OptionsOf(const FaultFlags& faults) {
  CoordinatorOptions options;
  options.heartbeat = std::chrono::milliseconds(faults.heartbeat_ms);
  options.liveness = faults.liveness;
  options.max_attempts = faults.max_attempts;
  options.audit_percent = faults.audit_percent;
  options.force = faults.force;
  Result<ImageLayout> layout = ParseImageLayout(faults.image_layout);
  if (!layout.ok()) return layout.status();
  options.image_layout = layout.value();
  for (const std::string& pin : faults.binary_digests) {
    const std::size_t eq = pin.find('=');
    const std::string version = pin.substr(0, eq);
    const std::string digest = eq == std::string::npos ? "" : pin.substr(eq + 1);
    if (eq == std::string::npos || !IsVersionName(version) || !IsSha256Hex(digest)) {
      return Status::InvalidInput("--binary-digest " + pin +
                                  ": expected VERSION=SHA256 (64 lowercase hex digits)");
    }
    options.binary_digests[version] = digest;
  }
  return options;
}

// The coordinator refuses results over the limit the workers keep to, and
// frames over what such a result needs (both streams, and room for the
// rest), unless told a frame limit of its own.
void SetOutputLimit(unsigned output_limit_mib, unsigned max_frame_mib, CoordinatorOptions* options) {
  options->output_limit_bytes = std::size_t{output_limit_mib} << 20;
  options->max_frame_bytes = max_frame_mib > 0
                                 ? std::size_t{max_frame_mib} << 20
                                 : std::min(kMaxFrameBytes, 2 * options->output_limit_bytes + (1u << 20));
}

// On SIGTERM or SIGINT the coordinator stores what it received and granted,
// tells its workers to go, and ends the sweep unfinished; a second signal
// ends the process at once. The same command line resumes.
void InterruptOnSignals(CoordinatorOptions* options) {
  StopOnSignals();
  options->keep_going = [then = std::move(options->keep_going)]() -> Status {
    if (const int signal = StopRequested(); signal != 0) {
      return Status::IoError(std::string("interrupted by ") + (signal == SIGINT ? "SIGINT" : "SIGTERM") +
                             ": every result received is stored; the same command line resumes "
                             "the sweep");
    }
    return then ? then() : Status::Ok();
  };
}

// One cell per cpu, each worker's slots kept to cpus of their own
// (worker/cpu_budget.h): on scripts/bench's workload 0.83x the bare
// spawner's time, against 0.91x for two unpinned cells per cpu in the same
// rounds (docs/BENCHMARKS.md, tenth pass). Where the slots cannot be
// pinned (a quota, --pin-cells off, workers that do not divide the cpus),
// two per cpu: a map cell of a few ms spends part of its life in exec, in
// the loader and in being reaped, and one unpinned cell per cpu left the
// cores idle (1.23x against 1.12x). Its cells are short, so the wait this
// adds is far inside any timeout. A `worker` on its own keeps one per cpu:
// its host may run cells that are not short.
constexpr unsigned kLocalCellsPerCpu = 2;
// Four cells waiting per slot: a worker then reports its finished cells
// several to a frame (worker.cc, HeldResults) instead of one frame, one
// credit and one round of the coordinator per cell, which cut the
// coordinator's cpu by a third on scripts/bench's workload. The end of
// the sweep waits at most for four short cells per slot.
constexpr unsigned kLocalPrefetchPerSlot = 4;

// Runs the sweep's open cells with worker processes of this host over a
// private ipc socket, then writes the tree. The exit code.
int RunLocally(PreparedSweep& sweep, const LocalWorkers& local, CoordinatorOptions options,
               const WatchFlags& watch, const fs::path& out, const MaterializeOptions& tree) {
  Watchers watchers;
  Status watching = StartWatchers(watch, &options, &watchers);
  if (!watching.ok()) return Fail(watching);
  // Local workers come and go with this process: when all of them have
  // exited before the sweep is done, nothing more can happen.
  std::vector<std::unique_ptr<BackgroundProcess>> workers;
  Result<std::unique_ptr<PrivateFolder>> socket_dir = PrivateFolder::Make();
  if (!socket_dir.ok()) return Fail(socket_dir.status());
  options.listen = "ipc://" + (socket_dir.value()->path() / "coordinator").string();
  SetOutputLimit(local.output_limit_mib, 0, &options);
  // The local workers share one binaries tree: a build broken for one is
  // broken for all, so a second report (if there is a second worker) is
  // enough to give up on it.
  options.broken_reports_to_give_up = std::min<std::size_t>(2, local.workers);
  options.keep_going = [&workers]() -> Status {
    for (auto& w : workers) {
      if (!w->WaitFor(std::chrono::milliseconds(0)).ok()) return Status::Ok();
    }
    if (workers.empty()) return Status::Ok();
    return Status::IoError("every local worker exited before the sweep was done (see above)");
  };
  InterruptOnSignals(&options);
  Result<std::unique_ptr<Coordinator>> coordinator =
      Coordinator::Create(options, sweep.plan, sweep.store.get());
  if (!coordinator.ok()) return Fail(coordinator.status());

  const SharedCpus shared = ShareCpus(CellCpus(), AffinityCpus(), local.workers, local.slots,
                                      local.pin_cells == "auto", kLocalCellsPerCpu);
  const unsigned slots = shared.slots;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);  // ps then names the binary
  if (ec) return Fail(Status::FromErrno("cannot find this program's path", ec.value()));
  // A finished store needs no worker: the sweep ends at once.
  const unsigned to_start = coordinator.value()->open_cells() > 0 ? local.workers : 0;
  for (unsigned i = 1; i <= to_start; ++i) {
    std::vector<std::string> args = {"worker",
                                     "--connect",
                                     coordinator.value()->endpoint(),
                                     "--binaries",
                                     local.binaries.string(),
                                     "--testdata",
                                     local.testdata.string(),
                                     "--slots",
                                     std::to_string(slots),
                                     "--prefetch",
                                     std::to_string(slots * kLocalPrefetchPerSlot),
                                     "--output-limit-mib",
                                     std::to_string(local.output_limit_mib),
                                     "--name",
                                     "local-" + std::to_string(i),
                                     "--pin-cells",
                                     shared.PinCellsOf(i - 1)};
    if (options.image_layout == ImageLayout::kAsIs) args.insert(args.end(), {"--image-layout", "as-is"});
    if (!local.stage_dir.empty()) args.insert(args.end(), {"--stage-dir", local.stage_dir.string()});
    if (!local.command_table.empty()) {
      args.insert(args.end(), {"--command-table", local.command_table.string()});
    }
    if (local.quiet) args.insert(args.begin(), "--quiet");
    if (local.log_format != "text") args.insert(args.begin(), {"--log-format", local.log_format});
    Result<std::unique_ptr<BackgroundProcess>> worker = BackgroundProcess::Start(self, args);
    if (!worker.ok()) return Fail(worker.status());
    workers.push_back(std::move(worker).value());
  }
  const int code = SweepAndMaterialize(*coordinator.value(), *sweep.store, out, tree);
  for (auto& w : workers) {
    if (!w->WaitFor(kWorkerExitWait).ok()) w->Stop(kKillGrace);
  }
  return code;
}

volatile std::sig_atomic_t g_reload_keys = 0;
extern "C" void AskToReloadKeys(int) { g_reload_keys = 1; }

// On SIGHUP the coordinator reads --allow-workers again: a key taken out of
// the folder is revoked mid-sweep. A folder that cannot be read keeps the
// list before, and says so.
void ReloadKeysOnSighup(const fs::path& allow_workers, CoordinatorOptions* options) {
  struct sigaction action {};
  action.sa_handler = AskToReloadKeys;  // no SA_RESTART: the poll wakes up
  ::sigemptyset(&action.sa_mask);
  ::sigaction(SIGHUP, &action, nullptr);
  const std::string own = options->security.curve ? options->security.curve->public_key : "";
  options->allowed_keys_update = [allow_workers, own]() -> std::optional<std::set<std::string>> {
    if (g_reload_keys == 0) return std::nullopt;
    g_reload_keys = 0;
    Result<std::set<std::string>> keys = LoadAllowedKeys(allow_workers);
    if (!keys.ok()) {
      spdlog::error("coordinator: SIGHUP: keeping the allowed keys as they were: {}",
                    keys.status().message());
      return std::nullopt;
    }
    if (!own.empty()) keys.value().insert(own);
    return std::move(keys).value();
  };
}

// Serves the sweep's open cells to workers that connect, then writes the
// tree. `options` has the security already. The exit code.
int Serve(PreparedSweep& sweep, const CoordinatorFlags& flags, CoordinatorOptions options) {
  options.listen = flags.listen;
  Watchers watchers;
  Status watching = StartWatchers(flags.watch, &options, &watchers);
  if (!watching.ok()) return Fail(watching);
  SetOutputLimit(flags.output_limit_mib, flags.max_frame_mib, &options);
  if (options.security.curve) ReloadKeysOnSighup(flags.allow_workers, &options);
  InterruptOnSignals(&options);
  Result<std::unique_ptr<Coordinator>> coordinator =
      Coordinator::Create(options, sweep.plan, sweep.store.get());
  if (!coordinator.ok()) return Fail(coordinator.status());
  // Scripts that start workers read the file or this line (the port may have
  // been "*"); the file comes first, so whoever saw the line finds it.
  if (!flags.endpoint_file.empty()) {
    bool written = false;
    Status st =
        WriteFileAtomically(flags.endpoint_file, coordinator.value()->endpoint() + "\n", &written);
    if (!st.ok()) return Fail(st);
  }
  std::printf("imgsweep: listening on %s\n", coordinator.value()->endpoint().c_str());
  std::fflush(stdout);
  return SweepAndMaterialize(*coordinator.value(), *sweep.store, flags.out, flags.tree);
}

}  // namespace

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

CpuBudget CellCpus() {
  CpuBudget budget = UsableCpus();
  spdlog::info("{} cpus for cells, decided by {}", budget.cpus, budget.decided_by);
  return budget;
}

int RunCommand(const RunFlags& flags) {
  if (flags.local.workers == 0) return Fail(Status::InvalidInput("--workers must be at least 1"));
  Result<CoordinatorOptions> options = OptionsOf(flags.faults);
  if (!options.ok()) return Fail(options.status());
  Result<std::vector<std::string>> versions = ListVersions(flags.local.binaries);
  if (!versions.ok()) return Fail(versions.status());
  SweepInputs inputs = flags.inputs;
  inputs.versions = versions.value();
  inputs.probe_binaries = flags.local.binaries;
  Result<PreparedSweep> sweep = PrepareSweep(inputs);
  if (!sweep.ok()) return Fail(sweep.status());
  // The local binaries are the sweep's: their digests decide which stored
  // outcomes are still current, before any worker (or qemu-img) starts.
  Result<std::map<std::string, std::string>> digests =
      LocalDigests(*sweep.value().store, flags.local.binaries, versions.value());
  if (!digests.ok()) return Fail(digests.status());
  for (const auto& [version, digest] : digests.value()) {
    options.value().binary_digests.try_emplace(version, digest);  // a --binary-digest wins
  }
  LocalWorkers local = flags.local;
  local.testdata = flags.inputs.testdata;
  local.command_table = flags.inputs.command_table;
  return RunLocally(sweep.value(), local, options.value(), flags.watch, flags.out, flags.tree);
}

int CoordinatorCommand(const CoordinatorFlags& flags) {
  // Flags first: a refused start creates no store.
  Result<CoordinatorOptions> options = OptionsOf(flags.faults);
  if (!options.ok()) return Fail(options.status());
  options.value().listen = flags.listen;
  Status st = ServerSecurityOf(flags, &options.value().security);
  if (!st.ok()) return Fail(st);
  SweepInputs inputs = flags.inputs;
  if (!flags.binaries.empty()) {
    Result<std::vector<std::string>> versions = ListVersions(flags.binaries);
    if (!versions.ok()) return Fail(versions.status());
    inputs.versions = versions.value();
    inputs.probe_binaries = flags.binaries;
  }
  Result<PreparedSweep> sweep = PrepareSweep(inputs);
  if (!sweep.ok()) return Fail(sweep.status());
  return Serve(sweep.value(), flags, options.value());
}

int RerunCommand(const RerunFlags& flags) {
  const bool serve = !flags.serve.listen.empty();
  if (!serve && (flags.local.binaries.empty() || flags.local.testdata.empty())) {
    return Fail(Status::InvalidInput(
        "rerun: give --binaries and --testdata (local workers) or --listen (remote workers)"));
  }
  if (!serve && flags.local.workers == 0) {
    return Fail(Status::InvalidInput("--workers must be at least 1"));
  }
  Result<CoordinatorOptions> options = OptionsOf(flags.serve.faults);
  if (!options.ok()) return Fail(options.status());
  if (serve) {
    options.value().listen = flags.serve.listen;
    Status st = ServerSecurityOf(flags.serve, &options.value().security);
    if (!st.ok()) return Fail(st);
  }
  Result<std::unique_ptr<Store>> store = Store::Open(flags.db, Store::Mode::kMustExist);
  if (!store.ok()) return Fail(store.status());
  Result<Plan> plan = LoadPlan(*store.value());
  if (!plan.ok()) return Fail(plan.status());
  Result<std::size_t> reopened = ReopenCells(*store.value(), plan.value(), flags.selection);
  if (!reopened.ok()) return Fail(reopened.status());
  std::printf("imgsweep: %zu cells put back in the queue\n", reopened.value());
  std::fflush(stdout);
  PreparedSweep sweep{std::move(plan).value(), std::move(store).value()};
  if (serve) {
    CoordinatorFlags served = flags.serve;
    served.out = flags.out;
    served.output_limit_mib = flags.local.output_limit_mib;
    return Serve(sweep, served, options.value());
  }
  return RunLocally(sweep, flags.local, options.value(), flags.serve.watch, flags.out,
                    flags.serve.tree);
}

}  // namespace imgsweep
