#include "tls/tls_context.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cstring>
#include <mutex>

namespace edgecert::tls {
namespace {

int conn_index() {
    static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return idx;
}

// Mozilla "intermediate" (v5.7) minus the DHE suites: ECDHE + AEAD only.
constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kCiphers13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kGroups = "X25519:P-256:P-384";
constexpr unsigned char kAcmeTls[] = "acme-tls/1";

int client_hello_cb(SSL* ssl, int* al, void* arg) {
    return static_cast<TlsContext*>(arg)->on_client_hello(ssl, al);
}

int alpn_cb(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
            void* arg) {
    return static_cast<TlsContext*>(arg)->on_alpn(ssl, out, outlen, in, inlen);
}

int ticket_cb(SSL* ssl, unsigned char name[16], unsigned char iv[16], EVP_CIPHER_CTX* cctx, EVP_MAC_CTX* hctx,
              int enc) {
    auto* self = static_cast<TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    return self->tickets().callback(name, iv, cctx, hctx, enc);
}

uint16_t be16(const unsigned char* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

std::optional<IpAddress> local_address(const TlsConnInfo& ci) {
    if (ci.local) return IpAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(ci.local));
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (ci.fd < 0 || getsockname(ci.fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        return std::nullopt;
    return IpAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss));
}

}  // namespace

bool parse_sni_ext(const unsigned char* p, size_t len, std::string_view* out) {
    if (len < 2 || be16(p) != len - 2) return false;
    p += 2;
    len -= 2;
    while (len >= 3) {
        unsigned type = p[0];
        size_t n = be16(p + 1);
        if (n > len - 3) return false;
        if (type == 0 /* host_name */) {
            *out = std::string_view(reinterpret_cast<const char*>(p + 3), n);
            return true;
        }
        p += 3 + n;
        len -= 3 + n;
    }
    return false;
}

bool parse_alpn_ext(const unsigned char* p, size_t len, std::vector<std::string_view>* out) {
    if (len < 2 || be16(p) != len - 2) return false;
    p += 2;
    len -= 2;
    while (len > 0) {
        size_t n = p[0];
        if (n == 0 || n > len - 1) return false;
        out->emplace_back(reinterpret_cast<const char*>(p + 1), n);
        p += 1 + n;
        len -= 1 + n;
    }
    return true;
}

TlsContext::TlsContext(TlsOptions opts, const ChallengeSource* challenges, TicketKeys& tickets)
    : opts_(std::move(opts)), challenges_(challenges), tickets_(tickets) {
    for (const auto& p : opts_.alpn) {
        std::string w = std::string(1, static_cast<char>(p.size())) + p;
        alpn_wire_ += w;
        if (p == "h2") has_h2_ = true;
        else alpn_wire_no_h2_ += w;
    }
}

Result<std::unique_ptr<TlsContext>> TlsContext::create(TlsOptions opts, const ChallengeSource* challenges,
                                                       TicketKeys& tickets) {
    for (const auto& p : opts.alpn)
        if (p.empty() || p.size() > 255) return Error(ErrorCode::InvalidConfig, "bad ALPN protocol name");
    (void)conn_index();
    std::unique_ptr<TlsContext> c(new TlsContext(std::move(opts), challenges, tickets));
    EC_TRY(c->new_ssl_ctx());  // fail at startup, not in a worker
    return c;
}

Result<ossl::UniquePtr<SSL_CTX>> TlsContext::new_ssl_ctx() {
    ossl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new_ex(nullptr, nullptr, TLS_server_method()));
    if (!ctx) return ossl::error("SSL_CTX_new");
    SSL_CTX* c = ctx.get();
    SSL_CTX_set_app_data(c, this);
    if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 || SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1)
        return ossl::error("TLS versions");
    if (SSL_CTX_set_cipher_list(c, kCiphers12) != 1) return ossl::error("TLS 1.2 ciphers");
    if (SSL_CTX_set_ciphersuites(c, kCiphers13) != 1) return ossl::error("TLS 1.3 ciphersuites");
    if (SSL_CTX_set1_groups_list(c, kGroups) != 1) return ossl::error("groups");
    // Mozilla intermediate: the client's cipher order wins (it knows if it has AES hardware).
    SSL_CTX_clear_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // One read() per batch of records instead of a header read plus a body read per record.
    SSL_CTX_set_read_ahead(c, 1);
    // Stateless resumption only: tickets under our rotating keys, no server-side cache.
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(c, static_cast<size_t>(opts_.num_tickets));
    SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_cb);
    SSL_CTX_set_client_hello_cb(c, client_hello_cb, this);
    SSL_CTX_set_alpn_select_cb(c, alpn_cb, this);
    return ctx;
}

void TlsContext::attach(SSL* ssl, TlsConnInfo* info) { SSL_set_ex_data(ssl, conn_index(), info); }

TlsConnInfo* TlsContext::info(SSL* ssl) { return static_cast<TlsConnInfo*>(SSL_get_ex_data(ssl, conn_index())); }

int TlsContext::on_client_hello(SSL* ssl, int* alert) {
    TlsConnInfo* ci = info(ssl);
    if (!ci || !ci->snapshot) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    const unsigned char* p = nullptr;
    size_t len = 0;
    std::string_view sni;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) == 1 && !parse_sni_ext(p, len, &sni)) {
        *alert = SSL_AD_DECODE_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }

    // tls-alpn-01 (RFC 8737 §3): the validation server offers only "acme-tls/1".
    if (challenges_ && SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &len) == 1) {
        // Exactly one protocol, "acme-tls/1": list length 11, entry length 10 (RFC 7301 §3.1).
        static constexpr unsigned char kOnlyAcme[] = "\x00\x0b\x0a" "acme-tls/1";
        if (len == sizeof kOnlyAcme - 1 && std::memcmp(p, kOnlyAcme, len) == 0) {
            std::string domain(sni);
            std::optional<std::string> ka;
            // RFC 8738 §6: an IP identifier is asked for with its reverse-DNS name in SNI
            // (1.0.0.127.in-addr.arpa); answers are keyed by the address itself.
            if (auto ip = IpAddress::from_reverse_name(sni)) {
                std::string text = ip->to_string();
                if ((ka = challenges_->tls_alpn01(text))) domain = std::move(text);
            }
            if (!ka && !sni.empty()) ka = challenges_->tls_alpn01(domain);
            if (!ka) {
                *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
                return SSL_CLIENT_HELLO_ERROR;
            }
            auto cert = challenge_certs_.get(domain, *ka);
            if (!cert || SSL_use_cert_and_key(ssl, (*cert)->cert.get(), (*cert)->key.get(), nullptr, 1) != 1) {
                ossl::clear_errors();
                *alert = SSL_AD_INTERNAL_ERROR;
                return SSL_CLIENT_HELLO_ERROR;
            }
            ci->acme_tls_alpn = true;
            return SSL_CLIENT_HELLO_SUCCESS;
        }
    }

    // No SNI (a client connecting to https://<address>/): the certificate for the address it
    // connected to, if one has that iPAddress SAN, before the default.
    CertSlot slot;
    if (sni.empty() && ci->snapshot->has_ip_names()) {
        if (auto local = local_address(*ci)) slot = ci->snapshot->find_ip(*local, &ci->match);
    }
    if (slot.empty()) slot = ci->snapshot->find(sni, &ci->match);
    if (slot.empty()) {
        *alert = SSL_AD_UNRECOGNIZED_NAME;  // --strict-sni (or nothing loaded yet)
        return SSL_CLIENT_HELLO_ERROR;
    }
    // override=1: replace whatever the SSL inherited; the chain is up-ref'd, not copied deep.
    for (const CertEntry* e : {slot.ec, slot.rsa}) {
        if (!e) continue;
        if (SSL_use_cert_and_key(ssl, e->leaf.get(), e->key.get(), e->chain.get(), 1) != 1) {
            ossl::clear_errors();
            *alert = SSL_AD_INTERNAL_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        if (!ci->served) ci->served = e;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

int TlsContext::on_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                        unsigned inlen) {
    TlsConnInfo* ci = info(ssl);
    if (ci && ci->acme_tls_alpn) {
        *out = kAcmeTls;
        *outlen = sizeof kAcmeTls - 1;
        return SSL_TLSEXT_ERR_OK;
    }
    // Server preference (h2 first when offered); no overlap: continue without ALPN.
    const std::string& wire = offer_h2_.load(std::memory_order_relaxed) ? alpn_wire_ : alpn_wire_no_h2_;
    if (wire.empty()) return SSL_TLSEXT_ERR_NOACK;
    unsigned char* sel = nullptr;
    unsigned char sel_len = 0;
    if (SSL_select_next_proto(&sel, &sel_len, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned>(wire.size()), in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        *outlen = sel_len;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace edgecert::tls
