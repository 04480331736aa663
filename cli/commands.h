// The subcommands of `imgsweep`, each a function of its parsed flags that
// returns the process's exit code (see README.md: 0 done, 1 the sweep or the
// machine failed, 2 bad input).
#ifndef IMGSWEEP_CLI_COMMANDS_H_
#define IMGSWEEP_CLI_COMMANDS_H_

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tree/materializer.h"
#include "sweep/plan.h"
#include "tree/profile_report.h"
#include "tree/tree_diff.h"
#include "sweep/sweep_state.h"
#include "protocol/status.h"
#include "storage/store.h"
#include "worker/cpu_budget.h"

namespace imgsweep {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitBadInput = 2;

// Prints "imgsweep: <message>" on stderr; the exit code the Status calls for.
int Fail(const Status& status);

// An error for people: the line "imgsweep: <what>" on stderr, or under
// --log-format json an error record of the JSON log.
void ErrorLine(const std::string& what);
void SetJsonErrors(bool on);

// What a cell's process gets between SIGTERM and SIGKILL.
inline constexpr auto kKillGrace = std::chrono::milliseconds(500);
// This host's name; "unknown-host" when it has none.
std::string HostName();
// The cpus this host's cells may use: its cores, cut by the CPU affinity
// and a cgroup CPU quota (worker/cpu_budget.h); logs which decided.
CpuBudget CellCpus();

struct SweepInputs {
  std::filesystem::path manifest;
  std::filesystem::path testdata;  // empty: not checked here (remote workers)
  std::vector<std::string> versions;
  std::chrono::milliseconds timeout{30'000};
  std::filesystem::path db;
  std::vector<std::string> commands = {"map"};  // of the command table
  std::filesystem::path command_table;          // empty: the built-in one
  // The binaries tree whose newest version sizes the images, for output
  // types with windows (they also need `testdata`).
  std::filesystem::path probe_binaries;
};

// Loads and checks the manifest (and that every safe-tier image is under the
// testdata root, when given), makes the plan, opens the store and records
// the plan in it (AdoptPlan: a changed sweep keeps every stored record, and
// reuses the outcomes whose inputs are unchanged).
struct PreparedSweep {
  Plan plan;
  std::unique_ptr<Store> store;
};
Result<PreparedSweep> PrepareSweep(const SweepInputs& inputs);

// The sha256 of each version's binary under `binaries` (DigestedBinary),
// as its workers compute it. Like a build tool, a file whose device, inode,
// size, modification and change times are those recorded in `store` when
// it was last hashed is not read again; one file behind several versions
// (links) is read once.
Result<std::map<std::string, std::string>> LocalDigests(Store& store,
                                                        const std::filesystem::path& binaries,
                                                        const std::vector<std::string>& versions);

// How a running sweep is watched.
struct WatchFlags {
  bool quiet = false;               // no progress lines
  std::string log_format = "text";  // or "json"; passed on to local workers
  std::string metrics;              // HOST:PORT to serve Prometheus metrics on; empty: none
};

// How the coordinator meets faults (see coordinator.h).
struct FaultFlags {
  unsigned heartbeat_ms = static_cast<unsigned>(kDefaultHeartbeat.count());
  unsigned liveness = kDefaultLiveness;
  unsigned max_attempts = 3;
  std::vector<std::string> binary_digests;  // "VERSION=SHA256", the right bytes
  bool force = false;                       // run every cell, stored or not
  std::string image_layout = "dense";       // or "as-is" (coordinator/image_layouts.h)
  unsigned audit_percent = 0;               // cells run on a second host and compared
};

// `run`'s (and `rerun`'s) worker processes on this host.
struct LocalWorkers {
  std::filesystem::path binaries;
  std::filesystem::path testdata;
  // One: workers on one host share its cores, and two of them each keep to
  // a version of their own, so their cells run two builds at once, whose
  // loaders and libraries compete for the caches. One worker with all the
  // slots runs one build at a time: at the same four cells at once, a
  // quarter of scripts/bench's workload took 5% less wall and its cells 5%
  // less cpu (docs/BENCHMARKS.md, ninth pass).
  unsigned workers = 1;
  unsigned slots = 0;  // per worker; 0: cores divided among the workers
  std::string pin_cells = "auto";  // or "off" (worker/cpu_budget.h)
  unsigned output_limit_mib = 64;
  std::filesystem::path stage_dir;  // empty: DefaultStageCache()
  bool quiet = false;  // passed on to the local workers
  std::string log_format = "text";
  std::filesystem::path command_table;  // empty: the built-in one
};

struct RunFlags {
  SweepInputs inputs;  // inputs.testdata: the local workers' too
  LocalWorkers local;
  std::filesystem::path out;
  MaterializeOptions tree;
  FaultFlags faults;
  WatchFlags watch;
};
// Writes the tree from `store` and says what it holds; the exit code.
// Shared by the commands that end in a tree.
int WriteTree(Store& store, const std::filesystem::path& out, const MaterializeOptions& options);

int RunCommand(const RunFlags& flags);

struct CoordinatorFlags {
  SweepInputs inputs;
  std::string listen;
  std::filesystem::path binaries;  // or inputs.versions
  std::filesystem::path out;
  std::filesystem::path endpoint_file;
  MaterializeOptions tree;
  std::filesystem::path curve_secret;   // with allow_workers: CURVE
  std::filesystem::path allow_workers;  // folder of worker *.pub files
  bool insecure = false;                // plain text on a non-loopback address
  unsigned max_frame_mib = 0;           // 0: room for a result at the output limit
  unsigned output_limit_mib = 64;       // per stream of a result
  FaultFlags faults;
  WatchFlags watch;
};
int CoordinatorCommand(const CoordinatorFlags& flags);

// Puts chosen cells of a stored sweep back in the queue, runs them (and any
// others without an outcome) with local workers or, given `serve.listen`,
// workers on other hosts, then rewrites the tree and its profiles.
struct RerunFlags {
  std::filesystem::path db;
  std::filesystem::path out;
  RerunSelection selection;
  LocalWorkers local;      // when serve.listen is empty
  CoordinatorFlags serve;  // listen, endpoint file, keys, tree, faults
};
int RerunCommand(const RerunFlags& flags);

// Prints the stored sweep's cells by state and outcome, per shard, and the
// failed ones with why.
int StatusCommand(const std::filesystem::path& db, bool every_cell, bool json);

// Asks a running coordinator how its sweep goes: per worker and per shard;
// the coordinator's JSON as it is with `json`.
struct LiveStatusFlags {
  std::string connect;
  bool json = false;
  std::filesystem::path curve_secret;     // with coordinator_key: CURVE
  std::filesystem::path coordinator_key;
};
int LiveStatusCommand(const LiveStatusFlags& flags);

struct WorkerFlags {
  std::string connect;
  std::filesystem::path binaries;
  std::filesystem::path testdata;
  unsigned slots = 0;  // 0: the number of cores
  std::string pin_cells = "auto";  // "off", or cpus: "0,1" (worker/cpu_budget.h)
  unsigned prefetch = 0;  // 0: one per slot
  std::string name;
  std::string host;                       // empty: the host's name
  std::filesystem::path curve_secret;     // with coordinator_key: CURVE
  std::filesystem::path coordinator_key;  // the coordinator's .pub file
  bool insecure = false;                  // plain text to a non-loopback coordinator
  std::vector<std::string> child_env;     // variables passed on to cells
  unsigned output_limit_mib = 64;         // per stream of a cell
  unsigned give_up_after_s = 600;         // without a coordinator
  std::filesystem::path health_file;      // fresh while welcomed
  std::string image_layout = "dense";     // or "as-is": run on the checkout as it lies
  std::filesystem::path stage_dir;        // dense: where the staged copy goes (empty: default)
  std::filesystem::path command_table;    // empty: the built-in one
};
int WorkerCommand(const WorkerFlags& flags);

// `commit`: the data commit of a sweep's tree in the testdata repository.
struct CommitFlags {
  std::filesystem::path db;
  std::filesystem::path repo;
  std::filesystem::path tree = "expected-outputs";  // inside the repository
  bool provenance = false;  // the tree was written with --provenance
};
int CommitCommand(const CommitFlags& flags);

// `diff`: what the store's tree changes for the consumers, against a
// repository's tree at a commit (`repo`) or a tree on disk (`out`).
struct DiffFlags {
  std::filesystem::path db;
  std::filesystem::path repo;                       // with rev and tree
  std::string rev = "HEAD";
  std::filesystem::path tree = "expected-outputs";  // inside the repository
  std::filesystem::path out;                        // or a tree on disk
  std::string output_type;                          // empty: every swept type
  bool json = false;
  bool allow_partial = false;
  std::size_t max_named = 20;  // names per list in words
};
int DiffCommand(const DiffFlags& flags);

// The swept `types` of the tree `made` (a store's), against those of
// `tree` (relative to the top of the repository at `repo_dir`) at commit
// `rev`, extracted below `scratch`. A commit without the tree gives every
// type as new.
Result<std::vector<TypeDiff>> ChangesSinceCommit(const std::filesystem::path& repo_dir,
                                                 const std::string& rev,
                                                 const std::filesystem::path& tree,
                                                 const std::vector<std::string>& types,
                                                 const std::filesystem::path& made,
                                                 const std::filesystem::path& scratch);

// Writes NAME.key (secret, 0600) and NAME.pub.
int KeysGenerateCommand(const std::filesystem::path& base);

int MaterializeCommand(const std::filesystem::path& db, const std::filesystem::path& out,
                       const MaterializeOptions& options);

// Checks a tree on disk against the contract; 1 when it has violations.
int ValidateCommand(const std::filesystem::path& out);

// Writes the stored sweep as one self-contained HTML page.
int ReportCommand(const std::filesystem::path& db, const std::filesystem::path& out);

// Prints why the profiles split where they do.
int ProfilesCommand(const std::filesystem::path& db, const ReportOptions& options);

}  // namespace imgsweep

#endif  // IMGSWEEP_CLI_COMMANDS_H_
