#pragma once
// Informer: a Reflector feeding a Store (one writer at a time: a reflector thread; many readers
// under a shared_mutex), with indexes by namespace and by label key=value, and event handlers
// that run OUTSIDE the store lock (C++ Core Guidelines CP.22), in the order the changes were
// applied. Confined to a set of namespaces it runs one list/watch per namespace into the one
// cache, as controller-runtime's multi-namespace cache does: RBAC can grant a namespace's
// objects without granting the cluster-wide list.
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

    // Writer side (the reflector threads, one at a time). A relist replaces the objects in
    // `scope` (a namespace; empty: every object) and leaves other namespaces alone.
    std::vector<Delta> replace(std::vector<json> items, std::string_view scope = {});
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

class Informer final {
  public:
    Informer(Client& client, ReflectorOptions opts);
    // One list/watch per namespace (opts.ns is ignored); empty `namespaces`: opts.ns as given.
    Informer(Client& client, ReflectorOptions opts, const std::vector<std::string>& namespaces);
    ~Informer();
    Informer(const Informer&) = delete;
    Informer& operator=(const Informer&) = delete;

    // Register before start().
    void add_handlers(EventHandlers h);
    // Optional, before start(): rewrites each object before it is cached and handed to
    // handlers (e.g. meta::strip_managed_fields). Runs on a reflector thread.
    void set_transform(std::function<void(json&)> f) { transform_ = std::move(f); }
    // Optional: called with every reported (non-fatal) error, on a reflector thread.
    void set_error_handler(std::function<void(const Error&)> f) { on_error_ = std::move(f); }

    void start();   // runs each reflector on its own thread
    void cancel();  // asks every list/watch to stop, without waiting
    void stop();    // cancels and joins

    // Every namespace's first full list is in the cache.
    bool has_synced() const;
    // Real-time wait for the first full lists (for callers and integration tests).
    bool wait_for_sync(std::chrono::milliseconds timeout) const;

    const Store& store() const { return store_; }
    // The list/watch of the i-th namespace (one when not confined to namespaces).
    Reflector& reflector(size_t i = 0);
    size_t reflector_count() const { return parts_.size(); }

  private:
    class Part;  // one namespace's Reflector and thread (informer.cpp)
    void replace(Part& part, std::vector<json> items);
    void apply(WatchEvent&& ev);
    void report(const Error& e);
    void dispatch(const Delta& d);

    Store store_;
    std::vector<std::unique_ptr<Part>> parts_;
    std::vector<EventHandlers> handlers_;
    std::function<void(const Error&)> on_error_;
    std::function<void(json&)> transform_;
    // Reflector threads take turns: a store change and its handlers run as one step, so every
    // handler sees the changes in the order they were applied.
    std::mutex write_mu_;
    mutable std::mutex sync_mu_;
    mutable std::condition_variable sync_cv_;
    size_t synced_parts_ = 0;
};

}  // namespace edgecert::k8s
