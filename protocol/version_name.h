// Version directory names ("7.2.0", "10.0.13") and their numeric order.
// Thread-safety: free functions over values.
#ifndef IMGSWEEP_PROTOCOL_VERSION_NAME_H_
#define IMGSWEEP_PROTOCOL_VERSION_NAME_H_

#include <string>
#include <string_view>
#include <vector>

namespace imgsweep {

// True for dot-separated decimal numbers, "X.Y.Z" as the contract names
// version directories (any count of parts from 1 to 4 is accepted).
bool IsVersionName(std::string_view name);

// Numeric order: 6.0.9 before 6.0.10 before 6.1.0.
// REQUIRES: IsVersionName(a) && IsVersionName(b)
bool VersionLess(std::string_view a, std::string_view b);

void SortVersions(std::vector<std::string>* versions);

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_VERSION_NAME_H_
