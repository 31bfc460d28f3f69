#pragma once
// CertSnapshot: the immutable SNI → certificate map the data plane reads (convention 4).
// A snapshot is built off the event loop, published with one pointer swap, and never changes;
// a handshake that looked a certificate up keeps the X509/EVP_PKEY it got (OpenSSL up-refs them
// into the SSL), so in-flight connections finish on what they started with.
//
// Copy-on-write shards: names are spread over kShards immutable shards shared between
// successive snapshots, so replacing one certificate among 10,000 copies only the few shards
// its names fall in (O(N / kShards)), not the whole map.
//
// IP certificates: a client connecting to https://192.0.2.1/ sends no SNI (RFC 6066 §3 forbids
// IP literals there), so the terminator asks find_ip() with the connection's local address
// before falling back to the default. iPAddress SANs live in one ordered map (IP certificates
// are few), copied only when a change touches a certificate that has one.
#include <array>
#include <atomic>
#include <functional>
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

enum class MatchKind { Exact, Wildcard, Ip, Default, None };

using EntryMap = std::map<std::string, std::shared_ptr<const CertEntry>>;

class CertSnapshot {
public:
    static constexpr size_t kShards = 256;

    // entries: every valid certificate by source name. default_name: the source name served to
    // clients whose SNI matches nothing (empty: the lexicographically first entry). strict: no
    // default at all.
    static std::shared_ptr<const CertSnapshot> build(const EntryMap& entries, const std::string& default_name,
                                                     bool strict);
    // `base` with some source names replaced (non-null) or removed (null); shares every shard
    // the change does not touch.
    static std::shared_ptr<const CertSnapshot> apply(
        const CertSnapshot& base, const std::map<std::string, std::shared_ptr<const CertEntry>>& delta,
        const std::string& default_name, bool strict);

    // SNI lookup: exact name, then a one-label wildcard (*.example.com matches a.example.com,
    // not a.b.example.com), then the default. `sni` may be empty (no SNI). Case-insensitive.
    // An IP literal in SNI (clients that ignore RFC 6066) is looked up like find_ip().
    CertSlot find(std::string_view sni, MatchKind* kind = nullptr) const;
    // The certificate with iPAddress SAN `addr` (an IPv4 address as 4 octets: from_sockaddr
    // maps a dual-stack ::ffff:a.b.c.d), empty when none has it: no default here. O(log n), no
    // allocation (it runs in the ClientHello callback).
    CertSlot find_ip(const IpAddress& addr, MatchKind* kind = nullptr) const;
    // Whether any certificate has an iPAddress SAN: without one there is no local address to ask.
    bool has_ip_names() const { return !ips_->empty(); }

    std::shared_ptr<const CertEntry> find_entry(const std::string& name) const;
    void for_each_entry(const std::function<void(const std::string&, const CertEntry&)>& fn) const;
    EntryMap entries() const;  // a copy, for tests and tools
    size_t size() const { return size_; }

    // Shards: public for make_shared; treat as private.
    struct NameRecord {
        CertSlot slot;
        std::vector<const CertEntry*> candidates;  // every entry covering this name
    };
    struct NameShard {
        std::unordered_map<std::string, NameRecord> exact, wildcard;  // wildcard key: "example.com"
    };
    using IpIndex = std::map<IpAddress, NameRecord>;

  private:
    void set_default(const std::string& default_name, bool strict);
    static size_t shard_of(std::string_view s) { return std::hash<std::string_view>{}(s) % kShards; }

    std::array<std::shared_ptr<const EntryMap>, kShards> entries_;  // by source name
    std::array<std::shared_ptr<const NameShard>, kShards> names_;   // by DNS name
    std::shared_ptr<const IpIndex> ips_ = std::make_shared<const IpIndex>();  // by iPAddress SAN
    CertSlot default_;
    size_t size_ = 0;
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
