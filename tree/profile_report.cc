#include "tree/profile_report.h"

#include <dtl/dtl.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <sstream>
#include <vector>

#include "tree/materializer.h"
#include "tree/profiles.h"

namespace imgsweep {
namespace {

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    lines.emplace_back(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  return lines;
}

void CollectFields(const nlohmann::json& j, std::set<std::string>* fields) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      fields->insert(key);
      CollectFields(value, fields);
    }
  } else if (j.is_array()) {
    for (const nlohmann::json& element : j) CollectFields(element, fields);
  }
}

// "a, b, c": each item of `items` as `name` spells it.
template <typename Items, typename Name>
std::string Join(const Items& items, Name name) {
  std::string joined;
  for (const auto& item : items) joined += (joined.empty() ? "" : ", ") + name(item);
  return joined;
}
template <typename Items>
std::string Join(const Items& items) {
  return Join(items, [](const std::string& s) { return s; });
}

std::string Indent(const std::string& text, const std::string& prefix) {
  std::string out;
  for (const std::string& line : Lines(text)) out += prefix + line + "\n";
  return out;
}

// Reads blobs once each.
class Blobs {
 public:
  explicit Blobs(Store* store) : store_(store) {}
  Result<std::string_view> Get(const std::string& digest) {
    auto it = cache_.find(digest);
    if (it == cache_.end()) {
      Result<std::string> bytes = store_->GetBlob(digest);
      if (!bytes.ok()) return bytes.status();
      it = cache_.emplace(digest, std::move(bytes).value()).first;
    }
    return std::string_view(it->second);
  }

 private:
  Store* store_;
  std::map<std::string, std::string> cache_;
};

Status ExplainType(const StoredSweep& sweep, std::size_t t, const ReportOptions& options,
                   Blobs* blobs, std::string* out) {
  const Plan& plan = sweep.plan;
  const std::string& type = plan.types()[t].name;
  const StoredSweep::TypeVersions versions = sweep.Versions(t);
  const std::vector<std::size_t>& complete = versions.complete;
  const std::vector<std::string>& names = versions.names;
  const std::vector<std::vector<std::string>> rows = sweep.StdoutRows(t, complete);
  const ProfileAnalysis a = AnalyzeProfiles(names, rows);
  const std::size_t images = plan.rows(t).size();
  const auto image_id = [&plan, t](std::size_t i) { return plan.rows(t)[i].id; };

  *out += type + ": " + std::to_string(a.profiles.size()) +
          (a.profiles.size() == 1 ? " profile" : " profiles") + " over " +
          std::to_string(names.size()) + " versions and " + std::to_string(images) + " images\n";
  if (!versions.left_out.empty()) {
    *out += "  left out, without an outcome on every image: " + Join(versions.left_out) + "\n";
  }
  for (const Profile& p : a.profiles) {
    *out += "  " + p.name + ": " + Join(p.versions, [&](std::size_t v) { return names[v]; }) +
            "\n";
  }
  for (const ProfileAnalysis::Boundary& b : a.boundaries) {
    *out += "\n  " + names[b.from] + " -> " + names[b.to] + ": " +
            std::to_string(b.images.size()) + "/" + std::to_string(images) + " images differ\n";
    std::set<std::string> added, removed;
    std::vector<std::string> diffs;
    for (std::size_t k = 0; k < b.images.size(); ++k) {
      const std::size_t i = b.images[k];
      Result<std::string_view> from = blobs->Get(rows[b.from][i]);
      if (!from.ok()) return from.status();
      Result<std::string_view> to = blobs->Get(rows[b.to][i]);
      if (!to.ok()) return to.status();
      for (const std::string& f : AddedJsonFields(from.value(), to.value())) added.insert(f);
      for (const std::string& f : AddedJsonFields(to.value(), from.value())) removed.insert(f);
      if (k < options.diffs) {
        diffs.push_back("    " + image_id(i) + ":\n" +
                        Indent(UnifiedDiff(from.value(), to.value(), names[b.from], names[b.to],
                                           options.diff_lines),
                               "      "));
      }
    }
    if (!added.empty()) *out += "    JSON fields added: " + Join(added) + "\n";
    if (!removed.empty()) *out += "    JSON fields removed: " + Join(removed) + "\n";
    for (const std::string& d : diffs) *out += d;
    if (b.images.size() > diffs.size()) {
      const std::vector<std::size_t> rest(
          b.images.begin() + static_cast<std::ptrdiff_t>(diffs.size()), b.images.end());
      *out += "    also differ: " + Join(rest, image_id) + "\n";
    }
  }
  *out += "\n  images that never differ (" + std::to_string(a.never_differ.size()) + "): " +
          (a.never_differ.empty() ? "none" : Join(a.never_differ, image_id)) + "\n";
  if (a.alone.empty()) {
    *out += "  no image alone separates two profiles\n";
  }
  for (const ProfileAnalysis::Split& s : a.alone) {
    *out += "  " + image_id(s.image) + " alone separates " + a.profiles[s.first].name +
            " from " + a.profiles[s.second].name + "\n";
  }
  return Status::Ok();
}

}  // namespace

std::string UnifiedDiff(std::string_view from, std::string_view to, const std::string& from_label,
                        const std::string& to_label, std::size_t max_lines) {
  if (from == to) return "";
  dtl::Diff<std::string> diff(Lines(from), Lines(to));
  diff.onHuge();
  diff.compose();
  diff.composeUnifiedHunks();
  // dtl's hunks carry 3 lines of context.
  std::ostringstream hunks;
  diff.printUnifiedFormat(hunks);
  std::vector<std::string> lines = {"--- " + from_label, "+++ " + to_label};
  for (std::string& line : Lines(hunks.str())) lines.push_back(std::move(line));
  std::string out;
  const std::size_t shown = std::min(lines.size(), max_lines);
  for (std::size_t i = 0; i < shown; ++i) out += lines[i] + "\n";
  if (lines.size() > shown) out += "(" + std::to_string(lines.size() - shown) + " more lines)\n";
  return out;
}

std::set<std::string> AddedJsonFields(std::string_view from, std::string_view to) {
  const nlohmann::json a = nlohmann::json::parse(from, nullptr, false);
  const nlohmann::json b = nlohmann::json::parse(to, nullptr, false);
  if (a.is_discarded() || b.is_discarded()) return {};
  std::set<std::string> in_a, in_b, added;
  CollectFields(a, &in_a);
  CollectFields(b, &in_b);
  for (const std::string& f : in_b) {
    if (in_a.count(f) == 0) added.insert(f);
  }
  return added;
}

Result<std::string> ExplainProfiles(Store& store, const ReportOptions& options) {
  Result<StoredSweep> sweep = LoadSweep(store);
  if (!sweep.ok()) return sweep.status();
  const Plan& plan = sweep.value().plan;
  bool found = options.type.empty();
  for (const OutputType& t : plan.types()) found = found || t.name == options.type;
  if (!found) {
    return Status::InvalidInput(
        "no output type \"" + options.type + "\" in this sweep (it has " +
        Join(plan.types(), [](const OutputType& t) { return t.name; }) + ")");
  }
  Blobs blobs(&store);
  std::string out;
  for (std::size_t t = 0; t < plan.types().size(); ++t) {
    if (!options.type.empty() && plan.types()[t].name != options.type) continue;
    if (!out.empty()) out += "\n";
    Status st = ExplainType(sweep.value(), t, options, &blobs, &out);
    if (!st.ok()) return st;
  }
  return out;
}

}  // namespace imgsweep
