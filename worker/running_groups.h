// The process groups of the commands running now (RunCaptured's), kept so
// that a process asked to end at once can end them first: a worker's second
// SIGTERM would otherwise leave its cells running, with no deadline.
//
// Thread-safety: every function may be called from several threads at
// once; KillRunningGroups also from a signal handler.
#ifndef IMGSWEEP_WORKER_RUNNING_GROUPS_H_
#define IMGSWEEP_WORKER_RUNNING_GROUPS_H_

#include <sys/types.h>

namespace imgsweep {

// A command's group from its start until it is reaped. When more groups
// run than there are places (more than any worker's slots), the extra
// ones are not tracked.
void TrackGroup(pid_t group);
void ForgetGroup(pid_t group);

// Sends SIGKILL to every tracked group. Async-signal-safe: it only reads
// atomics and calls killpg. A command starting meanwhile may be missed.
void KillRunningGroups();

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_RUNNING_GROUPS_H_
