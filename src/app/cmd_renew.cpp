// `edgecert renew`: renews when ARI (RFC 9773) or the lifetime rule says it is time.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <random>

#include "app/acme_cli.h"
#include "app/commands.h"
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

int cmd_renew(int argc, char** argv) {
    Flags f("renew", "--server URL --domains a.example [flags]",
            "Renews OUT/<first-domain>/tls.crt when it is due: inside the CA's ARI window (RFC 9773,\n"
            "a random time in the suggested window, with 'replaces' sent) when the CA offers ARI,\n"
            "otherwise after 2/3 of the lifetime (1/2 for certificates of 10 days or less).\n"
            "A new private key is made each time unless --reuse-key. Exits 0 when nothing is due.");
    add_account_flags(f);
    add_order_flags(f);
    f.add_bool("force", "renew now, whatever ARI or the lifetime rule say")
        .add_bool("reuse-key", "keep the current private key")
        .add_bool("no-ari", "ignore the CA's renewal information; use the lifetime rule")
        .add("days", "N", "renew when fewer than N days are left (instead of the lifetime rule)");
    if (auto st = f.parse(argc, argv); !st) return std::fprintf(stderr, "edgecert renew: %s\n", st.error().message.c_str()), 2;
    if (f.help_requested()) return std::printf("%s", f.help_text().c_str()), 0;

    auto domains = parse_domains(f.get("domains"));
    if (!domains) return std::fprintf(stderr, "edgecert renew: %s\n", domains.error().message.c_str()), 2;
    auto kt = acme::parse_key_type(f.get("key-type"));
    if (!kt) return std::fprintf(stderr, "edgecert renew: %s\n", kt.error().message.c_str()), 2;
    std::optional<std::chrono::seconds> renew_before;
    if (f.has("days")) {
        auto d = f.get_int("days", 0, 3650);
        if (!d) return std::fprintf(stderr, "edgecert renew: %s\n", d.error().message.c_str()), 2;
        renew_before = std::chrono::hours(24 * *d);
    }
    const std::string dir = cert_dir(f.get("out"), domains->front());
    auto pem = platform::read_file(dir + "/tls.crt");
    if (!pem)
        return report_failure("renew", Error(ErrorCode::NotFound, "no certificate at " + dir +
                                                                      "/tls.crt: run 'edgecert issue' first"));
    auto leaf = acme::Certificate::from_pem(*pem);
    if (!leaf) return report_failure("renew", leaf.error().with_context(dir + "/tls.crt"));

    RealClock& clock = RealClock::instance();
    auto session = open_session(f, clock);
    if (!session) return report_failure("renew", session.error());

    const auto now = clock.now();
    bool due = f.get_bool("force");
    std::string why = "forced";
    bool ari = !f.get_bool("no-ari") && session->client->supports_ari();
    if (!due && ari) {
        auto ri = session->client->renewal_info(*leaf);
        if (ri) {
            std::mt19937_64 rng{std::random_device{}()};
            auto at = acme::choose_renewal_time(ri->suggested_window, rng, now);
            due = at <= now;
            why = "ARI window " + acme::format_rfc3339(ri->suggested_window.start) + " .. " +
                  acme::format_rfc3339(ri->suggested_window.end);
            if (!ri->explanation_url.empty()) why += " (" + ri->explanation_url + ")";
            if (!due) {
                std::printf("not due: %s; chose %s; ask again after %s\n", why.c_str(),
                            acme::format_rfc3339(at).c_str(), acme::format_rfc3339(ri->next_poll).c_str());
                return 0;
            }
        } else {
            spdlog::warn("renewal information unavailable ({}); using the lifetime rule", ri.error().message);
            ari = false;
        }
    }
    if (!due) {
        auto at = lifetime_renewal_time(*leaf, renew_before);
        due = at <= now;
        why = "lifetime rule (renew after " + acme::format_rfc3339(at) + ")";
        if (!due) {
            std::printf("not due: %s; expires %s\n", why.c_str(), acme::format_rfc3339(leaf->not_after()).c_str());
            return 0;
        }
    }
    spdlog::info("renewing {}: {}", domains->front(), why);

    IssueParams p;
    p.domains = *domains;
    p.key_type = *kt;
    p.profile = f.get("profile");
    p.preferred_chain = f.get("preferred-chain");
    if (ari) {
        if (auto id = leaf->ari_cert_id()) p.replaces = *id;
    }
    std::optional<acme::PrivateKey> old_key;
    if (f.get_bool("reuse-key")) {
        auto kpem = platform::read_secret_file(dir + "/tls.key");
        if (!kpem) return report_failure("renew", kpem.error());
        auto k = acme::PrivateKey::from_pem(kpem->reveal());
        if (!k) return report_failure("renew", k.error().with_context(dir + "/tls.key"));
        old_key = std::move(*k);
        p.reuse_key = &*old_key;
    }
    auto types_spec = f.get("challenge");
    std::vector<std::string> types;
    for (const char* t : {"http-01", "tls-alpn-01"})
        if (types_spec.find(t) != std::string::npos) types.push_back(t);
    if (types.empty()) return std::fprintf(stderr, "edgecert renew: --challenge: use http-01 or tls-alpn-01\n"), 2;
    StandaloneSolver solver(types, f.get("http-port"), f.get("tls-port"), clock);
    if (auto st = solver.prepare(); !st) return report_failure("renew", st.error());
    auto res = issue_and_store(*session, solver, p, clock);
    if (!res) return report_failure("renew", res.error());
    std::printf("renewed (%s)\n", why.c_str());
    print_issued(dir, res->chain.front(), p.domains);
    return 0;
}

}  // namespace edgecert::app
