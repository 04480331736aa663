#include "protocol/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace imgsweep {
namespace {

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(Status, FromErrnoNamesTheContextAndMapsEnoentToNotFound) {
  Status missing = Status::FromErrno("open /x/manifest.json", ENOENT);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.ToString(), "not found: open /x/manifest.json: No such file or directory");
  Status denied = Status::FromErrno("open /x", EACCES);
  EXPECT_EQ(denied.code(), StatusCode::kIoError);
  EXPECT_EQ(denied.message(), "open /x: Permission denied");
}

TEST(Result, HoldsAValueOrTheFailure) {
  Result<int> good(7);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value(), 7);
  EXPECT_TRUE(good.status().ok());
  Result<int> bad(Status::InvalidInput("no"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidInput);
}

}  // namespace
}  // namespace imgsweep
