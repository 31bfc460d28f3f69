#include "tls/cert_store.h"

#include "edgecert/base/clock.h"
#include "edgecert/base/cpus.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <thread>

namespace edgecert::tls {

CertStore::CertStore(CertStoreOptions opts, const Clock& clock, SnapshotHolder& holder)
    : opts_(std::move(opts)), clock_(clock), holder_(holder), snap_(CertSnapshot::build({}, "", true)) {}

void CertStore::apply(std::vector<CertChange> changes, bool full) {
    auto t0 = std::chrono::steady_clock::now();
    std::lock_guard l(mu_);
    // Parse and validate first, in parallel for big batches (initial load, full rescan): this
    // is the expensive part (X.509 decoding), and each pair is independent.
    std::vector<std::optional<Result<std::shared_ptr<const CertEntry>>>> parsed(changes.size());
    auto parse_range = [&](size_t from, size_t step) {
        for (size_t i = from; i < changes.size(); i += step)
            if (changes[i].kind == CertChange::Kind::Upsert)
                parsed[i].emplace(parse_cert_entry(changes[i].name, changes[i].cert_pem, changes[i].key_pem, clock_));
    };
    // One parser per usable CPU: a second thread on the same CPU only adds OpenSSL lock traffic.
    size_t threads = changes.size() >= 64 ? std::min(8u, usable_cpus()) : 1;
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(parse_range, t, threads);
    parse_range(0, threads);
    for (auto& th : pool) th.join();

    // delta: source name → new entry (null: remove). Later changes to a name win.
    std::map<std::string, std::shared_ptr<const CertEntry>> delta;
    auto current = [&](const std::string& name) -> std::shared_ptr<const CertEntry> {
        if (auto it = delta.find(name); it != delta.end()) return it->second;
        return snap_->find_entry(name);
    };
    std::set<std::string> seen;
    for (size_t ci = 0; ci < changes.size(); ++ci) {
        auto& c = changes[ci];
        seen.insert(c.name);
        if (c.kind == CertChange::Kind::Remove) {
            if (current(c.name)) {
                spdlog::info("certificate {}: removed", c.name);
                delta[c.name] = nullptr;
            }
            errors_.erase(c.name);
            continue;
        }
        auto& r = *parsed[ci];
        auto prev = current(c.name);
        if (!r) {
            err_.fetch_add(1, std::memory_order_relaxed);
            auto& last = errors_[c.name];
            if (last != r.error().message)
                spdlog::warn("{}; {}", r.error().message, prev ? "keeping the last good certificate" : "not serving it");
            last = r.error().message;
            if (on_result_) on_result_(c.name, EntryResult{false, false, r.error().message, {}, 0, 0});
            continue;
        }
        errors_[c.name].clear();
        const auto& e = *r;
        bool same = prev && prev->serial == e->serial && prev->not_after == e->not_after &&
                    X509_cmp(prev->leaf.get(), e->leaf.get()) == 0 &&
                    EVP_PKEY_eq(prev->key.get(), e->key.get()) == 1 &&
                    sk_X509_num(prev->chain.get()) == sk_X509_num(e->chain.get());
        if (on_result_)
            on_result_(c.name, EntryResult{true,
                                           same,
                                           {},
                                           e->serial,
                                           e->dns_names.size() + e->ip_addresses.size(),
                                           e->not_after});
        if (same) continue;  // identical content (e.g. a periodic rescan): nothing to publish
        ok_.fetch_add(1, std::memory_order_relaxed);
        std::string sans;
        for (const auto& n : e->dns_names) sans += (sans.empty() ? "" : ",") + n;
        for (const auto& ip : e->ip_addresses) sans += (sans.empty() ? "" : ",") + ip.to_string();
        // Per-certificate lines at info for ordinary reloads; a bulk load of thousands logs a summary.
        spdlog::log(changes.size() <= 50 ? spdlog::level::info : spdlog::level::debug,
                    "certificate {}: loaded serial {} ({}) names [{}] not after {}", c.name, e->serial,
                    e->key_type == KeyType::EC ? "ECDSA" : "RSA", sans,
                    rfc3339(system_time_from_unix(e->not_after)));
        delta[c.name] = e;
    }
    if (full) {
        snap_->for_each_entry([&](const std::string& name, const CertEntry&) {
            if (!seen.count(name)) {
                spdlog::info("certificate {}: removed", name);
                delta[name] = nullptr;
            }
        });
    }
    bool changed = !delta.empty();
    if (changed || (full && !loaded_.load())) {
        if (snap_->size() == 0) {
            EntryMap all;
            for (auto& [n, e] : delta)
                if (e) all.emplace(n, e);
            snap_ = CertSnapshot::build(all, opts_.default_name, opts_.strict_sni);
        } else {
            snap_ = CertSnapshot::apply(*snap_, delta, opts_.default_name, opts_.strict_sni);
        }
        holder_.publish(snap_);
    }
    if (full) loaded_.store(true, std::memory_order_release);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    last_ms_.store(ms, std::memory_order_relaxed);
    if (changed)
        spdlog::info("snapshot published: {} certificate(s), {} change(s) applied in {:.2f} ms", snap_->size(),
                     delta.size(), ms);
}

std::map<std::string, std::string> CertStore::errors() const {
    std::lock_guard l(mu_);
    return errors_;
}

}  // namespace edgecert::tls
