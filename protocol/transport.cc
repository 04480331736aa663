// The cppzmq adapter: the only file that includes ZeroMQ.
#include "protocol/transport.h"

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "protocol/messages.h"

namespace imgsweep {
namespace {

Status ZmqError(const std::string& context, const zmq::error_t& e) {
  return Status::FromErrno(context, e.num());  // e.what() is that errno's text
}

constexpr std::size_t kZ85KeyLength = 40;
constexpr std::size_t kBinaryKeyLength = 32;
// ZeroMQ asks whoever binds this endpoint in the socket's context whether a
// handshake may complete (ZAP, RFC 27).
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr auto kZapPoll = std::chrono::milliseconds(100);

bool IsZ85Key(const std::string& key) {
  std::array<std::uint8_t, kBinaryKeyLength> bytes{};
  return key.size() == kZ85KeyLength && zmq_z85_decode(bytes.data(), key.c_str()) != nullptr;
}

void SetCurveKeys(zmq::socket_t& socket, const CurveKeyPair& keys) {
  socket.set(zmq::sockopt::curve_publickey, keys.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
}

void SetCommonOptions(zmq::socket_t& socket, std::size_t max_frame_bytes) {
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(max_frame_bytes));
  // Unsent frames get a moment to leave at close; a gone peer cannot hold
  // the process open longer than that.
  socket.set(zmq::sockopt::linger, 2000);
}

std::string ToString(const zmq::message_t& message) {
  return std::string(static_cast<const char*>(message.data()), message.size());
}

int PollTimeout(std::chrono::milliseconds timeout) {
  return static_cast<int>(std::max<std::int64_t>(0, timeout.count()));
}


// Answers ZeroMQ's authentication requests on a thread of its own, admitting
// the allowed public keys and recording who was turned away.
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& context, std::set<std::string> allowed)
      : socket_(context, zmq::socket_type::rep), allowed_(std::move(allowed)) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(kZapEndpoint);  // before the ROUTER binds: no handshake is unanswered
    thread_ = std::thread([this] { Loop(); });
  }
  ~ZapHandler() {
    stop_ = true;
    thread_.join();
  }
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  void Allow(std::set<std::string> keys) {
    std::lock_guard<std::mutex> lock(mu_);
    allowed_ = std::move(keys);
  }

  std::vector<Refusal> TakeRefusals() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(refusals_, {});
  }

 private:
  void Loop() {
    while (!stop_) {
      try {
        std::array<zmq::pollitem_t, 1> items{{{socket_.handle(), 0, ZMQ_POLLIN, 0}}};
        if (zmq::poll(items.data(), items.size(), kZapPoll) == 0) continue;
        std::vector<std::string> request;
        zmq::message_t part;
        do {
          if (!socket_.recv(part, zmq::recv_flags::none)) break;
          request.push_back(ToString(part));
        } while (part.more());
        Answer(request);
      } catch (const zmq::error_t&) {
        return;  // the context is going away
      }
    }
  }

  // Request: version, request id, domain, address, identity, mechanism,
  // credentials. Reply: version, request id, status code and text, user id,
  // metadata.
  void Answer(const std::vector<std::string>& request) {
    std::string code = "400", text = "malformed request", key;
    if (request.size() >= 7 && request[0] == "1.0" && request[5] == "CURVE" &&
        request[6].size() == kBinaryKeyLength) {
      std::array<char, kZ85KeyLength + 1> z85{};
      zmq_z85_encode(z85.data(), reinterpret_cast<const std::uint8_t*>(request[6].data()),
                     kBinaryKeyLength);
      key = z85.data();
      bool allowed = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        allowed = allowed_.contains(key);
      }
      if (allowed) {
        code = "200";
        text = "OK";
      } else {
        text = "key not allowed";
        std::lock_guard<std::mutex> lock(mu_);
        refusals_.push_back(Refusal{request[3], key});
      }
    } else if (request.size() >= 6) {
      text = "mechanism " + request[5] + " is not allowed";
      std::lock_guard<std::mutex> lock(mu_);
      refusals_.push_back(Refusal{request[3], ""});
    }
    const std::string reply[] = {"1.0", request.size() > 1 ? request[1] : "", code, text,
                                 code == "200" ? key : "", ""};
    for (std::size_t i = 0; i < std::size(reply); ++i) {
      socket_.send(zmq::buffer(reply[i]),
                   i + 1 < std::size(reply) ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }

  zmq::socket_t socket_;
  std::set<std::string> allowed_;  // guarded by mu_
  std::atomic<bool> stop_ = false;
  std::mutex mu_;
  std::vector<Refusal> refusals_;
  std::thread thread_;
};

}  // namespace

Result<CurveKeyPair> GenerateCurveKeyPair() {
  std::array<char, kZ85KeyLength + 1> pub{}, sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
    return Status::FromErrno("cannot make a CURVE key pair", zmq_errno());
  }
  return CurveKeyPair{pub.data(), sec.data()};
}

Result<std::string> CurvePublicKey(const std::string& secret_key) {
  std::array<char, kZ85KeyLength + 1> pub{};
  if (!IsZ85Key(secret_key) || zmq_curve_public(pub.data(), secret_key.c_str()) != 0) {
    return Status::InvalidInput("not a CURVE key (40 characters of Z85)");
  }
  return std::string(pub.data());
}

struct Context::Impl {
  zmq::context_t context;
};

Context::Context() : impl_(std::make_unique<Impl>()) {}
Context::~Context() = default;

struct RouterSocket::Impl {
  explicit Impl(zmq::context_t& context) : socket(context, zmq::socket_type::router) {}
  // Declared first, so it is destroyed after the socket it authenticates for.
  std::unique_ptr<ZapHandler> zap;
  zmq::socket_t socket;
};

RouterSocket::RouterSocket(std::unique_ptr<Impl> impl, std::string endpoint)
    : impl_(std::move(impl)), endpoint_(std::move(endpoint)) {}
RouterSocket::~RouterSocket() = default;

Result<std::unique_ptr<RouterSocket>> RouterSocket::Bind(Context& context,
                                                         const std::string& endpoint,
                                                         const ServerSecurity& security,
                                                         std::size_t max_frame_bytes) {
  try {
    auto impl = std::make_unique<Impl>(context.impl_->context);
    SetCommonOptions(impl->socket, max_frame_bytes);
    if (security.curve) {
      if (!IsZ85Key(security.curve->secret_key)) {
        return Status::InvalidInput("the coordinator's secret key is not a CURVE key");
      }
      impl->zap = std::make_unique<ZapHandler>(context.impl_->context, security.allowed_clients);
      impl->socket.set(zmq::sockopt::curve_server, 1);
      SetCurveKeys(impl->socket, *security.curve);
    }
    // Sending to a peer that has gone is an error we see, not a silent drop;
    // so is sending to one whose queue is full (Send: kBusy).
    impl->socket.set(zmq::sockopt::router_mandatory, 1);
    impl->socket.set(zmq::sockopt::sndhwm, static_cast<int>(kPeerQueueFrames));
    impl->socket.bind(endpoint);
    std::string bound = impl->socket.get(zmq::sockopt::last_endpoint);
    return std::unique_ptr<RouterSocket>(new RouterSocket(std::move(impl), std::move(bound)));
  } catch (const zmq::error_t& e) {
    return ZmqError("cannot listen on " + endpoint, e);
  }
}

Status RouterSocket::Send(std::string_view peer, std::string_view frame) {
  try {
    // Never blocks: with ROUTER_MANDATORY a peer whose queue is full
    // (kPeerQueueFrames unread) makes the identity part fail with EAGAIN.
    if (!impl_->socket.send(zmq::buffer(peer.data(), peer.size()),
                            zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      return Status::Busy("the peer has " + std::to_string(kPeerQueueFrames) +
                          " frames unread");
    }
    // The rest of a message whose first part was taken always goes.
    impl_->socket.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::dontwait);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return Status::NotFound("peer is no longer connected");
    return ZmqError("send on " + endpoint_, e);
  }
}

Result<std::optional<Envelope>> RouterSocket::Receive(std::chrono::milliseconds timeout,
                                                      int wake_fd) {
  try {
    std::array<zmq::pollitem_t, 2> items{{{impl_->socket.handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, wake_fd, ZMQ_POLLIN, 0}}};
    const std::size_t count = wake_fd >= 0 ? 2 : 1;
    Envelope envelope;
    zmq::message_t part;
    // What is queued first: a poll per frame would cost a system call each
    // when results stream in.
    if (!impl_->socket.recv(part, zmq::recv_flags::dontwait)) {
      if (timeout.count() == 0 ||
          zmq::poll(items.data(), count, std::chrono::milliseconds(PollTimeout(timeout))) == 0) {
        return std::optional<Envelope>();
      }
      if (!impl_->socket.recv(part, zmq::recv_flags::dontwait)) return std::optional<Envelope>();
    }
    envelope.peer = ToString(part);
    while (part.more()) {
      if (!impl_->socket.recv(part, zmq::recv_flags::none)) break;
      ++envelope.parts;
      envelope.frame = ToString(part);
      if (envelope.address.empty()) {
        // The peer's frames carry the connection's metadata; the identity
        // part the ROUTER adds does not.
        try {
          // The ZAP handler answers an allowed key with the key as user id.
          if (impl_->zap != nullptr) envelope.key = part.gets("User-Id");
          envelope.address = part.gets("Peer-Address");
          envelope.source_fd = part.get(ZMQ_SRCFD);
        } catch (const zmq::error_t&) {
          // not every transport knows them (inproc)
        }
      }
    }
    return std::optional<Envelope>(std::move(envelope));
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::optional<Envelope>();
    return ZmqError("receive on " + endpoint_, e);
  }
}

Status RouterSocket::Disconnect(const Envelope& from) {
  if (from.source_fd < 0) return Status::NotFound("no connection to close for this peer");
  if (::shutdown(from.source_fd, SHUT_RDWR) != 0) {
    return Status::FromErrno("cannot close the connection of " + from.address, errno);
  }
  return Status::Ok();
}

Status RouterSocket::AllowKeys(std::set<std::string> keys) {
  if (!impl_->zap) return Status::InvalidInput("the socket is not on CURVE: it has no keys to allow");
  impl_->zap->Allow(std::move(keys));
  return Status::Ok();
}

std::vector<Refusal> RouterSocket::TakeRefusals() {
  return impl_->zap ? impl_->zap->TakeRefusals() : std::vector<Refusal>{};
}

struct DealerSocket::Impl {
  explicit Impl(zmq::context_t& context)
      : socket(context, zmq::socket_type::dealer), monitor(context, zmq::socket_type::pair) {}
  ~Impl() { zmq_socket_monitor(socket.handle(), nullptr, 0); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  zmq::socket_t socket;
  // Handshake failures of `socket`, as ZeroMQ's monitor reports them.
  zmq::socket_t monitor;
  bool curve = false;
  int unexplained_failures = 0;
  int connections = 0;  // handshakes completed, not yet taken
};

namespace {

constexpr int kHandshakeEvents = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_SUCCEEDED;

// A handshake that fails without a reason may be a connection that broke;
// this many in a row are taken for a refusal.
constexpr int kUnexplainedFailuresTolerated = 3;

// The monitor's messages: a frame of event (16 bits) and value (32 bits),
// then one with the endpoint. Counts completed handshakes; a failed one is
// an error unless it may be a connection that broke.
Status DrainMonitor(zmq::socket_t& monitor, const std::string& endpoint, bool curve,
                    int* unexplained, int* connections) {
  for (;;) {
    zmq::message_t event, where;
    if (!monitor.recv(event, zmq::recv_flags::dontwait)) return Status::Ok();
    if (event.more()) (void)monitor.recv(where, zmq::recv_flags::none);
    if (event.size() < 6) continue;
    std::uint16_t id = 0;
    std::uint32_t value = 0;
    std::memcpy(&id, event.data(), sizeof id);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
    const std::string prefix = "the handshake with " + endpoint + " failed: ";
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      *unexplained = 0;
      ++*connections;
      continue;
    }
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
      return Status::InvalidInput(prefix + "the coordinator does not allow this worker's key");
    }
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
        value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
      return Status::InvalidInput(prefix +
                                  "one side uses CURVE and the other does not (give the worker "
                                  "--curve-secret and --coordinator-key, or neither)");
    }
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL &&
        ++*unexplained < kUnexplainedFailuresTolerated) {
      continue;
    }
    if (id != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) continue;  // another protocol error: retried
    return Status::InvalidInput(
        prefix + (curve ? "the coordinator closed it; is --coordinator-key its public key?"
                        : "the coordinator closed it; does it require CURVE (--curve-secret and "
                          "--coordinator-key)?"));
  }
}

}  // namespace

DealerSocket::DealerSocket(std::unique_ptr<Impl> impl, std::string endpoint)
    : impl_(std::move(impl)), endpoint_(std::move(endpoint)) {}
DealerSocket::~DealerSocket() = default;

Result<std::unique_ptr<DealerSocket>> DealerSocket::Connect(Context& context,
                                                            const std::string& endpoint,
                                                            const ClientSecurity& security,
                                                            ReconnectBackoff backoff) {
  try {
    auto impl = std::make_unique<Impl>(context.impl_->context);
    SetCommonOptions(impl->socket, kMaxFrameBytes);
    impl->socket.set(zmq::sockopt::immediate, 1);
    impl->socket.set(zmq::sockopt::reconnect_ivl, static_cast<int>(backoff.initial.count()));
    impl->socket.set(zmq::sockopt::reconnect_ivl_max, static_cast<int>(backoff.max.count()));
    if (security.curve) {
      if (!IsZ85Key(security.curve->secret_key) || !IsZ85Key(security.server_key)) {
        return Status::InvalidInput("a worker key or the coordinator's key is not a CURVE key");
      }
      impl->socket.set(zmq::sockopt::curve_serverkey, security.server_key);
      SetCurveKeys(impl->socket, *security.curve);
      impl->curve = true;
    }
    // One monitor per socket, under a name never used before in this
    // process (a closed monitor's name may not be free again at once).
    static std::atomic<std::uint64_t> monitors{0};
    const std::string monitor = "inproc://imgsweep-monitor-" + std::to_string(++monitors);
    if (zmq_socket_monitor(impl->socket.handle(), monitor.c_str(), kHandshakeEvents) != 0) {
      return Status::FromErrno("cannot watch the connection to " + endpoint, zmq_errno());
    }
    impl->monitor.set(zmq::sockopt::linger, 0);
    impl->monitor.connect(monitor);
    impl->socket.connect(endpoint);
    return std::unique_ptr<DealerSocket>(new DealerSocket(std::move(impl), endpoint));
  } catch (const zmq::error_t& e) {
    return ZmqError("cannot connect to " + endpoint, e);
  }
}

Result<bool> DealerSocket::Send(std::string_view frame) {
  try {
    return impl_->socket.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::dontwait)
        .has_value();
  } catch (const zmq::error_t& e) {
    return ZmqError("send to " + endpoint_, e);
  }
}

Result<std::optional<std::string>> DealerSocket::Receive(std::chrono::milliseconds timeout,
                                                         int wake_fd) {
  try {
    std::array<zmq::pollitem_t, 3> items{{{impl_->socket.handle(), 0, ZMQ_POLLIN, 0},
                                          {impl_->monitor.handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, wake_fd, ZMQ_POLLIN, 0}}};
    const std::size_t count = wake_fd >= 0 ? 3 : 2;
    if (zmq::poll(items.data(), count, std::chrono::milliseconds(PollTimeout(timeout))) == 0) {
      return std::optional<std::string>();
    }
    if ((items[1].revents & ZMQ_POLLIN) != 0) {
      Status st = DrainMonitor(impl_->monitor, endpoint_, impl_->curve,
                               &impl_->unexplained_failures, &impl_->connections);
      if (!st.ok()) return st;
    }
    if ((items[0].revents & ZMQ_POLLIN) == 0) return std::optional<std::string>();
    zmq::message_t part;
    if (!impl_->socket.recv(part, zmq::recv_flags::dontwait)) return std::optional<std::string>();
    std::string frame = ToString(part);
    // A DEALER peer of ours sends single frames; extra parts are dropped.
    while (part.more()) (void)impl_->socket.recv(part, zmq::recv_flags::none);
    return std::optional<std::string>(std::move(frame));
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::optional<std::string>();
    return ZmqError("receive from " + endpoint_, e);
  }
}

int DealerSocket::TakeConnections() { return std::exchange(impl_->connections, 0); }

}  // namespace imgsweep
