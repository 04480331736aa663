#include "storage/store.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

#include "protocol/sha256.h"
#include "storage/records.h"
#include "tests/temp_dir.h"

namespace imgsweep {
namespace {

std::unique_ptr<Store> OpenOrDie(const std::filesystem::path& dir) {
  Result<std::unique_ptr<Store>> store = Store::Open(dir, Store::Mode::kCreateIfMissing);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

CellWrite DoneCell(const std::string& key, const std::string& out, const std::string& err) {
  Attempt a;
  a.number = 1;
  a.outcome = Outcome::kExited;
  a.exit_code = 1;
  a.stdout_sha256 = Sha256Hex(out);
  a.stderr_sha256 = Sha256Hex(err);
  a.stdout_bytes = out.size();
  a.stderr_bytes = err.size();
  a.worker = "w1";
  a.version_line = "qemu-img version 7.2.22";
  return CellWrite{
      key, CellRecord{CellState::kDone, {a}}, {{a.stdout_sha256, out}, {a.stderr_sha256, err}}};
}

TEST(Store, CommittedCellsAndOutputsSurviveReopening) {
  TempDir dir;
  {
    std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
    ASSERT_TRUE(store->PutMeta("plan", "{}").ok());
    ASSERT_TRUE(store
                    ->Commit({DoneCell("map-human/7.2.0/a", "Offset\n", "boom\n"),
                              DoneCell("map-human/7.2.0/b", "Offset\n", "")})
                    .ok());
  }
  std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
  Result<std::optional<CellRecord>> a = store->GetCell("map-human/7.2.0/a");
  ASSERT_TRUE(a.ok() && a.value());
  EXPECT_EQ(*a.value(), DoneCell("map-human/7.2.0/a", "Offset\n", "boom\n").record);
  EXPECT_EQ(store->GetBlob(Sha256Hex("boom\n")).value(), "boom\n");
  EXPECT_EQ(store->GetMeta("plan").value(), std::optional<std::string>("{}"));
  EXPECT_FALSE(store->GetCell("map-human/7.2.0/zzz").value().has_value());

  std::vector<std::string> keys;
  ASSERT_TRUE(store
                  ->ForEachCell([&](std::string_view key, const CellRecord&) {
                    keys.emplace_back(key);
                    return true;
                  })
                  .ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"map-human/7.2.0/a", "map-human/7.2.0/b"}));
}

TEST(Store, KeepsEveryAttempt) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
  CellWrite write = DoneCell("k", "o", "e");
  Attempt failed;
  failed.number = 1;
  failed.outcome = Outcome::kInfraFailure;
  failed.failure = "image digest mismatch";
  write.record.attempts.insert(write.record.attempts.begin(), failed);
  write.record.attempts[1].number = 2;
  ASSERT_TRUE(store->Commit({write}).ok());
  EXPECT_EQ(store->GetCell("k").value()->attempts.size(), 2u);
  EXPECT_EQ(store->GetCell("k").value()->attempts[0].failure, "image digest mismatch");
}

TEST(Store, OutputSeenInAnEarlierCommitStaysReadable) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
  ASSERT_TRUE(store->Commit({DoneCell("map-json/5.2.0/a", "[]\n", "")}).ok());
  ASSERT_TRUE(store->Commit({DoneCell("map-json/7.2.0/a", "[]\n", "")}).ok());
  EXPECT_EQ(store->GetBlob(Sha256Hex("[]\n")).value(), "[]\n");
  EXPECT_EQ(store->GetBlob(Sha256Hex("")).value(), "");
}

TEST(Store, KeepsLeaseGrantsInIdOrderUntilDropped) {
  TempDir dir;
  const LeaseRecord later{(1ull << 32) | 10, "session-b", {"map-json/7.2.0/a"}};
  const LeaseRecord first{(1ull << 32) | 2, "session-a",
                          {"map-human/7.2.0/a", "map-human/7.2.0/b"}};
  auto leases = [](Store& store) {
    std::vector<LeaseRecord> all;
    EXPECT_TRUE(store.ForEachLease([&](const LeaseRecord& lease) {
                       all.push_back(lease);
                       return true;
                     }).ok());
    return all;
  };
  {
    std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
    ASSERT_TRUE(store->Write({DoneCell("map-json/7.2.0/a", "[]\n", "")}, {later, first}).ok());
  }
  std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
  EXPECT_EQ(leases(*store), (std::vector<LeaseRecord>{first, later}));
  ASSERT_TRUE(store->DropLeases().ok());
  EXPECT_TRUE(leases(*store).empty());
  EXPECT_TRUE(store->GetCell("map-json/7.2.0/a").value().has_value());  // cells stay
}

TEST(Store, MissingBlobIsNotFound) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
  EXPECT_EQ(store->GetBlob(std::string(64, '0')).status().code(), StatusCode::kNotFound);
}

TEST(Store, RefusesAFolderThatIsNotAStore) {
  TempDir dir;
  dir.Write("notes/readme.txt", "mine");
  Result<std::unique_ptr<Store>> store =
      Store::Open(dir.path() / "notes", Store::Mode::kCreateIfMissing);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().message(),
            "store " + (dir.path() / "notes").string() + ": exists and is not an imgsweep store");
  EXPECT_EQ(ReadFile(dir.path() / "notes/readme.txt"), "mine");
}

TEST(Store, CreatesTheFoldersAboveANewStore) {
  TempDir dir;
  Result<std::unique_ptr<Store>> store =
      Store::Open(dir.path() / "results" / "today" / "db", Store::Mode::kCreateIfMissing);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "results" / "today" / "db" / "CURRENT"));
}

TEST(Store, MustExistRefusesAMissingStore) {
  TempDir dir;
  Result<std::unique_ptr<Store>> store = Store::Open(dir.path() / "db", Store::Mode::kMustExist);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "db"));
}

TEST(Store, SecondOpenWhileInUseIsRefused) {
  TempDir dir;
  std::unique_ptr<Store> first = OpenOrDie(dir.path() / "db");
  Result<std::unique_ptr<Store>> second =
      Store::Open(dir.path() / "db", Store::Mode::kCreateIfMissing);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message().rfind(
                "store " + (dir.path() / "db").string() + ": in use by another process", 0),
            0u)
      << second.status().message();
}

TEST(Store, ReadOnlyOpensBesideAWriterAndSeesWhatItCommitted) {
  TempDir dir;
  std::unique_ptr<Store> writer = OpenOrDie(dir.path() / "db");
  ASSERT_TRUE(writer->Commit({DoneCell("map-human/7.2.0/a", "Offset\n", "")}).ok());
  Result<std::unique_ptr<Store>> reader = Store::Open(dir.path() / "db", Store::Mode::kReadOnly);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  Result<std::optional<CellRecord>> cell = reader.value()->GetCell("map-human/7.2.0/a");
  ASSERT_TRUE(cell.ok() && cell.value());
  EXPECT_EQ(cell.value()->state, CellState::kDone);
  EXPECT_FALSE(reader.value()->PutMeta("plan", "{}").ok());  // it writes nothing
  EXPECT_EQ(Store::Open(dir.path() / "none", Store::Mode::kReadOnly).status().code(),
            StatusCode::kNotFound);
}

// A record as the store wrote it before digests were packed as bytes: every
// field text or number, digests as hex.
std::string TextDigestRecord(const CellRecord& record) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(&buffer);
  // Text and numbers alike: msgpack-c packs each by its C++ type.
  auto field = [&p](const std::string& name, const auto& value) {
    p.pack(name);
    p.pack(value);
  };
  p.pack_map(4);
  field("state", static_cast<int>(record.state));
  field("round_start", record.round_start);
  field("inputs", record.inputs);
  p.pack(std::string("attempts"));
  p.pack_array(static_cast<std::uint32_t>(record.attempts.size()));
  for (const Attempt& a : record.attempts) {
    p.pack_map(17);
    field("n", a.number);
    field("outcome", static_cast<int>(a.outcome));
    field("exit_code", a.exit_code);
    field("signal", a.signal);
    field("stdout", a.stdout_sha256);
    field("stderr", a.stderr_sha256);
    field("stdout_bytes", a.stdout_bytes);
    field("stderr_bytes", a.stderr_bytes);
    field("duration_us", a.duration_us);
    field("started_unix_ms", a.started_unix_ms);
    field("worker", a.worker);
    field("host", a.host);
    field("version_line", a.version_line);
    field("binary_sha256", a.binary_sha256);
    field("failure", a.failure);
    field("kind", static_cast<int>(a.failure_kind));
    field("layout", a.image_layout);
  }
  return std::string(buffer.data(), buffer.size());
}

TEST(Records, DigestsTakeTheirBytesAndTextDigestsReadTheSame) {
  CellRecord record = DoneCell("k", "Offset\n", "").record;
  record.inputs = Sha256Hex("inputs");
  record.attempts[0].binary_sha256 = Sha256Hex("binary");
  Attempt lost;  // an infrastructure failure has no outputs: its digests are empty
  lost.number = 2;
  lost.outcome = Outcome::kInfraFailure;
  lost.failure = "worker lost";
  lost.binary_sha256 = std::string(63, 'a') + "A";  // not a digest: kept as the text it is
  record.attempts.push_back(lost);

  const std::string packed = EncodeRecord(record);
  const std::string as_text = TextDigestRecord(record);
  Result<CellRecord> from_packed = DecodeRecord("k", packed);
  Result<CellRecord> from_text = DecodeRecord("k", as_text);
  ASSERT_TRUE(from_packed.ok()) << from_packed.status().ToString();
  ASSERT_TRUE(from_text.ok()) << from_text.status().ToString();
  EXPECT_EQ(from_packed.value(), record);
  EXPECT_EQ(from_text.value(), record);
  // Four digests, each 32 bytes instead of 64 hex digits (both behind a
  // two-byte header).
  EXPECT_EQ(as_text.size() - packed.size(), 4u * 32);
}

TEST(Records, ADigestOfAnotherLengthIsDamageNamingTheCell) {
  std::string packed = EncodeRecord(DoneCell("k", "o", "e").record);
  // The "stdout" digest's bin header: 0xc4 (bin 8), length 32.
  const std::size_t at = packed.find(std::string("stdout") + "\xc4\x20");
  ASSERT_NE(at, std::string::npos);
  packed[at + 7] = 31;
  Result<CellRecord> record = DecodeRecord("map-json/7.2.0/a", packed);
  ASSERT_FALSE(record.ok());
  EXPECT_EQ(record.status().code(), StatusCode::kCorruption);
  EXPECT_NE(record.status().message().find("map-json/7.2.0/a"), std::string::npos);
  EXPECT_NE(record.status().message().find("\"stdout\" is not a digest"), std::string::npos)
      << record.status().message();
}

TEST(Store, ALayoutOneStoreOpensAndBecomesLayoutTwoWithTheFirstRecordsWritten) {
  TempDir dir;
  auto layout = [](Store& store) { return store.GetMeta("layout").value(); };
  {
    std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
    EXPECT_EQ(layout(*store), std::optional<std::string>("imgsweep-store 2"));
    ASSERT_TRUE(store->PutMeta("layout", "imgsweep-store 1").ok());
    ASSERT_TRUE(store->Commit({DoneCell("map-human/7.2.0/a", "Offset\n", "")}).ok());
  }
  {
    Result<std::unique_ptr<Store>> reader = Store::Open(dir.path() / "db", Store::Mode::kReadOnly);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    EXPECT_EQ(layout(*reader.value()), std::optional<std::string>("imgsweep-store 1"));
    EXPECT_TRUE(reader.value()->GetCell("map-human/7.2.0/a").value().has_value());
  }
  {
    // Opened for writing, but nothing written: an older imgsweep still reads it.
    std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
    ASSERT_TRUE(store->PutMeta("plan", "{}").ok());
    EXPECT_EQ(layout(*store), std::optional<std::string>("imgsweep-store 1"));
  }
  std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
  ASSERT_TRUE(store->Commit({DoneCell("map-human/7.2.0/b", "Offset\n", "")}).ok());
  EXPECT_EQ(layout(*store), std::optional<std::string>("imgsweep-store 2"));
  EXPECT_TRUE(store->GetCell("map-human/7.2.0/a").value().has_value());
}

TEST(Store, RefusesALayoutItDoesNotKnow) {
  TempDir dir;
  {
    std::unique_ptr<Store> store = OpenOrDie(dir.path() / "db");
    ASSERT_TRUE(store->PutMeta("layout", "imgsweep-store 3").ok());
  }
  Result<std::unique_ptr<Store>> store = Store::Open(dir.path() / "db", Store::Mode::kMustExist);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidInput);
  EXPECT_EQ(store.status().message(),
            "store " + (dir.path() / "db").string() +
                ": layout \"imgsweep-store 3\" is not \"imgsweep-store 2\" or \"imgsweep-store 1\"");
}

}  // namespace
}  // namespace imgsweep
