#include "cli/signals.h"

#include <signal.h>
#include <unistd.h>

#include <csignal>

namespace imgsweep {
namespace {

volatile std::sig_atomic_t g_stop = 0;
void (*g_before_exit)() = nullptr;  // set before the handlers are installed

extern "C" void OnStopSignal(int signal) {
  if (g_stop != 0) {
    static const char kNow[] = "imgsweep: asked to stop twice: exiting now\n";
    (void)!::write(STDERR_FILENO, kNow, sizeof kNow - 1);
    if (g_before_exit != nullptr) g_before_exit();
    ::_exit(128 + signal);
  }
  g_stop = signal;
}

}  // namespace

void StopOnSignals(void (*before_exit)()) {
  g_before_exit = before_exit;
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  ::sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
}

int StopRequested() { return g_stop; }

}  // namespace imgsweep
