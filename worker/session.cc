#include "worker/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace imgsweep {
namespace {

// How often a worker that has not been welcomed says it is still waiting.
constexpr auto kWaitingNoteInterval = std::chrono::seconds(10);
// A hello that found no connection to go on is tried again this soon.
constexpr auto kHelloRetry = std::chrono::milliseconds(50);

}  // namespace

Session::Session(SessionOptions options, const Clock* clock, SendFn send)
    : options_(std::move(options)),
      clock_(clock),
      send_(std::move(send)),
      hello_(Encode(options_.hello)),
      heartbeat_(options_.heartbeat),
      liveness_(std::max(1u, options_.liveness)),
      last_sent_(clock->Now()),
      last_heard_(clock->Now()),
      alone_since_(clock->Now()),
      next_waiting_note_(clock->Now() + kWaitingNoteInterval) {}

void Session::Finish(Status end) {
  state_ = State::kFinished;
  end_ = std::move(end);
}

// A frame that cannot go now is not lost: results stay in unacked_ and go
// again after the next welcome.
Status Session::Send(const std::string& frame) {
  Result<bool> sent = send_(frame);
  if (!sent.ok()) return sent.status();
  if (sent.value()) last_sent_ = clock_->Now();
  return Status::Ok();
}

Status Session::OnConnected() {
  hello_due_ = true;
  if (state_ == State::kWelcomed) {
    spdlog::warn("worker {}: the connection to {} was made again; saying hello again",
                 options_.name, options_.connect);
    state_ = State::kConnecting;
  }
  return Status::Ok();
}

Result<bool> Session::OnTick() {
  const Clock::TimePoint now = clock_->Now();
  if (hello_due_) {
    Result<bool> sent = send_(hello_);
    if (!sent.ok()) return sent.status();
    if (sent.value()) {
      hello_due_ = false;
      last_sent_ = now;
    }
  }
  if (state_ == State::kConnecting) {
    if (now - alone_since_ >= options_.give_up_after) {
      Finish(Status::IoError(
          "no coordinator answered at " + options_.connect + " for " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::seconds>(options_.give_up_after).count()) +
          " s; giving up"));
      return false;
    }
    if (now >= next_waiting_note_) {
      spdlog::warn("worker {}: still no answer from the coordinator at {}", options_.name,
                   options_.connect);
      next_waiting_note_ = now + kWaitingNoteInterval;
    }
  }
  if (!SilentAt(now)) return false;
  if (state_ == State::kWelcomed) {
    spdlog::warn("worker {}: no word from the coordinator for {} ms; connecting again, "
                 "{} results kept until acknowledged",
                 options_.name, (heartbeat_ * liveness_).count(), unacked_.size());
    state_ = State::kConnecting;
    alone_since_ = now;
  }
  return true;
}

void Session::OnReconnected() {
  hello_due_ = false;  // said on the new connection's handshake
  last_heard_ = clock_->Now();
}

std::chrono::milliseconds Session::NextWait() const { return hello_due_ ? kHelloRetry : heartbeat_; }

Status Session::OnFrame(std::string_view frame, std::size_t held, std::vector<Work>* work) {
  last_heard_ = clock_->Now();
  Result<Message> message = Decode(frame);
  if (!message.ok()) {
    spdlog::warn("worker {}: dropped a frame from the coordinator: {}", options_.name,
                 message.status().message());
    return Status::Ok();
  }
  Message& m = message.value();
  if (auto* refused = std::get_if<Refused>(&m)) {
    Finish(Status::InvalidInput("the coordinator refused this worker: " + refused->reason));
  } else if (auto* shutdown = std::get_if<Shutdown>(&m)) {
    spdlog::info("worker {}: the coordinator says: {}", options_.name, shutdown->reason);
    Finish(Status::Ok());
  } else if (std::holds_alternative<HelloFirst>(m)) {
    if (state_ == State::kWelcomed) {
      spdlog::warn("worker {}: the coordinator no longer knows this worker; saying hello again",
                   options_.name);
      alone_since_ = clock_->Now();
    }
    state_ = State::kConnecting;
    hello_due_ = true;
  } else if (auto* welcome = std::get_if<Welcome>(&m)) {
    // Every welcome answers a hello, and with each hello the coordinator
    // starts this worker's credit from nothing: a second welcome (two
    // hellos crossed a reconnection) is answered with credit again, or the
    // coordinator would wait for credit while this worker waits for cells.
    return Welcomed(*welcome, held);
  } else if (auto* assignment = std::get_if<Assignment>(&m)) {
    for (CellSpec& cell : assignment->cells) {
      work->push_back(Work{std::move(cell), assignment->lease_id, sweep_id_});
    }
  } else if (auto* ack = std::get_if<Ack>(&m)) {
    for (const std::string& key : ack->keys) unacked_.erase(key);
  }
  return Status::Ok();
}

Status Session::Welcomed(const Welcome& welcome, std::size_t held) {
  state_ = State::kWelcomed;
  sweep_id_ = welcome.sweep_id;
  if (welcome.heartbeat_ms > 0) heartbeat_ = std::chrono::milliseconds(welcome.heartbeat_ms);
  if (welcome.liveness > 0) liveness_ = welcome.liveness;
  spdlog::info("worker {}: {} sweep {}{}", options_.name, ever_welcomed_ ? "joined again" : "joined",
               welcome.sweep_id,
               unacked_.empty() ? std::string()
                                : "; re-sending " + std::to_string(unacked_.size()) +
                                      " unacknowledged results");
  ever_welcomed_ = true;
  std::vector<CellResult> again;
  again.reserve(unacked_.size());
  for (const auto& [key, result] : unacked_) again.push_back(result);
  Status sent = SendResults(again);
  if (!sent.ok()) return sent;
  if (held >= options_.capacity || draining_) return Status::Ok();
  return Send(Encode(Credit{static_cast<std::uint32_t>(options_.capacity - held)}));
}

// One frame per result when they come alone, else frames of up to
// kResultsPerFrame results holding about kResultsFrameBytes of output.
Status Session::SendResults(std::span<const CellResult> results) {
  std::size_t first = 0;
  while (first < results.size()) {
    std::size_t end = first;
    std::size_t bytes = 0;
    while (end < results.size() && end - first < kResultsPerFrame &&
           (end == first || bytes + results[end].stdout_text.size() + results[end].stderr_text.size() <=
                                kResultsFrameBytes)) {
      bytes += results[end].stdout_text.size() + results[end].stderr_text.size();
      ++end;
    }
    const std::span<const CellResult> frame = results.subspan(first, end - first);
    Status st = Send(frame.size() == 1 ? Encode(frame.front()) : EncodeResults(frame));
    if (!st.ok()) return st;
    first = end;
  }
  return Status::Ok();
}

Status Session::OnResults(std::vector<CellResult> done) {
  const bool welcomed = state_ == State::kWelcomed;
  if (welcomed) {
    Status st = SendResults(done);
    if (!st.ok()) return st;
  }
  for (CellResult& result : done) {
    std::string key = result.key;
    unacked_.insert_or_assign(std::move(key), std::move(result));
  }
  if (welcomed && !done.empty() && !draining_) {
    Status st = Send(Encode(Credit{static_cast<std::uint32_t>(done.size())}));
    if (!st.ok()) return st;
  }
  if (welcomed && clock_->Now() - last_sent_ >= heartbeat_) return Send(Encode(Heartbeat{}));
  return Status::Ok();
}

}  // namespace imgsweep
