#include "tls/cert_snapshot.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace edgecert::tls {
namespace {

// When two certificates cover the same name with the same key type, serve the one that expires
// last: during a renewal overlap the new certificate wins regardless of folder names.
void put(CertSlot& slot, const CertEntry* e) {
    const CertEntry*& s = e->key_type == KeyType::EC ? slot.ec : slot.rsa;
    // Total order, so the result does not depend on insertion order.
    if (!s || e->not_after > s->not_after ||
        (e->not_after == s->not_after && (e->name < s->name || (e->name == s->name && e->serial < s->serial))))
        s = e;
}

bool is_wildcard(const std::string& dns) { return dns.size() > 2 && dns[0] == '*' && dns[1] == '.'; }
std::string key_of(const std::string& dns) { return is_wildcard(dns) ? dns.substr(2) : dns; }

void recompute(CertSnapshot::NameRecord& r) {
    r.slot = {};
    for (const CertEntry* e : r.candidates) put(r.slot, e);
}

void add_candidate(CertSnapshot::NameRecord& r, const CertEntry* e) {
    r.candidates.push_back(e);
    put(r.slot, e);
}

// Removes `e` from the record under `key`; drops the record when nothing else covers the name.
template <class Map, class Key>
void remove_candidate(Map& map, const Key& key, const CertEntry* e) {
    auto it = map.find(key);
    if (it == map.end()) return;
    auto& c = it->second.candidates;
    if (auto pos = std::find(c.begin(), c.end(), e); pos != c.end()) c.erase(pos);
    if (c.empty())
        map.erase(it);
    else
        recompute(it->second);
}

}  // namespace

std::shared_ptr<const CertSnapshot> CertSnapshot::build(const EntryMap& entries, const std::string& default_name,
                                                        bool strict) {
    auto snap = std::make_shared<CertSnapshot>();
    std::array<std::shared_ptr<EntryMap>, kShards> em;
    std::array<std::shared_ptr<NameShard>, kShards> nm;
    for (size_t i = 0; i < kShards; ++i) {
        em[i] = std::make_shared<EntryMap>();
        nm[i] = std::make_shared<NameShard>();
    }
    auto ips = std::make_shared<IpIndex>();
    for (const auto& [name, e] : entries) {
        em[shard_of(name)]->emplace(name, e);
        for (const auto& dns : e->dns_names) {
            std::string k = key_of(dns);
            auto& shard = *nm[shard_of(k)];
            add_candidate((is_wildcard(dns) ? shard.wildcard : shard.exact)[k], e.get());
        }
        for (const auto& ip : e->ip_addresses) add_candidate((*ips)[ip], e.get());
    }
    for (size_t i = 0; i < kShards; ++i) {
        snap->entries_[i] = std::move(em[i]);
        snap->names_[i] = std::move(nm[i]);
    }
    snap->ips_ = std::move(ips);
    snap->size_ = entries.size();
    snap->set_default(default_name, strict);
    return snap;
}

std::shared_ptr<const CertSnapshot> CertSnapshot::apply(
    const CertSnapshot& base, const std::map<std::string, std::shared_ptr<const CertEntry>>& delta,
    const std::string& default_name, bool strict) {
    auto snap = std::make_shared<CertSnapshot>();
    snap->entries_ = base.entries_;
    snap->names_ = base.names_;
    snap->ips_ = base.ips_;
    snap->size_ = base.size_;
    std::shared_ptr<IpIndex> ips;  // copied on the first change that touches an address
    auto ip_index = [&]() -> IpIndex& {
        if (!ips) ips = std::make_shared<IpIndex>(*base.ips_);
        return *ips;
    };
    std::map<size_t, std::shared_ptr<EntryMap>> em;    // copied (writable) shards
    std::map<size_t, std::shared_ptr<NameShard>> nm;
    auto entry_shard = [&](const std::string& name) -> EntryMap& {
        size_t i = shard_of(name);
        auto& p = em[i];
        if (!p) p = std::make_shared<EntryMap>(*base.entries_[i]);
        return *p;
    };
    auto name_shard = [&](const std::string& key) -> NameShard& {
        size_t i = shard_of(key);
        auto& p = nm[i];
        if (!p) p = std::make_shared<NameShard>(*base.names_[i]);
        return *p;
    };
    for (const auto& [name, e] : delta) {
        EntryMap& es = entry_shard(name);
        auto old = es.find(name);
        if (old != es.end()) {
            const CertEntry* o = old->second.get();
            for (const auto& dns : o->dns_names) {
                std::string k = key_of(dns);
                remove_candidate(is_wildcard(dns) ? name_shard(k).wildcard : name_shard(k).exact, k,
                                 o);
            }
            for (const auto& ip : o->ip_addresses) remove_candidate(ip_index(), ip, o);
            es.erase(old);
            --snap->size_;
        }
        if (!e) continue;
        es.emplace(name, e);
        ++snap->size_;
        for (const auto& dns : e->dns_names) {
            std::string k = key_of(dns);
            add_candidate((is_wildcard(dns) ? name_shard(k).wildcard : name_shard(k).exact)[k],
                          e.get());
        }
        for (const auto& ip : e->ip_addresses) add_candidate(ip_index()[ip], e.get());
    }
    for (auto& [i, p] : em) snap->entries_[i] = std::move(p);
    for (auto& [i, p] : nm) snap->names_[i] = std::move(p);
    if (ips) snap->ips_ = std::move(ips);
    snap->set_default(default_name, strict);
    return snap;
}

void CertSnapshot::set_default(const std::string& default_name, bool strict) {
    default_ = {};
    if (strict || size_ == 0) return;
    std::shared_ptr<const CertEntry> d;
    if (!default_name.empty()) {
        d = find_entry(default_name);
    } else {
        const std::string* first = nullptr;  // lexicographically first source name
        for (const auto& s : entries_)
            if (!s->empty() && (!first || s->begin()->first < *first)) {
                first = &s->begin()->first;
                d = s->begin()->second;
            }
    }
    if (!d) return;
    put(default_, d.get());
    // An ECDSA/RSA pair under one name is two entries: take the other key type for the
    // default's first DNS name (or, for an address-only certificate, first address) too.
    CertSlot pair;
    if (!d->dns_names.empty()) {
        const auto& n = d->dns_names.front();
        const auto& shard = *names_[shard_of(key_of(n))];
        const auto& map = is_wildcard(n) ? shard.wildcard : shard.exact;
        if (auto it = map.find(key_of(n)); it != map.end()) pair = it->second.slot;
    } else if (!d->ip_addresses.empty()) {
        pair = find_ip(d->ip_addresses.front());
    }
    if (!default_.ec) default_.ec = pair.ec;
    if (!default_.rsa) default_.rsa = pair.rsa;
}

CertSlot CertSnapshot::find(std::string_view sni, MatchKind* kind) const {
    auto set = [&](MatchKind k) {
        if (kind) *kind = k;
    };
    if (!sni.empty() && sni.size() <= 253) {
        char buf[256];
        size_t n = sni.size();
        if (sni.back() == '.') --n;  // absolute form "example.com."
        for (size_t i = 0; i < n; ++i) buf[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(sni[i])));
        std::string key(buf, n);
        const auto& es = names_[shard_of(key)]->exact;
        if (auto it = es.find(key); it != es.end()) {
            set(MatchKind::Exact);
            return it->second.slot;
        }
        if (has_ip_names()) {
            if (auto ip = IpAddress::parse(key)) {
                if (CertSlot slot = find_ip(*ip, kind); !slot.empty()) return slot;
            }
        }
        if (auto dot = key.find('.'); dot != std::string::npos && dot > 0) {
            std::string parent = key.substr(dot + 1);
            const auto& ws = names_[shard_of(parent)]->wildcard;
            if (auto it = ws.find(parent); it != ws.end()) {
                set(MatchKind::Wildcard);
                return it->second.slot;
            }
        }
    }
    if (!default_.empty()) {
        set(MatchKind::Default);
        return default_;
    }
    set(MatchKind::None);
    return {};
}

CertSlot CertSnapshot::find_ip(const IpAddress& addr, MatchKind* kind) const {
    auto it = ips_->find(addr);
    if (it == ips_->end()) return {};
    if (kind) *kind = MatchKind::Ip;
    return it->second.slot;
}

std::shared_ptr<const CertEntry> CertSnapshot::find_entry(const std::string& name) const {
    const auto& s = *entries_[shard_of(name)];
    auto it = s.find(name);
    return it == s.end() ? nullptr : it->second;
}

void CertSnapshot::for_each_entry(const std::function<void(const std::string&, const CertEntry&)>& fn) const {
    for (const auto& s : entries_)
        for (const auto& [n, e] : *s) fn(n, *e);
}

EntryMap CertSnapshot::entries() const {
    EntryMap out;
    for (const auto& s : entries_) out.insert(s->begin(), s->end());
    return out;
}

SnapshotHolder::SnapshotHolder() : cur_(CertSnapshot::build({}, "", true)) {}

std::shared_ptr<const CertSnapshot> SnapshotHolder::get() const {
    std::lock_guard l(mu_);
    return cur_;
}

void SnapshotHolder::publish(std::shared_ptr<const CertSnapshot> s) {
    {
        std::lock_guard l(mu_);
        cur_.swap(s);
        gen_.fetch_add(1, std::memory_order_acq_rel);
    }
    // `s` (the previous snapshot) is released here, outside the lock; readers that copied it
    // keep it alive until they drop their copy.
}

}  // namespace edgecert::tls
