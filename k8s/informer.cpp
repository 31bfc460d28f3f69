#include "edgecert/k8s/informer.h"

#include <spdlog/spdlog.h>

#include <mutex>
#include <unordered_set>

namespace edgecert::k8s {

// ---- Store ----

ObjectPtr Store::get(std::string_view key) const {
    std::shared_lock l(mu_);
    auto it = objects_.find(std::string(key));
    return it == objects_.end() ? nullptr : it->second;
}

ObjectPtr Store::get(std::string_view ns, std::string_view name) const {
    return get(meta::key(ns, name));
}

std::vector<ObjectPtr> Store::list() const {
    std::shared_lock l(mu_);
    std::vector<ObjectPtr> out;
    out.reserve(objects_.size());
    for (auto& [k, v] : objects_) out.push_back(v);
    return out;
}

std::vector<ObjectPtr> Store::collect(const std::set<std::string>* keys) const {
    std::vector<ObjectPtr> out;
    if (!keys) return out;
    out.reserve(keys->size());
    for (auto& k : *keys) {
        auto it = objects_.find(k);
        if (it != objects_.end()) out.push_back(it->second);
    }
    return out;
}

std::vector<ObjectPtr> Store::list_namespace(std::string_view ns) const {
    std::shared_lock l(mu_);
    auto it = by_namespace_.find(std::string(ns));
    return collect(it == by_namespace_.end() ? nullptr : &it->second);
}

std::vector<ObjectPtr> Store::list_label(std::string_view key, std::string_view value) const {
    std::shared_lock l(mu_);
    auto it = by_label_.find(std::string(key) + "=" + std::string(value));
    return collect(it == by_label_.end() ? nullptr : &it->second);
}

std::vector<std::string> Store::keys() const {
    std::shared_lock l(mu_);
    std::vector<std::string> out;
    out.reserve(objects_.size());
    for (auto& [k, v] : objects_) out.push_back(k);
    return out;
}

size_t Store::size() const {
    std::shared_lock l(mu_);
    return objects_.size();
}

void Store::index_add(const std::string& key, const json& obj) {
    by_namespace_[meta::namespace_(obj)].insert(key);
    for (auto& [k, v] : meta::labels(obj)) by_label_[k + "=" + v].insert(key);
}

void Store::index_remove(const std::string& key, const json& obj) {
    auto drop = [&](auto& index, const std::string& ik) {
        auto it = index.find(ik);
        if (it == index.end()) return;
        it->second.erase(key);
        if (it->second.empty()) index.erase(it);
    };
    drop(by_namespace_, meta::namespace_(obj));
    for (auto& [k, v] : meta::labels(obj)) drop(by_label_, k + "=" + v);
}

std::vector<Delta> Store::replace(std::vector<json> items, std::string_view scope) {
    std::vector<Delta> out;
    std::unique_lock l(mu_);
    std::unordered_set<std::string> seen;
    seen.reserve(items.size());
    for (auto& item : items) {
        std::string key = meta::key(item);
        seen.insert(key);
        auto it = objects_.find(key);
        if (it != objects_.end() &&
            meta::resource_version(*it->second) == meta::resource_version(item))
            continue;  // unchanged across the relist: nothing to tell anyone
        auto obj = std::make_shared<const json>(std::move(item));
        if (it == objects_.end()) {
            index_add(key, *obj);
            objects_.emplace(key, obj);
            out.push_back(Delta{Delta::Type::Added, nullptr, obj, false});
        } else {
            ObjectPtr old = it->second;
            index_remove(key, *old);
            index_add(key, *obj);
            it->second = obj;
            out.push_back(Delta{Delta::Type::Updated, old, obj, false});
        }
    }
    // Whatever the cache holds that the fresh list lacks was deleted while we were not
    // watching: report it with the last state we saw.
    for (auto it = objects_.begin(); it != objects_.end();) {
        if (seen.count(it->first) || (!scope.empty() && meta::namespace_(*it->second) != scope)) {
            ++it;
            continue;
        }
        index_remove(it->first, *it->second);
        out.push_back(Delta{Delta::Type::Deleted, it->second, it->second, true});
        it = objects_.erase(it);
    }
    return out;
}

std::optional<Delta> Store::apply(WatchEvent&& ev) {
    std::string key = meta::key(ev.object);
    std::unique_lock l(mu_);
    auto it = objects_.find(key);
    if (ev.type == WatchEvent::Type::Deleted) {
        if (it == objects_.end()) return std::nullopt;  // never seen: nothing to retract
        ObjectPtr old = it->second;
        index_remove(key, *old);
        objects_.erase(it);
        return Delta{Delta::Type::Deleted, old, std::make_shared<const json>(std::move(ev.object)),
                     false};
    }
    if (ev.type != WatchEvent::Type::Added && ev.type != WatchEvent::Type::Modified)
        return std::nullopt;
    if (it != objects_.end() &&
        meta::resource_version(*it->second) == meta::resource_version(ev.object))
        return std::nullopt;  // a replayed event: the cache already has exactly this
    auto obj = std::make_shared<const json>(std::move(ev.object));
    if (it == objects_.end()) {
        index_add(key, *obj);
        objects_.emplace(key, obj);
        return Delta{Delta::Type::Added, nullptr, obj, false};
    }
    ObjectPtr old = it->second;
    index_remove(key, *old);
    index_add(key, *obj);
    it->second = obj;
    return Delta{Delta::Type::Updated, old, obj, false};
}

// ---- Informer ----

class Informer::Part final : public ReflectorSink {
  public:
    Part(Informer& owner, Client& client, ReflectorOptions opts)
        : owner_(owner), scope_(opts.ns), reflector_(client, *this, std::move(opts)) {}

    void replace(std::vector<json> items, const std::string&) override {
        owner_.replace(*this, std::move(items));
    }
    void apply(WatchEvent&& ev) override { owner_.apply(std::move(ev)); }
    void error(const Error& e) override { owner_.report(e); }

    Informer& owner_;
    const std::string scope_;
    Reflector reflector_;
    std::thread thread_;
    bool synced_ = false;  // guarded by the owner's sync_mu_
};

Informer::Informer(Client& client, ReflectorOptions opts) : Informer(client, std::move(opts), {}) {}

Informer::Informer(Client& client, ReflectorOptions opts,
                   const std::vector<std::string>& namespaces) {
    if (namespaces.empty()) {
        parts_.push_back(std::make_unique<Part>(*this, client, std::move(opts)));
        return;
    }
    for (const auto& ns : namespaces) {
        ReflectorOptions o = opts;
        o.ns = ns;
        // Distinct seeds: the namespaces' watches should not all time out at the same moment.
        if (o.seed) o.seed += 2 * parts_.size();
        parts_.push_back(std::make_unique<Part>(*this, client, std::move(o)));
    }
}

Informer::~Informer() {
    stop();
}

Reflector& Informer::reflector(size_t i) {
    return parts_.at(i)->reflector_;
}

void Informer::add_handlers(EventHandlers h) {
    handlers_.push_back(std::move(h));
}

void Informer::start() {
    for (auto& p : parts_) {
        if (p->thread_.joinable()) continue;
        Part* part = p.get();
        part->thread_ = std::thread([part] { part->reflector_.run(); });
    }
}

void Informer::cancel() {
    for (auto& p : parts_) p->reflector_.stop();
}

void Informer::stop() {
    cancel();
    for (auto& p : parts_)
        if (p->thread_.joinable()) p->thread_.join();
}

bool Informer::has_synced() const {
    std::lock_guard l(sync_mu_);
    return synced_parts_ == parts_.size();
}

bool Informer::wait_for_sync(std::chrono::milliseconds timeout) const {
    std::unique_lock l(sync_mu_);
    return sync_cv_.wait_for(l, timeout, [&] { return synced_parts_ == parts_.size(); });
}

void Informer::dispatch(const Delta& d) {
    for (auto& h : handlers_) {
        switch (d.type) {
            case Delta::Type::Added:
                if (h.on_add) h.on_add(d.obj);
                break;
            case Delta::Type::Updated:
                if (h.on_update) h.on_update(d.old_obj, d.obj);
                break;
            case Delta::Type::Deleted:
                if (h.on_delete) h.on_delete(d.obj, d.final_state_unknown);
                break;
        }
    }
}

void Informer::replace(Part& part, std::vector<json> items) {
    if (transform_)
        for (auto& i : items) transform_(i);
    {
        std::lock_guard w(write_mu_);
        auto deltas =
            store_.replace(std::move(items), part.scope_);  // the store lock is released here
        for (auto& d : deltas) dispatch(d);
    }
    {
        std::lock_guard l(sync_mu_);
        if (!part.synced_) {
            part.synced_ = true;
            ++synced_parts_;
        }
    }
    sync_cv_.notify_all();
}

void Informer::apply(WatchEvent&& ev) {
    if (transform_) transform_(ev.object);
    std::lock_guard w(write_mu_);
    auto d = store_.apply(std::move(ev));
    if (d) dispatch(*d);
}

void Informer::report(const Error& e) {
    spdlog::debug("informer: {}", e.message);
    if (on_error_) on_error_(e);
}

}  // namespace edgecert::k8s
