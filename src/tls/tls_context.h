#pragma once
// TlsContext: the shared TLS settings (TLS 1.2/1.3, Mozilla "intermediate" AEAD suites, X25519 /
// P-256 / P-384, ALPN, our ticket keys) and the per-handshake certificate choice.
//
// Certificates are NOT in the SSL_CTX: one SSL_CTX per certificate costs tens of KiB and a slow
// provider-heavy construction in OpenSSL 3.0, which does not scale to 10,000 certificates. Each
// worker gets its own SSL_CTX (no cross-thread contention on CTX locks), and the client-hello
// callback sets the ECDSA and/or RSA certificate for the SNI on the SSL itself
// (SSL_use_cert_and_key, which only up-refs the parsed X509/EVP_PKEY). With both set, OpenSSL
// chooses by the client's signature_algorithms and cipher list.
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "edgecert/base/ossl.h"
#include "edgecert/base/result.h"
#include "tls/alpn_challenge.h"
#include "tls/cert_snapshot.h"
#include "tls/challenge_source.h"
#include "tls/ticket_keys.h"

namespace edgecert::tls {

// Per-connection state the callbacks read and fill. The proxy owns it and attaches it with
// TlsContext::attach() before the handshake.
struct TlsConnInfo {
    const CertSnapshot* snapshot = nullptr;  // valid for the duration of the handshake callbacks
    // The connection's local (destination) address, for clients that send no SNI (https://IP/):
    // `local` when the listener is bound to one address, else getsockname(fd) — asked only when
    // there is no SNI and some certificate has an iPAddress SAN.
    int fd = -1;
    const sockaddr_storage* local = nullptr;
    bool acme_tls_alpn = false;              // serving a tls-alpn-01 challenge: close after handshake
    MatchKind match = MatchKind::None;
    const CertEntry* served = nullptr;        // for logs; entry owned by the snapshot
};

struct TlsOptions {
    // Server preference order. "h2" belongs here only when the upstream speaks HTTP/2 (the
    // bytes are forwarded as they are); set_offer_h2() can withdraw it at run time.
    std::vector<std::string> alpn = {"http/1.1"};
    int num_tickets = 1;  // TLS 1.3 tickets per full handshake (each costs an encryption + write)
};

class TlsContext {
public:
    static Result<std::unique_ptr<TlsContext>> create(TlsOptions opts, const ChallengeSource* challenges,
                                                      TicketKeys& tickets);

    // A fresh, configured SSL_CTX (call once per worker).
    Result<ossl::UniquePtr<SSL_CTX>> new_ssl_ctx();

    static void attach(SSL* ssl, TlsConnInfo* info);
    static TlsConnInfo* info(SSL* ssl);

    // Callback bodies (public for the C trampolines).
    int on_client_hello(SSL* ssl, int* alert);
    int on_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen);
    TicketKeys& tickets() { return tickets_; }

    // Whether "h2" (if configured) is offered to the next handshakes; thread-safe, takes effect
    // at once. Connections that already negotiated h2 keep it.
    void set_offer_h2(bool on) { offer_h2_.store(on, std::memory_order_relaxed); }
    bool offers_h2() const { return has_h2_ && offer_h2_.load(std::memory_order_relaxed); }

private:
    TlsContext(TlsOptions opts, const ChallengeSource* challenges, TicketKeys& tickets);
    TlsOptions opts_;
    std::string alpn_wire_;        // server preference list in wire format
    std::string alpn_wire_no_h2_;  // the same without "h2"
    bool has_h2_ = false;
    std::atomic<bool> offer_h2_{true};
    const ChallengeSource* challenges_;
    TicketKeys& tickets_;
    ChallengeCertCache challenge_certs_;
};

// Exposed for tests: parse the host_name out of a server_name extension body (RFC 6066 §3) and
// the protocol list out of an ALPN extension body (RFC 7301 §3.1).
bool parse_sni_ext(const unsigned char* p, size_t len, std::string_view* out);
bool parse_alpn_ext(const unsigned char* p, size_t len, std::vector<std::string_view>* out);

}  // namespace edgecert::tls
