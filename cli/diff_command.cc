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

// The swept `types` of the tree at `before` against those of `made`.
Result<std::vector<TypeDiff>> DiffFolders(const fs::path& before, const fs::path& made,
                                          const std::vector<std::string>& types) {
  Result<std::vector<TypeFacts>> old_facts = FactsOrNone(before);
  if (!old_facts.ok()) return old_facts.status();
  Result<std::vector<TypeFacts>> new_facts = FactsOrNone(made);
  if (!new_facts.ok()) return new_facts.status();
  return DiffTrees(old_facts.value(), new_facts.value(), types);
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
          : DiffFolders(flags.out, made, types);
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
  Result<fs::path> repo = RepositoryTop(git.value(), repo_dir);
  if (!repo.ok()) return repo.status();
  std::vector<std::string> paths;
  paths.reserve(types.size());
  for (const std::string& t : types) paths.push_back((tree / t).string());
  Status extracted = ExtractCommitted(git.value(), repo.value(), rev, paths, scratch);
  if (!extracted.ok()) return extracted;
  return DiffFolders(scratch / tree, made, types);
}

int DiffCommand(const DiffFlags& flags) {
  Status st = Diff(flags);
  return st.ok() ? kExitOk : Fail(st);
}

}  // namespace imgsweep
