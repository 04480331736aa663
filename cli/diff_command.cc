// `imgsweep diff`: what the store's tree changes for the consumers, against
// the tree a testdata repository holds at a commit (or any tree on disk).
// The data commit's message carries the same words.
#include <cstdio>

#include "cli/commands.h"
#include "cli/git.h"
#include "cli/private_folder.h"
#include "sweep/sweep_state.h"
#include "tree/materializer.h"
#include "worker/subprocess.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

// A tree's facts; none for a folder that is missing or holds no type.
Result<std::vector<TypeFacts>> FactsOrNone(const fs::path& root) {
  Result<std::vector<TypeFacts>> scanned = ScanTree(root);
  if (scanned.ok()) return scanned;
  const StatusCode code = scanned.status().code();
  if (code == StatusCode::kNotFound || code == StatusCode::kInvalidInput) {
    return std::vector<TypeFacts>{};
  }
  return scanned.status();
}

std::vector<std::string> SweptTypes(const Plan& plan, const std::string& only) {
  std::vector<std::string> types;
  for (const OutputType& t : plan.types()) {
    if (only.empty() || t.name == only) types.push_back(t.name);
  }
  return types;
}

Status Diff(const DiffFlags& flags) {
  if (flags.repo.empty() == flags.out.empty()) {
    return Status::InvalidInput("diff needs one of --repo (a testdata repository) or --out (a tree)");
  }
  Result<std::unique_ptr<Store>> opened = Store::Open(flags.db, Store::Mode::kReadOnly);
  if (!opened.ok()) return opened.status();
  Store& store = *opened.value();
  Result<SweepState> state = ReadSweepState(store);
  if (!state.ok()) return state.status();
  const std::vector<std::string> types = SweptTypes(state.value().plan, flags.output_type);
  if (types.empty()) {
    return Status::InvalidInput("--output-type " + flags.output_type + " is not in the sweep");
  }
  Result<std::unique_ptr<PrivateFolder>> scratch = PrivateFolder::Make();
  if (!scratch.ok()) return scratch.status();
  const fs::path made = scratch.value()->path() / "tree";
  Result<MaterializeSummary> written =
      Materialize(store, made, MaterializeOptions{false, flags.allow_partial});
  if (!written.ok()) return written.status();
  Result<std::vector<TypeDiff>> diffs =
      flags.out.empty()
          ? ChangesSinceCommit(flags.repo, flags.rev, flags.tree, types, made,
                               scratch.value()->path() / "before")
          : [&]() -> Result<std::vector<TypeDiff>> {
              Result<std::vector<TypeFacts>> before = FactsOrNone(flags.out);
              if (!before.ok()) return before.status();
              Result<std::vector<TypeFacts>> after = FactsOrNone(made);
              if (!after.ok()) return after.status();
              return DiffTrees(before.value(), after.value(), types);
            }();
  if (!diffs.ok()) return diffs.status();
  const std::string text =
      flags.json ? DiffJson(diffs.value()) : DiffText(diffs.value(), flags.max_named);
  std::fputs(text.c_str(), stdout);
  return Status::Ok();
}

}  // namespace

Result<std::vector<TypeDiff>> ChangesSinceCommit(const fs::path& repo_dir, const std::string& rev,
                                                 const fs::path& tree,
                                                 const std::vector<std::string>& types,
                                                 const fs::path& made, const fs::path& scratch) {
  Result<fs::path> git = FindProgram("git");
  if (!git.ok()) return git.status();
  Result<std::string> top = Git(git.value(), repo_dir, {"rev-parse", "--show-toplevel"});
  if (!top.ok()) {
    return Status::InvalidInput(repo_dir.string() +
                                " is not a git repository: " + top.status().message());
  }
  const fs::path repo = fs::path(top.value().substr(0, top.value().find('\n')));
  std::vector<std::string> paths;
  paths.reserve(types.size());
  for (const std::string& t : types) paths.push_back((tree / t).string());
  Status extracted = ExtractCommitted(git.value(), repo, rev, paths, scratch);
  if (!extracted.ok()) return extracted;
  Result<std::vector<TypeFacts>> before = FactsOrNone(scratch / tree);
  if (!before.ok()) return before.status();
  Result<std::vector<TypeFacts>> after = FactsOrNone(made);
  if (!after.ok()) return after.status();
  return DiffTrees(before.value(), after.value(), types);
}

int DiffCommand(const DiffFlags& flags) {
  Status st = Diff(flags);
  return st.ok() ? kExitOk : Fail(st);
}

}  // namespace imgsweep
