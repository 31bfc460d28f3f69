// Finalize CSRs (RFC 2986 / RFC 8555 §7.4) and tls-alpn-01 challenge certificates (RFC 8737 §3),
// checked by parsing them back with OpenSSL.
#include <gtest/gtest.h>

#include "edgecert/acme/crypto.h"

namespace edgecert::acme {
namespace {

ossl::UniquePtr<X509_REQ> parse_csr(const std::string& der) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ossl::UniquePtr<X509_REQ> req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
    EXPECT_TRUE(req);
    EXPECT_EQ(p, reinterpret_cast<const unsigned char*>(der.data()) + der.size());
    return req;
}

struct Sans {
    std::vector<std::string> dns;
    std::vector<std::string> ips;  // raw octets
};

Sans csr_sans(X509_REQ* req) {
    Sans out;
    STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
    EXPECT_NE(exts, nullptr);
    if (!exts) return out;
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
        X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) continue;
        ossl::UniquePtr<GENERAL_NAMES> gens(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
        for (int j = 0; j < sk_GENERAL_NAME_num(gens.get()); ++j) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(gens.get(), j);
            const ASN1_STRING* s = gn->type == GEN_DNS ? gn->d.dNSName : gn->d.iPAddress;
            std::string v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                          static_cast<size_t>(ASN1_STRING_length(s)));
            (gn->type == GEN_DNS ? out.dns : out.ips).push_back(v);
        }
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return out;
}

std::string req_cn(X509_REQ* req) {
    X509_NAME* name = X509_REQ_get_subject_name(req);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) return {};
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
}

class CryptoCsrEachType : public ::testing::TestWithParam<KeyType> {};

TEST_P(CryptoCsrEachType, SignedWithSansAndCommonName) {
    auto key = PrivateKey::generate(GetParam());
    ASSERT_TRUE(key.ok());
    const std::vector<std::string> names = {"example.org", "www.example.org", "*.example.org"};
    auto der = make_csr_der(*key, names);
    ASSERT_TRUE(der.ok()) << der.error().message;
    auto req = parse_csr(*der);
    ASSERT_TRUE(req);
    EXPECT_EQ(X509_REQ_get_version(req.get()), X509_REQ_VERSION_1);
    // The CSR verifies with its own public key, which is the account-independent cert key.
    ossl::UniquePtr<EVP_PKEY> pub(X509_REQ_get_pubkey(req.get()));
    ASSERT_TRUE(pub);
    EXPECT_EQ(X509_REQ_verify(req.get(), pub.get()), 1);
    EXPECT_EQ(EVP_PKEY_eq(pub.get(), key->get()), 1);
    // Its SubjectPublicKeyInfo is byte-identical to OpenSSL's own encoding of the key.
    unsigned char* spki = nullptr;
    int spki_len = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req.get()), &spki);
    ASSERT_GT(spki_len, 0);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(spki), static_cast<size_t>(spki_len)), key->public_key_der());
    OPENSSL_free(spki);
    // Signature algorithm: SHA-256 based, or pure Ed25519.
    int sig_nid = X509_REQ_get_signature_nid(req.get());
    switch (GetParam()) {
        case KeyType::Ed25519: EXPECT_EQ(sig_nid, NID_ED25519); break;
        case KeyType::Rsa2048:
        case KeyType::Rsa4096: EXPECT_EQ(sig_nid, NID_sha256WithRSAEncryption); break;
        default: EXPECT_EQ(sig_nid, NID_ecdsa_with_SHA256);
    }
    EXPECT_EQ(csr_sans(req.get()).dns, names);
    EXPECT_EQ(req_cn(req.get()), "example.org");
    EXPECT_EQ(ERR_peek_error(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Crypto, CryptoCsrEachType,
                         ::testing::Values(KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048, KeyType::Rsa4096,
                                           KeyType::Ed25519),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(CryptoCsr, LongFirstNameHasNoCommonName) {
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    std::string longname = std::string(60, 'a') + ".example.org";  // 72 > 64 characters
    auto der = make_csr_der(*key, {longname, "short.example.org"});
    ASSERT_TRUE(der.ok()) << der.error().message;
    auto req = parse_csr(*der);
    EXPECT_EQ(req_cn(req.get()), "");
    EXPECT_EQ(csr_sans(req.get()).dns, (std::vector<std::string>{longname, "short.example.org"}));
    EXPECT_EQ(X509_NAME_entry_count(X509_REQ_get_subject_name(req.get())), 0);

    // Exactly 64 characters still fits.
    std::string sixty_four = std::string(52, 'b') + ".example.org";
    ASSERT_EQ(sixty_four.size(), 64u);
    auto der64 = make_csr_der(*key, {sixty_four});
    ASSERT_TRUE(der64.ok());
    EXPECT_EQ(req_cn(parse_csr(*der64).get()), sixty_four);
}

TEST(CryptoCsr, IpAddressesBecomeIpAddressSans) {
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    // RFC 8738: 4 octets for IPv4, 16 for IPv6, whatever the textual form was.
    auto der = make_csr_der(*key, {"host.example"}, {"192.0.2.7", "2001:DB8:0:0::1", "::1"});
    ASSERT_TRUE(der.ok()) << der.error().message;
    auto req = parse_csr(*der);
    Sans sans = csr_sans(req.get());
    EXPECT_EQ(sans.dns, (std::vector<std::string>{"host.example"}));
    ASSERT_EQ(sans.ips.size(), 3u);
    EXPECT_EQ(sans.ips[0], std::string("\xc0\x00\x02\x07", 4));
    EXPECT_EQ(sans.ips[1], std::string("\x20\x01\x0d\xb8", 4) + std::string(11, '\0') + "\x01");
    EXPECT_EQ(sans.ips[2], std::string(15, '\0') + "\x01");
    EXPECT_EQ(req_cn(req.get()), "host.example");

    // An address-only CSR has no CN (an IP is never put in the CN).
    auto only_ip = make_csr_der(*key, {}, {"198.51.100.4"});
    ASSERT_TRUE(only_ip.ok()) << only_ip.error().message;
    auto req2 = parse_csr(*only_ip);
    EXPECT_EQ(req_cn(req2.get()), "");
    EXPECT_TRUE(csr_sans(req2.get()).dns.empty());
    EXPECT_EQ(csr_sans(req2.get()).ips,
              (std::vector<std::string>{std::string("\xc6\x33\x64\x04", 4)}));
}

TEST(CryptoCsr, RefusesMalformedAndMisplacedAddresses) {
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    // An IP literal is not a DNS name: it must come as an IP address.
    auto misplaced = make_csr_der(*key, {"192.0.2.7"});
    ASSERT_FALSE(misplaced.ok());
    EXPECT_EQ(misplaced.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(misplaced.error().message.find("is an IP address"), std::string::npos);
    for (const char* bad : {"192.0.2", "192.0.2.256", "01.2.3.4", "[::1]", "fe80::1%eth0",
                            "10.0.0.0/8", "example.com", "::ffff:192.0.2.1", " 192.0.2.1"}) {
        auto r = make_csr_der(*key, {}, {bad});
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig) << bad;
    }
    auto mapped = make_csr_der(*key, {}, {"::ffff:192.0.2.1"});
    EXPECT_NE(mapped.error().message.find("write it as 192.0.2.1"), std::string::npos)
        << mapped.error().message;
}

TEST(CryptoCsr, RejectsEmptyIdentifiers) {
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    EXPECT_FALSE(make_csr_der(*key, {}).ok());
    EXPECT_FALSE(make_csr_der(*key, {""}).ok());
    EXPECT_FALSE(make_csr_der(*key, {std::string("a\0b", 3)}).ok());
}

TEST(CryptoTlsAlpn01, ChallengeCertificateCarriesAcmeIdentifier) {
    FakeClock clock;
    const std::string ka = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    auto cc = make_tls_alpn01_cert("challenge.example.org", ka, clock);
    ASSERT_TRUE(cc.ok()) << cc.error().message;
    X509* x = cc->cert.get();
    EXPECT_EQ(cc->key.type(), KeyType::EcP256);
    EXPECT_TRUE(cc->cert.matches_key(cc->key));
    EXPECT_TRUE(cc->cert.self_signed());
    EXPECT_EQ(X509_verify(x, cc->key.get()), 1);
    EXPECT_EQ(cc->cert.dns_names(), (std::vector<std::string>{"challenge.example.org"}));
    EXPECT_LE(cc->cert.not_before(), clock.now());
    EXPECT_GT(cc->cert.not_after(), clock.now());

    // RFC 8737 §3: critical id-pe-acmeIdentifier (1.3.6.1.5.5.7.1.31), value = DER OCTET STRING
    // of SHA-256(key authorization).
    ossl::UniquePtr<ASN1_OBJECT> oid(OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1));
    int idx = X509_get_ext_by_OBJ(x, oid.get(), -1);
    ASSERT_GE(idx, 0);
    EXPECT_LT(X509_get_ext_by_OBJ(x, oid.get(), idx), 0);  // exactly one
    X509_EXTENSION* ext = X509_get_ext(x, idx);
    EXPECT_EQ(X509_EXTENSION_get_critical(ext), 1);
    const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
    const unsigned char* p = ASN1_STRING_get0_data(data);
    const unsigned char* end = p + ASN1_STRING_length(data);
    ossl::UniquePtr<ASN1_OCTET_STRING> inner(d2i_ASN1_OCTET_STRING(nullptr, &p, ASN1_STRING_length(data)));
    ASSERT_TRUE(inner);
    EXPECT_EQ(p, end);  // nothing after the OCTET STRING
    std::string got(reinterpret_cast<const char*>(ASN1_STRING_get0_data(inner.get())),
                    static_cast<size_t>(ASN1_STRING_length(inner.get())));
    EXPECT_EQ(got, sha256(ka));
    EXPECT_EQ(got.size(), 32u);

    // A fresh key for every challenge.
    auto cc2 = make_tls_alpn01_cert("challenge.example.org", ka, clock);
    ASSERT_TRUE(cc2.ok());
    EXPECT_NE(cc2->key.thumbprint(), cc->key.thumbprint());
    EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(CryptoTlsAlpn01, IpIdentifierGetsIpAddressSan) {
    // RFC 8738 §6: the acmeIdentifier certificate for an address carries it as an iPAddress SAN.
    FakeClock clock;
    auto cc = make_tls_alpn01_cert("192.0.2.9", "t.k", clock);
    ASSERT_TRUE(cc.ok()) << cc.error().message;
    EXPECT_TRUE(cc->cert.dns_names().empty());
    EXPECT_EQ(cc->cert.ip_addresses(), (std::vector<std::string>{"192.0.2.9"}));
    EXPECT_EQ(X509_check_ip_asc(cc->cert.get(), "192.0.2.9", 0), 1);
    auto v6 = make_tls_alpn01_cert("2001:db8::1", "t.k", clock);
    ASSERT_TRUE(v6.ok()) << v6.error().message;
    EXPECT_EQ(v6->cert.ip_addresses(), (std::vector<std::string>{"2001:db8::1"}));
    EXPECT_TRUE(v6->cert.dns_names().empty());
}

// The challenge certificate and key work in a real TLS 1.3 handshake with ALPN acme-tls/1
// (RFC 8737 §4), run in memory over a BIO pair: what a validator sees.
TEST(CryptoTlsAlpn01, ServesInATlsHandshake) {
    FakeClock clock(std::chrono::system_clock::now());
    auto cc = make_tls_alpn01_cert("alpn.example", "token.thumb", clock);
    ASSERT_TRUE(cc.ok()) << cc.error().message;

    ossl::UniquePtr<SSL_CTX> sctx(SSL_CTX_new(TLS_server_method()));
    ossl::UniquePtr<SSL_CTX> cctx(SSL_CTX_new(TLS_client_method()));
    ASSERT_TRUE(sctx && cctx);
    ASSERT_EQ(SSL_CTX_use_certificate(sctx.get(), cc->cert.get()), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(sctx.get(), cc->key.get()), 1);
    ASSERT_EQ(SSL_CTX_check_private_key(sctx.get()), 1);
    SSL_CTX_set_alpn_select_cb(
        sctx.get(),
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
           void*) -> int {
            static const unsigned char proto[] = "\x0a" "acme-tls/1";
            unsigned char* sel = nullptr;
            if (SSL_select_next_proto(&sel, outlen, proto, sizeof proto - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
                return SSL_TLSEXT_ERR_ALERT_FATAL;
            }
            *out = sel;
            return SSL_TLSEXT_ERR_OK;
        },
        nullptr);
    ossl::UniquePtr<SSL> server(SSL_new(sctx.get()));
    ossl::UniquePtr<SSL> client(SSL_new(cctx.get()));
    BIO *sbio = nullptr, *cbio = nullptr;
    ASSERT_EQ(BIO_new_bio_pair(&sbio, 0, &cbio, 0), 1);
    SSL_set_bio(server.get(), sbio, sbio);
    SSL_set_bio(client.get(), cbio, cbio);
    SSL_set_accept_state(server.get());
    SSL_set_connect_state(client.get());
    SSL_set_tlsext_host_name(client.get(), "alpn.example");
    static const unsigned char alpn[] = "\x0a" "acme-tls/1";
    ASSERT_EQ(SSL_set_alpn_protos(client.get(), alpn, sizeof alpn - 1), 0);

    bool cdone = false, sdone = false;
    for (int i = 0; i < 20 && !(cdone && sdone); ++i) {
        if (!cdone) {
            int r = SSL_do_handshake(client.get());
            cdone = r == 1;
            if (!cdone) {
                ASSERT_EQ(SSL_get_error(client.get(), r), SSL_ERROR_WANT_READ);
            }
        }
        if (!sdone) {
            int r = SSL_do_handshake(server.get());
            sdone = r == 1;
            if (!sdone) {
                ASSERT_EQ(SSL_get_error(server.get(), r), SSL_ERROR_WANT_READ);
            }
        }
    }
    ASSERT_TRUE(cdone && sdone);
    const unsigned char* proto = nullptr;
    unsigned proto_len = 0;
    SSL_get0_alpn_selected(client.get(), &proto, &proto_len);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(proto), proto_len), "acme-tls/1");
    ossl::UniquePtr<X509> peer(SSL_get1_peer_certificate(client.get()));
    ASSERT_TRUE(peer);
    EXPECT_EQ(X509_cmp(peer.get(), cc->cert.get()), 0);
    EXPECT_EQ(X509_check_host(peer.get(), "alpn.example", 0, 0, nullptr), 1);
}

TEST(CryptoSelfSigned, RejectsNonPositiveValidityAndNoNames) {
    FakeClock clock;
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    EXPECT_FALSE(make_self_signed(*key, {"a.example"}, std::chrono::seconds(0), clock).ok());
    EXPECT_FALSE(make_self_signed(*key, {}, std::chrono::seconds(60), clock).ok());
    // Leaf profile: not a CA, serverAuth.
    auto cert = make_self_signed(*key, {"a.example"}, std::chrono::seconds(3600), clock);
    ASSERT_TRUE(cert.ok());
    EXPECT_EQ(X509_check_ca(cert->get()), 0);
    EXPECT_EQ(X509_check_purpose(cert->get(), X509_PURPOSE_SSL_SERVER, 0), 1);
}

}  // namespace
}  // namespace edgecert::acme
