#pragma once
// Records core/v1 Events the way client-go's tools/record does, so `kubectl describe` shows them:
// involvedObject filled from the observed object (uid included: describe's field selector needs
// it); repeats of the same (object, type, reason, message) within 10 minutes PATCH the existing
// Event's count and lastTimestamp instead of creating another; a per-object token bucket (burst
// 25, one token per 5 minutes; client-go EventSourceObjectSpamFilter) drops floods. record()
// never blocks: it enqueues onto a bounded queue drained by a background thread, and counts what
// it had to drop.
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "edgecert/k8s/client.h"
#include "edgecert/k8s/models.h"

namespace edgecert::k8s {

struct EventRecorderOptions {
    std::string component;  // source.component, e.g. "edgecert-controller"
    std::string host;       // source.host (optional)
    size_t queue_capacity = 1000;
    std::chrono::seconds dedupe_window{600};
    int spam_burst = 25;
    std::chrono::seconds spam_refill{300};
    size_t cache_entries = 4096;  // LRU bound for dedupe and spam state
};

class EventRecorder {
  public:
    EventRecorder(Client& client, EventRecorderOptions opts);
    ~EventRecorder();
    EventRecorder(const EventRecorder&) = delete;
    EventRecorder& operator=(const EventRecorder&) = delete;

    // type: "Normal" or "Warning". Returns false when the event was dropped (queue full).
    bool record(const ObjectReference& obj, std::string_view type, std::string_view reason,
                std::string_view message);
    bool record(const json& obj, const ResourceType& rt, std::string_view type,
                std::string_view reason, std::string_view message) {
        return record(ObjectReference::from_object(obj, rt), type, reason, message);
    }

    // Waits (real time, bounded) until everything queued so far has been written or dropped.
    bool flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));
    // Stops the background thread after draining the queue.
    void shutdown();

    struct Stats {
        uint64_t created = 0;
        uint64_t patched = 0;
        uint64_t dropped_queue_full = 0;
        uint64_t dropped_spam = 0;
        uint64_t failed = 0;
    };
    Stats stats() const;

  private:
    struct Pending {
        ObjectReference obj;
        std::string type, reason, message;
        SystemTime at;
    };
    struct Seen {  // an Event we wrote, for dedupe
        std::string name, ns;
        int count = 0;
        SystemTime first;
        SteadyTime last_seen;
    };
    struct Bucket {
        double tokens = 0;
        SteadyTime last{};
    };

    void loop();
    void process(const Pending& p);
    bool allow(const std::string& object_key);
    void touch_lru(const std::string& key);

    Client& client_;
    EventRecorderOptions opts_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::condition_variable idle_cv_;
    std::deque<Pending> queue_;
    bool busy_ = false;
    bool stopping_ = false;
    Stats stats_;
    // Touched by the background thread only.
    std::unordered_map<std::string, Seen> seen_;
    std::unordered_map<std::string, Bucket> buckets_;
    std::list<std::string> lru_;
    std::unordered_map<std::string, std::list<std::string>::iterator> lru_index_;
    uint64_t seq_ = 0;
    std::thread thread_;
};

}  // namespace edgecert::k8s
