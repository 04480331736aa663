#include "protocol/version_name.h"

#include <gtest/gtest.h>

namespace imgsweep {
namespace {

TEST(VersionName, AcceptsDottedNumbersOnly) {
  EXPECT_TRUE(IsVersionName("7.2.0"));
  EXPECT_TRUE(IsVersionName("10.0.13"));
  EXPECT_FALSE(IsVersionName(""));
  EXPECT_FALSE(IsVersionName(".."));
  EXPECT_FALSE(IsVersionName("7.2."));
  EXPECT_FALSE(IsVersionName("7..2"));
  EXPECT_FALSE(IsVersionName("7.2.0-rc1"));
  EXPECT_FALSE(IsVersionName("../7.2.0"));
  EXPECT_FALSE(IsVersionName("1.2.3.4.5"));
  EXPECT_FALSE(IsVersionName("1234567890.0.0"));
}

TEST(VersionName, SortsNumerically) {
  std::vector<std::string> v = {"10.0.2", "6.0.10", "6.0.9", "7.2.0", "6.1.0", "10.0.13"};
  SortVersions(&v);
  EXPECT_EQ(v,
            (std::vector<std::string>{"6.0.9", "6.0.10", "6.1.0", "7.2.0", "10.0.2", "10.0.13"}));
}

}  // namespace
}  // namespace imgsweep
