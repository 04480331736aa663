#include "worker/worker.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "protocol/transport.h"
#include "worker/subprocess.h"

namespace imgsweep {
namespace {

using Clock = std::chrono::steady_clock;


// How often a worker that has not been welcomed says it is still waiting.
constexpr auto kWaitingNoteInterval = std::chrono::seconds(10);

// A hello that found no connection to go on is tried again this soon.
constexpr auto kHelloRetry = std::chrono::milliseconds(50);

}  // namespace

// The queue between the socket thread and the slot threads.
struct Worker::State {
  std::mutex mu;
  std::condition_variable work_ready;
  std::deque<std::pair<CellSpec, std::uint64_t>> queue;  // guarded by mu; cell, lease
  std::vector<CellResult> done;                          // guarded by mu
  std::size_t running = 0;                               // guarded by mu
  bool stopping = false;                                 // guarded by mu
  int wake_fd = -1;                                      // eventfd: a slot thread finished a cell
  std::vector<std::thread> slots;
};

Worker::Worker(WorkerOptions options, std::unique_ptr<CellExecutor> executor)
    : options_(std::move(options)), executor_(std::move(executor)), state_(new State) {
  state_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
  }
  state_->work_ready.notify_all();
  for (std::thread& t : state_->slots) t.join();
  if (state_->wake_fd >= 0) ::close(state_->wake_fd);
}

namespace {

// A random session id: tells this process's hellos from those of another
// worker process with the same name.
std::string NewSession() {
  std::random_device random;
  std::uint64_t bits = (static_cast<std::uint64_t>(random()) << 32) ^ random();
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(bits));
  return text;
}

// Where this worker's time went: its own threads, and the cells it ran.
void LogCpu(const std::string& name) {
  const ProcessUsage usage = MeasureUsage();
  spdlog::info("worker {}: cpu {:.2f} s of its own, {:.2f} s in the cells it ran", name,
               usage.own_cpu_seconds, usage.children_cpu_seconds);
}

}  // namespace

Status Worker::Run() {
  if (state_->wake_fd < 0) return Status::FromErrno("worker: eventfd", errno);
  Context context;
  auto connect = [&]() {
    return DealerSocket::Connect(context, options_.connect, options_.security, options_.backoff);
  };
  Result<std::unique_ptr<DealerSocket>> connected = connect();
  if (!connected.ok()) return connected.status();
  std::unique_ptr<DealerSocket> socket = std::move(connected).value();
  const std::string hello = Encode(Hello{options_.name, options_.host, options_.slots,
                                         options_.versions, NewSession()});
  spdlog::info("worker {}: {} slots, {} versions; waiting for the coordinator at {}", options_.name,
               options_.slots, options_.versions.size(), options_.connect);

  for (unsigned i = 0; i < options_.slots; ++i) {
    state_->slots.emplace_back([this] {
      State& s = *state_;
      for (;;) {
        std::pair<CellSpec, std::uint64_t> work;
        {
          std::unique_lock<std::mutex> lock(s.mu);
          s.work_ready.wait(lock, [&] { return s.stopping || !s.queue.empty(); });
          if (s.stopping) return;
          work = std::move(s.queue.front());
          s.queue.pop_front();
          ++s.running;
        }
        CellResult result = executor_->Run(work.first);
        result.lease_id = work.second;
        bool first = false;
        {
          std::lock_guard<std::mutex> lock(s.mu);
          --s.running;
          first = s.done.empty();
          s.done.push_back(std::move(result));
        }
        // The socket thread takes every finished cell at once after a wake:
        // only the first of a batch needs to wake it.
        if (first) {
          const std::uint64_t one = 1;
          (void)!::write(s.wake_fd, &one, sizeof one);  // a full counter still wakes the reader
        }
      }
    });
  }

  const unsigned capacity =
      options_.slots + (options_.prefetch > 0 ? options_.prefetch : options_.slots * kPrefetchPerSlot);
  std::chrono::milliseconds heartbeat = options_.heartbeat;
  unsigned liveness = std::max(1u, options_.liveness);
  bool welcomed = false;
  bool ever_welcomed = false;
  bool hello_due = false;  // on the next connection, or now when told hello-first
  std::map<std::string, std::string> unacked;  // key -> encoded result
  Clock::time_point last_sent = Clock::now();
  Clock::time_point last_heard = Clock::now();
  Clock::time_point alone_since = Clock::now();  // without a welcome since
  Clock::time_point next_waiting_note = Clock::now() + kWaitingNoteInterval;
  // Sends if a connection is up; a frame that cannot go now is not lost:
  // results stay in `unacked` and go again after the next welcome.
  auto send = [&](const std::string& frame) -> Status {
    Result<bool> sent = socket->Send(frame);
    if (!sent.ok()) return sent.status();
    if (sent.value()) last_sent = Clock::now();
    return Status::Ok();
  };
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (socket->TakeConnections() > 0) {
      hello_due = true;  // a new connection: the peer may not know this worker
      if (welcomed) {
        spdlog::warn("worker {}: the connection to {} was made again; saying hello again",
                     options_.name, options_.connect);
      }
      welcomed = false;
    }
    if (hello_due) {
      Result<bool> sent = socket->Send(hello);
      if (!sent.ok()) return sent.status();
      if (sent.value()) {
        hello_due = false;
        last_sent = now;
      }
    }
    if (!welcomed) {
      if (now - alone_since >= options_.give_up_after) {
        return Status::IoError("no coordinator answered at " + options_.connect + " for " +
                               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                  options_.give_up_after)
                                                  .count()) +
                               " s; giving up");
      }
      if (now >= next_waiting_note) {
        spdlog::warn("worker {}: still no answer from the coordinator at {}", options_.name,
                     options_.connect);
        next_waiting_note = now + kWaitingNoteInterval;
      }
    }
    // Silence: the coordinator is gone or the path to it is. A new socket
    // makes a new connection (ZeroMQ's own may wait on a dead tcp one).
    if (now - last_heard >= heartbeat * liveness) {
      if (welcomed) {
        spdlog::warn("worker {}: no word from the coordinator for {} ms; connecting again, "
                     "{} results kept until acknowledged",
                     options_.name, (heartbeat * liveness).count(), unacked.size());
        welcomed = false;
        alone_since = now;
      }
      socket.reset();
      Result<std::unique_ptr<DealerSocket>> again = connect();
      if (!again.ok()) return again.status();
      socket = std::move(again).value();
      hello_due = false;  // said on the connection's handshake
      last_heard = now;
    }
    const auto wait = hello_due ? kHelloRetry : heartbeat;
    Result<std::optional<std::string>> frame = socket->Receive(wait, state_->wake_fd);
    if (!frame.ok()) return frame.status();
    if (frame.value()) {
      last_heard = Clock::now();
      Result<Message> message = Decode(*frame.value());
      if (!message.ok()) {
        spdlog::warn("worker {}: dropped a frame from the coordinator: {}", options_.name,
                     message.status().message());
        continue;
      }
      Message& m = message.value();
      if (auto* refused = std::get_if<Refused>(&m)) {
        return Status::InvalidInput("the coordinator refused this worker: " + refused->reason);
      }
      if (auto* shutdown = std::get_if<Shutdown>(&m)) {
        spdlog::info("worker {}: the coordinator says: {}", options_.name, shutdown->reason);
        LogCpu(options_.name);
        return Status::Ok();
      }
      if (std::holds_alternative<HelloFirst>(m)) {
        if (welcomed) {
          spdlog::warn("worker {}: the coordinator no longer knows this worker; saying hello "
                       "again", options_.name);
          alone_since = Clock::now();
        }
        welcomed = false;
        hello_due = true;
      } else if (auto* welcome = std::get_if<Welcome>(&m)) {
        if (!welcomed) {
          welcomed = true;
          if (welcome->heartbeat_ms > 0) heartbeat = std::chrono::milliseconds(welcome->heartbeat_ms);
          if (welcome->liveness > 0) liveness = welcome->liveness;
          std::size_t held = 0;
          {
            std::lock_guard<std::mutex> lock(state_->mu);
            held = state_->queue.size() + state_->running + state_->done.size();
          }
          spdlog::info("worker {}: {} sweep {}{}", options_.name,
                       ever_welcomed ? "joined again" : "joined", welcome->sweep_id,
                       unacked.empty() ? std::string()
                                       : "; re-sending " + std::to_string(unacked.size()) +
                                             " unacknowledged results");
          ever_welcomed = true;
          for (const auto& [key, encoded] : unacked) {
            Status st = send(encoded);
            if (!st.ok()) return st;
          }
          if (held < capacity) {
            Status st = send(Encode(Credit{static_cast<std::uint32_t>(capacity - held)}));
            if (!st.ok()) return st;
          }
        }
      } else if (auto* assignment = std::get_if<Assignment>(&m)) {
        {
          std::lock_guard<std::mutex> lock(state_->mu);
          for (CellSpec& cell : assignment->cells) {
            state_->queue.emplace_back(std::move(cell), assignment->lease_id);
          }
        }
        // One slot per cell: waking every idle slot for a small batch only
        // has them fight over the lock.
        for (std::size_t i = 0; i < assignment->cells.size(); ++i) state_->work_ready.notify_one();
      } else if (auto* ack = std::get_if<Ack>(&m)) {
        for (const std::string& key : ack->keys) unacked.erase(key);
      }
    }

    std::vector<CellResult> done;
    {
      std::uint64_t count;
      (void)!::read(state_->wake_fd, &count, sizeof count);  // EAGAIN when nothing is new
      std::lock_guard<std::mutex> lock(state_->mu);
      done.swap(state_->done);
    }
    for (const CellResult& result : done) {
      std::string encoded = Encode(result);
      if (welcomed) {
        Status st = send(encoded);
        if (!st.ok()) return st;
      }
      unacked[result.key] = std::move(encoded);
    }
    if (welcomed && !done.empty()) {
      Status st = send(Encode(Credit{static_cast<std::uint32_t>(done.size())}));
      if (!st.ok()) return st;
    }
    if (welcomed && Clock::now() - last_sent >= heartbeat) {
      Status st = send(Encode(Heartbeat{}));
      if (!st.ok()) return st;
    }
  }
}

}  // namespace imgsweep
