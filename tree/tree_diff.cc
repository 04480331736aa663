#include "tree/tree_diff.h"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "protocol/version_name.h"
#include "tree/profiles.h"

namespace imgsweep {
namespace {

// What the diff needs of one tree's output type.
struct Side {
  bool exists = false;
  std::vector<std::string> versions;          // ascending
  std::map<std::string, std::string> profile;  // by version
  std::size_t profiles = 0;
  std::set<std::string> images;
  const TypeFacts* facts = nullptr;
};

Side SideOf(const TypeFacts* facts) {
  Side s;
  if (facts == nullptr) return s;
  s.exists = true;
  s.facts = facts;
  if (facts->version_map) {
    Result<VersionMap> map = ParseVersionMap(*facts->version_map);
    if (map.ok()) {
      for (const auto& [version, name] : map.value().version_to_profile) {
        s.profile[version] = name;
      }
      s.profiles = map.value().profiles.size();
    }
  }
  // A version with captures but not in the map (a partial tree) still counts.
  for (const auto& [version, captures] : facts->raw) {
    s.profile.emplace(version, "");
    for (const auto& [id, unused] : captures) s.images.insert(id);
  }
  for (const auto& [version, unused] : s.profile) {
    if (IsVersionName(version)) s.versions.push_back(version);
  }
  SortVersions(&s.versions);
  return s;
}

// The capture of `image` at `version`, or nullptr.
const CaptureFacts* Capture(const Side& s, const std::string& version, const std::string& image) {
  auto v = s.facts->raw.find(version);
  if (v == s.facts->raw.end()) return nullptr;
  auto c = v->second.find(image);
  return c == v->second.end() ? nullptr : &c->second;
}

void CompareImages(const Side& before, const Side& after, const std::vector<std::string>& common,
                   TypeDiff* d) {
  static const CaptureFacts kNone;
  for (const std::string& image : before.images) {
    if (after.images.count(image) == 0) continue;
    TypeDiff::Changed changed{image, {}, false, false};
    for (const std::string& version : common) {
      const CaptureFacts* b = Capture(before, version, image);
      const CaptureFacts* a = Capture(after, version, image);
      const CaptureFacts& x = b != nullptr ? *b : kNone;
      const CaptureFacts& y = a != nullptr ? *a : kNone;
      const bool out = x.has_stdout != y.has_stdout || x.stdout_id != y.stdout_id;
      const bool rc = x.return_code != y.return_code;
      if (!out && !rc) continue;
      changed.versions.push_back(version);
      changed.stdout_changed |= out;
      changed.return_code_changed |= rc;
    }
    if (!changed.versions.empty()) d->changed.push_back(std::move(changed));
  }
}

TypeDiff DiffType(const std::string& type, const TypeFacts* b, const TypeFacts* a) {
  const Side before = SideOf(b);
  const Side after = SideOf(a);
  TypeDiff d;
  d.type = type;
  d.before_exists = before.exists;
  d.after_exists = after.exists;
  d.versions_before = before.versions.size();
  d.versions_after = after.versions.size();
  d.profiles_before = before.profiles;
  d.profiles_after = after.profiles;
  d.images_before = before.images.size();
  d.images_after = after.images.size();
  std::vector<std::string> common;
  for (const std::string& v : after.versions) {
    if (before.profile.count(v) != 0) {
      common.push_back(v);
    } else {
      d.versions_added.push_back({v, after.profile.at(v)});
    }
  }
  for (const std::string& v : before.versions) {
    if (after.profile.count(v) == 0) d.versions_removed.push_back({v, before.profile.at(v)});
  }
  std::set_difference(after.images.begin(), after.images.end(), before.images.begin(),
                      before.images.end(), std::back_inserter(d.images_added));
  std::set_difference(before.images.begin(), before.images.end(), after.images.begin(),
                      after.images.end(), std::back_inserter(d.images_removed));
  for (std::size_t i = 1; i < common.size(); ++i) {
    const std::string& x = common[i - 1];
    const std::string& y = common[i];
    const bool shared_before = before.profile.at(x) == before.profile.at(y);
    const bool shared_after = after.profile.at(x) == after.profile.at(y);
    if (shared_before != shared_after) d.boundaries.push_back({x, y, shared_before});
  }
  if (before.exists && after.exists) CompareImages(before, after, common, &d);
  return d;
}

std::string Named(const std::vector<std::string>& names, std::size_t max_named) {
  std::string text;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i == max_named && names.size() > max_named + 1) {
      return text + ", ... and " + std::to_string(names.size() - i) + " more";
    }
    text += (i == 0 ? "" : ", ") + names[i];
  }
  return text;
}

std::string Count(std::size_t n, const std::string& what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

std::string Counts(std::size_t images, std::size_t versions, std::size_t profiles) {
  return Count(images, "image") + ", " + Count(versions, "version") + " in " +
         Count(profiles, "profile");
}

std::string VersionsText(const std::vector<TypeDiff::Version>& versions, const char* was,
                         std::size_t max_named) {
  std::vector<std::string> names;
  names.reserve(versions.size());
  for (const TypeDiff::Version& v : versions) {
    names.push_back(v.version + (v.profile.empty() ? "" : " (" + std::string(was) + v.profile + ")"));
  }
  return Named(names, max_named);
}

void TypeText(const TypeDiff& d, std::size_t max_named, std::string* out) {
  const std::string after = Counts(d.images_after, d.versions_after, d.profiles_after);
  const std::string before = Counts(d.images_before, d.versions_before, d.profiles_before);
  if (!d.before_exists) {
    *out += d.type + ": new (" + after + ")\n";
    return;
  }
  if (!d.after_exists) {
    *out += d.type + ": gone (it had " + before + ")\n";
    return;
  }
  if (d.empty()) {
    *out += d.type + ": no change for the consumers (" + after + ")\n";
    return;
  }
  *out += d.type + ": " + after + " (before: " + before + ")\n";
  if (!d.versions_added.empty()) {
    *out += "  versions added: " + VersionsText(d.versions_added, "", max_named) + "\n";
  }
  if (!d.versions_removed.empty()) {
    *out += "  versions removed: " + VersionsText(d.versions_removed, "was ", max_named) + "\n";
  }
  if (!d.images_added.empty()) *out += "  images added: " + Named(d.images_added, max_named) + "\n";
  if (!d.images_removed.empty()) {
    *out += "  images removed: " + Named(d.images_removed, max_named) + "\n";
  }
  for (const TypeDiff::Boundary& b : d.boundaries) {
    *out += std::string(b.split ? "  profiles split between " : "  one profile now between ") +
            b.from + " and " + b.to + "\n";
  }
  if (d.changed.empty()) return;
  *out += "  expected output changed for " + std::to_string(d.changed.size()) +
          (d.changed.size() == 1 ? " image:\n" : " images:\n");
  for (std::size_t i = 0; i < d.changed.size(); ++i) {
    if (i == max_named) {
      *out += "    ... and " + std::to_string(d.changed.size() - i) + " more\n";
      break;
    }
    const TypeDiff::Changed& c = d.changed[i];
    std::string what = c.stdout_changed ? "stdout" : "";
    if (c.return_code_changed) what += what.empty() ? "return code" : " and return code";
    const std::size_t common = d.versions_after - d.versions_added.size();
    const std::string where = c.versions.size() == common && common > 1
                                  ? "every version (" + std::to_string(common) + ")"
                                  : Named(c.versions, max_named);
    *out += "    " + c.image + ": " + what + " at " + where + "\n";
  }
}

nlohmann::json VersionsJson(const std::vector<TypeDiff::Version>& versions) {
  nlohmann::json list = nlohmann::json::array();
  for (const TypeDiff::Version& v : versions) {
    list.push_back({{"version", v.version}, {"profile", v.profile}});
  }
  return list;
}

}  // namespace

std::vector<TypeDiff> DiffTrees(const std::vector<TypeFacts>& before,
                                const std::vector<TypeFacts>& after,
                                const std::vector<std::string>& types) {
  std::map<std::string, std::pair<const TypeFacts*, const TypeFacts*>> by_type;
  for (const TypeFacts& f : before) by_type[f.type].first = &f;
  for (const TypeFacts& f : after) by_type[f.type].second = &f;
  std::vector<TypeDiff> diffs;
  for (const auto& [type, sides] : by_type) {
    if (!types.empty() && std::find(types.begin(), types.end(), type) == types.end()) continue;
    diffs.push_back(DiffType(type, sides.first, sides.second));
  }
  return diffs;
}

std::string DiffText(const std::vector<TypeDiff>& diffs, std::size_t max_named) {
  std::string out;
  for (const TypeDiff& d : diffs) TypeText(d, max_named, &out);
  return out;
}

std::string DiffJson(const std::vector<TypeDiff>& diffs) {
  nlohmann::json types = nlohmann::json::array();
  for (const TypeDiff& d : diffs) {
    nlohmann::json boundaries = nlohmann::json::array();
    for (const TypeDiff::Boundary& b : d.boundaries) {
      boundaries.push_back({{"between", {b.from, b.to}}, {"change", b.split ? "split" : "joined"}});
    }
    nlohmann::json changed = nlohmann::json::array();
    for (const TypeDiff::Changed& c : d.changed) {
      changed.push_back({{"image", c.image},
                         {"versions", c.versions},
                         {"stdout", c.stdout_changed},
                         {"return_code", c.return_code_changed}});
    }
    types.push_back({
        {"type", d.type},
        {"before", d.before_exists ? nlohmann::json{{"versions", d.versions_before},
                                                    {"profiles", d.profiles_before},
                                                    {"images", d.images_before}}
                                   : nlohmann::json()},
        {"after", d.after_exists ? nlohmann::json{{"versions", d.versions_after},
                                                  {"profiles", d.profiles_after},
                                                  {"images", d.images_after}}
                                 : nlohmann::json()},
        {"versions_added", VersionsJson(d.versions_added)},
        {"versions_removed", VersionsJson(d.versions_removed)},
        {"images_added", d.images_added},
        {"images_removed", d.images_removed},
        {"boundaries", boundaries},
        {"changed", changed},
    });
  }
  return nlohmann::json{{"types", types}}.dump(2) + "\n";
}

}  // namespace imgsweep
