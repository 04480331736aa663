// The sweep's plan: which cells exist. A cell is (output type, version,
// row); a row is an image the type runs on, with one value of each of its
// axes (measure's target format). Its key "<output type>/<version>/<row id>"
// names it on the wire, in the store and (rearranged) in the tree; the row id
// is the image id, with "__<value>" per axis ("cirros__qcow2"). The plan is stored with the
// results, so `materialize` and a restarted coordinator need nothing else.
// Thread-safety: an immutable value once made.
#ifndef IMGSWEEP_SWEEP_PLAN_H_
#define IMGSWEEP_SWEEP_PLAN_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/command_table.h"
#include "protocol/manifest.h"
#include "protocol/messages.h"
#include "protocol/status.h"

namespace imgsweep {

inline constexpr auto kDefaultCellTimeout = std::chrono::milliseconds(30'000);

// The map sweep's two, from the built-in command table: map-human and
// map-json.
const std::vector<OutputType>& MapOutputTypes();

struct PlannedImage {
  std::string id;
  std::string path;
  std::string format;
  std::string sha256;
  // What `qemu-img info` says, when the sweep has a type with windows
  // (VirtualSizes); an image without one gets no window rows.
  std::optional<std::uint64_t> virtual_size = std::nullopt;
  bool operator==(const PlannedImage&) const = default;
};

// An image under one output type, with one combination of its axes' values.
struct PlannedRow {
  std::size_t image = 0;  // into Plan::images()
  std::size_t combo = 0;  // OutputType::ArgsOf, SuffixOf
  std::string id;         // the image id and the suffix
};

struct CellRef {
  std::size_t type = 0;
  std::size_t version = 0;
  std::size_t row = 0;  // into Plan::rows(type)
};

class Plan {
 public:
  // The safe tier of `manifest` at every version. kInvalidInput when a
  // version is not a version name, a version repeats, there is none, or the
  // manifest's safe tier is empty.
  static Result<Plan> Make(const Manifest& manifest, std::vector<std::string> versions,
                           std::chrono::milliseconds timeout);
  // The same with the output types given (CommandTable::OutputTypesOf) and,
  // for types with windows, the images' virtual sizes by image id.
  // kInvalidInput also when there is no type.
  static Result<Plan> Make(const Manifest& manifest, std::vector<std::string> versions,
                           std::chrono::milliseconds timeout, std::vector<OutputType> types,
                           const std::map<std::string, std::uint64_t>& virtual_sizes = {});
  // The stored form (JSON, stable); FromJson checks what ToJson writes.
  std::string ToJson() const;
  static Result<Plan> FromJson(std::string_view text);

  const std::vector<OutputType>& types() const { return types_; }
  const std::vector<std::string>& versions() const { return versions_; }
  const std::vector<PlannedImage>& images() const { return images_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // The rows of output type `type`: the images it runs on (OutputType::
  // RunsOn; with windows, those with a virtual size), in manifest order,
  // each once per axis combination.
  const std::vector<PlannedRow>& rows(std::size_t type) const { return rows_[type]; }
  const PlannedRow& RowOf(const CellRef& ref) const { return rows_[ref.type][ref.row]; }
  const PlannedImage& ImageOf(const CellRef& ref) const { return images_[RowOf(ref).image]; }

  std::size_t cell_count() const { return type_start_.back(); }
  // Cells are numbered type-major, then version, then row.
  CellRef Ref(std::size_t index) const;
  std::size_t Index(const CellRef& ref) const;
  std::string Key(const CellRef& ref) const;
  // kInvalidInput unless `key` names a cell of this plan.
  Result<std::size_t> IndexOfKey(std::string_view key) const;
  // The arguments after the binary, with "$TESTDATA_ROOT/" before the image.
  std::vector<std::string> Args(const CellRef& ref) const;
  CellSpec Spec(const CellRef& ref, std::uint32_t attempt) const;
  // The digest of everything a cell's outcome depends on: the binary's
  // sha256, the image's sha256 and the layout of its file on disk
  // (FileLayout), the output type, the argv template and the timeout. A
  // stored outcome with the same key is reused, like a build cache's; any
  // change runs the cell again.
  std::string CacheKey(const CellRef& ref, std::string_view binary_sha256,
                       std::string_view image_layout) const;
  // The same, for a cell whose Args(ref) the caller already holds (a spec's):
  // the coordinator keys every cell it assigns.
  std::string CacheKey(const CellRef& ref, std::string_view binary_sha256,
                       std::string_view image_layout, const std::vector<std::string>& args) const;

  // Per output type, whether a worker with `table` runs its cells: whether
  // it accepts the command line of each of its rows
  // (CommandTable::CheckCellArgs).
  std::vector<bool> TypesRunBy(const CommandTable& table) const;

  bool operator==(const Plan& other) const { return ToJson() == other.ToJson(); }

 private:
  // Name -> position, so a key is found in constant time (a result names
  // its cell by key; a million-cell plan looks one up per result).
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const {
      return std::hash<std::string_view>()(name);
    }
  };
  using NameIndex = std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>>;
  // Lays out the rows; kInvalidInput naming a name that repeats, or a type
  // that runs on no image.
  Status BuildIndex();

  std::vector<OutputType> types_;
  std::vector<std::string> versions_;
  std::vector<PlannedImage> images_;
  std::chrono::milliseconds timeout_ = kDefaultCellTimeout;
  std::vector<std::vector<PlannedRow>> rows_;  // per type
  std::vector<std::size_t> type_start_{0};      // first cell of each type; the count last
  NameIndex type_index_;
  NameIndex version_index_;
  std::vector<NameIndex> row_index_;  // per type
};

}  // namespace imgsweep

#endif  // IMGSWEEP_SWEEP_PLAN_H_
