// imgsweep: one binary, eleven subcommands. Flags are parsed here (the
// offline commands' in offline_flags.cc) and nothing else; each command
// lives in the imgsweep_cli library.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "cli/flags.h"
#include "protocol/messages.h"

namespace {

using imgsweep::flags::AddOffline;
using imgsweep::flags::AddTreeFlags;
using imgsweep::flags::Command;
using imgsweep::kExitBadInput;
using imgsweep::kExitOk;

constexpr const char* kExitCodes =
    "\nExit codes: 0 done (every cell has an outcome, the tree is written); 1 the sweep or the "
    "machine failed (cells failed on every attempt, a store or I/O error, validate found "
    "violations); 2 bad input (flags, manifest, binaries tree, a store "
    "without every outcome and no --allow-partial).";

std::vector<std::string> SplitList(const std::string& list) {
  std::vector<std::string> versions;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t end = std::min(list.find(',', start), list.size());
    if (end > start) versions.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return versions;
}

void AddTimeout(CLI::App* app, double* seconds) {
  app->add_option("--timeout", *seconds, "Per-cell deadline in seconds (default 30, at most a day)")
      ->check(CLI::Range(0.001, 86400.0));
}

// Which commands of which table a sweep plans.
void AddCommandFlags(CLI::App* app, imgsweep::SweepInputs* inputs) {
  app->add_option_function<std::string>(
      "--commands", [inputs](const std::string& list) { inputs->commands = SplitList(list); },
      "Commands of the command table to sweep, comma-separated (default: map)");
  app->add_option("--command-table", inputs->command_table,
                  "A command table file like commands/commands.json (default: the built-in "
                  "one); local workers get it too, remote ones need it with --command-table");
}

void AddImageLayout(CLI::App* app, std::string* layout) {
  app->add_option("--image-layout", *layout,
                  "dense (default): cells run on a staged copy of each image with every byte "
                  "allocated, as in a git checkout, so `map` does not depend on the host; "
                  "as-is: on the testdata as it lies, one layout per image across the fleet")
      ->check(CLI::IsMember({"dense", "as-is"}));
}

void AddStageDir(CLI::App* app, std::filesystem::path* dir) {
  app->add_option("--stage-dir", *dir,
                  "Where workers stage the dense copies (default "
                  "$XDG_CACHE_HOME/imgsweep/staged or ~/.cache/imgsweep/staged)");
}

void AddFaultFlags(CLI::App* app, imgsweep::FaultFlags* faults) {
  app->add_option("--heartbeat-ms", faults->heartbeat_ms,
                  "Heartbeat interval both ways, in ms (default 1000)")
      ->check(CLI::Range(10, 600'000));
  app->add_option("--liveness", faults->liveness,
                  "Heartbeats missed in a row before a worker is lost (default 3)")
      ->check(CLI::Range(2, 1000));
  app->add_option("--max-attempts", faults->max_attempts,
                  "Attempts a cell gets when they fail for infrastructure reasons (default 3)")
      ->check(CLI::Range(1, 100));
  app->add_option("--binary-digest", faults->binary_digests,
                  "VERSION=SHA256: the right bytes of a version's qemu-img when workers differ "
                  "(repeatable)");
  app->add_flag("--force", faults->force,
                "Run every cell again. Without it a stored outcome is reused while its inputs "
                "(binary and image sha256, image layout, output type, argv, timeout) are "
                "unchanged");
  AddImageLayout(app, &faults->image_layout);
}

void AddMetrics(CLI::App* app, imgsweep::WatchFlags* watch) {
  app->add_option("--metrics", watch->metrics,
                  "Serve Prometheus metrics on HOST:PORT (path /metrics; port 0 picks one, "
                  "printed at start)");
}

// A log line's message as the inside of a JSON string.
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (const char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        dest.push_back('\\');
        dest.push_back(c);
      } else if (u < 0x20) {
        const char escaped[] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 15]};
        dest.append(escaped, escaped + sizeof escaped);
      } else {
        dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<JsonEscapedMessage>();
  }
};

void AddOutputLimit(CLI::App* app, unsigned* mib) {
  app->add_option("--output-limit-mib", *mib,
                  "Bytes a cell may print per stream, in MiB (default 64); beyond it the "
                  "process is killed and the attempt fails with output-limit")
      ->check(CLI::Range(1, 255));  // both streams fit one frame of at most 512 MiB
}

void AddLocalWorkerFlags(CLI::App* app, imgsweep::LocalWorkers* local) {
  app->add_option("--workers", local->workers,
                  "Local worker processes (default 1: one per host runs one build at a time)")
      ->check(CLI::Range(1, 256));
  app->add_option("--slots", local->slots,
                  "Cells at once per worker (default: 1 per usable cpu, divided among the "
                  "workers, or 2 where --pin-cells cannot keep each to a cpu)")
      ->check(CLI::Range(1, 4096));
  app->add_option("--pin-cells", local->pin_cells,
                  "auto: keep each slot's cells to a cpu of its own when the slots divide the "
                  "cpus and no CPU quota decides them (default); off: let them run anywhere")
      ->check(CLI::IsMember({"auto", "off"}));
  AddOutputLimit(app, &local->output_limit_mib);
  AddStageDir(app, &local->stage_dir);
}

// What a coordinator serving remote workers takes beyond its sweep.
void AddServeFlags(CLI::App* app, imgsweep::CoordinatorFlags* coord) {
  app->add_option("--endpoint-file", coord->endpoint_file,
                  "Write the bound endpoint here once listening");
  AddTreeFlags(app, &coord->tree);
  AddFaultFlags(app, &coord->faults);
  app->add_option("--audit", coord->faults.audit_percent,
                  "Percent of cells (chosen by key) run again on a worker of another host and "
                  "compared byte for byte; a cell whose hosts differ waits for a third "
                  "(default 0; needs workers on two hosts or more)")
      ->check(CLI::Range(0, 100));
  AddMetrics(app, &coord->watch);
  app->add_option("--curve-secret", coord->curve_secret,
                  "This coordinator's key file (NAME.key of `imgsweep keys generate`): "
                  "workers must use CURVE");
  app->add_option("--allow-workers", coord->allow_workers,
                  "Folder of the workers' public keys (*.pub) admitted with CURVE");
  app->add_flag("--insecure", coord->insecure,
                "Listen on a non-loopback address without CURVE (trusted networks only)");
  app->add_option("--max-frame-mib", coord->max_frame_mib,
                  "Largest frame a peer may send, in MiB (default: room for a result at the "
                  "output limit, 129 for 64); a peer that sends more is disconnected")
      ->check(CLI::Range(1, 512));
}

// What every subcommand sees of the global flags, once parsed.
struct Globals {
  bool quiet = false;
  std::string log_format = "text";
};


imgsweep::WatchFlags WatchOf(const Globals& g, imgsweep::WatchFlags w) {
  w.quiet = g.quiet;
  w.log_format = g.log_format;
  return w;
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<long>(seconds * 1000));
}

Command AddRun(CLI::App& app, const Globals& g) {
  auto run = std::make_shared<imgsweep::RunFlags>();
  auto timeout = std::make_shared<double>(30);
  CLI::App* cmd = app.add_subcommand(
      "run",
      "Coordinator plus N local worker processes over a private ZeroMQ socket: the sweep "
      "(of --commands, default map), then the tree.\nExample: imgsweep run --binaries ~/.cache/imgsweep/qemu-img-binaries "
      "--testdata testdata --manifest testdata/manifest.json --out expected-outputs");
  cmd->add_option("--binaries", run->local.binaries, "qemu-img binaries tree (<DIR>/x86_64/<version>)")
      ->required();
  cmd->add_option("--testdata", run->inputs.testdata, "Testdata root the manifest's paths are under")
      ->required();
  cmd->add_option("--manifest", run->inputs.manifest, "manifest.json")->required();
  cmd->add_option("--out", run->out, "Where the expected-outputs tree is written")->required();
  AddCommandFlags(cmd, &run->inputs);
  run->inputs.db = "imgsweep.db";
  cmd->add_option("--db", run->inputs.db, "RocksDB store (default ./imgsweep.db)");
  AddLocalWorkerFlags(cmd, &run->local);
  AddTimeout(cmd, timeout.get());
  AddTreeFlags(cmd, &run->tree);
  AddFaultFlags(cmd, &run->faults);
  AddMetrics(cmd, &run->watch);
  return {cmd, [run, timeout, &g] {
            run->local.quiet = g.quiet;
            run->local.log_format = g.log_format;
            run->watch = WatchOf(g, run->watch);
            run->inputs.timeout = Millis(*timeout);
            return imgsweep::RunCommand(*run);
          }};
}

Command AddCoordinator(CLI::App& app, const Globals& g) {
  auto coord = std::make_shared<imgsweep::CoordinatorFlags>();
  auto timeout = std::make_shared<double>(30);
  auto versions = std::make_shared<std::string>();
  CLI::App* cmd =
      app.add_subcommand("coordinator",
                         "Serves a sweep to workers on other hosts, then writes the tree.\n"
                         "Example: imgsweep coordinator --listen tcp://0.0.0.0:5555 --manifest "
                         "m.json --out tree --db sweep.db --versions 7.2.0,10.0.2 "
                         "--curve-secret keys/coordinator.key --allow-workers keys/workers");
  cmd->add_option("--listen", coord->listen,
                  "ZeroMQ endpoint, e.g. tcp://127.0.0.1:5555 (port * picks a free one)")
      ->required();
  cmd->add_option("--manifest", coord->inputs.manifest, "manifest.json")->required();
  cmd->add_option("--out", coord->out, "Where the tree is written")->required();
  cmd->add_option("--db", coord->inputs.db, "RocksDB store")->required();
  cmd->add_option("--testdata", coord->inputs.testdata,
                  "Testdata root: checked here too, and sized for commands with windows (map-window)");
  AddCommandFlags(cmd, &coord->inputs);
  CLI::Option* bin_opt = cmd->add_option("--binaries", coord->binaries, "Sweep the versions of this tree");
  CLI::Option* ver_opt = cmd->add_option("--versions", *versions, "Sweep these versions (comma-separated)");
  bin_opt->excludes(ver_opt);
  AddTimeout(cmd, timeout.get());
  AddServeFlags(cmd, coord.get());
  AddOutputLimit(cmd, &coord->output_limit_mib);
  return {cmd, [coord, timeout, versions, &g] {
            if (coord->binaries.empty() && versions->empty()) {
              imgsweep::ErrorLine("coordinator needs --binaries DIR or --versions V,V,...");
              return kExitBadInput;
            }
            coord->inputs.versions = SplitList(*versions);
            coord->watch = WatchOf(g, coord->watch);
            coord->inputs.timeout = Millis(*timeout);
            return imgsweep::CoordinatorCommand(*coord);
          }};
}

Command AddWorker(CLI::App& app) {
  auto worker = std::make_shared<imgsweep::WorkerFlags>();
  CLI::App* cmd =
      app.add_subcommand("worker",
                         "Runs cells for a coordinator until it says the sweep is over.\n"
                         "Example: imgsweep worker --connect tcp://farm-1:5555 --binaries "
                         "/srv/qemu-img-binaries --testdata /srv/testdata --curve-secret "
                         "keys/worker-1.key --coordinator-key keys/coordinator.pub");
  cmd->add_option("--connect", worker->connect, "The coordinator, tcp://HOST:PORT")->required();
  cmd->add_option("--binaries", worker->binaries, "qemu-img binaries tree")->required();
  cmd->add_option("--testdata", worker->testdata, "Testdata root")->required();
  cmd->add_option("--command-table", worker->command_table,
                  "The command lines this worker runs: a table file like commands/commands.json "
                  "(default: the built-in one)");
  cmd->add_option("--slots", worker->slots, "Cells at once (default: cores)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--pin-cells", worker->pin_cells,
                  "auto: keep each slot's cells to a cpu of its own when the slots divide the "
                  "cpus and no CPU quota decides them (default); off: let them run anywhere, "
                  "as on a host that runs other work; or cpus, e.g. 0,1, taken round robin");
  cmd->add_option("--prefetch", worker->prefetch,
                  "Cells held beyond the slots, so the next is here when a slot frees "
                  "(default: one per slot; more for cells of a few ms over a slow link)")
      ->check(CLI::Range(0, 16384));
  cmd->add_option("--name", worker->name, "Name in the fleet (default HOST-PID)");
  cmd->add_option("--host", worker->host,
                  "The host this worker reports, which the audit tells apart (default: the "
                  "host name; give one per machine where containers get random names)")
      ->check([](const std::string& host) {
        const bool ok = !host.empty() && host.size() <= 255 &&
                        host.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                               "0123456789._-") == std::string::npos;
        return ok ? std::string() : "\"" + host + "\" is not a host name ([A-Za-z0-9._-])";
      });
  cmd->add_option("--curve-secret", worker->curve_secret,
                  "This worker's key file (NAME.key): talk CURVE to the coordinator");
  cmd->add_option("--coordinator-key", worker->coordinator_key,
                  "The coordinator's public key file (NAME.pub)");
  cmd->add_option("--child-env", worker->child_env,
                  "Pass this environment variable on to the cells (repeatable); they get only "
                  "PATH and TMPDIR otherwise")
      ->check([](const std::string& name) {
        const bool ok = !name.empty() && std::isdigit(static_cast<unsigned char>(name[0])) == 0 &&
                        name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                               "0123456789_") == std::string::npos;
        return ok ? std::string() : "\"" + name + "\" is not an environment variable name";
      });
  cmd->add_flag("--insecure", worker->insecure,
                "Connect in plain text to a coordinator that is not on loopback (trusted "
                "networks only: anyone on the path can read and send its cells)");
  AddOutputLimit(cmd, &worker->output_limit_mib);
  AddImageLayout(cmd, &worker->image_layout);
  AddStageDir(cmd, &worker->stage_dir);
  cmd->add_option("--give-up-after", worker->give_up_after_s,
                  "Seconds without a coordinator (not yet there, or gone) before the "
                  "worker exits 1 (default 600); until then it reconnects by itself")
      ->check(CLI::Range(1, 7 * 86400));
  cmd->add_option("--health-file", worker->health_file,
                  "Kept fresh (rewritten every second) while the worker is welcomed by a "
                  "coordinator, and absent otherwise: a container's healthcheck reads its age");
  return {cmd, [worker] { return imgsweep::WorkerCommand(*worker); }};
}

Command AddRerun(CLI::App& app, const Globals& g) {
  auto rerun = std::make_shared<imgsweep::RerunFlags>();
  auto shards = std::make_shared<std::string>();
  auto images = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "rerun",
      "Runs chosen cells of a stored sweep again, keeping everything else, then rewrites the "
      "tree and its profiles. With --binaries and --testdata the workers are local processes "
      "(as in run); with --listen they are remote (as in coordinator).\nExample: imgsweep "
      "rerun --db imgsweep.db --out expected-outputs --failed --binaries "
      "~/.cache/imgsweep/qemu-img-binaries --testdata testdata");
  cmd->add_option("--db", rerun->db, "RocksDB store of the sweep")->required();
  cmd->add_option("--out", rerun->out, "Where the tree is written")->required();
  cmd->add_flag("--failed", rerun->selection.failed, "Cells that failed on every attempt or timed out");
  cmd->add_option("--shard", *shards, "Every cell of these versions (comma-separated)");
  cmd->add_option("--image", *images, "Every cell of these image ids (comma-separated)");
  cmd->add_option("--binaries", rerun->local.binaries, "Local workers: binaries tree");
  cmd->add_option("--testdata", rerun->local.testdata, "Local workers: testdata root");
  cmd->add_option("--command-table", rerun->local.command_table,
                  "Local workers: the command table the sweep was planned with (default: the "
                  "built-in one)");
  AddLocalWorkerFlags(cmd, &rerun->local);
  cmd->add_option("--listen", rerun->serve.listen, "Remote workers: ZeroMQ endpoint to serve them on");
  AddServeFlags(cmd, &rerun->serve);
  return {cmd, [rerun, shards, images, &g] {
            rerun->local.quiet = g.quiet;
            rerun->local.log_format = g.log_format;
            rerun->serve.watch = WatchOf(g, rerun->serve.watch);
            rerun->selection.shards = SplitList(*shards);
            rerun->selection.images = SplitList(*images);
            return imgsweep::RerunCommand(*rerun);
          }};
}

Command AddStatus(CLI::App& app) {
  struct Flags {
    std::filesystem::path db;
    bool cells = false;
    imgsweep::LiveStatusFlags live;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "status",
      "With --db: what a store holds (it may be in use by a running sweep): cells by state and "
      "outcome per shard (version), the failed ones with every attempt's reason, the timed-out "
      "ones. With --connect: asks a running coordinator for its workers (slots, versions, in "
      "flight, done, last heard) and shards.\nExamples: imgsweep status --db imgsweep.db\n"
      "          imgsweep status --connect tcp://farm-1:5555 [--json]");
  // Not exclusive: a container's environment may name the store
  // (IMGSWEEP_DB) where a healthcheck asks the running coordinator.
  cmd->add_option("--db", f->db, "RocksDB store");
  cmd->add_flag("--cells", f->cells, "Also one line per cell: KEY STATE OUTCOME attempts=N [failure kinds]");
  cmd->add_option("--connect", f->live.connect,
                  "A running coordinator's endpoint (asked instead of --db when both are given)");
  cmd->add_flag("--json", f->live.json,
                "One JSON document: the store's state (every failed cell, and every cell with "
                "--cells), or the coordinator's as it is");
  cmd->add_option("--curve-secret", f->live.curve_secret,
                  "With --connect to a CURVE coordinator: a key file it allows");
  cmd->add_option("--coordinator-key", f->live.coordinator_key,
                  "With --connect: the coordinator's public key file");
  return {cmd, [f] {
            if (!f->live.connect.empty()) return imgsweep::LiveStatusCommand(f->live);
            if (f->db.empty()) {
              imgsweep::ErrorLine("status needs --db DIR or --connect ENDPOINT");
              return kExitBadInput;
            }
            return imgsweep::StatusCommand(f->db, f->cells, f->live.json);
          }};
}

// The commands that read a store or a tree and run nothing.
Command AddKeys(CLI::App& app) {
  auto out = std::make_shared<std::filesystem::path>();
  CLI::App* keys = app.add_subcommand("keys", "CURVE keys for an authenticated fleet");
  keys->require_subcommand(1);
  CLI::App* generate = keys->add_subcommand(
      "generate",
      "Writes NAME.key (both keys, mode 0600: give it to --curve-secret) and NAME.pub (the "
      "public key: put a worker's in the coordinator's --allow-workers folder, the "
      "coordinator's in each worker's --coordinator-key).\nExample: imgsweep keys generate "
      "--out keys/worker-1");
  generate->add_option("--out", *out, "NAME: the files are NAME.key and NAME.pub")->required();
  return {generate, [out] { return imgsweep::KeysGenerateCommand(*out); }};
}

// Every long flag of `app` and its subcommands may also come from the
// environment: --log-format from IMGSWEEP_LOG_FORMAT, `worker --slots` from
// IMGSWEEP_SLOTS. The command line wins. `keys` takes none: its --out is not
// the sweep's; nor do flags that exclude or need another (coordinator
// --binaries and --versions, diff --repo and --out).
void BindEnvironment(CLI::App* app) {
  if (app->get_name() == "keys") return;
  for (CLI::Option* option : app->get_options()) {
    const std::vector<std::string>& names = option->get_lnames();
    if (names.empty() || names.front() == "help" || names.front() == "version") continue;
    // A value from the environment counts as given: a flag that excludes
    // another would refuse a command line that names the other one.
    if (!option->get_excludes().empty() || !option->get_needs().empty()) continue;
    std::string env = "IMGSWEEP_";
    for (char c : names.front()) env += c == '-' ? '_' : static_cast<char>(std::toupper(c));
    option->envname(env);
  }
  for (CLI::App* sub : app->get_subcommands({})) BindEnvironment(sub);
}

void SetUpLogging(const Globals& g) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("imgsweep"));
  if (g.log_format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","message":"%*"})");
    spdlog::set_formatter(std::move(formatter));
  } else {
    spdlog::set_pattern("%H:%M:%S.%e %^%l%$ %v");
  }
  if (g.quiet) spdlog::set_level(spdlog::level::warn);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "imgsweep: runs qemu-img releases over test images across a fleet of workers "
      "and writes the expected-outputs tree.");
  app.footer(kExitCodes);
  app.require_subcommand(1);
  // The global flags are also taken after the subcommand (`run ... --quiet`).
  app.fallthrough();
  app.set_version_flag("--version", std::string("imgsweep ") + IMGSWEEP_VERSION + " (protocol " +
                                        std::to_string(imgsweep::kProtocolVersion) + ")");
  Globals globals;
  app.add_flag("--quiet", globals.quiet, "Log warnings and errors only; no progress lines");
  app.add_option("--log-format", globals.log_format,
                 "text (default) or json: one JSON object per log line, for log collectors")
      ->check(CLI::IsMember({"text", "json"}));
  std::vector<Command> commands = {AddRun(app, globals), AddCoordinator(app, globals),
                                   AddWorker(app), AddRerun(app, globals), AddStatus(app)};
  for (Command& c : AddOffline(app)) commands.push_back(std::move(c));
  commands.push_back(AddKeys(app));
  BindEnvironment(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitBadInput;
  }
  SetUpLogging(globals);
  imgsweep::SetJsonErrors(globals.log_format == "json");
  for (const Command& c : commands) {
    if (!*c.app) continue;
    // The last line of defence: a library that throws on input nobody
    // checked (bad UTF-8 in a JSON document, say) ends the command with a
    // message and exit 1, never with std::terminate. The store's writes are
    // durable as they happen, so nothing stored is lost.
    try {
      return c.run();
    } catch (const std::exception& e) {
      imgsweep::ErrorLine(c.app->get_name() + " failed: " + e.what());
      return imgsweep::kExitFailed;
    }
  }
  return kExitOk;
}
