#include "protocol/sha256.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace imgsweep {
namespace {

TEST(Sha256, MatchesTheFipsVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, FileDigestEqualsDigestOfItsBytesAcrossChunkBoundaries) {
  auto path =
      std::filesystem::temp_directory_path() / ("imgsweep-sha256-" + std::to_string(::getpid()));
  std::string bytes;
  for (int i = 0; i < 200000; ++i) bytes.push_back(static_cast<char>(i * 31));
  { std::ofstream(path, std::ios::binary) << bytes; }
  Result<std::string> digest = Sha256File(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(digest.ok()) << digest.status().ToString();
  EXPECT_EQ(digest.value(), Sha256Hex(bytes));
}

// The empty input's digest is a constant in Sha256Hex; the file path
// hashes an empty file through OpenSSL, and both must agree.
TEST(Sha256, EmptyFileDigestEqualsTheEmptyInputs) {
  auto path =
      std::filesystem::temp_directory_path() / ("imgsweep-sha256-empty-" + std::to_string(::getpid()));
  { std::ofstream(path, std::ios::binary); }
  Result<std::string> digest = Sha256File(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(digest.ok()) << digest.status().ToString();
  EXPECT_EQ(digest.value(), Sha256Hex(""));
}

TEST(Sha256, MissingFileIsNotFoundAndNamesThePath) {
  Result<std::string> digest = Sha256File("/nonexistent/imgsweep/image.qcow2");
  ASSERT_FALSE(digest.ok());
  EXPECT_EQ(digest.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(digest.status().message(),
            "open /nonexistent/imgsweep/image.qcow2: No such file or directory");
}

TEST(Sha256, IsSha256HexAcceptsOnly64LowerCaseHexDigits) {
  EXPECT_TRUE(IsSha256Hex(std::string(64, 'a')));
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'a')));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'A')));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'g')));
}

TEST(Sha256, HexAndBytesConvertBothWaysAndOnlyDigestsConvert) {
  const std::string hex = Sha256Hex("abc");
  Sha256Bytes bytes{};
  ASSERT_TRUE(Sha256FromHex(hex, &bytes));
  EXPECT_EQ(bytes[0], '\xba');  // the FIPS vector's first byte
  EXPECT_EQ(bytes[31], '\xad');
  EXPECT_EQ(Sha256ToHex(bytes), hex);
  EXPECT_FALSE(Sha256FromHex(hex.substr(1), &bytes));
  EXPECT_FALSE(Sha256FromHex(std::string(63, 'a') + "A", &bytes));
  EXPECT_FALSE(Sha256FromHex(std::string(63, 'a') + "/", &bytes));
  EXPECT_FALSE(Sha256FromHex(std::string(63, 'a') + ":", &bytes));
}

}  // namespace
}  // namespace imgsweep
