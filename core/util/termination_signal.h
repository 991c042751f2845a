#ifndef MOE_CORE_UTIL_TERMINATION_SIGNAL_H_
#define MOE_CORE_UTIL_TERMINATION_SIGNAL_H_

namespace moe {

// Services stop cleanly on SIGINT or SIGTERM: main blocks both before any
// thread starts (threads inherit the mask), serves, and waits for one here
// instead of running a handler in an arbitrary thread.
void BlockTerminationSignals();

// Returns the signal number once SIGINT or SIGTERM arrives.
int WaitForTerminationSignal();

// The same, giving up after `milliseconds`: 0 when no signal came.
int WaitForTerminationSignalFor(int milliseconds);

}  // namespace moe

#endif  // MOE_CORE_UTIL_TERMINATION_SIGNAL_H_
