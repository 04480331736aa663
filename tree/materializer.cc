#include "tree/materializer.h"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tree/tree_check.h"
#include "tree/tree_writer.h"
#include "protocol/manifest.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

constexpr std::size_t kMissingNamed = 5;
// Cells whose meta.json a thread makes at a time.
constexpr std::size_t kMetasPerTurn = 256;

// Whole seconds print as integers ("30", not "30.0").
json TimeoutSeconds(std::chrono::milliseconds timeout) {
  if (timeout.count() % 1000 == 0) return timeout.count() / 1000;
  return static_cast<double>(timeout.count()) / 1000.0;
}

std::string MetaJson(const Plan& plan, const CellRef& ref, const CellRecord& record,
                     const MaterializeOptions& options) {
  const Attempt& a = record.attempts.back();
  const std::string& version = plan.versions()[ref.version];
  const PlannedImage& image = plan.ImageOf(ref);
  const OutputType& type = plan.types()[ref.type];
  std::vector<std::string> argv = {version + "/qemu-img"};
  for (std::string& arg : plan.Args(ref)) argv.push_back(std::move(arg));
  json meta{{"argv", argv},
            {"binary_sha256", a.binary_sha256},
            {"cwd", kTestdataRootToken},
            {"format", image.format},
            {"image_id", image.id},
            {"image_sha256", image.sha256},
            {"outcome", OutcomeName(a.outcome)},
            {"output_type", plan.types()[ref.type].name},
            {"stderr_bytes", a.stderr_bytes},
            {"stdout_bytes", a.stdout_bytes},
            {"timeout_seconds", TimeoutSeconds(plan.timeout())},
            {"version", version},
            {"version_line", a.version_line}};
  if (!type.axes.empty()) {  // the row's values: {"target": "qcow2"}
    json values = json::object();
    const std::vector<std::string_view> combo = type.ValuesOf(plan.RowOf(ref).combo);
    for (std::size_t k = 0; k < type.axes.size(); ++k) values[type.axes[k].name] = combo[k];
    meta["axes"] = std::move(values);
  }
  switch (a.outcome) {
    case Outcome::kExited:
      meta["return_code"] = a.exit_code;
      break;
    case Outcome::kSignaled:
      meta["return_code"] = -a.signal;
      meta["signal"] = a.signal;
      break;
    case Outcome::kUnsupported:  // nothing ran: the release is older than the type's flags
      meta["return_code"] = nullptr;
      meta["since"] = type.since;
      break;
    default:
      meta["return_code"] = nullptr;
      break;
  }
  // Where the image's holes were, which `qemu-img map` prints.
  if (!a.image_layout.empty()) meta["image_layout"] = a.image_layout;
  if (options.provenance) {
    meta["attempts"] = record.attempts.size();
    meta["duration_ms"] = static_cast<double>(a.duration_us) / 1000.0;
    meta["host"] = a.host;
    meta["worker"] = a.worker;
  }
  // Version lines and hosts came from workers: a store from before they
  // were checked at the boundary may hold other bytes than UTF-8.
  return meta.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

// Output bytes by their sha256 digest.
using Blobs = std::unordered_map<std::string, std::string>;

// One output type's profiles as they will be written.
struct TypeFiles {
  TypeProfiles summary;
  std::vector<std::string> profiles;  // folder names
  std::string version_map;
};

void AddCapture(const fs::path& dir, const std::string& id, const CellRecord& record,
                const std::string& meta, const Blobs& blobs,
                std::vector<PlannedFile>* files) {
  const Attempt& a = record.attempts.back();
  files->push_back({dir / (id + std::string(kStdoutSuffix)), blobs.at(a.stdout_sha256)});
  files->push_back({dir / (id + std::string(kStderrSuffix)), blobs.at(a.stderr_sha256)});
  files->push_back({dir / (id + std::string(kMetaSuffix)), meta});
}

CaptureFacts Facts(const fs::path& where, const CellRecord& record,
                   const Blobs& blobs) {
  const Attempt& a = record.attempts.back();
  CaptureFacts c;
  c.where = where.string();
  c.has_stdout = c.has_stderr = c.has_meta = true;
  c.stdout_size = blobs.at(a.stdout_sha256).size();
  c.stdout_bytes = a.stdout_bytes;
  c.stdout_id = a.stdout_sha256;
  c.version_line = a.version_line;
  return c;
}

}  // namespace

StoredSweep::TypeVersions StoredSweep::Versions(std::size_t type) const {
  TypeVersions split;
  for (std::size_t v = 0; v < plan.versions().size(); ++v) {
    bool all = true;
    for (std::size_t i = 0; i < plan.rows(type).size() && all; ++i) {
      all = records[plan.Index(CellRef{type, v, i})].has_value();
    }
    if (all) {
      split.complete.push_back(v);
      split.names.push_back(plan.versions()[v]);
    } else {
      split.left_out.push_back(plan.versions()[v]);
    }
  }
  return split;
}

std::vector<std::vector<std::string>> StoredSweep::StdoutRows(
    std::size_t type, const std::vector<std::size_t>& versions) const {
  std::vector<std::vector<std::string>> rows;
  for (std::size_t v : versions) {
    std::vector<std::string>& row = rows.emplace_back();
    for (std::size_t i = 0; i < plan.rows(type).size(); ++i) {
      row.push_back(records[plan.Index(CellRef{type, v, i})]->attempts.back().stdout_sha256);
    }
  }
  return rows;
}

Result<StoredSweep> LoadSweep(Store& store) {
  Result<Plan> plan = LoadPlan(store);
  if (!plan.ok()) return plan.status();
  StoredSweep sweep{std::move(plan).value(), {}};
  sweep.records.resize(sweep.plan.cell_count());
  Status st = store.ForEachCell([&](std::string_view key, const CellRecord& record) {
    Result<std::size_t> index = sweep.plan.IndexOfKey(key);
    if (index.ok() && record.state == CellState::kDone && !record.attempts.empty()) {
      sweep.records[index.value()] = record;
    }
    return true;
  });
  if (!st.ok()) return st;
  return sweep;
}

namespace {

// kInvalidInput naming the first few cells without an outcome, unless the
// user allows a partial tree; counts them in `summary` either way.
Status CheckOutcomes(const StoredSweep& sweep, bool allow_partial, MaterializeSummary* summary) {
  const Plan& plan = sweep.plan;
  std::string named;
  for (std::size_t i = 0; i < sweep.records.size(); ++i) {
    if (sweep.records[i]) continue;
    if (++summary->cells_missing <= kMissingNamed) {
      named += (named.empty() ? "" : ", ") + plan.Key(plan.Ref(i));
    }
  }
  if (summary->cells_missing == 0 || allow_partial) return Status::Ok();
  return Status::InvalidInput(std::to_string(summary->cells_missing) + " of " +
                              std::to_string(plan.cell_count()) + " cells have no outcome (" +
                              named + (summary->cells_missing > kMissingNamed ? ", ..." : "") +
                              "); nothing written (--allow-partial writes the rest)");
}

// Every distinct output of the sweep once, by digest.
Result<Blobs> ReadBlobs(Store& store, const StoredSweep& sweep) {
  Blobs blobs;
  for (const std::optional<CellRecord>& record : sweep.records) {
    if (!record) continue;
    const Attempt& a = record->attempts.back();
    for (const std::string* digest : {&a.stdout_sha256, &a.stderr_sha256}) {
      if (blobs.count(*digest) != 0) continue;
      Result<std::string> bytes = store.GetBlob(*digest);
      if (!bytes.ok()) return bytes.status();
      blobs.emplace(*digest, std::move(bytes).value());
    }
  }
  return blobs;
}

// What the tree will hold, in memory, before anything is written.
struct PlannedTree {
  std::vector<std::string> metas;  // by cell
  std::vector<PlannedFile> files;
  std::vector<TypeFiles> by_type;
  std::vector<std::string> violations;
};

// One output type's raw captures, profiles and version map, added to
// `tree` and checked as `imgsweep validate` would.
void PlanType(const StoredSweep& sweep, std::size_t t, const Blobs& blobs, PlannedTree* tree) {
  const Plan& plan = sweep.plan;
  const std::string& type = plan.types()[t].name;
  // <type>/<format>/<version> (map, measure) or <type>/<version> (info, check).
  const auto raw_dir = [&plan, &type, t, by_format = plan.types()[t].by_format](std::size_t v,
                                                                            std::size_t i) {
    return by_format ? fs::path(type) / plan.images()[plan.rows(t)[i].image].format / plan.versions()[v]
                     : fs::path(type) / plan.versions()[v];
  };
  TypeFacts facts;
  facts.type = type;
  for (std::size_t v = 0; v < plan.versions().size(); ++v) {
    for (std::size_t i = 0; i < plan.rows(t).size(); ++i) {
      const std::size_t index = plan.Index(CellRef{t, v, i});
      if (!sweep.records[index]) continue;
      const fs::path dir = raw_dir(v, i);
      AddCapture(dir, plan.rows(t)[i].id, *sweep.records[index], tree->metas[index], blobs,
                 &tree->files);
    }
  }
  TypeFiles& written = tree->by_type.emplace_back();
  written.summary.type = type;
  const StoredSweep::TypeVersions versions = sweep.Versions(t);
  const std::vector<std::size_t>& complete = versions.complete;
  written.summary.left_out = versions.left_out;
  for (std::size_t v : complete) {
    for (std::size_t i = 0; i < plan.rows(t).size(); ++i) {
      const std::size_t index = plan.Index(CellRef{t, v, i});
      facts.raw[plan.versions()[v]][plan.rows(t)[i].id] = Facts(
          raw_dir(v, i) / plan.rows(t)[i].id,
          *sweep.records[index], blobs);
    }
  }
  if (complete.empty()) return;  // no profiles: nothing to group
  const std::vector<Profile> profiles = GroupProfiles(versions.names, sweep.StdoutRows(t, complete));
  for (const Profile& p : profiles) {
    const std::size_t earliest = complete[p.versions.front()];
    written.profiles.push_back(p.name);
    for (std::size_t i = 0; i < plan.rows(t).size(); ++i) {
      const std::size_t index = plan.Index(CellRef{t, earliest, i});
      const fs::path dir = fs::path(type) / kProfilesFolder / p.name;
      const std::string& id = plan.rows(t)[i].id;
      AddCapture(dir, id, *sweep.records[index], tree->metas[index], blobs, &tree->files);
      facts.profiles[p.name][id] = Facts(dir / id, *sweep.records[index], blobs);
    }
  }
  written.version_map = VersionMapJson(versions.names, profiles);
  facts.version_map = written.version_map;
  written.summary.profiles = profiles.size();
  written.summary.versions = complete.size();
  for (std::string& v : CheckType(facts)) tree->violations.push_back(std::move(v));
}

// Raw captures and profiles, then each type's version map, then what an
// earlier materialisation left that no longer exists.
Status WriteTree(const fs::path& out, PlannedTree& tree,
                 MaterializeSummary* summary) {
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return Status::FromErrno("cannot create " + out.string(), ec.value());
  // A type's folder that this materialisation makes holds nothing stale,
  // and walking its thousands of files again would be the tree's last cost.
  std::unordered_set<std::string> existed;
  for (const TypeFiles& t : tree.by_type) {
    if (fs::exists(fs::symlink_status(out / t.summary.type, ec))) existed.insert(t.summary.type);
  }
  TreeFolders folders(out);
  WrittenFiles counts;
  Status wrote = WriteFiles(out, tree.files, &folders, &counts);
  if (!wrote.ok()) return wrote;
  std::map<std::string, std::unordered_set<std::string>> planned;  // by type: native paths
  if (!existed.empty()) {
    for (const PlannedFile& f : tree.files) {
      const std::string type = f.relative.begin()->string();
      if (existed.count(type) != 0) planned[type].insert(f.relative.native());
    }
  }
  for (TypeFiles& t : tree.by_type) {
    const fs::path map = fs::path(t.summary.type) / kVersionMapFile;
    Status st = WriteFile(out, map, t.version_map, &folders, &counts);
    planned[t.summary.type].insert(map.native());
    if (st.ok() && existed.count(t.summary.type) != 0) {
      st = RemoveUnplanned(out, t.summary.type, planned[t.summary.type], &summary->stale_removed);
    }
    if (!st.ok()) return st;
    summary->types.push_back(std::move(t.summary));
  }
  summary->files_written += counts.written;
  summary->files_unchanged += counts.unchanged;
  return Status::Ok();
}

}  // namespace

Result<MaterializeSummary> Materialize(Store& store, const fs::path& out,
                                       const MaterializeOptions& options) {
  Result<StoredSweep> loaded = LoadSweep(store);
  if (!loaded.ok()) return loaded.status();
  const StoredSweep& sweep = loaded.value();
  MaterializeSummary summary;
  Status st = CheckOutcomes(sweep, options.allow_partial, &summary);
  if (!st.ok()) return st;
  Result<Blobs> blobs = ReadBlobs(store, sweep);
  if (!blobs.ok()) return blobs.status();
  PlannedTree tree;
  tree.metas.resize(sweep.plan.cell_count());
  // Most of planning the tree is making the meta.json files: on a few
  // threads, not one while the others wait.
  ForEachIndex(sweep.records.size(), kMetasPerTurn, [&](std::size_t i) {
    if (!sweep.records[i]) return;
    tree.metas[i] = MetaJson(sweep.plan, sweep.plan.Ref(i), *sweep.records[i], options);
  });
  for (std::size_t t = 0; t < sweep.plan.types().size(); ++t) {
    PlanType(sweep, t, blobs.value(), &tree);
  }
  for (const TypeFiles& t : tree.by_type) {
    if (!t.profiles.empty()) continue;
    return Status::InvalidInput(
        "output type " + t.summary.type + " has no version with an outcome for every image, so "
        "it would have no version-map.json; nothing written (" +
        std::to_string(summary.cells_missing) + " cells have no outcome)");
  }
  if (!tree.violations.empty()) {
    std::string message = "the tree would not be valid; nothing written:";
    for (const std::string& v : tree.violations) message += "\n  " + v;
    // The store disagrees with itself (or the grouping has a bug): not the
    // user's input, so kIoError and exit 1.
    return Status::IoError(message);
  }
  st = WriteTree(out, tree, &summary);
  if (!st.ok()) return st;
  return summary;
}

}  // namespace imgsweep
