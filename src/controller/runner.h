#pragma once
// The one reconcile runner every controller uses (DESIGN.md convention 7): a level-triggered loop
// over a rate-limited k8s::WorkQueue with N worker threads. A reconcile is handed a key only —
// never why it ran — and re-reads whatever it needs from the informer caches.
//
//   ok(Requeue{})            → forget(key): its failure backoff starts over
//   ok(Requeue{after = d})   → forget(key) + add_after(key, d) (renewal timers, polling)
//   error InvalidConfig      → forget(key), NOT requeued: a bad spec waits for the next change
//                              of the object (the reconcile reports it as a Warning Event)
//   any other error          → add_rate_limited(key): per-key exponential backoff
//
// Keys may be enqueued before start() (informer handlers run while a replica is not leading):
// they wait, deduplicated, until workers run. Lifecycle is one-shot: start() once, stop() once
// (the WorkQueue's shutdown is final). A replica that loses leadership exits and restarts clean,
// like client-go controllers, so a restartable runner is not needed.
//
// Metrics (on the given Registry):
//   edgecert_controller_reconcile_total{controller, result="success|requeue|error|invalid"}
//   edgecert_controller_workqueue_depth{controller}  (keys ready to be processed)
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/base/metrics.h"
#include "edgecert/base/result.h"
#include "edgecert/k8s/workqueue.h"

namespace edgecert::controller {

struct Requeue {
    // Reconcile this key again after `after` (even if nothing changes); nullopt: only on change.
    std::optional<std::chrono::milliseconds> after;

    static Requeue done() { return {}; }
    static Requeue in(std::chrono::milliseconds d) { return Requeue{d}; }
};

using ReconcileFn = std::function<Result<Requeue>(const std::string& key)>;

class Runner {
  public:
    struct Options {
        std::string name;  // the `controller` label, e.g. "shim", "certificate"
        int workers = 1;
        k8s::WorkQueue::Options queue{};
        // How often a blocked worker re-checks delayed keys against the Clock (real time).
        std::chrono::milliseconds poll{100};
    };

    Runner(Options opts, Clock& clock, metrics::Registry& registry, ReconcileFn reconcile);
    ~Runner();  // stop()
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    // Thread-safe; callable from informer handlers at any time (also before start()).
    void enqueue(const std::string& key);
    void enqueue_after(const std::string& key, std::chrono::milliseconds delay);

    // Starts the worker threads (once; later calls do nothing).
    void start();
    // Shuts the queue down, lets in-flight reconciles finish and joins the workers. Idempotent.
    void stop();
    bool running() const { return running_.load(); }

    // Processes at most one ready key on the calling thread (non-blocking). For tests driving the
    // runner with a FakeClock instead of start(). Returns false when no key was ready.
    bool process_one();

    const std::string& name() const { return opts_.name; }
    k8s::WorkQueue& queue() { return queue_; }
    // Reconciles finished so far, by result (tests and logs).
    struct Stats {
        uint64_t success = 0, requeue = 0, error = 0, invalid = 0;
    };
    Stats stats() const;

  private:
    void worker();
    void handle(const std::string& key);
    void update_depth();

    Options opts_;
    ReconcileFn reconcile_;
    k8s::WorkQueue queue_;
    metrics::Counter* c_success_;
    metrics::Counter* c_requeue_;
    metrics::Counter* c_error_;
    metrics::Counter* c_invalid_;
    metrics::Gauge* g_depth_;
    std::mutex mu_;  // start/stop
    std::atomic<bool> running_{false};
    bool started_ = false;
    bool stopped_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace edgecert::controller
