// The flags of the commands that read a store or a tree and run nothing:
// materialize, validate, report, profiles, commit and diff.
#include <memory>
#include <utility>

#include "cli/commands.h"
#include "cli/flags.h"

namespace imgsweep::flags {

void AddTreeFlags(CLI::App* app, MaterializeOptions* options) {
  app->add_flag("--provenance", options->provenance,
                "Add duration, worker and host to meta.json (the tree then differs per run)");
  app->add_flag("--allow-partial", options->allow_partial,
                "Write the tree even when cells have no outcome: their files are absent and a "
                "version without every image is left out of the profiles");
}

namespace {

Command AddCommit(CLI::App& app) {
  auto flags = std::make_shared<CommitFlags>();
  CLI::App* cmd = app.add_subcommand(
      "commit",
      "Commits the sweep's tree in the testdata repository: one commit holding exactly the "
      "changes under the swept output types' folders, with a message that says what the sweep "
      "was. Refuses when other changes are staged, when the tree does not validate, or when "
      "those folders hold anything the store would not write. Never pushes.\nExample: "
      "imgsweep commit --db imgsweep.db --repo ../testdata");
  cmd->add_option("--db", flags->db, "RocksDB store")->required();
  cmd->add_option("--repo", flags->repo, "The testdata git repository")->required();
  cmd->add_option("--tree", flags->tree,
                  "The tree's folder inside the repository (default expected-outputs)");
  cmd->add_flag("--provenance", flags->provenance, "The tree was written with --provenance");
  return {cmd, [flags] { return CommitCommand(*flags); }};
}

Command AddDiff(CLI::App& app) {
  auto flags = std::make_shared<DiffFlags>();
  CLI::App* cmd = app.add_subcommand(
      "diff",
      "What the store's tree changes for the consumers, against the tree a testdata repository "
      "holds at a commit (--repo) or a tree on disk (--out): per output type, the versions and "
      "images added and removed, the profile boundaries that moved, and the images whose "
      "expected output (stdout or return code) changed and at which versions. In words, or "
      "--json.\nExample: imgsweep diff --db imgsweep.db --repo ../testdata");
  cmd->add_option("--db", flags->db, "RocksDB store")->required();
  CLI::Option* repo = cmd->add_option("--repo", flags->repo, "The testdata git repository");
  cmd->add_option("--rev", flags->rev, "The commit to compare with (default HEAD)")->needs(repo);
  cmd->add_option("--tree", flags->tree,
                  "The tree's folder inside the repository (default expected-outputs)")
      ->needs(repo);
  cmd->add_option("--out", flags->out, "A tree on disk to compare with, instead of a commit")
      ->excludes(repo);
  cmd->add_option("--output-type", flags->output_type, "Only this output type (e.g. map-json)");
  cmd->add_flag("--json", flags->json, "One JSON document, every list whole");
  cmd->add_flag("--allow-partial", flags->allow_partial,
                "Compare even when cells have no outcome (their files count as absent)");
  return {cmd, [flags] { return DiffCommand(*flags); }};
}

}  // namespace

std::vector<Command> AddOffline(CLI::App& app) {
  std::vector<Command> commands;
  auto mat = std::make_shared<std::pair<std::filesystem::path, std::filesystem::path>>();
  auto mat_tree = std::make_shared<MaterializeOptions>();
  CLI::App* mat_cmd = app.add_subcommand(
      "materialize",
      "Rewrites the tree from the store without running anything.\n"
      "Example: imgsweep materialize --db imgsweep.db --out expected-outputs");
  mat_cmd->add_option("--db", mat->first, "RocksDB store")->required();
  mat_cmd->add_option("--out", mat->second, "Where the tree is written")->required();
  AddTreeFlags(mat_cmd, mat_tree.get());
  commands.push_back({mat_cmd, [mat, mat_tree] {
                        return MaterializeCommand(mat->first, mat->second, *mat_tree);
                      }});

  auto validate_out = std::make_shared<std::filesystem::path>();
  CLI::App* validate_cmd = app.add_subcommand(
      "validate",
      "Checks a tree on disk against the contract: every .stdout.txt as long as its meta's "
      "stdout_bytes, every version in version-map.json and printing what its profile holds, "
      "every profile folder holding every image, no two profiles alike. Prints each "
      "violation; exit 1 when there is any.\nExample: imgsweep validate --out expected-outputs");
  validate_cmd->add_option("--out", *validate_out, "The tree")->required();
  commands.push_back({validate_cmd, [validate_out] { return ValidateCommand(*validate_out); }});

  auto report = std::make_shared<std::pair<std::filesystem::path, std::filesystem::path>>();
  CLI::App* report_cmd = app.add_subcommand(
      "report",
      "Writes one self-contained HTML page (no network) of a stored sweep: per output type a "
      "matrix of images (by format) x versions (by profile), each cell coloured by which of "
      "its image's outputs it printed, failed and timed-out cells marked; click a cell for its "
      "output and the diff against the previous version.\nExample: imgsweep report --db "
      "imgsweep.db --out report.html");
  report_cmd->add_option("--db", report->first, "RocksDB store")->required();
  report_cmd->add_option("--out", report->second, "The HTML file to write")->required();
  commands.push_back({report_cmd, [report] {
                        return ReportCommand(report->first, report->second);
                      }});

  auto profiles_db = std::make_shared<std::filesystem::path>();
  auto profiles = std::make_shared<ReportOptions>();
  CLI::App* profiles_cmd = app.add_subcommand(
      "profiles",
      "Explains the profiles of a stored sweep: for each boundary between two profiles, how "
      "many images differ, the JSON fields added or removed and short diffs; the images that "
      "never differ; the images that alone separate two profiles.\nExample: imgsweep profiles "
      "--db imgsweep.db --output-type map-json");
  profiles_cmd->add_option("--db", *profiles_db, "RocksDB store")->required();
  profiles_cmd->add_option("--output-type", profiles->type, "Only this output type, e.g. map-json");
  profiles_cmd->add_option("--diffs", profiles->diffs, "Images shown with a diff per boundary (default 3)")
      ->check(CLI::Range(0, 1000));
  commands.push_back({profiles_cmd, [profiles_db, profiles] {
                        return ProfilesCommand(*profiles_db, *profiles);
                      }});
  commands.push_back(AddCommit(app));
  commands.push_back(AddDiff(app));
  return commands;
}

}  // namespace imgsweep::flags
