// A Store that forwards to a real one and fails on request, in the spirit
// of leveldb's fault-injection Env: the next commit or flush fails, or
// every read of a cell record reports damage.
// Thread-safety: the switches are atomic; forwarding is as thread-safe as
// the store behind it.
#ifndef IMGSWEEP_TESTS_FAULT_STORE_H_
#define IMGSWEEP_TESTS_FAULT_STORE_H_

#include <atomic>

#include "storage/store.h"

namespace imgsweep {

class FaultStore final : public Store {
 public:
  // REQUIRES: `base` outlives this store.
  explicit FaultStore(Store* base) : base_(base) {}

  void FailNextCommit() { fail_commit_ = true; }
  void FailNextFlush() { fail_flush_ = true; }
  void CorruptReads(bool on) { corrupt_reads_ = on; }
  int commits() const { return commits_; }

  Result<std::optional<std::string>> GetMeta(std::string_view name) override {
    return base_->GetMeta(name);
  }
  Status PutMeta(std::string_view name, std::string_view value) override {
    return base_->PutMeta(name, value);
  }
  Status Write(const std::vector<CellWrite>& writes,
               const std::vector<LeaseRecord>& leases) override {
    ++commits_;
    if (fail_commit_.exchange(false)) return Status::IoError("injected: the WAL sync failed");
    return base_->Write(writes, leases);
  }
  Status ForEachLease(const std::function<bool(const LeaseRecord&)>& visit) override {
    return base_->ForEachLease(visit);
  }
  Status DropLeases() override { return base_->DropLeases(); }
  Result<std::optional<CellRecord>> GetCell(std::string_view key) override {
    if (corrupt_reads_) return Status::Corruption("injected: record of cell " + std::string(key));
    return base_->GetCell(key);
  }
  Status ForEachCell(
      const std::function<bool(std::string_view key, const CellRecord&)>& visit) override {
    if (corrupt_reads_) return Status::Corruption("injected: a record is unreadable");
    return base_->ForEachCell(visit);
  }
  Result<std::string> GetBlob(std::string_view sha256) override { return base_->GetBlob(sha256); }
  Status Flush() override {
    if (fail_flush_.exchange(false)) return Status::IoError("injected: the flush failed");
    return base_->Flush();
  }

 private:
  Store* const base_;
  std::atomic<bool> fail_commit_{false};
  std::atomic<bool> fail_flush_{false};
  std::atomic<bool> corrupt_reads_{false};
  std::atomic<int> commits_{0};
};

}  // namespace imgsweep

#endif  // IMGSWEEP_TESTS_FAULT_STORE_H_
