#pragma once
// Pieces shared by `edgecert issue`, `renew` and `revoke`: the common flags, the on-disk layout
// (lego-like), the account store, the standalone challenge solver and certificate storage.
//
//   OUT/accounts/<server>/<email|default>/account.key   account key, PKCS#8, 0600
//   OUT/accounts/<server>/<email|default>/account.json  {"url", "server", "contacts", ...}
//   OUT/<name>/tls.crt         leaf + chain (no root), the layout a kubernetes.io/tls Secret has
//   OUT/<name>/tls.key         the certificate key, PKCS#8, 0600
//   OUT/<name>/certificate.json  metadata: domains, serial, validity, order and ARI id, ...
//   OUT/<name>/.pending/       an order in flight: order.json + its new key (0600), so a
//                              crashed or failed run resumes the same order next time
// <name> is the first domain, with a leading "*." written as "_." (a wildcard is not a file name).
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/flags.h"
#include "app/standalone.h"
#include "edgecert/acme/client.h"
#include "edgecert/acme/order.h"
#include "platform/curl_http.h"

namespace edgecert::app {

// Adds --server, --out, --email, --ca-bundle, --eab-kid, --eab-hmac, --eab-hmac-file,
// --account-key-type.
void add_account_flags(Flags& f);
// Adds --domains, --ip-address, --challenge, --http-port, --tls-port, --key-type, --profile,
// --preferred-chain.
void add_order_flags(Flags& f);

struct AcmeSession {
    std::unique_ptr<platform::CurlHttpClient> http;
    std::unique_ptr<acme::Client> client;
    std::string out_dir;
    std::string server;
};

// Builds the HTTP client and ACME client; loads the account from OUT/accounts or registers one
// (the key is written to disk before the CA ever sees it, so it is never lost).
Result<AcmeSession> open_session(const Flags& f, Clock& clock);

// Everything under OUT/<name>/ for a certificate whose first domain is `first_domain` (an IPv6
// address's colons become '_': OUT/2001_db8__1/).
std::string cert_dir(const std::string& out_dir, const std::string& first_domain);
// One --domains list: DNS names and IP literals (lego accepts both there), lower-cased,
// addresses in canonical text (RFC 8738 §3), duplicates dropped, order kept.
Result<std::vector<std::string>> parse_domains(const std::string& csv);
// The certificates a command line names: one per --domains, with --ip-address (certbot's flag)
// adding addresses to the single certificate (or making one of addresses only).
Result<std::vector<std::vector<std::string>>> certificate_identifiers(const Flags& f);

// Answers http-01 / tls-alpn-01 with the built-in responders (created on first use).
class StandaloneSolver final : public acme::ChallengeSolver {
public:
    StandaloneSolver(std::vector<std::string> types, std::string http_listen, std::string tls_listen,
                     Clock& clock)
        : types_(std::move(types)), http_listen_(std::move(http_listen)),
          tls_listen_(std::move(tls_listen)), clock_(clock) {}
    std::vector<std::string> supported_types() const override { return types_; }
    Status present(const std::string& domain, const acme::Challenge& ch,
                   const std::string& key_authorization) override;
    void cleanup(const std::string& domain, const acme::Challenge& ch) noexcept override;
    // Binds the listeners now, so a busy port fails before an order is placed.
    Status prepare();

private:
    std::vector<std::string> types_;
    std::string http_listen_, tls_listen_;
    Clock& clock_;
    std::unique_ptr<Http01Responder> http_;
    std::unique_ptr<TlsAlpn01Responder> tls_;
};

struct IssueParams {
    std::vector<std::string> domains;  // DNS names and IP addresses (parse_domains)
    acme::KeyType key_type = acme::KeyType::EcP256;
    std::string profile;
    std::string preferred_chain;
    std::string replaces;         // ARI certID of the certificate being replaced
    const acme::PrivateKey* reuse_key = nullptr;  // renew --reuse-key
};

// Runs (or resumes) an order and stores the result under OUT/<name>/. Prints nothing.
Result<acme::ObtainResult> issue_and_store(AcmeSession& s, acme::ChallengeSolver& solver,
                                           const IssueParams& p, Clock& clock);

// One clear line on stderr ("edgecert <cmd>: <message>"), plus subproblems; returns exit code 1.
int report_failure(const char* cmd, const Error& e);
void print_issued(const std::string& dir, const acme::Certificate& leaf, const std::vector<std::string>& domains);

}  // namespace edgecert::app
