// Which worker holds which cells under which lease: the one authority on it.
// A lease is a batch of cells handed to one worker (by its peer identity)
// with a deadline; a cell leaves its lease when it gets an outcome or an
// attempt, and the lease ends with its last open cell.
//
// Lease ids carry the coordinator's incarnation (one more at every start on
// a store) in the high half and a counter in the low half, so results of an
// earlier incarnation's leases are recognised as this sweep's after a
// restart.
//
// Thread-safety: the coordinator's thread only.
#ifndef IMGSWEEP_COORDINATOR_LEASE_TABLE_H_
#define IMGSWEEP_COORDINATOR_LEASE_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/clock.h"

namespace imgsweep {

class LeaseTable {
 public:
  struct Lease {
    std::string peer;
    std::size_t open = 0;  // cells without an outcome or attempt yet
    // (cell, the inputs digest its spec named), by cell: what its result
    // must name.
    std::vector<std::pair<std::size_t, std::string>> inputs;
    Clock::TimePoint sent;       // when the assignment left
    Clock::TimePoint deadline;   // after it the cells are taken back
  };

  // REQUIRES: incarnation >= 1.
  LeaseTable(std::size_t cells, std::uint64_t incarnation);

  // A new lease of `cells` to `peer`, the worker process `session`, with
  // the inputs digest each cell's spec names (by position; may be empty).
  // REQUIRES: `cells` is not empty and none of them is leased.
  std::uint64_t Issue(const std::string& peer, const std::string& session,
                      const std::vector<std::size_t>& cells, Clock::TimePoint sent,
                      Clock::TimePoint deadline, std::vector<std::string> inputs = {});

  // A lease of an earlier incarnation as the store kept it, so its late
  // results count from the worker process it was granted to.
  void Restore(std::uint64_t id, const std::string& session, std::vector<std::size_t> cells);

  const Lease* Find(std::uint64_t id) const;
  // The inputs digest `cell`'s spec named under the standing lease `id`;
  // null when the lease does not stand or named none.
  const std::string* InputsOf(std::uint64_t id, std::size_t cell) const;
  bool IsLeased(std::size_t cell) const { return lease_of_[cell] != 0; }
  // True when `peer` holds `cell` now, under `id`.
  bool Holds(std::uint64_t id, const std::string& peer, std::size_t cell) const;
  // A lease id this sweep handed out, in this incarnation or an earlier one.
  bool IssuedBySweep(std::uint64_t id) const;
  // True when lease `id` was granted to the worker process `session` with
  // `cell` in it, whether or not the lease still stands: in this
  // incarnation, or in an earlier one as the store recorded it. The only
  // late results that count.
  bool Granted(std::uint64_t id, const std::string& session, std::size_t cell) const;
  // A lease whose grant is known: issued now, or restored.
  bool Recorded(std::uint64_t id) const { return granted_.contains(id); }
  // A lease id of an earlier incarnation of this sweep (before a restart).
  bool FromEarlierIncarnation(std::uint64_t id) const;

  // The cell leaves whatever lease holds it.
  void Close(std::size_t cell);
  // Ends the lease: its open cells, in index order (none when unknown).
  std::vector<std::size_t> End(std::uint64_t id);

  std::vector<std::uint64_t> HeldBy(const std::string& peer) const;
  std::size_t CellsHeldBy(const std::string& peer) const;
  // The same worker on a new connection keeps its leases.
  void Rebind(const std::string& from, const std::string& to);
  std::vector<std::uint64_t> ExpiredAt(Clock::TimePoint now) const;

  std::size_t leased_cells() const { return leased_cells_; }
  std::map<std::string, std::size_t> CellsByPeer() const;
  // Calls `visit(cell)` for each cell a standing lease holds: the work is
  // the cells in flight, not the plan.
  template <typename Visit>
  void ForEachLeasedCell(Visit visit) const {
    for (const auto& [id, lease] : leases_) {
      for (const auto& [cell, inputs] : lease.inputs) {
        if (lease_of_[cell] == id) visit(cell);
      }
    }
  }

 private:
  static constexpr int kCounterBits = 32;

  struct Grant {
    std::string session;
    std::vector<std::size_t> cells;  // sorted
  };

  std::map<std::uint64_t, Lease> leases_;
  std::unordered_map<std::uint64_t, Grant> granted_;  // every lease known to be granted
  std::vector<std::uint64_t> lease_of_;  // by cell; 0 when not leased
  const std::uint64_t incarnation_;
  std::uint64_t last_counter_ = 0;
  std::size_t leased_cells_ = 0;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_LEASE_TABLE_H_
