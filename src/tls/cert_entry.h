#pragma once
// One certificate as the data plane serves it: PEM parsed ONCE into X509/EVP_PKEY (OpenSSL 3.0
// decoding is slow; DESIGN.md "Where the performance margin is") and validated before it may
// enter a snapshot (convention 4: build, validate, then swap).
#include <openssl/ssl.h>

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/base/ip.h"
#include "edgecert/base/ossl.h"
#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::tls {

enum class KeyType { EC, RSA };

struct CertEntry {
    std::string name;                 // source name (folder / Secret namespace/name)
    ossl::UniquePtr<X509> leaf;
    ossl::X509Stack chain;            // intermediates, may be empty (never null)
    ossl::UniquePtr<EVP_PKEY> key;
    KeyType key_type = KeyType::EC;
    std::time_t not_before = 0;
    std::time_t not_after = 0;
    std::string serial;               // lowercase hex, for logs and metrics
    std::vector<std::string> dns_names;  // lowercase SAN dNSNames (CN if there is no SAN)
    std::vector<IpAddress> ip_addresses;  // SAN iPAddresses (4 or 16 octets, RFC 5280 §4.2.1.6)
};

// Parses and validates a tls.crt / tls.key pair. Errors are InvalidConfig and say what is wrong
// (truncated PEM, key mismatch, expired...) without any key bytes. Expired or not-yet-valid
// certificates are rejected: the caller keeps serving the last good one.
Result<std::shared_ptr<const CertEntry>> parse_cert_entry(std::string name, std::string_view cert_pem,
                                                          const SecretBytes& key_pem, const Clock& clock);

// Helpers shared with the tls-alpn-01 responder and tests.
std::string serial_hex(const X509* cert);
std::time_t asn1_time_to_unix(const ASN1_TIME* t);

}  // namespace edgecert::tls
