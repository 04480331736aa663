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
#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/messages.h"
#include "protocol/status.h"

namespace imgsweep {

// A CURVE key pair in ZeroMQ's Z85 text form, 40 characters each.
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};
Result<CurveKeyPair> GenerateCurveKeyPair();
// The public key of a secret one; kInvalidInput unless it is a Z85 key.
Result<std::string> CurvePublicKey(const std::string& secret_key);

// Who may connect to a RouterSocket. Without `curve`, anyone (ZeroMQ's NULL
// mechanism: plain text). With it, only CURVE clients whose public key is in
// `allowed_clients`; a plain-text client fails the handshake and gets
// nothing.
struct ServerSecurity {
  std::optional<CurveKeyPair> curve;
  std::set<std::string> allowed_clients;
};
struct ClientSecurity {
  std::optional<CurveKeyPair> curve;
  std::string server_key;  // the RouterSocket's public key; REQUIRES: set with curve
};

// A connection the RouterSocket's authenticator turned away.
struct Refusal {
  std::string address;     // the peer's IP address
  std::string public_key;  // the key it offered (Z85)
};

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
  std::string address;  // the peer's IP address, when the transport knows it
  std::string frame;
  int parts = 0;
  int source_fd = -1;  // the connection it came on (tcp), for Disconnect
  std::string key;     // the peer's CURVE public key (Z85); empty in plain text
};

// Frames queued for one peer at most (ZMQ_SNDHWM); a peer that leaves
// this many unread cannot be sent more.
inline constexpr std::size_t kPeerQueueFrames = 1000;

// What the coordinator needs of its socket: the seam between its rules and
// ZeroMQ. RouterSocket is the real one; tests drive the coordinator through
// one of their own, on a FakeClock.
class ServerTransport {
 public:
  virtual ~ServerTransport() = default;
  virtual const std::string& endpoint() const = 0;
  // Never blocks. kNotFound when the peer is no longer connected, kBusy
  // when its outbound queue (kPeerQueueFrames) is full.
  virtual Status Send(std::string_view peer, std::string_view frame) = 0;
  // Waits up to `timeout` (zero: only what is queued), or until `wake_fd`
  // (when not -1) is readable; nullopt when nothing came.
  virtual Result<std::optional<Envelope>> Receive(std::chrono::milliseconds timeout,
                                                  int wake_fd) = 0;
  // The connections refused since the last call (CURVE keys not allowed).
  virtual std::vector<Refusal> TakeRefusals() = 0;
  // From now on only these CURVE keys complete a handshake (connections
  // made before are the caller's to cut off).
  virtual Status AllowKeys(std::set<std::string> keys) = 0;
  // Closes the connection `from` arrived on; the peer may come back as a
  // new one. REQUIRES: `from` was just received.
  virtual Status Disconnect(const Envelope& from) = 0;
};

class RouterSocket final : public ServerTransport {
 public:
  // `endpoint` like "tcp://127.0.0.1:5555" or "tcp://127.0.0.1:*" (any free
  // port; endpoint() then says which). A peer that sends a frame over
  // `max_frame_bytes` is disconnected by ZeroMQ before the frame is read.
  static Result<std::unique_ptr<RouterSocket>> Bind(Context& context, const std::string& endpoint,
                                                    const ServerSecurity& security = {},
                                                    std::size_t max_frame_bytes = kMaxFrameBytes);
  ~RouterSocket() override;
  RouterSocket(const RouterSocket&) = delete;
  RouterSocket& operator=(const RouterSocket&) = delete;

  const std::string& endpoint() const override { return endpoint_; }
  Status Send(std::string_view peer, std::string_view frame) override;
  Result<std::optional<Envelope>> Receive(std::chrono::milliseconds timeout,
                                          int wake_fd = -1) override;
  std::vector<Refusal> TakeRefusals() override;
  Status AllowKeys(std::set<std::string> keys) override;
  // Closes the tcp connection `from` arrived on; ZeroMQ then forgets that
  // peer (a DEALER reconnects as a new one). A ROUTER has no call for this,
  // so it shuts the socket down under ZeroMQ.
  // REQUIRES: `from` was just received: once its connection is gone, the
  // descriptor may name another.
  Status Disconnect(const Envelope& from) override;

 private:
  struct Impl;
  explicit RouterSocket(std::unique_ptr<Impl> impl, std::string endpoint);
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
};

// How a DealerSocket reconnects: ZeroMQ retries a lost or refused
// connection after `initial`, doubling the wait up to `max`.
struct ReconnectBackoff {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{2000};
};

class DealerSocket {
 public:
  // Connects lazily: a coordinator that is not up yet is retried by ZeroMQ,
  // and so is one that went away, with `backoff` between tries.
  static Result<std::unique_ptr<DealerSocket>> Connect(Context& context,
                                                       const std::string& endpoint,
                                                       const ClientSecurity& security = {},
                                                       ReconnectBackoff backoff = {});
  ~DealerSocket();
  DealerSocket(const DealerSocket&) = delete;
  DealerSocket& operator=(const DealerSocket&) = delete;

  // Frames are queued only on a live connection: without one, Send returns
  // false at once and the caller keeps what it could not send.
  Result<bool> Send(std::string_view frame);
  // Waits up to `timeout` for a frame, returning early (with nullopt) when
  // `wake_fd` (if >= 0) becomes readable or a connection was made.
  // kInvalidInput when the handshake with the peer failed (a key it does
  // not allow, another mechanism): that will not change by retrying.
  Result<std::optional<std::string>> Receive(std::chrono::milliseconds timeout, int wake_fd = -1);
  // Connections made (handshakes completed) since the last call: each one
  // is a peer that may not know this socket yet.
  int TakeConnections();

 private:
  struct Impl;
  explicit DealerSocket(std::unique_ptr<Impl> impl, std::string endpoint);
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_TRANSPORT_H_
