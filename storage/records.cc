// The store's values as msgpack: cell records and lease grants.
#include "storage/records.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <msgpack.hpp>
#include <type_traits>

#include "protocol/sha256.h"

namespace imgsweep {
namespace {

// Records are msgpack maps keyed by field name (docs/storage.md), written and
// read with msgpack-c directly: a million-cell sweep encodes one per result
// and decodes each on load, so no intermediate document is built. Unknown
// fields are skipped, so later fields can be added without a new layout.
using Packer = msgpack::packer<msgpack::sbuffer>;

void PackField(Packer& p, std::string_view name) {
  p.pack_str(static_cast<std::uint32_t>(name.size()));
  p.pack_str_body(name.data(), static_cast<std::uint32_t>(name.size()));
}

void PackText(Packer& p, std::string_view name, std::string_view value) {
  PackField(p, name);
  p.pack_str(static_cast<std::uint32_t>(value.size()));
  p.pack_str_body(value.data(), static_cast<std::uint32_t>(value.size()));
}

// A digest is packed as its 32 bytes (msgpack bin) rather than its 64 hex
// digits: a record holds four, and a result's record is written on the
// committer's thread, copied into the write-ahead log and the memtable,
// then compressed at each flush; the hex form was a quarter of a record's
// bytes. Anything else (an empty digest: an infrastructure failure printed
// nothing) stays text. Records written as text read the same.
void PackDigest(Packer& p, std::string_view name, std::string_view hex) {
  Sha256Bytes bytes;
  if (!Sha256FromHex(hex, &bytes)) return PackText(p, name, hex);
  PackField(p, name);
  p.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  p.pack_bin_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
}

template <typename T>
void PackNumber(Packer& p, std::string_view name, T value) {
  PackField(p, name);
  p.pack(value);
}

// The fields of one msgpack map, by name. A missing or mistyped field
// sets the reader's error and yields a zero value, so a decoder reads on and
// checks error() once at the end (DecodeRecord names the cell).
class MapReader {
 public:
  MapReader(const msgpack::object& o, std::string* error) : error_(error) {
    if (o.type == msgpack::type::MAP) {
      map_ = &o.via.map;
    } else {
      Fail("not a map");
    }
  }
  const msgpack::object* Find(std::string_view name) const {
    if (map_ == nullptr) return nullptr;
    for (std::uint32_t i = 0; i < map_->size; ++i) {
      const msgpack::object& key = map_->ptr[i].key;
      if (key.type == msgpack::type::STR && std::string_view(key.via.str.ptr, key.via.str.size) == name) {
        return &map_->ptr[i].val;
      }
    }
    return nullptr;
  }
  template <typename T>
  T Number(std::string_view name) const {
    const msgpack::object* found = Find(name);
    if (found == nullptr) return Missing<T>(name);
    return Convert<T>(*found, name);
  }
  template <typename T>
  T NumberOr(std::string_view name, T fallback) const {
    const msgpack::object* found = Find(name);
    return found == nullptr ? fallback : Convert<T>(*found, name);
  }
  std::string TextOr(std::string_view name, std::string fallback) const {
    if (Find(name) == nullptr) return fallback;
    return Text(name);
  }
  std::string Text(std::string_view name) const {
    const msgpack::object* found = Find(name);
    if (found == nullptr) return Missing<std::string>(name);
    if (found->type != msgpack::type::STR) {
      Fail("field \"" + std::string(name) + "\" is not text");
      return {};
    }
    return std::string(found->via.str.ptr, found->via.str.size);
  }
  // A digest as 64 hex digits, from its 32 bytes or from text (records
  // written before digests were packed as bytes, and empty digests).
  std::string Digest(std::string_view name) const {
    const msgpack::object* found = Find(name);
    if (found == nullptr) return Missing<std::string>(name);
    if (found->type == msgpack::type::STR) return Text(name);
    Sha256Bytes bytes;
    if (found->type != msgpack::type::BIN || found->via.bin.size != bytes.size()) {
      Fail("field \"" + std::string(name) + "\" is not a digest");
      return {};
    }
    std::memcpy(bytes.data(), found->via.bin.ptr, bytes.size());
    return Sha256ToHex(bytes);
  }
  // An enum stored as a number in [0, last].
  template <typename E>
  E Enum(std::string_view name, E last, int fallback = -1) const {
    const int n = fallback < 0 ? Number<int>(name) : NumberOr<int>(name, fallback);
    if (n < 0 || n > static_cast<int>(last)) {
      Fail("field \"" + std::string(name) + "\" is out of range");
      return E{};
    }
    return static_cast<E>(n);
  }
  void Fail(std::string why) const {
    if (error_->empty()) *error_ = std::move(why);
  }

 private:
  template <typename T>
  T Missing(std::string_view name) const {
    Fail("no field \"" + std::string(name) + "\"");
    return T{};
  }
  template <typename T>
  T Convert(const msgpack::object& o, std::string_view name) const {
    if (o.type == msgpack::type::POSITIVE_INTEGER &&
        o.via.u64 <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
      return static_cast<T>(o.via.u64);
    }
    if (o.type == msgpack::type::NEGATIVE_INTEGER && std::is_signed_v<T> &&
        o.via.i64 >= static_cast<std::int64_t>(std::numeric_limits<T>::min())) {
      return static_cast<T>(o.via.i64);
    }
    Fail("field \"" + std::string(name) + "\" is not a number in range");
    return T{};
  }
  const msgpack::object_map* map_ = nullptr;
  std::string* const error_;
};

void DecodeAttempt(const msgpack::object& o, Attempt* a, std::string* error) {
  const MapReader ra(o, error);
  a->number = ra.Number<std::uint32_t>("n");
  a->outcome = ra.Enum<Outcome>("outcome", Outcome::kUnsupported);
  a->exit_code = ra.Number<std::int32_t>("exit_code");
  a->signal = ra.Number<std::int32_t>("signal");
  a->stdout_sha256 = ra.Digest("stdout");
  a->stderr_sha256 = ra.Digest("stderr");
  a->stdout_bytes = ra.Number<std::uint64_t>("stdout_bytes");
  a->stderr_bytes = ra.Number<std::uint64_t>("stderr_bytes");
  a->duration_us = ra.Number<std::uint64_t>("duration_us");
  a->started_unix_ms = ra.Number<std::int64_t>("started_unix_ms");
  a->worker = ra.Text("worker");
  a->host = ra.Text("host");
  a->version_line = ra.Text("version_line");
  a->binary_sha256 = ra.Digest("binary_sha256");
  a->failure = ra.Text("failure");
  // Records of stores made before failure kinds were stored have none.
  a->failure_kind = ra.Enum<FailureKind>("kind", kLastFailureKind, /*fallback=*/0);
  // Nor a layout, before layouts were.
  a->image_layout = ra.TextOr("layout", "");
}

}  // namespace

std::string EncodeRecord(const CellRecord& record) {
  msgpack::sbuffer buffer(256 * (record.attempts.size() + 1));
  Packer p(&buffer);
  p.pack_map(4);
  PackNumber(p, "state", static_cast<int>(record.state));
  PackNumber(p, "round_start", record.round_start);
  PackDigest(p, "inputs", record.inputs);
  PackField(p, "attempts");
  p.pack_array(static_cast<std::uint32_t>(record.attempts.size()));
  for (const Attempt& a : record.attempts) {
    p.pack_map(17);
    PackNumber(p, "n", a.number);
    PackNumber(p, "outcome", static_cast<int>(a.outcome));
    PackNumber(p, "exit_code", a.exit_code);
    PackNumber(p, "signal", a.signal);
    PackDigest(p, "stdout", a.stdout_sha256);
    PackDigest(p, "stderr", a.stderr_sha256);
    PackNumber(p, "stdout_bytes", a.stdout_bytes);
    PackNumber(p, "stderr_bytes", a.stderr_bytes);
    PackNumber(p, "duration_us", a.duration_us);
    PackNumber(p, "started_unix_ms", a.started_unix_ms);
    PackText(p, "worker", a.worker);
    PackText(p, "host", a.host);
    PackText(p, "version_line", a.version_line);
    PackDigest(p, "binary_sha256", a.binary_sha256);
    PackText(p, "failure", a.failure);
    PackNumber(p, "kind", static_cast<int>(a.failure_kind));
    PackText(p, "layout", a.image_layout);
  }
  return std::string(buffer.data(), buffer.size());
}

std::string EncodeLease(const LeaseRecord& lease) {
  msgpack::sbuffer buffer(64 + 32 * lease.cells.size());
  Packer p(&buffer);
  p.pack_map(2);
  PackText(p, "session", lease.session);
  PackField(p, "cells");
  p.pack_array(static_cast<std::uint32_t>(lease.cells.size()));
  for (const std::string& cell : lease.cells) {
    p.pack_str(static_cast<std::uint32_t>(cell.size()));
    p.pack_str_body(cell.data(), static_cast<std::uint32_t>(cell.size()));
  }
  return std::string(buffer.data(), buffer.size());
}

// kCorruption naming the cell: the store wrote these bytes itself, so a
// record it cannot read is damage, not input to refuse.
Result<CellRecord> DecodeRecord(std::string_view key, std::string_view bytes) {
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(bytes.data(), bytes.size());
  } catch (const std::exception& e) {  // msgpack-c reports malformed bytes by throwing
    return Status::Corruption("store: record of cell " + std::string(key) +
                              " is unreadable: " + e.what());
  }
  std::string error;
  const MapReader r(handle.get(), &error);
  CellRecord record;
  record.state = r.Enum<CellState>("state", CellState::kFailed);
  record.round_start = r.NumberOr<std::uint32_t>("round_start", 0);
  if (r.Find("inputs") != nullptr) record.inputs = r.Digest("inputs");
  const msgpack::object* attempts = r.Find("attempts");
  if (attempts == nullptr || attempts->type != msgpack::type::ARRAY) {
    r.Fail("attempts: not a list");
  } else {
    record.attempts.resize(attempts->via.array.size);
    for (std::uint32_t i = 0; i < attempts->via.array.size && error.empty(); ++i) {
      DecodeAttempt(attempts->via.array.ptr[i], &record.attempts[i], &error);
    }
  }
  if (!error.empty()) {
    return Status::Corruption("store: record of cell " + std::string(key) +
                              " is unreadable: " + error);
  }
  return record;
}

Result<LeaseRecord> DecodeLease(std::string_view key, std::string_view bytes) {
  LeaseRecord lease;
  std::string error;
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(bytes.data(), bytes.size());
  } catch (const std::exception& e) {  // msgpack-c reports malformed bytes by throwing
    error = e.what();
  }
  if (error.empty()) {
    const MapReader r(handle.get(), &error);
    lease.session = r.Text("session");
    const msgpack::object* cells = r.Find("cells");
    if (cells == nullptr || cells->type != msgpack::type::ARRAY) {
      r.Fail("cells: not a list");
    } else {
      for (std::uint32_t i = 0; i < cells->via.array.size; ++i) {
        const msgpack::object& cell = cells->via.array.ptr[i];
        if (cell.type != msgpack::type::STR) {
          r.Fail("cells: not text");
          break;
        }
        lease.cells.emplace_back(cell.via.str.ptr, cell.via.str.size);
      }
    }
  }
  if (!error.empty()) {
    return Status::Corruption("store: record " + std::string(key) + " is unreadable: " + error);
  }
  return lease;
}

}  // namespace imgsweep
