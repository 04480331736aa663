// manifest.json text for tests, and the parsed Manifest of it.
#ifndef IMGSWEEP_TESTS_MANIFEST_JSON_H_
#define IMGSWEEP_TESTS_MANIFEST_JSON_H_

#include <gtest/gtest.h>

#include <string>

#include "protocol/manifest.h"

namespace imgsweep {

// One images[] entry; `extra` is appended inside the object (", "k": 1).
inline std::string ImageJson(const std::string& id, const std::string& path,
                             const std::string& format, const std::string& safety = "safe",
                             const std::string& sha256 = std::string(64, 'a'),
                             const std::string& extra = "") {
  return R"({"id": ")" + id + R"(", "path": ")" + path + R"(", "format": ")" + format +
         R"(", "safety": ")" + safety + R"(", "sha256": ")" + sha256 + "\"" + extra + "}";
}

inline std::string ManifestJson(const std::string& entries) {
  return R"({"version": 1, "title": "t", "images": [)" + entries + "]}";
}

// REQUIRES: the entries make a valid manifest (the test fails otherwise).
inline Manifest ManifestOf(const std::string& entries) {
  Result<Manifest> m = Manifest::Parse(ManifestJson(entries), "m.json");
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? m.value() : Manifest();
}

}  // namespace imgsweep

#endif  // IMGSWEEP_TESTS_MANIFEST_JSON_H_
