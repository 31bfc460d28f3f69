// `edgecert issue`: obtain a certificate with the built-in standalone responders.
#include <cstdio>

#include "app/acme_cli.h"
#include "app/commands.h"
#include "app/dns_cli.h"

namespace edgecert::app {
namespace {

Result<std::vector<std::string>> challenge_types(const std::string& spec) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= spec.size()) {
        size_t c = spec.find(',', start);
        std::string t = spec.substr(start, c == std::string::npos ? std::string::npos : c - start);
        if (t == "http-01" || t == "tls-alpn-01" || t == "dns-01") out.push_back(t);
        else if (!t.empty())
            return Error(ErrorCode::InvalidConfig, "--challenge '" + t + "': use http-01, tls-alpn-01 or dns-01");
        if (c == std::string::npos) break;
        start = c + 1;
    }
    if (out.empty()) return Error(ErrorCode::InvalidConfig, "--challenge is empty");
    return out;
}

}  // namespace

int cmd_issue(int argc, char** argv) {
    Flags f(
        "issue", "--server URL --domains a.example[,b.example,192.0.2.1] [flags]",
        "Obtains a certificate from an ACME CA (RFC 8555), answering the CA's http-01 or\n"
        "tls-alpn-01 challenge with a built-in responder, or dns-01 through an RFC 2136 DNS\n"
        "server or a webhook (docs/dns01.md), and writes OUT/<first-domain>/tls.crt\n"
        "IP addresses (RFC 8738) go in --domains or --ip-address; they are validated with\n"
        "http-01 or tls-alpn-01 (the CA connects to the address itself), never dns-01.\n"
        "(leaf + chain) and tls.key (0600). The account is kept under OUT/accounts/ and reused.\n"
        "An order interrupted by a crash or a CA outage is resumed on the next run.");
    add_account_flags(f);
    add_order_flags(f);
    add_dns_flags(f);
    if (auto st = f.parse(argc, argv); !st) return std::fprintf(stderr, "edgecert issue: %s\n", st.error().message.c_str()), 2;
    if (f.help_requested()) return std::printf("%s", f.help_text().c_str()), 0;

    // Each --domains is one certificate; several are issued in one process over one account and
    // one connection to the CA.
    auto ids = certificate_identifiers(f);
    if (!ids) return std::fprintf(stderr, "edgecert issue: %s\n", ids.error().message.c_str()), 2;
    const std::vector<std::vector<std::string>>& groups = *ids;
    auto kt = acme::parse_key_type(f.get("key-type"));
    if (!kt) return std::fprintf(stderr, "edgecert issue: %s\n", kt.error().message.c_str()), 2;
    auto types = challenge_types(f.get("challenge"));
    if (!types) return std::fprintf(stderr, "edgecert issue: %s\n", types.error().message.c_str()), 2;
    // RFC 8738 §7: no dns-01 for an address. Say so before an order is placed.
    if (*types == std::vector<std::string>{"dns-01"}) {
        for (const auto& g : groups)
            for (const auto& id : g)
                if (acme::is_ip_literal(id))
                    return std::fprintf(
                               stderr,
                               "edgecert issue: %s is an IP address: it is validated with "
                               "--challenge http-01 or tls-alpn-01, never dns-01 (RFC 8738)\n",
                               id.c_str()),
                           2;
    }

    RealClock& clock = RealClock::instance();
    // dns-01 goes to the DNS solver (RFC 2136 or webhook); http-01 / tls-alpn-01 to the built-in
    // responders. Wildcard names can only use dns-01.
    std::vector<std::string> standalone_types;
    for (const auto& t : *types)
        if (t != "dns-01") standalone_types.push_back(t);
    StandaloneSolver standalone(standalone_types, f.get("http-port"), f.get("tls-port"), clock);
    // Bind the responders before talking to the CA: a busy port fails fast, before any order.
    if (auto st = standalone.prepare(); !st) return report_failure("issue", st.error());
    std::optional<DnsCliSolver> dns;
    controller::CompositeSolver solver;
    for (const auto& t : *types) {
        if (t == "dns-01") {
            auto d = dns_solver_from_flags(f, clock);
            if (!d) return std::fprintf(stderr, "edgecert issue: %s\n", d.error().message.c_str()), 2;
            dns = std::move(*d);
            solver.add(*dns->solver);
        } else if (t == standalone_types.front()) {
            solver.add(standalone);
        }
    }
    auto session = open_session(f, clock);
    if (!session) return report_failure("issue", session.error());
    int failed = 0;
    for (const auto& domains : groups) {
        IssueParams p;
        p.domains = domains;
        p.key_type = *kt;
        p.profile = f.get("profile");
        p.preferred_chain = f.get("preferred-chain");
        auto res = issue_and_store(*session, solver, p, clock);
        if (!res) {
            report_failure("issue", groups.size() > 1 ? res.error().with_context(domains.front()) : res.error());
            ++failed;
            continue;
        }
        print_issued(cert_dir(session->out_dir, domains.front()), res->chain.front(), domains);
    }
    if (failed) return 1;
    return 0;
}

}  // namespace edgecert::app
