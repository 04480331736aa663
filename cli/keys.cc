#include "cli/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <vector>

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

constexpr const char* kPublic = "public-key";
constexpr const char* kSecret = "secret-key";

// Creates `path` with `mode`, refusing to replace anything.
Status WriteNew(const fs::path& path, const std::string& content, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0 && errno == EEXIST) {
    return Status::InvalidInput(path.string() + " exists; refusing to replace a key");
  }
  if (fd < 0) return Status::FromErrno("cannot create " + path.string(), errno);
  Status st;
  if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    st = Status::FromErrno("cannot write " + path.string(), errno);
  }
  if (::close(fd) != 0 && st.ok()) st = Status::FromErrno("cannot write " + path.string(), errno);
  if (!st.ok()) ::unlink(path.c_str());
  return st;
}

// A ZPL file (ZeroMQ RFC 4, the format of czmq's certificates and pyzmq's
// zmq.auth): one "name" or "name = value" per line, nested by four spaces of
// indentation, '#' lines are comments, a value quoted with " or ' or bare.
// The result maps each path ("curve/public-key") to its value. A bare value
// runs to the end of the line, since Z85 keys may hold '#'.
Result<std::map<std::string, std::string>> ReadKeyFile(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return Status::NotFound("key file " + file.string() + ": cannot be read");
  std::map<std::string, std::string> values;
  std::vector<std::string> path;  // the names of the enclosing sections
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t start = line.find_first_not_of(' ');
    if (start == std::string::npos || line[start] == '#') continue;
    const auto bad = [&](const std::string& why) {
      return Status::InvalidInput("key file " + file.string() + ": \"" + line.substr(0, 40) +
                                  "\" " + why);
    };
    if (start % 4 != 0 || start / 4 > path.size()) return bad("is not indented by 4 per level");
    path.resize(start / 4);
    const std::size_t eq = line.find('=', start);
    std::string name = line.substr(start, eq == std::string::npos ? std::string::npos : eq - start);
    name.erase(name.find_last_not_of(' ') + 1);
    if (name.empty() || name.find(' ') != std::string::npos) {
      return bad("is not a \"name\" or \"name = value\" line");
    }
    if (eq == std::string::npos) {  // a section
      path.push_back(name);
      continue;
    }
    std::string value = line.substr(eq + 1);
    value.erase(0, value.find_first_not_of(' '));
    value.erase(value.find_last_not_of(' ') + 1);
    if (!value.empty() && (value[0] == '"' || value[0] == '\'')) {
      const std::size_t close = value.find(value[0], 1);
      if (close == std::string::npos) return bad("has a quote that is not closed");
      value = value.substr(1, close - 1);
    }
    std::string key;
    for (const std::string& section : path) key += section + "/";
    values[key + name] = value;
  }
  return values;
}

// A certificate's key (under "curve"), or one at the top level as imgsweep
// wrote them before it wrote ZPL.
Result<std::string> KeyOf(const std::map<std::string, std::string>& values, const char* name,
                          const fs::path& file) {
  auto it = values.find(std::string("curve/") + name);
  if (it == values.end()) it = values.find(name);
  if (it == values.end()) {
    return Status::InvalidInput("key file " + file.string() + ": no " + name + " line");
  }
  // Any 40-character Z85 key has a public counterpart: asking for it checks
  // public and secret keys alike.
  if (!CurvePublicKey(it->second).ok()) {
    return Status::InvalidInput("key file " + file.string() + ": " + name +
                                " is not a CURVE key (40 characters of Z85)");
  }
  return it->second;
}

bool HoldsSecretKey(const std::map<std::string, std::string>& values) {
  return values.count(kSecret) != 0 || values.count(std::string("curve/") + kSecret) != 0;
}

bool IsSecretKeyFile(const fs::path& file) {
  Result<std::map<std::string, std::string>> values = ReadKeyFile(file);
  return values.ok() && HoldsSecretKey(values.value());
}

}  // namespace

Status WriteKeyPair(const fs::path& base) {
  const fs::path secret = base.string() + ".key";
  const fs::path pub = base.string() + ".pub";
  std::error_code ec;
  for (const fs::path& p : {secret, pub}) {
    if (fs::exists(fs::symlink_status(p, ec))) {
      return Status::InvalidInput(p.string() + " exists; refusing to replace a key");
    }
  }
  // `--out keys/worker-1` in a fresh checkout: the folder is made too.
  if (base.has_parent_path()) {
    fs::create_directories(base.parent_path(), ec);
    if (ec) return Status::FromErrno("cannot create " + base.parent_path().string(), ec.value());
  }
  Result<CurveKeyPair> keys = GenerateCurveKeyPair();
  if (!keys.ok()) return keys.status();
  // ZPL certificates as czmq's zcert_save writes them, so ZeroMQ tooling
  // reads ours and we read theirs.
  const std::string public_line =
      "    " + std::string(kPublic) + " = \"" + keys.value().public_key + "\"\n";
  Status st = WriteNew(secret,
                       "#   ****  Generated by imgsweep keys generate  ****\n"
                       "#   ZeroMQ CURVE **Secret** Certificate\n"
                       "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
                       "\nmetadata\ncurve\n" +
                           public_line + "    " + kSecret + " = \"" + keys.value().secret_key +
                           "\"\n",
                       0600);
  if (!st.ok()) return st;
  st = WriteNew(pub,
                "#   ****  Generated by imgsweep keys generate  ****\n"
                "#   ZeroMQ CURVE Public Certificate\n"
                "#   Exchange securely, or use a secure mechanism to verify the contents\n"
                "#   of this file after exchange.\n"
                "\nmetadata\ncurve\n" +
                    public_line,
                0644);
  if (!st.ok()) ::unlink(secret.c_str());
  return st;
}

Result<CurveKeyPair> LoadSecretKey(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return Status::FromErrno("key file " + file.string(), errno);
  // The owner's alone (0600, 0400), or a group's to read (0640, 0440): how
  // orchestrators mount a secret owned by root for a non-root user (its
  // group, say Kubernetes' fsGroup). Never other users', never a group's
  // to change. The mode is the target's when the path is a link, as in a
  // mounted secret's folder.
  if ((st.st_mode & 007) != 0) {
    return Status::InvalidInput("key file " + file.string() +
                                " can be read by any user; chmod 600 it (or 640 for a group)");
  }
  if ((st.st_mode & 020) != 0) {
    return Status::InvalidInput("key file " + file.string() +
                                " can be changed by its group; chmod 640 or 600 it");
  }
  Result<std::map<std::string, std::string>> values = ReadKeyFile(file);
  if (!values.ok()) return values.status();
  Result<std::string> secret = KeyOf(values.value(), kSecret, file);
  if (!secret.ok()) return secret.status();
  Result<std::string> pub = KeyOf(values.value(), kPublic, file);
  if (!pub.ok()) return pub.status();
  if (CurvePublicKey(secret.value()).value() != pub.value()) {
    return Status::InvalidInput("key file " + file.string() +
                                ": its public-key is not the secret key's");
  }
  return CurveKeyPair{pub.value(), secret.value()};
}

Result<std::string> LoadPublicKey(const fs::path& file) {
  Result<std::map<std::string, std::string>> values = ReadKeyFile(file);
  if (!values.ok()) return values.status();
  if (HoldsSecretKey(values.value())) {
    return Status::InvalidInput("key file " + file.string() +
                                " holds a secret key; give the .pub file");
  }
  return KeyOf(values.value(), kPublic, file);
}

Result<std::set<std::string>> LoadAllowedKeys(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound(dir.string() + ": no such folder");
  std::set<std::string> keys;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    // Ours are NAME.pub; pyzmq's zmq.auth names public certificates
    // NAME.key (and secret ones NAME.key_secret, never read here).
    const fs::path ext = e.path().extension();
    if (e.path().filename().string().starts_with(".") || (ext != ".pub" && ext != ".key")) continue;
    if (ext == ".key" && IsSecretKeyFile(e.path())) continue;  // our secret half, beside its .pub
    Result<std::string> key = LoadPublicKey(e.path());
    if (!key.ok()) return key.status();
    keys.insert(key.value());
  }
  if (keys.empty()) {
    return Status::InvalidInput(dir.string() + ": no worker public keys (*.pub, *.key) in it");
  }
  return keys;
}

bool IsLoopbackEndpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  const std::string rest = endpoint.substr(6);
  if (rest.rfind("[::1]:", 0) == 0 || rest.rfind("localhost:", 0) == 0) return true;
  const std::size_t colon = rest.rfind(':');
  const std::string host = rest.substr(0, colon);
  // 127.0.0.0/8, written as four numbers: "127.0.0.1"; not an interface name.
  if (host.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

Result<ClientSecurity> ClientSecurityOf(const std::filesystem::path& curve_secret,
                                        const std::filesystem::path& coordinator_key) {
  ClientSecurity security;
  if (curve_secret.empty() != coordinator_key.empty()) {
    return Status::InvalidInput("--curve-secret and --coordinator-key go together");
  }
  if (curve_secret.empty()) return security;
  Result<CurveKeyPair> keys = LoadSecretKey(curve_secret);
  if (!keys.ok()) return keys.status();
  Result<std::string> server = LoadPublicKey(coordinator_key);
  if (!server.ok()) return server.status();
  security.curve = keys.value();
  security.server_key = server.value();
  return security;
}

}  // namespace imgsweep
