#pragma once
// CertSnapshot: the immutable SNI → certificate map the data plane reads (convention 4).
// A snapshot is built off the event loop, published with one pointer swap, and never changes;
// a handshake that looked a certificate up keeps the X509/EVP_PKEY it got (OpenSSL up-refs them
// into the SSL), so in-flight connections finish on what they started with.
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tls/cert_entry.h"

namespace edgecert::tls {

// Up to one ECDSA and one RSA certificate for a name; OpenSSL picks between them from the
// client's signature_algorithms / cipher list once both are set on the SSL.
struct CertSlot {
    const CertEntry* ec = nullptr;
    const CertEntry* rsa = nullptr;
    bool empty() const { return !ec && !rsa; }
};

enum class MatchKind { Exact, Wildcard, Default, None };

class CertSnapshot {
public:
    // entries: every valid certificate by source name. default_name: the source name served to
    // clients whose SNI matches nothing (empty: the lexicographically first entry). strict: no
    // default at all.
    static std::shared_ptr<const CertSnapshot> build(
        std::map<std::string, std::shared_ptr<const CertEntry>> entries, const std::string& default_name,
        bool strict);

    // SNI lookup: exact name, then a one-label wildcard (*.example.com matches a.example.com,
    // not a.b.example.com), then the default. `sni` may be empty (no SNI). Case-insensitive.
    CertSlot find(std::string_view sni, MatchKind* kind = nullptr) const;

    const std::map<std::string, std::shared_ptr<const CertEntry>>& entries() const { return entries_; }
    size_t size() const { return entries_.size(); }

private:
    std::map<std::string, std::shared_ptr<const CertEntry>> entries_;  // owns every entry
    std::unordered_map<std::string, CertSlot> exact_;
    std::unordered_map<std::string, CertSlot> wildcard_;  // key: the parent ("example.com")
    CertSlot default_;
};

// The published pointer. Readers on the data plane call generation() (one relaxed atomic load)
// per loop iteration and only take the lock to copy the shared_ptr when it changed.
class SnapshotHolder {
public:
    SnapshotHolder();
    std::shared_ptr<const CertSnapshot> get() const;
    void publish(std::shared_ptr<const CertSnapshot> s);
    uint64_t generation() const { return gen_.load(std::memory_order_acquire); }

private:
    mutable std::mutex mu_;
    std::shared_ptr<const CertSnapshot> cur_;
    std::atomic<uint64_t> gen_{0};
};

}  // namespace edgecert::tls
