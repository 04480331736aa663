// The slot threads with real processes: a pinned slot's cells start on its
// cpu and stay there, an unpinned slot's may run anywhere the worker may.
#include "worker/slot_pool.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>

#include "worker/cpu_budget.h"
#include "worker/subprocess.h"

namespace imgsweep {
namespace {

// The "Cpus_allowed_list:" line of /proc/self/status, as a process sees it.
std::string AllowedLine(const std::string& status) {
  const std::size_t at = status.find("Cpus_allowed_list:");
  if (at == std::string::npos) return "";
  return status.substr(at, status.find('\n', at) - at);
}

// Runs a real process that prints the cpus it may run on (stdout), and
// notes the cpus of the slot thread that started it (stderr).
class AffinityExecutor final : public CellExecutor {
 public:
  CellResult Run(const CellSpec& cell) override {
    CellResult r;
    r.key = cell.key;
    RunRequest request;
    request.program = "/bin/cat";
    request.args = {"/proc/self/status"};
    Result<RunOutput> out = RunCaptured(request);
    r.stdout_text = out.ok() ? AllowedLine(out.value().stdout_text) : out.status().ToString();
    r.stderr_text = CpuList(AffinityCpus());  // this thread's: the slot's
    return r;
  }
};

// The first finished cell, or an empty key after 10 s.
CellResult OneDone(SlotPool& pool) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{pool.wake_fd(), POLLIN, 0};
    (void)::poll(&p, 1, 1000);
    std::vector<CellResult> done = pool.TakeDone();
    if (!done.empty()) return done.front();
  }
  return {};
}

std::vector<Work> OneCell() {
  Work w;
  w.spec.key = "human/1.0.0/img";
  return {w};
}

TEST(SlotPool, APinnedSlotsCellsRunOnItsCpuOnly) {
  const std::vector<unsigned> cpus = AffinityCpus();
  ASSERT_FALSE(cpus.empty());
  const unsigned cpu = cpus.back();  // not only cpu 0, which a default could hit by chance
  AffinityExecutor executor;
  SlotPool pool(1, &executor, {cpu});
  ASSERT_TRUE(pool.Start().ok());
  pool.Add(OneCell());
  const CellResult r = OneDone(pool);
  ASSERT_EQ(r.key, "human/1.0.0/img");
  EXPECT_EQ(r.stdout_text, "Cpus_allowed_list:\t" + std::to_string(cpu));
  EXPECT_EQ(r.stderr_text, std::to_string(cpu));
}

TEST(SlotPool, AnUnpinnedSlotsCellsRunWhereTheWorkerMay) {
  std::ifstream in("/proc/self/status");
  const std::string ours = AllowedLine(std::string(std::istreambuf_iterator<char>(in), {}));
  ASSERT_FALSE(ours.empty());
  AffinityExecutor executor;
  SlotPool pool(1, &executor);
  ASSERT_TRUE(pool.Start().ok());
  pool.Add(OneCell());
  const CellResult r = OneDone(pool);
  ASSERT_EQ(r.key, "human/1.0.0/img");
  EXPECT_EQ(r.stdout_text, ours);
}

TEST(SlotPool, ACpuItMayNotRunOnFailsTheStartByName) {
  AffinityExecutor executor;
  SlotPool pool(1, &executor, {CPU_SETSIZE - 1});  // no machine here has 1,024 cpus
  const Status st = pool.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("slot 0 to cpu 1023"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace imgsweep
