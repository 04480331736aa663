#include "cli/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <exception>

namespace imgsweep {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Seconds: a synced commit takes a few ms; a dispatch tens of µs.
const prometheus::Histogram::BucketBoundaries kCommitBuckets = {0.0005, 0.001, 0.002, 0.005,
                                                                 0.01,   0.02,  0.05,  0.1,
                                                                 0.2,    0.5,   1};
const prometheus::Histogram::BucketBoundaries kDispatchBuckets = {
    0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01};

// Seconds from an assignment leaving to its result stored: a cell's run
// plus the round trip and the commit.
const prometheus::Histogram::BucketBoundaries kStoredBuckets = {
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

class PrometheusMetrics final : public MetricsServer {
 public:
  PrometheusMetrics(std::unique_ptr<prometheus::Exposer> exposer, std::string host)
      : exposer_(std::move(exposer)),
        registry_(std::make_shared<prometheus::Registry>()),
        host_(std::move(host)),
        cells_(BuildGauge()
                   .Name("imgsweep_cells")
                   .Help("Cells of the sweep by state (and outcome, for closed ones)")
                   .Register(*registry_)),
        pending_(cells_.Add({{"state", "pending"}})),
        in_flight_(cells_.Add({{"state", "in_flight"}})),
        exited_zero_(cells_.Add({{"state", "done"}, {"outcome", "exited_zero"}})),
        exited_nonzero_(cells_.Add({{"state", "done"}, {"outcome", "exited_nonzero"}})),
        signaled_(cells_.Add({{"state", "done"}, {"outcome", "signaled"}})),
        timeout_(cells_.Add({{"state", "done"}, {"outcome", "timeout"}})),
        failed_(cells_.Add({{"state", "failed"}})),
        workers_(BuildGauge()
                     .Name("imgsweep_workers")
                     .Help("Workers connected")
                     .Register(*registry_)
                     .Add({})),
        workers_lost_(BuildCounter()
                          .Name("imgsweep_workers_lost_total")
                          .Help("Workers taken for lost (silent, or replaced)")
                          .Register(*registry_)
                          .Add({})),
        rejected_(BuildCounter()
                      .Name("imgsweep_rejected_frames_total")
                      .Help("Frames from peers dropped as malformed or unexpected")
                      .Register(*registry_)
                      .Add({})),
        ran_now_(BuildCounter()
                     .Name("imgsweep_cells_stored_total")
                     .Help("Cells closed by this run")
                     .Register(*registry_)
                     .Add({})),
        commit_(BuildHistogram()
                    .Name("imgsweep_store_commit_seconds")
                    .Help("One synced RocksDB write of a batch of results")
                    .Register(*registry_)
                    .Add({}, kCommitBuckets)),
        dispatch_(BuildHistogram()
                      .Name("imgsweep_dispatch_seconds")
                      .Help("Building one assignment and handing it to ZeroMQ")
                      .Register(*registry_)
                      .Add({}, kDispatchBuckets)),
        stored_(BuildHistogram()
                    .Name("imgsweep_cell_queued_to_stored_seconds")
                    .Help("From a cell's assignment leaving the coordinator to its result "
                          "stored durably")
                    .Register(*registry_)
                    .Add({}, kStoredBuckets)) {
    exposer_->RegisterCollectable(registry_);
  }
  // The exposer first: it stops and joins the threads that serve scrapes,
  // which read the registry.
  ~PrometheusMetrics() override { exposer_.reset(); }
  PrometheusMetrics(const PrometheusMetrics&) = delete;
  PrometheusMetrics& operator=(const PrometheusMetrics&) = delete;

  std::string url() const override {
    const std::vector<int> ports = exposer_->GetListeningPorts();
    return "http://" + host_ + ":" + (ports.empty() ? "?" : std::to_string(ports[0])) + "/metrics";
  }

  void OnProgress(const Progress& p) override {
    const std::size_t open = p.cells - std::min(p.cells, p.closed);
    pending_.Set(static_cast<double>(open - std::min(open, p.leased)));
    in_flight_.Set(static_cast<double>(p.leased));
    exited_zero_.Set(static_cast<double>(p.exited_zero));
    exited_nonzero_.Set(static_cast<double>(p.exited_nonzero));
    signaled_.Set(static_cast<double>(p.signaled));
    timeout_.Set(static_cast<double>(p.timeout));
    failed_.Set(static_cast<double>(p.failed));
    workers_.Set(static_cast<double>(p.workers));
    Advance(workers_lost_, p.workers_lost, &seen_lost_);
    Advance(rejected_, p.rejected_frames, &seen_rejected_);
    Advance(ran_now_, p.ran_now, &seen_ran_);
  }
  void OnCommit(std::chrono::steady_clock::duration took, std::size_t) override {
    commit_.Observe(Seconds(took));
  }
  void OnDispatch(std::chrono::steady_clock::duration took, std::size_t) override {
    dispatch_.Observe(Seconds(took));
  }
  void OnStored(const std::vector<std::chrono::steady_clock::duration>& waits) override {
    for (std::chrono::steady_clock::duration wait : waits) stored_.Observe(Seconds(wait));
  }

 private:
  // Counters only go up: add what is new since the last snapshot.
  static void Advance(prometheus::Counter& counter, std::size_t now, std::size_t* seen) {
    if (now > *seen) counter.Increment(static_cast<double>(now - *seen));
    *seen = now;
  }

  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::string host_;
  prometheus::Family<prometheus::Gauge>& cells_;
  prometheus::Gauge& pending_;
  prometheus::Gauge& in_flight_;
  prometheus::Gauge& exited_zero_;
  prometheus::Gauge& exited_nonzero_;
  prometheus::Gauge& signaled_;
  prometheus::Gauge& timeout_;
  prometheus::Gauge& failed_;
  prometheus::Gauge& workers_;
  prometheus::Counter& workers_lost_;
  prometheus::Counter& rejected_;
  prometheus::Counter& ran_now_;
  prometheus::Histogram& commit_;
  prometheus::Histogram& dispatch_;
  prometheus::Histogram& stored_;
  std::size_t seen_lost_ = 0;
  std::size_t seen_rejected_ = 0;
  std::size_t seen_ran_ = 0;
};

}  // namespace

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size() ||
      address.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
    return Status::InvalidInput("--metrics " + address + ": expected HOST:PORT, e.g. 127.0.0.1:9100");
  }
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(address);
    return std::unique_ptr<MetricsServer>(
        new PrometheusMetrics(std::move(exposer), address.substr(0, colon)));
  } catch (const std::exception& e) {
    return Status::IoError("--metrics " + address + ": cannot listen: " + e.what());
  }
}

}  // namespace imgsweep
