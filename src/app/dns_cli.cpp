// dns-01 flags for `edgecert issue` (dns_cli.h).
#include "app/dns_cli.h"

#include <algorithm>

#include "controller/renewal.h"
#include "platform/files.h"

namespace edgecert::app {

void add_dns_flags(Flags& f) {
    f.add("dns-server", "HOST:PORT",
          "dns-01: the DNS server that takes RFC 2136 updates; the zone and its NS records are "
          "asked there too (port 53 when omitted)")
        .add("dns-zone", "ZONE", "dns-01: the zone to update (found by an SOA walk otherwise)")
        .add("tsig-key-name", "NAME", "dns-01: TSIG key name (RFC 8945) for the updates")
        .add("tsig-algorithm", "ALG",
             "dns-01: hmac-sha256 or hmac-sha512 (default: the key file's, else hmac-sha256)")
        .add("tsig-secret-file", "FILE",
             "dns-01: file with the base64 TSIG secret, or a BIND key file from tsig-keygen")
        .add(
            "dns-webhook", "URL",
            "dns-01: POST present/cleanup requests to this URL instead of RFC 2136 (docs/dns01.md)")
        .add("dns-propagation-timeout", "DURATION",
             "dns-01: how long to wait for every authoritative server to answer the record", "2m")
        .add("dns-poll-interval", "DURATION", "dns-01: pause between propagation checks", "2s")
        .add("dns-check-server", "HOST:PORT",
             "dns-01: ask this server in the propagation check instead of the zone's NS "
             "(repeatable)")
        .add_bool("dns-skip-propagation-check",
                  "dns-01: do not wait for the authoritative servers");
}

Result<DnsCliSolver> dns_solver_from_flags(const Flags& f, Clock& clock) {
    controller::Dns01Config cfg;
    cfg.nameserver = f.get("dns-server");
    cfg.zone = f.get("dns-zone");
    cfg.webhook_url = f.get("dns-webhook");
    cfg.tsig_key_name = f.get("tsig-key-name");
    cfg.tsig_algorithm = f.get("tsig-algorithm");
    if (cfg.nameserver.empty() && cfg.webhook_url.empty())
        return Error(
            ErrorCode::InvalidConfig,
            "--challenge dns-01 needs --dns-server HOST:PORT (RFC 2136) or --dns-webhook URL");
    if (f.has("tsig-secret-file")) {
        if (cfg.tsig_key_name.empty())
            return Error(ErrorCode::InvalidConfig, "--tsig-secret-file needs --tsig-key-name");
        EC_TRY_ASSIGN(cfg.tsig_secret,
                      platform::read_secret_file(f.get("tsig-secret-file"), 16384));
    } else if (!cfg.tsig_key_name.empty()) {
        return Error(ErrorCode::InvalidConfig, "--tsig-key-name needs --tsig-secret-file");
    }
    EC_TRY_ASSIGN(cfg.propagation_timeout,
                  f.get_duration("dns-propagation-timeout", false));
    EC_TRY_ASSIGN(cfg.poll_interval,
                  f.get_duration("dns-poll-interval", false));
    cfg.check_servers = f.get_all("dns-check-server");
    cfg.check_propagation = !f.get_bool("dns-skip-propagation-check");
    if (cfg.check_propagation && cfg.nameserver.empty() && cfg.check_servers.empty())
        return Error(ErrorCode::InvalidConfig,
                     "--dns-webhook: the propagation check needs --dns-server (to find the zone's "
                     "nameservers) or --dns-check-server; or pass --dns-skip-propagation-check");

    DnsCliSolver out;
    out.transport = std::make_unique<dns::SocketTransport>();
    if (!cfg.webhook_url.empty()) {
        EC_TRY_ASSIGN(out.http, platform::CurlHttpClient::create(platform::CurlOptions{}));
    }
    EC_TRY_ASSIGN(out.solver,
                  controller::make_dns_solver(cfg, *out.transport, out.http.get(), clock));
    return out;
}

}  // namespace edgecert::app
