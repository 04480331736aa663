#include "worker/worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "protocol/clock.h"
#include "protocol/transport.h"
#include "worker/cpu_budget.h"
#include "worker/held_results.h"
#include "worker/session.h"
#include "worker/slot_pool.h"
#include "worker/subprocess.h"

namespace imgsweep {
namespace {

// Frames the driver takes from the socket before it looks at the slots
// again: the coordinator's queued frames count, but cannot starve results.
constexpr std::size_t kFramesPerTurn = 64;

// A random session id: tells this process's hellos from those of another
// worker process with the same name.
std::string NewSession() {
  std::random_device random;
  std::uint64_t bits = (static_cast<std::uint64_t>(random()) << 32) ^ random();
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(bits));
  return text;
}

// The health file: fresh while welcomed, absent otherwise.
class HealthFile {
 public:
  explicit HealthFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~HealthFile() { Set(false, ""); }
  HealthFile(const HealthFile&) = delete;
  HealthFile& operator=(const HealthFile&) = delete;

  void Set(bool welcomed, const std::string& name) {
    if (path_.empty()) return;
    std::error_code ec;
    if (!welcomed) {
      if (written_) std::filesystem::remove(path_, ec);
      written_ = false;
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (written_ && now - last_ < std::chrono::seconds(1)) return;
    const std::filesystem::path temporary = path_.string() + ".tmp";
    std::ofstream(temporary) << "welcomed " << name << "\n";
    std::filesystem::rename(temporary, path_, ec);
    if (ec) {
      spdlog::warn("worker {}: cannot write the health file {}: {}", name, path_.string(),
                   ec.message());
    }
    written_ = !ec;
    last_ = now;
  }

 private:
  const std::filesystem::path path_;
  bool written_ = false;
  std::chrono::steady_clock::time_point last_;
};

// Where this worker's time went: its own threads, and the cells it ran.
void LogCpu(const std::string& name) {
  const ProcessUsage usage = MeasureUsage();
  spdlog::info("worker {}: cpu {:.2f} s of its own, {:.2f} s in the cells it ran", name,
               usage.own_cpu_seconds, usage.children_cpu_seconds);
}

// Waits up to `wait` for a frame (or finished cells), then takes the
// frames already queued (a turn's worth) into the session, and their cells
// into the slots. `finished`: cells done and held back, off the slots.
Status TakeFrames(DealerSocket& socket, Session& session, SlotPool& slots, std::size_t finished,
                  std::chrono::milliseconds wait) {
  for (std::size_t n = 0; n < kFramesPerTurn; ++n) {
    Result<std::optional<std::string>> frame = socket.Receive(wait, slots.wake_fd());
    if (!frame.ok()) return frame.status();
    if (!frame.value()) return Status::Ok();
    std::vector<Work> work;
    Status taken = session.OnFrame(*frame.value(), slots.held() + finished, &work);
    if (!taken.ok() || session.finished()) return taken;
    slots.Add(std::move(work));
    wait = std::chrono::milliseconds(0);
  }
  return Status::Ok();
}

}  // namespace

Worker::Worker(WorkerOptions options, std::unique_ptr<CellExecutor> executor)
    : options_(std::move(options)), executor_(std::move(executor)) {}

Worker::~Worker() = default;

SessionOptions Worker::SessionFor() const {
  SessionOptions s;
  s.name = options_.name;
  s.connect = options_.connect;
  s.hello = Hello{options_.name, options_.host,     options_.slots,
                  options_.versions, NewSession(), options_.broken, options_.sparse,
                  options_.command_table};
  s.capacity = options_.slots +
               (options_.prefetch > 0 ? options_.prefetch : options_.slots * kPrefetchPerSlot);
  s.heartbeat = options_.heartbeat;
  s.liveness = options_.liveness;
  s.give_up_after = options_.give_up_after;
  return s;
}

// The driver: the socket's events into the session, the session's cells
// into the slots, the slots' results back into the session.
Status Worker::Run() {
  SlotPool slots(options_.slots, executor_.get(), options_.slot_cpus);
  Status st = slots.Start();
  if (!st.ok()) return st;
  Context context;
  auto connect = [&]() {
    return DealerSocket::Connect(context, options_.connect, options_.security, options_.backoff);
  };
  Result<std::unique_ptr<DealerSocket>> connected = connect();
  if (!connected.ok()) return connected.status();
  std::unique_ptr<DealerSocket> socket = std::move(connected).value();
  Session session(SessionFor(), &SystemClock(),
                  [&socket](std::string_view frame) { return socket->Send(frame); });
  const std::string pinned = CpuList(options_.slot_cpus);
  spdlog::info("worker {}: {} slots ({}), {} versions; waiting for the coordinator at {}",
               options_.name, options_.slots,
               pinned.empty() ? "cells on any cpu" : "cells kept to cpus " + pinned,
               options_.versions.size(), options_.connect);
  HealthFile health(options_.health_file);
  HeldResults finished;  // taken from the slots, not yet given to the session
  const Clock& clock = SystemClock();
  while (!session.finished()) {
    health.Set(session.state() == Session::State::kWelcomed && !session.draining(), options_.name);
    if (!session.draining() && options_.stop_requested && options_.stop_requested()) {
      session.Drain();
      spdlog::info("worker {}: asked to stop: taking no more cells; finishing the {} it holds",
                   options_.name, slots.held() + finished.size());
    }
    if (session.Drained(slots.held() + finished.size())) {
      spdlog::info("worker {}: drained: every cell it took is done and acknowledged",
                   options_.name);
      break;
    }
    if (socket->TakeConnections() > 0) {
      st = session.OnConnected();
      if (!st.ok()) return st;
    }
    if (session.Silent()) {
      // Silence is judged on what came, not on what was read: a driver
      // kept from its socket (a loaded host, a debugger) finds the
      // coordinator's frames queued there, and they count.
      st = TakeFrames(*socket, session, slots, finished.size(), std::chrono::milliseconds(0));
      if (!st.ok()) return st;
      if (session.finished()) break;
    }
    Result<bool> reconnect = session.OnTick();
    if (!reconnect.ok()) return reconnect.status();
    if (session.finished()) break;
    if (reconnect.value()) {
      socket.reset();
      Result<std::unique_ptr<DealerSocket>> again = connect();
      if (!again.ok()) return again.status();
      socket = std::move(again).value();
      session.OnReconnected();
    }
    st = TakeFrames(*socket, session, slots, finished.size(),
                    std::min(session.NextWait(), finished.Until(clock.Now())));
    if (!st.ok()) return st;
    if (session.finished()) break;
    const Clock::TimePoint now = clock.Now();
    finished.Add(slots.TakeDone(), now);
    // Held back only while welcomed and taking cells: otherwise the session
    // keeps them until a welcome, or the drain waits on them.
    const bool hold = session.state() == Session::State::kWelcomed && !session.draining();
    st = session.OnResults(finished.Due(now, slots.waiting(), slots.slots(), hold)
                               ? finished.Take()
                               : std::vector<CellResult>());
    if (!st.ok()) return st;
  }
  if (session.end().ok()) LogCpu(options_.name);
  return session.end();
}

}  // namespace imgsweep
