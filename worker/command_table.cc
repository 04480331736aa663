#include "worker/command_table.h"

#include <algorithm>
#include <array>
#include <set>

#include "protocol/messages.h"

namespace imgsweep {
namespace {

struct Command {
  std::string_view subcommand;
  std::vector<std::string_view> flags;
};

// Every command line a sweep plans (sweep/plan.cc's output types) must be
// here; nothing else is.
const std::array<Command, 1>& Table() {
  static const std::array<Command, 1> table = {{
      {"map", {"--output=human", "--output=json"}},
  }};
  return table;
}

}  // namespace

Status CheckCellArgs(const std::vector<std::string>& args, std::string_view image_path) {
  if (args.empty()) return Status::InvalidInput("the cell has no command line");
  const auto& table = Table();
  const auto command = std::find_if(table.begin(), table.end(), [&](const Command& c) {
    return c.subcommand == args[0];
  });
  if (command == table.end()) {
    return Status::InvalidInput("subcommand \"" + args[0] + "\" is not in this worker's table (" +
                                DescribeCommandTable() + ")");
  }
  const std::string image = std::string(kTestdataRootToken) + "/" + std::string(image_path);
  std::set<std::string_view> seen;
  bool has_image = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == image && !has_image) {
      has_image = true;
      continue;
    }
    const bool known = std::find(command->flags.begin(), command->flags.end(), arg) !=
                       command->flags.end();
    if (known && seen.insert(arg).second) continue;
    if (known) return Status::InvalidInput("argument \"" + arg + "\" is given twice");
    if (arg == image) return Status::InvalidInput("the image is given twice");
    return Status::InvalidInput("argument \"" + arg + "\" is neither a flag " + args[0] +
                                " allows here nor the image it checked (" + image + ")");
  }
  if (!has_image) return Status::InvalidInput("the command line does not name " + image);
  return Status::Ok();
}

std::string DescribeCommandTable() {
  std::string out;
  for (const Command& c : Table()) {
    if (!out.empty()) out += "; ";
    out += std::string(c.subcommand) + " (";
    for (std::size_t i = 0; i < c.flags.size(); ++i) {
      out += (i > 0 ? ", " : "") + std::string(c.flags[i]);
    }
    out += ")";
  }
  return out;
}

}  // namespace imgsweep
