// The checks a tree must pass before it is written and whenever someone asks
// (`imgsweep validate`): the contract's "valid tree" and what consumers rely
// on besides. The same checks serve the tree materialize is about to write
// (facts taken from the store) and a tree on disk (facts read from files).
// Thread-safety: free functions over values.
#ifndef IMGSWEEP_TREE_TREE_CHECK_H_
#define IMGSWEEP_TREE_TREE_CHECK_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace imgsweep {

// The tree's names (docs/contract.md): an image's three files are
// "<id>" + each suffix, beside the format buckets are "profiles" and
// "version-map.json".
inline constexpr std::string_view kStdoutSuffix = ".stdout.txt";
inline constexpr std::string_view kStderrSuffix = ".stderr.txt";
inline constexpr std::string_view kMetaSuffix = ".meta.json";
inline constexpr std::string_view kProfilesFolder = "profiles";
inline constexpr std::string_view kVersionMapFile = "version-map.json";

// For "<id><suffix>" with one of the three suffixes: the id and the suffix.
// False for any other name.
bool SplitCaptureName(std::string_view name, std::string* id, std::string_view* suffix);

// What the checks need of one image's three files.
struct CaptureFacts {
  std::string where;  // "map-json/qcow2/7.2.0/a": the files' path without the suffix
  bool has_stdout = false;
  bool has_stderr = false;
  bool has_meta = false;
  std::uint64_t stdout_size = 0;              // the .stdout.txt's length
  std::optional<std::uint64_t> stdout_bytes;  // meta.json's field; absent when it has none
  std::string stdout_id;                      // equal ids <=> equal stdout
  std::string version_line;                   // meta.json's: what the binary said it is
  std::string return_code;                    // meta.json's, as JSON text ("0", "null", "-11")
  std::string problem;                        // what was wrong reading them, if anything
};
using CapturesByImage = std::map<std::string, CaptureFacts>;

struct TypeFacts {
  std::string type;                               // "map-json"
  std::map<std::string, CapturesByImage> raw;     // by version
  std::map<std::string, CapturesByImage> profiles;  // by profile folder name
  std::optional<std::string> version_map;         // version-map.json's text
  std::vector<std::string> problems;              // found while gathering the facts
};

// Every violation, one line each, prefixed with the path it concerns; empty
// for a valid output type.
std::vector<std::string> CheckType(const TypeFacts& facts);

// What a consumer's reader would get wrong: for each version, a reader on
// a host whose qemu-img says what that version's binary says (its
// meta.json's version_line, e.g. 7.2.22 for the 7.2.0 folder) picks a
// profile by PickProfile; that profile must hold the stdout the version
// printed. Only `validate` asks this: the tree it judges is true to what
// each binary printed, and a binaries tree whose folders are not the
// releases their binaries say (a benchmark's links) is no consumer's host.
std::vector<std::string> CheckReaderPicks(const TypeFacts& facts);

// Reads `<out>/<type>/...` for every output type folder under `out`.
// kNotFound when `out` is not a folder, kInvalidInput when it holds no output
// type folder.
Result<std::vector<TypeFacts>> ScanTree(const std::filesystem::path& out);

// ScanTree, then CheckType and CheckReaderPicks on each: every violation
// of the tree.
Result<std::vector<std::string>> ValidateTree(const std::filesystem::path& out);

}  // namespace imgsweep

#endif  // IMGSWEEP_TREE_TREE_CHECK_H_
