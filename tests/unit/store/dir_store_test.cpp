// DirStore: the layout `edgecert run` and the terminator's directory source share, modes, the
// pending-order record, and names that must never escape the store.
#include "store/dir_store.h"

#include "platform/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace edgecert::store {
namespace {

struct DirStoreTest : ::testing::Test {
    std::string root;
    std::unique_ptr<DirStore> store;
    void SetUp() override {
        char tmpl[] = "/tmp/edgecert-dirstore-XXXXXX";
        root = mkdtemp(tmpl);
        auto s = DirStore::create(root + "/data");
        ASSERT_TRUE(s.ok()) << s.error().message;
        store = std::move(*s);
    }
    void TearDown() override { std::filesystem::remove_all(root); }
    static mode_t mode(const std::string& p) {
        struct stat st {};
        EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
        return st.st_mode & 0777;
    }
    static std::string slurp(const std::string& p) {
        std::ifstream f(p);
        return std::string((std::istreambuf_iterator<char>(f)), {});
    }
};

TEST_F(DirStoreTest, CertificateRoundTripWithModes) {
    CertificateRef ref{"", "demo", "demo-tls"};
    auto none = store->load_certificate(ref);
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    StoredCertificate sc{.cert_pem = "CERT", .key_pem = SecretBytes(std::string("KEY"))};
    CertificateMeta meta{.issuer_name = "pebble", .issuer_kind = "Issuer", .dns_names = {"a.test"}};
    ASSERT_TRUE(store->save_certificate(ref, sc, meta).ok());
    const std::string dir = root + "/data/certs/demo-tls";
    EXPECT_EQ(mode(dir + "/tls.key"), 0600u);
    EXPECT_EQ(mode(root + "/data/accounts"), 0700u);
    EXPECT_NE(slurp(dir + "/certificate.json").find("pebble"), std::string::npos);
    auto back = store->load_certificate(ref);
    ASSERT_TRUE(back.ok() && back->has_value());
    EXPECT_EQ((*back)->cert_pem, "CERT");
    EXPECT_EQ((*back)->key_pem.reveal(), "KEY");
}

TEST_F(DirStoreTest, PendingOrderRoundTripAndClear) {
    CertificateRef ref{"", "demo", "demo-tls"};
    PendingOrder po{.server = "https://ca/dir",
                    .dns_names = {"a.test", "b.test"},
                    .order_url = "https://ca/order/1",
                    .key_pem = SecretBytes(std::string("NEWKEY"))};
    ASSERT_TRUE(store->save_pending(ref, po).ok());
    EXPECT_EQ(mode(root + "/data/certs/demo-tls/.pending/tls.key"), 0600u);
    auto back = store->load_pending(ref);
    ASSERT_TRUE(back.ok() && back->has_value());
    EXPECT_EQ((*back)->order_url, "https://ca/order/1");
    EXPECT_EQ((*back)->dns_names, po.dns_names);
    EXPECT_EQ((*back)->server, po.server);
    EXPECT_EQ((*back)->key_pem.reveal(), "NEWKEY");
    ASSERT_TRUE(store->clear_pending(ref).ok());
    EXPECT_FALSE(store->load_pending(ref)->has_value());
    EXPECT_FALSE(std::filesystem::exists(root + "/data/certs/demo-tls/.pending"));
    EXPECT_TRUE(store->clear_pending(ref).ok());  // idempotent
}

TEST_F(DirStoreTest, AccountKeysAndHostileNames) {
    EXPECT_FALSE(store->load_account_key("pebble")->has_value());
    ASSERT_TRUE(store->save_account_key("pebble", SecretBytes(std::string("ACCT"))).ok());
    EXPECT_EQ(store->load_account_key("pebble")->value().reveal(), "ACCT");
    EXPECT_EQ(mode(root + "/data/accounts/pebble/account.key"), 0600u);
    for (std::string bad : {"..", "../x", "a/b", "", "."}) {
        EXPECT_FALSE(store->save_account_key(bad, SecretBytes(std::string("x"))).ok()) << bad;
        CertificateRef ref{"", "c", bad};
        auto r = store->save_certificate(ref, StoredCertificate{}, CertificateMeta{});
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
    }
    EXPECT_FALSE(std::filesystem::exists(root + "/x"));
}

// A process killed between the renames of save_certificate() (a new tls.key beside the old
// tls.crt): the next DirStore::create() finishes or undoes it, so what is loaded is a matching
// pair, old or new, and no temporary or kept file remains.
TEST_F(DirStoreTest, ASaveKilledHalfwayIsRepairedAtTheNextStart) {
    CertificateRef ref{"", "demo", "demo-tls"};
    StoredCertificate old_pair{"OLD CRT", SecretBytes(std::string("OLD KEY")), ""};
    StoredCertificate new_pair{"NEW CRT", SecretBytes(std::string("NEW KEY")), ""};
    int seen_old = 0, seen_new = 0;
    for (int k = 0; k < 4; ++k) {  // after the intent, the key's link, the key's rename, the ca's
        ASSERT_TRUE(store->save_certificate(ref, old_pair, CertificateMeta{}).ok());
        platform::set_replace_crash_point_for_test(k);
        ASSERT_TRUE(store->save_certificate(ref, new_pair, CertificateMeta{}).ok());
        platform::set_replace_crash_point_for_test(-1);
        auto reopened = DirStore::create(root + "/data");
        ASSERT_TRUE(reopened.ok()) << reopened.error().message;
        auto got = (*reopened)->load_certificate(ref);
        ASSERT_TRUE(got.ok() && got->has_value());
        const auto& sc = **got;
        bool is_old = sc.cert_pem == "OLD CRT" && sc.key_pem.reveal() == "OLD KEY";
        bool is_new = sc.cert_pem == "NEW CRT" && sc.key_pem.reveal() == "NEW KEY";
        EXPECT_TRUE(is_old || is_new) << "crash point " << k << ": " << sc.cert_pem;
        (is_old ? seen_old : seen_new) += 1;
        for (const auto& e : std::filesystem::directory_iterator(root + "/data/certs/demo-tls")) {
            std::string n = e.path().filename().string();
            EXPECT_TRUE(n == "tls.crt" || n == "tls.key" || n == "certificate.json" ||
                        n == "status.json")
                << "left behind: " << n;
        }
    }
    EXPECT_GT(seen_old, 0);
}

}  // namespace
}  // namespace edgecert::store
