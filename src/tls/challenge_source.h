#pragma once
// ChallengeSource: what the terminator answers for ACME challenges. http-01 (RFC 8555 §8.3):
// token → key authorization, served on :80. tls-alpn-01 (RFC 8737): identifier → key
// authorization, from which the responder builds the acmeIdentifier certificate. The identifier
// is a DNS name or an IP address in canonical text (RFC 8738: the validation server sends the
// address's reverse-DNS name in SNI; the TLS layer maps it back before asking).
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

namespace edgecert::tls {

class ChallengeSource {
public:
    virtual ~ChallengeSource() = default;
    virtual std::optional<std::string> http01(std::string_view token) const = 0;
    virtual std::optional<std::string> tls_alpn01(std::string_view domain) const = 0;
};

// True for an RFC 8555 token (base64url alphabet, bounded): the only tokens we ever look up, so
// a request path can never walk out of the challenge directory.
bool valid_token(std::string_view token);
// True for a plausible lowercase DNS name (letters, digits, '-', '.').
bool valid_domain(std::string_view domain);

// The in-process API the controller fills in `edgecert run`. Thread-safe.
class MemoryChallengeSource final : public ChallengeSource {
public:
    void set_http01(std::string token, std::string key_authorization);
    void remove_http01(const std::string& token);
    void set_tls_alpn01(std::string domain, std::string key_authorization);
    void remove_tls_alpn01(const std::string& domain);

    std::optional<std::string> http01(std::string_view token) const override;
    std::optional<std::string> tls_alpn01(std::string_view domain) const override;

private:
    mutable std::shared_mutex mu_;
    std::map<std::string, std::string, std::less<>> http_, alpn_;
};

// --challenge-dir DIR: DIR/<token> holds the http-01 key authorization, DIR/tls-alpn-01/<domain>
// (or /<address>, canonical text such as 192.0.2.1 or 2001:db8::1) the tls-alpn-01 one. Looked up
// per challenge request (a small local file, read with a size bound); challenge requests are rare
// and this keeps a freshly written token visible at once.
class DirChallengeSource final : public ChallengeSource {
public:
    explicit DirChallengeSource(std::string dir) : dir_(std::move(dir)) {}
    std::optional<std::string> http01(std::string_view token) const override;
    std::optional<std::string> tls_alpn01(std::string_view domain) const override;

private:
    std::string dir_;
};

// Tries each source in order (directory, then in-process).
class ChainChallengeSource final : public ChallengeSource {
public:
    void add(const ChallengeSource* s) { if (s) srcs_[n_++ % 4] = s; }
    std::optional<std::string> http01(std::string_view token) const override;
    std::optional<std::string> tls_alpn01(std::string_view domain) const override;

private:
    const ChallengeSource* srcs_[4] = {};
    int n_ = 0;
};

}  // namespace edgecert::tls
