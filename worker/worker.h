// A worker: connects to the coordinator, says what it holds, and runs the
// cells it is given on `slots` threads, streaming each result back and
// keeping it until the coordinator acknowledges that it is stored.
//
// Message flow (docs/protocol.md): hello -> welcome | refused; credit;
// then assignments in, results and credit out, acks in; heartbeats both
// ways; shutdown ends it. Whenever a connection is made again (the
// coordinator restarted, the network came back) or the coordinator says
// hello-first, the worker says hello again and re-sends every result not
// yet acknowledged; when the coordinator is silent for `liveness`
// heartbeats it drops the connection and makes a new one. Cells already
// queued keep running throughout.
#ifndef IMGSWEEP_WORKER_WORKER_H_
#define IMGSWEEP_WORKER_WORKER_H_

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "protocol/status.h"
#include "protocol/transport.h"
#include "worker/cell_runner.h"
#include "worker/session.h"

namespace imgsweep {

// How many cells a worker asks for beyond its slots, by default, so a slot
// that frees up finds the next cell already here instead of waiting a
// round trip.
inline constexpr unsigned kPrefetchPerSlot = 1;
inline constexpr auto kDefaultGiveUp = std::chrono::minutes(10);

struct WorkerOptions {
  std::string connect;  // tcp://HOST:PORT
  std::string name;
  std::string host;
  unsigned slots = 1;
  // Empty, or the cpu each slot's cells keep to, one per slot (cpu_budget.h).
  std::vector<unsigned> slot_cpus;
  // Cells held beyond the slots; 0: kPrefetchPerSlot per slot. More hides
  // the round trip for very short cells; fewer balances the end of a sweep.
  unsigned prefetch = 0;
  std::vector<VersionInfo> versions;
  std::vector<BrokenVersion> broken;  // held but not runnable: reported in the hello
  std::vector<FileLayout> sparse;     // --image-layout as-is: its files with holes
  // The command table its executor runs (CommandTable::text), for the
  // hello; empty: the built-in one.
  std::string command_table;
  // Until the welcome says the coordinator's; then its own.
  std::chrono::milliseconds heartbeat = kDefaultHeartbeat;
  unsigned liveness = kDefaultLiveness;
  // Without a coordinator for this long (never welcomed, or silent since),
  // Run gives up.
  std::chrono::milliseconds give_up_after = kDefaultGiveUp;
  ReconnectBackoff backoff;
  ClientSecurity security;  // CURVE keys, when the coordinator asks for them
  // Asked between events (a signal wakes the wait): true once the worker
  // should drain, taking no more cells and going when the ones it holds are
  // done and acknowledged. Unset: never.
  std::function<bool()> stop_requested;
  // Rewritten about every second while a coordinator has welcomed the
  // worker, removed otherwise and at the end; empty: none.
  std::filesystem::path health_file;
};

// Thread-safety: Run is called once, from one thread; it owns the slot threads.
class Worker {
 public:
  Worker(WorkerOptions options, std::unique_ptr<CellExecutor> executor);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Until the coordinator says the sweep is over (OK) or refuses this
  // worker (kInvalidInput with its reason), the transport fails, no
  // coordinator answered for `give_up_after` (kIoError), or it drained
  // after stop_requested (OK).
  Status Run();

 private:
  SessionOptions SessionFor() const;

  WorkerOptions options_;
  std::unique_ptr<CellExecutor> executor_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_WORKER_H_
