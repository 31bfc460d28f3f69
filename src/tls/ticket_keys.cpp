#include "tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/rand.h>

#include <cstring>

namespace edgecert::tls {

TicketKeys::TicketKeys(const Clock& clock, std::chrono::seconds rotate_every, int keep)
    : clock_(clock), every_(rotate_every), keep_(keep) {
    aes_ = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
    rotate();
}

TicketKeys::~TicketKeys() {
    for (auto& k : keys_) OPENSSL_cleanse(&k, sizeof k);
    EVP_CIPHER_free(aes_);
}

void TicketKeys::rotate() {
    Key k;
    RAND_bytes(k.name, sizeof k.name);
    RAND_priv_bytes(k.aes, sizeof k.aes);
    RAND_priv_bytes(k.hmac, sizeof k.hmac);
    k.created = clock_.steady_now();
    std::lock_guard l(mu_);
    keys_.push_front(k);
    OPENSSL_cleanse(&k, sizeof k);
    while (static_cast<int>(keys_.size()) > keep_ + 1) {
        OPENSSL_cleanse(&keys_.back(), sizeof(Key));
        keys_.pop_back();
    }
}

void TicketKeys::maybe_rotate() {
    bool due;
    {
        std::lock_guard l(mu_);
        due = keys_.empty() || clock_.steady_now() - keys_.front().created >= every_;
    }
    if (due) rotate();
}

size_t TicketKeys::key_count() const {
    std::lock_guard l(mu_);
    return keys_.size();
}

int TicketKeys::callback(unsigned char name[16], unsigned char iv[16], EVP_CIPHER_CTX* cctx, EVP_MAC_CTX* hctx,
                         int enc) {
    Key k;
    int ret = 1;
    {
        std::lock_guard l(mu_);
        if (keys_.empty()) return 0;
        if (enc) {
            k = keys_.front();
        } else {
            size_t i = 0;
            for (; i < keys_.size(); ++i)
                if (std::memcmp(keys_[i].name, name, 16) == 0) break;
            if (i == keys_.size()) return 0;  // unknown key: full handshake
            k = keys_[i];
            ret = i == 0 ? 1 : 2;
        }
    }
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof k.hmac);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0);
    params[2] = OSSL_PARAM_construct_end();
    int rc;
    if (enc) {
        std::memcpy(name, k.name, 16);
        if (RAND_bytes(iv, 16) != 1) rc = 0;
        else rc = EVP_EncryptInit_ex(cctx, aes_, nullptr, k.aes, iv) == 1 && EVP_MAC_CTX_set_params(hctx, params) == 1;
    } else {
        rc = EVP_DecryptInit_ex(cctx, aes_, nullptr, k.aes, iv) == 1 && EVP_MAC_CTX_set_params(hctx, params) == 1;
    }
    OPENSSL_cleanse(&k, sizeof k);
    if (!rc) {
        ossl::clear_errors();
        return enc ? -1 : 0;
    }
    return ret;
}

}  // namespace edgecert::tls
