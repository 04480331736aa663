// The wire: ZeroMQ sockets behind a narrow interface. The coordinator binds a
// ROUTER, every worker connects a DEALER; one message is one frame (the
// ROUTER adds the peer's identity in front). cppzmq throws; this adapter
// turns every failure into a Status naming the endpoint.
//
// Thread-safety: a socket is used by one thread at a time (ZeroMQ's rule);
// the Context may be shared.
#ifndef IMGSWEEP_PROTOCOL_TRANSPORT_H_
#define IMGSWEEP_PROTOCOL_TRANSPORT_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace imgsweep {

class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

 private:
  friend class RouterSocket;
  friend class DealerSocket;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A message from a peer. `parts` is how many frames followed the identity;
// anything but 1 is malformed and `frame` holds the last of them.
struct Envelope {
  std::string peer;
  std::string frame;
  int parts = 0;
};

class RouterSocket {
 public:
  // `endpoint` like "tcp://127.0.0.1:5555" or "tcp://127.0.0.1:*" (any free
  // port; endpoint() then says which).
  static Result<std::unique_ptr<RouterSocket>> Bind(Context& context, const std::string& endpoint);
  ~RouterSocket();
  RouterSocket(const RouterSocket&) = delete;
  RouterSocket& operator=(const RouterSocket&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  // kNotFound when the peer is no longer connected.
  Status Send(std::string_view peer, std::string_view frame);
  // Waits up to `timeout` (zero: only what is queued); nullopt when nothing came.
  Result<std::optional<Envelope>> Receive(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit RouterSocket(std::unique_ptr<Impl> impl, std::string endpoint);
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
};

class DealerSocket {
 public:
  // Connects lazily: a coordinator that is not up yet is retried by ZeroMQ.
  static Result<std::unique_ptr<DealerSocket>> Connect(Context& context,
                                                       const std::string& endpoint);
  ~DealerSocket();
  DealerSocket(const DealerSocket&) = delete;
  DealerSocket& operator=(const DealerSocket&) = delete;

  Status Send(std::string_view frame);
  // Waits up to `timeout` for a frame, returning early (with nullopt) when
  // `wake_fd` (if >= 0) becomes readable.
  Result<std::optional<std::string>> Receive(std::chrono::milliseconds timeout, int wake_fd = -1);

 private:
  struct Impl;
  explicit DealerSocket(std::unique_ptr<Impl> impl, std::string endpoint);
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_TRANSPORT_H_
