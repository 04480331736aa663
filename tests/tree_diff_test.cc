#include "tree/tree_diff.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace imgsweep {
namespace {

// One output type: `stdout[version][image]` is what that version printed
// (return code 0), `profiles` each version's profile.
TypeFacts Type(const std::string& name,
               const std::map<std::string, std::map<std::string, std::string>>& stdout,
               const std::map<std::string, std::string>& profiles) {
  TypeFacts f;
  f.type = name;
  for (const auto& [version, images] : stdout) {
    for (const auto& [image, text] : images) {
      CaptureFacts& c = f.raw[version][image];
      c.has_stdout = c.has_meta = c.has_stderr = true;
      c.stdout_id = text;
      c.return_code = "0";
    }
  }
  nlohmann::json map = {{"profiles", nlohmann::json::object()},
                        {"version_to_profile", nlohmann::json::object()}};
  for (const auto& [version, profile] : profiles) {
    map["version_to_profile"][version] = profile;
    if (!map["profiles"].contains(profile)) map["profiles"][profile] = version;
  }
  f.version_map = map.dump();
  return f;
}

TEST(TreeDiff, IdenticalTreesHaveNoChange) {
  const TypeFacts t = Type("map-json", {{"7.2.0", {{"a", "x"}}}}, {{"7.2.0", "profile-7-2-0"}});
  const std::vector<TypeDiff> d = DiffTrees({t}, {t}, {});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_TRUE(d[0].empty());
  EXPECT_EQ(DiffText(d, 5), "map-json: no change for the consumers (1 image, 1 version in 1 profile)\n");
}

TEST(TreeDiff, VersionsAndImagesAddedAndRemoved) {
  const TypeFacts before = Type("map-json", {{"6.0.0", {{"a", "x"}, {"gone", "g"}}}, {"7.2.0", {{"a", "x"}, {"gone", "g"}}}},
                                {{"6.0.0", "profile-6-0-0"}, {"7.2.0", "profile-6-0-0"}});
  const TypeFacts after = Type("map-json", {{"7.2.0", {{"a", "x"}, {"new", "n"}}}, {"10.0.2", {{"a", "x"}, {"new", "n"}}}},
                               {{"7.2.0", "profile-7-2-0"}, {"10.0.2", "profile-7-2-0"}});
  const TypeDiff d = DiffTrees({before}, {after}, {}).at(0);
  ASSERT_EQ(d.versions_added.size(), 1u);
  EXPECT_EQ(d.versions_added[0].version, "10.0.2");
  EXPECT_EQ(d.versions_added[0].profile, "profile-7-2-0");
  ASSERT_EQ(d.versions_removed.size(), 1u);
  EXPECT_EQ(d.versions_removed[0].version, "6.0.0");
  EXPECT_EQ(d.images_added, std::vector<std::string>{"new"});
  EXPECT_EQ(d.images_removed, std::vector<std::string>{"gone"});
  // "a" printed the same at 7.2.0, the one version both have.
  EXPECT_TRUE(d.changed.empty());
  EXPECT_TRUE(d.boundaries.empty());
  const std::string text = DiffText({d}, 5);
  EXPECT_NE(text.find("  versions added: 10.0.2 (profile-7-2-0)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  versions removed: 6.0.0 (was profile-6-0-0)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  images added: new\n  images removed: gone\n"), std::string::npos) << text;
}

TEST(TreeDiff, BoundariesThatMoveAmongTheVersionsBothHave) {
  // Before: 6.0.0 | 7.0.0 7.2.0. After: 6.0.0 7.0.0 | 7.2.0, because "a"
  // changed at 7.0.0 and 7.2.0 printed something new.
  const TypeFacts before = Type("map-json", {{"6.0.0", {{"a", "x"}}}, {"7.0.0", {{"a", "y"}}}, {"7.2.0", {{"a", "y"}}}},
                                {{"6.0.0", "profile-6-0-0"}, {"7.0.0", "profile-7-0-0"}, {"7.2.0", "profile-7-0-0"}});
  const TypeFacts after = Type("map-json", {{"6.0.0", {{"a", "x"}}}, {"7.0.0", {{"a", "x"}}}, {"7.2.0", {{"a", "z"}}}},
                               {{"6.0.0", "profile-6-0-0"}, {"7.0.0", "profile-6-0-0"}, {"7.2.0", "profile-7-2-0"}});
  const TypeDiff d = DiffTrees({before}, {after}, {}).at(0);
  ASSERT_EQ(d.boundaries.size(), 2u);
  EXPECT_EQ(d.boundaries[0].from, "6.0.0");
  EXPECT_EQ(d.boundaries[0].to, "7.0.0");
  EXPECT_FALSE(d.boundaries[0].split);
  EXPECT_EQ(d.boundaries[1].from, "7.0.0");
  EXPECT_EQ(d.boundaries[1].to, "7.2.0");
  EXPECT_TRUE(d.boundaries[1].split);
  ASSERT_EQ(d.changed.size(), 1u);
  EXPECT_EQ(d.changed[0].versions, (std::vector<std::string>{"7.0.0", "7.2.0"}));
  const std::string text = DiffText({d}, 5);
  EXPECT_NE(text.find("  one profile now between 6.0.0 and 7.0.0\n"
                      "  profiles split between 7.0.0 and 7.2.0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("    a: stdout at 7.0.0, 7.2.0\n"), std::string::npos) << text;
}

TEST(TreeDiff, AReturnCodeAloneIsAChange) {
  TypeFacts before = Type("map-human", {{"7.2.0", {{"a", "x"}}}, {"8.0.0", {{"a", "x"}}}},
                          {{"7.2.0", "profile-7-2-0"}, {"8.0.0", "profile-7-2-0"}});
  TypeFacts after = before;
  after.raw["7.2.0"]["a"].return_code = "1";
  after.raw["8.0.0"]["a"].return_code = "1";
  const TypeDiff d = DiffTrees({before}, {after}, {}).at(0);
  ASSERT_EQ(d.changed.size(), 1u);
  EXPECT_FALSE(d.changed[0].stdout_changed);
  EXPECT_TRUE(d.changed[0].return_code_changed);
  EXPECT_NE(DiffText({d}, 5).find("    a: return code at every version (2)\n"), std::string::npos);
}

TEST(TreeDiff, ANewTypeAndOnlyTheTypesAskedFor) {
  const TypeFacts json = Type("map-json", {{"7.2.0", {{"a", "x"}}}}, {{"7.2.0", "profile-7-2-0"}});
  const TypeFacts human = Type("map-human", {{"7.2.0", {{"a", "x"}}}}, {{"7.2.0", "profile-7-2-0"}});
  const TypeFacts other = Type("qemu-img-human", {{"6.0.0", {{"a", "x"}}}}, {{"6.0.0", "profile-6-0-0"}});
  const std::vector<TypeDiff> d = DiffTrees({other}, {json, human}, {"map-human", "map-json"});
  ASSERT_EQ(d.size(), 2u);  // qemu-img-human is not asked for
  EXPECT_EQ(DiffText(d, 5),
            "map-human: new (1 image, 1 version in 1 profile)\n"
            "map-json: new (1 image, 1 version in 1 profile)\n");
  const nlohmann::json parsed = nlohmann::json::parse(DiffJson(d));
  EXPECT_TRUE(parsed["types"][0]["before"].is_null());
  EXPECT_EQ(parsed["types"][0]["after"]["versions"], 1);
}

TEST(TreeDiff, LongListsAreCutInWordsButWholeInJson) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::map<std::string, std::string> profiles;
  for (int minor = 0; minor < 8; ++minor) {
    const std::string v = "6." + std::to_string(minor) + ".0";
    out[v] = {{"a", "x"}};
    profiles[v] = "profile-6-0-0";
  }
  const TypeFacts after = Type("map-json", out, profiles);
  const TypeFacts before = Type("map-json", {{"6.0.0", {{"a", "x"}}}}, {{"6.0.0", "profile-6-0-0"}});
  const std::vector<TypeDiff> d = DiffTrees({before}, {after}, {});
  EXPECT_NE(DiffText(d, 3).find("versions added: 6.1.0 (profile-6-0-0), 6.2.0 (profile-6-0-0), "
                                "6.3.0 (profile-6-0-0), ... and 4 more\n"),
            std::string::npos)
      << DiffText(d, 3);
  EXPECT_EQ(nlohmann::json::parse(DiffJson(d))["types"][0]["versions_added"].size(), 7u);
}

}  // namespace
}  // namespace imgsweep
