// What main.cc and offline_flags.cc share of the command line: a subcommand
// as CLI11 builds it, and the flag groups more than one command takes.
// Internal to the imgsweep binary.
#ifndef IMGSWEEP_CLI_FLAGS_H_
#define IMGSWEEP_CLI_FLAGS_H_

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

#include "tree/materializer.h"

namespace imgsweep::flags {

// A subcommand: its CLI11 node and what runs it once the flags are parsed.
struct Command {
  CLI::App* app;
  std::function<int()> run;
};

void AddTreeFlags(CLI::App* app, MaterializeOptions* options);

// materialize, validate, report, profiles, commit, diff.
std::vector<Command> AddOffline(CLI::App& app);

}  // namespace imgsweep::flags

#endif  // IMGSWEEP_CLI_FLAGS_H_
