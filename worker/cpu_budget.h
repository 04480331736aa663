// How many cells a host may run at once by default: its cores, cut by the
// CPU affinity the process was given (taskset, cpusets) and by a cgroup CPU
// quota (a container's --cpus, a pod's CPU limit), v1 or v2. A worker in a
// 1-CPU pod that ran two cells at once would turn slow cells into timeouts,
// and timeouts into baselines.
//
// And which cpu each slot's cells keep to. A cell of a few ms that the
// kernel starts on a busy cpu often runs there, taking turns, while another
// cpu idles: one cell per cpu, each slot pinned to a cpu of its own, kept
// every cpu busy with no turns to take, and beat both one and two unpinned
// cells per cpu (docs/BENCHMARKS.md, tenth pass).
// Thread-safety: free functions; they read files.
#ifndef IMGSWEEP_WORKER_CPU_BUDGET_H_
#define IMGSWEEP_WORKER_CPU_BUDGET_H_

#include <filesystem>
#include <string>
#include <vector>

#include "protocol/status.h"

namespace imgsweep {

struct CpuBudget {
  unsigned cpus = 1;       // at least 1
  std::string decided_by;  // for the log: "the cgroup v2 CPU quota (cpu.max 100000 100000)"
  bool by_quota = false;   // a cgroup quota decided `cpus`, not the cores or the affinity
};

// The smallest of `hardware`, `affinity` (0: unknown) and the quota of the
// cgroup this process is in or of any cgroup above it, rounded up. `root`
// is "/" but for tests: the files read are root/proc/self/mountinfo,
// root/proc/self/cgroup and the cgroup files below the mount points they
// name.
CpuBudget CpusOf(const std::filesystem::path& root, unsigned hardware, unsigned affinity);

// CpusOf for this process on this host.
CpuBudget UsableCpus();

// The cpus the calling thread may run on (its affinity; before any slot
// is pinned, the process's), ascending; empty when the kernel does not say.
std::vector<unsigned> AffinityCpus();

// The cpu of each of `slots` slots, spread over the `cpus` a process may
// run on: slot i keeps to cpus[i % cpus.size()]. Empty (no slot pinned)
// when a quota decided the budget, since the quota's cpus can be any of the
// host's and containers under quotas would crowd onto its first ones, or
// when the slots do not spread evenly (not a multiple of the cpus), since
// pinned slots cannot even out a cpu that has one cell more.
std::vector<unsigned> SlotCpus(const CpuBudget& budget, const std::vector<unsigned>& cpus,
                               unsigned slots);

// "0,2,3": `cpus` as --pin-cells takes them.
std::string CpuList(const std::vector<unsigned>& cpus);

// How `workers` workers of one host share its cpus (`run`'s local ones).
struct SharedCpus {
  unsigned slots = 1;          // each worker's
  std::vector<unsigned> cpus;  // empty, or every worker's slots' cpus, one worker after another
  // The --pin-cells of worker `i` (from 0): its share of `cpus`, or "off".
  std::string PinCellsOf(unsigned i) const;
};

// `slots_asked` 0: one slot per cpu, divided among the workers, when
// `pin` and SlotCpus can keep them so; else `unpinned_per_cpu` per cpu.
// Asked slots are pinned when SlotCpus can spread every worker's.
SharedCpus ShareCpus(const CpuBudget& budget, const std::vector<unsigned>& cpus, unsigned workers,
                     unsigned slots_asked, bool pin, unsigned unpinned_per_cpu);

// `--pin-cells`: "auto" (SlotCpus), "off", or a list of cpus ("0,2,3")
// that slot i keeps to round robin, each one that `allowed` holds.
// kInvalidInput, naming the value, otherwise.
Result<std::vector<unsigned>> PinnedCpus(const std::string& flag, const CpuBudget& budget,
                                         const std::vector<unsigned>& allowed, unsigned slots);

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_CPU_BUDGET_H_
