#include "protocol/version_name.h"

#include <algorithm>
#include <cstdint>

namespace imgsweep {
namespace {

// The numbers of a version name; parts longer than 9 digits are refused by
// IsVersionName, so they fit.
std::vector<std::uint64_t> Parts(std::string_view name) {
  std::vector<std::uint64_t> parts(1, 0);
  for (char c : name) {
    if (c == '.') {
      parts.push_back(0);
    } else {
      parts.back() = parts.back() * 10 + static_cast<std::uint64_t>(c - '0');
    }
  }
  return parts;
}

}  // namespace

bool IsVersionName(std::string_view name) {
  int parts = 1;
  int digits = 0;
  for (char c : name) {
    if (c == '.') {
      if (digits == 0) return false;
      ++parts;
      digits = 0;
    } else if (c >= '0' && c <= '9') {
      if (++digits > 9) return false;
    } else {
      return false;
    }
  }
  return digits > 0 && parts <= 4;
}

bool VersionLess(std::string_view a, std::string_view b) { return Parts(a) < Parts(b); }

void SortVersions(std::vector<std::string>* versions) {
  std::sort(versions->begin(), versions->end(),
            [](const std::string& a, const std::string& b) { return VersionLess(a, b); });
}

}  // namespace imgsweep
