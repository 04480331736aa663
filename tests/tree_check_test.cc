// `imgsweep validate` against trees on disk, each written here by hand.
#include "tree/tree_check.h"

#include <gtest/gtest.h>

#include "tree/profiles.h"
#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

namespace fs = std::filesystem;

// map-json with images a (qcow2) and b (raw) at 7.2.0 and 8.0.0, which
// differ on b: two profiles.
class TreeCheckTest : public ::testing::Test {
 protected:
  void Capture(const std::string& dir, const std::string& id, const std::string& out) {
    dir_.Write(dir + "/" + id + ".stdout.txt", out);
    dir_.Write(dir + "/" + id + ".stderr.txt", "");
    dir_.Write(dir + "/" + id + ".meta.json",
               "{\"return_code\": 0, \"stdout_bytes\": " + std::to_string(out.size()) + "}\n");
  }
  void SetUp() override {
    for (const char* v : {"7.2.0", "8.0.0"}) {
      Capture(std::string("map-json/qcow2/") + v, "a", "[a]\n");
      Capture(std::string("map-json/raw/") + v, "b", std::string("[b ") + v + "]\n");
      Capture(std::string("map-json/profiles/profile-") + (v[0] == '7' ? "7-2-0" : "8-0-0"), "a",
              "[a]\n");
      Capture(std::string("map-json/profiles/profile-") + (v[0] == '7' ? "7-2-0" : "8-0-0"), "b",
              std::string("[b ") + v + "]\n");
    }
    dir_.Write("map-json/version-map.json",
               VersionMapJson({"7.2.0", "8.0.0"}, {Profile{"profile-7-2-0", {0}},
                                                   Profile{"profile-8-0-0", {1}}}));
  }
  std::vector<std::string> Violations() {
    Result<std::vector<std::string>> v = ValidateTree(dir_.path());
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? v.value() : std::vector<std::string>{"(no result)"};
  }
  TempDir dir_;
};

TEST_F(TreeCheckTest, AValidTreeHasNoViolation) {
  EXPECT_EQ(Violations(), std::vector<std::string>{});
}

TEST_F(TreeCheckTest, ATruncatedStdout) {
  dir_.Write("map-json/raw/8.0.0/b.stdout.txt", "[b");
  EXPECT_EQ(Violations(),
            (std::vector<std::string>{
                "map-json/raw/8.0.0/b.stdout.txt: 2 bytes, but meta.json says stdout_bytes 10",
                "map-json/version-map.json: version 8.0.0 maps to profile-8-0-0, but its stdout "
                "differs on image b"}));
}

TEST_F(TreeCheckTest, MissingFilesAndABrokenMeta) {
  fs::remove(dir_.path() / "map-json/profiles/profile-8-0-0/a.stderr.txt");
  fs::remove(dir_.path() / "map-json/qcow2/7.2.0/a.stdout.txt");
  dir_.Write("map-json/qcow2/8.0.0/a.meta.json", "{\"return_code\": 0}");
  EXPECT_EQ(Violations(), (std::vector<std::string>{
                              "map-json/qcow2/7.2.0/a.stdout.txt: missing",
                              "map-json/qcow2/8.0.0/a.meta.json: no stdout_bytes",
                              "map-json/profiles/profile-8-0-0/a.stderr.txt: missing"}));
}

TEST_F(TreeCheckTest, ProfilesThatShouldBeOne) {
  dir_.Write("map-json/raw/8.0.0/b.stdout.txt", "[b 7.2.0]\n");
  dir_.Write("map-json/profiles/profile-8-0-0/b.stdout.txt", "[b 7.2.0]\n");
  EXPECT_EQ(Violations(), std::vector<std::string>{
                              "map-json/profiles: profile-7-2-0 and profile-8-0-0 have identical "
                              "stdout on every image"});
}

TEST_F(TreeCheckTest, AVersionTheMapDoesNotList) {
  Capture("map-json/qcow2/9.0.0", "a", "[a]\n");
  Capture("map-json/raw/9.0.0", "b", "[b 8.0.0]\n");
  EXPECT_EQ(Violations(), std::vector<std::string>{
                              "map-json/version-map.json: version 9.0.0 is not in "
                              "version_to_profile"});
}

TEST_F(TreeCheckTest, AProfileFolderMissingAnImageOrTheMap) {
  fs::remove_all(dir_.path() / "map-json/profiles/profile-7-2-0");
  Capture("map-json/profiles/profile-7-2-0", "a", "[a]\n");
  fs::remove(dir_.path() / "map-json/version-map.json");
  EXPECT_EQ(Violations(), (std::vector<std::string>{
                              "map-json/profiles/profile-7-2-0: no capture of image b",
                              "map-json/version-map.json: missing"}));
}

TEST_F(TreeCheckTest, NotATree) {
  EXPECT_EQ(ValidateTree(dir_.path() / "absent").status().ToString(),
            "not found: " + (dir_.path() / "absent").string() + ": no such folder");
  fs::create_directory(dir_.path() / "empty");
  EXPECT_EQ(ValidateTree(dir_.path() / "empty").status().message(),
            (dir_.path() / "empty").string() + ": no output type folders (e.g. map-json) in it");
}

}  // namespace
}  // namespace imgsweep
