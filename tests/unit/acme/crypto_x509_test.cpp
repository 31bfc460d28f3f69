// Certificate parsing and fields, PEM chains, and the RFC 9773 ARI certificate identifier.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "edgecert/acme/crypto.h"
#include "edgecert/base/encoding.h"

namespace edgecert::acme {
namespace {

using namespace std::chrono_literals;

Certificate self_signed(const PrivateKey& key, std::vector<std::string> names, const Clock& clock,
                        std::chrono::seconds validity = 90 * 24h) {
    auto c = make_self_signed(key, names, validity, clock);
    EXPECT_TRUE(c.ok()) << c.error().message;
    return std::move(c).value();
}

// A certificate with exactly the AKI keyIdentifier and serial of the RFC 9773 §4.1 example,
// built field by field with OpenSSL (the RFC gives the fields, not a PEM).
Certificate rfc9773_example_cert(const PrivateKey& key) {
    ossl::UniquePtr<X509> x(X509_new());
    EXPECT_EQ(X509_set_version(x.get(), X509_VERSION_3), 1);
    EXPECT_EQ(ASN1_INTEGER_set_int64(X509_get_serialNumber(x.get()), 0x87654321), 1);
    ossl::UniquePtr<X509_NAME> name(X509_NAME_new());
    X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("ari.example"), -1, -1, 0);
    X509_set_subject_name(x.get(), name.get());
    X509_set_issuer_name(x.get(), name.get());
    X509_gmtime_adj(X509_getm_notBefore(x.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600);
    X509_set_pubkey(x.get(), key.get());
    const unsigned char keyid[] = {0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
                                   0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4};
    ossl::UniquePtr<AUTHORITY_KEYID> akid(AUTHORITY_KEYID_new());
    akid->keyid = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(akid->keyid, keyid, sizeof keyid);
    EXPECT_EQ(X509_add1_ext_i2d(x.get(), NID_authority_key_identifier, akid.get(), 0, 0), 1);
    EXPECT_GT(X509_sign(x.get(), key.get(), EVP_sha256()), 0);
    return Certificate::adopt(std::move(x));
}

TEST(CryptoCertificate, Rfc9773AriCertId) {
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    Certificate cert = rfc9773_example_cert(*key);
    auto id = cert.ari_cert_id();
    ASSERT_TRUE(id.ok()) << id.error().message;
    EXPECT_EQ(*id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    EXPECT_EQ(cert.serial_hex(), "87654321");
    // The same after a DER round trip (what we read back from a Secret).
    auto again = Certificate::from_der(cert.to_der());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again->ari_cert_id(), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");

    // A certificate without AKI has no certID (self-signed ones we make carry none).
    FakeClock clock;
    auto ss = self_signed(*key, {"a.example"}, clock);
    EXPECT_FALSE(ss.ari_cert_id().ok());
    EXPECT_EQ(ERR_peek_error(), 0u);
}

std::string read_fixture(const std::string& name) {
    std::ifstream f(std::string(EDGECERT_TEST_DATA) + "/acme/" + name, std::ios::binary);
    EXPECT_TRUE(f.good()) << name;
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// RFC 9773 Appendix A, the example certificate as published (tests/data/acme).
TEST(CryptoCertificate, Rfc9773AppendixACertificate) {
    auto cert = Certificate::from_pem(read_fixture("rfc9773_example_cert.pem"));
    ASSERT_TRUE(cert.ok()) << cert.error().message;
    auto id = cert->ari_cert_id();
    ASSERT_TRUE(id.ok()) << id.error().message;
    EXPECT_EQ(*id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    EXPECT_EQ(cert->serial_hex(), "87654321");
    EXPECT_EQ(cert->subject_cn(), "example.com");
    EXPECT_EQ(cert->issuer_cn(), "Example CA");
    EXPECT_EQ(cert->issuer_name(), "CN=Example CA");
    EXPECT_FALSE(cert->self_signed());
    EXPECT_TRUE(cert->dns_names().empty());
    // Both validity bounds are 0001-01-01T00:00:00Z, before anything SystemTime (nanoseconds
    // since 1970, about 1678..2262) can hold: clamped to its minimum, not overflowed.
    EXPECT_EQ(cert->not_before(), kSystemTimeMin);
    EXPECT_EQ(cert->not_after(), kSystemTimeMin);
}

TEST(CryptoCertificate, FarFutureNotAfterIsClamped) {
    // RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined expiration date".
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    FakeClock clock;
    auto cert = make_self_signed(*key, {"forever.example"}, 24h, clock);
    ASSERT_TRUE(cert.ok());
    ASSERT_EQ(ASN1_TIME_set_string(X509_getm_notAfter(cert->get()), "99991231235959Z"), 1);
    EXPECT_EQ(cert->not_after(), kSystemTimeMax);
    ASSERT_EQ(ASN1_TIME_set_string(X509_getm_notAfter(cert->get()), "20500101000000Z"), 1);
    EXPECT_EQ(cert->not_after(), SystemTime(std::chrono::seconds(2524608000)));
    EXPECT_FALSE(make_self_signed(*key, {"forever.example"}, std::chrono::hours(24 * 366 * 101), clock).ok());
}

class CryptoCertEachType : public ::testing::TestWithParam<KeyType> {};

TEST_P(CryptoCertEachType, SelfSignedFields) {
    auto key = PrivateKey::generate(GetParam());
    ASSERT_TRUE(key.ok());
    FakeClock clock;
    Certificate cert = self_signed(*key, {"www.example.org", "example.org", "*.example.org"}, clock, 48h);
    EXPECT_EQ(cert.dns_names(), (std::vector<std::string>{"www.example.org", "example.org", "*.example.org"}));
    EXPECT_EQ(cert.subject_cn(), "www.example.org");
    EXPECT_EQ(cert.issuer_cn(), "www.example.org");
    EXPECT_EQ(cert.issuer_name(), "CN=www.example.org");
    EXPECT_TRUE(cert.self_signed());
    EXPECT_TRUE(cert.matches_key(*key));
    auto other = PrivateKey::generate(GetParam());
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE(cert.matches_key(*other));
    EXPECT_EQ(ERR_peek_error(), 0u);
    EXPECT_EQ(cert.not_before(), clock.now() - 5min);
    EXPECT_EQ(cert.not_after(), clock.now() + 48h);
    // The signature verifies with the certificate's own key.
    EXPECT_EQ(X509_verify(cert.get(), key->get()), 1);
    std::string serial = cert.serial_hex();
    EXPECT_FALSE(serial.empty());
    EXPECT_NE(serial[0], '0');
    EXPECT_EQ(serial.find_first_not_of("0123456789abcdef"), std::string::npos);

    // PEM and DER round trips.
    auto from_pem = Certificate::from_pem(cert.to_pem());
    ASSERT_TRUE(from_pem.ok());
    EXPECT_EQ(from_pem->to_der(), cert.to_der());
    auto from_der = Certificate::from_der(cert.to_der());
    ASSERT_TRUE(from_der.ok());
    EXPECT_EQ(from_der->serial_hex(), serial);
    EXPECT_FALSE(Certificate::from_der(cert.to_der() + "x").ok());
}

INSTANTIATE_TEST_SUITE_P(Crypto, CryptoCertEachType,
                         ::testing::Values(KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048, KeyType::Ed25519),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(CryptoCertificate, SerialHexHasNoLeadingZeros) {
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    FakeClock clock;
    Certificate cert = self_signed(*key, {"a.example"}, clock);
    ASSERT_EQ(ASN1_INTEGER_set_int64(X509_get_serialNumber(cert.get()), 0x0abc), 1);
    EXPECT_EQ(cert.serial_hex(), "abc");
    ASSERT_EQ(ASN1_INTEGER_set_int64(X509_get_serialNumber(cert.get()), 0), 1);
    EXPECT_EQ(cert.serial_hex(), "0");
}

TEST(CryptoCertificate, RejectsGarbageWithoutEchoingIt) {
    const std::string secretish = "NOTACERTIFICATEBUTSECRET";
    for (const std::string& in :
         {std::string(), secretish, "-----BEGIN CERTIFICATE-----\n" + secretish + "\n-----END CERTIFICATE-----\n"}) {
        auto r = Certificate::from_pem(in);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
        EXPECT_EQ(r.error().message.find(secretish), std::string::npos) << r.error().message;
        EXPECT_EQ(ERR_peek_error(), 0u);
    }
    EXPECT_FALSE(Certificate::from_der("").ok());
    EXPECT_FALSE(Certificate::from_der(secretish).ok());
    EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(CryptoPemChain, ParsesEveryCertificateInOrder) {
    FakeClock clock;
    std::vector<Certificate> certs;
    for (const char* n : {"leaf.example", "intermediate.example", "root.example"}) {
        auto key = PrivateKey::generate(KeyType::EcP256);
        ASSERT_TRUE(key.ok());
        certs.push_back(self_signed(*key, {n}, clock));
    }
    std::string pem = chain_to_pem(certs);
    auto chain = parse_pem_chain(pem);
    ASSERT_TRUE(chain.ok()) << chain.error().message;
    ASSERT_EQ(chain->size(), 3u);
    EXPECT_EQ((*chain)[0].subject_cn(), "leaf.example");
    EXPECT_EQ((*chain)[1].subject_cn(), "intermediate.example");
    EXPECT_EQ((*chain)[2].subject_cn(), "root.example");
    EXPECT_EQ(chain_to_pem(*chain), pem);
    EXPECT_EQ(ERR_peek_error(), 0u);  // the expected end-of-input error was cleared

    // Text between blocks (as `openssl s_client -showcerts` prints) and CRLF line ends are fine.
    std::string noisy = "subject=leaf\r\n" + certs[0].to_pem() + "issuer=x\n\n" + certs[1].to_pem();
    auto chain2 = parse_pem_chain(noisy);
    ASSERT_TRUE(chain2.ok()) << chain2.error().message;
    EXPECT_EQ(chain2->size(), 2u);

    // Failures: nothing there, a malformed certificate in the middle, a truncated last one.
    const std::string secretish = "SECRETISHBYTES";
    EXPECT_FALSE(parse_pem_chain("").ok());
    EXPECT_FALSE(parse_pem_chain(secretish).ok());
    std::string bad_middle =
        certs[0].to_pem() + "-----BEGIN CERTIFICATE-----\nAAAA" + secretish + "\n-----END CERTIFICATE-----\n" +
        certs[2].to_pem();
    auto r = parse_pem_chain(bad_middle);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("certificate 2"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find(secretish), std::string::npos);
    std::string last = certs[1].to_pem();
    auto truncated = parse_pem_chain(certs[0].to_pem() + last.substr(0, last.size() / 2));
    EXPECT_FALSE(truncated.ok());
    EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace edgecert::acme
