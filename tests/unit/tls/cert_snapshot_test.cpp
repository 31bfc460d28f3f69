#include "tls/cert_snapshot.h"

#include <gtest/gtest.h>

#include "tests/unit/tls/test_certs.h"

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
