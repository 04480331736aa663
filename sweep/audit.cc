#include "sweep/audit.h"

#include <cstdint>

#include "protocol/sha256.h"

namespace imgsweep {
namespace {

// The round's outcomes, in the order they ran.
std::vector<const Attempt*> Outcomes(const CellRecord& record) {
  std::vector<const Attempt*> outcomes;
  for (std::size_t i = record.round_start; i < record.attempts.size(); ++i) {
    if (record.attempts[i].outcome != Outcome::kInfraFailure) outcomes.push_back(&record.attempts[i]);
  }
  return outcomes;
}

// The first line where `a` and `b` differ: "line N: "A" / "B"", each
// side cut to 80 bytes.
std::string FirstDifferingLine(std::string_view a, std::string_view b) {
  std::size_t line = 1, start = 0;
  const std::size_t common = std::min(a.size(), b.size());
  std::size_t i = 0;
  for (; i < common && a[i] == b[i]; ++i) {
    if (a[i] == '\n') {
      ++line;
      start = i + 1;
    }
  }
  auto line_of = [start](std::string_view text) {
    std::string_view rest = text.substr(std::min(start, text.size()));
    rest = rest.substr(0, rest.find('\n'));
    std::string shown(rest.substr(0, 80));
    for (char& c : shown) {  // outputs are bytes: no control character reaches a terminal
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    std::string quoted = "\"" + shown + (rest.size() > 80 ? "...\"" : "\"");
    return rest.empty() && start >= text.size() ? std::string("(end)") : quoted;
  };
  return "line " + std::to_string(line) + ": " + line_of(a) + " / " + line_of(b);
}

std::string Ending(const Attempt& a) {
  switch (a.outcome) {
    case Outcome::kExited:
      return "exit " + std::to_string(a.exit_code);
    case Outcome::kSignaled:
      return "signal " + std::to_string(a.signal);
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kUnsupported:
      return "unsupported";
    case Outcome::kInfraFailure:
      break;
  }
  return "infra-failure";
}

}  // namespace

bool AuditSelects(std::string_view key, unsigned percent) {
  if (percent == 0) return false;
  if (percent >= 100) return true;
  const std::string digest = Sha256Hex(key);
  // The first 8 hex digits as a number: uniform enough to pick a share.
  const std::uint32_t value = static_cast<std::uint32_t>(std::stoul(digest.substr(0, 8), nullptr, 16));
  return value % 100 < percent;
}

bool SameOutput(const Attempt& a, const Attempt& b) {
  return a.outcome == b.outcome && a.exit_code == b.exit_code && a.signal == b.signal &&
         a.stdout_sha256 == b.stdout_sha256 && a.stderr_sha256 == b.stderr_sha256;
}

AuditVerdict JudgeAudit(const CellRecord& record) {
  const std::vector<const Attempt*> outcomes = Outcomes(record);
  AuditVerdict verdict;
  for (const Attempt* a : outcomes) verdict.hosts.insert(a->host);
  const Attempt& last = *outcomes.back();
  for (std::size_t i = 0; i + 1 < outcomes.size(); ++i) {
    if (outcomes[i]->host != last.host && SameOutput(*outcomes[i], last)) return verdict;
  }
  // Three hosts gave three outputs; with fewer, one more host decides.
  verdict.kind = verdict.hosts.size() >= 3 ? AuditVerdict::kNoMajority : AuditVerdict::kAnotherHost;
  return verdict;
}

Result<std::vector<AuditFinding>> FindingsOf(Store& store, std::string_view key,
                                             const CellRecord& record) {
  const std::vector<const Attempt*> outcomes = Outcomes(record);
  std::vector<AuditFinding> findings;
  for (std::size_t j = 1; j < outcomes.size(); ++j) {
    const Attempt& a = *outcomes[0];
    const Attempt& b = *outcomes[j];
    if (SameOutput(a, b) || a.host == b.host) continue;
    AuditFinding finding{std::string(key), a.host, b.host, "", ""};
    if (a.stdout_sha256 != b.stdout_sha256 || a.stderr_sha256 != b.stderr_sha256) {
      const bool out = a.stdout_sha256 != b.stdout_sha256;
      Result<std::string> text_a = store.GetBlob(out ? a.stdout_sha256 : a.stderr_sha256);
      if (!text_a.ok()) return text_a.status();
      Result<std::string> text_b = store.GetBlob(out ? b.stdout_sha256 : b.stderr_sha256);
      if (!text_b.ok()) return text_b.status();
      finding.difference =
          std::string(out ? "stdout " : "stderr ") + FirstDifferingLine(text_a.value(), text_b.value());
    } else {
      finding.difference = Ending(a) + " / " + Ending(b);
    }
    // Who broke the tie: a later outcome that matches one of the two.
    finding.resolution = record.state == CellState::kPending ? "held for a third host"
                         : record.state == CellState::kFailed ? "no two hosts agree"
                                                               : "";
    for (std::size_t k = j + 1; k < outcomes.size() && finding.resolution.empty(); ++k) {
      if (SameOutput(*outcomes[k], a)) finding.resolution = outcomes[k]->host + " agrees with " + a.host;
      if (SameOutput(*outcomes[k], b)) finding.resolution = outcomes[k]->host + " agrees with " + b.host;
    }
    findings.push_back(std::move(finding));
    break;  // one finding per cell: the first pair that differs
  }
  return findings;
}

}  // namespace imgsweep
