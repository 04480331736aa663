// The RocksDB adapter: the only file that includes RocksDB.
#include "storage/store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <nlohmann/json.hpp>
#include <set>

namespace imgsweep {
namespace {

using nlohmann::json;

// Written once when a store is created and checked on every open, so a store
// of a later layout is refused instead of misread.
constexpr std::string_view kLayoutKey = "meta/layout";
constexpr std::string_view kLayout = "imgsweep-store 1";
constexpr std::string_view kCellPrefix = "cell/";
constexpr std::string_view kBlobPrefix = "blob/";
constexpr std::string_view kMetaPrefix = "meta/";

std::string Key(std::string_view prefix, std::string_view name) {
  std::string key(prefix);
  key.append(name);
  return key;
}

json AttemptToJson(const Attempt& a) {
  return json{{"n", a.number},
              {"outcome", static_cast<int>(a.outcome)},
              {"exit_code", a.exit_code},
              {"signal", a.signal},
              {"stdout", a.stdout_sha256},
              {"stderr", a.stderr_sha256},
              {"stdout_bytes", a.stdout_bytes},
              {"stderr_bytes", a.stderr_bytes},
              {"duration_us", a.duration_us},
              {"started_unix_ms", a.started_unix_ms},
              {"worker", a.worker},
              {"host", a.host},
              {"version_line", a.version_line},
              {"binary_sha256", a.binary_sha256},
              {"failure", a.failure},
              {"kind", static_cast<int>(a.failure_kind)}};
}

std::string EncodeRecord(const CellRecord& record) {
  json attempts = json::array();
  for (const Attempt& a : record.attempts) attempts.push_back(AttemptToJson(a));
  const json j{{"state", static_cast<int>(record.state)},
               {"attempts", std::move(attempts)},
               {"round_start", record.round_start}};
  const std::vector<std::uint8_t> bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

Result<CellRecord> DecodeRecord(std::string_view key, std::string_view bytes) {
  try {
    const json j = json::from_msgpack(bytes.begin(), bytes.end());
    CellRecord record;
    const int state = j.at("state").get<int>();
    if (state < 0 || state > static_cast<int>(CellState::kFailed)) throw std::out_of_range("state");
    record.state = static_cast<CellState>(state);
    record.round_start = j.value("round_start", 0u);
    for (const json& ja : j.at("attempts")) {
      Attempt a;
      a.number = ja.at("n").get<std::uint32_t>();
      const int outcome = ja.at("outcome").get<int>();
      if (outcome < 0 || outcome > static_cast<int>(Outcome::kInfraFailure)) {
        throw std::out_of_range("outcome");
      }
      a.outcome = static_cast<Outcome>(outcome);
      a.exit_code = ja.at("exit_code").get<std::int32_t>();
      a.signal = ja.at("signal").get<std::int32_t>();
      a.stdout_sha256 = ja.at("stdout").get<std::string>();
      a.stderr_sha256 = ja.at("stderr").get<std::string>();
      a.stdout_bytes = ja.at("stdout_bytes").get<std::uint64_t>();
      a.stderr_bytes = ja.at("stderr_bytes").get<std::uint64_t>();
      a.duration_us = ja.at("duration_us").get<std::uint64_t>();
      a.started_unix_ms = ja.at("started_unix_ms").get<std::int64_t>();
      a.worker = ja.at("worker").get<std::string>();
      a.host = ja.at("host").get<std::string>();
      a.version_line = ja.at("version_line").get<std::string>();
      a.binary_sha256 = ja.at("binary_sha256").get<std::string>();
      a.failure = ja.at("failure").get<std::string>();
      // Records of stores made before failure kinds were stored have none.
      const int kind = ja.value("kind", 0);
      if (kind < 0 || kind > static_cast<int>(kLastFailureKind)) throw std::out_of_range("kind");
      a.failure_kind = static_cast<FailureKind>(kind);
      record.attempts.push_back(std::move(a));
    }
    return record;
  } catch (const std::exception& e) {
    return Status::InvalidInput("store: record of cell " + std::string(key) +
                                " is unreadable: " + e.what());
  }
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

  Status Commit(const std::vector<CellWrite>& writes) override {
    rocksdb::WriteBatch batch;
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
  rocksdb::Options options;
  options.create_if_missing = (mode == Mode::kCreateIfMissing);
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
