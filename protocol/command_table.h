// The qemu-img commands a sweep may plan and a worker may run, as data: the
// table file commands/commands.json (built in), or one a user edits and
// names with --command-table. Per command it lists the output types, each
// with its argv template, e.g. "{binary} map --output=json {image}".
//
// The coordinator plans cells of the output types of the commands it was
// asked for; a worker runs a cell only when its command line is one of its
// table's templates with the image it checked in place of {image}, so no
// coordinator (or whoever speaks for one) can make it run anything else.
//
// Thread-safety: an immutable value once made.
#ifndef IMGSWEEP_PROTOCOL_COMMAND_TABLE_H_
#define IMGSWEEP_PROTOCOL_COMMAND_TABLE_H_

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace imgsweep {

// An output type of the contract's table and the arguments before the image.
struct OutputType {
  std::string name;               // "map-json"
  std::vector<std::string> args;  // {"map", "--output=json"}
  // The raw tree: <type>/<format>/<version>/<id>.* (map, measure), or
  // <type>/<version>/<id>.* (info, check).
  bool by_format = true;
  bool operator==(const OutputType&) const = default;
};

struct TableCommand {
  std::string name;  // the qemu-img subcommand: "map"
  bool by_format = true;  // the table's "layout": "by-format" or "flat"
  std::vector<OutputType> output_types;
};

class CommandTable {
 public:
  // kInvalidInput naming `origin` and the first thing wrong: not JSON, an
  // unknown or missing member, a name that is not a safe name or repeats
  // (output type names across the whole table), a template that does not
  // start with "{binary} <its command>", does not end with "{image}", or
  // holds another placeholder, an empty argument or one with a quote or a
  // NUL in it.
  static Result<CommandTable> Parse(std::string_view json, std::string_view origin);
  static Result<CommandTable> Load(const std::filesystem::path& file);
  // commands/commands.json as it was built in.
  static const CommandTable& BuiltIn();

  const std::vector<TableCommand>& commands() const { return commands_; }
  // The output types of the commands named, in table order. kInvalidInput
  // when none is named, one repeats or is not in the table.
  Result<std::vector<OutputType>> OutputTypesOf(const std::vector<std::string>& names) const;

  // OK when `args` are one output type's arguments followed by
  // "$TESTDATA_ROOT/<image_path>". Else kInvalidInput saying what differs.
  Status CheckCellArgs(const std::vector<std::string>& args, std::string_view image_path) const;
  // "map (map-human: map; map-json: map --output=json)", for messages.
  std::string Describe() const;

 private:
  std::vector<TableCommand> commands_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_COMMAND_TABLE_H_
