#include "protocol/messages.h"
#include "protocol/utf8.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>
#include <string>

namespace imgsweep {
namespace {

const std::string kSha(64, 'b');

template <typename T>
void ExpectRoundTrip(const T& original) {
  const std::string frame = Encode(original);
  Result<Message> decoded = Decode(frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_TRUE(std::holds_alternative<T>(decoded.value())) << MessageName(decoded.value());
  EXPECT_EQ(std::get<T>(decoded.value()), original);
}

CellSpec SampleCell() {
  return CellSpec{"map-json/7.2.0/raw-empty",
                  "7.2.0",
                  {"map", "--output=json", "$TESTDATA_ROOT/images/raw/empty.raw"},
                  "images/raw/empty.raw",
                  kSha,
                  30000,
                  2,
                  std::string(64, 'd')};
}

TEST(Messages, HelloRoundTrips) {
  ExpectRoundTrip(Hello{"w1",
                        "host-a",
                        4,
                        {{"7.2.0", kSha, "qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)"},
                         {"10.0.2", kSha, "qemu-img version 10.0.2"}},
                        "5f3a9c01d2e4b687",
                        {{"9.0.0", "--version exited 127: error while loading shared libraries"}},
                        {{"images/a.raw", "sparse:0123456789abcdef"}},
                        R"({"table_format": 1, "commands": []})"});
}
TEST(Messages, WelcomeRoundTrips) { ExpectRoundTrip(Welcome{"sweep-1", 1000, 3}); }
TEST(Messages, HelloFirstRoundTrips) { ExpectRoundTrip(HelloFirst{}); }
TEST(Messages, StatusRoundTrips) {
  ExpectRoundTrip(StatusRequest{});
  ExpectRoundTrip(StatusReply{R"({"cells": 440})"});
}
TEST(Messages, InfraFailureKeepsItsKind) {
  CellResult r;
  r.key = "map-human/5.2.0/vhdx-empty";
  r.outcome = Outcome::kInfraFailure;
  r.failure = "output-limit: more than 67108864 bytes on one stream";
  r.failure_kind = FailureKind::kOutputLimit;
  ExpectRoundTrip(r);
  EXPECT_STREQ(FailureKindName(FailureKind::kOutputLimit), "output-limit");
  EXPECT_STREQ(FailureKindName(FailureKind::kWorkerLost), "worker-lost");
}
TEST(Messages, RefusedRoundTrips) { ExpectRoundTrip(Refused{"protocol version 2"}); }
TEST(Messages, CreditRoundTrips) { ExpectRoundTrip(Credit{8}); }
TEST(Messages, AssignmentRoundTrips) {
  ExpectRoundTrip(Assignment{42, 1790000000000, {SampleCell(), SampleCell()}});
}
TEST(Messages, ResultRoundTripsWithBinaryOutput) {
  CellResult r;
  r.key = "map-human/5.2.0/vhdx-empty";
  r.attempt = 1;
  r.lease_id = 7;
  r.outcome = Outcome::kSignaled;
  r.exit_code = 0;
  r.signal = 11;
  r.stdout_text = std::string("Offset\0\xff\n", 9);
  r.stderr_text = "qemu-img: boom\n";
  r.duration_us = 5123;
  r.started_unix_ms = 1790000000123;
  r.failure = "";
  r.sweep_id = "0123456789abcdef0123456789abcdef";
  r.inputs = std::string(64, 'c');
  ExpectRoundTrip(r);
}
// Several results in one frame: the same frame whether made from the
// message or from the results in place; an empty or overfull one is refused.
TEST(Messages, ResultsRoundTripAndHoldOneToSixtyFour) {
  std::vector<CellResult> results(3);
  for (std::size_t i = 0; i < results.size(); ++i) {
    results[i].key = "map-json/7.2.0/img" + std::to_string(i);
    results[i].attempt = 1;
    results[i].stdout_text = std::string(i * 10, 'x');
  }
  ExpectRoundTrip(Results{results});
  EXPECT_EQ(EncodeResults(results), Encode(Results{results}));
  EXPECT_EQ(Decode(Encode(Results{})).status().message(),
            "results: 0 results; a frame holds 1 to 64");
  EXPECT_EQ(Decode(Encode(Results{std::vector<CellResult>(65)})).status().message(),
            "results: 65 results; a frame holds 1 to 64");
  results[1].outcome = Outcome::kUnsupported;  // a worker's claim of it is refused in a batch too
  EXPECT_EQ(Decode(EncodeResults(results)).status().message(), "result: field \"outcome\": unknown value 4");
}
TEST(Messages, AckRoundTrips) { ExpectRoundTrip(Ack{{"a/1.0.0/x", "b/1.0.0/y"}}); }
TEST(Messages, HeartbeatRoundTrips) { ExpectRoundTrip(Heartbeat{}); }
TEST(Messages, ShutdownRoundTrips) { ExpectRoundTrip(Shutdown{"the sweep is complete"}); }

// A frame built by hand: [version, kind, body].
template <typename Body>
std::string Frame(std::uint64_t version, std::uint64_t kind, const Body& body) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  p.pack_array(3);
  p.pack(version);
  p.pack(kind);
  p.pack(body);
  return std::string(buffer.data(), buffer.size());
}

std::string ErrorOf(std::string_view frame) {
  Result<Message> m = Decode(frame);
  EXPECT_FALSE(m.ok());
  return m.ok() ? "" : m.status().message();
}

TEST(Messages, RefusesAnotherProtocolVersionNamingBoth) {
  EXPECT_EQ(ErrorOf(Frame(1, 4, std::vector<int>{1})),
            "protocol version 1 is not supported (this side speaks " + std::to_string(kProtocolVersion) + ")");
}

TEST(Messages, RefusesUnknownKind) {
  EXPECT_EQ(ErrorOf(Frame(kProtocolVersion, 99, std::vector<int>{})), "unknown message kind 99");
}

TEST(Messages, RefusesFieldOfWrongTypeNamingIt) {
  EXPECT_EQ(ErrorOf(Frame(kProtocolVersion, 4, std::vector<std::string>{"many"})),
            "credit: field \"cells\": wrong type or out of range");
}

TEST(Messages, RefusesMissingFieldNamingIt) {
  EXPECT_EQ(ErrorOf(Frame(kProtocolVersion, 2, std::vector<std::string>{"sweep"})),
            "welcome: field \"heartbeat_ms\" is missing");
}

TEST(Messages, RefusesOutOfRangeNumbers) {
  EXPECT_EQ(ErrorOf(Frame(kProtocolVersion, 4, std::vector<std::uint64_t>{1ull << 40})),
            "credit: field \"cells\": wrong type or out of range");
}

TEST(Messages, RefusesUnknownOutcome) {
  // A result body packed by hand with outcome 9.
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  p.pack_array(3);
  p.pack(kProtocolVersion);
  p.pack(6);
  p.pack_array(14);
  p.pack(std::string("k"));
  p.pack(1);
  p.pack(1);
  p.pack(9);
  for (int i = 0; i < 2; ++i) p.pack(0);
  for (int i = 0; i < 2; ++i) p.pack(std::string());
  for (int i = 0; i < 2; ++i) p.pack(0);
  p.pack(std::string());
  p.pack(0);
  for (int i = 0; i < 2; ++i) p.pack(std::string());  // sweep_id, inputs
  EXPECT_EQ(ErrorOf(std::string_view(buffer.data(), buffer.size())),
            "result: field \"outcome\": unknown value 9");
}

TEST(Messages, RefusesUnknownFailureKind) {
  CellResult r;
  r.key = "k";
  r.outcome = Outcome::kInfraFailure;
  std::string frame = Encode(r);
  // failure_kind, a positive fixint, before two empty strings.
  char& kind = frame[frame.size() - 3];
  ASSERT_EQ(static_cast<unsigned char>(kind), 0u);
  kind = 42;
  EXPECT_EQ(ErrorOf(frame), "result: field \"failure_kind\": unknown value 42");
}

TEST(Messages, RefusesNonMsgpackAndTruncatedFrames) {
  EXPECT_EQ(ErrorOf("\xc1"), "frame is not msgpack (bad byte at offset 0)");
  const std::string frame = Encode(Hello{"w", "h", 1, {}, ""});
  EXPECT_EQ(ErrorOf(frame.substr(0, frame.size() - 2)), "frame ends in the middle of a value");
  EXPECT_EQ(ErrorOf(frame + "x"), "frame has 1 bytes after the message");
}

TEST(Messages, RefusesLengthsTheFrameCannotHold) {
  // An array header claiming 2^32-1 elements in a 5-byte frame.
  EXPECT_EQ(ErrorOf(std::string("\xdd\xff\xff\xff\xff", 5)),
            "frame declares an array of 4294967295 items, more than its 5 bytes can hold");
  // Arrays nested in one another, each claiming the whole frame: together
  // they claim more than it holds, though none does alone.
  std::string nested;
  for (int i = 0; i < 4; ++i) nested += std::string("\xdc\x00\x20", 3);  // array16 of 32
  nested += std::string(20, '\xc0');
  ASSERT_EQ(nested.size(), 32u);
  EXPECT_EQ(ErrorOf(nested), "frame declares an array of 32 items, more than its 32 bytes can hold");
  // A map's pairs are two values each: 4 pairs cannot fit in 6 bytes.
  EXPECT_EQ(ErrorOf(std::string("\xde\x00\x04\xc0\xc0\xc0", 6)),
            "frame declares a map of 8 items, more than its 6 bytes can hold");
}

// A heartbeat envelope whose body `body` packs: frames Encode never makes.
template <typename Body>
std::string HeartbeatFrame(Body body) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  p.pack_array(3);
  p.pack(kProtocolVersion);
  p.pack(8);  // heartbeat
  body(p);
  return std::string(buffer.data(), buffer.size());
}

TEST(Messages, RefusesFramesThatReallyHoldTooManyValues) {
  // A body that truly holds kMaxFrameItems + 1 nils: well-formed, but 16
  // bytes of decoder memory for each of its bytes.
  const std::string frame = HeartbeatFrame([](msgpack::packer<msgpack::sbuffer>& p) {
    p.pack_array(kMaxFrameItems + 1);
    for (std::size_t i = 0; i <= kMaxFrameItems; ++i) p.pack_nil();
  });
  EXPECT_EQ(ErrorOf(frame), "frame holds more than " + std::to_string(kMaxFrameItems) + " values");
}

TEST(Messages, RefusesDeepNestingAndExtValues) {
  EXPECT_EQ(ErrorOf(std::string(kMaxFrameDepth + 1, '\x91') + '\xc0'),
            "frame nests containers deeper than " + std::to_string(kMaxFrameDepth));
  EXPECT_EQ(ErrorOf(std::string("\xd4\x01\x00", 3)),
            "frame holds a msgpack ext value, which no message has");
}

TEST(Messages, OnlyResultsAndStatusRepliesCarryBulk) {
  // A heartbeat padded with a string past kMaxControlFrameBytes: the body
  // decoder would skip the extra field, so the size is what refuses it.
  const std::string frame = HeartbeatFrame([](msgpack::packer<msgpack::sbuffer>& p) {
    p.pack_array(1);
    p.pack(std::string(kMaxControlFrameBytes, 'x'));
  });
  EXPECT_EQ(ErrorOf(frame),
            "frame of kind 8 has " + std::to_string(frame.size()) +
                " bytes; only results or a status reply may be over " +
                std::to_string(kMaxControlFrameBytes));
  CellResult big;
  big.key = "k";
  big.stdout_text = std::string(kMaxControlFrameBytes, 'x');
  Result<Message> decoded = Decode(Encode(big));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(std::get<CellResult>(decoded.value()).stdout_text.size(), kMaxControlFrameBytes);
}

TEST(Messages, RefusesEnvelopeOfWrongShape) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, std::vector<int>{1, 4});
  EXPECT_EQ(ErrorOf(std::string_view(buffer.data(), buffer.size())),
            "frame is not an envelope [version, kind, body]");
}

TEST(Utf8Test, TellsWellFormedTextFromOtherBytes) {
  EXPECT_TRUE(IsUtf8("qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7) \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsUtf8("\xff"));              // never in UTF-8
  EXPECT_FALSE(IsUtf8("\xc0\xaf"));          // overlong "/"
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(IsUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsUtf8("\xe2\x82"));          // cut short
  EXPECT_EQ(ToUtf8("a\xff" "b\xe2\x82"), "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(ToUtf8("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(FirstNonUtf8Field(Hello{"w1", "h\xff", 1, {}, "s"}), "field \"host\"");
  CellResult r;
  r.stdout_text = "\xff\xfe";  // outputs are bytes
  EXPECT_EQ(FirstNonUtf8Field(r), "");
  r.failure = "spawn-error: \xff";
  EXPECT_EQ(FirstNonUtf8Field(r), "field \"failure\"");
}

}  // namespace
}  // namespace imgsweep
