#pragma once
// Informer: a Reflector feeding a Store (one writer: the reflector thread; many readers under a
// shared_mutex), with indexes by namespace and by label key=value, and event handlers that run
// OUTSIDE the store lock (C++ Core Guidelines CP.22), in the order the changes were applied.
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "edgecert/k8s/reflector.h"

namespace edgecert::k8s {

struct Delta {
    enum class Type { Added, Updated, Deleted };
    Type type = Type::Added;
    ObjectPtr old_obj;  // Updated/Deleted: what the cache held before
    ObjectPtr obj;      // Added/Updated: the new state; Deleted: the last known state
    // Deleted because a relist no longer had it: the delete itself was missed (client-go
    // DeletedFinalStateUnknown); obj is the last state we saw.
    bool final_state_unknown = false;
};

class Store {
  public:
    ObjectPtr get(std::string_view key) const;
    ObjectPtr get(std::string_view ns, std::string_view name) const;
    std::vector<ObjectPtr> list() const;
    std::vector<ObjectPtr> list_namespace(std::string_view ns) const;
    std::vector<ObjectPtr> list_label(std::string_view key, std::string_view value) const;
    std::vector<std::string> keys() const;
    size_t size() const;

    // Writer side (the reflector thread only).
    std::vector<Delta> replace(std::vector<json> items);
    std::optional<Delta> apply(WatchEvent&& ev);

  private:
    void index_add(const std::string& key, const json& obj);
    void index_remove(const std::string& key, const json& obj);
    std::vector<ObjectPtr> collect(const std::set<std::string>* keys) const;

    mutable std::shared_mutex mu_;
    std::unordered_map<std::string, ObjectPtr> objects_;
    std::unordered_map<std::string, std::set<std::string>> by_namespace_;
    std::unordered_map<std::string, std::set<std::string>> by_label_;  // "key=value"
};

struct EventHandlers {
    std::function<void(const ObjectPtr& obj)> on_add;
    std::function<void(const ObjectPtr& old_obj, const ObjectPtr& new_obj)> on_update;
    std::function<void(const ObjectPtr& last, bool final_state_unknown)> on_delete;
};

// Handlers for a level-triggered consumer that treats an add and an update alike (only the new
// state matters): upsert(obj) for both, del(last) for a delete.
inline EventHandlers upsert_delete_handlers(std::function<void(const ObjectPtr&)> upsert,
                                            std::function<void(const ObjectPtr&)> del) {
    return {upsert, [upsert](const ObjectPtr&, const ObjectPtr& o) { upsert(o); },
            [del](const ObjectPtr& o, bool) { del(o); }};
}

class Informer final : private ReflectorSink {
  public:
    Informer(Client& client, ReflectorOptions opts);
    ~Informer() override;
    Informer(const Informer&) = delete;
    Informer& operator=(const Informer&) = delete;

    // Register before start().
    void add_handlers(EventHandlers h);
    // Optional, before start(): rewrites each object before it is cached and handed to
    // handlers (e.g. meta::strip_managed_fields). Runs on the reflector thread.
    void set_transform(std::function<void(json&)> f) { transform_ = std::move(f); }
    // Optional: called with every reported (non-fatal) error.
    void set_error_handler(std::function<void(const Error&)> f) { on_error_ = std::move(f); }

    void start();  // runs the reflector on its own thread
    void stop();   // cancels the in-flight request and joins

    bool has_synced() const;
    // Real-time wait for the first full list (for callers and integration tests).
    bool wait_for_sync(std::chrono::milliseconds timeout) const;

    const Store& store() const { return store_; }
    Reflector& reflector() { return reflector_; }

  private:
    void replace(std::vector<json> items, const std::string& rv) override;
    void apply(WatchEvent&& ev) override;
    void error(const Error& e) override;
    void dispatch(const Delta& d);

    Store store_;
    Reflector reflector_;
    std::vector<EventHandlers> handlers_;
    std::function<void(const Error&)> on_error_;
    std::function<void(json&)> transform_;
    std::thread thread_;
    mutable std::mutex sync_mu_;
    mutable std::condition_variable sync_cv_;
    bool synced_ = false;
};

}  // namespace edgecert::k8s
