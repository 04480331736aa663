// Progress of a running sweep for the people watching it: on a terminal one
// line rewritten in place (cells done/total, rate, ETA, failures, workers);
// elsewhere (CI logs, pipes) a plain log line every `interval`.
// Thread-safety: called on the coordinator's thread only.
#ifndef IMGSWEEP_CLI_PROGRESS_H_
#define IMGSWEEP_CLI_PROGRESS_H_

#include <chrono>
#include <cstdio>
#include <string>

#include "coordinator/coordinator.h"

namespace imgsweep {

// "120/440 cells (27%), 95 cells/s, ETA 3 s, 0 failed, 2 workers"
std::string ProgressLine(const Progress& p);

class ProgressPrinter final : public CoordinatorObserver {
 public:
  // `live`: rewrite one line on `out` (a terminal); else log through spdlog.
  ProgressPrinter(std::FILE* out, bool live, std::chrono::milliseconds interval);
  ~ProgressPrinter() override;  // ends a live line
  ProgressPrinter(const ProgressPrinter&) = delete;
  ProgressPrinter& operator=(const ProgressPrinter&) = delete;

  void OnProgress(const Progress& progress) override;
  void OnCommit(std::chrono::steady_clock::duration, std::size_t) override {}
  void OnDispatch(std::chrono::steady_clock::duration, std::size_t) override {}
  void OnStored(const std::vector<std::chrono::steady_clock::duration>&) override {}

 private:
  std::FILE* out_;
  const bool live_;
  const std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point next_{};
  bool drawn_ = false;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_CLI_PROGRESS_H_
