// Dispatch capacity: the coordinator (in this process, with a real store)
// and worker processes over tcp loopback, with a no-op executor that returns
// a canned result without starting anything. What is left is the fleet's
// own cost per cell: planning, messages, the store, acknowledgements.
//
// Usage:
//   dispatch --versions V --images I [--workers 2] [--slots 64] [--db DIR]
//     Plans 2 output types x V versions x I images, runs them, and prints
//     one line of key=value figures: cells, seconds, cells_per_s (first
//     assignment to last commit), p50_ms/p99_ms (assignment to stored),
//     plan_ms, status_ms (the slowest live status answer during the run),
//     peak_rss_mib (this process: the coordinator).
//     Farm runs (scripts/bench target 7): --cell-ms MS makes every cell
//     sleep MS instead of returning at once; --listen EP binds the
//     coordinator there; --netns PREFIX starts worker i inside the network
//     namespace PREFIX<i> (`ip netns exec`), connecting to --connect-each
//     with "{i}" replaced by i. Adds first_cell_ms (workers started to the
//     first stored cell) and tail_ms (99% of cells stored to the last).
//   dispatch noop-worker --connect EP --versions V --slots S --name N [--cell-ms MS]
//     A worker whose cells start nothing (the benchmark starts these).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/coordinator.h"
#include "sweep/plan.h"
#include "protocol/manifest.h"
#include "protocol/messages.h"
#include "protocol/sha256.h"
#include "protocol/transport.h"
#include "storage/store.h"
#include "worker/cell_runner.h"
#include "worker/subprocess.h"
#include "worker/worker.h"

namespace imgsweep {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// What a map cell prints, roughly: one JSON line.
constexpr std::string_view kCannedStdout =
    R"([{ "start": 0, "length": 1048576, "depth": 0, "present": false, "zero": true, "data": false, "compressed": false}])"
    "\n";

class NoopExecutor final : public CellExecutor {
 public:
  explicit NoopExecutor(std::chrono::milliseconds sleep) : sleep_(sleep) {}
  CellResult Run(const CellSpec& cell) override {
    // A cell that takes time without using cpu: the farm's workload.
    if (sleep_.count() > 0) std::this_thread::sleep_for(sleep_);
    CellResult result;
    result.key = cell.key;
    result.attempt = cell.attempt;
    result.outcome = Outcome::kExited;
    result.stdout_text = kCannedStdout;
    result.duration_us = std::max<std::int64_t>(1, sleep_.count() * 1000);
    return result;
  }

 private:
  std::chrono::milliseconds sleep_;
};

// V version names in numeric order: 1.0.0, 1.0.1, ...
std::vector<std::string> VersionNames(std::size_t count) {
  std::vector<std::string> names;
  for (std::size_t i = 0; names.size() < count; ++i) {
    names.push_back(std::to_string(1 + i / 100) + "." + std::to_string(i / 10 % 10) + "." +
                    std::to_string(i % 10));
  }
  return names;
}

std::vector<VersionInfo> Versions(std::size_t count) {
  std::vector<VersionInfo> versions;
  for (const std::string& name : VersionNames(count)) {
    versions.push_back({name, Sha256Hex("qemu-img " + name), "qemu-img version " + name});
  }
  return versions;
}

std::string ManifestJson(std::size_t images) {
  std::string text = R"({"images": [)";
  for (std::size_t i = 0; i < images; ++i) {
    const std::string id = "img-" + std::to_string(i);
    text += (i == 0 ? "" : ",") + std::string(R"({"id": ")") + id + R"(", "path": "images/)" +
            id + R"(.raw", "format": "raw", "safety": "safe", "sha256": ")" + Sha256Hex(id) +
            R"("})";
  }
  return text + "]}";
}

unsigned Flag(int argc, char** argv, const std::string& name, unsigned fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return static_cast<unsigned>(std::strtoul(argv[i + 1], nullptr, 10));
  }
  return fallback;
}

std::string TextFlag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return "";
}

int NoopWorker(int argc, char** argv) {
  WorkerOptions options;
  options.connect = TextFlag(argc, argv, "--connect");
  options.name = TextFlag(argc, argv, "--name");
  options.host = "bench";
  options.slots = Flag(argc, argv, "--slots", 64);
  options.prefetch = Flag(argc, argv, "--prefetch", 0);
  options.versions = Versions(Flag(argc, argv, "--versions", 1));
  Worker worker(options, std::make_unique<NoopExecutor>(
                             std::chrono::milliseconds(Flag(argc, argv, "--cell-ms", 0))));
  Status st = worker.Run();
  if (!st.ok()) {
    std::fprintf(stderr, "noop-worker: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}

// Keeps every wait, the first assignment and last commit, the first cell
// stored and the moment 99% of `cells` were.
class Timings final : public CoordinatorObserver {
 public:
  explicit Timings(std::size_t cells) : cells_(cells) {}
  void Started() { started_ = Clock::now(); }
  void OnProgress(const Progress&) override {}
  void OnCommit(Clock::duration took, std::size_t results) override {
    last_commit_ = Clock::now();
    ++commits_;
    committed_ += results;
    commit_time_ += took;
  }
  std::string CommitFigures() const {
    char text[128];
    std::snprintf(text, sizeof text, "commits=%zu results_per_commit=%.0f commit_ms=%.2f", commits_,
                  commits_ == 0 ? 0.0 : static_cast<double>(committed_) / static_cast<double>(commits_),
                  commits_ == 0 ? 0.0
                                : std::chrono::duration<double, std::milli>(commit_time_).count() /
                                      static_cast<double>(commits_));
    return text;
  }
  void OnDispatch(Clock::duration, std::size_t) override {
    if (first_dispatch_ == Clock::time_point{}) first_dispatch_ = Clock::now();
  }
  void OnStored(const std::vector<Clock::duration>& waits) override {
    const Clock::time_point now = Clock::now();
    if (waits_.empty() && !waits.empty()) first_stored_ = now;
    const std::size_t at99 = cells_ - cells_ / 100;
    if (waits_.size() < at99 && waits_.size() + waits.size() >= at99) at99_ = now;
    waits_.insert(waits_.end(), waits.begin(), waits.end());
    last_stored_ = now;
  }
  double FirstCellMs() const {
    return std::chrono::duration<double, std::milli>(first_stored_ - started_).count();
  }
  double TailMs() const {
    return std::chrono::duration<double, std::milli>(last_stored_ - at99_).count();
  }

  double Seconds() const {
    return std::chrono::duration<double>(last_commit_ - first_dispatch_).count();
  }
  double PercentileMs(double p) {
    if (waits_.empty()) return 0;
    const std::size_t at = std::min(
        waits_.size() - 1, static_cast<std::size_t>(p * static_cast<double>(waits_.size())));
    std::nth_element(waits_.begin(), waits_.begin() + static_cast<std::ptrdiff_t>(at), waits_.end());
    return std::chrono::duration<double, std::milli>(waits_[at]).count();
  }

 private:
  const std::size_t cells_;
  Clock::time_point started_{};
  Clock::time_point first_stored_{};
  Clock::time_point at99_{};
  Clock::time_point last_stored_{};
  Clock::time_point first_dispatch_{};
  std::size_t commits_ = 0;
  std::size_t committed_ = 0;
  Clock::duration commit_time_{};
  Clock::time_point last_commit_{};
  std::vector<Clock::duration> waits_;
};

// Asks the coordinator for its live status every `every` until stopped; the
// slowest answer.
class StatusProbe {
 public:
  StatusProbe(std::string endpoint, std::chrono::milliseconds every)
      : thread_([this, endpoint = std::move(endpoint), every] { Loop(endpoint, every); }) {}
  ~StatusProbe() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  double SlowestMs() const { return slowest_ms_; }
  int answers() const { return answers_; }

 private:
  void Loop(const std::string& endpoint, std::chrono::milliseconds every) {
    Context context;
    Result<std::unique_ptr<DealerSocket>> socket = DealerSocket::Connect(context, endpoint, {});
    if (!socket.ok()) return;
    while (!stop_) {
      std::this_thread::sleep_for(every);
      const Clock::time_point asked = Clock::now();
      Result<bool> sent = socket.value()->Send(Encode(StatusRequest{}));
      if (!sent.ok() || !sent.value()) continue;
      const Clock::time_point deadline = asked + std::chrono::seconds(10);
      while (!stop_ && Clock::now() < deadline) {
        Result<std::optional<std::string>> frame =
            socket.value()->Receive(std::chrono::milliseconds(100));
        if (!frame.ok() || !frame.value()) continue;
        Result<Message> m = Decode(*frame.value());
        if (m.ok() && std::holds_alternative<StatusReply>(m.value())) {
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - asked).count();
          slowest_ms_ = std::max(slowest_ms_.load(), ms);
          ++answers_;
          break;
        }
      }
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<double> slowest_ms_{0};
  std::atomic<int> answers_{0};
  std::thread thread_;
};

// Starts the worker processes: on this host, or worker i inside the network
// namespace PREFIX<i> when --netns is given.
Result<std::vector<std::unique_ptr<BackgroundProcess>>> StartWorkers(int argc, char** argv,
                                                                      const std::string& endpoint) {
  const unsigned workers = Flag(argc, argv, "--workers", 2);
  const std::string netns = TextFlag(argc, argv, "--netns");
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  std::vector<std::unique_ptr<BackgroundProcess>> children;
  for (unsigned i = 1; i <= workers; ++i) {
    std::string connect = endpoint;
    if (!netns.empty()) {
      connect = TextFlag(argc, argv, "--connect-each");
      const std::size_t at = connect.find("{i}");
      if (at != std::string::npos) connect.replace(at, 3, std::to_string(i));
    }
    std::vector<std::string> args = {
        "noop-worker", "--connect", connect, "--versions",
        TextFlag(argc, argv, "--versions"), "--slots",
        std::to_string(Flag(argc, argv, "--slots", 64)), "--prefetch",
        std::to_string(Flag(argc, argv, "--prefetch", 0)), "--cell-ms",
        std::to_string(Flag(argc, argv, "--cell-ms", 0)), "--name", "w" + std::to_string(i)};
    fs::path program = self;
    if (!netns.empty()) {
      args.insert(args.begin(), {"ip", "netns", "exec", netns + std::to_string(i), self.string()});
      program = "/usr/bin/env";
    }
    Result<std::unique_ptr<BackgroundProcess>> child = BackgroundProcess::Start(program, args);
    if (!child.ok()) return child.status();
    children.push_back(std::move(child).value());
  }
  return children;
}

int Dispatch(int argc, char** argv) {
  const std::size_t version_count = Flag(argc, argv, "--versions", 10);
  const std::size_t image_count = Flag(argc, argv, "--images", 100);
  std::string db = TextFlag(argc, argv, "--db");
  if (db.empty() || TextFlag(argc, argv, "--versions").empty()) {
    std::fprintf(stderr, "dispatch: give --versions V and --db DIR (a folder that does not exist yet)\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);

  const Clock::time_point planning = Clock::now();
  Result<Manifest> manifest = Manifest::Parse(ManifestJson(image_count), "bench manifest");
  if (!manifest.ok()) return std::fprintf(stderr, "%s\n", manifest.status().message().c_str()), 1;
  Result<Plan> plan = Plan::Make(manifest.value(), VersionNames(version_count), kDefaultCellTimeout);
  if (!plan.ok()) return std::fprintf(stderr, "%s\n", plan.status().message().c_str()), 1;
  Result<std::unique_ptr<Store>> store = Store::Open(db, Store::Mode::kCreateIfMissing);
  if (!store.ok()) return std::fprintf(stderr, "%s\n", store.status().message().c_str()), 1;
  Status st = store.value()->PutMeta("plan", plan.value().ToJson());
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
  const std::size_t cells = plan.value().cell_count();
  Timings timings(cells);
  CoordinatorOptions options;
  options.listen = TextFlag(argc, argv, "--listen");
  if (options.listen.empty()) options.listen = "tcp://127.0.0.1:*";
  options.observers.push_back(&timings);
  Result<std::unique_ptr<Coordinator>> coordinator =
      Coordinator::Create(options, std::move(plan).value(), store.value().get());
  if (!coordinator.ok()) return std::fprintf(stderr, "%s\n", coordinator.status().message().c_str()), 1;
  const double plan_ms = std::chrono::duration<double, std::milli>(Clock::now() - planning).count();

  timings.Started();
  Result<std::vector<std::unique_ptr<BackgroundProcess>>> children =
      StartWorkers(argc, argv, coordinator.value()->endpoint());
  if (!children.ok()) return std::fprintf(stderr, "%s\n", children.status().message().c_str()), 1;
  StatusProbe probe(coordinator.value()->endpoint(), std::chrono::milliseconds(500));
  Result<SweepSummary> summary = coordinator.value()->Run();
  probe.Stop();
  for (auto& child : children.value()) {
    if (!child->WaitFor(std::chrono::seconds(10)).ok()) child->Stop(std::chrono::seconds(1));
  }
  if (!summary.ok()) return std::fprintf(stderr, "%s\n", summary.status().message().c_str()), 1;
  if (summary.value().exited_zero != cells) {
    std::fprintf(stderr, "dispatch: %zu of %zu cells stored as exited 0\n",
                 summary.value().exited_zero, cells);
    return 1;
  }
  const ProcessUsage usage = MeasureUsage();
  std::printf(
      "cells=%zu seconds=%.3f cells_per_s=%.0f p50_ms=%.2f p99_ms=%.2f plan_ms=%.0f "
      "status_ms=%.1f status_answers=%d peak_rss_mib=%.0f coordinator_cpu_s=%.2f "
      "workers_cpu_s=%.2f first_cell_ms=%.1f tail_ms=%.1f %s\n",
      cells, timings.Seconds(), static_cast<double>(cells) / timings.Seconds(),
      timings.PercentileMs(0.50), timings.PercentileMs(0.99), plan_ms, probe.SlowestMs(),
      probe.answers(), usage.peak_rss_mib, usage.own_cpu_seconds, usage.children_cpu_seconds,
      timings.FirstCellMs(), timings.TailMs(), timings.CommitFigures().c_str());
  return 0;
}

}  // namespace
}  // namespace imgsweep

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "noop-worker") return imgsweep::NoopWorker(argc, argv);
  return imgsweep::Dispatch(argc, argv);
}
