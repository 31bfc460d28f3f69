#include "edgecert/k8s/event_recorder.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

namespace edgecert::k8s {

EventRecorder::EventRecorder(Client& client, EventRecorderOptions opts)
    : client_(client), opts_(std::move(opts)) {
    thread_ = std::thread([this] { loop(); });
}

EventRecorder::~EventRecorder() {
    shutdown();
}

void EventRecorder::shutdown() {
    {
        std::lock_guard l(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool EventRecorder::record(const ObjectReference& obj, std::string_view type,
                           std::string_view reason, std::string_view message) {
    Pending p{obj, std::string(type), std::string(reason), std::string(message),
              client_.clock().now()};
    {
        std::lock_guard l(mu_);
        if (stopping_ || queue_.size() >= opts_.queue_capacity) {
            ++stats_.dropped_queue_full;
            return false;
        }
        queue_.push_back(std::move(p));
    }
    cv_.notify_one();
    return true;
}

bool EventRecorder::flush(std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return idle_cv_.wait_for(l, timeout, [&] { return queue_.empty() && !busy_; });
}

EventRecorder::Stats EventRecorder::stats() const {
    std::lock_guard l(mu_);
    return stats_;
}

void EventRecorder::loop() {
    std::unique_lock l(mu_);
    for (;;) {
        cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) {
            if (stopping_) break;
            continue;
        }
        Pending p = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
        l.unlock();
        process(p);
        l.lock();
        busy_ = false;
        if (queue_.empty()) idle_cv_.notify_all();
    }
    idle_cv_.notify_all();
}

void EventRecorder::touch_lru(const std::string& key) {
    // O(1): the index points at the key's list node (a linear scan of up to cache_entries keys
    // per Event was the recorder's top cost with a thousand certificates in flight).
    auto idx = lru_index_.find(key);
    if (idx != lru_index_.end()) {
        lru_.splice(lru_.begin(), lru_, idx->second);
    } else {
        lru_.push_front(key);
        lru_index_.emplace(key, lru_.begin());
    }
    while (lru_.size() > opts_.cache_entries) {
        const std::string& victim = lru_.back();
        seen_.erase(victim);
        buckets_.erase(victim);
        lru_index_.erase(victim);
        lru_.pop_back();
    }
}

bool EventRecorder::allow(const std::string& object_key) {
    auto now = client_.clock().steady_now();
    auto [it, fresh] = buckets_.try_emplace(object_key);
    Bucket& b = it->second;
    if (fresh) {
        b.tokens = opts_.spam_burst;
        b.last = now;
    } else {
        double refill = std::chrono::duration<double>(now - b.last).count() /
                        static_cast<double>(opts_.spam_refill.count());
        b.tokens = std::min<double>(opts_.spam_burst, b.tokens + refill);
        b.last = now;
    }
    if (b.tokens < 1.0) return false;
    b.tokens -= 1.0;
    return true;
}

void EventRecorder::process(const Pending& p) {
    // Spam filter per source + object (client-go keys it on source, kind, namespace, name, uid).
    std::string object_key = opts_.component + "\x1f" + p.obj.kind + "\x1f" + p.obj.namespace_ +
                             "\x1f" + p.obj.name + "\x1f" + p.obj.uid;
    if (!allow(object_key)) {
        std::lock_guard l(mu_);
        ++stats_.dropped_spam;
        return;
    }
    touch_lru(object_key);

    std::string ns = p.obj.namespace_.empty() ? "default" : p.obj.namespace_;
    std::string dedupe_key = object_key + "\x1f" + p.type + "\x1f" + p.reason + "\x1f" + p.message;
    auto now_steady = client_.clock().steady_now();
    auto it = seen_.find(dedupe_key);
    if (it != seen_.end() && now_steady - it->second.last_seen < opts_.dedupe_window) {
        Seen& s = it->second;
        json patch = {{"count", s.count + 1}, {"lastTimestamp", format_time(p.at)}};
        auto r = client_.patch(resources::Event, s.ns, s.name, PatchType::Merge, patch);
        if (r.ok()) {
            ++s.count;
            s.last_seen = now_steady;
            touch_lru(dedupe_key);
            std::lock_guard l(mu_);
            ++stats_.patched;
            return;
        }
        if (r.error().code != ErrorCode::NotFound) {
            spdlog::warn("event recorder: patching Event {}/{}: {}", s.ns, s.name,
                         r.error().message);
            std::lock_guard l(mu_);
            ++stats_.failed;
            return;
        }
        seen_.erase(it);  // the Event expired on the server (TTL): create a new one
    }

    Event e;
    // client-go names events "<object>.<hex unix nanos>"; the sequence number keeps two events in
    // the same nanosecond (or under a fake clock) apart.
    auto nanos =
        std::chrono::duration_cast<std::chrono::nanoseconds>(p.at.time_since_epoch()).count();
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "%llx", static_cast<unsigned long long>(nanos) + seq_++);
    e.name = (p.obj.name.empty() ? std::string("event") : p.obj.name) + "." + suffix;
    e.namespace_ = ns;
    e.involved_object = p.obj;
    e.reason = p.reason;
    e.message = p.message;
    e.type = p.type;
    e.source_component = opts_.component;
    e.source_host = opts_.host;
    e.first_timestamp = e.last_timestamp = p.at;
    e.count = 1;
    auto r = client_.create(resources::Event, ns, e.to_json());
    if (!r.ok()) {
        spdlog::warn("event recorder: creating Event for {}/{} {}: {}", ns, p.obj.name, p.reason,
                     r.error().message);
        std::lock_guard l(mu_);
        ++stats_.failed;
        return;
    }
    seen_[dedupe_key] = Seen{e.name, ns, 1, p.at, now_steady};
    touch_lru(dedupe_key);
    std::lock_guard l(mu_);
    ++stats_.created;
}

}  // namespace edgecert::k8s
