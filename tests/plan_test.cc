#include "sweep/plan.h"

#include <gtest/gtest.h>

#include "tests/manifest_json.h"

namespace imgsweep {
namespace {

Manifest TwoImages() {
  const std::string sha(64, 'c');
  return ManifestOf(ImageJson("a", "images/a.raw", "raw", "safe", sha) + "," +
                    ImageJson("bad", "images/b.qcow2", "qcow2", "malformed", sha) + "," +
                    ImageJson("b", "images/b.vmdk", "VMDK", "safe", sha));
}

TEST(Plan, CoversSafeTierAtEveryVersionForBothOutputTypes) {
  Result<Plan> plan = Plan::Make(TwoImages(), {"10.0.2", "7.2.0"}, kDefaultCellTimeout);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan.value().cell_count(), 2u * 2u * 2u);
  EXPECT_EQ(plan.value().versions(), (std::vector<std::string>{"7.2.0", "10.0.2"}));
  EXPECT_EQ(plan.value().Key(plan.value().Ref(0)), "map-human/7.2.0/a");
  EXPECT_EQ(plan.value().Key(plan.value().Ref(7)), "map-json/10.0.2/b");
  for (std::size_t i = 0; i < plan.value().cell_count(); ++i) {
    Result<std::size_t> back = plan.value().IndexOfKey(plan.value().Key(plan.value().Ref(i)));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back.value(), i);
  }
}

TEST(Plan, ArgvFollowsTheContractTable) {
  Plan plan = Plan::Make(TwoImages(), {"7.2.0"}, kDefaultCellTimeout).value();
  EXPECT_EQ(plan.Args(CellRef{0, 0, 1}),
            (std::vector<std::string>{"map", "$TESTDATA_ROOT/images/b.vmdk"}));
  const CellSpec spec = plan.Spec(CellRef{1, 0, 0}, 1);
  EXPECT_EQ(spec.args,
            (std::vector<std::string>{"map", "--output=json", "$TESTDATA_ROOT/images/a.raw"}));
  EXPECT_EQ(spec.timeout_ms, 30000u);
  EXPECT_EQ(spec.version, "7.2.0");
  EXPECT_EQ(spec.image_path, "images/a.raw");
}

// A stored outcome is reused only while its cache key is the same, so the
// key's text may not change by accident between releases: every user's
// store would run again. The digest below is of the documented text
// ("imgsweep-cell 1", docs/storage.md) for this cell.
TEST(Plan, CacheKeyIsPinnedAndCoversEveryInput) {
  Plan plan = Plan::Make(TwoImages(), {"7.2.0"}, kDefaultCellTimeout).value();
  const CellRef ref{1, 0, 0};  // map-json/7.2.0/a
  const std::string binary(64, 'b');
  const std::string key = plan.CacheKey(ref, binary, "dense");
  EXPECT_EQ(key, "873ceb8983ace0eff01827c5f14b17cad84dc11c4bfbd0e4cf9378715368e394");
  EXPECT_EQ(plan.CacheKey(ref, binary, "dense", plan.Args(ref)), key);
  EXPECT_NE(plan.CacheKey(ref, std::string(64, 'a'), "dense"), key);
  EXPECT_NE(plan.CacheKey(ref, binary, "sparse"), key);
  EXPECT_NE(plan.CacheKey(CellRef{0, 0, 0}, binary, "dense"), key);
  EXPECT_NE(plan.CacheKey(ref, binary, "dense", {"map", "$TESTDATA_ROOT/images/a.raw"}), key);
  Plan slower = Plan::Make(TwoImages(), {"7.2.0"}, std::chrono::seconds(31)).value();
  EXPECT_NE(slower.CacheKey(ref, binary, "dense"), key);
}

TEST(Plan, RefusesBadVersionLists) {
  EXPECT_EQ(Plan::Make(TwoImages(), {}, kDefaultCellTimeout).status().message(),
            "plan: no versions to sweep");
  EXPECT_EQ(Plan::Make(TwoImages(), {"7.2.0", ".."}, kDefaultCellTimeout).status().message(),
            "plan: \"..\" is not a version name (X.Y.Z)");
  EXPECT_EQ(Plan::Make(TwoImages(), {"7.2.0", "7.2.0"}, kDefaultCellTimeout).status().message(),
            "plan: version 7.2.0 is listed twice");
}

TEST(Plan, RefusesKeysOutsideThePlan) {
  Plan plan = Plan::Make(TwoImages(), {"7.2.0"}, kDefaultCellTimeout).value();
  EXPECT_EQ(plan.IndexOfKey("map-json/7.2.0/bad").status().message(),
            "cell key \"map-json/7.2.0/bad\" is not in the plan");
  EXPECT_EQ(plan.IndexOfKey("nonsense").status().message(),
            "cell key \"nonsense\" is not type/version/image");
}

TEST(Plan, StoredFormRoundTrips) {
  Plan plan = Plan::Make(TwoImages(), {"7.2.0", "10.0.2"}, std::chrono::seconds(5)).value();
  Result<Plan> back = Plan::FromJson(plan.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value(), plan);
  EXPECT_EQ(back.value().timeout(), std::chrono::seconds(5));
  EXPECT_FALSE(Plan::FromJson("{}").ok());
  // Keys are found by name, so a stored plan that names an image twice is
  // refused rather than half read.
  std::string twice = plan.ToJson();
  const std::string b = R"("id":"b")";
  twice.replace(twice.find(b), b.size(), R"("id":"a")");
  EXPECT_EQ(Plan::FromJson(twice).status().message(),
            "stored plan: image id \"a\" is listed twice");
  // Every key of the plan maps back to its own cell.
  for (std::size_t i = 0; i < plan.cell_count(); ++i) {
    EXPECT_EQ(plan.IndexOfKey(plan.Key(plan.Ref(i))).value(), i);
  }
}

}  // namespace
}  // namespace imgsweep
