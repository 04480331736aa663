#include "worker/worker.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "protocol/transport.h"

namespace imgsweep {
namespace {

using Clock = std::chrono::steady_clock;

// How many cells a worker asks for beyond its slots, so a slot that frees
// up finds the next cell already here instead of waiting a round trip.
constexpr unsigned kPrefetchPerSlot = 1;

// How often a worker that has not been welcomed says it is still waiting.
constexpr auto kWaitingNoteInterval = std::chrono::seconds(10);

}  // namespace

// The queue between the socket thread and the slot threads.
struct Worker::State {
  std::mutex mu;
  std::condition_variable work_ready;
  std::deque<std::pair<CellSpec, std::uint64_t>> queue;  // guarded by mu; cell, lease
  std::vector<CellResult> done;                          // guarded by mu
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

Status Worker::Run() {
  if (state_->wake_fd < 0) return Status::FromErrno("worker: eventfd", errno);
  Context context;
  Result<std::unique_ptr<DealerSocket>> connected =
      DealerSocket::Connect(context, options_.connect, options_.security);
  if (!connected.ok()) return connected.status();
  DealerSocket& socket = *connected.value();

  Status sent =
      socket.Send(Encode(Hello{options_.name, options_.host, options_.slots, options_.versions}));
  if (!sent.ok()) return sent;
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
        }
        CellResult result = executor_->Run(work.first);
        result.lease_id = work.second;
        {
          std::lock_guard<std::mutex> lock(s.mu);
          s.done.push_back(std::move(result));
        }
        const std::uint64_t one = 1;
        (void)!::write(s.wake_fd, &one, sizeof one);  // a full counter still wakes the reader
      }
    });
  }

  bool welcomed = false;
  std::map<std::string, std::string> unacked;  // key -> encoded result
  Clock::time_point last_sent = Clock::now();
  Clock::time_point next_waiting_note = Clock::now() + kWaitingNoteInterval;
  for (;;) {
    if (!welcomed && Clock::now() >= next_waiting_note) {
      spdlog::warn("worker {}: still no answer from the coordinator at {}", options_.name,
                   options_.connect);
      next_waiting_note = Clock::now() + kWaitingNoteInterval;
    }
    Result<std::optional<std::string>> frame = socket.Receive(options_.heartbeat, state_->wake_fd);
    if (!frame.ok()) return frame.status();
    if (frame.value()) {
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
        return Status::Ok();
      }
      if (std::holds_alternative<Welcome>(m) && !welcomed) {
        welcomed = true;
        spdlog::info("worker {}: joined sweep {}", options_.name, std::get<Welcome>(m).sweep_id);
        Status st = socket.Send(Encode(Credit{options_.slots * (1 + kPrefetchPerSlot)}));
        if (!st.ok()) return st;
      } else if (auto* assignment = std::get_if<Assignment>(&m)) {
        {
          std::lock_guard<std::mutex> lock(state_->mu);
          for (CellSpec& cell : assignment->cells) {
            state_->queue.emplace_back(std::move(cell), assignment->lease_id);
          }
        }
        state_->work_ready.notify_all();
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
      Status st = socket.Send(encoded);
      if (!st.ok()) return st;
      unacked[result.key] = std::move(encoded);
    }
    if (!done.empty()) {
      Status st = socket.Send(Encode(Credit{static_cast<std::uint32_t>(done.size())}));
      if (!st.ok()) return st;
      last_sent = Clock::now();
    }
    if (Clock::now() - last_sent >= options_.heartbeat) {
      Status st = socket.Send(Encode(Heartbeat{}));
      if (!st.ok()) return st;
      last_sent = Clock::now();
    }
  }
}

}  // namespace imgsweep
