// A hostile peer for the protocol tests: connects to a coordinator and sends
// what no worker would. Random bytes; forged results for real cell keys
// (after a hello that holds no version, so it is never given a cell);
// well-formed msgpack of the wrong shape; one frame over the coordinator's
// size limit. It prints what it sent and exits; the coordinator must shrug
// all of it off.
// Usage: rogue_peer ENDPOINT CELL_KEYS_FILE MAX_FRAME_BYTES
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "protocol/messages.h"
#include "protocol/transport.h"

namespace imgsweep {
namespace {

constexpr auto kReplyWait = std::chrono::seconds(20);
constexpr int kRandomFrames = 40;

// Sends once a connection is up: frames are queued only on one. Whatever
// arrives meanwhile is read and ignored, and so is a connection the
// coordinator cuts mid-handshake: a rogue keeps pushing until the deadline.
bool SendOn(DealerSocket& socket, const std::string& frame) {
  const auto deadline = std::chrono::steady_clock::now() + kReplyWait;
  while (std::chrono::steady_clock::now() < deadline) {
    Result<bool> sent = socket.Send(frame);
    if (!sent.ok()) {
      std::fprintf(stderr, "rogue_peer: %s\n", sent.status().message().c_str());
      return false;
    }
    if (sent.value()) return true;
    (void)socket.Receive(std::chrono::milliseconds(10));
  }
  std::fprintf(stderr, "rogue_peer: no connection within %lld s\n",
               static_cast<long long>(kReplyWait.count()));
  return false;
}

// The next frame, up to kReplyWait. Receive also returns early, empty,
// when the socket's handshake completes: that is no answer yet, so it
// waits on (a late handshake event under a sanitizer once read as "no
// answer to hello").
std::optional<std::string> AwaitFrame(DealerSocket& socket) {
  const auto deadline = std::chrono::steady_clock::now() + kReplyWait;
  for (auto now = std::chrono::steady_clock::now(); now < deadline;
       now = std::chrono::steady_clock::now()) {
    Result<std::optional<std::string>> frame =
        socket.Receive(std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
    if (!frame.ok()) {
      std::fprintf(stderr, "rogue_peer: %s\n", frame.status().message().c_str());
      return std::nullopt;
    }
    if (frame.value()) return frame.value();
  }
  return std::nullopt;
}

int Main(const std::string& endpoint, const std::string& keys_file, std::size_t max_frame) {
  Context context;
  auto connect = [&]() { return std::move(DealerSocket::Connect(context, endpoint)).value(); };

  // Random bytes, reproducible from the seed.
  std::mt19937 random(42);
  auto noise = connect();
  for (int i = 0; i < kRandomFrames; ++i) {
    std::string frame(1 + random() % 4096, '\0');
    for (char& c : frame) c = static_cast<char>(random());
    if (!SendOn(*noise, frame)) return 1;
  }

  // Forged results, after a hello that earns a welcome and no work.
  auto forger = connect();
  if (!SendOn(*forger, Encode(Hello{"rogue", "rogue-host", 1, {}, ""}))) return 1;
  std::optional<std::string> answer = AwaitFrame(*forger);
  if (!answer) {
    std::fprintf(stderr, "rogue_peer: no answer to hello within %lld s\n",
                 static_cast<long long>(kReplyWait.count()));
    return 1;
  }
  // It reads the sweep's id from its welcome, as any peer can.
  Result<Message> welcome = Decode(*answer);
  std::string sweep_id;
  if (welcome.ok()) {
    if (auto* w = std::get_if<Welcome>(&welcome.value())) sweep_id = w->sweep_id;
  }
  std::ifstream keys(keys_file);
  std::string key;
  int forged = 0;
  while (std::getline(keys, key)) {
    CellResult r;
    r.key = key;
    r.attempt = 1;
    // Lease ids are the incarnation, then a counter: guess the first ones.
    r.lease_id = (std::uint64_t{1} << 32) | (1 + forged % 4);
    r.sweep_id = sweep_id;
    r.outcome = Outcome::kExited;
    r.stdout_text = "forged\n";
    if (!SendOn(*forger, Encode(r))) return 1;
    ++forged;
  }

  // Valid msgpack, wrong shapes: an unknown kind, a body of the wrong type,
  // a string that claims 4 GiB.
  auto shapes = connect();
  // [version, 99, []], [version, CellResult, "abc"], and a str32 that
  // claims 4 GiB - 1; the version byte is a positive fixint.
  static_assert(kProtocolVersion < 0x80);
  const char v = static_cast<char>(kProtocolVersion);
  const std::string malformed[] = {
      std::string("\x93") + v + std::string("\x63\x90", 2),
      std::string("\x93") + v + std::string("\x06\xa3" "abc", 5),
      std::string("\x93") + v + std::string("\x06\xdb\xff\xff\xff\xff" "x", 7),
  };
  for (const std::string& m : malformed) {
    if (!SendOn(*shapes, m)) return 1;
  }

  // One byte over the limit: ZeroMQ drops the connection before reading it.
  auto big = connect();
  if (!SendOn(*big, std::string(max_frame + 1, 'x'))) return 1;

  std::printf("rogue_peer: sent %d random frames, %d forged results, %zu malformed, 1 oversized\n",
              kRandomFrames, forged, std::size(malformed));
  return 0;
}

}  // namespace
}  // namespace imgsweep

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: rogue_peer ENDPOINT CELL_KEYS_FILE MAX_FRAME_BYTES\n");
    return 2;
  }
  return imgsweep::Main(argv[1], argv[2], std::stoul(argv[3]));
}
