// A worker's conversation with the coordinator, as a state machine apart
// from its socket and its slots. The driver (Worker::Run) feeds it events
// (a connection made, a frame, finished cells, the passing of time) and it
// sends frames through the function it was given, deciding what is said
// when:
//
//   connecting --welcome--> welcomed --shutdown--> finished (OK)
//       ^  |                   |  --refused--> finished (kInvalidInput)
//       |  +-- no coordinator  |
//       |      for give_up_after --> finished (kIoError)
//       +-- a new connection, hello-first, or silence for liveness beats
//
// On every new connection, and when told hello-first, it says hello; after
// the welcome it re-sends every result not yet acknowledged and offers its
// free capacity as credit. Results finished while not welcomed are kept and
// go after the next welcome. Silence for `liveness` heartbeats asks the
// driver for a new connection (ZeroMQ's own may wait on a dead tcp one).
//
// Thread-safety: one thread (the driver's).
#ifndef IMGSWEEP_WORKER_SESSION_H_
#define IMGSWEEP_WORKER_SESSION_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/clock.h"
#include "protocol/messages.h"
#include "protocol/status.h"

namespace imgsweep {

struct SessionOptions {
  std::string name;     // for logs
  std::string connect;  // for logs
  Hello hello;
  unsigned capacity = 1;  // cells held at once: slots plus prefetch
  // Until the welcome says the coordinator's.
  std::chrono::milliseconds heartbeat = kDefaultHeartbeat;
  unsigned liveness = kDefaultLiveness;
  std::chrono::milliseconds give_up_after = std::chrono::minutes(10);
};

// A cell to run, the lease it came under and the sweep that lease is of.
struct Work {
  CellSpec spec;
  std::uint64_t lease_id = 0;
  std::string sweep_id;
};

class Session {
 public:
  enum class State { kConnecting, kWelcomed, kFinished };

  // Sends one frame on the connection if one is up: true when it went,
  // false when there is none now (the caller keeps nothing: the session
  // does); an error when the transport failed.
  using SendFn = std::function<Result<bool>(std::string_view frame)>;

  // REQUIRES: `clock` outlives the session.
  Session(SessionOptions options, const Clock* clock, SendFn send);

  State state() const { return state_; }
  bool finished() const { return state_ == State::kFinished; }
  // What the worker ends with once finished(): OK after a shutdown,
  // kInvalidInput when refused, kIoError after giving up.
  const Status& end() const { return end_; }
  std::size_t unacked() const { return unacked_.size(); }

  // A connection was made: the coordinator may not know this worker.
  Status OnConnected();
  // A frame from the coordinator; assigned cells are appended to `work`.
  // `held`: cells queued, running or finished on the slots.
  Status OnFrame(std::string_view frame, std::size_t held, std::vector<Work>* work);
  // Cells the slots finished: sent (when welcomed), several to a frame,
  // and kept until acked; then their slots' credit, and a heartbeat when
  // nothing else went for one.
  Status OnResults(std::vector<CellResult> done);
  // The coordinator has been silent for `liveness` heartbeats: the next
  // OnTick asks for a new connection unless a frame comes first.
  bool Silent() const { return SilentAt(clock_->Now()); }
  // Hello retries and giving up. True when the driver should make a new
  // connection: the coordinator has been silent for `liveness` heartbeats.
  Result<bool> OnTick();
  // The driver replaced the connection after OnTick asked it to.
  void OnReconnected();
  // How long the driver may wait for a frame before the next OnTick.
  std::chrono::milliseconds NextWait() const;
  // Asks for no more cells: no credit goes from now on. The cells the
  // coordinator already sent still arrive and run.
  void Drain() { draining_ = true; }
  bool draining() const { return draining_; }
  // Draining, nothing held (`held`: as in OnFrame), and every result
  // acknowledged, or no coordinator to acknowledge it: the worker may go.
  bool Drained(std::size_t held) const {
    return draining_ && held == 0 && (unacked_.empty() || state_ != State::kWelcomed);
  }

 private:
  Status Send(const std::string& frame);
  Status SendResults(std::span<const CellResult> results);
  Status Welcomed(const Welcome& welcome, std::size_t held);
  void Finish(Status end);
  bool SilentAt(Clock::TimePoint now) const { return now - last_heard_ >= heartbeat_ * liveness_; }

  const SessionOptions options_;
  const Clock* const clock_;
  const SendFn send_;
  const std::string hello_;
  State state_ = State::kConnecting;
  Status end_;
  bool ever_welcomed_ = false;
  std::string sweep_id_;  // of the last welcome
  bool hello_due_ = false;  // on the next connection, or now when told hello-first
  bool draining_ = false;   // no more credit
  std::chrono::milliseconds heartbeat_;
  unsigned liveness_;
  std::map<std::string, CellResult> unacked_;  // by key
  Clock::TimePoint last_sent_;
  Clock::TimePoint last_heard_;
  Clock::TimePoint alone_since_;  // without a welcome since
  Clock::TimePoint next_waiting_note_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_SESSION_H_
