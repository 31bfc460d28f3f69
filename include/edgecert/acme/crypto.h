#pragma once
// Keys, JWS, CSRs and certificates for the ACME client. Everything OpenSSL is parsed once into
// EVP_PKEY / X509 and shared immutably (cheap copies). Private key bytes leave only as
// SecretBytes; error messages never contain key material.
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/base/ossl.h"
#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::acme {

enum class KeyType { EcP256, EcP384, Rsa2048, Rsa3072, Rsa4096, Ed25519 };

// Accepts lego/cert-manager spellings: "ec256", "p256", "ecdsa-p256", "ec384", "p384", "rsa2048",
// "rsa3072", "rsa4096", "ed25519" (case-insensitive).
Result<KeyType> parse_key_type(std::string_view s);
std::string_view to_string(KeyType t);  // "ec256", "ec384", "rsa2048", ...

class PrivateKey {
public:
    static Result<PrivateKey> generate(KeyType type);
    // PEM: PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY").
    static Result<PrivateKey> from_pem(std::string_view pem);
    static PrivateKey adopt(ossl::UniquePtr<EVP_PKEY> pkey);  // type detected from the key
    // Like adopt, but rejects what the JWS layer cannot sign with (EC curves other than P-256 /
    // P-384, RSA under 2048 bits, DSA, ...). RSA keys of other sizes >= 2048 are accepted and
    // reported as the nearest smaller RSA KeyType. adopt() of such a key is a caller bug.
    static Result<PrivateKey> from_pkey(ossl::UniquePtr<EVP_PKEY> pkey);
    // Private JWK (RFC 7518 §6.2.2 / §6.3.2, RFC 8037 §2 "d"): for published test vectors and
    // tools that store keys as JWK.
    static Result<PrivateKey> from_jwk(const nlohmann::json& jwk);

    SecretBytes to_pem() const;  // PKCS#8 PEM
    KeyType type() const { return type_; }
    EVP_PKEY* get() const { return pkey_.get(); }

    // Public JWK (RFC 7517/7518/8037) with only the required members, in lexicographic order
    // (RFC 7638 §3.2), so its compact dump is the thumbprint input.
    nlohmann::json public_jwk() const;
    // RFC 7638: base64url(SHA-256(canonical JWK)).
    std::string thumbprint() const;
    // JWS "alg" for this key: ES256, ES384, RS256 or EdDSA.
    std::string jws_alg() const;
    // JWS signature over `signing_input` (RFC 7515 §5.1; for EC the raw R||S form, RFC 7518 §3.4).
    Result<std::string> sign(std::string_view signing_input) const;
    // DER SubjectPublicKeyInfo.
    std::string public_key_der() const;

private:
    // Computed once when the key is loaded: the JWK goes into every newAccount/revocation JWS
    // and the thumbprint into every key authorization, so neither is rebuilt per call.
    struct Derived {
        nlohmann::json jwk;
        std::string thumbprint;
        std::string alg;
    };
    PrivateKey(std::shared_ptr<EVP_PKEY> k, KeyType t);
    std::shared_ptr<EVP_PKEY> pkey_;
    KeyType type_;
    std::shared_ptr<const Derived> derived_;
};

// RFC 8555 §6.2 flattened JWS JSON serialization. `kid` empty: the protected header carries the
// public "jwk" (newAccount, revocation by certificate key); otherwise "kid" = account URL.
// `payload` empty means POST-as-GET (§6.3): the payload member is "". `nonce` empty omits the
// member (only the inner key-change JWS has none, §7.3.5). Fails (no throw) on invalid UTF-8.
Result<nlohmann::json> sign_jws(const PrivateKey& key, std::string_view url, std::string_view nonce,
                                std::string_view kid, std::string_view payload);

// RFC 8555 §7.3.4 externalAccountBinding: an HS256 JWS over the account's public JWK, with
// protected header {alg: HS256, kid: eab_kid, url: newAccount URL}. hmac_key is the raw key
// (already base64url-decoded).
Result<nlohmann::json> sign_eab(const PrivateKey& account_key, std::string_view eab_kid,
                                const SecretBytes& hmac_key, std::string_view url);

// RFC 8555 §7.3.5 key rollover: returns the INNER JWS, signed by the new key, protected header
// {alg, jwk: new key, url}, payload {account, oldKey: old key's JWK}. Send it as the payload of
// an ordinary request signed by the old key: sign_jws(old_key, url, nonce, account_url, inner.dump()).
Result<nlohmann::json> sign_key_change(const PrivateKey& old_key, const PrivateKey& new_key,
                                       std::string_view account_url, std::string_view url);

// RFC 7638 thumbprint of any public (or private: extra members are ignored) JWK: EC, RSA, OKP
// or oct. Fails on a JWK that lacks a required member.
Result<std::string> jwk_thumbprint(const nlohmann::json& jwk);
// Public key from a JWK (EC P-256/P-384, RSA, OKP Ed25519). "oct" keys are not public keys.
Result<ossl::UniquePtr<EVP_PKEY>> public_key_from_jwk(const nlohmann::json& jwk);
// Verifies a raw JWS signature (`alg` ES256/ES384/RS256/EdDSA; EC in R||S form).
Status verify_signature(EVP_PKEY* key, std::string_view alg, std::string_view signing_input,
                        std::string_view signature);

// Verifies a flattened JWS signed with `jwk` (tests, and the ACME test server's C++ checks) and
// returns the decoded payload. `jwk` may be {"kty":"oct","k":...} for HS256 (EAB).
Result<std::string> verify_jws(const nlohmann::json& jws, const nlohmann::json& jwk);

std::string sha256(std::string_view data);
Result<std::string> hmac_sha256(const SecretBytes& key, std::string_view data);

// RFC 8555 §8.1: token "." thumbprint.
std::string key_authorization(std::string_view token, std::string_view thumbprint);
// RFC 8555 §8.4: base64url(SHA-256(key authorization)), the TXT record value.
std::string dns01_txt_value(std::string_view key_authorization);

class Certificate {
public:
    static Result<Certificate> from_pem(std::string_view pem);  // the first certificate
    static Result<Certificate> from_der(std::string_view der);
    static Certificate adopt(ossl::UniquePtr<X509> x);

    X509* get() const { return x_.get(); }
    std::string to_pem() const;
    std::string to_der() const;

    std::string serial_hex() const;   // lower-case hex, no leading zeros (as openssl prints)
    SystemTime not_before() const;
    SystemTime not_after() const;
    std::vector<std::string> dns_names() const;  // subjectAltName dNSName entries
    // subjectAltName iPAddress entries as canonical text (IpAddress::to_string); entries that
    // are neither 4 nor 16 octets (name constraints use 8/32) are skipped.
    std::vector<std::string> ip_addresses() const;
    std::string subject_cn() const;
    std::string issuer_cn() const;
    std::string issuer_name() const;  // one-line RFC 2253 form
    bool self_signed() const;         // subject == issuer
    bool matches_key(const PrivateKey& key) const;
    // RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial DER content octets).
    Result<std::string> ari_cert_id() const;

private:
    explicit Certificate(std::shared_ptr<X509> x) : x_(std::move(x)) {}
    std::shared_ptr<X509> x_;
};

// Every certificate in a PEM bundle, in order. Fails if there is none or one is malformed.
Result<std::vector<Certificate>> parse_pem_chain(std::string_view pem);
std::string chain_to_pem(const std::vector<Certificate>& chain);

// RFC 2986 CSR, DER, signed by `key` (SHA-256, or pure Ed25519). SANs: a dNSName per dns_names
// entry (wildcards allowed) and an iPAddress (4 or 16 octets) per ip_addresses entry (RFC 8738;
// any literal canonical_ip() accepts). CN = the first DNS name when it fits 64 characters (RFC 5280
// ub-common-name), otherwise no CN. An IP literal among dns_names is InvalidConfig.
Result<std::string> make_csr_der(const PrivateKey& key, const std::vector<std::string>& dns_names,
                                 const std::vector<std::string>& ip_addresses = {});

// RFC 8737 §3 tls-alpn-01 challenge certificate: self-signed with a fresh P-256 key, one SAN for
// the identifier — dNSName = domain, or for an IP literal an iPAddress (RFC 8738 §6; the CA asks
// with the reverse-DNS name in SNI) — and the critical acmeIdentifier extension
// (1.3.6.1.5.5.7.1.31) whose value is the DER OCTET STRING of SHA-256(key authorization). Valid
// for a week from an hour before clock.now().
struct ChallengeCert {
    Certificate cert;
    PrivateKey key;
};
Result<ChallengeCert> make_tls_alpn01_cert(std::string_view domain, std::string_view key_authorization,
                                           const Clock& clock);

// Self-signed TLS server leaf (CA:FALSE, serverAuth) for tests and tools: valid from 5 minutes
// before clock.now() for `validity` (at most 100 years). The `selfSigned` issuer builds its
// certificates from the Certificate's spec instead (src/pki).
Result<Certificate> make_self_signed(const PrivateKey& key, const std::vector<std::string>& dns_names,
                                     std::chrono::seconds validity, const Clock& clock);

// X.509 building blocks shared with src/pki (certificates signed without ACME).
// subjectAltName from identifiers: an IP literal becomes an iPAddress (RFC 8738), anything else
// a dNSName. `critical`: RFC 5280 §4.2.1.6 wants it critical when the subject is empty.
Result<ossl::UniquePtr<X509_EXTENSION>> make_san_extension(const std::vector<std::string>& names,
                                                           bool critical = false);
// A random positive 128-bit serial number (RFC 5280 §4.1.2.2: at most 20 octets; CA/B Forum
// Baseline Requirements §7.1: at least 64 bits from a CSPRNG).
Status set_random_serial(X509* x);
// The digest to sign with for `key`: SHA-384 for P-384 (as Go's x509 picks), none for Ed25519
// (it signs the message itself), SHA-256 otherwise.
const EVP_MD* signature_digest(const PrivateKey& key);

}  // namespace edgecert::acme
