#include "sweep/plan.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "protocol/sha256.h"
#include "protocol/version_name.h"

namespace imgsweep {
namespace {

using nlohmann::json;

constexpr int kPlanFormat = 1;

}  // namespace

Status Plan::BuildIndex() {
  struct Part {
    const char* what;
    NameIndex* index;
    std::vector<std::string> names;
  };
  rows_.assign(types_.size(), {});
  row_index_.assign(types_.size(), {});
  type_start_.assign(1, 0);
  std::vector<Part> parts(2);
  parts[0] = {"output type", &type_index_, {}};
  for (const OutputType& t : types_) parts[0].names.push_back(t.name);
  parts[1] = {"version", &version_index_, versions_};
  NameIndex image_ids;  // an image listed twice is named as such, not as a row
  parts.push_back({"image id", &image_ids, {}});
  for (const PlannedImage& i : images_) parts.back().names.push_back(i.id);
  for (std::size_t t = 0; t < types_.size(); ++t) {
    const OutputType& type = types_[t];
    for (std::size_t i = 0; i < images_.size(); ++i) {
      if (!type.RunsOn(images_[i].format)) continue;
      if (!type.windows.empty() && !images_[i].virtual_size) continue;
      for (std::size_t c = 0; c < type.combos(); ++c) {
        rows_[t].push_back(PlannedRow{i, c, images_[i].id + type.SuffixOf(c)});
      }
    }
    if (rows_[t].empty()) {
      return Status::InvalidInput("plan: output type " + type.name +
                                  (type.windows.empty() ? " runs on none of the safe-tier images' formats"
                                                        : " has windows, and no image of its formats has "
                                                          "a virtual size to compute them from"));
    }
    type_start_.push_back(type_start_.back() + versions_.size() * rows_[t].size());
    Part part{"row id", &row_index_[t], {}};
    for (const PlannedRow& row : rows_[t]) part.names.push_back(row.id);
    parts.push_back(std::move(part));
  }
  for (Part& part : parts) {
    part.index->clear();
    for (std::size_t i = 0; i < part.names.size(); ++i) {
      if (!part.index->emplace(part.names[i], i).second) {
        return Status::InvalidInput("plan: " + std::string(part.what) + " \"" + part.names[i] +
                                    "\" is listed twice");
      }
    }
  }
  return Status::Ok();
}

const std::vector<OutputType>& MapOutputTypes() {
  static const std::vector<OutputType> kTypes = [] {
    Result<std::vector<OutputType>> types = CommandTable::BuiltIn().OutputTypesOf({"map"});
    return types.ok() ? std::move(types).value() : std::vector<OutputType>();
  }();
  return kTypes;
}

Result<Plan> Plan::Make(const Manifest& manifest, std::vector<std::string> versions,
                        std::chrono::milliseconds timeout) {
  return Make(manifest, std::move(versions), timeout, MapOutputTypes());
}

Result<Plan> Plan::Make(const Manifest& manifest, std::vector<std::string> versions,
                        std::chrono::milliseconds timeout, std::vector<OutputType> types,
                        const std::map<std::string, std::uint64_t>& virtual_sizes) {
  if (types.empty()) return Status::InvalidInput("plan: no output types to sweep");
  if (versions.empty()) return Status::InvalidInput("plan: no versions to sweep");
  for (const std::string& v : versions) {
    if (!IsVersionName(v)) {
      return Status::InvalidInput("plan: \"" + v + "\" is not a version name (X.Y.Z)");
    }
  }
  SortVersions(&versions);
  if (auto dup = std::adjacent_find(versions.begin(), versions.end()); dup != versions.end()) {
    return Status::InvalidInput("plan: version " + *dup + " is listed twice");
  }
  if (timeout <= std::chrono::milliseconds(0)) {
    return Status::InvalidInput("plan: the cell timeout must be positive");
  }
  Plan plan;
  plan.types_ = std::move(types);
  plan.versions_ = std::move(versions);
  plan.timeout_ = timeout;
  for (const ImageEntry& image : manifest.SafeTier()) {
    PlannedImage& planned = plan.images_.emplace_back(PlannedImage{image.id, image.path, image.format, image.sha256});
    if (auto size = virtual_sizes.find(image.id); size != virtual_sizes.end()) planned.virtual_size = size->second;
  }
  if (plan.images_.empty())
    return Status::InvalidInput("plan: the manifest has no safe-tier images");
  Status st = plan.BuildIndex();
  if (!st.ok()) return st;
  return plan;
}

std::string Plan::ToJson() const {
  json types = json::array();
  for (const OutputType& t : types_) {
    // Only a flat type says so: a map plan reads as it always did.
    json type = {{"name", t.name}, {"args", t.args}};
    if (!t.by_format) type["by_format"] = false;
    if (!t.axes.empty()) {
      json axes = json::array();
      for (const Axis& a : t.axes) axes.push_back({{"name", a.name}, {"values", a.values}});
      type["axes"] = std::move(axes);
    }
    if (!t.windows.empty()) {
      json windows = json::array();
      for (const Window& w : t.windows) {
        windows.push_back({{"name", w.name}, {"start", w.start.text}, {"length", w.length.text}});
      }
      type["windows"] = std::move(windows);
    }
    if (!t.formats.empty()) type["formats"] = t.formats;
    if (!t.since.empty()) type["since"] = t.since;
    types.push_back(std::move(type));
  }
  json images = json::array();
  for (const PlannedImage& i : images_) {
    json image = {{"id", i.id}, {"path", i.path}, {"format", i.format}, {"sha256", i.sha256}};
    if (i.virtual_size) image["virtual_size"] = *i.virtual_size;
    images.push_back(std::move(image));
  }
  const json j{{"plan_format", kPlanFormat},
               {"output_types", std::move(types)},
               {"versions", versions_},
               {"images", std::move(images)},
               {"timeout_ms", timeout_.count()}};
  return j.dump();
}

Result<Plan> Plan::FromJson(std::string_view text) {
  Plan plan;
  try {  // nlohmann::json reports a missing or mistyped member by throwing
    const json j = json::parse(text);
    if (j.at("plan_format").get<int>() != kPlanFormat) {
      return Status::InvalidInput("stored plan: format " + j.at("plan_format").dump() + " is not " +
                                  std::to_string(kPlanFormat));
    }
    for (const json& t : j.at("output_types")) {
      OutputType& type = plan.types_.emplace_back();
      type.name = t.at("name").get<std::string>();
      type.args = t.at("args").get<std::vector<std::string>>();
      type.by_format = t.value("by_format", true);
      for (const json& a : t.value("axes", json::array())) {
        type.axes.push_back({a.at("name").get<std::string>(), a.at("values").get<std::vector<std::string>>()});
      }
      for (const json& w : t.value("windows", json::array())) {
        Result<SizeExpr> start = SizeExpr::Parse(w.at("start").get<std::string>());
        Result<SizeExpr> length = SizeExpr::Parse(w.at("length").get<std::string>());
        if (!start.ok() || !length.ok()) return Status::InvalidInput("stored plan is unreadable: bad window");
        type.windows.push_back({w.at("name").get<std::string>(), start.value(), length.value()});
      }
      type.formats = t.value("formats", std::vector<std::string>());
      type.since = t.value("since", std::string());
    }
    plan.versions_ = j.at("versions").get<std::vector<std::string>>();
    for (const json& i : j.at("images")) {
      PlannedImage& image = plan.images_.emplace_back(
          PlannedImage{i.at("id").get<std::string>(), i.at("path").get<std::string>(),
                       i.at("format").get<std::string>(), i.at("sha256").get<std::string>()});
      if (i.contains("virtual_size")) image.virtual_size = i.at("virtual_size").get<std::uint64_t>();
    }
    plan.timeout_ = std::chrono::milliseconds(j.at("timeout_ms").get<std::int64_t>());
  } catch (const json::exception& e) {
    return Status::InvalidInput(std::string("stored plan is unreadable: ") + e.what());
  }
  for (const OutputType& type : plan.types_) {
    bool ok = IsSafeName(type.name) && (type.since.empty() || IsVersionName(type.since));
    for (const Axis& axis : type.axes) {
      ok = ok && IsSafeName(axis.name) && !axis.values.empty() &&
           std::all_of(axis.values.begin(), axis.values.end(), IsSafeName);
    }
    if (!type.windows.empty()) {  // the last axis is the windows'
      std::vector<std::string> names;
      for (const Window& w : type.windows) names.push_back(w.name);
      ok = ok && !type.axes.empty() && type.axes.back().name == kWindowAxis && type.axes.back().values == names;
    }
    if (!ok) return Status::InvalidInput("stored plan is unreadable: bad output type " + type.name);
  }
  for (const std::string& v : plan.versions_) {
    if (!IsVersionName(v)) return Status::InvalidInput("stored plan is unreadable: bad version " + v);
  }
  for (const PlannedImage& image : plan.images_) {
    if (!IsSafeName(image.id) || !IsSafeName(image.format)) {
      return Status::InvalidInput("stored plan is unreadable: bad image " + image.id);
    }
  }
  Status st = plan.BuildIndex();
  if (!st.ok()) return Status::InvalidInput("stored " + st.message());
  return plan;
}

CellRef Plan::Ref(std::size_t index) const {
  CellRef ref;
  ref.type = static_cast<std::size_t>(std::upper_bound(type_start_.begin(), type_start_.end(), index) -
                                      type_start_.begin()) - 1;
  const std::size_t within = index - type_start_[ref.type];
  const std::size_t rows = rows_[ref.type].size();
  ref.version = within / rows;
  ref.row = within % rows;
  return ref;
}

std::size_t Plan::Index(const CellRef& ref) const {
  return type_start_[ref.type] + ref.version * rows_[ref.type].size() + ref.row;
}

std::string Plan::Key(const CellRef& ref) const {
  return types_[ref.type].name + "/" + versions_[ref.version] + "/" + RowOf(ref).id;
}

Result<std::size_t> Plan::IndexOfKey(std::string_view key) const {
  const std::size_t first = key.find('/');
  const std::size_t second = first == std::string_view::npos ? first : key.find('/', first + 1);
  if (second == std::string_view::npos) {
    return Status::InvalidInput("cell key \"" + std::string(key) + "\" is not type/version/image");
  }
  auto type = type_index_.find(key.substr(0, first));
  auto version = version_index_.find(key.substr(first + 1, second - first - 1));
  if (type == type_index_.end() || version == version_index_.end()) {
    return Status::InvalidInput("cell key \"" + std::string(key) + "\" is not in the plan");
  }
  const NameIndex& rows = row_index_[type->second];
  auto row = rows.find(key.substr(second + 1));
  if (row == rows.end()) {
    return Status::InvalidInput("cell key \"" + std::string(key) + "\" is not in the plan");
  }
  return Index(CellRef{type->second, version->second, row->second});
}

std::vector<std::string> Plan::Args(const CellRef& ref) const {
  std::vector<std::string> args = types_[ref.type].ArgsOf(RowOf(ref).combo, ImageOf(ref).virtual_size);
  args.push_back(std::string(kTestdataRootToken) + "/" + ImageOf(ref).path);
  return args;
}

std::string Plan::CacheKey(const CellRef& ref, std::string_view binary_sha256,
                           std::string_view image_layout) const {
  return CacheKey(ref, binary_sha256, image_layout, Args(ref));
}

std::string Plan::CacheKey(const CellRef& ref, std::string_view binary_sha256,
                           std::string_view image_layout,
                           const std::vector<std::string>& args) const {
  // Each part on its own line, arguments NUL-separated: names and digests
  // hold neither, so no two different inputs read the same.
  std::string text;
  text.reserve(256);  // one allocation for a typical cell's ~200 bytes
  text += "imgsweep-cell 1\nbinary ";
  text += binary_sha256;
  text += "\nimage ";
  text += ImageOf(ref).sha256;
  text += "\nlayout ";
  text += image_layout;
  text += "\ntype ";
  text += types_[ref.type].name;
  text += "\nargv";
  for (const std::string& arg : args) {
    text += '\0';
    text += arg;
  }
  text += "\ntimeout_ms ";
  text += std::to_string(timeout_.count());
  text += '\n';
  return Sha256Hex(text);
}

std::vector<bool> Plan::TypesRunBy(const CommandTable& table) const {
  std::vector<bool> runs(types_.size(), true);
  for (std::size_t t = 0; t < types_.size(); ++t) {
    for (std::size_t r = 0; r < rows_[t].size() && runs[t]; ++r) {
      const CellRef ref{t, 0, r};
      runs[t] = table.CheckCellArgs(Args(ref), ImageOf(ref).path).ok();
    }
  }
  return runs;
}

CellSpec Plan::Spec(const CellRef& ref, std::uint32_t attempt) const {
  const PlannedImage& image = ImageOf(ref);
  return CellSpec{Key(ref),   versions_[ref.version], Args(ref),
                  image.path, image.sha256,           static_cast<std::uint32_t>(timeout_.count()),
                  attempt};
}

}  // namespace imgsweep
