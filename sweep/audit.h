// The cross-host audit (`coordinator --audit P`): P% of cells, chosen by
// their keys alone, run on two hosts, and their outputs are compared byte
// for byte. When they differ the cell is held until a third host breaks the
// tie; its record keeps every attempt, so a disagreement stays readable
// from the store as a finding.
// Thread-safety: free functions; the store serialises its own reads.
#ifndef IMGSWEEP_SWEEP_AUDIT_H_
#define IMGSWEEP_SWEEP_AUDIT_H_

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"
#include "storage/store.h"

namespace imgsweep {

// Whether an audit of `percent` (0..100) runs the cell on two hosts: a
// function of the key, so every run, rerun and restart picks the same cells.
bool AuditSelects(std::string_view key, unsigned percent);

// Two outcomes that printed the same: outcome, exit code, signal, stdout
// and stderr.
bool SameOutput(const Attempt& a, const Attempt& b);

// Where an audited cell stands after an outcome of its current round.
struct AuditVerdict {
  enum Kind {
    kAgreed,         // the last outcome matches one from another host: it stands
    kAnotherHost,    // held: run it on a host that is not in `hosts`
    kNoMajority,     // three hosts, three outputs: the cell fails
  };
  Kind kind = kAgreed;
  std::set<std::string> hosts;  // hosts that gave an outcome this round
};
// REQUIRES: the record's last attempt is an outcome (not an infrastructure
// failure).
AuditVerdict JudgeAudit(const CellRecord& record);

// Two hosts that printed differently for one cell.
struct AuditFinding {
  std::string key;
  std::string host_a, host_b;  // in the order they ran
  std::string difference;      // the first differing line, for people
  std::string resolution;      // "HOST agrees with HOST_A", or "held", "no two hosts agree"
};
// The finding in the cell's current round, if its outcomes differ; reads
// the outputs from `store`. kNotFound when an output is missing.
Result<std::vector<AuditFinding>> FindingsOf(Store& store, std::string_view key,
                                             const CellRecord& record);

}  // namespace imgsweep

#endif  // IMGSWEEP_SWEEP_AUDIT_H_
