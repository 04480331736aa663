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

enum class StatusCode {
  kOk,
  // The input (manifest, flag, file, frame) is wrong. Report it and stop;
  // retrying the same input cannot help.
  kInvalidInput,
  // A named thing (file, version, cell) does not exist.
  kNotFound,
  // The operating system refused an operation. The message names the path or
  // peer and the errno text.
  kIoError,
  // Bytes on this host differ from the digest the sweep expects: this host
  // must not serve the work; another host may.
  kDigestMismatch,
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
  static Status DigestMismatch(std::string message) {
    return Status(StatusCode::kDigestMismatch, std::move(message));
  }
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
