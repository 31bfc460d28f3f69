#pragma once
// Process signals, kept in src/platform (DESIGN.md). Long-running commands block their signals
// before starting any thread, so every thread inherits the mask, and take them synchronously on
// one control thread: no async-signal-safety traps, no handler races with the event loops.
#include <chrono>
#include <csignal>

namespace edgecert::platform {

// A peer that closes mid-write must be an error return (EPIPE), never a dead process.
void ignore_sigpipe();

class SignalWaiter {
public:
    enum class Event { None, Reload, Stop };
    // Blocks SIGHUP (Reload), SIGTERM and SIGINT (Stop) in the calling thread.
    SignalWaiter();
    // Waits up to `timeout` for one of them; None on timeout.
    Event wait(std::chrono::milliseconds timeout);
    // The signal behind the last Stop ("SIGTERM" / "SIGINT"), for logs.
    const char* last_name() const { return last_; }

private:
    sigset_t set_;
    const char* last_ = "";
};

}  // namespace edgecert::platform
