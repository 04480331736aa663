// `imgsweep commit`: the data commit that ends a sweep. It checks that the
// tree in the testdata repository is the store's, valid, and alone in the
// index, then commits exactly the swept types' folders with a message that
// says what the sweep was. It never pushes. Git runs as a command, through
// the process adapter.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "cli/git.h"
#include "cli/private_folder.h"
#include "sweep/sweep_state.h"
#include "tree/materializer.h"
#include "tree/profiles.h"
#include "tree/tree_check.h"
#include "tree/tree_diff.h"
#include "worker/subprocess.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

// Paths named in a refusal at most.
constexpr std::size_t kNamed = 5;
// Names in the diff of the message at most, per list.
constexpr std::size_t kDiffNamed = 12;

// Every regular file under `root`/`type`, relative to `root`, with its bytes.
std::map<fs::path, std::string> FilesOf(const fs::path& root, const std::string& type) {
  std::map<fs::path, std::string> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root / type, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_directory(ec)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    files[it->path().lexically_relative(root)] = bytes.str();
  }
  return files;
}

// The paths where the tree on disk and the store's differ, for one type.
std::vector<std::string> Differences(const fs::path& tree, const fs::path& made,
                                     const std::string& type) {
  const std::map<fs::path, std::string> have = FilesOf(tree, type);
  const std::map<fs::path, std::string> want = FilesOf(made, type);
  std::vector<std::string> differ;
  for (const auto& [path, bytes] : have) {
    auto w = want.find(path);
    if (w == want.end()) {
      differ.push_back(path.string() + " (not the sweep's)");
    } else if (w->second != bytes) {
      differ.push_back(path.string() + " (other bytes)");
    }
  }
  for (const auto& [path, bytes] : want) {
    if (have.count(path) == 0) differ.push_back(path.string() + " (missing)");
  }
  return differ;
}

std::string Listed(const std::vector<std::string>& items) {
  std::string text;
  for (std::size_t i = 0; i < items.size() && i < kNamed; ++i) text += "\n  " + items[i];
  if (items.size() > kNamed) text += "\n  ... and " + std::to_string(items.size() - kNamed) + " more";
  return text;
}

// What the sweep was, for the commit's message.
// `changes`: what it changes for the consumers, in words.
Result<std::string> Message(Store& store, const SweepState& state, const fs::path& made,
                            const std::string& tree_name, const std::string& changes) {
  const Plan& plan = state.plan;
  std::string types;
  for (const OutputType& t : plan.types()) types += (types.empty() ? "" : ", ") + t.name;
  Result<std::optional<std::string>> sweep_id = store.GetMeta("sweep_id");
  if (!sweep_id.ok()) return sweep_id.status();
  std::string m = tree_name + ": " + types + " of " + std::to_string(plan.versions().size()) +
                  " qemu-img versions\n\n";
  m += "Sweep " + sweep_id.value().value_or("(none)") + ": " +
       std::to_string(plan.versions().size()) + " versions (" + plan.versions().front() + " to " +
       plan.versions().back() + "), " + std::to_string(plan.images().size()) + " images, " +
       std::to_string(state.total.cells) + " cells, " + std::to_string(state.total.failed) +
       " failed.\n";
  m += "\nWhat changes for the consumers, against the parent commit:\n" + changes;
  for (const OutputType& t : plan.types()) {
    std::ifstream in(made / t.name / kVersionMapFile);
    std::ostringstream text;
    text << in.rdbuf();
    Result<VersionMap> map = ParseVersionMap(text.str());
    if (!map.ok()) return map.status();
    // Each profile and the versions it covers, in version order.
    std::map<std::string, std::vector<std::string>> covers;
    for (const auto& [version, profile] : map.value().version_to_profile) covers[profile].push_back(version);
    const std::size_t count = map.value().profiles.size();
    m += "\n" + t.name + ": " + std::to_string(count) + (count == 1 ? " profile\n" : " profiles\n");
    for (const auto& [profile, first] : map.value().profiles) {
      // Versions of one profile need not be neighbours: name them all, or
      // the first and last of many.
      const std::vector<std::string>& v = covers[profile];
      std::string named;
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (v.size() > kNamed && i == 1) {
          named += ", ... (" + std::to_string(v.size() - 2) + " more)";
          i = v.size() - 2;
          continue;
        }
        named += (i == 0 ? "" : ", ") + v[i];
      }
      m += "  " + profile + ": " + named + "\n";
    }
  }
  m += "\nBinaries (sha256):\n";
  for (const std::string& version : plan.versions()) {
    Result<std::optional<std::string>> digest = store.GetMeta("digest/" + version);
    if (!digest.ok()) return digest.status();
    m += "  " + version + " " + digest.value().value_or("(unknown)") + "\n";
  }
  return m;
}

// The swept types' folders of `tree` must validate and hold exactly what
// the store writes (`made`). `paths`: those folders, relative to the repo.
Status CheckTree(const CommitFlags& flags, const Plan& plan, const fs::path& tree,
                 const fs::path& made, std::vector<std::string>* paths) {
  std::vector<std::string> differ, violations;
  std::set<std::string> types;
  for (const OutputType& t : plan.types()) {
    for (const std::string& d : Differences(tree, made, t.name)) {
      differ.push_back((flags.tree / d).string());  // as the repository names it
    }
    paths->push_back((flags.tree / t.name).string());
    types.insert(t.name);
  }
  Result<std::vector<TypeFacts>> scanned = ScanTree(tree);
  if (!scanned.ok()) return scanned.status();
  for (const TypeFacts& facts : scanned.value()) {
    if (types.count(facts.type) == 0) continue;  // another command's tree
    for (std::string& v : CheckType(facts)) violations.push_back(std::move(v));
  }
  if (!violations.empty()) {
    return Status::InvalidInput("the tree at " + tree.string() +
                                " does not validate; nothing committed:" + Listed(violations));
  }
  if (!differ.empty()) {
    return Status::InvalidInput(
        "the swept folders hold changes the sweep did not make; nothing committed (imgsweep "
        "materialize --db " + flags.db.string() + " --out " + tree.string() +
        " writes the sweep's):" + Listed(differ));
  }
  return Status::Ok();
}

// Stages the swept folders and commits them with `message`, when nothing
// else is staged. Prints what it did.
Status StageAndCommit(const fs::path& git, const fs::path& repo, const fs::path& tree,
                      const std::vector<std::string>& paths, const fs::path& message_file,
                      const std::function<Result<std::string>()>& message) {
  Result<std::string> staged = Git(git, repo, {"diff", "--cached", "--name-only"});
  if (!staged.ok()) return staged.status();
  if (!staged.value().empty()) {
    std::vector<std::string> names;
    std::istringstream lines(staged.value());
    for (std::string line; std::getline(lines, line);) names.push_back(line);
    return Status::InvalidInput("other changes are staged in " + repo.string() +
                                "; commit or unstage them first (the data commit holds only "
                                "the swept folders):" + Listed(names));
  }
  std::vector<std::string> add = {"add", "--all", "--"};
  add.insert(add.end(), paths.begin(), paths.end());
  Result<std::string> added = Git(git, repo, add);
  if (!added.ok()) return added.status();
  Result<std::string> changed = Git(git, repo, {"diff", "--cached", "--name-only"});
  if (!changed.ok()) return changed.status();
  if (changed.value().empty()) {
    std::printf("imgsweep: nothing to commit: %s already holds this sweep\n", tree.c_str());
    return Status::Ok();
  }
  Result<std::string> text = message();
  if (!text.ok()) return text.status();
  std::ofstream(message_file) << text.value();
  Result<std::string> committed =
      Git(git, repo, {"commit", "--quiet", "--file", message_file.string()});
  if (!committed.ok()) return committed.status();
  Result<std::string> head = Git(git, repo, {"rev-parse", "--short", "HEAD"});
  if (!head.ok()) return head.status();
  const auto files = std::count(changed.value().begin(), changed.value().end(), '\n');
  std::printf("imgsweep: committed %ld changed files under %s as %s (not pushed)\n",
              static_cast<long>(files), tree.c_str(),
              head.value().substr(0, head.value().find('\n')).c_str());
  return Status::Ok();
}

Status Commit(const CommitFlags& flags) {
  Result<std::unique_ptr<Store>> opened = Store::Open(flags.db, Store::Mode::kReadOnly);
  if (!opened.ok()) return opened.status();
  Store& store = *opened.value();
  Result<SweepState> state = ReadSweepState(store);
  if (!state.ok()) return state.status();
  Result<fs::path> git = FindProgram("git");
  if (!git.ok()) return git.status();
  Result<fs::path> top = RepositoryTop(git.value(), flags.repo);
  if (!top.ok()) return top.status();
  const fs::path repo = top.value();
  const fs::path tree = repo / flags.tree;
  // What the store writes, to compare the tree on disk with.
  Result<std::unique_ptr<PrivateFolder>> scratch = PrivateFolder::Make();
  if (!scratch.ok()) return scratch.status();
  const fs::path made = scratch.value()->path() / "tree";
  Result<MaterializeSummary> written =
      Materialize(store, made, MaterializeOptions{flags.provenance, /*allow_partial=*/false});
  if (!written.ok()) return written.status();
  std::vector<std::string> paths;
  Status st = CheckTree(flags, state.value().plan, tree, made, &paths);
  if (!st.ok()) return st;
  const auto message = [&]() -> Result<std::string> {
    std::vector<std::string> types;
    for (const OutputType& t : state.value().plan.types()) types.push_back(t.name);
    Result<std::vector<TypeDiff>> changes = ChangesSinceCommit(
        repo, "HEAD", flags.tree, types, made, scratch.value()->path() / "before");
    if (!changes.ok()) return changes.status();
    return Message(store, state.value(), made, flags.tree.string(),
                   DiffText(changes.value(), kDiffNamed));
  };
  return StageAndCommit(git.value(), repo, tree, paths, scratch.value()->path() / "message",
                        message);
}

}  // namespace

int CommitCommand(const CommitFlags& flags) {
  Status st = Commit(flags);
  return st.ok() ? kExitOk : Fail(st);
}

}  // namespace imgsweep
