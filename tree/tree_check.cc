#include "tree/tree_check.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>

#include "tree/profiles.h"
#include "protocol/sha256.h"
#include "protocol/version_name.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {


void CheckCapture(const CaptureFacts& c, std::vector<std::string>* out) {
  if (!c.problem.empty()) out->push_back(c.where + ": " + c.problem);
  if (!c.has_stdout) out->push_back(c.where + std::string(kStdoutSuffix) + ": missing");
  if (!c.has_stderr) out->push_back(c.where + std::string(kStderrSuffix) + ": missing");
  if (!c.has_meta) out->push_back(c.where + std::string(kMetaSuffix) + ": missing");
  if (!c.has_stdout || !c.has_meta || !c.problem.empty()) return;
  if (!c.stdout_bytes) {
    out->push_back(c.where + std::string(kMetaSuffix) + ": no stdout_bytes");
  } else if (*c.stdout_bytes != c.stdout_size) {
    out->push_back(c.where + std::string(kStdoutSuffix) + ": " + std::to_string(c.stdout_size) +
                   " bytes, but meta.json says stdout_bytes " + std::to_string(*c.stdout_bytes));
  }
}

std::vector<std::string> SortedVersions(const std::map<std::string, CapturesByImage>& raw) {
  std::vector<std::string> versions;
  for (const auto& [v, unused] : raw) {
    if (IsVersionName(v)) versions.push_back(v);
  }
  SortVersions(&versions);
  return versions;
}

// Each of `images` present in `captures` (else "<missing> no capture of
// image ID") and its files in order.
void CheckEveryImage(const CapturesByImage& captures, const std::set<std::string>& images,
                     const std::string& missing, std::vector<std::string>* out) {
  for (const std::string& id : images) {
    auto it = captures.find(id);
    if (it == captures.end()) {
      out->push_back(missing + " no capture of image " + id);
    } else {
      CheckCapture(it->second, out);
    }
  }
}

// The first pair of neighbours out of ascending version order, as "a before b".
std::string OrderBreak(const std::vector<std::string>& versions) {
  for (std::size_t i = 1; i < versions.size(); ++i) {
    if (!IsVersionName(versions[i - 1]) || !IsVersionName(versions[i])) continue;
    if (!VersionLess(versions[i - 1], versions[i])) {
      return versions[i - 1] + " before " + versions[i];
    }
  }
  return "";
}

// A row of stdout ids over `images`; "" where the capture is absent.
std::vector<std::string> Row(const CapturesByImage& captures,
                             const std::set<std::string>& images) {
  std::vector<std::string> row;
  for (const std::string& id : images) {
    auto it = captures.find(id);
    row.push_back(it == captures.end() ? "" : it->second.stdout_id);
  }
  return row;
}

// version_to_profile: version names with captures, in order, every version
// of the sweep listed, each mapping to a listed profile.
void CheckVersionList(const TypeFacts& f, const VersionMap& map, const std::vector<std::string>& versions,
                      const std::string& where, std::vector<std::string>* out) {
  std::set<std::string> mapped, profiles;
  for (const auto& [name, v] : map.profiles) profiles.insert(name);
  std::vector<std::string> listed;
  for (const auto& [v, name] : map.version_to_profile) {
    listed.push_back(v);
    mapped.insert(v);
    if (!IsVersionName(v)) {
      out->push_back(where + ": \"" + v + "\" in version_to_profile is not a version name");
    } else if (f.raw.count(v) == 0) {
      out->push_back(where + ": version_to_profile lists " + v + ", which has no captures");
    }
  }
  if (std::string b = OrderBreak(listed); !b.empty()) {
    out->push_back(where + ": version_to_profile is not in ascending version order (" + b + ")");
  }
  for (const std::string& v : versions) {
    if (mapped.count(v) == 0) out->push_back(where + ": version " + v + " is not in version_to_profile");
  }
  for (const auto& [v, name] : map.version_to_profile) {
    if (profiles.count(name) == 0) {
      out->push_back(where + ": version " + v + " maps to " + name + ", which is not in \"profiles\"");
    }
  }
}

// profiles: each named after its earliest version, which maps to it, none
// holding an earlier one, in order, each with its folder and no folder
// without an entry.
void CheckProfileList(const TypeFacts& f, const VersionMap& map, const std::string& where,
                      std::vector<std::string>* out) {
  const std::map<std::string, std::string> to_profile(map.version_to_profile.begin(),
                                                      map.version_to_profile.end());
  std::vector<std::string> firsts;
  for (const auto& [name, v] : map.profiles) {
    firsts.push_back(v);
    if (!IsVersionName(v)) {
      out->push_back(where + ": profile " + name + " names \"" + v + "\", not a version");
      continue;
    }
    if (name != ProfileName(v)) {
      out->push_back(where + ": profile " + name + " is named after " + v +
                     ", so it should be " + ProfileName(v));
    }
    auto it = to_profile.find(v);
    if (it == to_profile.end() || it->second != name) {
      out->push_back(where + ": profile " + name + "'s version " + v + " is not mapped to it");
    }
    for (const auto& [other, p] : map.version_to_profile) {
      if (p == name && IsVersionName(other) && VersionLess(other, v)) {
        out->push_back(where + ": profile " + name + " also holds " + other +
                       ", which is earlier than " + v);
        break;
      }
    }
    if (f.profiles.count(name) == 0) {
      out->push_back(f.type + "/" + std::string(kProfilesFolder) + "/" + name + ": missing");
    }
  }
  if (std::string b = OrderBreak(firsts); !b.empty()) {
    out->push_back(where + ": profiles are not in ascending version order (" + b + ")");
  }
  const std::map<std::string, std::string> earliest(map.profiles.begin(), map.profiles.end());
  for (const auto& [name, unused] : f.profiles) {
    if (earliest.count(name) == 0) {
      out->push_back(f.type + "/" + std::string(kProfilesFolder) + "/" + name +
                     ": not in version-map.json");
    }
  }
}

// Each version prints what its profile holds, image for image.
void CheckProfileOutputs(const TypeFacts& f, const VersionMap& map,
                         const std::vector<std::string>& versions, const std::set<std::string>& images,
                         const std::string& where, std::vector<std::string>* out) {
  const std::map<std::string, std::string> to_profile(map.version_to_profile.begin(),
                                                      map.version_to_profile.end());
  for (const std::string& v : versions) {
    auto mapped = to_profile.find(v);
    if (mapped == to_profile.end()) continue;
    auto folder = f.profiles.find(mapped->second);
    if (folder == f.profiles.end()) continue;
    const CapturesByImage& raw = f.raw.at(v);
    for (const std::string& id : images) {
      auto r = raw.find(id);
      auto p = folder->second.find(id);
      if (r == raw.end() || p == folder->second.end()) continue;
      if (!r->second.has_stdout || !p->second.has_stdout) continue;  // reported already
      if (r->second.stdout_id != p->second.stdout_id) {
        out->push_back(where + ": version " + v + " maps to " + mapped->second +
                       ", but its stdout differs on image " + id);
      }
    }
  }
}

// The consumers' reader gates each image on the raw meta.json of the first
// version in version_to_profile: a missing one skips the image silently.
void CheckAsTheReaderReads(const TypeFacts& f, const VersionMap& map,
                           const std::set<std::string>& images, const std::string& where,
                           std::vector<std::string>* out) {
  if (map.version_to_profile.empty()) return;
  const std::string& first = map.version_to_profile.front().first;
  auto first_raw = f.raw.find(first);
  for (const std::string& id : images) {
    if (first_raw == f.raw.end() || !first_raw->second.contains(id) ||
        !first_raw->second.at(id).has_meta) {
      out->push_back(where + ": the first version, " + first + ", has no meta.json for image " +
                     id + ": a reader skips the image on every host");
    }
  }
}

void CheckVersionMap(const TypeFacts& f, const std::vector<std::string>& versions,
                     const std::set<std::string>& images, std::vector<std::string>* out) {
  const std::string where = f.type + "/" + std::string(kVersionMapFile);
  if (!f.version_map) {
    out->push_back(where + ": missing");
    return;
  }
  Result<VersionMap> parsed = ParseVersionMap(*f.version_map);
  if (!parsed.ok()) {
    out->push_back(where + ": " + parsed.status().message());
    return;
  }
  CheckVersionList(f, parsed.value(), versions, where, out);
  CheckProfileList(f, parsed.value(), where, out);
  CheckProfileOutputs(f, parsed.value(), versions, images, where, out);
  CheckAsTheReaderReads(f, parsed.value(), images, where, out);
}

// Reads a whole file; false when it cannot be read.
bool ReadWhole(const fs::path& file, std::string* content) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return false;
  content->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// The captures of one folder of `<id>.{stdout.txt,stderr.txt,meta.json}`.
CapturesByImage ScanCaptures(const fs::path& dir, const std::string& where) {
  CapturesByImage captures;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    const std::string name = file.filename().string();
    if (name.front() == '.') continue;  // a writer's temporary
    std::string id;
    std::string_view suffix;
    if (!SplitCaptureName(name, &id, &suffix)) continue;  // not ours: ignored
    CaptureFacts& c = captures[id];
    c.where = where + "/" + id;
    std::string content;
    if (!ReadWhole(file, &content)) {
      c.problem = "cannot read " + name;
      continue;
    }
    if (suffix == kStdoutSuffix) {
      c.has_stdout = true;
      c.stdout_size = content.size();
      c.stdout_id = Sha256Hex(content);
    } else if (suffix == kStderrSuffix) {
      c.has_stderr = true;
    } else {
      c.has_meta = true;
      const nlohmann::json meta = nlohmann::json::parse(content, nullptr, false);
      if (!meta.is_object()) {
        c.problem = "meta.json is not a JSON object";
      } else {
        if (auto it = meta.find("stdout_bytes"); it != meta.end() && it->is_number_unsigned()) {
          c.stdout_bytes = it->get<std::uint64_t>();
        }
        if (auto it = meta.find("version_line"); it != meta.end() && it->is_string()) {
          c.version_line = it->get<std::string>();
        }
        if (auto it = meta.find("return_code"); it != meta.end()) c.return_code = it->dump();
      }
    }
  }
  return captures;
}

std::vector<fs::path> Subfolders(const fs::path& dir) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory(ec) && e.path().filename().string().front() != '.') {
      dirs.push_back(e.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TypeFacts ScanType(const fs::path& dir) {
  TypeFacts f;
  f.type = dir.filename().string();
  std::map<std::string, std::string> format_of;  // image id -> the bucket first seen in
  std::string flat, bucket;  // a version folder and a format folder right under the type
  for (const fs::path& sub : Subfolders(dir)) {
    const std::string name = sub.filename().string();
    if (name == kProfilesFolder) {
      for (const fs::path& p : Subfolders(sub)) {
        const std::string profile = p.filename().string();
        f.profiles[profile] = ScanCaptures(p, f.type + "/profiles/" + profile);
      }
      continue;
    }
    if (IsVersionName(name)) {  // a type not bucketed by format (info, check)
      flat = name;
      for (auto& [id, capture] : ScanCaptures(sub, f.type + "/" + name)) {
        f.raw[name][id] = std::move(capture);
      }
      continue;
    }
    bucket = name;
    for (const fs::path& vdir : Subfolders(sub)) {
      const std::string version = vdir.filename().string();
      const std::string where = f.type + "/" + name + "/" + version;
      if (!IsVersionName(version)) {
        f.problems.push_back(where + ": not a version name");
        continue;
      }
      for (auto& [id, capture] : ScanCaptures(vdir, where)) {
        auto [it, first] = format_of.emplace(id, name);
        if (it->second != name) {
          f.problems.push_back(f.type + ": image " + id + " is under two formats, " +
                               it->second + " and " + name);
        }
        f.raw[version][id] = std::move(capture);
      }
    }
  }
  if (!flat.empty() && !bucket.empty()) {
    f.problems.push_back(f.type + ": both version folders (" + flat + ") and format folders (" +
                         bucket + ") under the type");
  }
  std::string text;
  if (ReadWhole(dir / std::string(kVersionMapFile), &text)) f.version_map = std::move(text);
  return f;
}

}  // namespace

bool SplitCaptureName(std::string_view name, std::string* id, std::string_view* suffix) {
  for (std::string_view s : {kStdoutSuffix, kStderrSuffix, kMetaSuffix}) {
    if (name.size() > s.size() && name.substr(name.size() - s.size()) == s) {
      *id = name.substr(0, name.size() - s.size());
      *suffix = s;
      return true;
    }
  }
  return false;
}

std::vector<std::string> CheckType(const TypeFacts& f) {
  std::vector<std::string> out = f.problems;
  const std::vector<std::string> versions = SortedVersions(f.raw);
  std::set<std::string> images;
  for (const auto& [v, captures] : f.raw) {
    for (const auto& [id, unused] : captures) images.insert(id);
  }
  for (const std::string& v : versions) {
    CheckEveryImage(f.raw.at(v), images, f.type + ": version " + v + " has", &out);
  }
  for (const auto& [name, captures] : f.profiles) {
    CheckEveryImage(captures, images, f.type + "/profiles/" + name + ":", &out);
    for (const auto& [id, c] : captures) {
      if (images.count(id) == 0) out.push_back(c.where + ": an image no version has");
    }
  }
  std::map<std::vector<std::string>, std::string> seen;
  for (const auto& [name, captures] : f.profiles) {
    auto [it, first] = seen.emplace(Row(captures, images), name);
    if (!first) {
      out.push_back(f.type + "/profiles: " + it->second + " and " + name +
                    " have identical stdout on every image");
    }
  }
  CheckVersionMap(f, versions, images, &out);
  return out;
}

Result<std::vector<TypeFacts>> ScanTree(const fs::path& out) {
  std::error_code ec;
  if (!fs::is_directory(out, ec)) return Status::NotFound(out.string() + ": no such folder");
  std::vector<TypeFacts> types;
  for (const fs::path& dir : Subfolders(out)) types.push_back(ScanType(dir));
  if (types.empty()) {
    return Status::InvalidInput(out.string() + ": no output type folders (e.g. map-json) in it");
  }
  return types;
}

std::vector<std::string> CheckReaderPicks(const TypeFacts& f) {
  std::vector<std::string> violations;
  std::vector<std::string>* out = &violations;
  if (!f.version_map) return violations;  // CheckType says so
  Result<VersionMap> parsed = ParseVersionMap(*f.version_map);
  if (!parsed.ok()) return violations;  // CheckType says why
  const VersionMap& map = parsed.value();
  const std::string where = f.type + "/" + std::string(kVersionMapFile);
  for (const auto& [v, mapped] : map.version_to_profile) {
    auto raw = f.raw.find(v);
    if (raw == f.raw.end() || raw->second.empty()) continue;  // reported already
    std::string host = ReportedVersion(raw->second.begin()->second.version_line);
    if (host.empty()) host = v;
    const std::string picked = PickProfile(map, host);
    if (picked == mapped) continue;  // CheckType compares those
    auto folder = f.profiles.find(picked);
    if (folder == f.profiles.end()) continue;  // reported already
    for (const auto& [id, c] : raw->second) {
      auto p = folder->second.find(id);
      if (p == folder->second.end() || !c.has_stdout || !p->second.has_stdout) continue;
      if (c.stdout_id != p->second.stdout_id) {
        out->push_back(where + ": on a host whose qemu-img says " + host + " (version " + v +
                       ") a reader picks " + picked + ", whose stdout differs on image " + id);
      }
    }
  }
  return violations;
}

Result<std::vector<std::string>> ValidateTree(const fs::path& out) {
  Result<std::vector<TypeFacts>> types = ScanTree(out);
  if (!types.ok()) return types.status();
  std::vector<std::string> violations;
  for (const TypeFacts& f : types.value()) {
    for (std::string& v : CheckType(f)) violations.push_back(std::move(v));
    for (std::string& v : CheckReaderPicks(f)) violations.push_back(std::move(v));
  }
  return violations;
}

}  // namespace imgsweep
