// Expected failures as values. A Status carries a code chosen by what the
// caller should do next, and a message for the person who reads the log.
// Thread-safety: values; no shared state.
#ifndef IMGSWEEP_PROTOCOL_STATUS_H_
#define IMGSWEEP_PROTOCOL_STATUS_H_

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace imgsweep {

// Each code says what the caller does next. A cell's own failure (qemu-img
// exited 1, crashed, timed out) is never a Status: it is data, recorded as
// the cell's outcome. A cell this host could not run is a FailureKind
// (protocol/messages.h), which the coordinator retries on another worker.
enum class StatusCode {
  kOk,
  // The input (manifest, flag, file, frame) is wrong. Do not retry: report
  // it, naming what was wrong, and stop; the same input fails again.
  kInvalidInput,
  // A named thing (file, version, cell, peer) does not exist. The caller
  // decides: often the same as kInvalidInput, sometimes a normal miss.
  kNotFound,
  // The machine refused an operation (the OS, a library, a child process).
  // Retry later or elsewhere; the message names the path or peer.
  kIoError,
  // The store holds bytes it cannot read back. Stop: writing on would bury
  // the damage; nothing is retried or overwritten.
  kCorruption,
  // The other side cannot take more now (a peer's outbound queue is full).
  // Do not wait for it: drop, or cut the peer off.
  kBusy,
};

class [[nodiscard]] Status {
 public:
  Status() = default;

  static Status Ok() { return Status(); }
  static Status InvalidInput(std::string message) {
    return Status(StatusCode::kInvalidInput, std::move(message));
  }
  static Status NotFound(std::string message) {
    return Status(StatusCode::kNotFound, std::move(message));
  }
  // A failure of the machine that carries no errno of its own (a library's
  // error, a child process gone): the message says all there is.
  static Status IoError(std::string message) {
    return Status(StatusCode::kIoError, std::move(message));
  }
  static Status Corruption(std::string message) {
    return Status(StatusCode::kCorruption, std::move(message));
  }
  static Status Busy(std::string message) { return Status(StatusCode::kBusy, std::move(message)); }
  // "<context>: <strerror(error_number)>", with kNotFound for ENOENT.
  static Status FromErrno(std::string_view context, int error_number);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK", or the code's name and the message: "invalid input: ...".
  std::string ToString() const;

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status that says why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  // REQUIRES: !status.ok()
  Result(Status status) : state_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(state_); }
  // The failure; an OK Status when there is a value.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(state_); }
  // REQUIRES: ok()
  const T& value() const& { return std::get<T>(state_); }
  T& value() & { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }

 private:
  std::variant<Status, T> state_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_STATUS_H_
