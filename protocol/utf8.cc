#include "protocol/utf8.h"

#include <variant>

namespace imgsweep {
namespace {

// The length of the well-formed UTF-8 sequence at text[i], 0 if none
// (RFC 3629, table 3-7 of the Unicode standard).
std::size_t Utf8SequenceAt(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

struct Utf8Fields {
  std::string bad;
  void Check(const char* name, std::string_view text) {
    if (bad.empty() && !IsUtf8(text)) bad = std::string("field \"") + name + "\"";
  }
  void operator()(const Hello& m) {
    Check("name", m.name);
    Check("host", m.host);
    Check("session", m.session);
    for (const VersionInfo& v : m.versions) {
      Check("versions.name", v.name);
      Check("versions.binary_sha256", v.binary_sha256);
      Check("versions.version_line", v.version_line);
    }
    for (const BrokenVersion& b : m.broken) {
      Check("broken.name", b.name);
      Check("broken.reason", b.reason);
    }
    for (const FileLayout& f : m.sparse) {
      Check("sparse.path", f.path);
      Check("sparse.fingerprint", f.fingerprint);
    }
  }
  void operator()(const CellResult& m) {
    Check("key", m.key);
    Check("failure", m.failure);
  }
  void operator()(const Results& m) {
    for (const CellResult& r : m.results) {
      Check("results.key", r.key);
      Check("results.failure", r.failure);
    }
  }
  void operator()(const Welcome& m) { Check("sweep_id", m.sweep_id); }
  void operator()(const Refused& m) { Check("reason", m.reason); }
  void operator()(const Shutdown& m) { Check("reason", m.reason); }
  void operator()(const Ack& m) {
    for (const std::string& key : m.keys) Check("keys", key);
  }
  void operator()(const Assignment& m) {
    for (const CellSpec& c : m.cells) {
      Check("cells.key", c.key);
      Check("cells.version", c.version);
      Check("cells.image_path", c.image_path);
      for (const std::string& arg : c.args) Check("cells.args", arg);
    }
  }
  void operator()(const StatusReply& m) { Check("json", m.json); }
  template <typename T>
  void operator()(const T&) {}  // no text
};

}  // namespace

bool IsUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = Utf8SequenceAt(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ToUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = Utf8SequenceAt(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text, i, n);
      i += n;
    }
  }
  return out;
}

std::string FirstNonUtf8Field(const Message& message) {
  Utf8Fields fields;
  std::visit(fields, message);
  return fields.bad;
}

}  // namespace imgsweep
