#include "protocol/command_table.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "protocol/manifest.h"
#include "protocol/messages.h"
#include "protocol/version_name.h"

namespace imgsweep {
namespace {

using nlohmann::json;

constexpr int kTableFormat = 1;
constexpr std::string_view kBinary = "{binary}";
constexpr std::string_view kImage = "{image}";
constexpr std::string_view kStart = "start";    // a window's, as {start}
constexpr std::string_view kLength = "length";  // and {length}

// "map --output=json": arguments as a person types them, for messages.
std::string JoinArgs(std::vector<std::string>::const_iterator begin,
                     std::vector<std::string>::const_iterator end) {
  std::string line;
  for (auto it = begin; it != end; ++it) {
    if (!line.empty()) line += ' ';
    line += *it;
  }
  return line;
}

constexpr char kBuiltIn[] =
#include "command_table_builtin.inc"
    ;

// Names `where` in `origin` for the first thing wrong there.
class Reader {
 public:
  explicit Reader(std::string_view origin) : origin_(origin) {}
  Status Error(const std::string& where, const std::string& what) const {
    return Status::InvalidInput(std::string(origin_) + ": " + where + ": " + what);
  }
  // Every member of `object` is one of `known`, and each of `required` is there.
  Status Members(const json& object, const std::string& where,
                 const std::vector<std::string_view>& known,
                 const std::vector<std::string_view>& required) const {
    if (!object.is_object()) return Error(where, "is not an object");
    for (const auto& [key, value] : object.items()) {
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        return Error(where, "unknown member \"" + key + "\"");
      }
    }
    for (std::string_view key : required) {
      if (!object.contains(key)) return Error(where, "member \"" + std::string(key) + "\" is missing");
    }
    return Status::Ok();
  }
  Result<std::string> Name(const json& value, const std::string& where) const {
    if (!value.is_string()) return Error(where, "is not a string");
    const std::string name = value.get<std::string>();
    if (!IsSafeName(name)) return Error(where, "\"" + name + "\" is not a name (letters, digits, . _ -)");
    return name;
  }

 private:
  std::string_view origin_;
};

// "{target}" -> "target"; "" when `arg` is no placeholder.
std::string_view PlaceholderOf(std::string_view arg) {
  if (arg.size() < 3 || arg.front() != '{' || arg.back() != '}') return {};
  return arg.substr(1, arg.size() - 2);
}

const Axis* FindAxis(const std::vector<Axis>& axes, std::string_view name) {
  for (const Axis& axis : axes) {
    if (axis.name == name) return &axis;
  }
  return nullptr;
}

// Whether `name` is a placeholder the numbers of a window fill.
bool IsWindowBound(std::string_view name, bool windows) {
  return windows && (name == kStart || name == kLength);
}

// "{binary} map --output=json {image}" -> {"map", "--output=json"}; an axis
// of the command may stand as a whole argument ("-O {target}"), and each
// must; with windows, {start} and {length} too, instead of {window}.
Result<std::vector<std::string>> ParseTemplate(const Reader& reader, const std::string& where,
                                               const json& value, const TableCommand& command,
                                               const std::vector<Axis>& axes, bool windows) {
  if (!value.is_string()) return reader.Error(where, "is not a string");
  const std::string text = value.get<std::string>();
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string word; in >> word;) words.push_back(word);
  if (words.size() < 3 || words[0] != kBinary || words[1] != command.subcommand) {
    return reader.Error(where, "\"" + text + "\" does not start with \"{binary} " + command.subcommand + "\"");
  }
  if (words.back() != kImage) {
    return reader.Error(where, "\"" + text + "\" does not end with \"{image}\"");
  }
  std::vector<std::string> args(words.begin() + 1, words.end() - 1);
  std::set<std::string_view> used;
  for (const std::string& arg : args) {
    const std::string_view axis = PlaceholderOf(arg);
    const bool window_axis = windows && axis == kWindowAxis;
    if (!axis.empty() && !window_axis && (FindAxis(axes, axis) != nullptr || IsWindowBound(axis, windows))) {
      if (!used.insert(axis).second) {
        return reader.Error(where, "axis " + arg + " stands twice in \"" + text + "\"");
      }
      continue;
    }
    if (arg.find_first_of("{}") != std::string::npos) {
      return reader.Error(where, "\"" + arg + "\" is not a placeholder this table knows ({binary}, {image}" +
                                     std::string(axes.empty() ? "" : ", its command's axes") +
                                     std::string(windows ? ", {start}, {length}" : "") + ")");
    }
    if (arg.find_first_of("\"'\\`$") != std::string::npos) {
      return reader.Error(where, "argument \"" + arg + "\" holds a quote, a backslash or a $");
    }
  }
  for (const Axis& axis : axes) {
    if (!used.contains(axis.name) && !(windows && axis.name == kWindowAxis)) {
      return reader.Error(where, "\"" + text + "\" does not use axis {" + axis.name + "}");
    }
  }
  for (std::string_view bound : {kStart, kLength}) {
    if (windows && !used.contains(bound)) {
      return reader.Error(where, "\"" + text + "\" does not use {" + std::string(bound) +
                                     "}, which its command's windows fill");
    }
  }
  return args;
}

// A command's "axes": [{"name": "target", "values": ["raw", "qcow2"]}].
Result<std::vector<Axis>> ParseAxes(const Reader& reader, const std::string& where, const json& value) {
  if (!value.is_array() || value.empty()) return reader.Error(where, "is not a list of axes");
  std::vector<Axis> axes;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (Status st = reader.Members(value[i], at, {"name", "values"}, {"name", "values"}); !st.ok()) return st;
    Result<std::string> name = reader.Name(value[i]["name"], at + ".name");
    if (!name.ok()) return name.status();
    if (name.value() == "binary" || name.value() == "image" || FindAxis(axes, name.value()) != nullptr) {
      return reader.Error(at + ".name", "axis \"" + name.value() + "\" is listed twice or is a built-in placeholder");
    }
    const json& values = value[i]["values"];
    if (!values.is_array() || values.empty()) return reader.Error(at + ".values", "is not a list of values");
    Axis& axis = axes.emplace_back(Axis{name.value(), {}});
    for (std::size_t j = 0; j < values.size(); ++j) {
      Result<std::string> v = reader.Name(values[j], at + ".values[" + std::to_string(j) + "]");
      if (!v.ok()) return v.status();
      if (std::find(axis.values.begin(), axis.values.end(), v.value()) != axis.values.end()) {
        return reader.Error(at + ".values", "\"" + v.value() + "\" is listed twice");
      }
      axis.values.push_back(v.value());
    }
  }
  return axes;
}

// A command's "windows": [{"name": "mid", "start": "size/4", "length":
// "size/2"}], kept as `windows` and as the axis "window" after `axes`.
Status ParseWindows(const Reader& reader, const std::string& where, const json& value,
                    std::vector<Window>* windows, std::vector<Axis>* axes) {
  if (!value.is_array() || value.empty()) return reader.Error(where, "is not a list of windows");
  if (FindAxis(*axes, kWindowAxis) != nullptr) {
    return reader.Error(where, "the command also has an axis named \"window\"");
  }
  Axis axis{std::string(kWindowAxis), {}};
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (Status st = reader.Members(value[i], at, {"name", "start", "length"}, {"name", "start", "length"});
        !st.ok()) {
      return st;
    }
    Result<std::string> name = reader.Name(value[i]["name"], at + ".name");
    if (!name.ok()) return name.status();
    if (std::find(axis.values.begin(), axis.values.end(), name.value()) != axis.values.end()) {
      return reader.Error(at + ".name", "window \"" + name.value() + "\" is listed twice");
    }
    Window window{name.value(), {}, {}};
    for (auto [member, expr] : {std::pair{"start", &window.start}, std::pair{"length", &window.length}}) {
      const json& text = value[i][member];
      Result<SizeExpr> parsed = text.is_string() ? SizeExpr::Parse(text.get<std::string>())
                                                 : Status::InvalidInput(text.dump() + " is not a string");
      if (!parsed.ok()) return reader.Error(at + "." + member, parsed.status().message());
      *expr = std::move(parsed).value();
    }
    axis.values.push_back(window.name);
    windows->push_back(std::move(window));
  }
  axes->push_back(std::move(axis));
  return Status::Ok();
}

// A command's "formats": ["qcow2", "raw"], kept lower case.
Result<std::vector<std::string>> ParseFormats(const Reader& reader, const std::string& where,
                                              const json& value) {
  if (!value.is_array() || value.empty()) return reader.Error(where, "is not a list of formats");
  std::vector<std::string> formats;
  for (std::size_t i = 0; i < value.size(); ++i) {
    Result<std::string> f = reader.Name(value[i], where + "[" + std::to_string(i) + "]");
    if (!f.ok()) return f.status();
    std::string lower = f.value();
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (std::find(formats.begin(), formats.end(), lower) != formats.end()) {
      return reader.Error(where, "\"" + f.value() + "\" is listed twice");
    }
    formats.push_back(std::move(lower));
  }
  return formats;
}

// One of `command`'s output types; `type_names` holds the table's so far.
Result<OutputType> ParseOutputType(const Reader& reader, const std::string& at, const json& value,
                                   const TableCommand& command, const std::vector<Axis>& axes,
                                   const std::vector<Window>& windows,
                                   const std::vector<std::string>& formats,
                                   std::set<std::string>* type_names) {
  if (Status st = reader.Members(value, at, {"name", "argv", "since"}, {"name", "argv"}); !st.ok()) {
    return st;
  }
  Result<std::string> name = reader.Name(value["name"], at + ".name");
  if (!name.ok()) return name.status();
  if (!type_names->insert(name.value()).second) {
    return reader.Error(at + ".name", "output type \"" + name.value() + "\" is listed twice");
  }
  std::string since;
  if (value.contains("since")) {
    const json& v = value["since"];
    if (!v.is_string() || !IsVersionName(v.get<std::string>())) {
      return reader.Error(at + ".since", v.dump() + " is not a version name (X.Y.Z)");
    }
    since = v.get<std::string>();
  }
  Result<std::vector<std::string>> args =
      ParseTemplate(reader, at + ".argv", value["argv"], command, axes, !windows.empty());
  if (!args.ok()) return args.status();
  return OutputType{name.value(), std::move(args).value(), command.by_format, axes, formats, since, windows};
}

}  // namespace

Result<CommandTable> CommandTable::Parse(std::string_view text, std::string_view origin) {
  const Reader reader(origin);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    return Status::InvalidInput(std::string(origin) + ": not JSON: " + e.what());
  }
  if (Status st = reader.Members(root, "the table", {"table_format", "commands"},
                                 {"table_format", "commands"});
      !st.ok()) {
    return st;
  }
  if (!root["table_format"].is_number_integer() || root["table_format"].get<int>() != kTableFormat) {
    return reader.Error("table_format", root["table_format"].dump() + " is not " +
                                            std::to_string(kTableFormat));
  }
  const json& commands = root["commands"];
  if (!commands.is_array() || commands.empty()) return reader.Error("commands", "is not a list of commands");
  CommandTable table;
  table.text_ = std::string(text);
  std::set<std::string> command_names;
  std::set<std::string> type_names;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    const std::string where = "commands[" + std::to_string(i) + "]";
    if (Status st = reader.Members(commands[i], where,
                                   {"name", "subcommand", "layout", "formats", "axes", "windows", "output_types"},
                                   {"name", "layout", "output_types"});
        !st.ok()) {
      return st;
    }
    Result<std::string> name = reader.Name(commands[i]["name"], where + ".name");
    if (!name.ok()) return name.status();
    if (!command_names.insert(name.value()).second) {
      return reader.Error(where + ".name", "command \"" + name.value() + "\" is listed twice");
    }
    TableCommand& command = table.commands_.emplace_back();
    command.name = name.value();
    command.subcommand = name.value();
    if (commands[i].contains("subcommand")) {
      Result<std::string> sub = reader.Name(commands[i]["subcommand"], where + ".subcommand");
      if (!sub.ok()) return sub.status();
      command.subcommand = sub.value();
    }
    const json& layout = commands[i]["layout"];
    if (layout != "by-format" && layout != "flat") {
      return reader.Error(where + ".layout", layout.dump() + " is neither \"by-format\" nor \"flat\"");
    }
    command.by_format = layout == "by-format";
    std::vector<Axis> axes;
    if (commands[i].contains("axes")) {
      Result<std::vector<Axis>> parsed = ParseAxes(reader, where + ".axes", commands[i]["axes"]);
      if (!parsed.ok()) return parsed.status();
      axes = std::move(parsed).value();
    }
    std::vector<Window> windows;
    if (commands[i].contains("windows")) {
      Status st = ParseWindows(reader, where + ".windows", commands[i]["windows"], &windows, &axes);
      if (!st.ok()) return st;
    }
    std::vector<std::string> formats;
    if (commands[i].contains("formats")) {
      Result<std::vector<std::string>> parsed = ParseFormats(reader, where + ".formats", commands[i]["formats"]);
      if (!parsed.ok()) return parsed.status();
      formats = std::move(parsed).value();
    }
    const json& types = commands[i]["output_types"];
    if (!types.is_array() || types.empty()) {
      return reader.Error(where + ".output_types", "is not a list of output types");
    }
    for (std::size_t j = 0; j < types.size(); ++j) {
      Result<OutputType> type = ParseOutputType(reader, where + ".output_types[" + std::to_string(j) + "]",
                                                types[j], command, axes, windows, formats, &type_names);
      if (!type.ok()) return type.status();
      command.output_types.push_back(std::move(type).value());
    }
  }
  return table;
}

Result<CommandTable> CommandTable::Load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::InvalidInput("command table " + file.string() + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), "command table " + file.string());
}

const CommandTable& CommandTable::BuiltIn() {
  // Checked by the build's tests; a broken built-in table is a build defect.
  static const CommandTable kTable = [] {
    Result<CommandTable> table = Parse(kBuiltIn, "the built-in command table");
    return table.ok() ? std::move(table).value() : CommandTable();
  }();
  return kTable;
}

Result<std::vector<OutputType>> CommandTable::OutputTypesOf(const std::vector<std::string>& names) const {
  if (names.empty()) return Status::InvalidInput("--commands: no command named");
  std::set<std::string> wanted;
  for (const std::string& name : names) {
    const bool known = std::any_of(commands_.begin(), commands_.end(),
                                   [&](const TableCommand& c) { return c.name == name; });
    if (!known) {
      std::string all;
      for (const TableCommand& c : commands_) {
        if (!all.empty()) all += ", ";
        all += c.name;
      }
      return Status::InvalidInput("--commands: \"" + name + "\" is not a command of the table (" + all + ")");
    }
    if (!wanted.insert(name).second) {
      return Status::InvalidInput("--commands: \"" + name + "\" is named twice");
    }
  }
  std::vector<OutputType> types;
  for (const TableCommand& c : commands_) {
    if (wanted.contains(c.name)) types.insert(types.end(), c.output_types.begin(), c.output_types.end());
  }
  return types;
}

namespace {

// Whether `args` (the image left off) are `type`'s: an axis placeholder
// matches any of its values, a window's bound any number, a literal itself.
bool MatchesType(const OutputType& type, std::vector<std::string>::const_iterator begin,
                 std::vector<std::string>::const_iterator end) {
  const auto matches = [&type](const std::string& want, const std::string& got) {
    const std::string_view placeholder = PlaceholderOf(want);
    if (IsWindowBound(placeholder, !type.windows.empty())) return IsSizeValue(got);
    const Axis* axis = FindAxis(type.axes, placeholder);
    if (axis == nullptr) return want == got;
    return std::find(axis->values.begin(), axis->values.end(), got) != axis->values.end();
  };
  return std::equal(type.args.begin(), type.args.end(), begin, end, matches);
}

}  // namespace

Status CommandTable::CheckCellArgs(const std::vector<std::string>& args,
                                   std::string_view image_path) const {
  if (args.empty()) return Status::InvalidInput("the cell has no command line");
  const std::string image = std::string(kTestdataRootToken) + "/" + std::string(image_path);
  const auto same_subcommand = [&](const TableCommand& c) { return c.subcommand == args[0]; };
  if (std::none_of(commands_.begin(), commands_.end(), same_subcommand)) {
    return Status::InvalidInput("subcommand \"" + args[0] + "\" is not in this worker's table (" +
                                Describe() + ")");
  }
  if (args.back() != image) {
    return Status::InvalidInput("the command line does not end with the image it checked (" + image + ")");
  }
  for (const TableCommand& command : commands_) {
    if (!same_subcommand(command)) continue;
    for (const OutputType& type : command.output_types) {
      if (MatchesType(type, args.begin(), args.end() - 1)) return Status::Ok();
    }
  }
  const std::string line = JoinArgs(args.begin(), args.end() - 1);
  return Status::InvalidInput("\"" + line + "\" is not an output type of this worker's table (" +
                              Describe() + ")");
}

bool OutputType::RunsOn(std::string_view format) const {
  if (formats.empty()) return true;
  return std::any_of(formats.begin(), formats.end(), [format](const std::string& f) {
    return std::equal(f.begin(), f.end(), format.begin(), format.end(), [](char a, char b) {
      return a == std::tolower(static_cast<unsigned char>(b));
    });
  });
}

bool OutputType::Supports(std::string_view version) const {
  return since.empty() || !VersionLess(version, since);
}

std::size_t OutputType::combos() const {
  std::size_t n = 1;
  for (const Axis& axis : axes) n *= axis.values.size();
  return n;
}

std::vector<std::string_view> OutputType::ValuesOf(std::size_t combo) const {
  std::vector<std::string_view> values(axes.size());
  for (std::size_t a = axes.size(); a-- > 0;) {  // the first axis slowest
    values[a] = axes[a].values[combo % axes[a].values.size()];
    combo /= axes[a].values.size();
  }
  return values;
}

std::vector<std::string> OutputType::ArgsOf(std::size_t combo,
                                            std::optional<std::uint64_t> virtual_size) const {
  if (axes.empty()) return args;
  const std::vector<std::string_view> values = ValuesOf(combo);
  std::vector<std::string> out = args;
  // The window is the last axis: its value's index is the combo's last digit.
  const Window* window = windows.empty() ? nullptr : &windows[combo % windows.size()];
  for (std::string& arg : out) {
    const std::string_view axis_name = PlaceholderOf(arg);
    if (window != nullptr && IsWindowBound(axis_name, true)) {
      const SizeExpr& expr = axis_name == kStart ? window->start : window->length;
      arg = std::to_string(expr.Of(virtual_size.value_or(0)));
      continue;
    }
    for (std::size_t a = 0; a < axes.size() && !axis_name.empty(); ++a) {
      if (axes[a].name == axis_name) {
        arg = values[a];
        break;
      }
    }
  }
  return out;
}

std::string OutputType::SuffixOf(std::size_t combo) const {
  std::string suffix;
  for (std::string_view value : ValuesOf(combo)) {
    suffix += "__";
    suffix += value;
  }
  return suffix;
}

std::string CommandTable::Describe() const {
  std::string out;
  for (const TableCommand& c : commands_) {
    if (!out.empty()) out += "; ";
    out += c.name + " (";
    for (std::size_t i = 0; i < c.output_types.size(); ++i) {
      const std::vector<std::string>& args = c.output_types[i].args;
      if (i > 0) out += "; ";
      out += c.output_types[i].name;
      out += ": ";
      out += JoinArgs(args.begin(), args.end());
    }
    out += ")";
  }
  return out;
}

}  // namespace imgsweep
