// The RocksDB adapter: the only file that includes RocksDB.
#include "storage/store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <charconv>
#include <cstdio>
#include <limits>
#include <msgpack.hpp>
#include <set>
#include <type_traits>

namespace imgsweep {

CellWrite Reopened(std::string_view key, const CellRecord& record) {
  CellWrite write;
  write.key = std::string(key);
  write.record = record;
  write.record.state = CellState::kPending;
  write.record.round_start = static_cast<std::uint32_t>(record.attempts.size());
  return write;
}

bool OutcomeCounts::Add(const CellRecord& record) {
  if (record.state == CellState::kPending) return false;
  if (record.state == CellState::kFailed || record.attempts.empty()) {
    ++failed;
    return true;
  }
  const Attempt& last = record.attempts.back();
  switch (last.outcome) {
    case Outcome::kExited:
      ++(last.exit_code == 0 ? exited_zero : exited_nonzero);
      break;
    case Outcome::kSignaled:
      ++signaled;
      break;
    case Outcome::kTimeout:
      ++timeout;
      break;
    case Outcome::kInfraFailure:  // a done record ends with an outcome; this one is damaged
      ++failed;
      break;
  }
  return true;
}
namespace {

// Written once when a store is created and checked on every open, so a store
// of a later layout is refused instead of misread.
constexpr std::string_view kLayoutKey = "meta/layout";
constexpr std::string_view kLayout = "imgsweep-store 1";
constexpr std::string_view kCellPrefix = "cell/";
constexpr std::string_view kBlobPrefix = "blob/";
constexpr std::string_view kMetaPrefix = "meta/";
constexpr std::string_view kLeasePrefix = "lease/";

// Lease ids in fixed-width hex, so key order is id order.
std::string LeaseKey(std::uint64_t id) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(id));
  return std::string(kLeasePrefix) + hex;
}

std::string Key(std::string_view prefix, std::string_view name) {
  std::string key(prefix);
  key.append(name);
  return key;
}

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

template <typename T>
void PackNumber(Packer& p, std::string_view name, T value) {
  PackField(p, name);
  p.pack(value);
}

std::string EncodeRecord(const CellRecord& record) {
  msgpack::sbuffer buffer(256 * (record.attempts.size() + 1));
  Packer p(&buffer);
  p.pack_map(4);
  PackNumber(p, "state", static_cast<int>(record.state));
  PackNumber(p, "round_start", record.round_start);
  PackText(p, "inputs", record.inputs);
  PackField(p, "attempts");
  p.pack_array(static_cast<std::uint32_t>(record.attempts.size()));
  for (const Attempt& a : record.attempts) {
    p.pack_map(17);
    PackNumber(p, "n", a.number);
    PackNumber(p, "outcome", static_cast<int>(a.outcome));
    PackNumber(p, "exit_code", a.exit_code);
    PackNumber(p, "signal", a.signal);
    PackText(p, "stdout", a.stdout_sha256);
    PackText(p, "stderr", a.stderr_sha256);
    PackNumber(p, "stdout_bytes", a.stdout_bytes);
    PackNumber(p, "stderr_bytes", a.stderr_bytes);
    PackNumber(p, "duration_us", a.duration_us);
    PackNumber(p, "started_unix_ms", a.started_unix_ms);
    PackText(p, "worker", a.worker);
    PackText(p, "host", a.host);
    PackText(p, "version_line", a.version_line);
    PackText(p, "binary_sha256", a.binary_sha256);
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
  a->outcome = ra.Enum<Outcome>("outcome", Outcome::kInfraFailure);
  a->exit_code = ra.Number<std::int32_t>("exit_code");
  a->signal = ra.Number<std::int32_t>("signal");
  a->stdout_sha256 = ra.Text("stdout");
  a->stderr_sha256 = ra.Text("stderr");
  a->stdout_bytes = ra.Number<std::uint64_t>("stdout_bytes");
  a->stderr_bytes = ra.Number<std::uint64_t>("stderr_bytes");
  a->duration_us = ra.Number<std::uint64_t>("duration_us");
  a->started_unix_ms = ra.Number<std::int64_t>("started_unix_ms");
  a->worker = ra.Text("worker");
  a->host = ra.Text("host");
  a->version_line = ra.Text("version_line");
  a->binary_sha256 = ra.Text("binary_sha256");
  a->failure = ra.Text("failure");
  // Records of stores made before failure kinds were stored have none.
  a->failure_kind = ra.Enum<FailureKind>("kind", kLastFailureKind, /*fallback=*/0);
  // Nor a layout, before layouts were.
  a->image_layout = ra.TextOr("layout", "");
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
  if (r.Find("inputs") != nullptr) record.inputs = r.Text("inputs");
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
  const std::string_view hex = key.substr(kLeasePrefix.size());
  auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), lease.id, 16);
  std::string error;
  if (ec != std::errc() || end != hex.data() + hex.size()) error = "the key is not a lease id";
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

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, std::filesystem::path dir)
      : db_(std::move(db)), dir_(std::move(dir)) {}

  Result<std::optional<std::string>> GetMeta(std::string_view name) override {
    return Get(Key(kMetaPrefix, name));
  }

  Status PutMeta(std::string_view name, std::string_view value) override {
    return Convert(db_->Put(SyncWrite(), Key(kMetaPrefix, name), value), "write");
  }

  Status Write(const std::vector<CellWrite>& writes,
               const std::vector<LeaseRecord>& leases) override {
    rocksdb::WriteBatch batch;
    for (const LeaseRecord& lease : leases) {
      rocksdb::Status s = batch.Put(LeaseKey(lease.id), EncodeLease(lease));
      if (!s.ok()) return Convert(s, "write");
    }
    std::set<std::string_view> in_batch;
    for (const CellWrite& w : writes) {
      for (const Blob& blob : w.blobs) {
        if (!in_batch.insert(blob.sha256).second) continue;
        const std::string key = Key(kBlobPrefix, blob.sha256);
        rocksdb::PinnableSlice existing;
        rocksdb::Status found =
            db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), key, &existing);
        if (found.ok()) continue;  // identical output across versions is the common case
        if (!found.IsNotFound()) return Convert(found, "read");
        rocksdb::Status s = batch.Put(key, blob.bytes);
        if (!s.ok()) return Convert(s, "write");
      }
      rocksdb::Status s = batch.Put(Key(kCellPrefix, w.key), EncodeRecord(w.record));
      if (!s.ok()) return Convert(s, "write");
    }
    return Convert(db_->Write(SyncWrite(), &batch), "write");
  }

  Result<std::optional<CellRecord>> GetCell(std::string_view key) override {
    Result<std::optional<std::string>> bytes = Get(Key(kCellPrefix, key));
    if (!bytes.ok()) return bytes.status();
    if (!bytes.value()) return std::optional<CellRecord>();
    Result<CellRecord> record = DecodeRecord(key, *bytes.value());
    if (!record.ok()) return record.status();
    return std::optional<CellRecord>(std::move(record).value());
  }

  Status ForEachCell(
      const std::function<bool(std::string_view, const CellRecord&)>& visit) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(rocksdb::Slice(kCellPrefix.data(), kCellPrefix.size())); it->Valid();
         it->Next()) {
      const std::string_view key = it->key().ToStringView();
      if (key.substr(0, kCellPrefix.size()) != kCellPrefix) break;
      const std::string_view cell = key.substr(kCellPrefix.size());
      Result<CellRecord> record = DecodeRecord(cell, it->value().ToStringView());
      if (!record.ok()) return record.status();
      if (!visit(cell, record.value())) return Status::Ok();
    }
    return Convert(it->status(), "read");
  }

  Status ForEachLease(const std::function<bool(const LeaseRecord&)>& visit) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(rocksdb::Slice(kLeasePrefix.data(), kLeasePrefix.size())); it->Valid();
         it->Next()) {
      const std::string_view key = it->key().ToStringView();
      if (key.substr(0, kLeasePrefix.size()) != kLeasePrefix) break;
      Result<LeaseRecord> lease = DecodeLease(key, it->value().ToStringView());
      if (!lease.ok()) return lease.status();
      if (!visit(lease.value())) return Status::Ok();
    }
    return Convert(it->status(), "read");
  }

  Status DropLeases() override {
    // The byte after '/' ends the prefix's range.
    const std::string begin(kLeasePrefix);
    std::string end = begin;
    end.back() = static_cast<char>(end.back() + 1);
    return Convert(db_->DeleteRange(SyncWrite(), db_->DefaultColumnFamily(), begin, end), "write");
  }

  Status Flush() override {
    return Convert(db_->Flush(rocksdb::FlushOptions()), "flush");
  }

  Result<std::string> GetBlob(std::string_view sha256) override {
    Result<std::optional<std::string>> bytes = Get(Key(kBlobPrefix, sha256));
    if (!bytes.ok()) return bytes.status();
    if (!bytes.value()) {
      return Status::NotFound("store " + dir_.string() + ": no output with sha256 " +
                              std::string(sha256));
    }
    return std::move(*bytes.value());
  }

 private:
  static rocksdb::WriteOptions SyncWrite() {
    rocksdb::WriteOptions options;
    options.sync = true;
    return options;
  }

  Result<std::optional<std::string>> Get(const std::string& key) {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return Convert(s, "read");
    return std::optional<std::string>(std::move(value));
  }

  Status Convert(const rocksdb::Status& s, std::string_view what) const {
    if (s.ok()) return Status::Ok();
    return Status::IoError("store " + dir_.string() + ": " + std::string(what) + ": " +
                           s.ToString());
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::filesystem::path dir_;
};

}  // namespace

const char* CellStateName(CellState state) {
  switch (state) {
    case CellState::kPending:
      return "pending";
    case CellState::kDone:
      return "done";
    case CellState::kFailed:
      return "failed";
  }
  return "unknown";
}

Result<std::unique_ptr<Store>> Store::Open(const std::filesystem::path& dir, Mode mode) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(dir, ec);
  if (!exists && mode == Mode::kMustExist) {
    return Status::NotFound("store " + dir.string() + ": no such directory");
  }
  if (exists && !std::filesystem::exists(dir / "CURRENT", ec)) {
    if (!std::filesystem::is_directory(dir, ec) || !std::filesystem::is_empty(dir, ec)) {
      return Status::InvalidInput("store " + dir.string() +
                                  ": exists and is not an imgsweep store");
    }
  }
  if (!exists && mode == Mode::kReadOnly) {
    return Status::NotFound("store " + dir.string() + ": no such directory");
  }
  if (!exists && mode == Mode::kCreateIfMissing && dir.has_parent_path()) {
    // `--db results/today/db` in a fresh checkout: RocksDB makes only the last folder.
    std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec) return Status::FromErrno("store " + dir.string() + ": cannot create its folder", ec.value());
  }
  rocksdb::Options options;
  options.create_if_missing = (mode == Mode::kCreateIfMissing);
  // RocksDB keeps every info log by default, one more per open: a store
  // that `status` reads every minute would grow without bound.
  options.keep_log_file_num = 2;
  // Records repeat field names, digests and version lines from cell to
  // cell: zstd over 16 KiB blocks stores them in about half of what snappy
  // over 4 KiB does. Tables already written keep their compression.
  options.compression = rocksdb::kZSTD;
  rocksdb::BlockBasedTableOptions table;
  table.block_size = std::size_t{16} << 10;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* raw = nullptr;
  // Read-only takes no lock: it sees what the writer had written when it
  // opened (its write-ahead log included), beside a running coordinator.
  rocksdb::Status s = mode == Mode::kReadOnly
                          ? rocksdb::DB::OpenForReadOnly(options, dir.string(), &raw)
                          : rocksdb::DB::Open(options, dir.string(), &raw);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Status::IoError("store " + dir.string() + ": in use by another process (" +
                             s.ToString() + ")");
    }
    return Status::IoError("store " + dir.string() + ": " + s.ToString());
  }
  auto store = std::make_unique<RocksStore>(std::unique_ptr<rocksdb::DB>(raw), dir);
  Result<std::optional<std::string>> layout = store->GetMeta(kLayoutKey.substr(kMetaPrefix.size()));
  if (!layout.ok()) return layout.status();
  if (!layout.value()) {
    if (mode == Mode::kReadOnly) {
      return Status::InvalidInput("store " + dir.string() + ": not an imgsweep store");
    }
    Status st = store->PutMeta(kLayoutKey.substr(kMetaPrefix.size()), kLayout);
    if (!st.ok()) return st;
  } else if (*layout.value() != kLayout) {
    return Status::InvalidInput("store " + dir.string() + ": layout \"" + *layout.value() +
                                "\" is not \"" + std::string(kLayout) + "\"");
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace imgsweep
