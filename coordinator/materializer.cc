#include "coordinator/materializer.h"

#include <nlohmann/json.hpp>

#include <vector>

#include "coordinator/atomic_file.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

constexpr std::size_t kMissingNamed = 5;

// Whole seconds print as integers ("30", not "30.0").
json TimeoutSeconds(std::chrono::milliseconds timeout) {
  if (timeout.count() % 1000 == 0) return timeout.count() / 1000;
  return static_cast<double>(timeout.count()) / 1000.0;
}

std::string MetaJson(const Plan& plan, const CellRef& ref, const CellRecord& record,
                     const MaterializeOptions& options) {
  const Attempt& a = record.attempts.back();
  const std::string& version = plan.versions()[ref.version];
  const PlannedImage& image = plan.images()[ref.image];
  std::vector<std::string> argv = {version + "/qemu-img"};
  for (std::string& arg : plan.Args(ref)) argv.push_back(std::move(arg));
  json meta{{"argv", argv},
            {"binary_sha256", a.binary_sha256},
            {"cwd", "$TESTDATA_ROOT"},
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
  switch (a.outcome) {
    case Outcome::kExited:
      meta["return_code"] = a.exit_code;
      break;
    case Outcome::kSignaled:
      meta["return_code"] = -a.signal;
      meta["signal"] = a.signal;
      break;
    default:
      meta["return_code"] = nullptr;
      break;
  }
  if (options.provenance) {
    meta["attempts"] = record.attempts.size();
    meta["duration_ms"] = static_cast<double>(a.duration_us) / 1000.0;
    meta["host"] = a.host;
    meta["worker"] = a.worker;
  }
  return meta.dump(2) + "\n";
}

}  // namespace

Result<Plan> LoadPlan(Store& store) {
  Result<std::optional<std::string>> text = store.GetMeta("plan");
  if (!text.ok()) return text.status();
  if (!text.value()) return Status::NotFound("the store holds no sweep plan");
  return Plan::FromJson(*text.value());
}

Result<MaterializeSummary> Materialize(Store& store, const fs::path& out,
                                       const MaterializeOptions& options) {
  Result<Plan> loaded = LoadPlan(store);
  if (!loaded.ok()) return loaded.status();
  const Plan& plan = loaded.value();

  // Read every record first: a store without every outcome writes nothing.
  std::vector<CellRecord> records(plan.cell_count());
  std::vector<bool> present(plan.cell_count(), false);
  Status st = store.ForEachCell([&](std::string_view key, const CellRecord& record) {
    Result<std::size_t> index = plan.IndexOfKey(key);
    if (index.ok() && record.state == CellState::kDone && !record.attempts.empty()) {
      records[index.value()] = record;
      present[index.value()] = true;
    }
    return true;
  });
  if (!st.ok()) return st;
  std::size_t missing = 0;
  std::string named;
  for (std::size_t i = 0; i < present.size(); ++i) {
    if (present[i]) continue;
    if (++missing <= kMissingNamed) named += (named.empty() ? "" : ", ") + plan.Key(plan.Ref(i));
  }
  if (missing > 0) {
    return Status::InvalidInput(std::to_string(missing) + " of " +
                                std::to_string(plan.cell_count()) + " cells have no outcome (" +
                                named + (missing > kMissingNamed ? ", ..." : "") +
                                "); nothing written");
  }

  MaterializeSummary summary;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const CellRef ref = plan.Ref(i);
    const PlannedImage& image = plan.images()[ref.image];
    const fs::path dir =
        out / plan.types()[ref.type].name / image.format / plan.versions()[ref.version];
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Status::FromErrno("cannot create " + dir.string(), ec.value());
    const Attempt& a = records[i].attempts.back();
    Result<std::string> out_text = store.GetBlob(a.stdout_sha256);
    if (!out_text.ok()) return out_text.status();
    Result<std::string> err_text = store.GetBlob(a.stderr_sha256);
    if (!err_text.ok()) return err_text.status();
    const std::pair<std::string, std::string> files[] = {
        {image.id + ".stdout.txt", std::move(out_text).value()},
        {image.id + ".stderr.txt", std::move(err_text).value()},
        {image.id + ".meta.json", MetaJson(plan, ref, records[i], options)},
    };
    for (const auto& [name, content] : files) {
      bool written = false;
      st = WriteFileAtomically(dir / name, content, &written);
      if (!st.ok()) return st;
      ++(written ? summary.files_written : summary.files_unchanged);
    }
  }
  return summary;
}

}  // namespace imgsweep
