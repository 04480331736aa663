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

}  // namespace
}  // namespace imgsweep
