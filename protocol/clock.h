// Time as the coordinator and the worker read it: the seam that lets
// liveness, lease and retry tests move time by hand instead of waiting.
//
// Thread-safety: every Clock may be read from several threads at once;
// FakeClock::Advance too.
#ifndef IMGSWEEP_PROTOCOL_CLOCK_H_
#define IMGSWEEP_PROTOCOL_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace imgsweep {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  // Monotonic: for deadlines, silences and durations.
  virtual TimePoint Now() const = 0;
  // Wall-clock milliseconds since the epoch: for records people read.
  virtual std::int64_t UnixMillis() const = 0;
};

// The system's steady and wall clocks. Lives as long as the process.
Clock& SystemClock();

// Stands still until told to move. Starts well after the epoch of its time
// points, so "long ago" (a default TimePoint) is always long ago.
class FakeClock final : public Clock {
 public:
  TimePoint Now() const override { return TimePoint(Duration(ticks_.load())); }
  std::int64_t UnixMillis() const override {
    return kUnixStartMs +
           std::chrono::duration_cast<std::chrono::milliseconds>(Duration(ticks_.load())).count();
  }
  void Advance(Duration by) { ticks_ += by.count(); }

 private:
  static constexpr std::int64_t kUnixStartMs = 1'800'000'000'000;
  std::atomic<Duration::rep> ticks_{std::chrono::duration_cast<Duration>(std::chrono::hours(24)).count()};
};

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_CLOCK_H_
