// A ServerTransport driven by the test: it hands the coordinator the frames
// the test queued and keeps what the coordinator sent. Waiting for frames
// that are not there moves the FakeClock by the wait instead of waiting,
// except for a write in flight (wake_fd), which is waited for for real,
// up to a deadline.
// Thread-safety: the test's thread only (the coordinator runs on it).
#ifndef IMGSWEEP_TESTS_FAKE_TRANSPORT_H_
#define IMGSWEEP_TESTS_FAKE_TRANSPORT_H_

#include <poll.h>

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "protocol/clock.h"
#include "protocol/messages.h"
#include "protocol/transport.h"

namespace imgsweep {

class FakeTransport final : public ServerTransport {
 public:
  // What the test holds on to after the coordinator owns the transport.
  struct Wire {
    std::deque<Envelope> inbound;
    std::map<std::string, std::vector<Message>> sent;  // by peer
    std::set<std::string> gone;                        // peers that cannot be sent to
    std::size_t disconnects = 0;

    void Deliver(const std::string& peer, const Message& m) {
      inbound.push_back(Envelope{peer, "127.0.0.1", Encode(m), 1, -1, ""});
    }
    // The messages sent to `peer` since the last call, heartbeats left out.
    std::vector<Message> Take(const std::string& peer) {
      std::vector<Message> out;
      for (Message& m : sent[peer]) {
        if (!std::holds_alternative<Heartbeat>(m)) out.push_back(std::move(m));
      }
      sent[peer].clear();
      return out;
    }
  };

  FakeTransport(FakeClock* clock, Wire* wire) : clock_(clock), wire_(wire) {}

  const std::string& endpoint() const override { return endpoint_; }
  Status AllowKeys(std::set<std::string>) override { return Status::Ok(); }
  Status Send(std::string_view peer, std::string_view frame) override {
    if (wire_->gone.contains(std::string(peer))) return Status::NotFound("peer gone");
    Result<Message> m = Decode(frame);
    if (!m.ok()) return m.status();
    wire_->sent[std::string(peer)].push_back(std::move(m).value());
    return Status::Ok();
  }
  Result<std::optional<Envelope>> Receive(std::chrono::milliseconds timeout,
                                          int wake_fd) override {
    if (!wire_->inbound.empty()) {
      Envelope e = std::move(wire_->inbound.front());
      wire_->inbound.pop_front();
      return std::optional<Envelope>(std::move(e));
    }
    if (wake_fd >= 0) {  // the committer's write: real work, waited for with a deadline
      pollfd p{wake_fd, POLLIN, 0};
      (void)::poll(&p, 1, static_cast<int>(kWriteDeadline.count()));
      return std::optional<Envelope>();
    }
    clock_->Advance(timeout);
    return std::optional<Envelope>();
  }
  std::vector<Refusal> TakeRefusals() override { return {}; }
  Status Disconnect(const Envelope&) override {
    ++wire_->disconnects;
    return Status::Ok();
  }

 private:
  static constexpr std::chrono::milliseconds kWriteDeadline{10'000};
  FakeClock* const clock_;
  Wire* const wire_;
  const std::string endpoint_ = "fake://coordinator";
};

}  // namespace imgsweep

#endif  // IMGSWEEP_TESTS_FAKE_TRANSPORT_H_
