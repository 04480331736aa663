// The commands that look at a sweep or a tree and run nothing: status (of
// a store, or of a running coordinator), validate, report, profiles,
// materialize, and making keys.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/keys.h"
#include "protocol/atomic_file.h"
#include "tree/report.h"
#include "tree/tree_check.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

using SteadyClock = std::chrono::steady_clock;

// How long `status --connect` waits for the coordinator's answer.
constexpr auto kLiveStatusWait = std::chrono::seconds(10);

}  // namespace

namespace {

// The coordinator's live JSON as a table for people.
std::string FormatLiveStatus(const nlohmann::json& j, const std::string& endpoint) {
  std::string out = "imgsweep: sweep \"" + j.at("sweep_id").get<std::string>() + "\" at " + endpoint +
                    ": " + std::to_string(j.at("closed").get<std::size_t>()) + "/" +
                    std::to_string(j.at("cells").get<std::size_t>()) + " cells closed, " +
                    std::to_string(j.at("failed").get<std::size_t>()) + " failed, " +
                    std::to_string(j.at("in_flight").get<std::size_t>()) + " in flight\n";
  char line[512];
  out += "workers (" + std::to_string(j.at("workers").size()) + "):\n";
  std::snprintf(line, sizeof line, "  %-20s %-20s %5s %9s %6s %11s  %s\n", "name", "host", "slots",
                "in flight", "done", "last heard", "versions");
  out += line;
  for (const nlohmann::json& w : j.at("workers")) {
    std::string versions;
    for (const nlohmann::json& v : w.at("versions")) {
      if (!versions.empty()) versions += ',';
      versions += v.get<std::string>();
    }
    std::snprintf(line, sizeof line, "  %-20s %-20s %5u %9zu %6zu %8lld ms  %s\n",
                  w.at("name").get<std::string>().c_str(), w.at("host").get<std::string>().c_str(),
                  w.at("slots").get<unsigned>(), w.at("in_flight").get<std::size_t>(),
                  w.at("done").get<std::size_t>(), w.at("last_heard_ms").get<long long>(),
                  versions.c_str());
    out += line;
  }
  out += "shards:\n";
  std::snprintf(line, sizeof line, "  %-12s %6s %6s %8s %9s\n", "version", "done", "failed",
                "pending", "in flight");
  out += line;
  for (const nlohmann::json& sh : j.at("shards")) {
    std::snprintf(line, sizeof line, "  %-12s %6zu %6zu %8zu %9zu\n",
                  sh.at("version").get<std::string>().c_str(), sh.at("done").get<std::size_t>(),
                  sh.at("failed").get<std::size_t>(), sh.at("pending").get<std::size_t>(),
                  sh.at("in_flight").get<std::size_t>());
    out += line;
  }
  if (!j.at("versions_without_worker").empty()) {
    std::string missing;
    for (const nlohmann::json& v : j.at("versions_without_worker")) {
      missing += (missing.empty() ? "" : ", ") + v.get<std::string>();
    }
    out += "versions no connected worker holds: " + missing + "\n";
  }
  // From coordinators before output types were reported, absent.
  std::string types;
  for (const nlohmann::json& t : j.value("types_without_worker", nlohmann::json::array())) {
    types += (types.empty() ? "" : ", ") + t.get<std::string>();
  }
  if (!types.empty()) out += "output types no connected worker runs: " + types + "\n";
  // From coordinators before broken versions were reported, absent.
  for (const nlohmann::json& v : j.value("broken_versions", nlohmann::json::array())) {
    out += "broken version, its cells failed: " + v.get<std::string>() + "\n";
  }
  for (const nlohmann::json& v : j.value("layout_conflicts", nlohmann::json::array())) {
    out += "layout conflict: " + v.get<std::string>() + "\n";
  }
  return out;
}

}  // namespace

int LiveStatusCommand(const LiveStatusFlags& flags) {
  Result<ClientSecurity> security = ClientSecurityOf(flags.curve_secret, flags.coordinator_key);
  if (!security.ok()) return Fail(security.status());
  Context context;
  Result<std::unique_ptr<DealerSocket>> socket =
      DealerSocket::Connect(context, flags.connect, security.value());
  if (!socket.ok()) return Fail(socket.status());
  const std::string request = Encode(StatusRequest{});
  bool sent = false;
  const SteadyClock::time_point deadline = SteadyClock::now() + kLiveStatusWait;
  while (SteadyClock::now() < deadline) {
    if (!sent) {
      Result<bool> s = socket.value()->Send(request);
      if (!s.ok()) return Fail(s.status());
      sent = s.value();
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    Result<std::optional<std::string>> frame =
        socket.value()->Receive(sent ? left : std::chrono::milliseconds(20));
    if (!frame.ok()) return Fail(frame.status());
    if (!frame.value()) continue;
    Result<Message> message = Decode(*frame.value());
    if (!message.ok()) return Fail(Status::IoError("the coordinator's answer: " +
                                                   message.status().message()));
    auto* reply = std::get_if<StatusReply>(&message.value());
    if (reply == nullptr) continue;  // a heartbeat or the like
    if (flags.json) {
      std::printf("%s\n", reply->json.c_str());
      return kExitOk;
    }
    try {
      std::fputs(FormatLiveStatus(nlohmann::json::parse(reply->json), flags.connect).c_str(),
                 stdout);
    } catch (const std::exception& e) {
      return Fail(Status::IoError(std::string("the coordinator's status is not what it should "
                                              "be: ") + e.what()));
    }
    return kExitOk;
  }
  return Fail(Status::IoError("no answer from a coordinator at " + flags.connect + " within " +
                              std::to_string(kLiveStatusWait.count()) + " s"));
}

int StatusCommand(const fs::path& db, bool every_cell, bool json) {
  // Read-only, so it works beside a running coordinator.
  Result<std::unique_ptr<Store>> store = Store::Open(db, Store::Mode::kReadOnly);
  if (!store.ok()) return Fail(store.status());
  Result<SweepState> state = ReadSweepState(*store.value());
  if (!state.ok()) return Fail(state.status());
  const std::string text = json ? SweepStateJson(state.value(), every_cell)
                                : FormatSweepState(state.value(), every_cell);
  std::fputs(text.c_str(), stdout);
  return kExitOk;
}

int KeysGenerateCommand(const fs::path& base) {
  Status st = WriteKeyPair(base);
  if (!st.ok()) return Fail(st);
  std::printf("imgsweep: wrote %s.key (secret, mode 0600) and %s.pub\n", base.c_str(),
              base.c_str());
  return kExitOk;
}

int MaterializeCommand(const fs::path& db, const fs::path& out,
                       const MaterializeOptions& options) {
  Result<std::unique_ptr<Store>> store = Store::Open(db, Store::Mode::kMustExist);
  if (!store.ok()) return Fail(store.status());
  return WriteTree(*store.value(), out, options);
}

int ValidateCommand(const fs::path& out) {
  Result<std::vector<std::string>> violations = ValidateTree(out);
  if (!violations.ok()) return Fail(violations.status());
  for (const std::string& v : violations.value()) std::printf("%s\n", v.c_str());
  if (!violations.value().empty()) {
    std::fprintf(stderr, "imgsweep: %s: %zu violations\n", out.c_str(),
                 violations.value().size());
    return kExitFailed;
  }
  std::fprintf(stderr, "imgsweep: %s is a valid tree\n", out.c_str());
  return kExitOk;
}

int ReportCommand(const fs::path& db, const fs::path& out) {
  Result<std::unique_ptr<Store>> store = Store::Open(db, Store::Mode::kReadOnly);
  if (!store.ok()) return Fail(store.status());
  Result<std::string> page = RenderReport(*store.value());
  if (!page.ok()) return Fail(page.status());
  bool written = false;
  Status st = WriteFileAtomically(out, page.value(), &written);
  if (!st.ok()) return Fail(st);
  std::printf("imgsweep: report at %s (%zu bytes)\n", out.c_str(), page.value().size());
  return kExitOk;
}

int ProfilesCommand(const fs::path& db, const ReportOptions& options) {
  Result<std::unique_ptr<Store>> store = Store::Open(db, Store::Mode::kReadOnly);
  if (!store.ok()) return Fail(store.status());
  Result<std::string> report = ExplainProfiles(*store.value(), options);
  if (!report.ok()) return Fail(report.status());
  std::fputs(report.value().c_str(), stdout);
  return kExitOk;
}

}  // namespace imgsweep
