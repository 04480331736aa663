#include "worker/held_results.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace imgsweep {
namespace {

using std::chrono::milliseconds;

std::vector<CellResult> Results(std::initializer_list<std::string> keys) {
  std::vector<CellResult> out;
  for (const std::string& key : keys) {
    CellResult r;
    r.key = key;
    out.push_back(r);
  }
  return out;
}

TEST(HeldResults, NothingHeldIsNeverDue) {
  FakeClock clock;
  HeldResults held;
  held.Add({}, clock.Now());
  EXPECT_EQ(held.size(), 0u);
  EXPECT_FALSE(held.Due(clock.Now(), 0, 2, false));
  EXPECT_EQ(held.Until(clock.Now()), milliseconds::max());
}

TEST(HeldResults, WaitsForTheLingerWhileEnoughCellsWait) {
  FakeClock clock;
  HeldResults held;
  held.Add(Results({"a"}), clock.Now());
  EXPECT_FALSE(held.Due(clock.Now(), 2, 2, true));
  EXPECT_EQ(held.Until(clock.Now()), HeldResults::kResultsLinger);
  clock.Advance(HeldResults::kResultsLinger - milliseconds(1));
  held.Add(Results({"b"}), clock.Now());  // the linger counts from the oldest
  EXPECT_FALSE(held.Due(clock.Now(), 2, 2, true));
  EXPECT_EQ(held.Until(clock.Now()), milliseconds(1));
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(held.Due(clock.Now(), 2, 2, true));
  EXPECT_EQ(held.Until(clock.Now()), milliseconds(0));
}

TEST(HeldResults, DueAtOnceWhenASlotCouldRunOutOfCells) {
  FakeClock clock;
  HeldResults held;
  held.Add(Results({"a"}), clock.Now());
  EXPECT_TRUE(held.Due(clock.Now(), 1, 2, true));
  EXPECT_TRUE(held.Due(clock.Now(), 0, 1, true));
  EXPECT_FALSE(held.Due(clock.Now(), 1, 1, true));
}

TEST(HeldResults, DueAtOnceWhenHoldingIsNotAllowed) {
  FakeClock clock;
  HeldResults held;
  held.Add(Results({"a"}), clock.Now());
  EXPECT_TRUE(held.Due(clock.Now(), 100, 2, false));
}

TEST(HeldResults, DueOnceAFrameIsFull) {
  FakeClock clock;
  HeldResults held;
  std::vector<CellResult> many(kResultsPerFrame - 1);
  held.Add(many, clock.Now());
  EXPECT_FALSE(held.Due(clock.Now(), 100, 2, true));
  held.Add(Results({"last"}), clock.Now());
  EXPECT_TRUE(held.Due(clock.Now(), 100, 2, true));
}

TEST(HeldResults, TakeGivesEveryResultInOrderAndStartsAfresh) {
  FakeClock clock;
  HeldResults held;
  held.Add(Results({"a", "b"}), clock.Now());
  held.Add(Results({"c"}), clock.Now());
  clock.Advance(HeldResults::kResultsLinger);
  std::vector<CellResult> taken = held.Take();
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_EQ(taken[0].key, "a");
  EXPECT_EQ(taken[2].key, "c");
  EXPECT_EQ(held.size(), 0u);
  // The next one waits a whole linger of its own.
  held.Add(Results({"d"}), clock.Now());
  EXPECT_FALSE(held.Due(clock.Now(), 2, 2, true));
  EXPECT_EQ(held.Until(clock.Now()), HeldResults::kResultsLinger);
}

}  // namespace
}  // namespace imgsweep
