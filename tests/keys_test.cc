// CURVE key files on disk, and where a coordinator may listen in plain text.
#include "cli/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <set>

#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

namespace fs = std::filesystem;

TEST(KeysTest, WritesAPairThatLoadsBackWithThePrivateHalfUnreadableByOthers) {
  TempDir dir;
  ASSERT_TRUE(WriteKeyPair(dir.path() / "w1").ok());
  ASSERT_TRUE(WriteKeyPair(dir.path() / "keys/new/w2").ok());  // folders made as needed
  EXPECT_TRUE(fs::exists(dir.path() / "keys/new/w2.pub"));
  EXPECT_EQ(fs::status(dir.path() / "w1.key").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  Result<CurveKeyPair> pair = LoadSecretKey(dir.path() / "w1.key");
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  EXPECT_EQ(LoadPublicKey(dir.path() / "w1.pub").value(), pair.value().public_key);
  EXPECT_EQ(WriteKeyPair(dir.path() / "w1").message(),
            (dir.path() / "w1.key").string() + " exists; refusing to replace a key");
}

TEST(KeysTest, RefusesKeyFilesThatAreNotRight) {
  TempDir dir;
  ASSERT_TRUE(WriteKeyPair(dir.path() / "a").ok());
  ::chmod((dir.path() / "a.key").c_str(), 0644);
  EXPECT_EQ(LoadSecretKey(dir.path() / "a.key").status().message(),
            "key file " + (dir.path() / "a.key").string() +
                " can be read by any user; chmod 600 it (or 640 for a group)");
  ::chmod((dir.path() / "a.key").c_str(), 0660);
  EXPECT_EQ(LoadSecretKey(dir.path() / "a.key").status().message(),
            "key file " + (dir.path() / "a.key").string() +
                " can be changed by its group; chmod 640 or 600 it");
  ::chmod((dir.path() / "a.key").c_str(), 0600);
  EXPECT_EQ(LoadPublicKey(dir.path() / "a.key").status().message(),
            "key file " + (dir.path() / "a.key").string() + " holds a secret key; give the .pub file");
  const fs::path bad = dir.Write("bad.pub", "public-key = short\n");
  EXPECT_EQ(LoadPublicKey(bad).status().message(),
            "key file " + bad.string() + ": public-key is not a CURVE key (40 characters of Z85)");
  const fs::path junk = dir.Write("junk.pub", "hello\n");  // a ZPL section, without a key
  EXPECT_EQ(LoadPublicKey(junk).status().message(),
            "key file " + junk.string() + ": no public-key line");
  const fs::path indented = dir.Write("indented.pub", "curve\n  public-key = \"x\"\n");
  EXPECT_EQ(LoadPublicKey(indented).status().message(),
            "key file " + indented.string() + ": \"  public-key = \"x\"\" is not indented by 4 per level");
  const fs::path open_quote = dir.Write("open.pub", "curve\n    public-key = \"abc\n");
  EXPECT_EQ(LoadPublicKey(open_quote).status().message(),
            "key file " + open_quote.string() + ": \"    public-key = \"abc\" has a quote that is not closed");
  // Another pair's public key beside this secret key.
  ASSERT_TRUE(WriteKeyPair(dir.path() / "b").ok());
  const std::string other = LoadPublicKey(dir.path() / "b.pub").value();
  const std::string secret = LoadSecretKey(dir.path() / "a.key").value().secret_key;
  const fs::path mixed = dir.Write("mixed.key", "public-key = " + other + "\nsecret-key = " + secret + "\n");
  ::chmod(mixed.c_str(), 0600);
  EXPECT_EQ(LoadSecretKey(mixed).status().message(),
            "key file " + mixed.string() + ": its public-key is not the secret key's");
}

// Certificates as czmq's zcert_save and pyzmq's zmq.auth write them load
// here, and ours are ZPL in their layout; the old top-level lines still load.
TEST(KeysTest, ReadsAndWritesZeroMqCertificates) {
  TempDir dir;
  const CurveKeyPair pair = GenerateCurveKeyPair().value();
  const fs::path secret = dir.Write(
      "czmq_secret",
      "#   ****  Generated on 2026-12-01 00:00:00 by CZMQ  ****\n"
      "#   ZeroMQ CURVE **Secret** Certificate\n"
      "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
      "\n"
      "metadata\n"
      "    name = \"farm-1\"\n"
      "curve\n"
      "    public-key = \"" + pair.public_key + "\"\n"
      "    secret-key = \"" + pair.secret_key + "\"\n");
  ::chmod(secret.c_str(), 0600);
  Result<CurveKeyPair> loaded = LoadSecretKey(secret);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded.value().secret_key, pair.secret_key);
  // pyzmq's public certificate, NAME.key, in an allowlist folder.
  fs::create_directory(dir.path() / "allowed");
  dir.Write("allowed/farm-1.key", "metadata\ncurve\n    public-key = '" + pair.public_key + "'\n");
  dir.Write("allowed/README", "not a key\n");  // neither .pub nor .key: not read
  EXPECT_EQ(LoadAllowedKeys(dir.path() / "allowed").value(), std::set<std::string>{pair.public_key});
  // Ours: the same layout, and still the old top-level lines.
  ASSERT_TRUE(WriteKeyPair(dir.path() / "ours").ok());
  std::ifstream pub(dir.path() / "ours.pub");
  const std::string text((std::istreambuf_iterator<char>(pub)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("metadata\ncurve\n    public-key = \""), std::string::npos) << text;
  const fs::path old = dir.Write("old.pub", "# imgsweep CURVE public key\npublic-key = " +
                                                pair.public_key + "\n");
  EXPECT_EQ(LoadPublicKey(old).value(), pair.public_key);
}

// A secret as Kubernetes mounts it: the file under a timestamped folder,
// reached through "..data" links, read-only to the owner and a group.
TEST(KeysTest, LoadsASecretMountedReadOnlyForAGroup) {
  TempDir dir;
  const fs::path real = dir.path() / "secret/..2026_12_01_00_00_00.1/worker.key";
  fs::create_directories(real.parent_path());
  ASSERT_TRUE(WriteKeyPair(dir.path() / "made/worker").ok());
  fs::copy_file(dir.path() / "made/worker.key", real);
  fs::create_directory_symlink("..2026_12_01_00_00_00.1", dir.path() / "secret/..data");
  fs::create_symlink("..data/worker.key", dir.path() / "secret/worker.key");
  const fs::path mounted = dir.path() / "secret/worker.key";
  for (const mode_t mode : {0400, 0440, 0640}) {
    ASSERT_EQ(::chmod(real.c_str(), mode), 0);
    Result<CurveKeyPair> pair = LoadSecretKey(mounted);
    EXPECT_TRUE(pair.ok()) << std::oct << mode << ": " << pair.status().ToString();
  }
  ASSERT_EQ(::chmod(real.c_str(), 0444), 0);  // Kubernetes' default mode is 0644: refused
  EXPECT_FALSE(LoadSecretKey(mounted).ok());
}

TEST(KeysTest, AllowedKeysAreEveryPubFileOfAFolder) {
  TempDir dir;
  fs::create_directory(dir.path() / "allowed");
  EXPECT_EQ(LoadAllowedKeys(dir.path() / "allowed").status().message(),
            (dir.path() / "allowed").string() + ": no worker public keys (*.pub, *.key) in it");
  ASSERT_TRUE(WriteKeyPair(dir.path() / "allowed/w1").ok());
  ASSERT_TRUE(WriteKeyPair(dir.path() / "allowed/w2").ok());
  Result<std::set<std::string>> keys = LoadAllowedKeys(dir.path() / "allowed");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(keys.value().size(), 2u);  // the secret .key files are passed over
}

TEST(KeysTest, LoopbackEndpoints) {
  for (const char* e : {"tcp://127.0.0.1:5555", "tcp://127.0.0.1:*", "tcp://127.1.2.3:1",
                        "tcp://localhost:5555", "tcp://[::1]:5555", "ipc:///tmp/s", "inproc://x"}) {
    EXPECT_TRUE(IsLoopbackEndpoint(e)) << e;
  }
  for (const char* e : {"tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.0.0.1:5555",
                        "tcp://eth0:5555", "tcp://127.0.0.1.example.com:5555", "tcp://128.0.0.1:1"}) {
    EXPECT_FALSE(IsLoopbackEndpoint(e)) << e;
  }
}

}  // namespace
}  // namespace imgsweep
