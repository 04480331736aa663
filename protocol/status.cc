#include "protocol/status.h"

#include <cerrno>
#include <cstring>

namespace imgsweep {

Status Status::FromErrno(std::string_view context, int error_number) {
  std::string message(context);
  message += ": ";
  message += std::strerror(error_number);
  return Status(error_number == ENOENT ? StatusCode::kNotFound : StatusCode::kIoError,
                std::move(message));
}

std::string Status::ToString() const {
  switch (code_) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kInvalidInput:
      return "invalid input: " + message_;
    case StatusCode::kNotFound:
      return "not found: " + message_;
    case StatusCode::kIoError:
      return "I/O error: " + message_;
    case StatusCode::kCorruption:
      return "corruption: " + message_;
    case StatusCode::kBusy:
      return "busy: " + message_;
  }
  return "unknown status: " + message_;
}

}  // namespace imgsweep
