// The words logs, meta.json and the store's readers use for the wire's
// enums and message kinds.
#include "protocol/messages.h"

namespace imgsweep {

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kExited:
      return "exited";
    case Outcome::kSignaled:
      return "signaled";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kInfraFailure:
      return "infra-failure";
    case Outcome::kUnsupported:
      return "unsupported";
  }
  return "unknown";
}

bool IsLayoutFingerprint(std::string_view text) {
  if (text == kDenseLayout) return true;
  constexpr std::string_view kSparse = "sparse:";
  if (text.size() != kSparse.size() + 16 || !text.starts_with(kSparse)) return false;
  for (char c : text.substr(kSparse.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

const char* FailureKindName(FailureKind kind) {
  switch (kind) {
    case FailureKind::kNone:
      return "";
    case FailureKind::kSpawnError:
      return "spawn-error";
    case FailureKind::kBinaryMissing:
      return "binary-missing";
    case FailureKind::kBinaryUnrunnable:
      return "binary-unrunnable";
    case FailureKind::kImageMismatch:
      return "image-mismatch";
    case FailureKind::kOutputLimit:
      return "output-limit";
    case FailureKind::kPathRefused:
      return "path-refused";
    case FailureKind::kWorkerLost:
      return "worker-lost";
    case FailureKind::kLeaseExpired:
      return "lease-expired";
    case FailureKind::kImageLayout:
      return "image-layout";
  }
  return "unknown";
}

const char* MessageName(const Message& message) {
  static constexpr const char* kNames[] = {"hello",  "welcome",    "refused",
                                           "credit", "assignment", "result",
                                           "ack",    "heartbeat",  "shutdown",
                                           "hello-first", "status-request", "status-reply",
                                           "results"};
  return kNames[message.index()];
}

}  // namespace imgsweep
