#include "tree/profiles.h"

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

}  // namespace imgsweep
