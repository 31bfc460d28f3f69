#pragma once
// SecretBytes: key material, tokens, HMAC keys. It has no stream operator and no fmt formatter
// on purpose, so it cannot end up in a log line or an error message by accident (convention 8).
// The buffer is wiped with OPENSSL_cleanse when it is destroyed or overwritten.
#include <openssl/crypto.h>

#include <string>
#include <string_view>
#include <utility>

namespace edgecert {

class SecretBytes {
public:
    SecretBytes() = default;
    explicit SecretBytes(std::string bytes) : b_(std::move(bytes)) {}
    explicit SecretBytes(std::string_view bytes) : b_(bytes) {}
    SecretBytes(const SecretBytes& o) : b_(o.b_) {}
    SecretBytes(SecretBytes&& o) noexcept : b_(std::move(o.b_)) { o.wipe(); }
    SecretBytes& operator=(const SecretBytes& o) {
        if (this != &o) { wipe(); b_ = o.b_; }
        return *this;
    }
    SecretBytes& operator=(SecretBytes&& o) noexcept {
        if (this != &o) { wipe(); b_ = std::move(o.b_); o.wipe(); }
        return *this;
    }
    ~SecretBytes() { wipe(); }

    // Named so every use of the raw bytes is easy to find in review.
    std::string_view reveal() const { return b_; }
    const unsigned char* data() const { return reinterpret_cast<const unsigned char*>(b_.data()); }
    size_t size() const { return b_.size(); }
    bool empty() const { return b_.empty(); }
    bool operator==(const SecretBytes& o) const {
        return b_.size() == o.b_.size() && CRYPTO_memcmp(b_.data(), o.b_.data(), b_.size()) == 0;
    }

private:
    void wipe() {
        if (!b_.empty()) OPENSSL_cleanse(b_.data(), b_.size());
        b_.clear();
    }
    std::string b_;
};

}  // namespace edgecert
