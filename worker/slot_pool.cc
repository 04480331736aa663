#include "worker/slot_pool.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace imgsweep {

SlotPool::SlotPool(unsigned slots, CellExecutor* executor, std::vector<unsigned> cpus)
    : slots_(slots), executor_(executor), cpus_(std::move(cpus)) {}

SlotPool::~SlotPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& t : threads_) t.join();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status SlotPool::Start() {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return Status::FromErrno("worker: eventfd", errno);
  for (unsigned i = 0; i < slots_; ++i) {
    threads_.emplace_back([this] { Slot(); });
    if (i >= cpus_.size()) continue;
    // Before any cell is queued: a cell inherits the affinity of the thread
    // that starts it, so it starts on its cpu instead of moving there.
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus_[i], &set);
    const int err = ::pthread_setaffinity_np(threads_.back().native_handle(), sizeof set, &set);
    if (err != 0) {
      return Status::FromErrno(
          "worker: cannot keep slot " + std::to_string(i) + " to cpu " + std::to_string(cpus_[i]),
          err);
    }
  }
  return Status::Ok();
}

void SlotPool::Slot() {
  for (;;) {
    Work work;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      work = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    CellResult result = executor_->Run(work.spec);
    result.lease_id = work.lease_id;
    result.sweep_id = std::move(work.sweep_id);
    result.inputs = std::move(work.spec.inputs);
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      first = done_.empty();
      done_.push_back(std::move(result));
    }
    // The socket thread takes every finished cell at once after a wake:
    // only the first of a batch needs to wake it.
    if (first) {
      const std::uint64_t one = 1;
      (void)!::write(wake_fd_, &one, sizeof one);  // a full counter still wakes the reader
    }
  }
}

void SlotPool::Add(std::vector<Work> work) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Work& w : work) queue_.push_back(std::move(w));
  }
  // One slot per cell: waking every idle slot for a small batch only has
  // them fight over the lock.
  for (std::size_t i = 0; i < work.size(); ++i) work_ready_.notify_one();
}

std::vector<CellResult> SlotPool::TakeDone() {
  std::uint64_t count;
  (void)!::read(wake_fd_, &count, sizeof count);  // EAGAIN when nothing is new
  std::vector<CellResult> done;
  std::lock_guard<std::mutex> lock(mu_);
  done.swap(done_);
  return done;
}

std::size_t SlotPool::waiting() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

std::size_t SlotPool::held() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size() + running_ + done_.size();
}

}  // namespace imgsweep
