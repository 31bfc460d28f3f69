#include "edgecert/k8s/reflector.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace edgecert::k8s {

std::chrono::milliseconds Backoff::next() {
    double base = static_cast<double>(p_.initial.count());
    for (int i = 0; i < n_ && base < static_cast<double>(p_.cap.count()); ++i) base *= p_.factor;
    base = std::min(base, static_cast<double>(p_.cap.count()));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    double d = base * (1.0 + p_.jitter * u(rng_));
    d = std::min(d, static_cast<double>(p_.cap.count()));
    ++n_;
    return std::chrono::milliseconds(static_cast<int64_t>(d));
}

std::string_view to_string(Reflector::State s) {
    switch (s) {
        case Reflector::State::NeedList:
            return "NeedList";
        case Reflector::State::Watching:
            return "Watching";
        case Reflector::State::Backoff:
            return "Backoff";
        case Reflector::State::Stopped:
            return "Stopped";
    }
    return "?";
}

Reflector::Reflector(Client& client, ReflectorSink& sink, ReflectorOptions opts)
    : client_(client),
      sink_(sink),
      opts_(std::move(opts)),
      backoff_(opts_.backoff, opts_.seed ? opts_.seed : std::random_device{}()),
      rng_(opts_.seed ? opts_.seed + 1 : std::random_device{}()) {}

void Reflector::run() {
    while (step() != State::Stopped) {
    }
}

void Reflector::stop() {
    stop_.store(true);
}

Reflector::State Reflector::state() const {
    std::lock_guard l(mu_);
    return state_;
}

std::string Reflector::resource_version() const {
    std::lock_guard l(mu_);
    return rv_;
}

Reflector::Stats Reflector::stats() const {
    std::lock_guard l(mu_);
    return stats_;
}

void Reflector::set_state(State s) {
    std::lock_guard l(mu_);
    state_ = s;
}

void Reflector::wait(std::chrono::milliseconds d) {
    // Slices keep stop() responsive on a RealClock; a FakeClock advances instantly.
    while (d.count() > 0 && !stop_.load()) {
        auto slice = std::min(d, std::chrono::milliseconds(100));
        client_.clock().sleep_for(slice);
        d -= slice;
    }
}

Reflector::State Reflector::step() {
    State s = state();
    if (stop_.load()) s = State::Stopped;
    switch (s) {
        case State::NeedList:
            s = do_list();
            break;
        case State::Watching:
            s = do_watch();
            break;
        case State::Backoff:
            s = do_backoff();
            break;
        case State::Stopped:
            break;
    }
    if (stop_.load()) s = State::Stopped;
    set_state(s);
    return s;
}

Reflector::State Reflector::do_list() {
    ListOptions lo;
    lo.label_selector = opts_.label_selector;
    lo.field_selector = opts_.field_selector;
    lo.limit = opts_.page_size;
    // A consistent read (""), not "0": after a 410 the cache may be as stale as what we had.
    auto r = client_.list(opts_.type, opts_.ns, lo);
    {
        std::lock_guard l(mu_);
        ++stats_.lists;
    }
    if (stop_.load()) return State::Stopped;
    if (!r.ok()) {
        sink_.error(r.error());
        std::lock_guard l(mu_);
        after_backoff_ = State::NeedList;
        if (r.error().retry_after)
            min_wait_ =
                std::chrono::duration_cast<std::chrono::milliseconds>(*r.error().retry_after);
        return State::Backoff;
    }
    std::string rv = r->resource_version;
    sink_.replace(std::move(r->items), rv);
    std::lock_guard l(mu_);
    rv_ = rv;
    return State::Watching;
}

Reflector::State Reflector::do_watch() {
    WatchOptions wo;
    wo.label_selector = opts_.label_selector;
    wo.field_selector = opts_.field_selector;
    wo.allow_bookmarks = true;
    int lo = static_cast<int>(opts_.min_watch_timeout.count());
    int hi = std::max(lo, static_cast<int>(opts_.max_watch_timeout.count()));
    int timeout = std::uniform_int_distribution<int>(lo, hi)(rng_);
    wo.timeout_seconds = timeout;
    wo.idle_timeout = opts_.idle_timeout.count() > 0
                          ? opts_.idle_timeout
                          : std::chrono::milliseconds((timeout + 30) * 1000LL);
    {
        std::lock_guard l(mu_);
        wo.resource_version = rv_;
        ++stats_.watches;
        stats_.last_watch_timeout_s = timeout;
    }

    bool gone = false;
    std::optional<Error> event_error;
    int object_events = 0;
    auto started = client_.clock().steady_now();
    auto r = client_.watch(
        opts_.type, opts_.ns, wo,
        [&](WatchEvent&& ev) {
            if (ev.type == WatchEvent::Type::Error) {
                Error e = status_object_error(ev.object, "watch " + opts_.type.qualified_plural());
                if (e.code == ErrorCode::Gone)
                    gone = true;
                else
                    event_error = e;
                sink_.error(e);
                return false;
            }
            std::string rv = meta::resource_version(ev.object);
            if (ev.type == WatchEvent::Type::Bookmark) {
                if (!rv.empty()) {
                    std::lock_guard l(mu_);
                    rv_ = rv;
                }
                sink_.bookmark(rv);
                return !stop_.load();
            }
            ++object_events;
            sink_.apply(std::move(ev));
            if (!rv.empty()) {
                std::lock_guard l(mu_);
                rv_ = rv;
            }
            return !stop_.load();
        },
        &stop_,
        [&](const Error& e) {
            {
                std::lock_guard l(mu_);
                ++stats_.decode_errors;
            }
            sink_.error(e);
        });
    if (stop_.load()) return State::Stopped;
    auto lived = client_.clock().steady_now() - started;

    bool healthy = object_events > 0 || lived >= std::chrono::seconds(60);
    if (healthy) backoff_.reset();

    std::lock_guard l(mu_);
    if (!r.ok() && r.error().code == ErrorCode::Gone) gone = true;
    if (gone) {
        // Our resourceVersion is compacted away: only a relist can resync. A second 410 in a
        // row without progress backs off so a confused server is not hammered.
        ++stats_.relists_after_gone;
        if (++consecutive_gone_ > 1 && object_events == 0) {
            after_backoff_ = State::NeedList;
            return State::Backoff;
        }
        return State::NeedList;
    }
    consecutive_gone_ = 0;
    if (event_error) {
        // An ERROR event other than 410: client-go restarts ListAndWatch.
        after_backoff_ = State::NeedList;
        return State::Backoff;
    }
    if (!r.ok()) {
        sink_.error(r.error());
        const Error& e = r.error();
        if (e.retry_after)
            min_wait_ = std::chrono::duration_cast<std::chrono::milliseconds>(*e.retry_after);
        // Connection trouble, throttling and 5xx: keep our place and re-watch from the same RV.
        bool rewatch = e.code == ErrorCode::Transient || e.code == ErrorCode::RateLimited;
        after_backoff_ = rewatch ? State::Watching : State::NeedList;
        return State::Backoff;
    }
    // Clean end of the stream (timeoutSeconds reached, or the server closed it). A watch that
    // ends within a second having delivered nothing is suspicious (client-go "very short
    // watch"): back off instead of spinning.
    if (object_events == 0 && lived < std::chrono::seconds(1) && r->events == 0) {
        after_backoff_ = State::Watching;
        return State::Backoff;
    }
    return State::Watching;
}

Reflector::State Reflector::do_backoff() {
    std::chrono::milliseconds d = backoff_.next();
    State next;
    {
        std::lock_guard l(mu_);
        d = std::max(d, min_wait_);
        min_wait_ = std::chrono::milliseconds(0);
        ++stats_.backoffs;
        stats_.last_backoff = d;
        next = after_backoff_;
    }
    wait(d);
    return stop_.load() ? State::Stopped : next;
}

}  // namespace edgecert::k8s
