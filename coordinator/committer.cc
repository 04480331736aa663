#include "coordinator/committer.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace imgsweep {

CommitPipeline::CommitPipeline(Store* store, const Clock* clock)
    : store_(store),
      clock_(clock),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      thread_([this] { Loop(); }) {}

CommitPipeline::~CommitPipeline() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void CommitPipeline::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    changed_.wait(lock, [this] { return stopping_ || start_ != nullptr; });
    if (start_ == nullptr) return;  // stopping, nothing left to write
    const Batch* batch = std::exchange(start_, nullptr);
    std::vector<CellWrite> spent = std::exchange(start_spent_, {});
    lock.unlock();
    Status st = store_->Write(batch->writes, batch->leases);
    spent = {};  // freeing a round's outputs is the writer's work, not the coordinator's
    lock.lock();
    done_ = std::move(st);
    changed_.notify_all();
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);  // the waker only needs readability
  }
}

CellWrite& CommitPipeline::WriteFor(std::size_t cell, const std::string& key, bool has_attempts) {
  auto [it, inserted] = round_.write_of.emplace(cell, round_.writes.size());
  if (!inserted) return round_.writes[it->second];
  if (RoundEmpty()) round_started_ = clock_->Now();
  CellWrite& write = round_.writes.emplace_back();
  round_.sent_of.emplace_back();
  write.key = key;
  if (!has_attempts) return write;
  if (auto in_flight = committing_.write_of.find(cell); in_flight != committing_.write_of.end()) {
    write.record = committing_.writes[in_flight->second].record;
  } else {
    Result<std::optional<CellRecord>> stored = store_->GetCell(write.key);
    if (stored.ok() && stored.value()) write.record = *stored.value();
  }
  return write;
}

void CommitPipeline::SetSent(std::size_t cell, Clock::TimePoint sent) {
  auto it = round_.write_of.find(cell);
  if (it != round_.write_of.end()) round_.sent_of[it->second] = sent;
}

void CommitPipeline::Ack(std::string peer, std::string key) {
  round_.acks.push_back(PendingAck{std::move(peer), std::move(key)});
}

void CommitPipeline::Grant(LeaseRecord lease) {
  if (RoundEmpty()) round_started_ = clock_->Now();
  round_.leases.push_back(std::move(lease));
}

void CommitPipeline::Requeue(std::size_t cell, std::string avoid, std::set<std::string> hosts) {
  round_.requeue.push_back({cell, std::move(avoid), std::move(hosts)});
}

std::chrono::milliseconds CommitPipeline::WaitBudget(std::chrono::milliseconds most) const {
  if (RoundEmpty() || busy_) return most;
  return std::clamp(
      std::chrono::ceil<std::chrono::milliseconds>(round_started_ + kCommitDelay - clock_->Now()),
      std::chrono::milliseconds(0), most);
}

Result<std::optional<CommitPipeline::Written>> CommitPipeline::Collect(
    std::chrono::milliseconds wait) {
  if (!busy_) return std::optional<Written>();
  std::optional<Status> done;
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, wait, [this] { return done_.has_value(); });
    done = std::exchange(done_, std::nullopt);
  }
  if (!done) return std::optional<Written>();
  std::uint64_t count;
  (void)!::read(wake_fd_, &count, sizeof count);  // re-arm; EAGAIN is fine
  busy_ = false;
  Batch batch = std::exchange(committing_, Batch{});
  if (!done->ok()) return *done;
  const Clock::TimePoint stored = clock_->Now();
  const std::size_t results = batch.writes.size();
  spent_ = std::move(batch.writes);
  batch.writes.clear();
  return std::optional<Written>(Written{std::move(batch), results, stored - commit_started_, stored});
}

std::vector<PendingAck> CommitPipeline::StartIfDue(bool now) {
  // A full round is due at once: the coordinator takes nothing more until
  // it is written, and would otherwise come straight back.
  const bool due = now || round_.writes.size() >= kCommitBatch || full() ||
                   clock_->Now() - round_started_ >= kCommitDelay;
  if (RoundEmpty()) return std::exchange(round_.acks, {});
  if (!due) return {};
  committing_ = std::exchange(round_, Batch{});
  commit_started_ = clock_->Now();
  busy_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    start_ = &committing_;
    start_spent_ = std::move(spent_);
    spent_.clear();
  }
  changed_.notify_all();
  return {};
}

}  // namespace imgsweep
