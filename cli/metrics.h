// Prometheus metrics of a running coordinator, served over HTTP
// (`--metrics ADDR:PORT`, path /metrics). The prometheus-cpp adapter: the
// only file that includes it.
// Thread-safety: the observer calls come from the coordinator's thread;
// prometheus-cpp serves scrapes from its own threads and locks what it reads.
#ifndef IMGSWEEP_CLI_METRICS_H_
#define IMGSWEEP_CLI_METRICS_H_

#include <memory>
#include <string>

#include "coordinator/coordinator.h"
#include "protocol/status.h"

namespace imgsweep {

class MetricsServer : public CoordinatorObserver {
 public:
  // Listens on `address` ("127.0.0.1:9100"; port 0 picks a free one).
  // kInvalidInput when it is not HOST:PORT, kIoError when it cannot bind.
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& address);
  // "http://127.0.0.1:41234/metrics"
  virtual std::string url() const = 0;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_CLI_METRICS_H_
