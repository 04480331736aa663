// The process layer against real processes (/bin/sh and coreutils).
#include "worker/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace imgsweep {
namespace {

using std::chrono::milliseconds;

RunOutput Sh(const std::string& script, milliseconds timeout = milliseconds(20'000),
             std::size_t limit = 64u << 20) {
  RunRequest request;
  request.program = "/bin/sh";
  request.args = {"-c", script};
  request.timeout = timeout;
  request.grace = milliseconds(200);
  request.output_limit = limit;
  Result<RunOutput> out = RunCaptured(request);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? out.value() : RunOutput{};
}

TEST(Subprocess, CapturesBothStreamsAndExitCode) {
  RunOutput out = Sh("echo out; echo err >&2; exit 3");
  EXPECT_EQ(out.ending, RunOutput::Ending::kExited);
  EXPECT_EQ(out.exit_code, 3);
  EXPECT_EQ(out.stdout_text, "out\n");
  EXPECT_EQ(out.stderr_text, "err\n");
}

TEST(Subprocess, ReportsTheKillingSignal) {
  RunOutput out = Sh("kill -SEGV $$");
  EXPECT_EQ(out.ending, RunOutput::Ending::kSignaled);
  EXPECT_EQ(out.signal, SIGSEGV);
}

TEST(Subprocess, StdinIsDevNull) {
  RunOutput out = Sh("cat; echo done");
  EXPECT_EQ(out.ending, RunOutput::Ending::kExited);
  EXPECT_EQ(out.stdout_text, "done\n");
}

TEST(Subprocess, RunsInTheGivenDirectory) {
  RunRequest request;
  request.program = "/bin/pwd";
  request.cwd = "/usr";
  Result<RunOutput> out = RunCaptured(request);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.value().stdout_text, "/usr\n");
}

TEST(Subprocess, ReadsBothStreamsConcurrentlySoNeitherPipeFills) {
  // 4 MiB on stderr first: a reader that drained stdout alone would
  // deadlock once the stderr pipe (64 KiB) filled.
  RunOutput out = Sh("head -c 4194304 /dev/zero >&2; head -c 4194304 /dev/zero");
  EXPECT_EQ(out.ending, RunOutput::Ending::kExited);
  EXPECT_EQ(out.stderr_text.size(), 4194304u);
  EXPECT_EQ(out.stdout_text.size(), 4194304u);
}

TEST(Subprocess, DeadlineKillsTheWholeGroupEvenWhenTermIsIgnored) {
  RunOutput out = Sh("trap '' TERM; sleep 60 & sleep 60; echo never", milliseconds(300));
  EXPECT_EQ(out.ending, RunOutput::Ending::kTimeout);
  EXPECT_EQ(out.stdout_text, "");
}

TEST(Subprocess, GrandchildHoldingThePipeDoesNotHangTheRun) {
  // The shell exits at once; its background child keeps stdout open for a
  // minute. The run must end as the shell's exit, not as a timeout.
  RunOutput out = Sh("sleep 60 & echo started", milliseconds(20'000));
  EXPECT_EQ(out.ending, RunOutput::Ending::kExited);
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.stdout_text, "started\n");
}

TEST(Subprocess, OutputOverTheLimitKillsAndIsFlagged) {
  RunOutput out = Sh("yes", milliseconds(20'000), 1u << 20);
  EXPECT_TRUE(out.output_limit_hit);
  EXPECT_EQ(out.stdout_text.size(), 1u << 20);
  EXPECT_NE(out.ending, RunOutput::Ending::kTimeout);
}

TEST(Subprocess, MissingProgramIsAnIoErrorNamingIt) {
  RunRequest request;
  request.program = "/nonexistent/qemu-img";
  Result<RunOutput> out = RunCaptured(request);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kIoError);
  EXPECT_EQ(out.status().message().rfind("cannot start /nonexistent/qemu-img: ", 0), 0u)
      << out.status().message();
}

TEST(BackgroundProcess, StopEndsALongRunningChild) {
  Result<std::unique_ptr<BackgroundProcess>> p =
      BackgroundProcess::Start("/bin/sh", {"-c", "trap '' TERM; sleep 60"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_FALSE(p.value()->WaitFor(milliseconds(0)).ok());
  p.value()->Stop(milliseconds(100));
  Result<int> status = p.value()->WaitFor(milliseconds(0));
  ASSERT_TRUE(status.ok());
  // SIGTERM if it came before the shell set its trap, SIGKILL after.
  EXPECT_TRUE(status.value() == -SIGTERM || status.value() == -SIGKILL) << status.value();
}

TEST(BackgroundProcess, WaitForReturnsTheExitStatus) {
  Result<std::unique_ptr<BackgroundProcess>> p =
      BackgroundProcess::Start("/bin/sh", {"-c", "exit 4"});
  ASSERT_TRUE(p.ok());
  Result<int> status = p.value()->WaitFor(milliseconds(20'000));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status.value(), 4);
}

}  // namespace
}  // namespace imgsweep
