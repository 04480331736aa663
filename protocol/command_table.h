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

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/size_expr.h"
#include "protocol/status.h"

namespace imgsweep {

// An axis of a command: one cell per value, for every image, the value in
// place of "{<name>}" in the arguments and "__<value>" after the image id
// (measure's "-O {target}": "cirros__raw", "cirros__qcow2").
struct Axis {
  std::string name;                 // "target"
  std::vector<std::string> values;  // {"raw", "qcow2"}
  bool operator==(const Axis&) const = default;
};

// A window of `qemu-img map --start-offset {start} --max-length {length}`
// ("mid": size/4 and size/2). A command's windows are its last axis,
// "window", whose values are their names; their numbers come from each
// image's virtual size.
struct Window {
  std::string name;
  SizeExpr start;
  SizeExpr length;
  bool operator==(const Window&) const = default;
};
inline constexpr std::string_view kWindowAxis = "window";

// An output type of the contract's table and the arguments before the image.
struct OutputType {
  std::string name;               // "map-json"
  std::vector<std::string> args;  // {"map", "--output=json"}; "{target}" for an axis
  // The raw tree: <type>/<format>/<version>/<id>.* (map, measure), or
  // <type>/<version>/<id>.* (info, check).
  bool by_format = true;
  std::vector<Axis> axes;            // the command's; none: one cell per image
  std::vector<std::string> formats;  // the images' formats it runs on; none: all
  // The first release with its flags ("10.0.0"); older ones get an
  // "unsupported" outcome instead of a run. Empty: every release.
  std::string since = {};
  std::vector<Window> windows = {};  // the "window" axis's, last of `axes`
  bool operator==(const OutputType&) const = default;

  // Whether `version` (a version name) runs it.
  bool Supports(std::string_view version) const;

  // Whether it runs on an image of `format` (the manifest's, any case).
  bool RunsOn(std::string_view format) const;
  // The number of axis value combinations (1 with no axis), and combination
  // `combo`'s arguments and id suffix, first axis slowest.
  std::size_t combos() const;
  std::vector<std::string_view> ValuesOf(std::size_t combo) const;  // one per axis
  // With windows, `virtual_size` is the image's; without, it is not read.
  std::vector<std::string> ArgsOf(std::size_t combo,
                                  std::optional<std::uint64_t> virtual_size = std::nullopt) const;
  std::string SuffixOf(std::size_t combo) const;
};

struct TableCommand {
  std::string name;        // what --commands names: "map", "map-window"
  std::string subcommand;  // the qemu-img subcommand: "map"
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
  // NUL in it; an axis with no value, a repeated value, or that a template
  // does not use as a whole argument; an empty or repeated format; a
  // "since" that is not a version name; a window whose name repeats or
  // whose start or length is no size expression, or templates of a command
  // with windows that do not use {start} and {length} as whole arguments.
  static Result<CommandTable> Parse(std::string_view json, std::string_view origin);
  static Result<CommandTable> Load(const std::filesystem::path& file);
  // commands/commands.json as it was built in.
  static const CommandTable& BuiltIn();

  const std::vector<TableCommand>& commands() const { return commands_; }
  // The JSON it was parsed from, as a worker announces it in its hello.
  const std::string& text() const { return text_; }
  // The output types of the commands named, in table order. kInvalidInput
  // when none is named, one repeats or is not in the table.
  Result<std::vector<OutputType>> OutputTypesOf(const std::vector<std::string>& names) const;

  // OK when `args` are one output type's arguments (an axis placeholder
  // holding one of its values, {start} and {length} a decimal number)
  // followed by "$TESTDATA_ROOT/<image_path>".
  // Else kInvalidInput saying what differs.
  Status CheckCellArgs(const std::vector<std::string>& args, std::string_view image_path) const;
  // "map (map-human: map; map-json: map --output=json)", for messages.
  std::string Describe() const;

 private:
  std::vector<TableCommand> commands_;
  std::string text_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_COMMAND_TABLE_H_
