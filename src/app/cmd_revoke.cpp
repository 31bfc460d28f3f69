// `edgecert revoke`: RFC 8555 §7.6 revocation, by the account key or by the certificate's key.
#include <cstdio>

#include "app/acme_cli.h"
#include "app/commands.h"
#include "platform/files.h"

namespace edgecert::app {
namespace {

Result<acme::RevocationReason> parse_reason(const std::string& s) {
    static const std::pair<const char*, acme::RevocationReason> kNames[] = {
        {"unspecified", acme::RevocationReason::Unspecified},
        {"keyCompromise", acme::RevocationReason::KeyCompromise},
        {"affiliationChanged", acme::RevocationReason::AffiliationChanged},
        {"superseded", acme::RevocationReason::Superseded},
        {"cessationOfOperation", acme::RevocationReason::CessationOfOperation},
    };
    for (const auto& [name, r] : kNames)
        if (s == name || s == std::to_string(static_cast<int>(r))) return r;
    return Error(ErrorCode::InvalidConfig,
                 "--reason '" + s + "': use unspecified (0), keyCompromise (1), affiliationChanged (3), "
                 "superseded (4) or cessationOfOperation (5)");
}

}  // namespace

int cmd_revoke(int argc, char** argv) {
    Flags f("revoke", "--server URL (--domains a.example | --cert FILE) [flags]",
            "Revokes a certificate (RFC 8555 §7.6): signed by the account that ordered it, or with\n"
            "--with-cert-key by the certificate's own private key (no account needed).");
    add_account_flags(f);
    f.add("domains", "LIST", "the certificate under OUT/<first-domain>/")
        .add("cert", "FILE", "a PEM certificate file instead of --domains")
        .add("key", "FILE", "the certificate's key for --with-cert-key (default: tls.key beside it)")
        .add("reason", "REASON", "RFC 5280 reason: unspecified, keyCompromise, superseded, ... or its code")
        .add_bool("with-cert-key", "sign the request with the certificate's key instead of the account key");
    if (auto st = f.parse(argc, argv); !st) return std::fprintf(stderr, "edgecert revoke: %s\n", st.error().message.c_str()), 2;
    if (f.help_requested()) return std::printf("%s", f.help_text().c_str()), 0;

    std::string cert_path = f.get("cert"), key_path = f.get("key");
    if (cert_path.empty()) {
        if (!f.has("domains")) return std::fprintf(stderr, "edgecert revoke: --domains or --cert is required\n"), 2;
        auto domains = parse_domains(f.get("domains"));
        if (!domains) return std::fprintf(stderr, "edgecert revoke: %s\n", domains.error().message.c_str()), 2;
        std::string dir = cert_dir(f.get("out"), domains->front());
        cert_path = dir + "/tls.crt";
        if (key_path.empty()) key_path = dir + "/tls.key";
    } else if (key_path.empty()) {
        auto slash = cert_path.rfind('/');
        key_path = (slash == std::string::npos ? std::string(".") : cert_path.substr(0, slash)) + "/tls.key";
    }
    std::optional<acme::RevocationReason> reason;
    if (f.has("reason")) {
        auto r = parse_reason(f.get("reason"));
        if (!r) return std::fprintf(stderr, "edgecert revoke: %s\n", r.error().message.c_str()), 2;
        reason = *r;
    }
    auto pem = platform::read_file(cert_path);
    if (!pem) return report_failure("revoke", pem.error());
    auto cert = acme::Certificate::from_pem(*pem);
    if (!cert) return report_failure("revoke", cert.error().with_context(cert_path));

    RealClock& clock = RealClock::instance();
    Status st;
    if (f.get_bool("with-cert-key")) {
        auto kpem = platform::read_secret_file(key_path);
        if (!kpem) return report_failure("revoke", kpem.error());
        auto key = acme::PrivateKey::from_pem(kpem->reveal());
        if (!key) return report_failure("revoke", key.error().with_context(key_path));
        if (!cert->matches_key(*key))
            return report_failure("revoke", Error(ErrorCode::InvalidConfig, key_path + " is not the key of " + cert_path));
        platform::CurlOptions co;
        co.ca_file = f.get("ca-bundle");
        auto http = platform::CurlHttpClient::create(std::move(co));
        if (!http) return report_failure("revoke", http.error());
        acme::ClientOptions ao;
        ao.directory_url = f.get("server");
        auto client = acme::Client::create(**http, clock, ao);
        if (!client) return report_failure("revoke", client.error());
        st = (*client)->revoke_with_cert_key(*cert, *key, reason);
    } else {
        auto session = open_session(f, clock);
        if (!session) return report_failure("revoke", session.error());
        st = session->client->revoke(*cert, reason);
    }
    if (!st) return report_failure("revoke", st.error());
    std::printf("revoked certificate %s (serial %s)\n", cert_path.c_str(), cert->serial_hex().c_str());
    return 0;
}

}  // namespace edgecert::app
