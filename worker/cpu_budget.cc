#include "worker/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> Lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string FirstLine(const fs::path& file) {
  const std::vector<std::string> lines = Lines(file);
  return lines.empty() ? "" : lines.front();
}

bool HasToken(const std::string& list, const std::string& token) {
  std::istringstream in(list);
  for (std::string t; std::getline(in, t, ',');) {
    if (t == token) return true;
  }
  return false;
}

// A cgroup hierarchy this process is in: where it is mounted and the
// process's folder in it.
struct Hierarchy {
  fs::path mount;   // below root
  fs::path folder;  // the process's cgroup folder, below mount
};

// The cgroup v2 hierarchy (`v2`) or the v1 one with the cpu controller.
std::optional<Hierarchy> Find(const fs::path& root, bool v2) {
  std::string path;  // the process's cgroup, as /proc/self/cgroup says
  bool found = false;
  for (const std::string& line : Lines(root / "proc/self/cgroup")) {
    const std::size_t a = line.find(':');
    const std::size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    if (v2 ? line.substr(0, a) == "0" && controllers.empty() : HasToken(controllers, "cpu")) {
      path = line.substr(b + 1);
      found = true;
      break;
    }
  }
  if (!found) return std::nullopt;
  for (const std::string& line : Lines(root / "proc/self/mountinfo")) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
    std::istringstream in(line);
    std::vector<std::string> f;
    for (std::string w; in >> w;) f.push_back(w);
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || dash + 3 > f.end()) continue;
    const std::string& fstype = *(dash + 1);
    const std::string superopts = dash + 3 == f.end() ? "" : *(dash + 3);
    if (v2 ? fstype != "cgroup2" : fstype != "cgroup" || !HasToken(superopts, "cpu")) continue;
    Hierarchy h{fs::path(f[4]).relative_path(), {}};
    // In a cgroup namespace the mount's root is the process's own cgroup.
    const fs::path relative = fs::path(path).lexically_relative(f[3]);
    if (!relative.empty() && relative != "." && *relative.begin() != "..") h.folder = relative;
    return h;
  }
  return std::nullopt;
}

// The quota of one cgroup folder in CPUs, rounded up; nullopt when none.
std::optional<unsigned> QuotaAt(const fs::path& dir, bool v2, std::string* said) {
  long long quota = -1, period = 0;
  if (v2) {
    std::istringstream in(FirstLine(dir / "cpu.max"));
    std::string q;
    if (!(in >> q >> period) || q == "max") return std::nullopt;
    quota = std::atoll(q.c_str());
    *said = "cpu.max " + q + " " + std::to_string(period);
  } else {
    quota = std::atoll(FirstLine(dir / "cpu.cfs_quota_us").c_str());
    period = std::atoll(FirstLine(dir / "cpu.cfs_period_us").c_str());
    *said = "cpu.cfs_quota_us " + std::to_string(quota) + " / cpu.cfs_period_us " +
            std::to_string(period);
  }
  if (quota <= 0 || period <= 0) return std::nullopt;
  return static_cast<unsigned>(std::max<long long>(1, (quota + period - 1) / period));
}

// The smallest quota of the process's cgroup and those above it.
void ApplyQuota(const fs::path& root, bool v2, CpuBudget* budget) {
  std::optional<Hierarchy> h = Find(root, v2);
  if (!h) return;
  fs::path folder = h->folder;
  while (true) {
    std::string said;
    std::optional<unsigned> cpus = QuotaAt(root / h->mount / folder, v2, &said);
    if (cpus && *cpus < budget->cpus) {
      budget->cpus = *cpus;
      budget->decided_by = std::string("the cgroup ") + (v2 ? "v2" : "v1") + " CPU quota (" +
                           said + ")";
      budget->by_quota = true;
    }
    if (folder.empty()) break;
    folder = folder.parent_path();
    if (folder == "/" || folder == ".") folder.clear();
  }
}

}  // namespace

CpuBudget CpusOf(const fs::path& root, unsigned hardware, unsigned affinity) {
  CpuBudget budget{std::max(1u, hardware), "the host's " + std::to_string(hardware) + " cores"};
  if (affinity > 0 && affinity < budget.cpus) {
    budget.cpus = affinity;
    budget.decided_by = "the CPU affinity (" + std::to_string(affinity) + " of " +
                        std::to_string(hardware) + " cores)";
  }
  ApplyQuota(root, /*v2=*/true, &budget);
  ApplyQuota(root, /*v2=*/false, &budget);
  return budget;
}

std::vector<unsigned> AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<unsigned> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

CpuBudget UsableCpus() {
  // An empty affinity (the kernel did not say) is CpusOf's 0, unknown.
  return CpusOf("/", std::thread::hardware_concurrency(),
                static_cast<unsigned>(AffinityCpus().size()));
}

namespace {

// `slots` cpus taken from `cpus` round robin. REQUIRES: `cpus` not empty.
std::vector<unsigned> RoundRobin(const std::vector<unsigned>& cpus, unsigned slots) {
  std::vector<unsigned> pinned;
  for (unsigned i = 0; i < slots; ++i) pinned.push_back(cpus[i % cpus.size()]);
  return pinned;
}

}  // namespace

std::vector<unsigned> SlotCpus(const CpuBudget& budget, const std::vector<unsigned>& cpus,
                               unsigned slots) {
  if (budget.by_quota || cpus.empty() || slots == 0 || slots % cpus.size() != 0) return {};
  return RoundRobin(cpus, slots);
}

std::string CpuList(const std::vector<unsigned>& cpus) {
  std::string list;
  for (unsigned cpu : cpus) {
    // Not ("," or "") + to_string: GCC 12 warns (-Wrestrict) on that in a
    // Release build.
    if (!list.empty()) list += ',';
    list += std::to_string(cpu);
  }
  return list;
}

std::string SharedCpus::PinCellsOf(unsigned i) const {
  if (cpus.empty()) return "off";
  auto first = cpus.begin() + static_cast<std::ptrdiff_t>(i) * slots;
  return CpuList(std::vector<unsigned>(first, first + slots));
}

SharedCpus ShareCpus(const CpuBudget& budget, const std::vector<unsigned>& cpus, unsigned workers,
                     unsigned slots_asked, bool pin, unsigned unpinned_per_cpu) {
  SharedCpus shared;
  workers = std::max(1u, workers);
  if (pin) {
    const unsigned each = slots_asked > 0 ? slots_asked : std::max(1u, budget.cpus / workers);
    shared.cpus = SlotCpus(budget, cpus, each * workers);
    if (!shared.cpus.empty()) {
      shared.slots = each;
      return shared;
    }
  }
  shared.slots =
      slots_asked > 0 ? slots_asked : std::max(1u, budget.cpus * unpinned_per_cpu / workers);
  return shared;
}

Result<std::vector<unsigned>> PinnedCpus(const std::string& flag, const CpuBudget& budget,
                                         const std::vector<unsigned>& allowed, unsigned slots) {
  if (flag == "auto") return SlotCpus(budget, allowed, slots);
  if (flag == "off") return std::vector<unsigned>{};
  std::vector<unsigned> listed;
  std::istringstream in(flag);
  for (std::string item; std::getline(in, item, ',');) {
    const bool digits = !item.empty() && item.size() <= 5 &&
                        item.find_first_not_of("0123456789") == std::string::npos;
    const unsigned cpu = digits ? static_cast<unsigned>(std::stoul(item)) : 0;
    if (!digits || std::find(allowed.begin(), allowed.end(), cpu) == allowed.end()) {
      const std::string may = CpuList(allowed);
      return Status::InvalidInput("--pin-cells " + flag + ": \"" + item +
                                  "\" is not a cpu this process may run on (" + may + ")");
    }
    listed.push_back(cpu);
  }
  if (listed.empty() || flag.back() == ',') {
    return Status::InvalidInput("--pin-cells \"" + flag +
                                "\": give auto, off, or cpus such as 0,1");
  }
  return RoundRobin(listed, slots);
}

}  // namespace imgsweep
