// `imgsweep worker`: its binaries, where its cells run (a dense staged copy
// of the testdata, or the testdata as it lies), and the worker loop.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>

#include "cli/commands.h"
#include "cli/signals.h"
#include "cli/keys.h"
#include "worker/binaries.h"
#include "worker/cell_runner.h"
#include "worker/image_layout.h"
#include "worker/running_groups.h"
#include "worker/subprocess.h"
#include "worker/worker.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

constexpr auto kVersionCheckTimeout = std::chrono::seconds(30);

// Where a worker's cells run: its dense staged copy of the testdata (the
// default), or the testdata as it lies with the files that have holes.
struct LaidOut {
  fs::path root;
  std::vector<FileLayout> sparse;
  std::set<std::string> not_dense;
  std::map<std::string, std::string> digests;  // of the staged files
  std::shared_ptr<void> in_use;                // StagedTree::in_use: held while the worker runs
};

Result<LaidOut> LayOut(const fs::path& root, const std::string& host, const WorkerFlags& flags) {
  LaidOut out;
  if (flags.image_layout == "as-is") {
    Result<std::vector<FileLayout>> sparse = SparseFiles(root);
    if (!sparse.ok()) return sparse.status();
    spdlog::info("worker: cells run on {} as it lies; {} files there have holes", root.string(),
                 sparse.value().size());
    out.root = root;
    out.sparse = std::move(sparse).value();
    return out;
  }
  fs::path cache = flags.stage_dir;
  if (cache.empty()) {
    Result<fs::path> fallback = DefaultStageCache();
    if (!fallback.ok()) return fallback.status();
    cache = fallback.value();
  }
  Result<StagedTree> staged = StageDense(root, cache, host);
  if (!staged.ok()) return staged.status();
  spdlog::info("worker: cells run on a dense copy of {} at {}: {} files, {} copied now",
               root.string(), staged.value().root.string(), staged.value().files,
               staged.value().copied);
  for (const std::string& path : staged.value().not_dense) {
    spdlog::warn("worker: {} still has holes after staging at {}; its cells go to other workers",
                 path, staged.value().root.string());
  }
  out.root = staged.value().root;
  out.not_dense = std::move(staged.value().not_dense);
  out.digests = std::move(staged.value().digests);
  out.in_use = std::move(staged.value().in_use);
  return out;
}

}  // namespace

int WorkerCommand(const WorkerFlags& flags) {
  // Flags first: a --pin-cells that names a cpu it may not use starts nothing.
  // The budget is logged where it decides the slots (run's workers get theirs).
  const CpuBudget budget = flags.slots > 0 ? UsableCpus() : CellCpus();
  const unsigned slots = flags.slots > 0 ? flags.slots : budget.cpus;
  Result<std::vector<unsigned>> pinned = PinnedCpus(flags.pin_cells, budget, AffinityCpus(), slots);
  if (!pinned.ok()) return Fail(pinned.status());
  // A cell's descendant that leaves its process group comes back here when
  // orphaned, and dies with its cell.
  Status adopted = AdoptOrphans();
  if (!adopted.ok()) return Fail(adopted);
  // SIGTERM (an orchestrator stopping the pod) drains: no more cells, the
  // ones held finish and are acknowledged; a second signal exits at once,
  // and the cells running then end with it rather than outlive it.
  StopOnSignals(KillRunningGroups);
  std::error_code ec;
  const fs::path root = fs::canonical(flags.testdata, ec);
  if (ec || !fs::is_directory(root, ec)) {
    return Fail(Status::NotFound("testdata " + flags.testdata.string() + ": no such directory"));
  }
  Result<Binaries> installed = DiscoverBinaries(flags.binaries, kVersionCheckTimeout);
  if (!installed.ok()) return Fail(installed.status());
  for (const BrokenVersion& b : installed.value().broken) {
    spdlog::warn("worker: version {} cannot run here: {}; offering the others", b.name, b.reason);
  }
  WorkerOptions options;
  options.connect = flags.connect;
  options.host = flags.host.empty() ? HostName() : flags.host;
  options.name = flags.name.empty() ? options.host + "-" + std::to_string(::getpid()) : flags.name;
  options.slots = slots;
  options.slot_cpus = std::move(pinned).value();
  options.prefetch = flags.prefetch;
  for (const InstalledVersion& v : installed.value().working) options.versions.push_back(v.info);
  options.broken = installed.value().broken;
  Result<ClientSecurity> security = ClientSecurityOf(flags.curve_secret, flags.coordinator_key);
  if (!security.ok()) return Fail(security.status());
  options.security = security.value();
  if (!options.security.curve && !IsLoopbackEndpoint(flags.connect) && !flags.insecure) {
    return Fail(Status::InvalidInput(
        "refusing to connect to " + flags.connect +
        " in plain text: give --curve-secret and --coordinator-key (keys from `imgsweep keys "
        "generate`), or --insecure on a network you trust"));
  }
  options.give_up_after = std::chrono::seconds(flags.give_up_after_s);
  options.stop_requested = [] { return StopRequested() != 0; };
  options.health_file = flags.health_file;
  Result<LaidOut> laid_out = LayOut(root, options.host, flags);
  if (!laid_out.ok()) return Fail(laid_out.status());
  options.sparse = std::move(laid_out.value().sparse);
  auto runner = std::make_unique<CellRunner>(laid_out.value().root,
                                             std::move(installed.value().working), kKillGrace,
                                             std::size_t{flags.output_limit_mib} << 20);
  runner->RefuseLayoutOf(std::move(laid_out.value().not_dense));
  runner->KnowDigests(std::move(laid_out.value().digests));
  runner->PassEnvironment(flags.child_env);
  if (!flags.command_table.empty()) {
    Result<CommandTable> table = CommandTable::Load(flags.command_table);
    if (!table.ok()) return Fail(table.status());
    options.command_table = table.value().text();
    runner->UseCommandTable(std::move(table).value());
  }
  Worker worker(options, std::move(runner));
  Status st = worker.Run();
  return st.ok() ? kExitOk : Fail(st);
}

}  // namespace imgsweep
