// Checks the corpus scripts/make-corpus made (ctest's "corpus" fixture) with
// the same manifest loader and digest code the sweep uses.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "protocol/manifest.h"
#include "protocol/sha256.h"

namespace imgsweep {
namespace {

namespace fs = std::filesystem;

class TestBed : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* root = std::getenv("IMGSWEEP_TESTDATA");
    ASSERT_NE(root, nullptr) << "IMGSWEEP_TESTDATA is not set: run through ctest";
    root_ = root;
    Result<Manifest> manifest = Manifest::Load(root_ / "manifest.json");
    ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
    manifest_ = std::move(manifest).value();
  }

  fs::path root_;
  Manifest manifest_;
};

// The swept tier's: imgsweep reads nothing of the other entries.
TEST_F(TestBed, EverySweptDigestMatchesItsFile) {
  ASSERT_FALSE(manifest_.SafeTier().empty());
  for (const ImageEntry& image : manifest_.SafeTier()) {
    Result<std::string> digest = Sha256File(root_ / image.path);
    ASSERT_TRUE(digest.ok()) << image.id << ": " << digest.status().ToString();
    EXPECT_EQ(digest.value(), image.sha256) << image.id << " (" << image.path << ")";
  }
}

TEST_F(TestBed, SafeTierHoldsNoUnsafeOrSkippedEntry) {
  std::set<std::string> tier;
  for (const ImageEntry& image : manifest_.SafeTier()) {
    EXPECT_EQ(image.safety, Safety::kSafe) << image.id;
    EXPECT_FALSE(image.skip_qemu_img) << image.id;
    tier.insert(image.id);
  }
  // The corpus carries entries that must stay out, so the exclusion is exercised.
  int left_out = 0;
  for (const ImageEntry& image : manifest_.images()) {
    if (image.safety != Safety::kSafe || image.skip_qemu_img) {
      EXPECT_EQ(tier.count(image.id), 0u) << image.id;
      ++left_out;
    }
  }
  EXPECT_GE(left_out, 2);
  EXPECT_EQ(tier.count("qcow2-truncated"), 0u);
  EXPECT_EQ(tier.count("qcow2-skip-qemu-img"), 0u);
}

TEST_F(TestBed, SafeTierCoversEveryFormatWithAtLeastFortyImages) {
  std::map<std::string, int> per_format;
  for (const ImageEntry& image : manifest_.SafeTier()) ++per_format[image.format];
  EXPECT_GE(manifest_.SafeTier().size(), 40u);
  for (const std::string& format : KnownFormats()) {
    EXPECT_GE(per_format[format], 1) << "no safe-tier image of format " << format;
  }
}

TEST_F(TestBed, FilesAnImageReferencesAreInTheCorpus) {
  int references = 0;
  for (const ImageEntry& image : manifest_.images()) {
    nlohmann::json entry = nlohmann::json::parse(image.raw_json);
    std::vector<std::string> paths;
    for (const char* field : {"data_file", "backing"}) {
      if (entry.contains(field)) paths.push_back(entry[field].get<std::string>());
    }
    if (entry.contains("companions")) {
      for (const auto& p : entry["companions"]) paths.push_back(p.get<std::string>());
    }
    for (const std::string& p : paths) {
      ++references;
      EXPECT_TRUE(fs::is_regular_file(root_ / p)) << image.id << " references missing " << p;
    }
  }
  EXPECT_GE(references, 5);
}

}  // namespace
}  // namespace imgsweep
