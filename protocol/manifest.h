// The image manifest (manifest.json): which images a sweep runs over.
// See the baseline tree contract for the format. Everything in it comes from
// outside, so Parse checks every field a sweep uses and names the entry and
// field of the first problem. Only the safe tier is swept, so only its
// entries are checked beyond what decides the tier (id, safety,
// skip_qemu_img); the others are kept as given. Fields a sweep does not use,
// the top-level "version" among them, are kept, never refused.
// Thread-safety: a Manifest is safe to share once SetDigest is done with.
#ifndef IMGSWEEP_PROTOCOL_MANIFEST_H_
#define IMGSWEEP_PROTOCOL_MANIFEST_H_

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace imgsweep {

enum class Safety { kSafe, kMalformed, kMalicious };

struct ImageEntry {
  std::string id;      // [A-Za-z0-9._-]+, not "." or "..": safe as a file name
  std::string path;    // relative to the testdata root, no ".." component
  std::string format;  // as written: the tree's bucket; a qemu driver name in any case
  Safety safety = Safety::kSafe;
  bool skip_qemu_img = false;
  std::string sha256;    // 64 lower-case hex digits; empty when the manifest gives none
  std::string raw_json;  // the whole entry as given, unknown fields included
};

// Safe tier: safety "safe" and not marked skip_qemu_img. Only these are swept
// unless the user asks for more.
bool InSafeTier(const ImageEntry& image);

// True for a path that names something under the testdata root: not empty,
// no NUL byte, relative, no ".." component. The manifest refuses any other
// path, and a worker refuses to run a cell on one.
bool StaysInsideRoot(std::string_view path);

// `root / path` with every symbolic link resolved, when that stays inside
// `root`. kNotFound when it does not exist; kInvalidInput naming where it
// leads when a link takes it outside.
// REQUIRES: `root` is canonical (std::filesystem::canonical) and
// StaysInsideRoot(path).
Result<std::filesystem::path> ResolveInsideRoot(const std::filesystem::path& root,
                                                std::string_view path);

// True for a name usable as one path component: [A-Za-z0-9._-]+, not "." or "..".
bool IsSafeName(std::string_view name);

// The formats a sweep knows how to bucket, as qemu names its drivers.
const std::vector<std::string>& KnownFormats();

class Manifest {
 public:
  // `source` names the input in error messages (usually the file's path).
  static Result<Manifest> Parse(std::string_view json_text, std::string_view source);
  static Result<Manifest> Load(const std::filesystem::path& file);

  const std::vector<ImageEntry>& images() const { return images_; }
  // The safe-tier entries, in manifest order.
  std::vector<ImageEntry> SafeTier() const;
  // Gives the entry the sha256 a sweep computed from its own copy, for an
  // entry whose manifest gave none. Call before sharing the manifest.
  Status SetDigest(std::string_view id, std::string sha256);

 private:
  std::vector<ImageEntry> images_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_MANIFEST_H_
