// Profiles: the versions of one output type that print the same stdout on
// every image, named after the earliest ("profile-7-2-0"), and the
// version-map.json that maps each version to its profile. The contract
// (docs/contract.md, "Profiles") fixes the names and the file.
// Thread-safety: free functions over values.
#ifndef IMGSWEEP_TREE_PROFILES_H_
#define IMGSWEEP_TREE_PROFILES_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace imgsweep {

struct Profile {
  std::string name;                   // "profile-7-2-0"
  std::vector<std::size_t> versions;  // indices into the versions given, ascending
};

// "profile-" and the version with dots as dashes: 7.2.0 -> profile-7-2-0.
std::string ProfileName(std::string_view version);

// Groups `versions` (ascending, numeric order) by their stdout on every
// image: stdout[v][i] identifies (a digest of) version v's stdout on image i.
// Versions whose rows are equal share a profile, whether or not they are
// adjacent. Profiles come in the order of their earliest version.
// REQUIRES: stdout.size() == versions.size(), every row of one length.
std::vector<Profile> GroupProfiles(const std::vector<std::string>& versions,
                                   const std::vector<std::vector<std::string>>& stdout);

// version-map.json: {"profiles": {name: earliest version}, "version_to_profile":
// {version: name}}, both in ascending version order, and a final newline.
std::string VersionMapJson(const std::vector<std::string>& versions,
                           const std::vector<Profile>& profiles);

// Why the profiles split where they do.
struct ProfileAnalysis {
  // Neighbouring versions (indices) in different profiles, and the images
  // (indices) whose stdout differs between them.
  struct Boundary {
    std::size_t from = 0;
    std::size_t to = 0;
    std::vector<std::size_t> images;
  };
  // Two profiles (indices) that differ on one image only.
  struct Split {
    std::size_t first = 0;
    std::size_t second = 0;
    std::size_t image = 0;
  };
  std::vector<Profile> profiles;
  std::vector<Boundary> boundaries;
  std::vector<std::size_t> never_differ;  // images with one stdout at every version
  std::vector<Split> alone;
};
// REQUIRES: as GroupProfiles.
ProfileAnalysis AnalyzeProfiles(const std::vector<std::string>& versions,
                                const std::vector<std::vector<std::string>>& stdout);

// A version-map.json as read back, members in file order.
struct VersionMap {
  std::vector<std::pair<std::string, std::string>> profiles;            // name, version
  std::vector<std::pair<std::string, std::string>> version_to_profile;  // version, name
};
// kInvalidInput naming what is wrong when `text` is not a version map (not
// JSON, a member missing, a value that is not a string).
Result<VersionMap> ParseVersionMap(std::string_view text);

// The profile a consumer's reader picks on a host whose `qemu-img
// --version` says `host_version` (X.Y.Z): the entry of version_to_profile
// for that exact version; else the highest patch at or below it in the same
// major.minor; else the highest version below it; else the lowest. Empty
// when the map lists no version.
std::string PickProfile(const VersionMap& map, std::string_view host_version);

// "7.2.22" from "qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7)"; empty when
// the line holds no X.Y.Z after "version ".
std::string ReportedVersion(std::string_view version_line);

}  // namespace imgsweep

#endif  // IMGSWEEP_TREE_PROFILES_H_
