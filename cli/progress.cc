#include "cli/progress.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace imgsweep {

std::string ProgressLine(const Progress& p) {
  const double seconds = std::chrono::duration<double>(p.elapsed).count();
  const double rate = seconds > 0 ? static_cast<double>(p.ran_now) / seconds : 0;
  const std::size_t left = p.cells - std::min(p.cells, p.closed);
  char line[256];
  const int percent = p.cells == 0 ? 100 : static_cast<int>(100 * p.closed / p.cells);
  std::string eta = "ETA -";
  if (left == 0) {
    eta = "done";
  } else if (rate > 0) {
    eta = "ETA " + std::to_string(std::lround(static_cast<double>(left) / rate)) + " s";
  }
  std::snprintf(line, sizeof line, "%zu/%zu cells (%d%%), %.0f cells/s, %s, %zu failed, %zu %s",
                p.closed, p.cells, percent, rate, eta.c_str(), p.failed, p.workers,
                p.workers == 1 ? "worker" : "workers");
  return line;
}

ProgressPrinter::ProgressPrinter(std::FILE* out, bool live, std::chrono::milliseconds interval)
    : out_(out), live_(live), interval_(interval) {}

ProgressPrinter::~ProgressPrinter() {
  if (live_ && drawn_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

void ProgressPrinter::OnProgress(const Progress& progress) {
  const auto now = std::chrono::steady_clock::now();
  const bool finished = progress.closed >= progress.cells;
  if (now < next_ && !finished) return;
  next_ = now + interval_;
  if (live_) {
    // \r and "erase to the end of the line": the same line, rewritten.
    std::fprintf(out_, "\r\033[Kimgsweep: %s", ProgressLine(progress).c_str());
    std::fflush(out_);
    drawn_ = true;
  } else if (!finished || !drawn_) {
    spdlog::info("progress: {}", ProgressLine(progress));
    drawn_ = finished;
  }
}

}  // namespace imgsweep
