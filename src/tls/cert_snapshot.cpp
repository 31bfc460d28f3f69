#include "tls/cert_snapshot.h"

#include <cctype>

namespace edgecert::tls {
namespace {

// When two certificates cover the same name with the same key type, serve the one that expires
// last: during a renewal overlap the new certificate wins regardless of folder names.
void put(CertSlot& slot, const CertEntry* e) {
    const CertEntry*& s = e->key_type == KeyType::EC ? slot.ec : slot.rsa;
    if (!s || e->not_after > s->not_after || (e->not_after == s->not_after && e->name < s->name)) s = e;
}

}  // namespace

std::shared_ptr<const CertSnapshot> CertSnapshot::build(
    std::map<std::string, std::shared_ptr<const CertEntry>> entries, const std::string& default_name,
    bool strict) {
    auto snap = std::make_shared<CertSnapshot>();
    snap->entries_ = std::move(entries);
    snap->exact_.reserve(snap->entries_.size() * 2);
    for (const auto& [name, e] : snap->entries_) {
        for (const auto& dns : e->dns_names) {
            if (dns.size() > 2 && dns[0] == '*' && dns[1] == '.')
                put(snap->wildcard_[dns.substr(2)], e.get());
            else
                put(snap->exact_[dns], e.get());
        }
    }
    if (!strict && !snap->entries_.empty()) {
        // The default is a whole source entry; an ECDSA/RSA pair under one name is two folders,
        // so also take the other key type for the same first DNS name if there is one.
        auto it = default_name.empty() ? snap->entries_.begin() : snap->entries_.find(default_name);
        if (it != snap->entries_.end()) {
            put(snap->default_, it->second.get());
            if (!it->second->dns_names.empty()) {
                const auto& n = it->second->dns_names.front();
                auto ex = snap->exact_.find(n);
                if (ex != snap->exact_.end()) {
                    if (!snap->default_.ec) snap->default_.ec = ex->second.ec;
                    if (!snap->default_.rsa) snap->default_.rsa = ex->second.rsa;
                }
            }
        }
    }
    return snap;
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
        if (auto it = exact_.find(key); it != exact_.end()) {
            set(MatchKind::Exact);
            return it->second;
        }
        if (auto dot = key.find('.'); dot != std::string::npos && dot > 0) {
            if (auto it = wildcard_.find(key.substr(dot + 1)); it != wildcard_.end()) {
                set(MatchKind::Wildcard);
                return it->second;
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
