#include "platform/signals.h"

#include <pthread.h>

#include <cerrno>

namespace edgecert::platform {

void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

SignalWaiter::SignalWaiter() {
    sigemptyset(&set_);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set_, s);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    ignore_sigpipe();
}

SignalWaiter::Event SignalWaiter::wait(std::chrono::milliseconds timeout) {
    timespec ts{static_cast<time_t>(timeout.count() / 1000), static_cast<long>(timeout.count() % 1000) * 1'000'000};
    int sig = sigtimedwait(&set_, nullptr, &ts);
    switch (sig) {
        case SIGHUP: last_ = "SIGHUP"; return Event::Reload;
        case SIGTERM: last_ = "SIGTERM"; return Event::Stop;
        case SIGINT: last_ = "SIGINT"; return Event::Stop;
        default: return Event::None;  // timeout (EAGAIN) or EINTR
    }
}

}  // namespace edgecert::platform
