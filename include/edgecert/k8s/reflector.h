#pragma once
// The list/watch loop as an explicit state machine (client-go tools/cache/reflector.go, kube-rs
// runtime/watcher.rs):
//
//   NeedList ──list ok──► Watching ──stream ended cleanly──► Watching (same RV, no relist)
//      ▲  │                 │  │
//      │  └─list failed──┐  │  └─transport error / 429 / 5xx / very short watch──► Backoff
//      │                 ▼  │                                                    (then Watching)
//      └──── 410 Gone / ERROR{code 410, Expired|Gone} (relist; deletions computed by the sink)
//
// Watches start from the list's resourceVersion with allowWatchBookmarks=true and a random
// timeoutSeconds in [300, 600]; bookmarks move the resourceVersion only. A stream silent for
// longer than the server's own timeout is dead (idle detector). Backoff: 0.8 s doubling to 30 s
// with jitter, reset after a healthy stream. All waiting goes through the injected Clock.
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/k8s/client.h"

namespace edgecert::k8s {

// Exponential backoff with jitter: next() = min(cap, initial·factor^n)·(1 + jitter·U[0,1)),
// never above cap. reset() starts over.
class Backoff {
  public:
    struct Policy {
        std::chrono::milliseconds initial{800};
        std::chrono::milliseconds cap{30'000};
        double factor = 2.0;
        double jitter = 0.5;
    };
    explicit Backoff(Policy p, uint64_t seed = std::random_device{}()) : p_(p), rng_(seed) {}
    std::chrono::milliseconds next();
    void reset() { n_ = 0; }
    int attempts() const { return n_; }

  private:
    Policy p_;
    std::mt19937_64 rng_;
    int n_ = 0;
};

// Receives what the reflector learns, on the reflector's thread (the one writer).
class ReflectorSink {
  public:
    virtual ~ReflectorSink() = default;
    // A full (re)list: the sink replaces its contents and reports objects that vanished as
    // deletions (client-go DeltaFIFO.Replace / DeletedFinalStateUnknown).
    virtual void replace(std::vector<json> items, const std::string& resource_version) = 0;
    // ADDED / MODIFIED / DELETED.
    virtual void apply(WatchEvent&& ev) = 0;
    virtual void bookmark(const std::string& /*resource_version*/) {}
    // Reported, not fatal: list/watch failures, undecodable lines, ERROR events.
    virtual void error(const Error& /*e*/) {}
};

struct ReflectorOptions {
    ResourceType type;
    std::string ns;  // empty: all namespaces
    std::string label_selector;
    std::string field_selector;
    int64_t page_size = 500;
    std::chrono::seconds min_watch_timeout{300};
    std::chrono::seconds max_watch_timeout{600};
    // 0: the chosen watch timeout + 30 s (the server must have closed the stream by then).
    std::chrono::milliseconds idle_timeout{0};
    Backoff::Policy backoff{};
    uint64_t seed = 0;  // 0: random
};

class Reflector {
  public:
    enum class State { NeedList, Watching, Backoff, Stopped };

    Reflector(Client& client, ReflectorSink& sink, ReflectorOptions opts);

    // Runs step() until stop().
    void run();
    // One transition (a list, one whole watch stream, or one backoff wait).
    State step();
    // Thread-safe: cancels the in-flight list/stream and makes run() return.
    void stop();

    State state() const;
    std::string resource_version() const;
    struct Stats {
        int lists = 0;
        int watches = 0;
        int relists_after_gone = 0;
        int backoffs = 0;
        int decode_errors = 0;
        std::chrono::milliseconds last_backoff{0};
        int last_watch_timeout_s = 0;
    };
    Stats stats() const;

  private:
    State do_list();
    State do_watch();
    State do_backoff();
    void set_state(State s);
    // Clock-driven wait that returns early on stop().
    void wait(std::chrono::milliseconds d);

    Client& client_;
    ReflectorSink& sink_;
    ReflectorOptions opts_;
    Backoff backoff_;
    std::mt19937_64 rng_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mu_;  // guards the fields below
    State state_ = State::NeedList;
    State after_backoff_ = State::NeedList;
    std::chrono::milliseconds min_wait_{0};  // from Retry-After
    std::string rv_;
    Stats stats_;
    int consecutive_gone_ = 0;
};

std::string_view to_string(Reflector::State s);

}  // namespace edgecert::k8s
