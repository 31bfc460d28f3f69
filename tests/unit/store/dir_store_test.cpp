// DirStore: the layout `edgecert run` and the terminator's directory source share, modes, the
// pending-order record, and names that must never escape the store.
#include "store/dir_store.h"

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
        struct stat st{};
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
    PendingOrder po{.server = "https://ca/dir", .dns_names = {"a.test", "b.test"}, .order_url = "https://ca/order/1",
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

}  // namespace
}  // namespace edgecert::store
