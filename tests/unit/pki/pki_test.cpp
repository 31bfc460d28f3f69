// Certificates signed here (selfSigned / ca issuers): the extensions a cert-manager user expects,
// the usages mapping, the notAfter clamp, the CA key pair checks, and that OpenSSL's own path
// validation accepts what is built.
#include "pki/pki_internal.h"

#include <gtest/gtest.h>

#include <set>

#include "unit/acme/test_pki.h"

namespace edgecert::pki {
namespace {

using namespace std::chrono_literals;
using acme::Certificate;
using acme::PrivateKey;

const SystemTime kNow =
    std::chrono::time_point_cast<std::chrono::seconds>(SystemTime{} + 24h * 365 * 55);

PrivateKey key(acme::KeyType t = acme::KeyType::EcP256) {
    auto k = PrivateKey::generate(t);
    EXPECT_TRUE(k.ok());
    return std::move(k).value();
}

template <class T>
ossl::UniquePtr<T> ext(const Certificate& c, int nid, int* critical = nullptr) {
    return ossl::UniquePtr<T>(static_cast<T*>(X509_get_ext_d2i(c.get(), nid, critical, nullptr)));
}

std::string hex(const ASN1_OCTET_STRING* s) {
    std::string out;
    for (int i = 0; s && i < ASN1_STRING_length(s); ++i) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", ASN1_STRING_get0_data(s)[i]);
        out += b;
    }
    return out;
}

std::string aki(const Certificate& c) {
    auto a = ext<AUTHORITY_KEYID>(c, NID_authority_key_identifier);
    return a ? hex(a->keyid) : "";
}
std::string ski(const Certificate& c) {
    return hex(X509_get0_subject_key_id(c.get()));
}

std::string name_of(X509_NAME* n) {
    ossl::UniquePtr<BIO> b(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(b.get(), n, 0, XN_FLAG_RFC2253);
    return ossl::bio_to_string(b.get());
}

// X509_verify_cert against `root` with `chain` as untrusted intermediates.
bool verifies(const Certificate& leaf, const Certificate& root,
              const std::vector<Certificate>& chain = {}, int purpose = 0) {
    ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), root.get());
    ossl::X509Stack untrusted(sk_X509_new_null());
    for (const auto& c : chain) {
        X509_up_ref(c.get());
        sk_X509_push(untrusted.get(), c.get());
    }
    ossl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get());
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()),
                               std::chrono::system_clock::to_time_t(kNow + 1s));
    if (purpose) X509_STORE_CTX_set_purpose(ctx.get(), purpose);
    bool ok = X509_verify_cert(ctx.get()) == 1;
    if (!ok) ADD_FAILURE() << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ossl::clear_errors();
    return ok;
}

struct Bootstrap {  // cert-manager's recipe: selfSigned CA, then a ca issuer
    PrivateKey ca_key = key();
    Issued ca;
    CaKeyPair pair;
    Bootstrap()
        : ca(issue_ca()),
          pair(CaKeyPair::create(ca.chain_pem, ca_key.to_pem(), ca.ca_pem, kNow).value()) {}
    Issued issue_ca() {
        CertificateTemplate t;
        t.subject.common_name = "my-selfsigned-ca";
        t.is_ca = true;
        t.duration = 24h * 365;
        return issue(t, ca_key, nullptr, kNow).value();
    }
};

TEST(Pki, SelfSignedCaHasTheExtensionsCertManagerWrites) {
    Bootstrap b;
    const Certificate& c = b.ca.cert;
    int crit = -1;
    auto bc = ext<BASIC_CONSTRAINTS>(c, NID_basic_constraints, &crit);
    ASSERT_TRUE(bc);
    EXPECT_TRUE(bc->ca);
    EXPECT_EQ(crit, 1);
    // isCA adds cert sign to the default usages (digital signature; no keyEncipherment for EC).
    EXPECT_EQ(X509_get_key_usage(c.get()), uint32_t(KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN));
    ASSERT_TRUE(ext<ASN1_STRING>(c, NID_key_usage, &crit));
    EXPECT_EQ(crit, 1);
    EXPECT_FALSE(ext<EXTENDED_KEY_USAGE>(c, NID_ext_key_usage));
    EXPECT_EQ(ski(c).size(), 40u);  // SHA-1
    EXPECT_EQ(aki(c), ski(c));
    EXPECT_EQ(name_of(X509_get_subject_name(c.get())), "CN=my-selfsigned-ca");
    EXPECT_TRUE(c.self_signed());
    EXPECT_TRUE(signed_by(c, c));
    EXPECT_TRUE(c.dns_names().empty());
    EXPECT_FALSE(ext<GENERAL_NAMES>(c, NID_subject_alt_name));
    EXPECT_EQ(c.not_before(), kNow);
    EXPECT_EQ(c.not_after(), kNow + 24h * 365);
    EXPECT_EQ(b.ca.ca_pem, c.to_pem());  // selfSigned: ca.crt is the certificate itself
    EXPECT_EQ(b.ca.chain.size(), 1u);
    EXPECT_FALSE(b.ca.clamped_from);
    EXPECT_TRUE(verifies(c, c));
}

TEST(Pki, SerialsAreRandomPositiveAndOver64Bits) {
    PrivateKey k = key();
    CertificateTemplate t;
    t.dns_names = {"a.example"};
    std::set<std::string> seen;
    for (int i = 0; i < 20; ++i) {
        auto c = issue(t, k, nullptr, kNow);
        ASSERT_TRUE(c.ok());
        ossl::UniquePtr<BIGNUM> bn(
            ASN1_INTEGER_to_BN(X509_get0_serialNumber(c->cert.get()), nullptr));
        EXPECT_FALSE(BN_is_negative(bn.get()));
        EXPECT_GT(BN_num_bits(bn.get()), 64);
        EXPECT_LE(BN_num_bytes(bn.get()), 20);  // RFC 5280 §4.1.2.2
        seen.insert(c->cert.serial_hex());
    }
    EXPECT_EQ(seen.size(), 20u);
}

TEST(Pki, LeafSignedByTheCaChainsAndNamesItsIssuer) {
    Bootstrap b;
    PrivateKey lk = key();
    CertificateTemplate t;
    t.dns_names = {"www.example.test", "example.test"};
    t.usages = {Usage::ServerAuth, Usage::DigitalSignature};
    t.duration = 24h;
    auto leaf = issue(t, lk, &b.pair, kNow);
    ASSERT_TRUE(leaf.ok()) << leaf.error().message;
    const Certificate& c = leaf->cert;
    EXPECT_EQ(c.issuer_name(), "CN=my-selfsigned-ca");
    EXPECT_EQ(aki(c), ski(b.ca.cert));
    EXPECT_NE(ski(c), ski(b.ca.cert));
    EXPECT_TRUE(signed_by(c, b.ca.cert));
    EXPECT_FALSE(signed_by(c, c));
    int crit = -1;
    auto bc = ext<BASIC_CONSTRAINTS>(c, NID_basic_constraints, &crit);
    ASSERT_TRUE(bc);
    EXPECT_FALSE(bc->ca);
    EXPECT_EQ(crit, 1);
    EXPECT_EQ(c.dns_names(), (std::vector<std::string>{"www.example.test", "example.test"}));
    // No subject at all: RFC 5280 §4.2.1.6 wants the SAN critical then.
    EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(c.get())), 0);
    ASSERT_TRUE(ext<GENERAL_NAMES>(c, NID_subject_alt_name, &crit));
    EXPECT_EQ(crit, 1);
    // A root CA: tls.crt is the leaf alone, ca.crt the root.
    EXPECT_EQ(leaf->chain.size(), 1u);
    EXPECT_EQ(leaf->chain_pem, c.to_pem());
    EXPECT_EQ(leaf->ca_pem, b.ca.cert.to_pem());
    EXPECT_TRUE(verifies(c, b.ca.cert, {}, X509_PURPOSE_SSL_SERVER));
}

TEST(Pki, SanIsNotCriticalWhenThereIsASubject) {
    CertificateTemplate t;
    t.subject.common_name = "www.example.test";
    t.dns_names = {"www.example.test"};
    auto c = issue(t, key(), nullptr, kNow);
    ASSERT_TRUE(c.ok());
    int crit = -1;
    ASSERT_TRUE(ext<GENERAL_NAMES>(c->cert, NID_subject_alt_name, &crit));
    EXPECT_EQ(crit, 0);
}

TEST(Pki, UsagesMapToKeyUsageAndExtendedKeyUsage) {
    EXPECT_EQ(parse_usage("server auth").value(), Usage::ServerAuth);
    EXPECT_EQ(parse_usage("s/mime").value(), Usage::SMime);
    auto unknown = parse_usage("serverAuth");
    ASSERT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(unknown.error().message.find("server auth"), std::string::npos);  // lists the names
    for (std::string_view n : {"signing",
                               "digital signature",
                               "content commitment",
                               "key encipherment",
                               "key agreement",
                               "data encipherment",
                               "cert sign",
                               "crl sign",
                               "encipher only",
                               "decipher only",
                               "any",
                               "server auth",
                               "client auth",
                               "code signing",
                               "email protection",
                               "s/mime",
                               "ipsec end system",
                               "ipsec tunnel",
                               "ipsec user",
                               "timestamping",
                               "ocsp signing",
                               "microsoft sgc",
                               "netscape sgc"})
        EXPECT_EQ(to_string(parse_usage(n).value()), n);

    CertificateTemplate t;
    t.dns_names = {"a.example"};
    t.usages = {Usage::DigitalSignature, Usage::KeyEncipherment, Usage::ContentCommitment,
                Usage::CrlSign,          Usage::ServerAuth,      Usage::ClientAuth,
                Usage::CodeSigning,      Usage::OcspSigning,     Usage::IpsecUser};
    auto c = issue(t, key(acme::KeyType::Rsa2048), nullptr, kNow);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(
        X509_get_key_usage(c->cert.get()),
        uint32_t(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT | KU_NON_REPUDIATION | KU_CRL_SIGN));
    int crit = -1;
    auto eku = ext<EXTENDED_KEY_USAGE>(c->cert, NID_ext_key_usage, &crit);
    ASSERT_TRUE(eku);
    EXPECT_EQ(crit, 0);
    std::set<int> nids;
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i)
        nids.insert(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku.get(), i)));
    EXPECT_EQ(nids, (std::set<int>{NID_server_auth, NID_client_auth, NID_code_sign, NID_OCSP_sign,
                                   NID_ipsecUser}));
}

TEST(Pki, DefaultUsagesFollowTheKeyType) {
    CertificateTemplate t;
    t.dns_names = {"a.example"};
    auto rsa = issue(t, key(acme::KeyType::Rsa2048), nullptr, kNow);
    auto ec = issue(t, key(acme::KeyType::EcP384), nullptr, kNow);
    auto ed = issue(t, key(acme::KeyType::Ed25519), nullptr, kNow);
    ASSERT_TRUE(rsa.ok() && ec.ok() && ed.ok());
    EXPECT_EQ(X509_get_key_usage(rsa->cert.get()),
              uint32_t(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
    // RFC 8813 §3: no keyEncipherment for EC keys.
    EXPECT_EQ(X509_get_key_usage(ec->cert.get()), uint32_t(KU_DIGITAL_SIGNATURE));
    EXPECT_EQ(X509_get_key_usage(ed->cert.get()), uint32_t(KU_DIGITAL_SIGNATURE));
    EXPECT_EQ(X509_get_signature_nid(ec->cert.get()), NID_ecdsa_with_SHA384);
    EXPECT_EQ(X509_get_signature_nid(rsa->cert.get()), NID_sha256WithRSAEncryption);
    EXPECT_EQ(X509_get_signature_nid(ed->cert.get()), NID_ED25519);
}

TEST(Pki, SubjectFieldsInGoOrder) {
    CertificateTemplate t;
    t.subject.common_name = "svc";
    t.subject.organizations = {"Example Ltd"};
    t.subject.organizational_units = {"Ops", "Edge"};
    t.subject.countries = {"NL"};
    t.subject.localities = {"Amsterdam"};
    t.subject.provinces = {"Noord-Holland"};
    t.subject.street_addresses = {"1 Main St"};
    t.subject.postal_codes = {"1000 AA"};
    t.subject.serial_number = "42";
    auto c = issue(t, key(), nullptr, kNow);
    ASSERT_TRUE(c.ok()) << c.error().message;
    // RFC 2253 prints the last RDN first.
    EXPECT_EQ(
        name_of(X509_get_subject_name(c->cert.get())),
        "serialNumber=42,CN=svc,OU=Edge,OU=Ops,O=Example Ltd,postalCode=1000 AA,street=1 Main St,"
        "L=Amsterdam,ST=Noord-Holland,C=NL");

    t.subject.countries = {"Netherlands"};
    auto bad = issue(t, key(), nullptr, kNow);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(bad.error().message.find("countries"), std::string::npos);
    CertificateTemplate none;
    EXPECT_EQ(issue(none, key(), nullptr, kNow).error().code, ErrorCode::InvalidConfig);
}

TEST(Pki, NotAfterIsClampedToTheCasNotAfter) {
    PrivateKey ck = key();
    CertificateTemplate cat;
    cat.subject.common_name = "short-ca";
    cat.is_ca = true;
    cat.duration = 2h;
    auto ca = issue(cat, ck, nullptr, kNow);
    ASSERT_TRUE(ca.ok());
    auto pair = CaKeyPair::create(ca->chain_pem, ck.to_pem(), "", kNow + 1h);
    ASSERT_TRUE(pair.ok()) << pair.error().message;
    CertificateTemplate t;
    t.dns_names = {"a.example"};  // 90 days by default
    auto leaf = issue(t, key(), &*pair, kNow + 1h);
    ASSERT_TRUE(leaf.ok());
    EXPECT_EQ(leaf->cert.not_after(), kNow + 2h);
    ASSERT_TRUE(leaf->clamped_from);
    EXPECT_EQ(*leaf->clamped_from, kNow + 1h + kDefaultDuration);
    t.duration = 30min;
    auto inside = issue(t, key(), &*pair, kNow + 1h);
    ASSERT_TRUE(inside.ok());
    EXPECT_EQ(inside->cert.not_after(), kNow + 90min);
    EXPECT_FALSE(inside->clamped_from);
}

TEST(Pki, CaKeyPairRefusesWhatCannotSign) {
    Bootstrap b;
    const SecretBytes k = b.ca_key.to_pem();
    auto msg = [](const Result<CaKeyPair>& r) {
        return r.ok() ? std::string("ok") : r.error().message;
    };
    // A key that does not match.
    EXPECT_NE(
        msg(CaKeyPair::create(b.ca.chain_pem, key().to_pem(), "", kNow)).find("does not match"),
        std::string::npos);
    // Not a CA: a leaf with its own key.
    PrivateKey lk = key();
    CertificateTemplate lt;
    lt.dns_names = {"leaf.example"};
    auto leaf = issue(lt, lk, nullptr, kNow);
    EXPECT_NE(msg(CaKeyPair::create(leaf->chain_pem, lk.to_pem(), "", kNow)).find("not a CA"),
              std::string::npos);
    // Expired, and not yet valid.
    EXPECT_NE(msg(CaKeyPair::create(b.ca.chain_pem, k, "", kNow + 24h * 400)).find("expired at"),
              std::string::npos);
    EXPECT_NE(msg(CaKeyPair::create(b.ca.chain_pem, k, "", kNow - 1h)).find("not valid before"),
              std::string::npos);
    // No certificate, or no usable key.
    EXPECT_NE(msg(CaKeyPair::create("garbage", k, "", kNow)).find("no PEM certificate"),
              std::string::npos);
    EXPECT_NE(msg(CaKeyPair::create(b.ca.chain_pem, SecretBytes(std::string("nope")), "", kNow))
                  .find("tls.key"),
              std::string::npos);
    // CA:TRUE but a keyUsage without keyCertSign.
    PrivateKey nk = key();
    auto x =
        acme::testpki::make_cert("no-sign", nk, nullptr, nk, true, {}, 7, kNow - 1h, kNow + 24h);
    acme::testpki::add_ext(x.get(), x.get(), NID_key_usage, "critical,digitalSignature");
    X509_sign(x.get(), nk.get(), EVP_sha256());
    EXPECT_NE(msg(CaKeyPair::create(x.to_pem(), nk.to_pem(), "", kNow)).find("keyCertSign"),
              std::string::npos);
    // InvalidConfig, and nothing secret in the message.
    auto mismatch = CaKeyPair::create(b.ca.chain_pem, key().to_pem(), "", kNow);
    ASSERT_FALSE(mismatch.ok());
    EXPECT_EQ(mismatch.error().code, ErrorCode::InvalidConfig);
    EXPECT_EQ(mismatch.error().message.find("PRIVATE"), std::string::npos);
}

TEST(Pki, IntermediateCaGoesIntoTheChainAndTheRootIntoCaCrt) {
    acme::testpki::Hierarchy h("Root", "Intermediate", kNow);
    auto pair =
        CaKeyPair::create(h.intermediate.to_pem() + h.root.to_pem(), h.int_key.to_pem(), "", kNow);
    ASSERT_TRUE(pair.ok()) << pair.error().message;
    CertificateTemplate t;
    t.dns_names = {"svc.example"};
    t.usages = {Usage::ServerAuth};
    auto leaf = issue(t, key(), &*pair, kNow);
    ASSERT_TRUE(leaf.ok());
    ASSERT_EQ(leaf->chain.size(), 2u);  // leaf + intermediate, no root
    EXPECT_EQ(leaf->chain[1].to_der(), h.intermediate.to_der());
    EXPECT_EQ(leaf->ca_pem, h.root.to_pem());
    EXPECT_TRUE(verifies(leaf->cert, h.root, {h.intermediate}, X509_PURPOSE_SSL_SERVER));
    // Only the intermediate in tls.crt, the root in the Secret's ca.crt.
    auto alone =
        CaKeyPair::create(h.intermediate.to_pem(), h.int_key.to_pem(), h.root.to_pem(), kNow);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(alone->ca_pem(), h.root.to_pem());
    EXPECT_EQ(alone->intermediates().size(), 1u);
}

TEST(Pki, DifferencesNameTheChangedSpecFields) {
    PrivateKey k = key();
    CertificateTemplate t;
    t.subject.common_name = "svc";
    t.dns_names = {"svc.example"};
    t.usages = {Usage::ServerAuth};
    auto c = issue(t, k, nullptr, kNow);
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(differences(t, c->cert, k).empty());
    CertificateTemplate u = t;
    u.usages = {Usage::ServerAuth, Usage::ClientAuth};
    EXPECT_EQ(differences(u, c->cert, k), std::vector<std::string>{"spec.usages"});
    u = t;
    u.is_ca = true;  // also adds cert sign to keyUsage
    EXPECT_EQ(differences(u, c->cert, k), (std::vector<std::string>{"spec.isCA", "spec.usages"}));
    u = t;
    u.subject.organizations = {"Example"};
    EXPECT_EQ(differences(u, c->cert, k), std::vector<std::string>{"spec.commonName/spec.subject"});
    u = t;
    u.duration = 1h;  // the lifetime is not compared (a clamped one would never match)
    EXPECT_TRUE(differences(u, c->cert, k).empty());
}

}  // namespace
}  // namespace edgecert::pki
