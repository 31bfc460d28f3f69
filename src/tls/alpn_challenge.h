#pragma once
// tls-alpn-01 responder certificate (RFC 8737 §3): self-signed, SAN dNSName = the domain (an
// iPAddress when the identifier is an IP address, RFC 8738 §6), and a
// critical id-pe-acmeIdentifier (1.3.6.1.5.5.7.1.31) extension whose value is the DER
// OCTET STRING of SHA-256(key authorization). Built here with OpenSSL; src/tls knows nothing of
// the ACME library.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "edgecert/base/ossl.h"
#include "edgecert/base/result.h"

namespace edgecert::tls {

struct ChallengeCert {
    std::string key_authorization;
    ossl::UniquePtr<X509> cert;
    ossl::UniquePtr<EVP_PKEY> key;
};

Result<std::shared_ptr<const ChallengeCert>> build_alpn_challenge_cert(const std::string& domain,
                                                                       const std::string& key_authorization);

// Caches one certificate per domain, rebuilt when the key authorization changes. Thread-safe.
class ChallengeCertCache {
public:
    Result<std::shared_ptr<const ChallengeCert>> get(const std::string& domain, const std::string& key_authorization);

private:
    std::mutex mu_;
    std::map<std::string, std::shared_ptr<const ChallengeCert>> certs_;
};

}  // namespace edgecert::tls
