#pragma once
// Session-ticket keys we own (instead of OpenSSL's per-SSL_CTX random key) so that every worker
// shares them, they rotate on a schedule, and they survive certificate reloads. The newest key
// encrypts; the previous `keep` keys still decrypt (and ask the client to take a fresh ticket).
#include <openssl/ssl.h>

#include <chrono>
#include <deque>
#include <mutex>

#include "edgecert/base/clock.h"
#include "edgecert/base/ossl.h"

namespace edgecert::tls {

class TicketKeys {
public:
    TicketKeys(const Clock& clock, std::chrono::seconds rotate_every = std::chrono::hours(12), int keep = 2);
    ~TicketKeys();

    void rotate();        // adds a new encryption key now
    void maybe_rotate();  // rotates if the current key is older than rotate_every (control plane)
    size_t key_count() const;

    // SSL_CTX_set_tlsext_ticket_key_evp_cb contract: enc=1 fills name/iv and inits both
    // contexts, returns 1; enc=0 looks `name` up: 0 unknown, 1 ok, 2 ok but renew the ticket.
    int callback(unsigned char name[16], unsigned char iv[16], EVP_CIPHER_CTX* cctx, EVP_MAC_CTX* hctx, int enc);

private:
    struct Key {
        unsigned char name[16];
        unsigned char aes[32];
        unsigned char hmac[32];
        SteadyTime created;
    };
    const Clock& clock_;
    std::chrono::seconds every_;
    int keep_;
    mutable std::mutex mu_;
    std::deque<Key> keys_;  // front: current
    EVP_CIPHER* aes_ = nullptr;  // fetched once: per-call implicit fetches are slow in 3.0
};

}  // namespace edgecert::tls
