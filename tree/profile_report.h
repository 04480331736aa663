// `imgsweep profiles`: why the versions of each output type fall into the
// profiles they do. For each boundary between neighbouring versions of two
// profiles: how many images differ, the JSON fields that appear or vanish,
// and short unified diffs of the first few; then the images that never
// differ and those that alone separate two profiles.
// Thread-safety: free functions; the store as Store allows.
#ifndef IMGSWEEP_TREE_PROFILE_REPORT_H_
#define IMGSWEEP_TREE_PROFILE_REPORT_H_

#include <cstddef>
#include <set>
#include <string>
#include <string_view>

#include "protocol/status.h"
#include "storage/store.h"

namespace imgsweep {

struct ReportOptions {
  std::string type;              // one output type; empty for all
  std::size_t diffs = 3;         // images shown with a diff per boundary
  std::size_t diff_lines = 12;   // lines of each diff, hunk headers included
};

// The report's text. kInvalidInput when `options.type` is not in the sweep,
// kNotFound when the store holds no plan.
Result<std::string> ExplainProfiles(Store& store, const ReportOptions& options);

// A unified diff of two texts by line, with 3 lines of context, cut after
// `max_lines` lines (a last line then says how many were left out). Empty
// when the texts are equal.
std::string UnifiedDiff(std::string_view from, std::string_view to, const std::string& from_label,
                        const std::string& to_label, std::size_t max_lines);

// The names of object members anywhere in `to` but nowhere in `from`, when
// both are JSON; empty otherwise.
std::set<std::string> AddedJsonFields(std::string_view from, std::string_view to);

}  // namespace imgsweep

#endif  // IMGSWEEP_TREE_PROFILE_REPORT_H_
