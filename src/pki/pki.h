#pragma once
// Certificates signed here rather than by an ACME CA: what the `selfSigned` and `ca` issuers do
// (cert-manager's semantics, translated field by field from its Certificate spec).
//
//   CertificateTemplate   subject, SANs, isCA, usages, duration (from a Certificate's spec)
//   CaKeyPair::create()   a `ca` issuer's key pair, validated: the key matches, the certificate
//                         is a CA (basicConstraints CA:TRUE, keyCertSign when keyUsage is
//                         present) and is valid now
//   issue()               builds and signs one certificate: a random 128-bit serial, SKI/AKI,
//                         basicConstraints (critical), keyUsage (critical) and extKeyUsage from
//                         the usages, SANs, notAfter clamped to the signing CA's notAfter
//   differences()         what a stored certificate no longer has of its template (re-issue)
//
// Depends on base and on the key/certificate types of acme/crypto.h (they are the project's
// OpenSSL wrappers, not ACME protocol code); nothing here knows about Kubernetes or stores.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/acme/crypto.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::pki {

// cert-manager's KeyUsage names (cert-manager.io/v1): RFC 5280 §4.2.1.3 keyUsage bits and
// §4.2.1.12 extKeyUsage purposes.
enum class Usage {
    Signing,  // = digital signature
    DigitalSignature,
    ContentCommitment,
    KeyEncipherment,
    KeyAgreement,
    DataEncipherment,
    CertSign,
    CrlSign,
    EncipherOnly,
    DecipherOnly,
    Any,
    ServerAuth,
    ClientAuth,
    CodeSigning,
    EmailProtection,
    SMime,  // = email protection
    IpsecEndSystem,
    IpsecTunnel,
    IpsecUser,
    Timestamping,
    OcspSigning,
    MicrosoftSgc,
    NetscapeSgc,
};

// "digital signature", "server auth", ... (exactly cert-manager's spelling). InvalidConfig with
// the list of known names otherwise.
Result<Usage> parse_usage(std::string_view name);
std::string_view to_string(Usage u);

// spec.subject + spec.commonName. Entries are written in Go's pkix.Name order (C, ST, L, street,
// postalCode, O, OU, CN, serialNumber), so a certificate reads as cert-manager's would.
struct Subject {
    std::string common_name;
    std::vector<std::string> organizations, organizational_units, countries, localities, provinces,
        street_addresses, postal_codes;
    std::string serial_number;
    bool empty() const;
};

inline constexpr std::chrono::seconds kDefaultDuration{90 * 24 * 3600};  // cert-manager's default

struct CertificateTemplate {
    Subject subject;
    std::vector<std::string> dns_names;  // subjectAltName (an IP literal becomes an iPAddress)
    bool is_ca = false;
    // Empty: "digital signature" plus "key encipherment" for RSA keys (cert-manager's default,
    // without keyEncipherment for EC/Ed25519 keys, which RFC 8813 §3 forbids). isCA adds
    // "cert sign" whatever is listed, as cert-manager does.
    std::vector<Usage> usages;
    std::chrono::seconds duration = kDefaultDuration;
};

// The key pair a `ca` issuer signs with. `tls_crt` is the CA certificate first, then any chain
// above it; `ca_crt` (the Secret's optional ca.crt) is used as the root to publish when the chain
// does not end in a self-signed certificate.
class CaKeyPair {
  public:
    // InvalidConfig, with a message naming what is wrong (never key bytes).
    static Result<CaKeyPair> create(std::string_view tls_crt, const SecretBytes& tls_key,
                                    std::string_view ca_crt, SystemTime now);

    const acme::Certificate& cert() const { return chain_.front(); }
    const acme::PrivateKey& key() const { return key_; }
    // What follows a leaf in its tls.crt: the CA certificate and its intermediates, without a
    // self-signed root (DESIGN.md "Secret": leaf + chain, no root).
    const std::vector<acme::Certificate>& intermediates() const { return intermediates_; }
    // What a leaf's Secret gets as ca.crt: the root of the chain.
    const std::string& ca_pem() const { return ca_pem_; }

  private:
    CaKeyPair(std::vector<acme::Certificate> chain, acme::PrivateKey key)
        : chain_(std::move(chain)), key_(std::move(key)) {}
    std::vector<acme::Certificate> chain_;
    acme::PrivateKey key_;
    std::vector<acme::Certificate> intermediates_;
    std::string ca_pem_;
};

struct Issued {
    acme::Certificate cert;
    std::vector<acme::Certificate> chain;  // cert first, then the CA's intermediates (tls.crt)
    std::string chain_pem;
    std::string ca_pem;  // ca.crt: the CA's root, or the certificate itself when self-signed
    // Set when the signing CA's notAfter came before notBefore + duration: what was asked for.
    std::optional<SystemTime> clamped_from;
};

// Signs `t` for `key`: by `ca`, or by `key` itself (selfSigned) when `ca` is null. notBefore is
// `now` (whole seconds). InvalidConfig for a template that cannot be encoded (no name at all, a
// country that is not two letters, a common name over 64 characters...).
Result<Issued> issue(const CertificateTemplate& t, const acme::PrivateKey& key, const CaKeyPair* ca,
                     SystemTime now);

// The spec fields a stored certificate no longer matches, by their Certificate field names
// ("spec.isCA", "spec.usages", "spec.commonName/spec.subject"); SANs and the key are checked by the
// caller.
std::vector<std::string> differences(const CertificateTemplate& t, const acme::Certificate& cert,
                                     const acme::PrivateKey& key);

// Whether `cert` carries a signature that `issuer`'s public key verifies.
bool signed_by(const acme::Certificate& cert, const acme::Certificate& issuer);

}  // namespace edgecert::pki
