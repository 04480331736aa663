#include "coordinator/result_recorder.h"

#include <spdlog/spdlog.h>

#include "protocol/sha256.h"
#include "sweep/audit.h"

namespace imgsweep {

Retry RetryFor(FailureKind kind) {
  switch (kind) {
    case FailureKind::kNone:  // a worker's failure without a kind: as if it could not start
    case FailureKind::kSpawnError:
    case FailureKind::kBinaryMissing:
    case FailureKind::kBinaryUnrunnable:
    case FailureKind::kImageMismatch:
    case FailureKind::kOutputLimit:
    case FailureKind::kPathRefused:
    case FailureKind::kImageLayout:
      return Retry::kElsewhere;
    case FailureKind::kWorkerLost:
    case FailureKind::kLeaseExpired:
      return Retry::kAnywhere;
  }
  return Retry::kElsewhere;
}

ResultRecorder::ResultRecorder(const Plan* plan, CommitPipeline* pipeline, const Clock* clock,
                               unsigned max_attempts, unsigned audit_percent)
    : plan_(plan),
      pipeline_(pipeline),
      clock_(clock),
      max_attempts_(max_attempts),
      audit_percent_(audit_percent),
      cells_(plan->cell_count()),
      done_by_version_(plan->versions().size()),
      failed_by_version_(plan->versions().size()),
      open_(plan->cell_count()) {
  for (std::size_t t = 0; t < plan->types().size(); ++t) {
    open_by_type_.push_back(plan->rows(t).size() * plan->versions().size());
  }
}

void ResultRecorder::Reuse(std::size_t cell) {
  cells_[cell].closed = true;
  const CellRef ref = plan_->Ref(cell);
  ++done_by_version_[ref.version];
  --open_by_type_[ref.type];
  --open_;
}

void ResultRecorder::Close(std::size_t cell, const CellRecord& record) {
  CellSlot& slot = cells_[cell];
  slot.closed = true;
  slot.failed = record.state == CellState::kFailed;
  const CellRef ref = plan_->Ref(cell);
  ++(slot.failed ? failed_by_version_ : done_by_version_)[ref.version];
  --open_by_type_[ref.type];
  counts_.Add(record);
  --open_;
}

void ResultRecorder::RecordResult(const WorkerEntry& worker, std::size_t cell,
                                  CellResult& result) {
  const CellRef ref = plan_->Ref(cell);
  CellSlot& slot = cells_[cell];
  Attempt attempt;
  attempt.number = slot.attempts + 1;
  attempt.outcome = result.outcome;
  attempt.exit_code = result.exit_code;
  attempt.signal = result.signal;
  attempt.duration_us = result.duration_us;
  attempt.started_unix_ms = result.started_unix_ms;
  attempt.worker = worker.name;
  attempt.host = worker.host;
  attempt.failure = result.failure;
  attempt.failure_kind = result.failure_kind;
  if (auto v = worker.versions.find(plan_->versions()[ref.version]); v != worker.versions.end()) {
    attempt.version_line = v->second.version_line;
    attempt.binary_sha256 = v->second.binary_sha256;
  }
  attempt.image_layout = worker.layout;
  CellWrite& write = pipeline_->WriteFor(cell, result.key, slot.attempts > 0);
  if (result.outcome == Outcome::kInfraFailure) {
    spdlog::warn("coordinator: {} attempt {} on {}: {}", result.key, attempt.number, worker.name,
                 result.failure);
    if (attempt.failure_kind == FailureKind::kNone) attempt.failure_kind = FailureKind::kSpawnError;
  } else {
    attempt.stdout_sha256 = Sha256Hex(result.stdout_text);
    attempt.stderr_sha256 = Sha256Hex(result.stderr_text);
    attempt.stdout_bytes = result.stdout_text.size();
    attempt.stderr_bytes = result.stderr_text.size();
    write.blobs.reserve(write.blobs.size() + 2);
    write.blobs.push_back({attempt.stdout_sha256, std::move(result.stdout_text)});
    write.blobs.push_back({attempt.stderr_sha256, std::move(result.stderr_text)});
    write.record.inputs = std::move(result.inputs);
  }
  Append(cell, write, std::move(attempt), worker.name);
}

void ResultRecorder::RecordLoss(std::size_t cell, FailureKind kind, const std::string& why,
                                const WorkerEntry* worker) {
  CellWrite& write = pipeline_->WriteFor(cell, plan_->Key(plan_->Ref(cell)), cells_[cell].attempts > 0);
  Attempt attempt;
  attempt.number = cells_[cell].attempts + 1;
  attempt.outcome = Outcome::kInfraFailure;
  attempt.failure_kind = kind;
  attempt.failure = std::string(FailureKindName(kind)) + ": " + why;
  attempt.started_unix_ms = clock_->UnixMillis();
  if (worker != nullptr) {
    attempt.worker = worker->name;
    attempt.host = worker->host;
  }
  // Not the worker's own report: it neither counts as its work nor keeps
  // the cell from it (RetryFor: kAnywhere).
  Append(cell, write, std::move(attempt), std::string());
}

void ResultRecorder::GiveUp(std::size_t cell, FailureKind kind, const std::string& why) {
  CellSlot& slot = cells_[cell];
  CellWrite& write = pipeline_->WriteFor(cell, plan_->Key(plan_->Ref(cell)), slot.attempts > 0);
  Attempt attempt;
  attempt.number = slot.attempts + 1;
  attempt.outcome = Outcome::kInfraFailure;
  attempt.failure_kind = kind;
  attempt.failure = std::string(FailureKindName(kind)) + ": " + why;
  attempt.started_unix_ms = clock_->UnixMillis();
  slot.attempts += 1;
  ++infra_attempts_;
  write.record.round_start = slot.round_start;
  write.record.attempts.push_back(std::move(attempt));
  write.record.state = CellState::kFailed;
  Close(cell, write.record);
}

bool ResultRecorder::Audited(std::size_t cell, CellWrite& write) {
  const AuditVerdict verdict = JudgeAudit(write.record);
  if (verdict.kind == AuditVerdict::kAgreed) return true;
  std::string hosts;
  for (const std::string& host : verdict.hosts) hosts += (hosts.empty() ? "" : ", ") + host;
  if (verdict.kind == AuditVerdict::kNoMajority) {
    spdlog::error("coordinator: audit: {} printed differently on each of {}: it fails", write.key,
                  hosts);
    write.record.state = CellState::kFailed;
    return true;
  }
  if (verdict.hosts.size() > 1) {
    spdlog::warn("coordinator: audit: {} printed differently on {}; held until another host "
                 "runs it", write.key, hosts);
  }
  write.record.state = CellState::kPending;
  pipeline_->Requeue(cell, std::string(), verdict.hosts);
  return false;
}

void ResultRecorder::Append(std::size_t cell, CellWrite& write, Attempt attempt,
                            const std::string& worker) {
  CellSlot& slot = cells_[cell];
  const bool infra = attempt.outcome == Outcome::kInfraFailure;
  const FailureKind kind = attempt.failure_kind;
  slot.attempts += 1;
  write.record.round_start = slot.round_start;
  write.record.attempts.push_back(std::move(attempt));
  if (!infra) {
    write.record.state = CellState::kDone;
    if (AuditSelects(write.key, audit_percent_) && !Audited(cell, write)) return;  // held
    Close(cell, write.record);  // done; failed when no two hosts agree
    ++ran_now_;
    ++by_worker_[worker];
    return;
  }
  ++infra_attempts_;
  // Outcomes held for the audit do not count against the attempt limit.
  std::uint32_t infra_in_round = 0;
  for (std::size_t i = slot.round_start; i < write.record.attempts.size(); ++i) {
    if (write.record.attempts[i].outcome == Outcome::kInfraFailure) ++infra_in_round;
  }
  if (infra_in_round < max_attempts_) {
    write.record.state = CellState::kPending;
    pipeline_->Requeue(cell, RetryFor(kind) == Retry::kElsewhere ? worker : std::string());
    return;
  }
  write.record.state = CellState::kFailed;
  Close(cell, write.record);
  spdlog::error("coordinator: {} failed on every allowed attempt ({} of {})", write.key,
                slot.attempts - slot.round_start, max_attempts_);
  if (!worker.empty()) {
    ++ran_now_;
    ++by_worker_[worker];
  }
}

}  // namespace imgsweep
