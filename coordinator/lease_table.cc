#include "coordinator/lease_table.h"

#include <algorithm>

namespace imgsweep {

LeaseTable::LeaseTable(std::size_t cells, std::uint64_t incarnation)
    : lease_of_(cells, 0), incarnation_(incarnation) {}

std::uint64_t LeaseTable::Issue(const std::string& peer, const std::string& session,
                                const std::vector<std::size_t>& cells, Clock::TimePoint sent,
                                Clock::TimePoint deadline, std::vector<std::string> inputs) {
  const std::uint64_t id = (incarnation_ << kCounterBits) | ++last_counter_;
  Grant& grant = granted_[id];
  grant.session = session;
  grant.cells = cells;
  std::sort(grant.cells.begin(), grant.cells.end());
  Lease& lease = leases_[id];
  lease.peer = peer;
  lease.sent = sent;
  lease.deadline = deadline;
  lease.open = cells.size();
  for (std::size_t i = 0; i < cells.size(); ++i) {
    lease_of_[cells[i]] = id;
    if (i < inputs.size()) lease.inputs.emplace_back(cells[i], std::move(inputs[i]));
  }
  std::sort(lease.inputs.begin(), lease.inputs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  leased_cells_ += cells.size();
  return id;
}

void LeaseTable::Restore(std::uint64_t id, const std::string& session,
                         std::vector<std::size_t> cells) {
  if (!FromEarlierIncarnation(id)) return;  // a record this incarnation cannot have made
  std::sort(cells.begin(), cells.end());
  granted_[id] = Grant{session, std::move(cells)};
}

const LeaseTable::Lease* LeaseTable::Find(std::uint64_t id) const {
  auto it = leases_.find(id);
  return it == leases_.end() ? nullptr : &it->second;
}

const std::string* LeaseTable::InputsOf(std::uint64_t id, std::size_t cell) const {
  const Lease* lease = Find(id);
  if (lease == nullptr) return nullptr;
  auto it = std::lower_bound(lease->inputs.begin(), lease->inputs.end(), cell,
                             [](const auto& entry, std::size_t c) { return entry.first < c; });
  return it == lease->inputs.end() || it->first != cell ? nullptr : &it->second;
}

bool LeaseTable::Holds(std::uint64_t id, const std::string& peer, std::size_t cell) const {
  if (cell >= lease_of_.size() || lease_of_[cell] != id) return false;
  const Lease* lease = Find(id);
  return lease != nullptr && lease->peer == peer;
}

bool LeaseTable::IssuedBySweep(std::uint64_t id) const {
  const std::uint64_t incarnation = id >> kCounterBits;
  const std::uint64_t counter = id & ((std::uint64_t{1} << kCounterBits) - 1);
  if (incarnation == 0 || incarnation > incarnation_ || counter == 0) return false;
  return incarnation < incarnation_ || counter <= last_counter_;
}

bool LeaseTable::Granted(std::uint64_t id, const std::string& session, std::size_t cell) const {
  auto grant = granted_.find(id);
  return grant != granted_.end() && grant->second.session == session &&
         std::binary_search(grant->second.cells.begin(), grant->second.cells.end(), cell);
}

bool LeaseTable::FromEarlierIncarnation(std::uint64_t id) const {
  return IssuedBySweep(id) && (id >> kCounterBits) < incarnation_;
}

void LeaseTable::Close(std::size_t cell) {
  const std::uint64_t id = lease_of_[cell];
  if (id == 0) return;
  lease_of_[cell] = 0;
  --leased_cells_;
  auto lease = leases_.find(id);
  if (lease == leases_.end()) return;
  if (--lease->second.open == 0) leases_.erase(lease);
}

std::vector<std::size_t> LeaseTable::End(std::uint64_t id) {
  auto lease = leases_.find(id);
  if (lease == leases_.end()) return {};
  // The grant lists every cell of the lease, in index order; the open ones
  // are those still leased under it.
  std::vector<std::size_t> cells;
  for (std::size_t cell : granted_.at(id).cells) {
    if (lease_of_[cell] == id) cells.push_back(cell);
  }
  for (std::size_t cell : cells) lease_of_[cell] = 0;
  leased_cells_ -= cells.size();
  leases_.erase(lease);
  return cells;
}

std::vector<std::uint64_t> LeaseTable::HeldBy(const std::string& peer) const {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, lease] : leases_) {
    if (lease.peer == peer) ids.push_back(id);
  }
  return ids;
}

std::size_t LeaseTable::CellsHeldBy(const std::string& peer) const {
  std::size_t n = 0;
  for (const auto& [id, lease] : leases_) n += lease.peer == peer ? lease.open : 0;
  return n;
}

void LeaseTable::Rebind(const std::string& from, const std::string& to) {
  for (auto& [id, lease] : leases_) {
    if (lease.peer == from) lease.peer = to;
  }
}

std::vector<std::uint64_t> LeaseTable::ExpiredAt(Clock::TimePoint now) const {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, lease] : leases_) {
    if (now >= lease.deadline) ids.push_back(id);
  }
  return ids;
}

std::map<std::string, std::size_t> LeaseTable::CellsByPeer() const {
  std::map<std::string, std::size_t> by_peer;
  for (const auto& [id, lease] : leases_) by_peer[lease.peer] += lease.open;
  return by_peer;
}

}  // namespace imgsweep
