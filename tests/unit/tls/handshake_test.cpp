// Real TLS handshakes in memory (BIO pairs) against TlsContext: certificate choice by SNI and by
// the client's signature algorithms, strict SNI, ALPN, tls-alpn-01, and ticket-key rotation.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "tests/unit/tls/test_certs.h"
#include "tls/alpn_challenge.h"
#include "tls/tls_context.h"

namespace edgecert::tls {
namespace {

using testing::make_cert;

struct Result2 {
    bool ok = false;
    std::string serial, alpn, version;
    bool rsa = false;
    bool reused = false;
    bool acme = false;
    ossl::UniquePtr<SSL_SESSION> session;
    ossl::UniquePtr<X509> peer;
};

class HandshakeTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto c = TlsContext::create({}, &challenges, tickets);
        ASSERT_TRUE(c.ok()) << c.error().message;
        ctx = std::move(*c);
        auto sc = ctx->new_ssl_ctx();
        ASSERT_TRUE(sc.ok());
        server_ctx = std::move(*sc);
        client_ctx.reset(SSL_CTX_new(TLS_client_method()));
        SSL_CTX_set_session_cache_mode(client_ctx.get(), SSL_SESS_CACHE_OFF);  // reuse one ticket freely
        std::map<std::string, std::shared_ptr<const CertEntry>> m;
        m["a-ec"] = entry("a-ec", {"a.test", "*.w.test"}, false, 0x11);
        m["a-rsa"] = entry("a-rsa", {"a.test"}, true, 0x22);
        m["default"] = entry("default", {"default.test"}, false, 0x33);
        snap = CertSnapshot::build(m, "default", false);
        strict = CertSnapshot::build(m, "", true);
    }
    std::shared_ptr<const CertEntry> entry(const std::string& n, std::vector<std::string> sans, bool rsa, long serial) {
        auto c = make_cert(sans, rsa, serial, now);
        auto e = parse_cert_entry(n, c.cert_pem, c.key_pem, clock);
        EXPECT_TRUE(e.ok());
        return *e;
    }

    // Runs one handshake; `setup` configures the client SSL.
    Result2 handshake(const CertSnapshot* s, const std::string& sni, const std::function<void(SSL*)>& setup = {},
                      SSL_SESSION* resume = nullptr) {
        Result2 r;
        ossl::UniquePtr<SSL> srv(SSL_new(server_ctx.get())), cli(SSL_new(client_ctx.get()));
        BIO *b1, *b2;
        BIO_new_bio_pair(&b1, 0, &b2, 0);
        SSL_set_bio(srv.get(), b1, b1);
        SSL_set_bio(cli.get(), b2, b2);
        TlsConnInfo info;
        info.snapshot = s;
        info.local = local;  // BIO pairs have no socket: the address a listener would know
        TlsContext::attach(srv.get(), &info);
        SSL_set_accept_state(srv.get());
        SSL_set_connect_state(cli.get());
        if (!sni.empty()) SSL_set_tlsext_host_name(cli.get(), sni.c_str());
        if (setup) setup(cli.get());
        if (resume) SSL_set_session(cli.get(), resume);
        bool sdone = false, cdone = false;
        for (int i = 0; i < 50 && !(sdone && cdone); ++i) {
            if (!cdone) {
                int rc = SSL_do_handshake(cli.get());
                if (rc == 1) cdone = true;
                else if (SSL_get_error(cli.get(), rc) != SSL_ERROR_WANT_READ) break;
            }
            if (!sdone) {
                int rc = SSL_do_handshake(srv.get());
                if (rc == 1) sdone = true;
                else if (SSL_get_error(srv.get(), rc) != SSL_ERROR_WANT_READ) break;
            }
        }
        ossl::clear_errors();
        r.ok = sdone && cdone;
        if (!r.ok) return r;
        // Let the client read the post-handshake tickets (TLS 1.3).
        char buf[16];
        EXPECT_EQ(SSL_write(srv.get(), "x", 1), 1);
        EXPECT_EQ(SSL_read(cli.get(), buf, sizeof buf), 1);
        r.peer.reset(SSL_get1_peer_certificate(cli.get()));
        r.serial = serial_hex(r.peer.get());
        r.rsa = EVP_PKEY_is_a(X509_get0_pubkey(r.peer.get()), "RSA");
        const unsigned char* a;
        unsigned al;
        SSL_get0_alpn_selected(cli.get(), &a, &al);
        r.alpn.assign(reinterpret_cast<const char*>(a ? a : reinterpret_cast<const unsigned char*>("")), a ? al : 0);
        r.version = SSL_get_version(cli.get());
        r.reused = SSL_session_reused(cli.get());
        r.acme = info.acme_tls_alpn;
        r.session.reset(SSL_get1_session(cli.get()));
        // A clean close: OpenSSL marks the session of an SSL freed without one unresumable.
        SSL_set_shutdown(cli.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        ossl::clear_errors();
        return r;
    }

    FakeClock clock{SystemTime(std::chrono::seconds(time(nullptr)))};
    time_t now = time(nullptr);
    MemoryChallengeSource challenges;
    TicketKeys tickets{clock, std::chrono::hours(12), 2};
    std::unique_ptr<TlsContext> ctx;
    ossl::UniquePtr<SSL_CTX> server_ctx, client_ctx;
    std::shared_ptr<const CertSnapshot> snap, strict;
    const sockaddr_storage* local = nullptr;
};

sockaddr_storage address(const char* text) {
    sockaddr_storage ss{};
    if (std::string_view(text).find(':') == std::string_view::npos) {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        in->sin_family = AF_INET;
        EXPECT_EQ(inet_pton(AF_INET, text, &in->sin_addr), 1);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
        in6->sin6_family = AF_INET6;
        EXPECT_EQ(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    }
    return ss;
}

TEST_F(HandshakeTest, SniSelectsExactWildcardDefault) {
    EXPECT_EQ(handshake(snap.get(), "a.test").serial, "11");
    EXPECT_EQ(handshake(snap.get(), "x.w.test").serial, "11");
    EXPECT_EQ(handshake(snap.get(), "a.b.w.test").serial, "33");
    EXPECT_EQ(handshake(snap.get(), "").serial, "33");
}

TEST_F(HandshakeTest, StrictSniRefusesUnknownNames) {
    EXPECT_FALSE(handshake(strict.get(), "nope.test").ok);
    EXPECT_FALSE(handshake(strict.get(), "").ok);
    EXPECT_TRUE(handshake(strict.get(), "a.test").ok);
}

TEST_F(HandshakeTest, PicksEcdsaOrRsaFromClientCapabilities) {
    auto both = handshake(snap.get(), "a.test");
    EXPECT_FALSE(both.rsa);  // ECDSA preferred when the client can verify it
    auto rsa13 = handshake(snap.get(), "a.test", [](SSL* s) { SSL_set1_sigalgs_list(s, "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384"); });
    ASSERT_TRUE(rsa13.ok);
    EXPECT_TRUE(rsa13.rsa);
    EXPECT_EQ(rsa13.serial, "22");
    auto rsa12 = handshake(snap.get(), "a.test", [](SSL* s) {
        SSL_set_max_proto_version(s, TLS1_2_VERSION);
        SSL_set_cipher_list(s, "ECDHE-RSA-AES128-GCM-SHA256");
    });
    ASSERT_TRUE(rsa12.ok);
    EXPECT_TRUE(rsa12.rsa);
    EXPECT_EQ(rsa12.version, "TLSv1.2");
    // A name with only an ECDSA certificate cannot serve an RSA-only client.
    EXPECT_FALSE(handshake(snap.get(), "x.w.test", [](SSL* s) { SSL_set1_sigalgs_list(s, "rsa_pss_rsae_sha256"); }).ok);
}

TEST_F(HandshakeTest, RefusesOldProtocolsAndWeakCiphers) {
    EXPECT_FALSE(handshake(snap.get(), "a.test", [](SSL* s) {
                     SSL_set_min_proto_version(s, TLS1_VERSION);
                     SSL_set_max_proto_version(s, TLS1_1_VERSION);
                     SSL_set_security_level(s, 0);
                 }).ok);
    EXPECT_FALSE(handshake(snap.get(), "a.test", [](SSL* s) {
                     SSL_set_max_proto_version(s, TLS1_2_VERSION);
                     SSL_set_cipher_list(s, "AES128-SHA:ECDHE-RSA-AES128-SHA");
                 }).ok);
}

TEST_F(HandshakeTest, AlpnDefaultIsHttp11Only) {
    // The default forwards to an HTTP/1.1 upstream: h2 is never offered, even when the client
    // prefers it (curl and browsers list h2 first).
    auto set = [](const char* wire, unsigned len) {
        return [=](SSL* s) { SSL_set_alpn_protos(s, reinterpret_cast<const unsigned char*>(wire), len); };
    };
    EXPECT_EQ(handshake(snap.get(), "a.test", set("\x02h2\x08http/1.1", 12)).alpn, "http/1.1");
    EXPECT_FALSE(ctx->offers_h2());
    auto h2only = handshake(snap.get(), "a.test", set("\x02h2", 3));
    EXPECT_TRUE(h2only.ok);  // no overlap: the handshake goes on without ALPN
    EXPECT_EQ(h2only.alpn, "");
}

TEST_F(HandshakeTest, AlpnPrefersH2WhenOfferedAndCanBeWithdrawn) {
    TlsOptions o;
    o.alpn = {"h2", "http/1.1"};
    auto c = TlsContext::create(o, &challenges, tickets);
    ASSERT_TRUE(c.ok());
    ctx = std::move(*c);
    auto sc = ctx->new_ssl_ctx();
    ASSERT_TRUE(sc.ok());
    server_ctx = std::move(*sc);
    auto set = [](const char* wire, unsigned len) {
        return [=](SSL* s) { SSL_set_alpn_protos(s, reinterpret_cast<const unsigned char*>(wire), len); };
    };
    EXPECT_TRUE(ctx->offers_h2());
    EXPECT_EQ(handshake(snap.get(), "a.test", set("\x08http/1.1\x02h2", 12)).alpn, "h2");
    EXPECT_EQ(handshake(snap.get(), "a.test", set("\x08http/1.1", 9)).alpn, "http/1.1");
    auto none = handshake(snap.get(), "a.test", set("\x06spdy/1", 7));
    EXPECT_TRUE(none.ok);
    EXPECT_EQ(none.alpn, "");
    // The upstream stopped answering h2: the same SSL_CTX now negotiates http/1.1 at once.
    ctx->set_offer_h2(false);
    EXPECT_FALSE(ctx->offers_h2());
    EXPECT_EQ(handshake(snap.get(), "a.test", set("\x02h2\x08http/1.1", 12)).alpn, "http/1.1");
    ctx->set_offer_h2(true);
    EXPECT_EQ(handshake(snap.get(), "a.test", set("\x02h2\x08http/1.1", 12)).alpn, "h2");
}

TEST_F(HandshakeTest, TlsAlpn01ServesChallengeCertificate) {
    challenges.set_tls_alpn01("a.test", "token.thumbprint");
    auto acme = [](SSL* s) { SSL_set_alpn_protos(s, reinterpret_cast<const unsigned char*>("\x0a" "acme-tls/1"), 11); };
    auto r = handshake(snap.get(), "a.test", acme);
    ASSERT_TRUE(r.ok);
    EXPECT_TRUE(r.acme);
    EXPECT_EQ(r.alpn, "acme-tls/1");
    // RFC 8737 §3: critical acmeIdentifier = OCTET STRING(SHA-256(key authorization)).
    ossl::UniquePtr<ASN1_OBJECT> oid(OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1));
    int idx = X509_get_ext_by_OBJ(r.peer.get(), oid.get(), -1);
    ASSERT_GE(idx, 0);
    X509_EXTENSION* ext = X509_get_ext(r.peer.get(), idx);
    EXPECT_TRUE(X509_EXTENSION_get_critical(ext));
    ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(ext);
    unsigned char want[34] = {0x04, 0x20};
    SHA256(reinterpret_cast<const unsigned char*>("token.thumbprint"), 16, want + 2);
    ASSERT_EQ(ASN1_STRING_length(v), 34);
    EXPECT_EQ(0, memcmp(ASN1_STRING_get0_data(v), want, 34));
    // No challenge for that name: refused. Normal clients keep getting the real certificate.
    EXPECT_FALSE(handshake(snap.get(), "x.w.test", acme).ok);
    EXPECT_EQ(handshake(snap.get(), "a.test").serial, "11");
}

// https://192.0.2.1/ sends no SNI (RFC 6066 §3): the certificate whose iPAddress SAN is the
// address the client connected to, before the default; with SNI, the name decides.
TEST_F(HandshakeTest, NoSniServesTheCertificateOfTheLocalAddress) {
    std::map<std::string, std::shared_ptr<const CertEntry>> m = snap->entries();
    m["ip4"] = entry("ip4", {"www.ip.test", "192.0.2.1"}, false, 0x44);
    m["ip6"] = entry("ip6", {"2001:db8::1"}, false, 0x66);
    auto ips = CertSnapshot::build(m, "default", false);
    sockaddr_storage v4 = address("192.0.2.1"), mapped = address("::ffff:192.0.2.1"),
                     v6 = address("2001:db8::1"), other = address("198.51.100.1");
    local = &v4;
    auto r = handshake(ips.get(), "");
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.serial, "44");
    EXPECT_EQ(X509_check_ip_asc(r.peer.get(), "192.0.2.1", 0), 1);  // what curl checks
    EXPECT_EQ(handshake(ips.get(), "a.test").serial, "11");         // SNI wins
    local = &mapped;  // an IPv4 client on a dual-stack [::] listener
    EXPECT_EQ(handshake(ips.get(), "").serial, "44");
    local = &v6;
    EXPECT_EQ(handshake(ips.get(), "").serial, "66");
    local = &other;
    EXPECT_EQ(handshake(ips.get(), "").serial, "33");  // no certificate for it: the default
    local = nullptr;  // no address known (and no socket): the default
    EXPECT_EQ(handshake(ips.get(), "").serial, "33");
    // Strict SNI refuses unknown names, but an address with a certificate is known.
    auto strict_ips = CertSnapshot::build(m, "", true);
    local = &v4;
    EXPECT_EQ(handshake(strict_ips.get(), "").serial, "44");
    local = &other;
    EXPECT_FALSE(handshake(strict_ips.get(), "").ok);
}

// RFC 8738 §6: tls-alpn-01 for an address comes with its reverse-DNS name in SNI and must be
// answered with an iPAddress SAN; the answer is stored under the address itself.
TEST_F(HandshakeTest, TlsAlpn01ForAnAddressAnswersTheReverseName) {
    challenges.set_tls_alpn01("192.0.2.1", "tok4.thumb");
    challenges.set_tls_alpn01("2001:DB8:0::1", "tok6.thumb");  // any spelling: kept canonical
    auto acme = [](SSL* s) {
        SSL_set_alpn_protos(s,
                            reinterpret_cast<const unsigned char*>("\x0a"
                                                                   "acme-tls/1"),
                            11);
    };
    auto r = handshake(snap.get(), "1.2.0.192.in-addr.arpa", acme);
    ASSERT_TRUE(r.ok);
    EXPECT_TRUE(r.acme);
    EXPECT_EQ(X509_check_ip_asc(r.peer.get(), "192.0.2.1", 0), 1);
    ossl::UniquePtr<GENERAL_NAMES> sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(r.peer.get(), NID_subject_alt_name, nullptr, nullptr)));
    ASSERT_TRUE(sans);
    ASSERT_EQ(sk_GENERAL_NAME_num(sans.get()), 1);  // exactly the identifier (RFC 8737 §3)
    EXPECT_EQ(sk_GENERAL_NAME_value(sans.get(), 0)->type, GEN_IPADD);
    auto r6 =
        handshake(snap.get(),
                  "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", acme);
    ASSERT_TRUE(r6.ok);
    EXPECT_EQ(X509_check_ip_asc(r6.peer.get(), "2001:db8::1", 0), 1);
    // The address itself in SNI, or the reverse name of an address without a challenge: refused.
    EXPECT_FALSE(handshake(snap.get(), "2.2.0.192.in-addr.arpa", acme).ok);
    challenges.remove_tls_alpn01("192.0.2.1");
    EXPECT_FALSE(handshake(snap.get(), "1.2.0.192.in-addr.arpa", acme).ok);
}

TEST_F(HandshakeTest, TicketsResumeAcrossRotationAndSnapshotSwap) {
    auto first = handshake(snap.get(), "a.test");
    ASSERT_TRUE(first.ok && first.session);
    ASSERT_TRUE(SSL_SESSION_is_resumable(first.session.get()));
    // A certificate reload (new snapshot) does not invalidate tickets.
    std::map<std::string, std::shared_ptr<const CertEntry>> m;
    m["a-ec"] = entry("a-ec", {"a.test"}, false, 0x44);
    auto snap2 = CertSnapshot::build(m, "", false);
    auto r1 = handshake(snap2.get(), "a.test", {}, first.session.get());
    EXPECT_TRUE(r1.reused);
    // One rotation: the old key still decrypts.
    tickets.rotate();
    EXPECT_TRUE(handshake(snap2.get(), "a.test", {}, first.session.get()).reused);
    // Past `keep` rotations the ticket is refused and a full handshake follows.
    tickets.rotate();
    tickets.rotate();
    EXPECT_EQ(tickets.key_count(), 3u);
    auto full = handshake(snap2.get(), "a.test", {}, first.session.get());
    EXPECT_TRUE(full.ok);
    EXPECT_FALSE(full.reused);
    EXPECT_EQ(full.serial, "44");
}

TEST_F(HandshakeTest, ScheduledRotation) {
    EXPECT_EQ(tickets.key_count(), 1u);
    tickets.maybe_rotate();
    EXPECT_EQ(tickets.key_count(), 1u);
    clock.advance(std::chrono::hours(13));
    tickets.maybe_rotate();
    EXPECT_EQ(tickets.key_count(), 2u);
}

TEST(ExtParse, SniAndAlpnBodies) {
    const unsigned char sni[] = {0x00, 0x09, 0x00, 0x00, 0x06, 'a', '.', 't', 'e', 's', 't'};
    std::string_view out;
    ASSERT_TRUE(parse_sni_ext(sni, sizeof sni, &out));
    EXPECT_EQ(out, "a.test");
    EXPECT_FALSE(parse_sni_ext(sni, sizeof sni - 1, &out));
    const unsigned char bad[] = {0x00, 0x05, 0x00, 0x00, 0x09, 'a', 'b'};
    EXPECT_FALSE(parse_sni_ext(bad, sizeof bad, &out));
    const unsigned char alpn[] = {0x00, 0x0c, 0x02, 'h', '2', 0x08, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    std::vector<std::string_view> protos;
    ASSERT_TRUE(parse_alpn_ext(alpn, sizeof alpn, &protos));
    EXPECT_EQ(protos, (std::vector<std::string_view>{"h2", "http/1.1"}));
    const unsigned char zero[] = {0x00, 0x01, 0x00};
    protos.clear();
    EXPECT_FALSE(parse_alpn_ext(zero, sizeof zero, &protos));
}

TEST(ChallengeSources, DirectoryRejectsTraversal) {
    char tmpl[] = "/tmp/edgecert-ch-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    ASSERT_EQ(0, system(("mkdir -p " + dir + "/tls-alpn-01 && printf 'ka1\\n' > " + dir + "/tok_A-1 && printf ka2 > " +
                         dir + "/tls-alpn-01/a.test && printf secret > " + dir + "/../edgecert-secret-x").c_str()));
    DirChallengeSource src(dir);
    EXPECT_EQ(src.http01("tok_A-1").value_or(""), "ka1");
    EXPECT_FALSE(src.http01("missing").has_value());
    EXPECT_FALSE(src.http01("../edgecert-secret-x").has_value());
    EXPECT_FALSE(src.http01("").has_value());
    EXPECT_EQ(src.tls_alpn01("A.Test.").value_or(""), "ka2");
    EXPECT_FALSE(src.tls_alpn01("../x").has_value());
    // An IP identifier's file is named by the address's canonical text.
    ASSERT_EQ(0, system(("printf ka6 > '" + dir + "/tls-alpn-01/2001:db8::1'").c_str()));
    EXPECT_EQ(src.tls_alpn01("2001:DB8:0::1").value_or(""), "ka6");
    MemoryChallengeSource mem;
    mem.set_http01("t", "k");
    ChainChallengeSource chain;
    chain.add(&src);
    chain.add(&mem);
    EXPECT_EQ(chain.http01("t").value_or(""), "k");
    EXPECT_EQ(chain.http01("tok_A-1").value_or(""), "ka1");
    mem.remove_http01("t");
    EXPECT_FALSE(chain.http01("t").has_value());
    ASSERT_EQ(0, system(("rm -rf " + dir + " /tmp/edgecert-secret-x").c_str()));
}

}  // namespace
}  // namespace edgecert::tls
