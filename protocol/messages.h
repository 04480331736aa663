// The messages between the coordinator and its workers, one msgpack record per
// ZeroMQ frame. Every frame is an envelope [protocol version, kind, body]; see
// docs/protocol.md for the fields and the order in which they flow.
//
// Frames come from the network, so Decode checks the envelope, the kind, every
// field's type and the ranges of enums and never throws: a bad frame is a
// Status naming what was wrong. Thread-safety: free functions over values.
#ifndef IMGSWEEP_PROTOCOL_MESSAGES_H_
#define IMGSWEEP_PROTOCOL_MESSAGES_H_

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/frame_shape.h"
#include "protocol/status.h"

namespace imgsweep {

// Raised whenever a message changes shape. A peer that speaks another
// version is refused at hello with a reason that names both versions.
inline constexpr std::uint32_t kProtocolVersion = 6;

// The largest frame either side accepts; the sockets enforce it too.
inline constexpr std::size_t kMaxFrameBytes = 512u << 20;
// Only a result or a status reply carries bulk: every other kind is refused
// beyond this, so a large but well-formed heartbeat is no way to spend the
// other side's memory.
inline constexpr std::size_t kMaxControlFrameBytes = 8u << 20;

// The literal that stands for a worker's testdata root: in a cell's args
// ("$TESTDATA_ROOT/<path>" names the image) and, replacing the real root, in
// every stdout and stderr stored, so the tree does not depend on the host.
inline constexpr std::string_view kTestdataRootToken = "$TESTDATA_ROOT";

// Liveness, both ways: each side sends a heartbeat when it has sent nothing
// else for a heartbeat, and takes the other for gone after `liveness`
// heartbeats of silence. The coordinator's values reach workers in the
// welcome.
inline constexpr auto kDefaultHeartbeat = std::chrono::milliseconds(1000);
inline constexpr unsigned kDefaultLiveness = 3;

// One qemu-img release a worker can run.
struct VersionInfo {
  std::string name;           // the version directory, e.g. "7.2.0"
  std::string binary_sha256;  // of the real binary (bin/qemu-img when wrapped)
  std::string version_line;   // first line of `qemu-img --version`
  bool operator==(const VersionInfo&) const = default;
};

// A version directory a worker holds but cannot run: its `--version`
// timed out, exited non-zero or was killed (a missing library, a wrong
// loader). The worker offers the rest.
struct BrokenVersion {
  std::string name;
  std::string reason;  // "--version timed out after 30 s", "--version exited 127: ..."
  bool operator==(const BrokenVersion&) const = default;
};

// How one file lies on a worker's disk, where it has holes. A file missing
// from Hello::sparse is dense: every byte allocated, as a git checkout
// writes it. `fingerprint` is "sparse:" and 16 hex digits of the sha256 of
// its data extents; two files with the same bytes and the same fingerprint
// print the same `qemu-img map`.
struct FileLayout {
  std::string path;  // relative to the testdata root
  std::string fingerprint;
  bool operator==(const FileLayout&) const = default;
};

// The layout of every file a worker's hello does not list: every byte
// allocated.
inline constexpr std::string_view kDenseLayout = "dense";
// "dense", or "sparse:" and 16 lowercase hex digits.
bool IsLayoutFingerprint(std::string_view text);

// worker -> coordinator, first message on a connection.
struct Hello {
  std::string name;  // unique within the fleet
  std::string host;
  std::uint32_t slots = 0;  // cells it runs at once
  std::vector<VersionInfo> versions;
  // Random per worker process: a hello with a known name and the same
  // session is that worker coming back on a new connection (its leases
  // stay); another session under the name replaces it.
  std::string session;
  std::vector<BrokenVersion> broken = {};
  // The files under its testdata root that have holes, when it runs cells on
  // the checkout as it lies (--image-layout as-is); empty when it runs them
  // on its dense staged copy.
  std::vector<FileLayout> sparse = {};
  // Its command table's JSON (its --command-table), empty for the built-in
  // one: the coordinator gives it cells of those output types alone, since
  // it would refuse others.
  std::string command_table = {};
  bool operator==(const Hello&) const = default;
};

// coordinator -> worker: accepted.
struct Welcome {
  std::string sweep_id;
  std::uint32_t heartbeat_ms = 0;
  // Heartbeats missed in a row before either side takes the other for gone.
  std::uint32_t liveness = 0;
  bool operator==(const Welcome&) const = default;
};

// coordinator -> worker: not accepted, and why. The worker exits.
struct Refused {
  std::string reason;
  bool operator==(const Refused&) const = default;
};

// worker -> coordinator: room for this many more cells.
struct Credit {
  std::uint32_t cells = 0;
  bool operator==(const Credit&) const = default;
};

// One cell as a worker runs it. `args` follow the binary; an argument that
// starts with "$TESTDATA_ROOT/" names a file under the worker's testdata root.
struct CellSpec {
  std::string key;  // "<output type>/<version>/<image id>"
  std::string version;
  std::vector<std::string> args;
  std::string image_path;  // relative to the testdata root
  std::string image_sha256;
  std::uint32_t timeout_ms = 0;
  std::uint32_t attempt = 0;  // 1 for the first try
  // The digest of the inputs the coordinator expects this worker to run
  // the cell with (Plan::CacheKey); the result carries it back.
  std::string inputs = {};
  bool operator==(const CellSpec&) const = default;
};

// coordinator -> worker: a batch of cells of one shard under one lease.
struct Assignment {
  std::uint64_t lease_id = 0;
  std::int64_t deadline_unix_ms = 0;  // the coordinator requeues the cells after it
  std::vector<CellSpec> cells;
  bool operator==(const Assignment&) const = default;
};

// How a cell ended. The first three are the cell's own data (a baseline);
// kInfraFailure means this host could not produce one and another may.
// kUnsupported is the coordinator's, never a worker's: the release is older
// than its output type's "since" (the command table), so nothing ran; it is
// refused on the wire.
enum class Outcome : std::uint8_t {
  kExited = 0,
  kSignaled = 1,
  kTimeout = 2,
  kInfraFailure = 3,
  kUnsupported = 4,
};
// "exited", "signaled", "timeout", "infra-failure", "unsupported"
const char* OutcomeName(Outcome outcome);

// Why an attempt was an infrastructure failure (kNone for a cell's own
// outcome). kWorkerLost and kLeaseExpired come from the coordinator itself,
// the others from workers. Numbers never change meaning.
enum class FailureKind : std::uint8_t {
  kNone = 0,
  kSpawnError = 1,         // the process could not be started
  kBinaryMissing = 2,      // the worker does not hold the version
  kBinaryUnrunnable = 3,   // it started but its loader or interpreter failed (126/127)
  kImageMismatch = 4,      // the worker's image is missing or has other bytes
  kOutputLimit = 5,        // a stream went over the cap; the process was killed
  kPathRefused = 6,        // an image path or argument that leaves the testdata root
  kWorkerLost = 7,         // the worker went silent or away holding the cell
  kLeaseExpired = 8,       // the worker kept the cell past its lease
  kImageLayout = 9,        // this host cannot keep the image's staged copy dense
};
inline constexpr FailureKind kLastFailureKind = FailureKind::kImageLayout;
// "spawn-error", "binary-missing", ..., "" for kNone.
const char* FailureKindName(FailureKind kind);

// worker -> coordinator.
struct CellResult {
  std::string key;
  std::uint32_t attempt = 0;
  std::uint64_t lease_id = 0;
  Outcome outcome = Outcome::kExited;
  std::int32_t exit_code = 0;  // kExited
  std::int32_t signal = 0;     // kSignaled
  std::string stdout_text;     // the testdata root already replaced
  std::string stderr_text;
  std::uint64_t duration_us = 0;
  std::int64_t started_unix_ms = 0;
  std::string failure;  // kInfraFailure: what went wrong, for people
  FailureKind failure_kind = FailureKind::kNone;  // kInfraFailure: which kind
  // The sweep whose welcome the cell came under, and its spec's `inputs`:
  // a late result counts only for the sweep and inputs it ran with.
  std::string sweep_id = {};
  std::string inputs = {};
  bool operator==(const CellResult&) const = default;
};

// worker -> coordinator: several results in one frame, each as a result
// message would carry it: what finished at once, so a fleet of short cells
// spends one frame, not one per cell (at most kResultsPerFrame).
struct Results {
  std::vector<CellResult> results;
  bool operator==(const Results&) const = default;
};
inline constexpr std::size_t kResultsPerFrame = 64;
// Outputs beyond this end a frame early; a larger result goes alone.
inline constexpr std::size_t kResultsFrameBytes = 1u << 20;

// coordinator -> worker: these results are durably stored; forget them.
struct Ack {
  std::vector<std::string> keys;
  bool operator==(const Ack&) const = default;
};

// Either way: still here.
struct Heartbeat {
  bool operator==(const Heartbeat&) const = default;
};

// coordinator -> worker: the sweep is over; exit.
struct Shutdown {
  std::string reason;
  bool operator==(const Shutdown&) const = default;
};

// coordinator -> peer: this connection has not said hello (the coordinator
// restarted, or took the worker for gone); say it again. A worker answers
// with its hello and then re-sends every result not yet acknowledged.
struct HelloFirst {
  bool operator==(const HelloFirst&) const = default;
};

// anyone -> coordinator: what is going on? Needs no hello, so `imgsweep
// status --connect` can ask; with CURVE only allowed keys get this far.
struct StatusRequest {
  bool operator==(const StatusRequest&) const = default;
};

// coordinator -> asker: the live state as JSON (docs/protocol.md).
struct StatusReply {
  std::string json;
  bool operator==(const StatusReply&) const = default;
};

using Message = std::variant<Hello, Welcome, Refused, Credit, Assignment, CellResult, Ack,
                             Heartbeat, Shutdown, HelloFirst, StatusRequest, StatusReply, Results>;

// The message's kind as a word for logs: "hello", "result", ...
const char* MessageName(const Message& message);

std::string Encode(const Message& message);
// The frame of Results{results}, without copying them.
std::string EncodeResults(std::span<const CellResult> results);
// kInvalidInput naming the problem: not msgpack, another protocol version,
// an unknown kind, a field of the wrong type or out of range.
Result<Message> Decode(std::string_view frame);

}  // namespace imgsweep

#endif  // IMGSWEEP_PROTOCOL_MESSAGES_H_
