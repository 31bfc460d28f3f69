#include "edgecert/k8s/workqueue.h"

#include <algorithm>

namespace edgecert::k8s {

void WorkQueue::add_locked(const std::string& key) {
    if (shutdown_) return;
    if (dirty_.count(key)) return;  // already queued (or queued again after processing)
    dirty_.insert(key);
    if (processing_.count(key)) return;  // done() will re-queue it
    queue_.push_back(key);
    cv_.notify_one();
}

void WorkQueue::add(const std::string& key) {
    std::lock_guard l(mu_);
    add_locked(key);
}

void WorkQueue::add_after(const std::string& key, std::chrono::milliseconds delay) {
    std::lock_guard l(mu_);
    if (shutdown_) return;
    if (delay.count() <= 0) {
        add_locked(key);
        return;
    }
    SteadyTime at = clock_.steady_now() + delay;
    auto it = waiting_.find(key);
    if (it != waiting_.end()) {
        if (it->second <= at) return;  // an earlier wake-up is already scheduled
        auto range = waiting_by_time_.equal_range(it->second);
        for (auto r = range.first; r != range.second; ++r)
            if (r->second == key) {
                waiting_by_time_.erase(r);
                break;
            }
        it->second = at;
    } else {
        waiting_.emplace(key, at);
    }
    waiting_by_time_.emplace(at, key);
    cv_.notify_all();
}

std::chrono::milliseconds WorkQueue::when(const std::string& key) const {
    std::lock_guard l(mu_);
    auto it = failures_.find(key);
    int n = it == failures_.end() ? 0 : it->second;
    double d = static_cast<double>(opts_.base_delay.count());
    for (int i = 0; i < n && d < static_cast<double>(opts_.max_delay.count()); ++i) d *= 2;
    return std::chrono::milliseconds(
        static_cast<int64_t>(std::min(d, static_cast<double>(opts_.max_delay.count()))));
}

void WorkQueue::add_rate_limited(const std::string& key) {
    auto d = when(key);
    {
        std::lock_guard l(mu_);
        ++failures_[key];
    }
    add_after(key, d);
}

void WorkQueue::forget(const std::string& key) {
    std::lock_guard l(mu_);
    failures_.erase(key);
}

int WorkQueue::num_requeues(const std::string& key) const {
    std::lock_guard l(mu_);
    auto it = failures_.find(key);
    return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::promote_locked() {
    auto now = clock_.steady_now();
    while (!waiting_by_time_.empty() && waiting_by_time_.begin()->first <= now) {
        std::string key = waiting_by_time_.begin()->second;
        waiting_by_time_.erase(waiting_by_time_.begin());
        waiting_.erase(key);
        add_locked(key);
    }
}

std::optional<std::string> WorkQueue::pop_locked() {
    if (queue_.empty()) return std::nullopt;
    std::string key = std::move(queue_.front());
    queue_.pop_front();
    dirty_.erase(key);
    processing_.insert(key);
    return key;
}

std::optional<std::string> WorkQueue::try_get() {
    std::lock_guard l(mu_);
    if (shutdown_) return std::nullopt;
    promote_locked();
    return pop_locked();
}

std::optional<std::string> WorkQueue::get(std::chrono::milliseconds poll) {
    std::unique_lock l(mu_);
    for (;;) {
        if (shutdown_) return std::nullopt;
        promote_locked();
        if (auto k = pop_locked()) return k;
        auto wait = poll;
        if (!waiting_by_time_.empty()) {
            auto until = std::chrono::duration_cast<std::chrono::milliseconds>(
                waiting_by_time_.begin()->first - clock_.steady_now());
            wait = std::clamp(until, std::chrono::milliseconds(1), poll);
        }
        cv_.wait_for(l, wait);
    }
}

void WorkQueue::done(const std::string& key) {
    std::lock_guard l(mu_);
    processing_.erase(key);
    if (dirty_.count(key) && !shutdown_) {
        queue_.push_back(key);
        cv_.notify_one();
    }
}

void WorkQueue::shutdown() {
    std::lock_guard l(mu_);
    shutdown_ = true;
    cv_.notify_all();
}

bool WorkQueue::shutting_down() const {
    std::lock_guard l(mu_);
    return shutdown_;
}

size_t WorkQueue::len() const {
    std::lock_guard l(mu_);
    return queue_.size();
}

size_t WorkQueue::delayed_len() const {
    std::lock_guard l(mu_);
    return waiting_.size();
}

std::optional<SteadyTime> WorkQueue::next_ready_at() const {
    std::lock_guard l(mu_);
    if (waiting_by_time_.empty()) return std::nullopt;
    return waiting_by_time_.begin()->first;
}

}  // namespace edgecert::k8s
