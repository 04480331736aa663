// What `run` and `coordinator` share: inputs checked and a store that holds
// the plan, before any socket or process exists.
#include <cstdio>

#include "cli/commands.h"
#include "protocol/manifest.h"

namespace imgsweep {
namespace fs = std::filesystem;

int Fail(const Status& status) {
  std::fprintf(stderr, "imgsweep: %s\n", status.message().c_str());
  switch (status.code()) {
    case StatusCode::kInvalidInput:
    case StatusCode::kNotFound:
      return kExitBadInput;
    default:
      return kExitFailed;
  }
}

Result<PreparedSweep> PrepareSweep(const SweepInputs& inputs) {
  Result<Manifest> manifest = Manifest::Load(inputs.manifest);
  if (!manifest.ok()) return manifest.status();
  if (!inputs.testdata.empty()) {
    std::error_code ec;
    if (!fs::is_directory(inputs.testdata, ec)) {
      return Status::NotFound("testdata " + inputs.testdata.string() + ": no such directory");
    }
    const fs::path root = fs::canonical(inputs.testdata, ec);
    for (const ImageEntry& image : manifest.value().SafeTier()) {
      const std::string where = "testdata " + inputs.testdata.string() + ": image \"" + image.id +
                                "\": ";
      Result<fs::path> real = ResolveInsideRoot(root, image.path);
      if (real.status().code() == StatusCode::kInvalidInput) {
        return Status::InvalidInput(where + real.status().message());
      }
      if (!real.ok() || !fs::is_regular_file(real.value(), ec)) {
        return Status::NotFound(where + image.path + " is not there");
      }
    }
  }
  Result<Plan> plan = Plan::Make(manifest.value(), inputs.versions, inputs.timeout);
  if (!plan.ok()) return plan.status();

  Result<std::unique_ptr<Store>> store = Store::Open(inputs.db, Store::Mode::kCreateIfMissing);
  if (!store.ok()) return store.status();
  Result<std::optional<std::string>> stored = store.value()->GetMeta("plan");
  if (!stored.ok()) return stored.status();
  const std::string wanted = plan.value().ToJson();
  if (!stored.value()) {
    Status st = store.value()->PutMeta("plan", wanted);
    if (!st.ok()) return st;
  } else if (*stored.value() != wanted) {
    return Status::InvalidInput("store " + inputs.db.string() +
                                " holds another sweep (other versions, images or timeout); "
                                "give another --db or remove it");
  }
  return PreparedSweep{std::move(plan).value(), std::move(store).value()};
}

}  // namespace imgsweep
