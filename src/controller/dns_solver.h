#pragma once
// dns-01 as an acme::ChallengeSolver, and a composite that routes each challenge type to its
// solver (dns-01 to a DnsSolver, http-01 / tls-alpn-01 to what answers them today).
//
// DnsSolver::present publishes base64url(SHA-256(key authorization)) (RFC 8555 §8.4) at
// _acme-challenge.<domain> through a dns::Dns01Provider (RFC 2136 or webhook), which waits for
// every authoritative server before returning. cleanup removes that value only — a wildcard and
// its base name share the TXT name — and is also called when present failed halfway.
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dns/provider.h"
#include "edgecert/acme/order.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/http.h"
#include "edgecert/base/secret.h"

namespace edgecert::controller {

class DnsSolver final : public acme::ChallengeSolver {
  public:
    explicit DnsSolver(std::unique_ptr<dns::Dns01Provider> provider)
        : provider_(std::move(provider)) {}
    std::vector<std::string> supported_types() const override { return {"dns-01"}; }
    Status present(const std::string& domain, const acme::Challenge& ch,
                   const std::string& key_authorization) override;
    void cleanup(const std::string& domain, const acme::Challenge& ch) noexcept override;

    // The record present() publishes for (domain, key authorization).
    static dns::Dns01Record record_for(const std::string& domain, const acme::Challenge& ch,
                                       const std::string& key_authorization);

  private:
    std::unique_ptr<dns::Dns01Provider> provider_;
    std::mutex mu_;
    std::map<std::string, dns::Dns01Record> presented_;  // challenge URL → record
};

// Routes by challenge type. supported_types() is the concatenation, in the order the parts were
// added (the first one the CA offers wins for a non-wildcard name; wildcards need dns-01).
class CompositeSolver final : public acme::ChallengeSolver {
  public:
    // Not owned: every part must outlive the composite.
    void add(acme::ChallengeSolver& s) { parts_.push_back(&s); }
    std::vector<std::string> supported_types() const override;
    Status present(const std::string& domain, const acme::Challenge& ch,
                   const std::string& key_authorization) override;
    void cleanup(const std::string& domain, const acme::Challenge& ch) noexcept override;

  private:
    acme::ChallengeSolver* for_type(const std::string& type) const;
    std::vector<acme::ChallengeSolver*> parts_;
};

// The dns01 block of a solver (Issuer spec.acme.solvers[].dns01, `edgecert run`'s file, or the
// `edgecert issue --dns-*` flags): RFC 2136 (nameserver + optional TSIG) or a webhook URL.
struct Dns01Config {
    std::string nameserver;  // HOST[:PORT]: updates go here, the zone and its NS are asked here
    std::string zone;        // empty: SOA walk at the nameserver
    std::string tsig_key_name;
    std::string tsig_algorithm = "hmac-sha256";
    // Where the TSIG secret comes from (resolved by the caller into tsig_secret): a Secret
    // (tsigSecretSecretRef) or a file (edgecert run / issue).
    std::string tsig_secret_name, tsig_secret_key, tsig_secret_file;
    SecretBytes tsig_secret;
    std::string webhook_url;  // non-empty: the webhook provider instead of RFC 2136
    std::chrono::milliseconds webhook_timeout{30'000};
    bool check_propagation = true;
    std::chrono::milliseconds propagation_timeout{std::chrono::minutes(2)};
    std::chrono::milliseconds poll_interval{std::chrono::seconds(2)};
    std::vector<std::string> check_servers;  // HOST:PORT list overriding the NS discovery
};

// A solver with what it runs on, for the controller and `edgecert run`.
struct OwnedDnsSolver {
    std::unique_ptr<dns::DnsTransport> transport;
    std::unique_ptr<HttpClient> http;  // webhook only
    std::unique_ptr<DnsSolver> solver;
};
// `read_secret` supplies the TSIG secret when cfg names a key (from the Secret
// tsig_secret_name/tsig_secret_key, or tsig_secret_file); `http` builds the webhook's client.
Result<OwnedDnsSolver> make_owned_dns_solver(
    Dns01Config cfg, const std::function<Result<SecretBytes>(const Dns01Config&)>& read_secret,
    const std::function<Result<std::unique_ptr<HttpClient>>()>& http, Clock& clock);

// Parses a solver's dns01 block (deploy/crds/issuers.edgecert.io.yaml; docs/dns01.md): rfc2136
// {nameserver, zone, tsigKeyName, tsigAlgorithm, tsigSecretSecretRef{name,key} | tsigSecretFile}
// or webhook {url, nameserver, zone, timeout}; propagationTimeout, pollInterval, checkServers,
// skipPropagationCheck. The secret itself is resolved by the caller. InvalidConfig on errors.
Result<Dns01Config> parse_dns01_solver(const nlohmann::json& dns01);

// Builds the solver. `transport`, `http` (webhook only; may be null otherwise) and `clock` must
// outlive it. InvalidConfig for a bad nameserver, key, algorithm or URL.
Result<std::unique_ptr<DnsSolver>> make_dns_solver(const Dns01Config& cfg,
                                                   dns::DnsTransport& transport, HttpClient* http,
                                                   Clock& clock);

}  // namespace edgecert::controller
