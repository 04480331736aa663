#include "tree/profiles.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tree/profile_report.h"
#include "tree/tree_check.h"
#include "protocol/version_name.h"

namespace imgsweep {
namespace {

using Rows = std::vector<std::vector<std::string>>;

std::vector<std::vector<std::size_t>> Members(const std::vector<Profile>& profiles) {
  std::vector<std::vector<std::size_t>> m;
  m.reserve(profiles.size());
  for (const Profile& p : profiles) m.push_back(p.versions);
  return m;
}

TEST(ProfileNameTest, IsTheVersionWithDashes) {
  EXPECT_EQ(ProfileName("7.2.0"), "profile-7-2-0");
  EXPECT_EQ(ProfileName("10.0.13"), "profile-10-0-13");
}

TEST(GroupProfilesTest, VersionsIdenticalOnEveryImageShareTheEarliestsProfile) {
  const std::vector<std::string> versions = {"6.0.0", "6.0.1", "6.1.0", "7.0.0"};
  const std::vector<Profile> p =
      GroupProfiles(versions, Rows{{"a", "b"}, {"a", "b"}, {"a", "c"}, {"a", "c"}});
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].name, "profile-6-0-0");
  EXPECT_EQ(p[1].name, "profile-6-1-0");
  EXPECT_EQ(Members(p), (std::vector<std::vector<std::size_t>>{{0, 1}, {2, 3}}));
}

TEST(GroupProfilesTest, AVersionThatPrintsAnEarlierOnesOutputJoinsItsProfile) {
  // 8.0.0 went back to what 6.0.0 printed: one profile, not two alike.
  const std::vector<Profile> p =
      GroupProfiles({"6.0.0", "7.0.0", "8.0.0"}, Rows{{"a"}, {"b"}, {"a"}});
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(Members(p), (std::vector<std::vector<std::size_t>>{{0, 2}, {1}}));
}

TEST(GroupProfilesTest, OneImageAloneSplitsTwoVersions) {
  const std::vector<std::string> versions = {"7.2.0", "8.0.0"};
  const Rows rows = {{"a", "b", "c"}, {"a", "b", "d"}};
  const ProfileAnalysis a = AnalyzeProfiles(versions, rows);
  ASSERT_EQ(a.profiles.size(), 2u);
  EXPECT_EQ(a.profiles[1].name, "profile-8-0-0");
  ASSERT_EQ(a.boundaries.size(), 1u);
  EXPECT_EQ(a.boundaries[0].from, 0u);
  EXPECT_EQ(a.boundaries[0].to, 1u);
  EXPECT_EQ(a.boundaries[0].images, std::vector<std::size_t>{2});
  EXPECT_EQ(a.never_differ, (std::vector<std::size_t>{0, 1}));
  ASSERT_EQ(a.alone.size(), 1u);
  EXPECT_EQ(a.alone[0].image, 2u);
  // Without that image the two versions are one profile.
  EXPECT_EQ(GroupProfiles(versions, Rows{{"a", "b"}, {"a", "b"}}).size(), 1u);
}

TEST(AnalyzeProfilesTest, BoundariesAreBetweenNeighbours) {
  const ProfileAnalysis a =
      AnalyzeProfiles({"6.0.0", "7.0.0", "7.1.0", "8.0.0"}, Rows{{"a", "x"}, {"b", "x"}, {"b", "x"}, {"c", "y"}});
  ASSERT_EQ(a.boundaries.size(), 2u);
  EXPECT_EQ(a.boundaries[1].from, 2u);
  EXPECT_EQ(a.boundaries[1].to, 3u);
  EXPECT_EQ(a.boundaries[1].images, (std::vector<std::size_t>{0, 1}));
  EXPECT_TRUE(a.never_differ.empty());
  ASSERT_EQ(a.alone.size(), 1u);  // 6.0.0 vs 7.0.0 differ on image 0 only
  EXPECT_EQ(a.alone[0].first, 0u);
  EXPECT_EQ(a.alone[0].second, 1u);
}

TEST(VersionMapJsonTest, BothObjectsInNumericVersionOrder) {
  std::vector<std::string> versions = {"6.0.10", "6.0.9", "6.0.2"};
  SortVersions(&versions);
  ASSERT_EQ(versions, (std::vector<std::string>{"6.0.2", "6.0.9", "6.0.10"}));
  const std::vector<Profile> p = GroupProfiles(versions, Rows{{"a"}, {"b"}, {"c"}});
  EXPECT_EQ(VersionMapJson(versions, p), R"({
  "profiles": {
    "profile-6-0-2": "6.0.2",
    "profile-6-0-9": "6.0.9",
    "profile-6-0-10": "6.0.10"
  },
  "version_to_profile": {
    "6.0.2": "profile-6-0-2",
    "6.0.9": "profile-6-0-9",
    "6.0.10": "profile-6-0-10"
  }
}
)");
}

TEST(ParseVersionMapTest, KeepsFileOrderAndNamesWhatIsWrong) {
  Result<VersionMap> m = ParseVersionMap(
      R"({"profiles": {"profile-6-0-9": "6.0.9"}, "version_to_profile": {"6.0.10": "p", "6.0.9": "q"}})");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m.value().version_to_profile.front().first, "6.0.10");
  EXPECT_EQ(ParseVersionMap("{").status().message(), "not JSON");
  EXPECT_EQ(ParseVersionMap("[]").status().message(), "not a JSON object");
  EXPECT_EQ(ParseVersionMap(R"({"profiles": {}})").status().message(),
            "\"version_to_profile\" missing");
  EXPECT_EQ(ParseVersionMap(R"({"profiles": {"p": 1}, "version_to_profile": {}})")
                .status()
                .message(),
            "\"profiles\".p is not a string");
}

// A valid output type of two versions and two images, 7.2.0 and 8.0.0 in
// one profile; each test breaks one thing.
class CheckTypeTest : public ::testing::Test {
 protected:
  static CaptureFacts Capture(const std::string& where, const std::string& out) {
    CaptureFacts c;
    c.where = where;
    c.has_stdout = c.has_stderr = c.has_meta = true;
    c.stdout_size = out.size();
    c.stdout_bytes = out.size();
    c.stdout_id = out;
    return c;
  }
  void SetUp() override {
    f_.type = "map-json";
    for (const char* v : {"7.2.0", "8.0.0"}) {
      for (const char* id : {"a", "b"}) {
        f_.raw[v][id] = Capture(std::string("map-json/raw/") + v + "/" + id, id);
      }
    }
    for (const char* id : {"a", "b"}) {
      f_.profiles["profile-7-2-0"][id] = Capture(std::string("map-json/profiles/profile-7-2-0/") + id, id);
    }
    f_.version_map = VersionMapJson({"7.2.0", "8.0.0"}, {Profile{"profile-7-2-0", {0, 1}}});
  }
  TypeFacts f_;
};

TEST_F(CheckTypeTest, AValidTypeHasNoViolation) {
  EXPECT_EQ(CheckType(f_), std::vector<std::string>{});
}

TEST_F(CheckTypeTest, StdoutLongerThanItsMetaSays) {
  f_.raw["8.0.0"]["b"].stdout_bytes = 0;
  EXPECT_EQ(CheckType(f_), std::vector<std::string>{
                               "map-json/raw/8.0.0/b.stdout.txt: 1 bytes, but meta.json says "
                               "stdout_bytes 0"});
}

TEST_F(CheckTypeTest, TwoProfilesWithIdenticalStdout) {
  f_.profiles["profile-8-0-0"] = f_.profiles["profile-7-2-0"];
  f_.version_map = VersionMapJson({"7.2.0", "8.0.0"}, {Profile{"profile-7-2-0", {0}},
                                                       Profile{"profile-8-0-0", {1}}});
  EXPECT_EQ(CheckType(f_), std::vector<std::string>{
                               "map-json/profiles: profile-7-2-0 and profile-8-0-0 have "
                               "identical stdout on every image"});
}

TEST_F(CheckTypeTest, AVersionMissingFromTheMap) {
  f_.version_map = VersionMapJson({"7.2.0"}, {Profile{"profile-7-2-0", {0}}});
  EXPECT_EQ(CheckType(f_), std::vector<std::string>{
                               "map-json/version-map.json: version 8.0.0 is not in "
                               "version_to_profile"});
}

TEST_F(CheckTypeTest, AProfileFolderWithoutEveryImage) {
  f_.profiles["profile-7-2-0"].erase("b");
  EXPECT_EQ(CheckType(f_), std::vector<std::string>{
                               "map-json/profiles/profile-7-2-0: no capture of image b"});
}

TEST_F(CheckTypeTest, AVersionThatDiffersFromItsProfile) {
  f_.raw["8.0.0"]["a"] = Capture("map-json/raw/8.0.0/a", "changed");
  EXPECT_EQ(CheckType(f_), std::vector<std::string>{
                               "map-json/version-map.json: version 8.0.0 maps to "
                               "profile-7-2-0, but its stdout differs on image a"});
}

TEST_F(CheckTypeTest, AMapOutOfOrderAndAMisnamedProfile) {
  f_.version_map = R"({"profiles": {"profile-7-2-0": "8.0.0"},
    "version_to_profile": {"8.0.0": "profile-7-2-0", "7.2.0": "profile-7-2-0"}})";
  EXPECT_EQ(CheckType(f_),
            (std::vector<std::string>{
                "map-json/version-map.json: version_to_profile is not in ascending version "
                "order (8.0.0 before 7.2.0)",
                "map-json/version-map.json: profile profile-7-2-0 is named after 8.0.0, so it "
                "should be profile-8-0-0",
                "map-json/version-map.json: profile profile-7-2-0 also holds 7.2.0, which is "
                "earlier than 8.0.0"}));
}

TEST_F(CheckTypeTest, NoVersionMapAtAll) {
  f_.version_map.reset();
  EXPECT_EQ(CheckType(f_),
            std::vector<std::string>{"map-json/version-map.json: missing"});
}

TEST_F(CheckTypeTest, TheFirstVersionWithoutAMetaHidesTheImageFromReaders) {
  f_.raw["7.2.0"]["b"].has_meta = false;
  const std::vector<std::string> v = CheckType(f_);
  EXPECT_NE(std::find(v.begin(), v.end(),
                      "map-json/version-map.json: the first version, 7.2.0, has no meta.json for "
                      "image b: a reader skips the image on every host"),
            v.end());
}

// A distro build of 7.2 says 7.2.22: a reader on its host picks the profile
// of the highest 7.2 patch at or below 7.2.22, which must hold its output.
TEST_F(CheckTypeTest, AReaderPicksByWhatTheBinarySaysItIs) {
  for (const char* id : {"a", "b"}) {
    f_.raw["7.2.5"][id] = Capture(std::string("map-json/raw/7.2.5/") + id, std::string(id) + "5");
    f_.profiles["profile-7-2-5"][id] = f_.raw["7.2.5"][id];
    f_.raw["7.2.0"][id].version_line = "qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)";
  }
  f_.version_map = VersionMapJson({"7.2.0", "7.2.5", "8.0.0"},
                                  {Profile{"profile-7-2-0", {0, 2}}, Profile{"profile-7-2-5", {1}}});
  EXPECT_EQ(CheckType(f_), std::vector<std::string>{});  // the tree is true to what ran
  EXPECT_EQ(CheckReaderPicks(f_),
            (std::vector<std::string>{
                "map-json/version-map.json: on a host whose qemu-img says 7.2.22 (version 7.2.0) "
                "a reader picks profile-7-2-5, whose stdout differs on image a",
                "map-json/version-map.json: on a host whose qemu-img says 7.2.22 (version 7.2.0) "
                "a reader picks profile-7-2-5, whose stdout differs on image b"}));
}

TEST(PickProfileTest, FollowsTheConsumersRule) {
  VersionMap map;
  map.version_to_profile = {{"6.0.0", "p6"}, {"6.1.0", "p61"}, {"7.2.0", "p7"}, {"7.2.5", "p725"},
                            {"8.0.0", "p8"}};
  EXPECT_EQ(PickProfile(map, "7.2.0"), "p7");     // the exact entry
  EXPECT_EQ(PickProfile(map, "7.2.22"), "p725");  // the highest patch at or below, same minor
  EXPECT_EQ(PickProfile(map, "7.2.3"), "p7");
  EXPECT_EQ(PickProfile(map, "7.1.0"), "p61");    // else the highest version below
  EXPECT_EQ(PickProfile(map, "9.0.0"), "p8");
  EXPECT_EQ(PickProfile(map, "5.2.0"), "p6");     // else the lowest
  EXPECT_EQ(PickProfile(VersionMap{}, "7.2.0"), "");
}

TEST(ReportedVersionTest, ReadsTheVersionOutOfTheLine) {
  EXPECT_EQ(ReportedVersion("qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)"), "7.2.22");
  EXPECT_EQ(ReportedVersion("qemu-img version 10.0.2"), "10.0.2");
  EXPECT_EQ(ReportedVersion("something else"), "");
}

TEST(UnifiedDiffTest, ShowsChangedLinesAndCutsLongDiffs) {
  EXPECT_EQ(UnifiedDiff("same\n", "same\n", "a", "b", 10), "");
  EXPECT_EQ(UnifiedDiff("x\ny\n", "x\nz\n", "7.2.0", "8.0.0", 10),
            "--- 7.2.0\n+++ 8.0.0\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n");
  EXPECT_EQ(UnifiedDiff("1\n2\n3\n", "4\n5\n6\n", "a", "b", 4),
            "--- a\n+++ b\n@@ -1,3 +1,3 @@\n-1\n(5 more lines)\n");
}

TEST(AddedJsonFieldsTest, NamesMembersOnlyTheNewOutputHas) {
  EXPECT_EQ(AddedJsonFields(R"([{"start": 0, "data": true}])",
                            R"([{"start": 0, "present": true, "data": true}])"),
            std::set<std::string>{"present"});
  EXPECT_EQ(AddedJsonFields("[{\"a\": 1}]", "[{\"a\": 2}]"), std::set<std::string>{});
  EXPECT_EQ(AddedJsonFields("Offset Length\n", "[{\"a\": 1}]"), std::set<std::string>{});
}

}  // namespace
}  // namespace imgsweep
