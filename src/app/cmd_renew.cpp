// `edgecert renew`: renews when ARI (RFC 9773) or the lifetime rule says it is time.
#include <dirent.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "app/acme_cli.h"
#include "app/commands.h"
#include "app/dns_cli.h"
#include "edgecert/acme/ari.h"
#include "edgecert/acme/types.h"
#include "platform/files.h"

namespace edgecert::app {

// The lifetime rule (lego, certbot): renew once 2/3 of the lifetime has passed, or 1/2 of it for
// certificates of 10 days or less (6-day certificates must not be renewed with 2 days left and
// no room for a retry). `renew_before` (days left) overrides.
SystemTime lifetime_renewal_time(const acme::Certificate& leaf, std::optional<std::chrono::seconds> renew_before) {
    auto nb = leaf.not_before(), na = leaf.not_after();
    if (renew_before) return na - *renew_before;
    auto lifetime = na - nb;
    if (lifetime <= std::chrono::hours(24 * 10)) return nb + lifetime / 2;
    return nb + lifetime * 2 / 3;
}

namespace {

struct RenewOptions {
    bool force = false, reuse_key = false, no_ari = false;
    std::optional<std::chrono::seconds> renew_before;
    acme::KeyType key_type = acme::KeyType::EcP256;
    std::string profile, preferred_chain;
};

// Renews one certificate if it is due. Returns true when it was renewed, false when not due.
Result<bool> renew_one(AcmeSession& s, acme::ChallengeSolver& solver, const std::vector<std::string>& domains,
                       const RenewOptions& o, Clock& clock) {
    const std::string dir = cert_dir(s.out_dir, domains.front());
    auto pem = platform::read_file(dir + "/tls.crt");
    if (!pem) return Error(ErrorCode::NotFound, "no certificate at " + dir + "/tls.crt: run 'edgecert issue' first");
    EC_TRY_ASSIGN(acme::Certificate leaf, acme::Certificate::from_pem(*pem));

    const auto now = clock.now();
    bool due = o.force;
    std::string why = "forced";
    bool ari = !o.no_ari && s.client->supports_ari();
    if (!due && ari) {
        auto ri = s.client->renewal_info(leaf);
        if (ri) {
            static thread_local std::mt19937_64 rng{std::random_device{}()};
            auto at = acme::choose_renewal_time(ri->suggested_window, rng, now);
            due = at <= now;
            why = "ARI window " + acme::format_rfc3339(ri->suggested_window.start) + " .. " +
                  acme::format_rfc3339(ri->suggested_window.end);
            if (!ri->explanation_url.empty()) why += " (" + ri->explanation_url + ")";
            if (!due) {
                std::printf("%s: not due: %s; chose %s; ask again after %s\n", domains.front().c_str(), why.c_str(),
                            acme::format_rfc3339(at).c_str(), acme::format_rfc3339(ri->next_poll).c_str());
                return false;
            }
        } else {
            spdlog::warn("{}: renewal information unavailable ({}); using the lifetime rule", domains.front(),
                         ri.error().message);
            ari = false;
        }
    }
    if (!due) {
        auto at = lifetime_renewal_time(leaf, o.renew_before);
        due = at <= now;
        why = "lifetime rule (renew after " + acme::format_rfc3339(at) + ")";
        if (!due) {
            std::printf("%s: not due: %s; expires %s\n", domains.front().c_str(), why.c_str(),
                        acme::format_rfc3339(leaf.not_after()).c_str());
            return false;
        }
    }
    spdlog::info("renewing {}: {}", domains.front(), why);

    IssueParams p;
    p.domains = domains;
    p.key_type = o.key_type;
    p.profile = o.profile;
    p.preferred_chain = o.preferred_chain;
    if (ari) {
        if (auto id = leaf.ari_cert_id()) p.replaces = *id;
    }
    std::optional<acme::PrivateKey> old_key;
    if (o.reuse_key) {
        EC_TRY_ASSIGN(SecretBytes kpem, platform::read_secret_file(dir + "/tls.key"));
        auto k = acme::PrivateKey::from_pem(kpem.reveal());
        if (!k) return k.error().with_context(dir + "/tls.key");
        old_key = std::move(*k);
        p.reuse_key = &*old_key;
    }
    EC_TRY_ASSIGN(auto res, issue_and_store(s, solver, p, clock));
    std::printf("renewed (%s)\n", why.c_str());
    print_issued(dir, res.chain.front(), p.domains);
    return true;
}

// Every certificate under OUT that this CA issued, from its certificate.json.
std::vector<std::vector<std::string>> certificates_of(const std::string& out, const std::string& server) {
    std::vector<std::vector<std::string>> found;
    DIR* d = ::opendir(out.c_str());
    if (!d) return found;
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != ".." && n != "accounts") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        auto text = platform::read_file(out + "/" + n + "/certificate.json", 1 << 20);
        if (!text) continue;
        auto j = nlohmann::json::parse(*text, nullptr, false);
        if (!j.is_object() || j.value("server", "") != server || !j.contains("domains") || !j["domains"].is_array())
            continue;
        std::vector<std::string> domains;
        for (const auto& x : j["domains"])
            if (x.is_string()) domains.push_back(x.get<std::string>());
        if (!domains.empty()) found.push_back(domains);
    }
    return found;
}

}  // namespace

int cmd_renew(int argc, char** argv) {
    if (renew_targets_run(argc, argv)) return cmd_renew_run(argc, argv);
    if (renew_targets_cluster(argc, argv)) return cmd_renew_cluster(argc, argv);
    Flags f("renew", "--server URL (--domains a.example | --all) [flags]",
            "Renews OUT/<first-domain>/tls.crt when it is due: inside the CA's ARI window (RFC 9773,\n"
            "a random time in the suggested window, with 'replaces' sent) when the CA offers ARI,\n"
            "otherwise after 2/3 of the lifetime (1/2 for certificates of 10 days or less).\n"
            "--all checks every certificate under OUT that this CA issued, in one process.\n"
            "A new private key is made each time unless --reuse-key. Exits 0 when nothing failed.\n"
            "In a cluster, `edgecert renew [-n NS] NAME...` asks the controller to renew Certificates\n"
            "now, like `cmctl renew` (`edgecert renew -n NS --help` for its flags); `edgecert renew\n"
            "--config FILE NAME...` asks a running `edgecert run` (`edgecert renew --config F --help`).");
    add_account_flags(f);
    add_order_flags(f);
    add_dns_flags(f);
    f.add_bool("all", "every certificate under OUT from this CA (instead of --domains)")
        .add_bool("force", "renew now, whatever ARI or the lifetime rule say")
        .add_bool("reuse-key", "keep the current private key")
        .add_bool("no-ari", "ignore the CA's renewal information; use the lifetime rule")
        .add("days", "N", "renew when fewer than N days are left (instead of the lifetime rule)");
    if (auto st = f.parse(argc, argv); !st) return std::fprintf(stderr, "edgecert renew: %s\n", st.error().message.c_str()), 2;
    if (f.help_requested()) return std::printf("%s", f.help_text().c_str()), 0;
    if (!f.positional().empty()) return cmd_renew_cluster(argc, argv);  // Certificate names

    RenewOptions o;
    o.force = f.get_bool("force");
    o.reuse_key = f.get_bool("reuse-key");
    o.no_ari = f.get_bool("no-ari");
    o.profile = f.get("profile");
    o.preferred_chain = f.get("preferred-chain");
    auto kt = acme::parse_key_type(f.get("key-type"));
    if (!kt) return std::fprintf(stderr, "edgecert renew: %s\n", kt.error().message.c_str()), 2;
    o.key_type = *kt;
    if (f.has("days")) {
        auto d = f.get_int("days", 0, 3650);
        if (!d) return std::fprintf(stderr, "edgecert renew: %s\n", d.error().message.c_str()), 2;
        o.renew_before = std::chrono::hours(24 * *d);
    }
    std::vector<std::vector<std::string>> certs;
    if (f.get_bool("all")) {
        if (f.has("domains") || f.has("ip-address"))
            return std::fprintf(stderr, "edgecert renew: --all and --domains exclude each other\n"),
                   2;
        certs = certificates_of(f.get("out"), f.get("server"));
    } else {
        if (!f.has("domains") && !f.has("ip-address"))
            return std::fprintf(stderr, "edgecert renew: --domains or --all is required\n"), 2;
        auto ids = certificate_identifiers(f);
        if (!ids)
            return std::fprintf(stderr, "edgecert renew: %s\n", ids.error().message.c_str()), 2;
        certs = std::move(*ids);
    }
    std::vector<std::string> types;
    for (const char* t : {"http-01", "tls-alpn-01"})
        if (f.get("challenge").find(t) != std::string::npos) types.push_back(t);
    const bool dns01 = f.get("challenge").find("dns-01") != std::string::npos;
    if (types.empty() && !dns01)
        return std::fprintf(stderr, "edgecert renew: --challenge: use http-01, tls-alpn-01 or dns-01\n"), 2;
    // dns-01 (wildcards need it) through the same --dns-* / --tsig-* flags as `edgecert issue`.
    std::optional<DnsCliSolver> dns;
    if (dns01) {
        auto d = dns_solver_from_flags(f, RealClock::instance());
        if (!d) return std::fprintf(stderr, "edgecert renew: %s\n", d.error().message.c_str()), 2;
        dns = std::move(*d);
    }

    RealClock& clock = RealClock::instance();
    if (certs.empty()) {
        std::printf("no certificates from %s under %s\n", f.get("server").c_str(), f.get("out").c_str());
        return 0;
    }
    auto session = open_session(f, clock);
    if (!session) return report_failure("renew", session.error());
    // The responders bind only when a certificate is due (present() prepares them).
    StandaloneSolver standalone(types, f.get("http-port"), f.get("tls-port"), clock);
    controller::CompositeSolver solver;
    if (!types.empty()) solver.add(standalone);
    if (dns) solver.add(*dns->solver);
    int failed = 0;
    for (const auto& domains : certs) {
        auto r = renew_one(*session, solver, domains, o, clock);
        if (!r) {
            report_failure("renew", r.error().with_context(domains.front()));
            ++failed;
        }
    }
    return failed ? 1 : 0;
}

}  // namespace edgecert::app
