// The store's values as bytes: a cell record and a lease grant are each one
// msgpack map keyed by field name (docs/storage.md). Unknown fields are
// skipped, so later fields can be added without a new store layout.
// Internal to the storage layer.
// Thread-safety: pure functions.
#ifndef IMGSWEEP_STORAGE_RECORDS_H_
#define IMGSWEEP_STORAGE_RECORDS_H_

#include <string>
#include <string_view>

#include "protocol/status.h"
#include "storage/store.h"

namespace imgsweep {

std::string EncodeRecord(const CellRecord& record);
// kCorruption naming the cell: the store wrote these bytes itself, so a
// record it cannot read is damage, not input to refuse.
Result<CellRecord> DecodeRecord(std::string_view key, std::string_view bytes);

std::string EncodeLease(const LeaseRecord& lease);
// Everything but the id, which is in the key; kCorruption naming `key`.
Result<LeaseRecord> DecodeLease(std::string_view key, std::string_view bytes);

}  // namespace imgsweep

#endif  // IMGSWEEP_STORAGE_RECORDS_H_
