#pragma once
// A rate-limited work queue with client-go semantics (util/workqueue):
// - add() dedupes: a key waiting in the queue is queued once;
// - a key being processed is never handed out twice: added again meanwhile, it is marked dirty
//   and re-queued by done();
// - add_rate_limited() waits a per-key exponential backoff (5 ms doubling to 1000 s) until
//   forget(); add_after() delays; shutdown() wakes every waiter.
// Delays are measured on the injected Clock; try_get() never blocks (FakeClock tests).
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "edgecert/base/clock.h"

namespace edgecert::k8s {

class WorkQueue {
  public:
    struct Options {
        std::chrono::milliseconds base_delay{5};
        std::chrono::milliseconds max_delay{1000 * 1000};
    };
    explicit WorkQueue(Clock& clock) : WorkQueue(clock, Options{}) {}
    WorkQueue(Clock& clock, Options opts) : clock_(clock), opts_(opts) {}

    void add(const std::string& key);
    void add_after(const std::string& key, std::chrono::milliseconds delay);
    void add_rate_limited(const std::string& key);
    // Stop tracking the key's failures (after a successful reconcile).
    void forget(const std::string& key);
    int num_requeues(const std::string& key) const;
    // The delay add_rate_limited() would use now (without counting it).
    std::chrono::milliseconds when(const std::string& key) const;

    // Blocks until a key is ready or the queue is shut down (nullopt). Delayed keys are
    // re-checked against the Clock at least every `poll` of real time.
    std::optional<std::string> get(std::chrono::milliseconds poll = std::chrono::milliseconds(100));
    // Non-blocking: a ready key (promoting due delayed keys first), or nullopt.
    std::optional<std::string> try_get();
    // Processing of `key` finished.
    void done(const std::string& key);

    void shutdown();
    bool shutting_down() const;
    size_t len() const;          // ready keys
    size_t delayed_len() const;  // waiting on add_after / add_rate_limited
    // Earliest time a delayed key becomes ready, if any.
    std::optional<SteadyTime> next_ready_at() const;

  private:
    void add_locked(const std::string& key);
    void promote_locked();
    std::optional<std::string> pop_locked();

    Clock& clock_;
    Options opts_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> queue_;
    std::unordered_set<std::string> dirty_;  // queued or to be re-queued
    std::unordered_set<std::string> processing_;
    // Delayed keys: earliest ready time per key, plus a time-ordered index.
    std::unordered_map<std::string, SteadyTime> waiting_;
    std::multimap<SteadyTime, std::string> waiting_by_time_;
    std::unordered_map<std::string, int> failures_;
    bool shutdown_ = false;
};

}  // namespace edgecert::k8s
