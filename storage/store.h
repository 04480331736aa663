// The sweep's durable state in RocksDB: the plan, one record per cell with
// every attempt, and each distinct stdout/stderr once. The key schema is in
// docs/storage.md. Nothing outside this layer includes RocksDB.
//
// Thread-safety: a Store may be used from several threads at once (RocksDB
// serialises writers); one process at a time may open a directory for
// writing, and any number read-only beside it.
#ifndef IMGSWEEP_STORAGE_STORE_H_
#define IMGSWEEP_STORAGE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/messages.h"
#include "protocol/status.h"

namespace imgsweep {

// One try at a cell, as a worker reported it.
struct Attempt {
  std::uint32_t number = 0;  // 1, 2, ...
  Outcome outcome = Outcome::kExited;
  std::int32_t exit_code = 0;
  std::int32_t signal = 0;
  std::string stdout_sha256;  // blob keys; empty for an infrastructure failure
  std::string stderr_sha256;
  std::uint64_t stdout_bytes = 0;
  std::uint64_t stderr_bytes = 0;
  std::uint64_t duration_us = 0;
  std::int64_t started_unix_ms = 0;
  std::string worker;
  std::string host;
  std::string version_line;
  std::string binary_sha256;
  std::string failure;
  FailureKind failure_kind = FailureKind::kNone;
  // How the image's file lay on the worker's disk ("dense", "sparse:..."):
  // `qemu-img map` prints its holes. Empty in records made before it was kept.
  std::string image_layout = {};
  bool operator==(const Attempt&) const = default;
};

enum class CellState : std::uint8_t {
  kPending = 0,  // no outcome yet (possibly some failed attempts)
  kDone = 1,     // the last attempt is the cell's outcome
  kFailed = 2,   // every allowed attempt failed for infrastructure reasons
};
const char* CellStateName(CellState state);

struct CellRecord {
  CellState state = CellState::kPending;
  std::vector<Attempt> attempts;
  // Attempts made before the last `rerun` picked this cell: the attempt
  // limit counts only those after.
  std::uint32_t round_start = 0;
  // For a done cell: the cache key (Plan::CacheKey) of the inputs its
  // outcome ran with; empty in records written before keys were kept.
  std::string inputs = {};
  bool operator==(const CellRecord&) const = default;
};

// Closed cells by how they ended: the one tally that the store's status,
// the coordinator's progress and a sweep's summary all keep.
struct OutcomeCounts {
  std::size_t exited_zero = 0;
  std::size_t exited_nonzero = 0;
  std::size_t signaled = 0;
  std::size_t timeout = 0;
  std::size_t failed = 0;  // no outcome after every allowed attempt
  std::size_t unsupported = 0;  // older than its output type's "since": not run
  // Counts a closed cell; false, counting nothing, for a cell without an
  // outcome yet.
  bool Add(const CellRecord& record);
  std::size_t closed() const {
    return exited_zero + exited_nonzero + signaled + timeout + failed + unsupported;
  }
  bool operator==(const OutcomeCounts&) const = default;
};

// One stdout or stderr, under the digest its attempt records.
struct Blob {
  std::string sha256;  // REQUIRES: Sha256Hex(bytes)
  std::string bytes;
};

// A cell's new record and the output blobs its latest attempt refers to.
struct CellWrite {
  std::string key;
  CellRecord record;
  std::vector<Blob> blobs;
};

// The write that puts a closed cell back in the queue for a new round:
// pending, keeping every attempt, the attempt limit counting from the next
// one. `imgsweep rerun` and a start whose inputs changed both use it.
CellWrite Reopened(std::string_view key, const CellRecord& record);

// A lease as the coordinator granted it: which worker process (its hello's
// session) was given which cells. Kept so that after a coordinator restart
// a late result counts only from the process that held its cell.
struct LeaseRecord {
  std::uint64_t id = 0;
  std::string session;
  std::vector<std::string> cells;  // cell keys
  bool operator==(const LeaseRecord&) const = default;
};

class Store {
 public:
  // kReadOnly: a snapshot as of the open, even while another process has
  // the store open for writing; every write fails.
  enum class Mode { kCreateIfMissing, kMustExist, kReadOnly };

  // kInvalidInput when `dir` exists but is not an imgsweep store, kNotFound
  // when it must exist (kMustExist, kReadOnly) and is absent, kIoError when
  // RocksDB refuses (for example another process has it open for writing).
  static Result<std::unique_ptr<Store>> Open(const std::filesystem::path& dir, Mode mode);

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;

  // Small named values: the plan, the sweep id.
  virtual Result<std::optional<std::string>> GetMeta(std::string_view name) = 0;
  virtual Status PutMeta(std::string_view name, std::string_view value) = 0;

  // Stores all writes atomically; returns only after the write-ahead log is
  // synced, so an acknowledgement sent after it can never be lost. A blob
  // the store already holds is not written again.
  Status Commit(const std::vector<CellWrite>& writes) { return Write(writes, {}); }
  // Commit, with the leases granted since the last write in the same
  // atomic write.
  virtual Status Write(const std::vector<CellWrite>& writes,
                       const std::vector<LeaseRecord>& leases) = 0;
  // Every lease record, in id order; `visit` returns false to stop early.
  virtual Status ForEachLease(const std::function<bool(const LeaseRecord&)>& visit) = 0;
  // Removes every lease record: a finished sweep needs none.
  virtual Status DropLeases() = 0;

  virtual Result<std::optional<CellRecord>> GetCell(std::string_view key) = 0;
  // Every cell record in key order; `visit` returns false to stop early.
  virtual Status ForEachCell(
      const std::function<bool(std::string_view key, const CellRecord&)>& visit) = 0;
  // kNotFound when no blob has this digest.
  virtual Result<std::string> GetBlob(std::string_view sha256) = 0;

  // Moves what was written into the store's compressed tables and empties
  // its write-ahead log: a finished sweep's store takes its least room.
  virtual Status Flush() = 0;

 protected:
  Store() = default;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_STORAGE_STORE_H_
