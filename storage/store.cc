// The RocksDB adapter: the only file that includes RocksDB.
#include "storage/store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <set>

#include "storage/records.h"

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
    case Outcome::kUnsupported:
      ++unsupported;
      break;
  }
  return true;
}
namespace {

// Written once when a store is created and checked on every open, so a store
// of a later layout is refused instead of misread.
constexpr std::string_view kLayoutKey = "meta/layout";
//
// Layout 2 packs a record's digests as bytes (records.cc); a layout-1 store
// reads the same, since every record says how its digests are packed, and
// becomes layout 2 with the first records written into it, so that an
// imgsweep that knows only layout 1 refuses it from then on instead of
// calling its records damaged.
constexpr std::string_view kLayout = "imgsweep-store 2";
constexpr std::string_view kReadableLayout = "imgsweep-store 1";
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

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, std::filesystem::path dir)
      : db_(std::move(db)), dir_(std::move(dir)) {}

  // The store is of the readable older layout: the next Write marks it
  // kLayout in the same atomic write as its records.
  void UpgradeLayoutOnWrite() { upgrade_layout_ = true; }

  Result<std::optional<std::string>> GetMeta(std::string_view name) override {
    return Get(Key(kMetaPrefix, name));
  }

  Status PutMeta(std::string_view name, std::string_view value) override {
    return Convert(db_->Put(SyncWrite(), Key(kMetaPrefix, name), value), "write");
  }

  Status Write(const std::vector<CellWrite>& writes,
               const std::vector<LeaseRecord>& leases) override {
    rocksdb::WriteBatch batch;
    if (upgrade_layout_) {
      rocksdb::Status s = batch.Put(kLayoutKey, kLayout);
      if (!s.ok()) return Convert(s, "write");
    }
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
    Status written = Convert(db_->Write(SyncWrite(), &batch), "write");
    if (written.ok()) upgrade_layout_ = false;
    return written;
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
      const std::string_view hex = key.substr(kLeasePrefix.size());
      auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), lease.value().id, 16);
      if (ec != std::errc() || end != hex.data() + hex.size()) {
        return Status::Corruption("store: key " + std::string(key) + " is not a lease id");
      }
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
  // Atomic because any thread may Write; two writes that both mark the
  // layout write the same value.
  std::atomic<bool> upgrade_layout_{false};
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
  // A million-cell sweep flushes its memtable every 120,000 cells or so, on
  // the same two cores as the coordinator: zstd's level 1 stores these
  // records in as little as its default level 3 does for less cpu, and
  // compacting after 16 flushed tables instead of 4 rewrites less of them
  // while the sweep runs: none in a million cells (docs/BENCHMARKS.md,
  // target 6). A read looks in at most that many tables more.
  options.compression_opts.level = 1;
  options.level0_file_num_compaction_trigger = 16;
  // The same headroom above it as RocksDB's defaults (4, 20, 36) keep.
  options.level0_slowdown_writes_trigger = 32;
  options.level0_stop_writes_trigger = 48;
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
  } else if (*layout.value() == kReadableLayout) {
    if (mode != Mode::kReadOnly) store->UpgradeLayoutOnWrite();
  } else if (*layout.value() != kLayout) {
    return Status::InvalidInput("store " + dir.string() + ": layout \"" + *layout.value() +
                                "\" is not \"" + std::string(kLayout) + "\" or \"" +
                                std::string(kReadableLayout) + "\"");
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace imgsweep
