// A Store that forwards to a real one and fails on request, in the spirit
// of leveldb's fault-injection Env: the next commit or flush fails, every
// read of a cell record reports damage, or commits and flushes wait until
// released (a disk that is slow to sync).
// Thread-safety: the switches are atomic; forwarding is as thread-safe as
// the store behind it.
#ifndef IMGSWEEP_TESTS_FAULT_STORE_H_
#define IMGSWEEP_TESTS_FAULT_STORE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

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
  // Commits from now on wait in Write until ReleaseWrites.
  void HoldWrites() {
    std::lock_guard<std::mutex> lock(hold_mu_);
    hold_ = true;
  }
  // And flushes, likewise.
  void HoldFlushes() {
    std::lock_guard<std::mutex> lock(hold_mu_);
    hold_flushes_ = true;
  }
  void ReleaseWrites() {
    std::lock_guard<std::mutex> lock(hold_mu_);
    hold_ = false;
    hold_flushes_ = false;
    hold_cv_.notify_all();
  }
  // Whether a commit or flush came and is waiting, within `timeout`.
  bool AwaitHeldWrite(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(hold_mu_);
    return hold_cv_.wait_for(lock, timeout, [this] { return held_ > 0; });
  }

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
    WaitWhileHeld(&hold_);
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
    WaitWhileHeld(&hold_flushes_);
    return base_->Flush();
  }

 private:
  // Waits while `*held` (guarded by hold_mu_), counted in held_.
  void WaitWhileHeld(const bool* held) {
    std::unique_lock<std::mutex> lock(hold_mu_);
    if (!*held) return;
    ++held_;
    hold_cv_.notify_all();
    hold_cv_.wait(lock, [held] { return !*held; });
    --held_;
  }

  Store* const base_;
  std::atomic<bool> fail_commit_{false};
  std::atomic<bool> fail_flush_{false};
  std::atomic<bool> corrupt_reads_{false};
  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  bool hold_ = false;          // guarded by hold_mu_
  bool hold_flushes_ = false;  // guarded by hold_mu_
  int held_ = 0;  // commits and flushes waiting; guarded by hold_mu_
  std::atomic<int> commits_{0};
};

}  // namespace imgsweep

#endif  // IMGSWEEP_TESTS_FAULT_STORE_H_
