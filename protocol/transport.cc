// The cppzmq adapter: the only file that includes ZeroMQ.
#include "protocol/transport.h"

#include <array>
#include <vector>
#include <zmq.hpp>

#include "protocol/messages.h"

namespace imgsweep {
namespace {

Status ZmqError(const std::string& context, const zmq::error_t& e) {
  return Status::FromErrno(context, e.num());  // e.what() is that errno's text
}

void SetCommonOptions(zmq::socket_t& socket) {
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxFrameBytes));
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

}  // namespace

struct Context::Impl {
  zmq::context_t context;
};

Context::Context() : impl_(std::make_unique<Impl>()) {}
Context::~Context() = default;

struct RouterSocket::Impl {
  explicit Impl(zmq::context_t& context) : socket(context, zmq::socket_type::router) {}
  zmq::socket_t socket;
};

RouterSocket::RouterSocket(std::unique_ptr<Impl> impl, std::string endpoint)
    : impl_(std::move(impl)), endpoint_(std::move(endpoint)) {}
RouterSocket::~RouterSocket() = default;

Result<std::unique_ptr<RouterSocket>> RouterSocket::Bind(Context& context,
                                                         const std::string& endpoint) {
  try {
    auto impl = std::make_unique<Impl>(context.impl_->context);
    SetCommonOptions(impl->socket);
    // Sending to a peer that has gone is an error we see, not a silent drop.
    impl->socket.set(zmq::sockopt::router_mandatory, 1);
    impl->socket.bind(endpoint);
    std::string bound = impl->socket.get(zmq::sockopt::last_endpoint);
    return std::unique_ptr<RouterSocket>(new RouterSocket(std::move(impl), std::move(bound)));
  } catch (const zmq::error_t& e) {
    return ZmqError("cannot listen on " + endpoint, e);
  }
}

Status RouterSocket::Send(std::string_view peer, std::string_view frame) {
  try {
    if (!impl_->socket.send(zmq::buffer(peer.data(), peer.size()), zmq::send_flags::sndmore)) {
      return Status::NotFound("peer is not connected");
    }
    impl_->socket.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::none);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return Status::NotFound("peer is no longer connected");
    return ZmqError("send on " + endpoint_, e);
  }
}

Result<std::optional<Envelope>> RouterSocket::Receive(std::chrono::milliseconds timeout) {
  try {
    std::array<zmq::pollitem_t, 1> items{{{impl_->socket.handle(), 0, ZMQ_POLLIN, 0}}};
    if (zmq::poll(items.data(), items.size(), std::chrono::milliseconds(PollTimeout(timeout))) ==
        0) {
      return std::optional<Envelope>();
    }
    Envelope envelope;
    zmq::message_t part;
    if (!impl_->socket.recv(part, zmq::recv_flags::dontwait)) return std::optional<Envelope>();
    envelope.peer = ToString(part);
    while (part.more()) {
      if (!impl_->socket.recv(part, zmq::recv_flags::none)) break;
      ++envelope.parts;
      envelope.frame = ToString(part);
    }
    return std::optional<Envelope>(std::move(envelope));
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::optional<Envelope>();
    return ZmqError("receive on " + endpoint_, e);
  }
}

struct DealerSocket::Impl {
  explicit Impl(zmq::context_t& context) : socket(context, zmq::socket_type::dealer) {}
  zmq::socket_t socket;
};

DealerSocket::DealerSocket(std::unique_ptr<Impl> impl, std::string endpoint)
    : impl_(std::move(impl)), endpoint_(std::move(endpoint)) {}
DealerSocket::~DealerSocket() = default;

Result<std::unique_ptr<DealerSocket>> DealerSocket::Connect(Context& context,
                                                            const std::string& endpoint) {
  try {
    auto impl = std::make_unique<Impl>(context.impl_->context);
    SetCommonOptions(impl->socket);
    impl->socket.connect(endpoint);
    return std::unique_ptr<DealerSocket>(new DealerSocket(std::move(impl), endpoint));
  } catch (const zmq::error_t& e) {
    return ZmqError("cannot connect to " + endpoint, e);
  }
}

Status DealerSocket::Send(std::string_view frame) {
  try {
    impl_->socket.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::none);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return ZmqError("send to " + endpoint_, e);
  }
}

Result<std::optional<std::string>> DealerSocket::Receive(std::chrono::milliseconds timeout,
                                                         int wake_fd) {
  try {
    std::array<zmq::pollitem_t, 2> items{
        {{impl_->socket.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake_fd, ZMQ_POLLIN, 0}}};
    const std::size_t count = wake_fd >= 0 ? 2 : 1;
    if (zmq::poll(items.data(), count, std::chrono::milliseconds(PollTimeout(timeout))) == 0 ||
        (items[0].revents & ZMQ_POLLIN) == 0) {
      return std::optional<std::string>();
    }
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

}  // namespace imgsweep
