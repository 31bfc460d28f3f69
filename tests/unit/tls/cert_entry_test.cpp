// EC_KEY is used on purpose below: a SEC1 key without its public point can only be written so.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "tls/cert_entry.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <gtest/gtest.h>

#include "tests/unit/tls/test_certs.h"
#include "tls/cert_store.h"

namespace edgecert::tls {
namespace {

using testing::make_cert;

class CertEntryTest : public ::testing::Test {
  protected:
    FakeClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
    time_t now = 1'800'000'000;
};

TEST_F(CertEntryTest, ParsesEcdsaLeafWithChainAndSans) {
    auto ca = make_cert({"ca.test"}, false, 1, now);
    auto leaf =
        make_cert({"a.example.com", "*.Example.org"}, false, 0x1234, now, -3600, 86400, &ca);
    auto e = parse_cert_entry("a", leaf.cert_pem, leaf.key_pem, clock);
    ASSERT_TRUE(e.ok()) << e.error().message;
    EXPECT_EQ((*e)->key_type, KeyType::EC);
    EXPECT_EQ((*e)->serial, "1234");
    EXPECT_EQ(sk_X509_num((*e)->chain.get()), 1);
    EXPECT_EQ((*e)->dns_names, (std::vector<std::string>{"a.example.com", "*.example.org"}));
    EXPECT_EQ((*e)->not_after, now + 86400);
}

TEST_F(CertEntryTest, ParsesRsa) {
    auto c = make_cert({"r.test"}, true, 7, now);
    auto e = parse_cert_entry("r", c.cert_pem, c.key_pem, clock);
    ASSERT_TRUE(e.ok()) << e.error().message;
    EXPECT_EQ((*e)->key_type, KeyType::RSA);
}

TEST_F(CertEntryTest, RejectsTruncatedCertificatePem) {
    auto c = make_cert({"a.test"}, false, 1, now);
    for (size_t cut : {c.cert_pem.size() / 2, c.cert_pem.size() - 10, size_t(30)}) {
        auto e = parse_cert_entry("a", c.cert_pem.substr(0, cut), c.key_pem, clock);
        ASSERT_FALSE(e.ok()) << "cut at " << cut;
        EXPECT_EQ(e.error().code, ErrorCode::InvalidConfig);
        EXPECT_NE(e.error().message.find("tls.crt"), std::string::npos) << e.error().message;
    }
}

TEST_F(CertEntryTest, RejectsTruncatedChain) {
    auto ca = make_cert({"ca.test"}, false, 1, now);
    auto leaf = make_cert({"a.test"}, false, 2, now, -3600, 86400, &ca);
    std::string pem =
        leaf.cert_pem.substr(0, leaf.cert_pem.size() - 40);  // cut inside the CA block
    EXPECT_FALSE(parse_cert_entry("a", pem, leaf.key_pem, clock).ok());
}

TEST_F(CertEntryTest, RejectsTruncatedKeyWithoutLeakingIt) {
    auto c = make_cert({"a.test"}, false, 1, now);
    SecretBytes half(std::string(c.key_pem.reveal().substr(0, c.key_pem.size() / 2)));
    auto e = parse_cert_entry("a", c.cert_pem, half, clock);
    ASSERT_FALSE(e.ok());
    // No base64 line of the key may appear in the message.
    std::string key(c.key_pem.reveal());
    size_t nl = key.find('\n');
    std::string first_b64 = key.substr(nl + 1, 40);
    EXPECT_EQ(e.error().message.find(first_b64), std::string::npos);
    EXPECT_NE(e.error().message.find("tls.key"), std::string::npos);
}

TEST_F(CertEntryTest, RejectsMismatchedKey) {
    auto a = make_cert({"a.test"}, false, 1, now);
    auto b = make_cert({"a.test"}, false, 2, now);
    auto e = parse_cert_entry("a", a.cert_pem, b.key_pem, clock);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.error().message.find("does not match"), std::string::npos) << e.error().message;
}

TEST_F(CertEntryTest, RejectsExpiredAndNotYetValid) {
    auto old = make_cert({"a.test"}, false, 1, now, -86400 * 10, -60);
    auto e = parse_cert_entry("a", old.cert_pem, old.key_pem, clock);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.error().message.find("expired"), std::string::npos);
    auto future = make_cert({"a.test"}, false, 2, now, 86400, 86400 * 10);
    EXPECT_FALSE(parse_cert_entry("a", future.cert_pem, future.key_pem, clock).ok());
}

TEST_F(CertEntryTest, RejectsGarbageAndTrailingJunk) {
    auto c = make_cert({"a.test"}, false, 1, now);
    EXPECT_FALSE(parse_cert_entry("a", "hello", c.key_pem, clock).ok());
    EXPECT_FALSE(parse_cert_entry("a", "", c.key_pem, clock).ok());
    EXPECT_FALSE(parse_cert_entry("a", c.cert_pem + "junk", c.key_pem, clock).ok());
    EXPECT_TRUE(parse_cert_entry("a", c.cert_pem + "\n\n", c.key_pem, clock).ok());
}

TEST_F(CertEntryTest, StoreKeepsLastGoodOnBadUpdateAndCountsIt) {
    SnapshotHolder holder;
    CertStore store({}, clock, holder);
    auto good = make_cert({"a.test"}, false, 10, now);
    store.apply({{CertChange::Kind::Upsert, "a", good.cert_pem, good.key_pem}}, true);
    ASSERT_TRUE(store.loaded());
    EXPECT_EQ(store.reloads_ok(), 1u);
    auto other = make_cert({"a.test"}, false, 11, now);
    // Mismatched key, then a truncated file: both rejected, serial 10 still served.
    store.apply({{CertChange::Kind::Upsert, "a", good.cert_pem, other.key_pem}}, false);
    store.apply({{CertChange::Kind::Upsert, "a", other.cert_pem.substr(0, 100), other.key_pem}},
                false);
    EXPECT_EQ(store.reloads_error(), 2u);
    EXPECT_EQ(holder.get()->find("a.test").ec->serial, "0a");
    EXPECT_FALSE(store.errors().at("a").empty());
    // The fixed pair goes in.
    store.apply({{CertChange::Kind::Upsert, "a", other.cert_pem, other.key_pem}}, false);
    EXPECT_EQ(holder.get()->find("a.test").ec->serial, "0b");
    EXPECT_TRUE(store.errors().at("a").empty());
    // Identical content does not republish.
    uint64_t gen = holder.generation();
    store.apply({{CertChange::Kind::Upsert, "a", other.cert_pem, other.key_pem}}, false);
    EXPECT_EQ(holder.generation(), gen);
    store.apply({{CertChange::Kind::Remove, "a", {}, {}}}, false);
    EXPECT_EQ(holder.get()->size(), 0u);
}

TEST_F(CertEntryTest, FullBatchRemovesMissingNames) {
    SnapshotHolder holder;
    CertStore store({}, clock, holder);
    auto a = make_cert({"a.test"}, false, 1, now);
    auto b = make_cert({"b.test"}, false, 2, now);
    store.apply({{CertChange::Kind::Upsert, "a", a.cert_pem, a.key_pem},
                 {CertChange::Kind::Upsert, "b", b.cert_pem, b.key_pem}},
                true);
    EXPECT_EQ(holder.get()->size(), 2u);
    store.apply({{CertChange::Kind::Upsert, "b", b.cert_pem, b.key_pem}}, true);
    EXPECT_EQ(holder.get()->size(), 1u);
    EXPECT_TRUE(holder.get()->entries().count("b"));
}

}  // namespace
}  // namespace edgecert::tls

namespace edgecert::tls {
namespace {

std::string traditional_pem(EVP_PKEY* k) {
    ossl::UniquePtr<BIO> b(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey_traditional(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
    return ossl::bio_to_string(b.get());
}

TEST(CertEntryKeyFormats, Pkcs8Sec1AndPkcs1AllParseAndMismatchIsCaught) {
    FakeClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
    for (bool rsa : {false, true}) {
        auto c = testing::make_cert({"k.test"}, rsa, 5, 1'800'000'000);
        std::string trad = traditional_pem(c.key.get());
        EXPECT_NE(trad.find(rsa ? "BEGIN RSA PRIVATE KEY" : "BEGIN EC PRIVATE KEY"),
                  std::string::npos);
        for (const std::string& pem : {std::string(c.key_pem.reveal()), trad}) {
            auto e = parse_cert_entry("k", c.cert_pem, SecretBytes(pem), clock);
            ASSERT_TRUE(e.ok()) << e.error().message;
            EXPECT_EQ((*e)->key_type, rsa ? KeyType::RSA : KeyType::EC);
        }
        auto other = testing::make_cert({"k.test"}, rsa, 6, 1'800'000'000);
        EXPECT_FALSE(
            parse_cert_entry("k", c.cert_pem, SecretBytes(traditional_pem(other.key.get())), clock)
                .ok());
    }
}

// The load path compares public keys itself for the keys it decodes directly (no provider
// conversion): every curve it caches, RSA, and every cross pairing must still be judged right.
TEST(CertEntryKeyFormats, KeyMatchAcrossCurvesAndTypes) {
    FakeClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
    const time_t now = 1'800'000'000;
    std::vector<testing::TestCert> certs;
    certs.push_back(testing::make_cert({"m.test"}, false, 1, now));
    certs.push_back(
        testing::make_cert({"m.test"}, false, 2, now, -3600, 30 * 86400, nullptr, "P-384"));
    certs.push_back(
        testing::make_cert({"m.test"}, false, 3, now, -3600, 30 * 86400, nullptr, "P-521"));
    certs.push_back(testing::make_cert({"m.test"}, true, 4, now));
    for (size_t i = 0; i < certs.size(); ++i) {
        for (size_t j = 0; j < certs.size(); ++j) {
            auto e = parse_cert_entry("m", certs[i].cert_pem, certs[j].key_pem, clock);
            if (i == j) {
                EXPECT_TRUE(e.ok()) << i << ": " << e.error().message;
            } else {
                ASSERT_FALSE(e.ok()) << "cert " << i << " accepted key " << j;
                EXPECT_NE(e.error().message.find("does not match"), std::string::npos)
                    << e.error().message;
            }
        }
    }
}

TEST(CertEntryKeyFormats, Sec1KeyWithoutPublicPointMatches) {
    FakeClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
    auto c = testing::make_cert({"s.test"}, false, 7, 1'800'000'000);
    EC_KEY* ec = EVP_PKEY_get1_EC_KEY(c.key.get());
    ASSERT_NE(ec, nullptr);
    EC_KEY_set_enc_flags(ec, EC_KEY_get_enc_flags(ec) | EC_PKEY_NO_PUBKEY);
    ossl::UniquePtr<BIO> b(BIO_new(BIO_s_mem()));
    ASSERT_EQ(PEM_write_bio_ECPrivateKey(b.get(), ec, nullptr, nullptr, 0, nullptr, nullptr), 1);
    EC_KEY_free(ec);
    std::string pem = ossl::bio_to_string(b.get());
    auto e = parse_cert_entry("s", c.cert_pem, SecretBytes(pem), clock);
    EXPECT_TRUE(e.ok()) << e.error().message;
    auto other = testing::make_cert({"s.test"}, false, 8, 1'800'000'000);
    EXPECT_FALSE(parse_cert_entry("s", other.cert_pem, SecretBytes(pem), clock).ok());
}

// Found by fuzzing (tests/data/fuzz-corpus/cert_entry/crash-ec521-pkcs8-corrupted-private-scalar): a key
// whose public part still matches the certificate but whose private part was changed passed the
// public-key comparison, and would have replaced a good certificate with one that fails every
// handshake. Each key type, each encoding the direct decoders read.
TEST(CertEntryKeyFormats, KeyWhosePrivatePartDoesNotMatchItsPublicPartIsRefused) {
    FakeClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
    const time_t now = 1'800'000'000;
    auto expect_refused = [&](const testing::TestCert& c, const std::string& pem,
                              const char* what) {
        auto e = parse_cert_entry("k", c.cert_pem, SecretBytes(pem), clock);
        ASSERT_FALSE(e.ok()) << what;
        EXPECT_NE(e.error().message.find("does not belong to its own public key"),
                  std::string::npos)
            << what << ": " << e.error().message;
    };
    for (const char* curve : {"P-256", "P-384", "P-521"}) {
        auto c = testing::make_cert({"k.test"}, false, 1, now, -3600, 86400, nullptr, curve);
        auto other = testing::make_key(false, curve);
        // The certificate's public point with another key's private scalar.
        EC_KEY* ec = EVP_PKEY_get1_EC_KEY(c.key.get());
        EC_KEY* o = EVP_PKEY_get1_EC_KEY(other.get());
        ASSERT_EQ(EC_KEY_set_private_key(ec, EC_KEY_get0_private_key(o)), 1);
        EC_KEY_free(o);
        ossl::UniquePtr<EVP_PKEY> bad(EVP_PKEY_new());
        ASSERT_EQ(EVP_PKEY_assign_EC_KEY(bad.get(), ec), 1);
        expect_refused(c, std::string(testing::key_to_pem(bad.get()).reveal()), curve);  // PKCS#8
        expect_refused(c, traditional_pem(bad.get()), curve);                            // SEC1
    }
    auto c = testing::make_cert({"k.test"}, true, 2, now);
    RSA* rsa = EVP_PKEY_get1_RSA(c.key.get());
    const BIGNUM *n = nullptr, *e = nullptr, *d = nullptr;
    RSA_get0_key(rsa, &n, &e, &d);
    BIGNUM* d2 = BN_dup(d);
    BN_add_word(d2, 2);
    ASSERT_EQ(RSA_set0_key(rsa, nullptr, nullptr, d2),
              1);  // n and e (what the match compares) kept
    ossl::UniquePtr<EVP_PKEY> bad(EVP_PKEY_new());
    ASSERT_EQ(EVP_PKEY_assign_RSA(bad.get(), rsa), 1);
    expect_refused(c, std::string(testing::key_to_pem(bad.get()).reveal()), "RSA PKCS#8");
    expect_refused(c, traditional_pem(bad.get()), "RSA PKCS#1");
    EXPECT_TRUE(
        parse_cert_entry("k", c.cert_pem, c.key_pem, clock).ok());  // the real key still loads
}

// Found while fuzzing: an encrypted key made OpenSSL ask for a passphrase on the terminal (and
// block the loader until someone typed one). It is refused at once instead.
TEST(CertEntryKeyFormats, EncryptedKeyIsRefusedWithoutAPrompt) {
    FakeClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
    auto c = testing::make_cert({"k.test"}, false, 3, 1'800'000'000);
    ossl::UniquePtr<BIO> b(BIO_new(BIO_s_mem()));
    ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(b.get(), c.key.get(), EVP_aes_256_cbc(), nullptr, 0,
                                            nullptr, const_cast<char*>("secret")),
              1);
    std::string pem = ossl::bio_to_string(b.get());
    ASSERT_NE(pem.find("ENCRYPTED PRIVATE KEY"), std::string::npos);
    auto e = parse_cert_entry("k", c.cert_pem, SecretBytes(pem), clock);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.error().message.find("encrypted key is not supported"), std::string::npos)
        << e.error().message;
}

}  // namespace
}  // namespace edgecert::tls
