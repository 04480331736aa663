#include "tree/profiles.h"

#include "protocol/version_name.h"

#include <nlohmann/json.hpp>

#include <map>

namespace imgsweep {

std::string ProfileName(std::string_view version) {
  std::string name = "profile-";
  for (char c : version) name += c == '.' ? '-' : c;
  return name;
}

std::vector<Profile> GroupProfiles(const std::vector<std::string>& versions,
                                   const std::vector<std::vector<std::string>>& stdout) {
  std::vector<Profile> profiles;
  std::map<std::vector<std::string>, std::size_t> by_row;
  for (std::size_t v = 0; v < versions.size(); ++v) {
    auto [it, inserted] = by_row.emplace(stdout[v], profiles.size());
    if (inserted) profiles.push_back(Profile{ProfileName(versions[v]), {}});
    profiles[it->second].versions.push_back(v);
  }
  return profiles;
}

namespace {

std::vector<std::size_t> Differing(const std::vector<std::string>& a,
                                   const std::vector<std::string>& b) {
  std::vector<std::size_t> images;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) images.push_back(i);
  }
  return images;
}

}  // namespace

ProfileAnalysis AnalyzeProfiles(const std::vector<std::string>& versions,
                                const std::vector<std::vector<std::string>>& stdout) {
  ProfileAnalysis a;
  a.profiles = GroupProfiles(versions, stdout);
  std::vector<std::size_t> profile_of(versions.size());
  for (std::size_t p = 0; p < a.profiles.size(); ++p) {
    for (std::size_t v : a.profiles[p].versions) profile_of[v] = p;
  }
  for (std::size_t v = 1; v < versions.size(); ++v) {
    if (profile_of[v - 1] != profile_of[v]) {
      a.boundaries.push_back({v - 1, v, Differing(stdout[v - 1], stdout[v])});
    }
  }
  const std::size_t images = stdout.empty() ? 0 : stdout.front().size();
  for (std::size_t i = 0; i < images; ++i) {
    bool same = true;
    for (std::size_t v = 1; v < versions.size() && same; ++v) {
      same = stdout[v][i] == stdout[0][i];
    }
    if (same) a.never_differ.push_back(i);
  }
  for (std::size_t p = 0; p < a.profiles.size(); ++p) {
    for (std::size_t q = p + 1; q < a.profiles.size(); ++q) {
      const std::vector<std::size_t> d = Differing(stdout[a.profiles[p].versions.front()],
                                                   stdout[a.profiles[q].versions.front()]);
      if (d.size() == 1) a.alone.push_back({p, q, d.front()});
    }
  }
  return a;
}

std::string VersionMapJson(const std::vector<std::string>& versions,
                           const std::vector<Profile>& profiles) {
  // ordered_json keeps insertion order; a plain object would sort
  // "profile-10-0-2" before "profile-5-2-0".
  nlohmann::ordered_json by_name = nlohmann::ordered_json::object();
  std::vector<const Profile*> of_version(versions.size(), nullptr);
  for (const Profile& p : profiles) {
    by_name[p.name] = versions[p.versions.front()];
    for (std::size_t v : p.versions) of_version[v] = &p;
  }
  nlohmann::ordered_json to_profile = nlohmann::ordered_json::object();
  for (std::size_t v = 0; v < versions.size(); ++v) {
    if (of_version[v] != nullptr) to_profile[versions[v]] = of_version[v]->name;
  }
  nlohmann::ordered_json map;
  map["profiles"] = std::move(by_name);
  map["version_to_profile"] = std::move(to_profile);
  return map.dump(2) + "\n";
}

Result<VersionMap> ParseVersionMap(std::string_view text) {
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (j.is_discarded()) return Status::InvalidInput("not JSON");
  if (!j.is_object()) return Status::InvalidInput("not a JSON object");
  VersionMap map;
  for (const auto& [member, into] :
       {std::pair{"profiles", &map.profiles},
        std::pair{"version_to_profile", &map.version_to_profile}}) {
    auto it = j.find(member);
    if (it == j.end()) return Status::InvalidInput(std::string("\"") + member + "\" missing");
    if (!it->is_object()) {
      return Status::InvalidInput(std::string("\"") + member + "\" is not an object");
    }
    for (const auto& [key, value] : it->items()) {
      if (!value.is_string()) {
        return Status::InvalidInput(std::string("\"") + member + "\"." + key +
                                    " is not a string");
      }
      into->emplace_back(key, value.get<std::string>());
    }
  }
  return map;
}

std::string PickProfile(const VersionMap& map, std::string_view host_version) {
  const auto& listed = map.version_to_profile;
  if (listed.empty()) return "";
  const auto minor = [](std::string_view v) { return v.substr(0, v.rfind('.')); };
  const std::pair<std::string, std::string>* same_minor = nullptr;
  const std::pair<std::string, std::string>* below = nullptr;
  const std::pair<std::string, std::string>* lowest = nullptr;
  for (const auto& entry : listed) {
    const std::string& v = entry.first;
    if (!IsVersionName(v)) continue;
    if (v == host_version) return entry.second;
    if (lowest == nullptr || VersionLess(v, lowest->first)) lowest = &entry;
    if (!IsVersionName(host_version) || !VersionLess(v, host_version)) continue;
    if (below == nullptr || VersionLess(below->first, v)) below = &entry;
    if (minor(v) == minor(host_version) &&
        (same_minor == nullptr || VersionLess(same_minor->first, v))) {
      same_minor = &entry;
    }
  }
  if (same_minor != nullptr) return same_minor->second;
  if (below != nullptr) return below->second;
  return lowest != nullptr ? lowest->second : "";
}

std::string ReportedVersion(std::string_view version_line) {
  const std::size_t at = version_line.find("version ");
  if (at == std::string_view::npos) return "";
  std::string_view rest = version_line.substr(at + 8);
  rest = rest.substr(0, rest.find_first_not_of("0123456789."));
  return IsVersionName(rest) ? std::string(rest) : "";
}

}  // namespace imgsweep
