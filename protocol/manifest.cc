#include "protocol/manifest.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "protocol/sha256.h"

namespace imgsweep {
namespace {

using nlohmann::json;

// A manifest is a few hundred entries; anything this large is not one, and
// reading it whole would only cost memory.
constexpr std::uintmax_t kMaxManifestBytes = 64 << 20;

// Builds "<source>: images[<i>] (\"<id>\"): field \"<name>\": <problem>".
class EntryErrors {
 public:
  EntryErrors(std::string_view source, size_t index) : source_(source), index_(index) {}
  void set_id(std::string id) { id_ = std::move(id); }

  Status Field(std::string_view field, std::string_view problem) const {
    return Entry("field \"" + std::string(field) + "\": " + std::string(problem));
  }
  Status Entry(std::string_view problem) const {
    std::ostringstream out;
    out << source_ << ": images[" << index_ << "]";
    if (!id_.empty()) out << " (\"" << id_ << "\")";
    out << ": " << problem;
    return Status::InvalidInput(out.str());
  }

 private:
  std::string_view source_;
  size_t index_;
  std::string id_;
};

std::string Quoted(std::string_view text) { return json(std::string(text)).dump(); }

Result<std::string> RequiredString(const json& entry, std::string_view field,
                                   const EntryErrors& errors) {
  auto it = entry.find(field);
  if (it == entry.end()) return errors.Field(field, "missing");
  if (!it->is_string())
    return errors.Field(field, std::string("must be a string, not ") + it->type_name());
  return it->get<std::string>();
}

// The rule is StaysInsideRoot; this only says which part of it failed.
Status CheckPath(const std::string& path, const EntryErrors& errors) {
  if (StaysInsideRoot(path)) return Status::Ok();
  if (path.empty()) return errors.Field("path", "is empty");
  if (path.find('\0') != std::string::npos) return errors.Field("path", "contains a NUL byte");
  std::filesystem::path p(path);
  if (p.is_absolute()) {
    return errors.Field("path",
                        Quoted(path) + " is absolute; it must be relative to the testdata root");
  }
  return errors.Field("path", Quoted(path) + " leaves the testdata root (\"..\")");
}

// What decides whether an entry is swept: its id (for messages and
// duplicates), safety and skip_qemu_img. Checked on every entry.
Status ParseTier(const json& entry, EntryErrors& errors, ImageEntry* image) {
  Result<std::string> id = RequiredString(entry, "id", errors);
  if (!id.ok()) return id.status();
  image->id = id.value();
  // An id that is not a safe name is named only in its own field's error.
  if (IsSafeName(image->id)) errors.set_id(image->id);

  Result<std::string> safety = RequiredString(entry, "safety", errors);
  if (!safety.ok()) return safety.status();
  static const std::map<std::string, Safety, std::less<>> kSafety = {
      {"safe", Safety::kSafe},
      {"malformed", Safety::kMalformed},
      {"malicious", Safety::kMalicious}};
  auto safety_it = kSafety.find(safety.value());
  if (safety_it == kSafety.end()) {
    return errors.Field(
        "safety", Quoted(safety.value()) + " is not one of \"safe\", \"malformed\", \"malicious\"");
  }
  image->safety = safety_it->second;

  if (auto skip = entry.find("skip_qemu_img"); skip != entry.end()) {
    if (!skip->is_boolean()) {
      return errors.Field("skip_qemu_img",
                          std::string("must be true or false, not ") + skip->type_name());
    }
    image->skip_qemu_img = skip->get<bool>();
  }
  return Status::Ok();
}

// What a swept entry needs: an id that is a file name, a path inside the
// root, a format the sweep buckets (kept as written: it names the folder),
// and a sha256 when the manifest gives one.
Status ParseSwept(const json& entry, const EntryErrors& errors, ImageEntry* image) {
  if (!IsSafeName(image->id)) {
    return errors.Field(
        "id", Quoted(image->id) + " is not a safe name ([A-Za-z0-9._-], not \".\" or \"..\")");
  }
  Result<std::string> path = RequiredString(entry, "path", errors);
  if (!path.ok()) return path.status();
  if (Status s = CheckPath(path.value(), errors); !s.ok()) return s;
  image->path = path.value();

  Result<std::string> format = RequiredString(entry, "format", errors);
  if (!format.ok()) return format.status();
  image->format = format.value();
  std::string driver = image->format;
  std::transform(driver.begin(), driver.end(), driver.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  const auto& known = KnownFormats();
  if (!IsSafeName(image->format) || std::find(known.begin(), known.end(), driver) == known.end()) {
    std::string list;
    for (const auto& f : known) list += (list.empty() ? "" : ", ") + f;
    return errors.Field("format",
                        "unknown format " + Quoted(format.value()) + " (known: " + list + ")");
  }

  if (entry.find("sha256") == entry.end()) return Status::Ok();  // computed by the sweep, if it can
  Result<std::string> sha = RequiredString(entry, "sha256", errors);
  if (!sha.ok()) return sha.status();
  image->sha256 = sha.value();
  std::transform(image->sha256.begin(), image->sha256.end(), image->sha256.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (!IsSha256Hex(image->sha256)) {
    return errors.Field("sha256", Quoted(sha.value()) + " is not 64 hex digits");
  }
  return Status::Ok();
}

// Entries outside the safe tier are kept as given and not looked at
// further: their files may be absent, their sha256 missing, their format
// one no sweep knows.
Result<ImageEntry> ParseEntry(const json& entry, const EntryErrors& errors_in) {
  EntryErrors errors = errors_in;
  if (!entry.is_object()) {
    return errors.Entry(std::string("must be an object, not ") + entry.type_name());
  }
  ImageEntry image;
  image.raw_json = entry.dump();
  Status st = ParseTier(entry, errors, &image);
  if (st.ok() && InSafeTier(image)) st = ParseSwept(entry, errors, &image);
  if (!st.ok()) return st;
  return image;
}

}  // namespace

bool StaysInsideRoot(std::string_view path) {
  if (path.empty() || path.find('\0') != std::string_view::npos) return false;
  const std::filesystem::path p(path);
  if (p.is_absolute()) return false;
  return std::none_of(p.begin(), p.end(), [](const std::filesystem::path& part) {
    return part == "..";
  });
}

Result<std::filesystem::path> ResolveInsideRoot(const std::filesystem::path& root,
                                                std::string_view path) {
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::canonical(root / path, ec);
  if (ec) return Status::FromErrno(std::string(path), ec.value());
  const std::filesystem::path rel = real.lexically_relative(root);
  if (rel.empty() || *rel.begin() == "..") {
    return Status::InvalidInput(std::string(path) + " resolves to " + real.string() +
                                ", outside the testdata root");
  }
  return real;
}

bool InSafeTier(const ImageEntry& image) {
  return image.safety == Safety::kSafe && !image.skip_qemu_img;
}

bool IsSafeName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

const std::vector<std::string>& KnownFormats() {
  static const std::vector<std::string> kFormats = {"raw", "qcow2", "qcow", "vmdk",
                                                    "vpc", "vhdx",  "qed",  "vdi"};
  return kFormats;
}

Result<Manifest> Manifest::Parse(std::string_view json_text, std::string_view source) {
  const std::string where(source);
  json document;
  try {
    document = json::parse(json_text);
  } catch (const json::exception& e) {
    // nlohmann prefixes "[json.exception.parse_error.101] "; users need only the rest.
    std::string what = e.what();
    if (auto end = what.find("] "); what.rfind("[json.", 0) == 0 && end != std::string::npos) {
      what = what.substr(end + 2);
    }
    return Status::InvalidInput(where + ": not valid JSON: " + what);
  }
  if (!document.is_object()) {
    return Status::InvalidInput(where + ": must be a JSON object, not " + document.type_name());
  }
  // The top-level "version" is the consumers' own (1, "1.0.0", ...): kept
  // unread, like every field the sweep does not use.
  auto images = document.find("images");
  if (images == document.end()) return Status::InvalidInput(where + ": field \"images\": missing");
  if (!images->is_array()) {
    return Status::InvalidInput(where + ": field \"images\": must be an array, not " +
                                images->type_name());
  }

  Manifest manifest;
  std::map<std::string, size_t, std::less<>> index_of_id;
  for (size_t i = 0; i < images->size(); ++i) {
    Result<ImageEntry> entry = ParseEntry((*images)[i], EntryErrors(where, i));
    if (!entry.ok()) return entry.status();
    auto [it, inserted] = index_of_id.emplace(entry.value().id, i);
    if (!inserted) {
      EntryErrors errors(where, i);
      errors.set_id(entry.value().id);
      return errors.Field("id", "duplicate of images[" + std::to_string(it->second) + "]");
    }
    manifest.images_.push_back(std::move(entry).value());
  }
  return manifest;
}

Result<Manifest> Manifest::Load(const std::filesystem::path& file) {
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(file, ec);
  if (ec) return Status::FromErrno("manifest " + file.string(), ec.value());
  if (size > kMaxManifestBytes) {
    return Status::InvalidInput("manifest " + file.string() + " is " + std::to_string(size) +
                                " bytes, over the limit of " + std::to_string(kMaxManifestBytes));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::FromErrno("open manifest " + file.string(), errno);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::FromErrno("read manifest " + file.string(), errno);
  return Parse(text.str(), file.string());
}

Status Manifest::SetDigest(std::string_view id, std::string sha256) {
  if (!IsSha256Hex(sha256)) return Status::InvalidInput("not a sha256: " + sha256);
  for (ImageEntry& image : images_) {
    if (image.id != id) continue;
    image.sha256 = std::move(sha256);
    return Status::Ok();
  }
  return Status::NotFound("no image \"" + std::string(id) + "\" in the manifest");
}

std::vector<ImageEntry> Manifest::SafeTier() const {
  std::vector<ImageEntry> tier;
  std::copy_if(images_.begin(), images_.end(), std::back_inserter(tier), InSafeTier);
  return tier;
}

}  // namespace imgsweep
