#include "protocol/messages.h"

#include <limits>
#include <msgpack.hpp>
#include <type_traits>

#include "protocol/frame_shape.h"

namespace imgsweep {
namespace {

// The kinds on the wire. Numbers never change meaning; new kinds get new ones.
enum Kind : std::uint32_t {
  kHello = 1,
  kWelcome = 2,
  kRefused = 3,
  kCredit = 4,
  kAssignment = 5,
  kResult = 6,
  kAck = 7,
  kHeartbeat = 8,
  kShutdown = 9,
  kHelloFirst = 10,
  kStatusRequest = 11,
  kStatusReply = 12,
  kResults = 13,
};

// A message's kind is its alternative's position in Message plus one; these
// pin every wire number to its alternative, so reordering Message cannot
// silently change the wire.
template <Kind kind, typename T>
constexpr bool kIsKind = std::is_same_v<std::variant_alternative_t<kind - 1, Message>, T>;
static_assert(kIsKind<kHello, Hello> && kIsKind<kWelcome, Welcome> && kIsKind<kRefused, Refused> &&
              kIsKind<kCredit, Credit> && kIsKind<kAssignment, Assignment> &&
              kIsKind<kResult, CellResult> && kIsKind<kAck, Ack> &&
              kIsKind<kHeartbeat, Heartbeat> && kIsKind<kShutdown, Shutdown> &&
              kIsKind<kHelloFirst, HelloFirst> && kIsKind<kStatusRequest, StatusRequest> &&
              kIsKind<kStatusReply, StatusReply> && kIsKind<kResults, Results> &&
              std::variant_size_v<Message> == kResults);

using Packer = msgpack::packer<msgpack::sbuffer>;

void Pack(Packer& p, const BrokenVersion& v) {
  p.pack_array(2);
  p.pack(v.name);
  p.pack(v.reason);
}

void Pack(Packer& p, const FileLayout& f) {
  p.pack_array(2);
  p.pack(f.path);
  p.pack(f.fingerprint);
}

void Pack(Packer& p, const VersionInfo& v) {
  p.pack_array(3);
  p.pack(v.name);
  p.pack(v.binary_sha256);
  p.pack(v.version_line);
}

void Pack(Packer& p, const CellSpec& c) {
  p.pack_array(8);
  p.pack(c.key);
  p.pack(c.version);
  p.pack(c.args);
  p.pack(c.image_path);
  p.pack(c.image_sha256);
  p.pack(c.timeout_ms);
  p.pack(c.attempt);
  p.pack(c.inputs);
}

template <typename T>
void PackVector(Packer& p, const std::vector<T>& items) {
  p.pack_array(static_cast<std::uint32_t>(items.size()));
  for (const T& item : items) Pack(p, item);
}

struct BodyPacker {
  Packer& p;
  void Body(const Hello& m) {
    p.pack_array(8);
    p.pack(m.name);
    p.pack(m.host);
    p.pack(m.slots);
    PackVector(p, m.versions);
    p.pack(m.session);
    PackVector(p, m.broken);
    PackVector(p, m.sparse);
    p.pack(m.command_table);
  }
  void Body(const Welcome& m) {
    p.pack_array(3);
    p.pack(m.sweep_id);
    p.pack(m.heartbeat_ms);
    p.pack(m.liveness);
  }
  void Body(const Refused& m) {
    p.pack_array(1);
    p.pack(m.reason);
  }
  void Body(const Credit& m) {
    p.pack_array(1);
    p.pack(m.cells);
  }
  void Body(const Assignment& m) {
    p.pack_array(3);
    p.pack(m.lease_id);
    p.pack(m.deadline_unix_ms);
    PackVector(p, m.cells);
  }
  void Body(const CellResult& m) {
    p.pack_array(14);
    p.pack(m.key);
    p.pack(m.attempt);
    p.pack(m.lease_id);
    p.pack(static_cast<std::uint32_t>(m.outcome));
    p.pack(m.exit_code);
    p.pack(m.signal);
    p.pack(m.stdout_text);
    p.pack(m.stderr_text);
    p.pack(m.duration_us);
    p.pack(m.started_unix_ms);
    p.pack(m.failure);
    p.pack(static_cast<std::uint32_t>(m.failure_kind));
    p.pack(m.sweep_id);
    p.pack(m.inputs);
  }
  void Body(const Results& m) { Batch(m.results); }
  void Batch(std::span<const CellResult> results) {
    p.pack_array(1);
    p.pack_array(static_cast<std::uint32_t>(results.size()));
    for (const CellResult& r : results) Body(r);
  }
  void Body(const Ack& m) {
    p.pack_array(1);
    p.pack(m.keys);
  }
  void Body(const Heartbeat&) { p.pack_array(0); }
  void Body(const HelloFirst&) { p.pack_array(0); }
  void Body(const StatusRequest&) { p.pack_array(0); }
  void Body(const StatusReply& m) {
    p.pack_array(1);
    p.pack(m.json);
  }
  void Body(const Shutdown& m) {
    p.pack_array(1);
    p.pack(m.reason);
  }
};

// Reads the fields of one array-shaped record in order, naming the record and
// the field in the first error. After an error every read is a no-op.
class FieldReader {
 public:
  FieldReader(const msgpack::object& object, std::string what, Status* error)
      : what_(std::move(what)), error_(error) {
    if (object.type != msgpack::type::ARRAY) {
      Fail("not an array");
      return;
    }
    items_ = object.via.array.ptr;
    size_ = object.via.array.size;
  }

  template <typename T>
  void Read(const char* field, T* out) {
    const msgpack::object* item = Next(field);
    if (item == nullptr) return;
    try {
      item->convert(*out);
    } catch (const std::exception&) {
      Fail(std::string("field \"") + field + "\": wrong type or out of range");
    }
  }

  // An array of records, each read by `read_one(reader, &element)`.
  template <typename T, typename ReadOne>
  void ReadRecords(const char* field, std::vector<T>* out, ReadOne read_one) {
    const msgpack::object* item = Next(field);
    if (item == nullptr) return;
    if (item->type != msgpack::type::ARRAY) {
      Fail(std::string("field \"") + field + "\": not an array");
      return;
    }
    out->resize(item->via.array.size);
    for (std::uint32_t i = 0; i < item->via.array.size && error_->ok(); ++i) {
      FieldReader element(item->via.array.ptr[i],
                          what_ + " " + field + "[" + std::to_string(i) + "]", error_);
      read_one(element, &(*out)[i]);
    }
  }

  void Fail(const std::string& problem) {
    if (error_->ok()) *error_ = Status::InvalidInput(what_ + ": " + problem);
  }

 private:
  const msgpack::object* Next(const char* field) {
    if (!error_->ok()) return nullptr;
    if (index_ >= size_) {
      Fail(std::string("field \"") + field + "\" is missing");
      return nullptr;
    }
    return &items_[index_++];
  }

  std::string what_;
  Status* error_;
  const msgpack::object* items_ = nullptr;
  std::uint32_t size_ = 0;
  std::uint32_t index_ = 0;
};

void ReadVersion(FieldReader& r, VersionInfo* v) {
  r.Read("name", &v->name);
  r.Read("binary_sha256", &v->binary_sha256);
  r.Read("version_line", &v->version_line);
}

void ReadBroken(FieldReader& r, BrokenVersion* v) {
  r.Read("name", &v->name);
  r.Read("reason", &v->reason);
}

void ReadLayout(FieldReader& r, FileLayout* f) {
  r.Read("path", &f->path);
  r.Read("fingerprint", &f->fingerprint);
}

void ReadCell(FieldReader& r, CellSpec* c) {
  r.Read("key", &c->key);
  r.Read("version", &c->version);
  r.Read("args", &c->args);
  r.Read("image_path", &c->image_path);
  r.Read("image_sha256", &c->image_sha256);
  r.Read("timeout_ms", &c->timeout_ms);
  r.Read("attempt", &c->attempt);
  r.Read("inputs", &c->inputs);
}

CellResult ReadResult(const msgpack::object& body, Status* error) {
  CellResult m;
  std::uint32_t outcome = 0;
  std::uint32_t failure_kind = 0;
  FieldReader r(body, "result", error);
  r.Read("key", &m.key);
  r.Read("attempt", &m.attempt);
  r.Read("lease_id", &m.lease_id);
  r.Read("outcome", &outcome);
  r.Read("exit_code", &m.exit_code);
  r.Read("signal", &m.signal);
  r.Read("stdout", &m.stdout_text);
  r.Read("stderr", &m.stderr_text);
  r.Read("duration_us", &m.duration_us);
  r.Read("started_unix_ms", &m.started_unix_ms);
  r.Read("failure", &m.failure);
  r.Read("failure_kind", &failure_kind);
  r.Read("sweep_id", &m.sweep_id);
  r.Read("inputs", &m.inputs);
  // kUnsupported is the coordinator's to record: no worker may claim it.
  if (outcome > static_cast<std::uint32_t>(Outcome::kInfraFailure)) {
    r.Fail("field \"outcome\": unknown value " + std::to_string(outcome));
  }
  if (failure_kind > static_cast<std::uint32_t>(kLastFailureKind)) {
    r.Fail("field \"failure_kind\": unknown value " + std::to_string(failure_kind));
  }
  m.outcome = static_cast<Outcome>(outcome);
  m.failure_kind = static_cast<FailureKind>(failure_kind);
  return m;
}

Results ReadResults(const msgpack::object& body, Status* error) {
  Results m;
  if (body.type != msgpack::type::ARRAY || body.via.array.size != 1 ||
      body.via.array.ptr[0].type != msgpack::type::ARRAY) {
    *error = Status::InvalidInput("results: not an array of one array of results");
    return m;
  }
  const msgpack::object& list = body.via.array.ptr[0];
  if (list.via.array.size == 0 || list.via.array.size > kResultsPerFrame) {
    *error = Status::InvalidInput("results: " + std::to_string(list.via.array.size) +
                                  " results; a frame holds 1 to " + std::to_string(kResultsPerFrame));
    return m;
  }
  m.results.reserve(list.via.array.size);
  for (std::uint32_t i = 0; i < list.via.array.size && error->ok(); ++i) {
    m.results.push_back(ReadResult(list.via.array.ptr[i], error));
  }
  return m;
}

Message DecodeBody(std::uint32_t kind, const msgpack::object& body, Status* error) {
  switch (kind) {
    case kHello: {
      Hello m;
      FieldReader r(body, "hello", error);
      r.Read("name", &m.name);
      r.Read("host", &m.host);
      r.Read("slots", &m.slots);
      r.ReadRecords("versions", &m.versions, ReadVersion);
      r.Read("session", &m.session);
      r.ReadRecords("broken", &m.broken, ReadBroken);
      r.ReadRecords("sparse", &m.sparse, ReadLayout);
      r.Read("command_table", &m.command_table);
      return m;
    }
    case kWelcome: {
      Welcome m;
      FieldReader r(body, "welcome", error);
      r.Read("sweep_id", &m.sweep_id);
      r.Read("heartbeat_ms", &m.heartbeat_ms);
      r.Read("liveness", &m.liveness);
      return m;
    }
    case kRefused: {
      Refused m;
      FieldReader(body, "refused", error).Read("reason", &m.reason);
      return m;
    }
    case kCredit: {
      Credit m;
      FieldReader(body, "credit", error).Read("cells", &m.cells);
      return m;
    }
    case kAssignment: {
      Assignment m;
      FieldReader r(body, "assignment", error);
      r.Read("lease_id", &m.lease_id);
      r.Read("deadline_unix_ms", &m.deadline_unix_ms);
      r.ReadRecords("cells", &m.cells, ReadCell);
      return m;
    }
    case kResult:
      return ReadResult(body, error);
    case kResults:
      return ReadResults(body, error);
    case kAck: {
      Ack m;
      FieldReader(body, "ack", error).Read("keys", &m.keys);
      return m;
    }
    case kHeartbeat:
      FieldReader(body, "heartbeat", error);
      return Heartbeat{};
    case kHelloFirst:
      FieldReader(body, "hello-first", error);
      return HelloFirst{};
    case kStatusRequest:
      FieldReader(body, "status-request", error);
      return StatusRequest{};
    case kStatusReply: {
      StatusReply m;
      FieldReader(body, "status-reply", error).Read("json", &m.json);
      return m;
    }
    case kShutdown: {
      Shutdown m;
      FieldReader(body, "shutdown", error).Read("reason", &m.reason);
      return m;
    }
    default:
      *error = Status::InvalidInput("unknown message kind " + std::to_string(kind));
      return Heartbeat{};
  }
}

// The decoder's own bounds, behind CheckFrameShape's: no container over the
// item cap, no string over the frame, no ext at all.
msgpack::unpack_limit FrameLimits(std::size_t frame_size) {
  const auto bytes = static_cast<std::size_t>(std::min<std::size_t>(frame_size, UINT32_MAX));
  return msgpack::unpack_limit(kMaxFrameItems, kMaxFrameItems / 2, bytes, bytes, 0, kMaxFrameDepth);
}

// Strings and binaries point into the frame instead of being copied: the
// frame outlives the handle, and the message copies what it keeps.
bool ReferenceFrame(msgpack::type::object_type, std::size_t, void*) { return true; }

}  // namespace

std::string Encode(const Message& message) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_array(3);
  p.pack(kProtocolVersion);
  p.pack(static_cast<std::uint32_t>(message.index()) + 1);  // the Kind; see the asserts above
  BodyPacker body{p};
  std::visit([&](const auto& m) { body.Body(m); }, message);
  return std::string(buffer.data(), buffer.size());
}

std::string EncodeResults(std::span<const CellResult> results) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_array(3);
  p.pack(kProtocolVersion);
  p.pack(static_cast<std::uint32_t>(kResults));
  BodyPacker{p}.Batch(results);
  return std::string(buffer.data(), buffer.size());
}

Result<Message> Decode(std::string_view frame) {
  if (frame.size() > kMaxFrameBytes) {
    return Status::InvalidInput("frame of " + std::to_string(frame.size()) +
                                " bytes is over the limit of " + std::to_string(kMaxFrameBytes));
  }
  if (Status shape = CheckFrameShape(frame); !shape.ok()) return shape;
  msgpack::object_handle handle;
  try {
    std::size_t offset = 0;
    handle = msgpack::unpack(frame.data(), frame.size(), offset, ReferenceFrame, nullptr,
                             FrameLimits(frame.size()));
  } catch (const std::exception& e) {
    return Status::InvalidInput(std::string("frame is not msgpack: ") + e.what());
  }
  const msgpack::object& envelope = handle.get();
  if (envelope.type != msgpack::type::ARRAY || envelope.via.array.size != 3) {
    return Status::InvalidInput("frame is not an envelope [version, kind, body]");
  }
  const msgpack::object* parts = envelope.via.array.ptr;
  if (parts[0].type != msgpack::type::POSITIVE_INTEGER ||
      parts[1].type != msgpack::type::POSITIVE_INTEGER) {
    return Status::InvalidInput("envelope: version and kind must be unsigned integers");
  }
  if (parts[0].via.u64 != kProtocolVersion) {
    return Status::InvalidInput("protocol version " + std::to_string(parts[0].via.u64) +
                                " is not supported (this side speaks " +
                                std::to_string(kProtocolVersion) + ")");
  }
  if (parts[1].via.u64 > UINT32_MAX) {
    return Status::InvalidInput("unknown message kind " + std::to_string(parts[1].via.u64));
  }
  if (parts[1].via.u64 != kResult && parts[1].via.u64 != kResults && parts[1].via.u64 != kStatusReply &&
      frame.size() > kMaxControlFrameBytes) {
    return Status::InvalidInput("frame of kind " + std::to_string(parts[1].via.u64) + " has " +
                                std::to_string(frame.size()) + " bytes; only results or a "
                                "status reply may be over " +
                                std::to_string(kMaxControlFrameBytes));
  }
  Status error;
  Message message = DecodeBody(static_cast<std::uint32_t>(parts[1].via.u64), parts[2], &error);
  if (!error.ok()) return error;
  return message;
}

}  // namespace imgsweep
