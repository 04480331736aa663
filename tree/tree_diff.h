// What a new tree changes for the consumers, against the tree they read
// now: per output type, the versions added and removed, the images added and
// removed, the profile boundaries that appeared or went among the versions
// both trees have, and the images whose expected output (stdout, or the
// return code that gates them) changed at some version. This is what a
// reviewer of a data commit reads instead of thousands of changed files.
// Thread-safety: free functions over values.
#ifndef IMGSWEEP_TREE_TREE_DIFF_H_
#define IMGSWEEP_TREE_TREE_DIFF_H_

#include <string>
#include <vector>

#include "tree/tree_check.h"

namespace imgsweep {

struct TypeDiff {
  std::string type;             // "map-json"
  bool before_exists = false;   // false: the type is new in this tree
  bool after_exists = false;    // false: the type is gone from this tree
  std::size_t versions_before = 0, versions_after = 0;
  std::size_t profiles_before = 0, profiles_after = 0;
  std::size_t images_before = 0, images_after = 0;

  struct Version {
    std::string version;
    std::string profile;  // its profile in the tree that has it
  };
  std::vector<Version> versions_added;    // ascending
  std::vector<Version> versions_removed;  // ascending

  std::vector<std::string> images_added;    // sorted
  std::vector<std::string> images_removed;  // sorted

  // Between two neighbouring versions that both trees have: split means they
  // share a profile before and not after, joined the other way round.
  struct Boundary {
    std::string from, to;
    bool split = false;
  };
  std::vector<Boundary> boundaries;

  // An image whose stdout or return code differs at `versions` (among those
  // both trees have, ascending).
  struct Changed {
    std::string image;
    std::vector<std::string> versions;
    bool stdout_changed = false;
    bool return_code_changed = false;
  };
  std::vector<Changed> changed;

  bool empty() const {
    return before_exists == after_exists && versions_added.empty() && versions_removed.empty() &&
           images_added.empty() && images_removed.empty() && boundaries.empty() &&
           changed.empty();
  }
};

// One TypeDiff per output type of either tree, in name order. When `types`
// is not empty, only those types.
std::vector<TypeDiff> DiffTrees(const std::vector<TypeFacts>& before,
                                const std::vector<TypeFacts>& after,
                                const std::vector<std::string>& types);

// The diffs in words, a few lines per type; long lists are cut after
// `max_named` names with a count of the rest.
std::string DiffText(const std::vector<TypeDiff>& diffs, std::size_t max_named);

// The diffs as one JSON document: {"types": [{...}, ...]}, every list whole.
std::string DiffJson(const std::vector<TypeDiff>& diffs);

}  // namespace imgsweep

#endif  // IMGSWEEP_TREE_TREE_DIFF_H_
