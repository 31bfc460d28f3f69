#include "tls/cert_snapshot.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>

#include "tests/unit/tls/test_certs.h"

// Counts every allocation through the global operator new, for the allocation-free lookup test.
// new and delete are both replaced (malloc/free underneath), so sanitizers see matching pairs;
// GCC cannot tell that free() here pairs with the malloc() in the replaced operator new.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::atomic<long> g_allocations{0};
long allocations() {
    return g_allocations.load();
}
}  // namespace
void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    return ::operator new(n);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}

namespace edgecert::tls {
namespace {

using testing::make_cert;

class SnapshotTest : public ::testing::Test {
protected:
    FakeClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
    time_t now = 1'800'000'000;
    std::shared_ptr<const CertEntry> entry(const std::string& name, std::vector<std::string> sans, bool rsa,
                                           long serial, long not_after = 30 * 86400) {
        auto c = make_cert(sans, rsa, serial, now, -3600, not_after);
        auto e = parse_cert_entry(name, c.cert_pem, c.key_pem, clock);
        EXPECT_TRUE(e.ok());
        return *e;
    }
};

TEST_F(SnapshotTest, ExactThenOneLabelWildcardThenDefault) {
    std::map<std::string, std::shared_ptr<const CertEntry>> m;
    m["exact"] = entry("exact", {"a.example.com"}, false, 1);
    m["wild"] = entry("wild", {"*.example.com"}, false, 2);
    m["zzz-default"] = entry("zzz-default", {"default.test"}, false, 3);
    auto snap = CertSnapshot::build(m, "zzz-default", false);
    MatchKind k;
    EXPECT_EQ(snap->find("a.example.com", &k).ec->serial, "01");
    EXPECT_EQ(k, MatchKind::Exact);
    EXPECT_EQ(snap->find("A.Example.COM.", &k).ec->serial, "01");  // case, absolute form
    EXPECT_EQ(snap->find("b.example.com", &k).ec->serial, "02");
    EXPECT_EQ(k, MatchKind::Wildcard);
    // One label only: a.b.example.com is not covered by *.example.com, nor is example.com.
    EXPECT_EQ(snap->find("a.b.example.com", &k).ec->serial, "03");
    EXPECT_EQ(k, MatchKind::Default);
    EXPECT_EQ(snap->find("example.com", &k).ec->serial, "03");
    EXPECT_EQ(snap->find("", &k).ec->serial, "03");
    EXPECT_EQ(k, MatchKind::Default);
}

// A client connecting to https://<address>/ sends no SNI: the terminator asks find_ip() with the
// local address; iPAddress SANs are indexed beside DNS names.
TEST_F(SnapshotTest, IpAddressSansAreIndexed) {
    std::map<std::string, std::shared_ptr<const CertEntry>> m;
    m["both"] = entry("both", {"www.test", "192.0.2.1"}, false, 1);
    m["v6"] = entry("v6", {"2001:db8::1"}, false, 2);
    m["default"] = entry("default", {"default.test"}, false, 3);
    auto snap = CertSnapshot::build(m, "default", false);
    ASSERT_TRUE(snap->has_ip_names());
    EXPECT_EQ(m["both"]->ip_addresses, (std::vector<IpAddress>{*IpAddress::parse("192.0.2.1")}));
    EXPECT_EQ(m["both"]->dns_names, (std::vector<std::string>{"www.test"}));
    MatchKind k = MatchKind::None;
    EXPECT_EQ(snap->find_ip(*IpAddress::parse("192.0.2.1"), &k).ec->serial, "01");
    EXPECT_EQ(k, MatchKind::Ip);
    EXPECT_EQ(snap->find_ip(*IpAddress::parse("2001:db8::1")).ec->serial, "02");
    // No default from find_ip: the caller falls back to find("") itself.
    EXPECT_TRUE(snap->find_ip(*IpAddress::parse("192.0.2.2")).empty());
    EXPECT_TRUE(snap->find_ip(*IpAddress::parse("::ffff:192.0.2.1"))
                    .empty());  // mapped first by from_sockaddr
    EXPECT_EQ(snap->find("www.test").ec->serial, "01");
    EXPECT_EQ(snap->find("").ec->serial, "03");
    // Clients that put an address in SNI anyway (RFC 6066 forbids it) get the address's
    // certificate.
    EXPECT_EQ(snap->find("192.0.2.1", &k).ec->serial, "01");
    EXPECT_EQ(k, MatchKind::Ip);
    EXPECT_EQ(snap->find("2001:DB8::1", &k).ec->serial, "02");
    EXPECT_EQ(snap->find("192.0.2.9", &k).ec->serial, "03");
    EXPECT_EQ(k, MatchKind::Default);

    // A renewal overlap: the certificate that expires last wins, as for DNS names; removing it
    // brings the other back; removing both leaves no IP index. Earlier snapshots do not change.
    auto newer = entry("both-new", {"192.0.2.1"}, false, 4, 60 * 86400);
    auto s2 = CertSnapshot::apply(*snap, {{"both-new", newer}}, "default", false);
    EXPECT_EQ(s2->find_ip(*IpAddress::parse("192.0.2.1")).ec->serial, "04");
    EXPECT_EQ(snap->find_ip(*IpAddress::parse("192.0.2.1")).ec->serial, "01");
    auto s3 = CertSnapshot::apply(*s2, {{"both-new", nullptr}, {"v6", nullptr}}, "default", false);
    EXPECT_EQ(s3->find_ip(*IpAddress::parse("192.0.2.1")).ec->serial, "01");
    EXPECT_TRUE(s3->find_ip(*IpAddress::parse("2001:db8::1")).empty());
    EXPECT_EQ(s2->find_ip(*IpAddress::parse("2001:db8::1")).ec->serial, "02");
    auto s4 = CertSnapshot::apply(*s3, {{"both", nullptr}}, "default", false);
    EXPECT_FALSE(s4->has_ip_names());
    EXPECT_TRUE(s4->find_ip(*IpAddress::parse("192.0.2.1")).empty());
}

TEST_F(SnapshotTest, IpOnlyDefaultPairsEcdsaAndRsa) {
    std::map<std::string, std::shared_ptr<const CertEntry>> m;
    m["ip-ec"] = entry("ip-ec", {"192.0.2.1"}, false, 1);
    m["ip-rsa"] = entry("ip-rsa", {"192.0.2.1"}, true, 2);
    auto snap = CertSnapshot::build(m, "ip-ec", false);
    CertSlot d = snap->find("");
    ASSERT_TRUE(d.ec && d.rsa);
    EXPECT_EQ(d.rsa->serial, "02");
    CertSlot s = snap->find_ip(*IpAddress::parse("192.0.2.1"));
    EXPECT_EQ(s.ec->serial, "01");
    EXPECT_EQ(s.rsa->serial, "02");
}

TEST_F(SnapshotTest, IpLookupAllocatesNothing) {
    std::map<std::string, std::shared_ptr<const CertEntry>> m;
    for (int i = 1; i <= 40; ++i)
        m["ip" + std::to_string(i)] =
            entry("ip" + std::to_string(i), {"10.0.0." + std::to_string(i)}, false, i);
    m["v6"] = entry("v6", {"2001:db8::7"}, false, 99);
    auto snap = CertSnapshot::build(m, "ip1", false);
    const IpAddress hit = *IpAddress::parse("10.0.0.17"), miss = *IpAddress::parse("10.0.0.77"),
                    v6 = *IpAddress::parse("2001:db8::7");
    sockaddr_in6 mapped{};  // what a dual-stack listener reports for an IPv4 connection
    mapped.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.0.0.17", &mapped.sin6_addr);
    long before = allocations();
    MatchKind k;
    const CertEntry* a = snap->find_ip(hit, &k).ec;
    const CertEntry* b = snap->find_ip(miss).ec;
    const CertEntry* c = snap->find_ip(v6).ec;
    auto local = IpAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&mapped));
    const CertEntry* d = snap->find_ip(*local).ec;
    const CertEntry* e = snap->find("10.0.0.17").ec;
    long after = allocations();
    EXPECT_EQ(after - before, 0);
    ASSERT_TRUE(a && c && d && e);
    EXPECT_EQ(a->serial, "11");
    EXPECT_EQ(b, nullptr);
    EXPECT_EQ(c->serial, "63");
    EXPECT_EQ(d, a);
    EXPECT_EQ(e, a);
}

TEST_F(SnapshotTest, DefaultIsFirstByNameWhenUnset) {
    std::map<std::string, std::shared_ptr<const CertEntry>> m;
    m["b"] = entry("b", {"b.test"}, false, 2);
    m["a"] = entry("a", {"a.test"}, false, 1);
    EXPECT_EQ(CertSnapshot::build(m, "", false)->find("nothing.test").ec->serial, "01");
}

TEST_F(SnapshotTest, StrictSniHasNoDefault) {
    std::map<std::string, std::shared_ptr<const CertEntry>> m;
    m["a"] = entry("a", {"a.test"}, false, 1);
    auto snap = CertSnapshot::build(m, "a", true);
    MatchKind k;
    EXPECT_TRUE(snap->find("other.test", &k).empty());
    EXPECT_EQ(k, MatchKind::None);
    EXPECT_TRUE(snap->find("", &k).empty());
    EXPECT_FALSE(snap->find("a.test").empty());
}

TEST_F(SnapshotTest, EcdsaAndRsaForTheSameNameShareASlot) {
    std::map<std::string, std::shared_ptr<const CertEntry>> m;
    m["a-ec"] = entry("a-ec", {"a.test"}, false, 1);
    m["a-rsa"] = entry("a-rsa", {"a.test"}, true, 2);
    auto snap = CertSnapshot::build(m, "a-ec", false);
    CertSlot s = snap->find("a.test");
    ASSERT_TRUE(s.ec && s.rsa);
    EXPECT_EQ(s.ec->serial, "01");
    EXPECT_EQ(s.rsa->serial, "02");
    // The default carries both key types too.
    CertSlot d = snap->find("unknown.test");
    EXPECT_TRUE(d.ec && d.rsa);
}

TEST_F(SnapshotTest, LaterNotAfterWinsForOverlappingNames) {
    std::map<std::string, std::shared_ptr<const CertEntry>> m;
    m["new"] = entry("new", {"a.test"}, false, 2, 60 * 86400);
    m["old"] = entry("old", {"a.test"}, false, 1, 10 * 86400);
    EXPECT_EQ(CertSnapshot::build(m, "", false)->find("a.test").ec->serial, "02");
}

TEST_F(SnapshotTest, SwapKeepsOldSnapshotAliveForItsReaders) {
    SnapshotHolder holder;
    std::map<std::string, std::shared_ptr<const CertEntry>> m1, m2;
    m1["a"] = entry("a", {"a.test"}, false, 1);
    m2["a"] = entry("a", {"a.test"}, false, 2);
    holder.publish(CertSnapshot::build(m1, "", false));
    uint64_t g1 = holder.generation();
    auto reader = holder.get();  // an in-flight user
    std::weak_ptr<const CertSnapshot> weak = reader;
    const CertEntry* e = reader->find("a.test").ec;
    holder.publish(CertSnapshot::build(m2, "", false));
    EXPECT_NE(holder.generation(), g1);
    EXPECT_EQ(holder.get()->find("a.test").ec->serial, "02");
    EXPECT_EQ(e->serial, "01");  // still valid: the reader holds the old snapshot
    EXPECT_FALSE(weak.expired());
    reader.reset();
    EXPECT_TRUE(weak.expired());  // freed once the last reader lets go
}

TEST_F(SnapshotTest, ConcurrentReadersDuringSwaps) {
    SnapshotHolder holder;
    std::vector<std::shared_ptr<const CertSnapshot>> snaps;
    for (int i = 1; i <= 4; ++i) {
        std::map<std::string, std::shared_ptr<const CertEntry>> m;
        m["a"] = entry("a", {"a.test"}, false, i);
        snaps.push_back(CertSnapshot::build(m, "", false));
    }
    std::atomic<bool> stop{false};
    std::atomic<long> reads{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t)
        ts.emplace_back([&] {
            while (!stop.load()) {
                auto s = holder.get();
                CertSlot slot = s->find("a.test");
                if (slot.ec) {
                    EXPECT_FALSE(slot.ec->serial.empty());
                }
                reads.fetch_add(1);
            }
        });
    for (int i = 0; i < 2000; ++i) holder.publish(snaps[static_cast<size_t>(i % 4)]);
    while (reads.load() < 1000) std::this_thread::yield();
    stop.store(true);
    for (auto& t : ts) t.join();
}

}  // namespace
}  // namespace edgecert::tls

namespace edgecert::tls {
namespace {

// Incremental apply() must give exactly what a build from scratch gives, for random sequences
// of upserts/removals over overlapping names (exact, wildcard, ECDSA+RSA, default).
TEST(SnapshotApply, MatchesFullRebuildOnRandomChanges) {
    FakeClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
    time_t now = 1'800'000'000;
    std::vector<std::shared_ptr<const CertEntry>> pool;
    const std::vector<std::vector<std::string>> names = {
        {"a.test"}, {"a.test", "b.test"}, {"*.w.test"},  {"x.w.test", "*.w.test"},
        {"c.test"}, {"a.test"},           {"192.0.2.1"}, {"c.test", "192.0.2.1", "2001:db8::1"}};
    long serial = 1;
    for (size_t i = 0; i < names.size(); ++i)
        for (bool rsa : {false, true}) {
            if (rsa && i % 2) continue;  // RSA generation is slow: a few are enough
            auto c = testing::make_cert(names[i], rsa, serial, now, -3600, 86400 * static_cast<long>(1 + serial % 4));
            ++serial;
            auto e = parse_cert_entry("x", c.cert_pem, c.key_pem, clock);
            ASSERT_TRUE(e.ok());
            pool.push_back(*e);
        }
    std::mt19937 rng(7);
    EntryMap model;
    auto snap = CertSnapshot::build(model, "", false);
    const char* probes[] = {"a.test",     "b.test",    "c.test", "x.w.test",  "y.w.test",
                            "q.x.w.test", "none.test", "",       "192.0.2.1", "2001:db8::1"};
    const IpAddress addrs[] = {*IpAddress::parse("192.0.2.1"), *IpAddress::parse("2001:db8::1"),
                               *IpAddress::parse("192.0.2.2")};
    for (int step = 0; step < 300; ++step) {
        std::map<std::string, std::shared_ptr<const CertEntry>> delta;
        int k = 1 + static_cast<int>(rng() % 3);
        for (int j = 0; j < k; ++j) {
            std::string name = "n" + std::to_string(rng() % 6);
            if (rng() % 4 == 0) delta[name] = nullptr;
            else delta[name] = pool[rng() % pool.size()];
        }
        for (auto& [n, e] : delta) {
            if (e) model[n] = e;
            else model.erase(n);
        }
        std::string def = (step % 3 == 0) ? "n1" : "";
        snap = CertSnapshot::apply(*snap, delta, def, false);
        auto full = CertSnapshot::build(model, def, false);
        ASSERT_EQ(snap->size(), model.size());
        for (const char* p : probes) {
            MatchKind k1, k2;
            CertSlot a = snap->find(p, &k1), b = full->find(p, &k2);
            ASSERT_EQ(a.ec, b.ec) << "step " << step << " probe " << p;
            ASSERT_EQ(a.rsa, b.rsa) << "step " << step << " probe " << p;
            ASSERT_EQ(k1, k2);
        }
        ASSERT_EQ(snap->has_ip_names(), full->has_ip_names()) << "step " << step;
        for (const IpAddress& ip : addrs) {
            CertSlot a = snap->find_ip(ip), b = full->find_ip(ip);
            ASSERT_EQ(a.ec, b.ec) << "step " << step << " address " << ip.to_string();
            ASSERT_EQ(a.rsa, b.rsa) << "step " << step << " address " << ip.to_string();
        }
    }
}

}  // namespace
}  // namespace edgecert::tls
