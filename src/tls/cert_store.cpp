#include "tls/cert_store.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <set>
#include <thread>

namespace edgecert::tls {

CertStore::CertStore(CertStoreOptions opts, const Clock& clock, SnapshotHolder& holder)
    : opts_(std::move(opts)), clock_(clock), holder_(holder) {}

void CertStore::apply(std::vector<CertChange> changes, bool full) {
    auto t0 = std::chrono::steady_clock::now();
    std::lock_guard l(mu_);
    auto next = good_;
    bool changed = false;
    std::set<std::string> seen;
    // Parse and validate first, in parallel for big batches (initial load, full rescan): this
    // is the expensive part (X.509 decoding), and each pair is independent.
    std::vector<std::optional<Result<std::shared_ptr<const CertEntry>>>> parsed(changes.size());
    auto parse_range = [&](size_t from, size_t step) {
        for (size_t i = from; i < changes.size(); i += step)
            if (changes[i].kind == CertChange::Kind::Upsert)
                parsed[i].emplace(parse_cert_entry(changes[i].name, changes[i].cert_pem, changes[i].key_pem, clock_));
    };
    size_t threads = changes.size() >= 64 ? std::max(1u, std::min(8u, std::thread::hardware_concurrency())) : 1;
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(parse_range, t, threads);
    parse_range(0, threads);
    for (auto& th : pool) th.join();
    for (size_t ci = 0; ci < changes.size(); ++ci) {
        auto& c = changes[ci];
        seen.insert(c.name);
        if (c.kind == CertChange::Kind::Remove) {
            if (next.erase(c.name)) {
                spdlog::info("certificate {}: removed", c.name);
                changed = true;
            }
            errors_.erase(c.name);
            continue;
        }
        auto& r = *parsed[ci];
        if (!r) {
            err_.fetch_add(1, std::memory_order_relaxed);
            auto& last = errors_[c.name];
            if (last != r.error().message)
                spdlog::warn("{}; {}", r.error().message,
                             next.count(c.name) ? "keeping the last good certificate" : "not serving it");
            last = r.error().message;
            continue;
        }
        errors_[c.name].clear();
        auto& slot = next[c.name];
        const auto& e = *r;
        if (slot && slot->serial == e->serial && slot->not_after == e->not_after &&
            X509_cmp(slot->leaf.get(), e->leaf.get()) == 0 &&
            EVP_PKEY_eq(slot->key.get(), e->key.get()) == 1 &&
            sk_X509_num(slot->chain.get()) == sk_X509_num(e->chain.get()))
            continue;  // identical content (e.g. a periodic rescan): nothing to publish
        ok_.fetch_add(1, std::memory_order_relaxed);
        std::string sans;
        for (const auto& n : e->dns_names) sans += (sans.empty() ? "" : ",") + n;
        // Per-certificate lines at info for ordinary reloads; a bulk load of thousands logs a summary.
        spdlog::log(changes.size() <= 50 ? spdlog::level::info : spdlog::level::debug,
                    "certificate {}: loaded serial {} ({}) names [{}] not after {}", c.name, e->serial,
                    e->key_type == KeyType::EC ? "ECDSA" : "RSA", sans, e->not_after);
        slot = r.value();
        changed = true;
    }
    if (full) {
        for (auto it = next.begin(); it != next.end();) {
            if (!seen.count(it->first)) {
                spdlog::info("certificate {}: removed", it->first);
                it = next.erase(it);
                changed = true;
            } else {
                ++it;
            }
        }
    }
    if (changed || (full && !loaded_.load())) {
        good_ = next;
        holder_.publish(CertSnapshot::build(std::move(next), opts_.default_name, opts_.strict_sni));
    }
    if (full) loaded_.store(true, std::memory_order_release);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    last_ms_.store(ms, std::memory_order_relaxed);
    if (changed)
        spdlog::info("snapshot published: {} certificate(s), {} change(s) applied in {:.2f} ms", good_.size(),
                     changes.size(), ms);
}

std::map<std::string, std::string> CertStore::errors() const {
    std::lock_guard l(mu_);
    return errors_;
}

}  // namespace edgecert::tls
