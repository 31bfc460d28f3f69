// The ClientHello path for real: a server SSL from the project's TlsContext (its SSL_CTX
// settings, client-hello callback with our SNI parser and certificate choice, tls-alpn-01
// detection, ALPN selection, ticket callback) reads fuzzed client bytes from a memory BIO.
//
// Input: one mode byte (bit 0: strict-SNI snapshot; bit 1: no challenge source; bit 2: the
// connection's local address is 127.0.0.1, which one certificate has as an iPAddress SAN), then
// the bytes a client sends (TLS records; the seeds are ClientHellos captured from openssl
// s_client, curl and Chromium on loopback, see docs/fuzzing.md).
// Invariants, once OpenSSL accepted the ClientHello and answered (it waits for the client's next
// flight): the certificate our callback chose is the one the snapshot gives for the name OpenSSL
// itself parsed out of the same hello (our parser and OpenSSL's agree), or without SNI the one for
// the local address when a certificate has it (RFC 8738 clients); a tls-alpn-01 answer only for a
// name with a pending challenge, or a reverse-DNS name whose address has one (RFC 8738 §6), and
// only with "acme-tls/1" selected; otherwise the selected ALPN protocol is one we offer.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

#include <map>

#include "tests/fuzz/fuzz_util.h"
#include "tests/unit/tls/test_certs.h"
#include "tls/cert_snapshot.h"
#include "tls/tls_context.h"

using namespace edgecert;
using namespace edgecert::tls;

namespace {

struct World {
    FakeClock clock{SystemTime(std::chrono::seconds(time(nullptr)))};
    TicketKeys tickets{clock};
    MemoryChallengeSource challenges;
    std::unique_ptr<TlsContext> with_challenges, without_challenges;
    ossl::UniquePtr<SSL_CTX> ctx_challenges, ctx_plain;
    std::shared_ptr<const CertSnapshot> snap, strict;
    sockaddr_storage loopback{};

    World() {
        time_t now = time(nullptr);
        auto entry = [&](const std::string& n, std::vector<std::string> sans, bool rsa,
                         long serial) {
            auto c = testing::make_cert(sans, rsa, serial, now);
            auto e = parse_cert_entry(n, c.cert_pem, c.key_pem, clock);
            if (!e) std::abort();
            return *e;
        };
        EntryMap m;
        m["a-ec"] = entry("a-ec", {"a.test", "*.w.test"}, false, 0x11);
        m["a-rsa"] = entry("a-rsa", {"a.test"}, true, 0x22);
        m["default"] = entry("default", {"default.test"}, false, 0x33);
        m["ip"] = entry("ip", {"127.0.0.1", "::1"}, false, 0x44);
        snap = CertSnapshot::build(m, "default", false);
        strict = CertSnapshot::build(m, "", true);
        challenges.set_tls_alpn01("a.test", "token.thumbprint");
        challenges.set_tls_alpn01("acme.test", "token2.thumbprint");
        challenges.set_tls_alpn01("127.0.0.1", "token3.thumbprint");
        auto* sin = reinterpret_cast<sockaddr_in*>(&loopback);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        with_challenges = std::move(*TlsContext::create({}, &challenges, tickets));
        without_challenges = std::move(*TlsContext::create({}, nullptr, tickets));
        ctx_challenges = std::move(*with_challenges->new_ssl_ctx());
        ctx_plain = std::move(*without_challenges->new_ssl_ctx());
    }
};

World& world() {
    static World* w = new World();  // lives for the process: no exit-time destructor order issues
    return *w;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    world();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    World& w = world();
    fuzz::Reader r(fuzz::as_view(data, size));
    uint8_t mode = r.u8();
    std::string_view client = r.rest();
    const CertSnapshot* snapshot = (mode & 1) ? w.strict.get() : w.snap.get();
    bool challenges = !(mode & 2);

    ossl::UniquePtr<SSL> ssl(SSL_new(challenges ? w.ctx_challenges.get() : w.ctx_plain.get()));
    BIO* rbio = BIO_new_mem_buf(client.data(), static_cast<int>(client.size()));
    BIO_set_mem_eof_return(rbio, -1);  // end of input = "no more data yet", not EOF
    BIO* wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl.get(), rbio, wbio);
    TlsConnInfo info;
    info.snapshot = snapshot;
    if (mode & 4) info.local = &w.loopback;
    TlsContext::attach(ssl.get(), &info);
    SSL_set_accept_state(ssl.get());

    int err = SSL_ERROR_NONE;
    for (int i = 0; i < 8; ++i) {
        int rc = SSL_do_handshake(ssl.get());
        if (rc == 1) break;  // cannot happen without our keys on the client side; harmless
        err = SSL_get_error(ssl.get(), rc);
        if (err != SSL_ERROR_WANT_READ) break;
        if (BIO_ctrl_pending(rbio) == 0) break;  // all input consumed
    }
    bool answered =
        err == SSL_ERROR_WANT_READ && BIO_ctrl_pending(wbio) > 0 && info.served != nullptr;
    ERR_clear_error();

    if (info.acme_tls_alpn) {
        FUZZ_CHECK(challenges, "tls-alpn-01 answered without a challenge source");
        const char* sni = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name);
        if (sni) {
            auto ip = IpAddress::from_reverse_name(sni);
            FUZZ_CHECK(w.challenges.tls_alpn01(sni).has_value() ||
                           (ip && w.challenges.tls_alpn01(ip->to_string()).has_value()),
                       "tls-alpn-01 for %s, no challenge", sni);
        }
    }
    const unsigned char* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl.get(), &alpn, &alpn_len);
    std::string_view selected(reinterpret_cast<const char*>(alpn), alpn ? alpn_len : 0);
    if (info.acme_tls_alpn && answered) {
        FUZZ_CHECK(selected == "acme-tls/1", "tls-alpn-01 answer without acme-tls/1");
    } else if (!info.acme_tls_alpn) {
        FUZZ_CHECK(selected.empty() || selected == "h2" || selected == "http/1.1",
                   "selected ALPN %.*s", static_cast<int>(selected.size()), selected.data());
    }
    if (answered && !info.acme_tls_alpn) {
        const char* sni = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name);
        CertSlot slot;
        if (!sni && info.local) slot = snapshot->find_ip(*IpAddress::parse("127.0.0.1"));
        if (slot.empty()) slot = snapshot->find(sni ? sni : "");
        FUZZ_CHECK(info.served == slot.ec || info.served == slot.rsa,
                   "served %s, but the snapshot gives another certificate for SNI '%s'",
                   info.served->name.c_str(), sni ? sni : "");
    }
    return 0;
}
