#include "controller/runner.h"

#include <spdlog/spdlog.h>

namespace edgecert::controller {

namespace {
constexpr const char* kReconcileHelp = "Reconciles finished, by controller and result.";
}

Runner::Runner(Options opts, Clock& clock, metrics::Registry& registry, ReconcileFn reconcile)
    : opts_(std::move(opts)),
      reconcile_(std::move(reconcile)),
      queue_(clock, opts_.queue) {
    auto counter = [&](const char* result) {
        return registry.counter("edgecert_controller_reconcile_total", kReconcileHelp,
                                {{"controller", opts_.name}, {"result", result}});
    };
    c_success_ = counter("success");
    c_requeue_ = counter("requeue");
    c_error_ = counter("error");
    c_invalid_ = counter("invalid");
    g_depth_ = registry.gauge("edgecert_controller_workqueue_depth",
                              "Keys waiting to be reconciled, by controller.",
                              {{"controller", opts_.name}});
    if (opts_.workers < 1) opts_.workers = 1;
}

Runner::~Runner() { stop(); }

void Runner::update_depth() { g_depth_->set(static_cast<double>(queue_.len())); }

void Runner::enqueue(const std::string& key) {
    queue_.add(key);
    update_depth();
}

void Runner::enqueue_after(const std::string& key, std::chrono::milliseconds delay) {
    queue_.add_after(key, delay);
    update_depth();
}

void Runner::start() {
    std::lock_guard l(mu_);
    if (started_ || stopped_) return;
    started_ = true;
    running_ = true;
    for (int i = 0; i < opts_.workers; ++i) threads_.emplace_back([this] { worker(); });
    spdlog::info("controller {}: started {} worker(s)", opts_.name, opts_.workers);
}

void Runner::stop() {
    std::vector<std::thread> threads;
    {
        std::lock_guard l(mu_);
        if (stopped_) return;
        stopped_ = true;
        queue_.shutdown();
        threads.swap(threads_);
    }
    // Joined outside mu_: a worker never takes it, but keep stop() free of lock-order questions.
    for (auto& t : threads) t.join();
    if (running_.exchange(false)) spdlog::info("controller {}: stopped", opts_.name);
}

void Runner::worker() {
    while (auto key = queue_.get(opts_.poll)) {
        update_depth();
        handle(*key);
    }
}

bool Runner::process_one() {
    auto key = queue_.try_get();
    if (!key) return false;
    update_depth();
    handle(*key);
    return true;
}

void Runner::handle(const std::string& key) {
    Result<Requeue> r = Error(ErrorCode::Permanent, "not run");
    try {
        r = reconcile_(key);
    } catch (const std::exception& e) {
        // Reconcilers return Result; an exception escaping one is a bug, but one bad object must
        // not take the worker thread (and with it the controller) down. Retried with backoff.
        r = Error(ErrorCode::Transient, std::string("uncaught exception: ") + e.what());
    }
    if (r.ok()) {
        queue_.forget(key);
        if (r->after) {
            queue_.add_after(key, *r->after);
            c_requeue_->inc();
        } else {
            c_success_->inc();
        }
    } else if (r.error().code == ErrorCode::InvalidConfig) {
        // Not retried: the reconcile reported it (Warning Event); the next change to the object
        // enqueues the key again.
        queue_.forget(key);
        c_invalid_->inc();
        spdlog::debug("controller {}: {}: {}", opts_.name, key, r.error().message);
    } else {
        const Error& e = r.error();
        if (e.retry_after) {
            // The server said when: honour it instead of the (shorter) early backoff steps.
            queue_.add_after(key, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      *e.retry_after));
        } else {
            queue_.add_rate_limited(key);
        }
        c_error_->inc();
        spdlog::warn("controller {}: reconcile {} failed ({}, retry {}): {}", opts_.name, key,
                     to_string(e.code), queue_.num_requeues(key), e.message);
    }
    queue_.done(key);
    update_depth();
}

Runner::Stats Runner::stats() const {
    Stats s;
    s.success = static_cast<uint64_t>(c_success_->value());
    s.requeue = static_cast<uint64_t>(c_requeue_->value());
    s.error = static_cast<uint64_t>(c_error_->value());
    s.invalid = static_cast<uint64_t>(c_invalid_->value());
    return s;
}

}  // namespace edgecert::controller
