// How many cells a host may run at once by default: its cores, cut by the
// CPU affinity the process was given (taskset, cpusets) and by a cgroup CPU
// quota (a container's --cpus, a pod's CPU limit), v1 or v2. A worker in a
// 1-CPU pod that ran two cells at once would turn slow cells into timeouts,
// and timeouts into baselines.
// Thread-safety: free functions; they read files.
#ifndef IMGSWEEP_WORKER_CPU_BUDGET_H_
#define IMGSWEEP_WORKER_CPU_BUDGET_H_

#include <filesystem>
#include <string>

namespace imgsweep {

struct CpuBudget {
  unsigned cpus = 1;        // at least 1
  std::string decided_by;   // for the log: "the cgroup v2 CPU quota (cpu.max 100000 100000)"
};

// The smallest of `hardware`, `affinity` (0: unknown) and the quota of the
// cgroup this process is in or of any cgroup above it, rounded up. `root`
// is "/" but for tests: the files read are root/proc/self/mountinfo,
// root/proc/self/cgroup and the cgroup files below the mount points they
// name.
CpuBudget CpusOf(const std::filesystem::path& root, unsigned hardware, unsigned affinity);

// CpusOf for this process on this host.
CpuBudget UsableCpus();

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_CPU_BUDGET_H_
