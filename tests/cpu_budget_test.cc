#include "worker/cpu_budget.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

// A host with cgroup v2 at /sys/fs/cgroup, the process in /kubepods/pod1/c1.
void CgroupV2(const fs::path& root) {
  Write(root / "proc/self/cgroup", "0::/kubepods/pod1/c1\n");
  Write(root / "proc/self/mountinfo",
        "25 30 0:22 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n");
}

// A host with cgroup v1's cpu and cpuacct controllers mounted together.
void CgroupV1(const fs::path& root) {
  Write(root / "proc/self/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n");
  Write(root / "proc/self/mountinfo",
        "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n");
}

TEST(CpuBudget, NoCgroupQuotaLeavesTheCores) {
  TempDir dir;
  const CpuBudget b = CpusOf(dir.path(), 8, 8);
  EXPECT_EQ(b.cpus, 8u);
  EXPECT_EQ(b.decided_by, "the host's 8 cores");
  EXPECT_FALSE(b.by_quota);
}

TEST(CpuBudget, AffinityCutsTheCores) {
  TempDir dir;
  const CpuBudget b = CpusOf(dir.path(), 8, 3);
  EXPECT_EQ(b.cpus, 3u);
  EXPECT_EQ(b.decided_by, "the CPU affinity (3 of 8 cores)");
}

TEST(CpuBudget, ACgroupV2QuotaRoundedUp) {
  TempDir dir;
  CgroupV2(dir.path());
  Write(dir.path() / "sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "150000 100000\n");
  const CpuBudget b = CpusOf(dir.path(), 8, 8);
  EXPECT_EQ(b.cpus, 2u);
  EXPECT_EQ(b.decided_by, "the cgroup v2 CPU quota (cpu.max 150000 100000)");
  EXPECT_TRUE(b.by_quota);
}

TEST(CpuBudget, ACgroupV2QuotaAboveTheProcessCounts) {
  TempDir dir;
  CgroupV2(dir.path());
  Write(dir.path() / "sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "max 100000\n");
  Write(dir.path() / "sys/fs/cgroup/kubepods/pod1/cpu.max", "100000 100000\n");
  Write(dir.path() / "sys/fs/cgroup/kubepods/cpu.max", "400000 100000\n");
  EXPECT_EQ(CpusOf(dir.path(), 8, 8).cpus, 1u);
}

TEST(CpuBudget, ACgroupV1Quota) {
  TempDir dir;
  CgroupV1(dir.path());
  Write(dir.path() / "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
  Write(dir.path() / "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  const CpuBudget b = CpusOf(dir.path(), 4, 4);
  EXPECT_EQ(b.cpus, 1u);
  EXPECT_EQ(b.decided_by,
            "the cgroup v1 CPU quota (cpu.cfs_quota_us 50000 / cpu.cfs_period_us 100000)");
  EXPECT_TRUE(b.by_quota);
}

TEST(CpuBudget, ACgroupV1WithoutQuotaLeavesTheAffinity) {
  TempDir dir;
  CgroupV1(dir.path());
  Write(dir.path() / "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  Write(dir.path() / "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(CpusOf(dir.path(), 4, 2).cpus, 2u);
}

TEST(CpuBudget, InACgroupNamespaceTheMountIsTheProcesssCgroup) {
  // Inside a container the mount's root is the container's cgroup, which
  // /proc/self/cgroup names as "/".
  TempDir dir;
  Write(dir.path() / "proc/self/cgroup", "0::/\n");
  Write(dir.path() / "proc/self/mountinfo",
        "25 30 0:22 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n");
  Write(dir.path() / "sys/fs/cgroup/cpu.max", "100000 100000\n");
  EXPECT_EQ(CpusOf(dir.path(), 2, 2).cpus, 1u);
}

TEST(SlotCpus, OneSlotPerCpuEachKeepsToItsOwn) {
  const CpuBudget cores{4, "the host's 4 cores"};
  EXPECT_EQ(SlotCpus(cores, {0, 1, 2, 3}, 4), (std::vector<unsigned>{0, 1, 2, 3}));
  // The cpus the affinity leaves, not the first ones of the host.
  const CpuBudget affinity{2, "the CPU affinity (2 of 8 cores)"};
  EXPECT_EQ(SlotCpus(affinity, {5, 7}, 2), (std::vector<unsigned>{5, 7}));
}

TEST(SlotCpus, AMultipleOfTheCpusGoesRoundRobin) {
  const CpuBudget cores{2, "the host's 2 cores"};
  EXPECT_EQ(SlotCpus(cores, {0, 1}, 4), (std::vector<unsigned>{0, 1, 0, 1}));
}

TEST(SlotCpus, SlotsThatDoNotSpreadEvenlyAreNotPinned) {
  const CpuBudget cores{2, "the host's 2 cores"};
  EXPECT_TRUE(SlotCpus(cores, {0, 1}, 3).empty());
  EXPECT_TRUE(SlotCpus(cores, {0, 1}, 1).empty());
  EXPECT_TRUE(SlotCpus(cores, {}, 2).empty());  // the kernel did not say
}

TEST(SlotCpus, UnderAQuotaNothingIsPinned) {
  // Every container under a quota sees the host's cpus: pinned, they would
  // all crowd onto its first ones.
  // (CpusOf sets by_quota: the quota tests above.)
  CpuBudget quota{2, "the cgroup v2 CPU quota (cpu.max 200000 100000)"};
  quota.by_quota = true;
  EXPECT_TRUE(SlotCpus(quota, {0, 1, 2, 3, 4, 5, 6, 7}, 8).empty());
  EXPECT_TRUE(SlotCpus(quota, {0, 1, 2, 3, 4, 5, 6, 7}, 2).empty());
}

TEST(ShareCpus, OneWorkerTakesOnePinnedSlotPerCpu) {
  const CpuBudget cores{2, "the host's 2 cores"};
  const SharedCpus s = ShareCpus(cores, {0, 1}, 1, 0, true, 2);
  EXPECT_EQ(s.slots, 2u);
  EXPECT_EQ(s.PinCellsOf(0), "0,1");
}

TEST(ShareCpus, WorkersThatDivideTheCpusEachGetTheirOwn) {
  const CpuBudget cores{4, "the host's 4 cores"};
  const SharedCpus s = ShareCpus(cores, {0, 1, 2, 3}, 2, 0, true, 2);
  EXPECT_EQ(s.slots, 2u);
  EXPECT_EQ(s.PinCellsOf(0), "0,1");
  EXPECT_EQ(s.PinCellsOf(1), "2,3");
  // Asked slots are pinned too when they spread evenly.
  const SharedCpus asked = ShareCpus(cores, {0, 1, 2, 3}, 1, 8, true, 2);
  EXPECT_EQ(asked.slots, 8u);
  EXPECT_EQ(asked.PinCellsOf(0), "0,1,2,3,0,1,2,3");
}

TEST(ShareCpus, WhereNothingCanBePinnedTwoPerCpu) {
  const CpuBudget cores{2, "the host's 2 cores"};
  // Three workers do not divide two cpus.
  SharedCpus s = ShareCpus(cores, {0, 1}, 3, 0, true, 2);
  EXPECT_EQ(s.slots, 1u);
  EXPECT_EQ(s.PinCellsOf(2), "off");
  // --pin-cells off.
  s = ShareCpus(cores, {0, 1}, 1, 0, false, 2);
  EXPECT_EQ(s.slots, 4u);
  EXPECT_EQ(s.PinCellsOf(0), "off");
  // A quota.
  CpuBudget quota{2, "the cgroup v2 CPU quota (cpu.max 200000 100000)"};
  quota.by_quota = true;
  s = ShareCpus(quota, {0, 1, 2, 3, 4, 5, 6, 7}, 1, 0, true, 2);
  EXPECT_EQ(s.slots, 4u);
  EXPECT_EQ(s.PinCellsOf(0), "off");
  // Asked slots that do not spread evenly stay as asked, unpinned.
  s = ShareCpus(cores, {0, 1}, 1, 3, true, 2);
  EXPECT_EQ(s.slots, 3u);
  EXPECT_EQ(s.PinCellsOf(0), "off");
}

TEST(PinnedCpus, AutoOffAndAList) {
  const CpuBudget cores{4, "the host's 4 cores"};
  const std::vector<unsigned> allowed = {0, 1, 2, 3};
  Result<std::vector<unsigned>> r = PinnedCpus("auto", cores, allowed, 4);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value(), (std::vector<unsigned>{0, 1, 2, 3}));
  r = PinnedCpus("off", cores, allowed, 4);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r.value().empty());
  // A list is taken round robin, even where auto would not pin.
  r = PinnedCpus("3,1", cores, allowed, 3);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value(), (std::vector<unsigned>{3, 1, 3}));
}

TEST(PinnedCpus, ACpuThisProcessMayNotRunOnIsRefusedByName) {
  const CpuBudget cores{2, "the CPU affinity (2 of 8 cores)"};
  for (const std::string flag : {"0,7", "x", "0,,1", "0,", "", "-1", "99999999"}) {
    Result<std::vector<unsigned>> r = PinnedCpus(flag, cores, {0, 1}, 2);
    ASSERT_FALSE(r.ok()) << flag;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidInput) << flag;
    EXPECT_NE(r.status().message().find("--pin-cells"), std::string::npos) << r.status().ToString();
  }
  Result<std::vector<unsigned>> r = PinnedCpus("0,7", cores, {0, 1}, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("\"7\" is not a cpu this process may run on (0,1)"),
            std::string::npos)
      << r.status().ToString();
}

}  // namespace
}  // namespace imgsweep
