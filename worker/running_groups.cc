#include "worker/running_groups.h"

#include <signal.h>

#include <array>
#include <atomic>
#include <cstddef>

namespace imgsweep {
namespace {

// Lock-free places (0: free) rather than a set under a mutex, since a
// signal handler reads them. More than the most slots a worker runs (4096).
constexpr std::size_t kPlaces = 4096 + 256;
std::array<std::atomic<pid_t>, kPlaces> groups{};

}  // namespace

void TrackGroup(pid_t group) {
  for (std::atomic<pid_t>& place : groups) {
    pid_t free = 0;
    if (place.compare_exchange_strong(free, group)) return;
  }
}

void ForgetGroup(pid_t group) {
  for (std::atomic<pid_t>& place : groups) {
    pid_t mine = group;
    if (place.compare_exchange_strong(mine, 0)) return;
  }
}

void KillRunningGroups() {
  for (const std::atomic<pid_t>& place : groups) {
    const pid_t group = place.load();
    if (group > 0) ::killpg(group, SIGKILL);
  }
}

}  // namespace imgsweep
