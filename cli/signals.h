// SIGTERM and SIGINT as orchestrators and terminals send them: the first asks
// the command to stop in order (a worker drains, a coordinator stores what it
// received and tells its workers to go); a second ends the process at once.
// Thread-safety: StopOnSignals once, from main's thread; StopRequested from any.
#ifndef IMGSWEEP_CLI_SIGNALS_H_
#define IMGSWEEP_CLI_SIGNALS_H_

namespace imgsweep {

// Installs the handlers, without SA_RESTART so that a wait wakes up. On
// the second signal, `before_exit` (when given) runs in the handler just
// before the process exits: it must be async-signal-safe.
void StopOnSignals(void (*before_exit)() = nullptr);

// The signal that asked to stop (SIGTERM, SIGINT); 0 while none has.
int StopRequested();

}  // namespace imgsweep

#endif  // IMGSWEEP_CLI_SIGNALS_H_
