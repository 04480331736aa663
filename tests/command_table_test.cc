#include "protocol/command_table.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "sweep/plan.h"

namespace imgsweep {
namespace {

std::string OneType(const std::string& type) {
  return R"({"table_format": 1, "commands": [{"name": "map", "layout": "by-format", "output_types": [)" +
         type + "]}]}";
}

std::string ParseError(const std::string& json) {
  Result<CommandTable> table = CommandTable::Parse(json, "t.json");
  return table.ok() ? "parsed" : table.status().message();
}

// map moved into the table unchanged: the same names and arguments, so a
// plan (and every cache key and tree made from it) is what it was.
TEST(CommandTable, TheBuiltInTableHoldsMapAsItWasHardWired) {
  const CommandTable& table = CommandTable::BuiltIn();
  ASSERT_GE(table.commands().size(), 1u);
  EXPECT_EQ(table.commands()[0].name, "map");
  const std::vector<OutputType> expected = {{"map-human", {"map"}, true, {}, {}},
                                            {"map-json", {"map", "--output=json"}, true, {}, {}}};
  EXPECT_EQ(table.commands()[0].output_types, expected);
  EXPECT_EQ(MapOutputTypes(), expected);
}

// The contract's names and layouts for the other read-only commands.
TEST(CommandTable, TheBuiltInTableHasInfoAndCheckAsTheContractNamesThem) {
  Result<std::vector<OutputType>> types = CommandTable::BuiltIn().OutputTypesOf({"info", "check"});
  ASSERT_TRUE(types.ok()) << types.status().message();
  const std::vector<OutputType> expected = {
      {"qemu-img-human", {"info"}, false, {}, {}},
      {"qemu-img-json", {"info", "--output=json"}, false, {}, {}},
      {"check-human", {"check"}, false, {}, {}},
      {"check-json", {"check", "--output=json"}, false, {}, {}}};
  EXPECT_EQ(types.value(), expected);
}

// The file in the repository is the one built in.
TEST(CommandTable, TheRepositorysFileLoadsAndEqualsTheBuiltInTable) {
  Result<CommandTable> file = CommandTable::Load(IMGSWEEP_SOURCE_DIR "/commands/commands.json");
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file.value().Describe(), CommandTable::BuiltIn().Describe());
}

TEST(CommandTable, PicksTheOutputTypesOfTheCommandsNamed) {
  Result<CommandTable> table = CommandTable::Parse(
      R"({"table_format": 1, "commands": [
           {"name": "map", "layout": "by-format", "output_types": [
             {"name": "map-json", "argv": "{binary} map --output=json {image}"}]},
           {"name": "info", "layout": "flat", "output_types": [
             {"name": "info-human", "argv": "{binary} info {image}"},
             {"name": "info-json", "argv": "{binary}   info --output=json   {image}"}]}]})",
      "t.json");
  ASSERT_TRUE(table.ok()) << table.status().message();
  Result<std::vector<OutputType>> types = table.value().OutputTypesOf({"info", "map"});
  ASSERT_TRUE(types.ok()) << types.status().message();
  const std::vector<OutputType> expected = {{"map-json", {"map", "--output=json"}, true, {}, {}},
                                            {"info-human", {"info"}, false, {}, {}},
                                            {"info-json", {"info", "--output=json"}, false, {}, {}}};
  EXPECT_EQ(types.value(), expected);  // table order, whatever the order asked
  EXPECT_EQ(table.value().OutputTypesOf({"check"}).status().message(),
            "--commands: \"check\" is not a command of the table (map, info)");
  EXPECT_EQ(table.value().OutputTypesOf({"map", "map"}).status().message(),
            "--commands: \"map\" is named twice");
  EXPECT_EQ(table.value().OutputTypesOf({}).status().message(), "--commands: no command named");
}

TEST(CommandTable, RefusesABadTableNamingWhatIsWrong) {
  EXPECT_EQ(ParseError("{").rfind("t.json: not JSON: ", 0), 0u) << ParseError("{");
  EXPECT_EQ(ParseError(R"({"table_format": 2, "commands": []})"), "t.json: table_format: 2 is not 1");
  EXPECT_EQ(ParseError(R"({"table_format": 1})"), "t.json: the table: member \"commands\" is missing");
  EXPECT_EQ(ParseError(R"({"table_format": 1, "commands": [], "x": 1})"),
            "t.json: the table: unknown member \"x\"");
  EXPECT_EQ(ParseError(R"({"table_format": 1, "commands": []})"),
            "t.json: commands: is not a list of commands");
  EXPECT_EQ(ParseError(R"({"table_format": 1, "commands": [{"name": "map", "layout": "flat"}]})"),
            "t.json: commands[0]: member \"output_types\" is missing");
  EXPECT_EQ(ParseError(R"({"table_format": 1, "commands": [{"name": "map", "output_types": []}]})"),
            "t.json: commands[0]: member \"layout\" is missing");
  EXPECT_EQ(ParseError(R"({"table_format": 1, "commands": [
                           {"name": "map", "layout": "by-version", "output_types": []}]})"),
            "t.json: commands[0].layout: \"by-version\" is neither \"by-format\" nor \"flat\"");
  EXPECT_EQ(ParseError(R"({"table_format": 1, "commands": [
                           {"name": "map", "layout": "flat", "output_types": []}]})"),
            "t.json: commands[0].output_types: is not a list of output types");
  EXPECT_EQ(ParseError(R"({"table_format": 1, "commands": [
                           {"name": "m/p", "layout": "flat", "output_types": []}]})"),
            "t.json: commands[0].name: \"m/p\" is not a name (letters, digits, . _ -)");
  EXPECT_EQ(ParseError(OneType(R"({"name": "a", "argv": "{binary} info {image}"})")),
            "t.json: commands[0].output_types[0].argv: \"{binary} info {image}\" does not start "
            "with \"{binary} map\"");
  EXPECT_EQ(ParseError(OneType(R"({"name": "a", "argv": "{binary} map {image} --x"})")),
            "t.json: commands[0].output_types[0].argv: \"{binary} map {image} --x\" does not end "
            "with \"{image}\"");
  EXPECT_EQ(ParseError(OneType(R"({"name": "a", "argv": "{binary} map {target} {image}"})")),
            "t.json: commands[0].output_types[0].argv: \"{target}\" is not a placeholder this "
            "table knows ({binary}, {image})");
  const auto with_axes = [](const std::string& axes, const std::string& argv) {
    return R"({"table_format": 1, "commands": [{"name": "measure", "layout": "by-format", "axes": )" +
           axes + R"(, "output_types": [{"name": "m", "argv": ")" + argv + R"("}]}]})";
  };
  EXPECT_EQ(ParseError(with_axes(R"([{"name": "target", "values": ["raw"]}])",
                                 "{binary} measure {image}")),
            "t.json: commands[0].output_types[0].argv: \"{binary} measure {image}\" does not use "
            "axis {target}");
  EXPECT_EQ(ParseError(with_axes(R"([{"name": "target", "values": ["raw"]}])",
                                 "{binary} measure -O {size} {image}")),
            "t.json: commands[0].output_types[0].argv: \"{size}\" is not a placeholder this "
            "table knows ({binary}, {image}, its command's axes)");
  EXPECT_EQ(ParseError(with_axes(R"([{"name": "target", "values": []}])", "{binary} measure {image}")),
            "t.json: commands[0].axes[0].values: is not a list of values");
  EXPECT_EQ(ParseError(with_axes(R"([{"name": "target", "values": ["raw", "raw"]}])",
                                 "{binary} measure {image}")),
            "t.json: commands[0].axes[0].values: \"raw\" is listed twice");
  EXPECT_EQ(ParseError(with_axes(R"([{"name": "target", "values": ["a b"]}])",
                                 "{binary} measure {image}")),
            "t.json: commands[0].axes[0].values[0]: \"a b\" is not a name (letters, digits, . _ -)");
  EXPECT_EQ(ParseError(with_axes(R"([{"name": "image", "values": ["x"]}])", "{binary} measure {image}")),
            "t.json: commands[0].axes[0].name: axis \"image\" is listed twice or is a built-in "
            "placeholder");
  EXPECT_EQ(ParseError(R"({"table_format": 1, "commands": [{"name": "map", "layout": "flat",
                           "formats": ["qcow2", "QCOW2"], "output_types": []}]})"),
            "t.json: commands[0].formats: \"QCOW2\" is listed twice");
  EXPECT_EQ(ParseError(OneType(R"({"name": "a", "argv": "{binary} map $(id) {image}"})")),
            "t.json: commands[0].output_types[0].argv: argument \"$(id)\" holds a quote, a "
            "backslash or a $");
  EXPECT_EQ(ParseError(OneType(R"({"name": "a", "argv": "{binary} map {image}"},
                                  {"name": "a", "argv": "{binary} map --output=json {image}"})")),
            "t.json: commands[0].output_types[1].name: output type \"a\" is listed twice");
  EXPECT_EQ(ParseError(OneType(R"({"name": "a", "argv": ["map"]})")),
            "t.json: commands[0].output_types[0].argv: is not a string");
  EXPECT_EQ(ParseError(OneType(R"({"name": "a", "argv": "{binary} map {image}", "since": "7.0.x"})")),
            "t.json: commands[0].output_types[0].since: \"7.0.x\" is not a version name (X.Y.Z)");
  EXPECT_EQ(ParseError(OneType(R"({"name": "a", "argv": "{binary} map {image}", "until": "7.0.0"})")),
            "t.json: commands[0].output_types[0]: unknown member \"until\"");
}

TEST(CommandTable, LoadNamesAFileItCannotRead) {
  EXPECT_EQ(CommandTable::Load("/nonexistent/commands.json").status().message(),
            "command table /nonexistent/commands.json: cannot be read");
}

// An axis makes a cell per value, named "<image id>__<value>"; formats keep
// a type to the images of those formats; a worker runs only the values.
TEST(CommandTable, AxesAndFormatsShapeThePlanAndTheWorkersRule) {
  Result<CommandTable> table = CommandTable::Parse(R"({"table_format": 1, "commands": [
      {"name": "measure", "layout": "by-format", "formats": ["QCOW2", "raw"],
       "axes": [{"name": "target", "values": ["raw", "qcow2"]}],
       "output_types": [{"name": "measure-json",
                         "argv": "{binary} measure --output=json -O {target} {image}"}]},
      {"name": "info", "layout": "flat",
       "output_types": [{"name": "info-json", "argv": "{binary} info --output=json {image}"}]}]})",
                                                   "t.json");
  ASSERT_TRUE(table.ok()) << table.status().message();
  const std::string sha(64, '0');
  Result<Manifest> manifest = Manifest::Parse(
      R"({"images": [{"id": "a", "path": "a.qcow2", "format": "qcow2", "safety": "safe", "sha256": ")" +
          sha + R"("}, {"id": "b", "path": "b.vmdk", "format": "vmdk", "safety": "safe", "sha256": ")" +
          sha + R"("}, {"id": "c", "path": "c.raw", "format": "RAW", "safety": "safe", "sha256": ")" +
          sha + R"("}]})",
      "m");
  ASSERT_TRUE(manifest.ok()) << manifest.status().message();
  Result<std::vector<OutputType>> types = table.value().OutputTypesOf({"measure", "info"});
  ASSERT_TRUE(types.ok());
  Result<Plan> made = Plan::Make(manifest.value(), {"7.2.0", "10.0.2"}, kDefaultCellTimeout, types.value());
  ASSERT_TRUE(made.ok()) << made.status().message();
  const Plan& plan = made.value();
  // measure: a and c (not the vmdk), each twice; info: all three.
  EXPECT_EQ(plan.cell_count(), 2u * 4u + 2u * 3u);
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < plan.cell_count(); ++i) {
    keys.push_back(plan.Key(plan.Ref(i)));
    Result<std::size_t> back = plan.IndexOfKey(keys.back());
    ASSERT_TRUE(back.ok()) << keys.back();
    EXPECT_EQ(back.value(), i);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "measure-json/7.2.0/a__raw", "measure-json/7.2.0/a__qcow2",
                      "measure-json/7.2.0/c__raw", "measure-json/7.2.0/c__qcow2",
                      "measure-json/10.0.2/a__raw", "measure-json/10.0.2/a__qcow2",
                      "measure-json/10.0.2/c__raw", "measure-json/10.0.2/c__qcow2",
                      "info-json/7.2.0/a", "info-json/7.2.0/b", "info-json/7.2.0/c",
                      "info-json/10.0.2/a", "info-json/10.0.2/b", "info-json/10.0.2/c"}));
  const CellRef c_qcow2 = plan.Ref(3);
  EXPECT_EQ(plan.ImageOf(c_qcow2).id, "c");
  const std::vector<std::string> args = plan.Args(c_qcow2);
  EXPECT_EQ(args, (std::vector<std::string>{"measure", "--output=json", "-O", "qcow2", "$TESTDATA_ROOT/c.raw"}));
  EXPECT_TRUE(table.value().CheckCellArgs(args, "c.raw").ok());
  EXPECT_EQ(table.value()
                .CheckCellArgs({"measure", "--output=json", "-O", "vmdk", "$TESTDATA_ROOT/c.raw"}, "c.raw")
                .message(),
            "\"measure --output=json -O vmdk\" is not an output type of this worker's table (measure "
            "(measure-json: measure --output=json -O {target}); info (info-json: info --output=json))");
  EXPECT_FALSE(plan.IndexOfKey("measure-json/7.2.0/b__raw").ok());  // vmdk: not measured
  EXPECT_FALSE(plan.IndexOfKey("measure-json/7.2.0/a").ok());
  // The stored form keeps the axes and formats.
  Result<Plan> stored = Plan::FromJson(plan.ToJson());
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_EQ(stored.value(), plan);
  EXPECT_EQ(stored.value().Key(stored.value().Ref(6)), "measure-json/10.0.2/c__raw");
  // A type that runs on none of the images is refused.
  Result<std::vector<OutputType>> measure = table.value().OutputTypesOf({"measure"});
  Result<Manifest> vmdk_only = Manifest::Parse(
      R"({"images": [{"id": "b", "path": "b.vmdk", "format": "vmdk", "safety": "safe", "sha256": ")" + sha +
          R"("}]})",
      "m");
  ASSERT_TRUE(vmdk_only.ok());
  EXPECT_EQ(Plan::Make(vmdk_only.value(), {"7.2.0"}, kDefaultCellTimeout, measure.value()).status().message(),
            "plan: output type measure-json runs on none of the safe-tier images' formats");
}

// A plan made from a table's output types, and none without any.
TEST(CommandTable, APlanTakesTheOutputTypesGiven) {
  Result<Manifest> manifest = Manifest::Parse(
      R"({"images": [{"id": "a", "path": "a.raw", "format": "raw", "safety": "safe",
          "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}]})",
      "m");
  ASSERT_TRUE(manifest.ok()) << manifest.status().message();
  Result<Plan> plan = Plan::Make(manifest.value(), {"7.2.0"}, kDefaultCellTimeout,
                                 {{"info-json", {"info", "--output=json"}, false, {}, {}}});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  Result<Plan> stored = Plan::FromJson(plan.value().ToJson());
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_FALSE(stored.value().types()[0].by_format);  // the layout is kept with the plan
  Result<Plan> map = Plan::Make(manifest.value(), {"7.2.0"}, kDefaultCellTimeout);
  ASSERT_TRUE(map.ok());
  // A map plan's stored form is what it was before the table.
  EXPECT_EQ(map.value().ToJson().find("by_format"), std::string::npos);
  EXPECT_EQ(plan.value().Key({0, 0, 0}), "info-json/7.2.0/a");
  EXPECT_EQ(plan.value().Args({0, 0, 0}),
            (std::vector<std::string>{"info", "--output=json", "$TESTDATA_ROOT/a.raw"}));
  EXPECT_EQ(Plan::Make(manifest.value(), {"7.2.0"}, kDefaultCellTimeout, {}).status().message(),
            "plan: no output types to sweep");
  // "since" is kept with the plan, and says which releases run the type.
  OutputType newer{"info-json", {"info", "--output=json"}, false, {}, {}, "10.0.0"};
  EXPECT_FALSE(newer.Supports("7.2.0"));
  EXPECT_TRUE(newer.Supports("10.0.0"));
  EXPECT_TRUE(newer.Supports("11.1.3"));
  Result<Plan> since = Plan::Make(manifest.value(), {"7.2.0"}, kDefaultCellTimeout, {newer});
  ASSERT_TRUE(since.ok());
  Result<Plan> since_stored = Plan::FromJson(since.value().ToJson());
  ASSERT_TRUE(since_stored.ok()) << since_stored.status().message();
  EXPECT_EQ(since_stored.value().types()[0].since, "10.0.0");
}

// Size expressions: a number, or the virtual size divided and offset; a
// result below zero is zero.
TEST(CommandTable, SizeExpressionsComputeFromTheVirtualSize) {
  const auto of = [](std::string_view text, std::uint64_t size) -> std::string {
    Result<SizeExpr> expr = SizeExpr::Parse(text);
    return expr.ok() ? std::to_string(expr.value().Of(size)) : expr.status().message();
  };
  EXPECT_EQ(of("65536", 1000), "65536");
  EXPECT_EQ(of("size", 1000), "1000");
  EXPECT_EQ(of("size/4", 1000), "250");
  EXPECT_EQ(of("size/3", 1000), "333");
  EXPECT_EQ(of("size-65536", 1'048'576), "983040");
  EXPECT_EQ(of("size-65536", 1000), "0");  // clamped
  EXPECT_EQ(of("size+512", 1000), "1512");
  EXPECT_EQ(of("size/2+512", 1000), "1012");
  for (std::string_view bad : {"", "size*2", "size/0", "-5", "size+", "sizes", "1e3", "size/2-", " 5",
                               "1234567890123456789"}) {
    EXPECT_EQ(of(bad, 1000), "\"" + std::string(bad) +
                                 "\" is not a size expression (N, size, size/N, size+N, size-N, size/N+N)")
        << bad;
  }
}

// map windows: a command of its own (subcommand map), whose windows are an
// axis "window"; its numbers come from each image's virtual size, a worker
// accepts any number there and nothing else, and an image without a size
// gets no window rows.
TEST(CommandTable, MapWindowsAreAnAxisComputedFromTheVirtualSize) {
  Result<std::vector<OutputType>> types = CommandTable::BuiltIn().OutputTypesOf({"map-window"});
  ASSERT_TRUE(types.ok()) << types.status().message();
  ASSERT_EQ(types.value().size(), 2u);
  const OutputType& json = types.value()[1];
  EXPECT_EQ(json.name, "map-window-json");
  ASSERT_EQ(json.windows.size(), 3u);
  EXPECT_EQ(json.axes.back().values, (std::vector<std::string>{"mid", "end", "past-eof"}));
  const std::string sha(64, '0');
  Result<Manifest> manifest = Manifest::Parse(
      R"({"images": [{"id": "a", "path": "a.qcow2", "format": "qcow2", "safety": "safe", "sha256": ")" +
          sha + R"("}, {"id": "b", "path": "b.raw", "format": "raw", "safety": "safe", "sha256": ")" + sha +
          R"("}]})",
      "m");
  ASSERT_TRUE(manifest.ok());
  Result<Plan> made =
      Plan::Make(manifest.value(), {"7.2.0"}, kDefaultCellTimeout, {json}, {{"a", 4'194'304}});
  ASSERT_TRUE(made.ok()) << made.status().message();
  const Plan& plan = made.value();
  ASSERT_EQ(plan.cell_count(), 3u);  // b has no size: no rows
  EXPECT_EQ(plan.Key(plan.Ref(0)), "map-window-json/7.2.0/a__mid");
  EXPECT_EQ(plan.Key(plan.Ref(2)), "map-window-json/7.2.0/a__past-eof");
  EXPECT_EQ(plan.Args(plan.Ref(0)),
            (std::vector<std::string>{"map", "--output=json", "--start-offset", "1048576", "--max-length",
                                      "2097152", "$TESTDATA_ROOT/a.qcow2"}));
  EXPECT_EQ(plan.Args(plan.Ref(1))[3], "4128768");  // end: size - 64 KiB
  EXPECT_EQ(plan.Args(plan.Ref(2))[3], "4259840");  // past-eof: size + 64 KiB
  const CommandTable& table = CommandTable::BuiltIn();
  EXPECT_TRUE(table.CheckCellArgs(plan.Args(plan.Ref(1)), "a.qcow2").ok());
  for (std::string bad : {"-1", "1e3", "0x10", "01", "$(reboot)", ""}) {
    std::vector<std::string> args = plan.Args(plan.Ref(1));
    args[3] = bad;
    EXPECT_FALSE(table.CheckCellArgs(args, "a.qcow2").ok()) << bad;
  }
  // The sizes and windows are kept with the plan.
  Result<Plan> stored = Plan::FromJson(plan.ToJson());
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_EQ(stored.value(), plan);
  EXPECT_EQ(stored.value().Args(stored.value().Ref(0)), plan.Args(plan.Ref(0)));
  // Without any size there is nothing to plan, and the plan says why.
  EXPECT_EQ(Plan::Make(manifest.value(), {"7.2.0"}, kDefaultCellTimeout, {json}).status().message(),
            "plan: output type map-window-json has windows, and no image of its formats has a virtual "
            "size to compute them from");
}

TEST(CommandTable, RefusesBadWindows) {
  const auto with_windows = [](const std::string& windows, const std::string& argv) {
    return R"({"table_format": 1, "commands": [{"name": "map-window", "subcommand": "map", "layout": "by-format", "windows": )" +
           windows + R"(, "output_types": [{"name": "m", "argv": ")" + argv + R"("}]}]})";
  };
  const std::string argv = "{binary} map --start-offset {start} --max-length {length} {image}";
  const std::string mid = R"({"name": "mid", "start": "size/4", "length": "size/2"})";
  EXPECT_EQ(ParseError(with_windows("[" + mid + "]", argv)), "parsed");
  EXPECT_EQ(ParseError(with_windows("[" + mid + ", " + mid + "]", argv)),
            "t.json: commands[0].windows[1].name: window \"mid\" is listed twice");
  EXPECT_EQ(ParseError(with_windows(R"([{"name": "mid", "start": "size*4", "length": "1"}])", argv)),
            "t.json: commands[0].windows[0].start: \"size*4\" is not a size expression (N, size, size/N, "
            "size+N, size-N, size/N+N)");
  EXPECT_EQ(ParseError(with_windows(R"([{"name": "mid", "start": 5, "length": "1"}])", argv)),
            "t.json: commands[0].windows[0].start: 5 is not a string");
  EXPECT_EQ(ParseError(with_windows("[]", argv)), "t.json: commands[0].windows: is not a list of windows");
  EXPECT_EQ(ParseError(with_windows("[" + mid + "]", "{binary} map --start-offset {start} {image}")),
            "t.json: commands[0].output_types[0].argv: \"{binary} map --start-offset {start} {image}\" does "
            "not use {length}, which its command's windows fill");
  EXPECT_EQ(ParseError(with_windows("[" + mid + "]", "{binary} info {start} {length} {image}")),
            "t.json: commands[0].output_types[0].argv: \"{binary} info {start} {length} {image}\" does not "
            "start with \"{binary} map\"");
  // Without windows, {start} is no placeholder.
  EXPECT_EQ(ParseError(OneType(R"({"name": "m", "argv": "{binary} map {start} {image}"})")),
            "t.json: commands[0].output_types[0].argv: \"{start}\" is not a placeholder this table knows "
            "({binary}, {image})");
}

}  // namespace
}  // namespace imgsweep
