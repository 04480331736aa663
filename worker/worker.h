// A worker: connects to the coordinator, says what it holds, and runs the
// cells it is given on `slots` threads, streaming each result back and
// keeping it until the coordinator acknowledges that it is stored.
//
// Message flow (docs/protocol.md): hello -> welcome | refused; credit;
// then assignments in, results and credit out, acks in; heartbeats while
// idle; shutdown ends it.
#ifndef IMGSWEEP_WORKER_WORKER_H_
#define IMGSWEEP_WORKER_WORKER_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "protocol/status.h"
#include "protocol/transport.h"
#include "worker/cell_runner.h"

namespace imgsweep {

inline constexpr auto kDefaultHeartbeat = std::chrono::milliseconds(1000);

struct WorkerOptions {
  std::string connect;  // tcp://HOST:PORT
  std::string name;
  std::string host;
  unsigned slots = 1;
  std::vector<VersionInfo> versions;
  std::chrono::milliseconds heartbeat = kDefaultHeartbeat;
  ClientSecurity security;  // CURVE keys, when the coordinator asks for them
};

// Thread-safety: Run is called once, from one thread; it owns the slot threads.
class Worker {
 public:
  Worker(WorkerOptions options, std::unique_ptr<CellExecutor> executor);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Until the coordinator says the sweep is over (OK) or refuses this
  // worker (kInvalidInput with its reason), or the transport fails.
  Status Run();

 private:
  struct State;
  WorkerOptions options_;
  std::unique_ptr<CellExecutor> executor_;
  std::unique_ptr<State> state_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_WORKER_WORKER_H_
