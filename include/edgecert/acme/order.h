#pragma once
// The high-level issuance flow shared by the CLI (`edgecert issue/renew`) and the controller:
// newOrder (or resume a persisted order) → solve authorizations → finalize → download → pick
// the preferred chain. Crash-safe: the order URL is handed out right after newOrder so a
// restarted caller resumes the order instead of creating another one.
#include <functional>
#include <string>
#include <vector>

#include "edgecert/acme/client.h"
#include "edgecert/acme/crypto.h"
#include "edgecert/acme/types.h"
#include "edgecert/base/result.h"

namespace edgecert::acme {

// Publishes and removes challenge responses (http-01 token file, dns-01 TXT record,
// tls-alpn-01 certificate). `domain` is the authorization's identifier value: for a wildcard
// authorization it is the base name without "*." (the dns-01 record is _acme-challenge.<domain>);
// for an "ip" identifier (RFC 8738) the address's canonical text (is_ip_literal() tells them
// apart: an IP literal is never a DNS name). http-01 is answered the same way for both (the CA
// connects to the address, Host is the address, RFC 8738 §5); tls-alpn-01 for an address is
// asked for with the reverse-DNS name in SNI and answered with an iPAddress SAN (RFC 8738 §6,
// make_tls_alpn01_cert); dns-01 is never used for an address (RFC 8738 §7).
// `key_authorization` is RFC 8555 §8.1's token.thumbprint: http-01 serves it as is, dns-01
// publishes dns01_txt_value(key_authorization), tls-alpn-01 uses make_tls_alpn01_cert().
// A wildcard and its base name share one TXT name with two values: present() must add, and
// cleanup() remove, only its own value.
struct ChallengeSolver {
    virtual ~ChallengeSolver();
    // Challenge types this solver can answer, in preference order, e.g. {"http-01"}.
    virtual std::vector<std::string> supported_types() const = 0;
    virtual Status present(const std::string& domain, const Challenge& ch,
                           const std::string& key_authorization) = 0;
    virtual void cleanup(const std::string& domain, const Challenge& ch) noexcept = 0;
};

struct ObtainRequest {
    std::vector<std::string> dns_names;  // A-labels (IDNs already punycoded); "*.x" for wildcards
    std::vector<std::string> ip_addresses;  // RFC 8738 "ip" identifiers and iPAddress SANs
    PrivateKey cert_key;                 // the CSR is signed with it
    std::string profile;                 // empty: the CA's default
    std::string replaces;                // RFC 9773 certID of the certificate being renewed
    std::string preferred_chain;         // issuer CN of the chain's topmost certificate
    std::string resume_order_url;        // non-empty: resume this order instead of creating one
    // Called right after newOrder so callers can persist the URL (and the key) before anything
    // else. An error stops obtain() there, before any challenge is answered or the order
    // finalized: a certificate whose order and key cannot be kept must not be paid for.
    std::function<Status(const std::string& order_url)> on_order_created;
};

struct ObtainResult {
    std::string order_url;
    std::string certificate_url;
    std::vector<Certificate> chain;  // leaf first, no root
    std::string chain_pem;           // leaf + intermediates, no root
};

// Requires an account on the client (new_account / set_account / ensure_account).
// Resuming: valid → download; ready → finalize; processing → wait; pending → solve;
// invalid / expired → Permanent error (the caller then drops the URL and orders again).
// A wildcard authorization is only solved with dns-01, an IP address never with dns-01 (RFC 8738
// §7: with only dns-01 left the error says so). Every presented challenge is cleaned up
// on every path. If the CA answers newOrder with alreadyReplaced, the order is placed again
// without `replaces`.
Result<ObtainResult> obtain(Client& client, ChallengeSolver& solver, const ObtainRequest& req);

// For callers that persist the account key but not the URL: onlyReturnExisting first, then a
// registration when the CA says accountDoesNotExist. On success the client uses the account.
// An existing account that is deactivated or revoked is an InvalidConfig error (new key needed).
Result<Account> ensure_account(Client& client, const PrivateKey& key,
                               const NewAccountOptions& opts);

// Drops a trailing self-signed certificate (the root) from a chain.
std::vector<Certificate> without_root(std::vector<Certificate> chain);

}  // namespace edgecert::acme
