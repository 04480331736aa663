#include "protocol/manifest.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/manifest_json.h"

namespace imgsweep {
namespace {

const std::string kSha(64, 'a');

std::string Entry(const std::string& id, const std::string& extra = "") {
  return ImageJson(id, "images/" + id + ".img", "qcow2", "safe", kSha, extra);
}

std::string ErrorOf(const std::string& text) {
  Result<Manifest> m = Manifest::Parse(text, "m.json");
  EXPECT_FALSE(m.ok());
  if (m.ok()) return "";
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidInput);
  return m.status().message();
}

TEST(Manifest, ParsesEntriesAndKeepsUnknownFields) {
  Result<Manifest> m = Manifest::Parse(
      ManifestJson(
          Entry("a", R"(, "tags": ["x"], "instar_unsupported": true, "future": {"k": 1})")),
      "m.json");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m.value().images().size(), 1u);
  const ImageEntry& e = m.value().images()[0];
  EXPECT_EQ(e.id, "a");
  EXPECT_EQ(e.path, "images/a.img");
  EXPECT_EQ(e.format, "qcow2");
  EXPECT_EQ(e.sha256, kSha);
  EXPECT_NE(e.raw_json.find(R"("future":{"k":1})"), std::string::npos) << e.raw_json;
}

TEST(Manifest, KeepsTheFormatAsWrittenAndLowerCasesTheDigest) {
  std::string text =
      ManifestJson(R"({"id": "a", "path": "a.img", "format": "QCOW2", "safety": "safe",
                                  "sha256": ")" +
                   std::string(64, 'A') + "\"}");
  Result<Manifest> m = Manifest::Parse(text, "m.json");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m.value().images()[0].format, "QCOW2");  // the bucket folder, as the consumers build it
  EXPECT_EQ(m.value().images()[0].sha256, kSha);
}

// The shapes of the consumers' own manifest (tests/manifest.json).
TEST(Manifest, TakesTheConsumersManifestAsItIs) {
  const std::string text = R"({"$schema": "./manifest.schema.json", "title": "instar test images",
    "version": "1.0.0", "description": "d", "images": [
    {"id": "cirros-qcow2", "path": "downloaded/cirros/cirros-0.6.3-x86_64-disk.img",
     "format": "qcow2", "safety": "safe", "run_in_ci": true, "tags": ["qcow2"],
     "sha256": ")" + kSha + R"("},
    {"id": "vda", "path": "downloaded/shakenfist/vda", "format": "raw", "safety": "safe",
     "sha256": ")" + std::string(64, 'b') + R"(", "generated_by": "scripts/x.sh"},
    {"id": "vda-copy", "path": "downloaded/shakenfist/copy/vda", "format": "raw",
     "safety": "safe", "sha256": ")" + std::string(64, 'b') + R"("},
    {"id": "luks-basic", "path": "generated/luks.img", "format": "luks", "safety": "safe",
     "skip_qemu_img": true, "passphrase": "secret", "data_file": "x"},
    {"id": "iso-boot", "path": "downloaded/boot.iso", "format": "iso", "safety": "malformed"},
    {"id": "cve-vhd", "path": "../outside/evil.vhd", "format": "vhd", "safety": "malicious",
     "cve_references": ["CVE-2015-7549"], "unsafe_quirks_required": ["x"],
     "expected_error": "Image is corrupt", "instar_unsupported": true}]})";
  Result<Manifest> m = Manifest::Parse(text, "m.json");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m.value().images().size(), 6u);
  const std::vector<ImageEntry> tier = m.value().SafeTier();
  ASSERT_EQ(tier.size(), 3u);
  EXPECT_EQ(tier[1].path, "downloaded/shakenfist/vda");  // no extension
  EXPECT_EQ(tier[1].sha256, tier[2].sha256);              // the same bytes under two ids
  EXPECT_NE(m.value().images()[5].raw_json.find("CVE-2015-7549"), std::string::npos);
}

TEST(Manifest, LeavesASweptEntryWithoutDigestForTheSweepToCompute) {
  Result<Manifest> m = Manifest::Parse(
      ManifestJson(R"({"id": "a", "path": "a.img", "format": "raw", "safety": "safe"})"), "m.json");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m.value().images()[0].sha256, "");
  Manifest manifest = m.value();
  EXPECT_EQ(manifest.SetDigest("a", "nope").code(), StatusCode::kInvalidInput);
  EXPECT_EQ(manifest.SetDigest("b", kSha).code(), StatusCode::kNotFound);
  ASSERT_TRUE(manifest.SetDigest("a", kSha).ok());
  EXPECT_EQ(manifest.SafeTier()[0].sha256, kSha);
}

TEST(Manifest, SafeTierExcludesMalformedMaliciousAndSkipped) {
  std::string entries =
      Entry("keep") + "," +
      R"({"id": "bad", "path": "b", "format": "raw", "safety": "malformed", "sha256": ")" + kSha +
      R"("},)" +
      R"({"id": "evil", "path": "c", "format": "raw", "safety": "malicious", "sha256": ")" + kSha +
      R"("},)" + Entry("skip", R"(, "skip_qemu_img": true)") + "," +
      Entry("keep2", R"(, "skip_qemu_img": false)");
  Result<Manifest> m = Manifest::Parse(ManifestJson(entries), "m.json");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m.value().images().size(), 5u);
  std::vector<ImageEntry> tier = m.value().SafeTier();
  ASSERT_EQ(tier.size(), 2u);
  EXPECT_EQ(tier[0].id, "keep");
  EXPECT_EQ(tier[1].id, "keep2");
}

TEST(Manifest, ErrorsNameTheEntryAndField) {
  EXPECT_EQ(ErrorOf(ManifestJson(Entry("a") + "," + Entry("a"))),
            R"(m.json: images[1] ("a"): field "id": duplicate of images[0])");
  EXPECT_EQ(ErrorOf(ManifestJson(R"({"path": "x", "format": "raw"})")),
            R"(m.json: images[0]: field "id": missing)");
  EXPECT_EQ(ErrorOf(ManifestJson(R"({"id": "q", "path": "x", "format": "raw"})")),
            R"(m.json: images[0] ("q"): field "safety": missing)");
  EXPECT_EQ(
      ErrorOf(ManifestJson(R"({"id": "q", "path": "q", "format": "raw/x", "safety": "safe"})")),
      R"(m.json: images[0] ("q"): field "format": unknown format "raw/x" )"
      R"((known: raw, qcow2, qcow, vmdk, vpc, vhdx, qed, vdi))");
  EXPECT_EQ(ErrorOf(ManifestJson(R"({"id": 5})")),
            R"(m.json: images[0]: field "id": must be a string, not number)");
  EXPECT_EQ(
      ErrorOf(ManifestJson(R"({"id": "q", "path": "q", "format": "qcow3", "safety": "safe"})")),
      R"(m.json: images[0] ("q"): field "format": unknown format "qcow3" )"
      R"((known: raw, qcow2, qcow, vmdk, vpc, vhdx, qed, vdi))");
  EXPECT_EQ(
      ErrorOf(ManifestJson(R"({"id": "q", "path": "q", "format": "raw", "safety": "risky"})")),
      R"(m.json: images[0] ("q"): field "safety": "risky" is not one of "safe", "malformed", "malicious")");
  EXPECT_EQ(ErrorOf(ManifestJson(Entry("a", R"(, "skip_qemu_img": "yes")"))),
            R"(m.json: images[0] ("a"): field "skip_qemu_img": must be true or false, not string)");
  EXPECT_EQ(ErrorOf(ManifestJson(
                R"({"id": "q", "path": "q", "format": "raw", "safety": "safe", "sha256": "abc"})")),
            R"(m.json: images[0] ("q"): field "sha256": "abc" is not 64 hex digits)");
  EXPECT_EQ(ErrorOf(ManifestJson("[1]")), "m.json: images[0]: must be an object, not array");
}

TEST(Manifest, RefusesPathsThatLeaveTheTestdataRoot) {
  EXPECT_EQ(
      ErrorOf(ManifestJson(R"({"id": "q", "path": "images/../../etc/passwd", "format": "raw", "safety": "safe"})")),
      R"(m.json: images[0] ("q"): field "path": "images/../../etc/passwd" leaves the testdata root (".."))");
  EXPECT_EQ(
      ErrorOf(ManifestJson(R"({"id": "q", "path": "/etc/passwd", "format": "raw", "safety": "safe"})")),
      R"(m.json: images[0] ("q"): field "path": "/etc/passwd" is absolute; it must be relative to the testdata root)");
  EXPECT_EQ(ErrorOf(ManifestJson(R"({"id": "q", "path": "", "format": "raw", "safety": "safe"})")),
            R"(m.json: images[0] ("q"): field "path": is empty)");
}

TEST(Manifest, RefusesIdsThatAreNotSafeFileNames) {
  for (const char* id : {"../../etc/x", "a/b", "..", ".", "", "a b"}) {
    std::string message =
        ErrorOf(ManifestJson(R"({"id": ")" + std::string(id) + R"(", "path": "x", "safety": "safe"})"));
    EXPECT_NE(message.find(R"(field "id": )"), std::string::npos) << id << ": " << message;
    EXPECT_NE(message.find("is not a safe name"), std::string::npos) << id << ": " << message;
  }
}

TEST(Manifest, RefusesDocumentsThatAreNotManifests) {
  EXPECT_EQ(ErrorOf("{\"images\": [}"),
            "m.json: not valid JSON: parse error at line 1, column 13: syntax error while parsing "
            "value - unexpected '}'; expected '[', '{', or a literal");
  EXPECT_EQ(ErrorOf("[]"), "m.json: must be a JSON object, not array");
  EXPECT_EQ(ErrorOf("{}"), R"(m.json: field "images": missing)");
  EXPECT_EQ(ErrorOf(R"({"images": {}})"),
            R"(m.json: field "images": must be an array, not object)");
  EXPECT_EQ(ErrorOf(R"({"version": "1.0.0", "images": [{"id": "a", "safety": "safe"}]})"),
            R"(m.json: images[0] ("a"): field "path": missing)");
}

TEST(Manifest, LoadNamesAMissingFile) {
  Result<Manifest> m = Manifest::Load("/nonexistent/imgsweep/manifest.json");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(m.status().message(),
            "manifest /nonexistent/imgsweep/manifest.json: No such file or directory");
}

TEST(IsSafeName, AllowsOnlyPlainComponentNames) {
  EXPECT_TRUE(IsSafeName("qcow2-compressed_1.0"));
  EXPECT_FALSE(IsSafeName(".."));
  EXPECT_FALSE(IsSafeName("a/b"));
  EXPECT_FALSE(IsSafeName("a\\b"));
  EXPECT_FALSE(IsSafeName(""));
}

}  // namespace
}  // namespace imgsweep
