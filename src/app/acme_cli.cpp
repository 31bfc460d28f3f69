#include "app/acme_cli.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <unistd.h>

#include "edgecert/base/encoding.h"
#include "platform/files.h"

namespace edgecert::app {
namespace {

using nlohmann::json;

// "https://acme.example:14000/dir" → "acme.example_14000" (lego's layout: one folder per CA).
std::string server_slug(const std::string& url) {
    std::string s = url;
    if (auto p = s.find("://"); p != std::string::npos) s = s.substr(p + 3);
    if (auto p = s.find('/'); p != std::string::npos) s = s.substr(0, p);
    for (auto& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
    return s.empty() ? "default" : s;
}

std::string file_slug(const std::string& s) {
    std::string out = s;
    for (auto& c : out)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '@' && c != '_') c = '_';
    return out.empty() ? "default" : out;
}

Result<SecretBytes> eab_key(const Flags& f) {
    std::string encoded;
    if (f.has("eab-hmac-file")) {
        EC_TRY_ASSIGN(SecretBytes file, platform::read_secret_file(f.get("eab-hmac-file"), 4096));
        encoded.assign(file.reveal());
    } else {
        encoded = f.get("eab-hmac");
    }
    while (!encoded.empty() && (encoded.back() == '\n' || encoded.back() == '\r' || encoded.back() == ' '))
        encoded.pop_back();
    // CAs hand out base64url (RFC 8555 §7.3.4); tolerate standard base64 too.
    auto raw = enc::base64url_decode(encoded);
    if (!raw) raw = enc::base64_decode(encoded);
    std::fill(encoded.begin(), encoded.end(), '\0');
    if (!raw || raw->empty())
        return Error(ErrorCode::InvalidConfig, "the EAB HMAC key is not valid base64url");
    SecretBytes key(std::move(*raw));
    return key;
}

json read_json_file(const std::string& path) {
    auto text = platform::read_file(path, 1 << 20);
    if (!text) return json();
    return json::parse(*text, nullptr, /*allow_exceptions=*/false);
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}


}  // namespace

void add_account_flags(Flags& f) {
    f.add("server", "URL", "ACME directory URL of the CA (required)")
        .add("out", "DIR", "where certificates and accounts are kept", ".edgecert")
        .add("email", "ADDR", "contact e-mail for the ACME account")
        .add("ca-bundle", "FILE", "PEM bundle to trust for the CA's ACME endpoint (e.g. Pebble)")
        .add("eab-kid", "ID", "external account binding key ID (RFC 8555 §7.3.4)")
        .add("eab-hmac", "KEY", "external account binding HMAC key, base64url")
        .add("eab-hmac-file", "FILE", "read the EAB HMAC key from a file instead")
        .add("account-key-type", "TYPE", "key type for a new account key", "ec256");
}

void add_order_flags(Flags& f) {
    f.add("domains", "LIST",
          "comma-separated DNS names and IP addresses of one certificate; the first names its "
          "folder; repeat for more certificates")
        .add("ip-address", "LIST",
             "comma-separated IP addresses (RFC 8738) to add to the certificate (certbot's flag; "
             "--domains takes them too)")
        .add("key-type", "TYPE",
             "certificate key: ec256, ec384, rsa2048, rsa3072, rsa4096, ed25519", "ec256")
        .add("challenge", "TYPE",
             "http-01, tls-alpn-01 or dns-01 (comma-separated for several; wildcards need dns-01, "
             "IP addresses http-01 or tls-alpn-01)",
             "http-01")
        .add("http-port", "[ADDR:]PORT", "where the built-in http-01 responder listens", "80")
        .add("tls-port", "[ADDR:]PORT", "where the built-in tls-alpn-01 responder listens", "443")
        .add("profile", "NAME", "ACME profile to request (the CA's default otherwise)")
        .add("preferred-chain", "CN", "prefer the chain whose root issuer has this common name");
}

std::string cert_dir(const std::string& out_dir, const std::string& first_domain) {
    std::string name = first_domain;
    if (name.rfind("*.", 0) == 0) name = "_." + name.substr(2);
    return out_dir + "/" + file_slug(name);
}

Result<std::vector<std::string>> parse_domains(const std::string& csv) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= csv.size()) {
        size_t comma = csv.find(',', start);
        std::string d = csv.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        d.erase(0, d.find_first_not_of(" \t"));
        d.erase(d.find_last_not_of(" \t") + 1);
        std::transform(d.begin(), d.end(), d.begin(), [](unsigned char c) { return std::tolower(c); });
        if (!d.empty() && acme::is_ip_literal(d)) {  // an RFC 8738 identifier, canonical text
            EC_TRY_ASSIGN(d, acme::canonical_ip(d));
            if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
        } else if (!d.empty()) {
            bool ok = d.size() <= 253 && d.find("..") == std::string::npos && d.front() != '.' && d.back() != '.';
            for (size_t i = 0; i < d.size() && ok; ++i) {
                char c = d[i];
                ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || (c == '*' && i == 0 && d.size() > 2 && d[1] == '.');
            }
            if (!ok || acme::has_numeric_last_label(d))  // "127.0.0.256" is a mistyped address
                return Error(ErrorCode::InvalidConfig,
                             "'" + d + "' is not a valid DNS name or IP address");
            if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (out.empty()) return Error(ErrorCode::InvalidConfig, "--domains is required (e.g. --domains a.example,b.example)");
    return out;
}

Result<std::vector<std::vector<std::string>>> certificate_identifiers(const Flags& f) {
    std::vector<std::vector<std::string>> groups;
    for (const auto& spec : f.get_all("domains")) {
        EC_TRY_ASSIGN(auto ids, parse_domains(spec));
        groups.push_back(std::move(ids));
    }
    std::vector<std::string> ips;
    for (const auto& spec : f.get_all("ip-address")) {
        EC_TRY_ASSIGN(auto more, parse_domains(spec));
        for (auto& ip : more) {
            if (!acme::is_ip_literal(ip))
                return Error(
                    ErrorCode::InvalidConfig,
                    "--ip-address '" + ip + "' is not an IP address (DNS names go in --domains)");
            ips.push_back(std::move(ip));
        }
    }
    if (!ips.empty()) {
        if (groups.size() > 1)
            return Error(ErrorCode::InvalidConfig,
                         "--ip-address adds to one certificate, and several --domains name "
                         "several: put the addresses into the right --domains list");
        if (groups.empty()) groups.emplace_back();
        for (auto& ip : ips)
            if (std::find(groups[0].begin(), groups[0].end(), ip) == groups[0].end())
                groups[0].push_back(std::move(ip));
    }
    if (groups.empty())
        return Error(
            ErrorCode::InvalidConfig,
            "--domains is required (e.g. --domains a.example,b.example or --ip-address 192.0.2.1)");
    return groups;
}

Result<AcmeSession> open_session(const Flags& f, Clock& clock) {
    AcmeSession s;
    s.server = f.get("server");
    s.out_dir = f.get("out");
    if (s.server.empty()) return Error(ErrorCode::InvalidConfig, "--server is required (the CA's ACME directory URL)");
    platform::CurlOptions co;
    co.ca_file = f.get("ca-bundle");
    if (!co.ca_file.empty() && !platform::file_exists(co.ca_file))
        return Error(ErrorCode::InvalidConfig, "--ca-bundle " + co.ca_file + " does not exist");
    EC_TRY_ASSIGN(s.http, platform::CurlHttpClient::create(std::move(co)));
    acme::ClientOptions ao;
    ao.directory_url = s.server;
    EC_TRY_ASSIGN(s.client, acme::Client::create(*s.http, clock, ao));

    // Talk to the CA before writing anything: a CA that is down leaves no files behind.
    EC_TRY_ASSIGN(acme::Directory dir, s.client->directory());

    std::string email = f.get("email");
    std::string acct_dir = s.out_dir + "/accounts/" + server_slug(s.server) + "/" + file_slug(email.empty() ? "default" : email);
    std::string key_path = acct_dir + "/account.key", meta_path = acct_dir + "/account.json";

    std::optional<acme::PrivateKey> key;
    if (platform::file_exists(key_path)) {
        EC_TRY_ASSIGN(SecretBytes pem, platform::read_secret_file(key_path));
        auto k = acme::PrivateKey::from_pem(pem.reveal());
        if (!k) return Error(ErrorCode::InvalidConfig, "account key " + key_path + " is unreadable: " + k.error().message);
        key = std::move(*k);
    }
    json meta = read_json_file(meta_path);
    if (key && meta.is_object() && meta.value("url", "") != "" && meta.value("server", "") == s.server) {
        s.client->set_account(*key, meta["url"].get<std::string>());
        spdlog::debug("using account {}", meta["url"].get<std::string>());
        return s;
    }

    acme::NewAccountOptions na;
    if (!email.empty()) na.contacts.push_back("mailto:" + email);
    na.terms_of_service_agreed = true;
    if (f.has("eab-kid")) {
        if (!f.has("eab-hmac") && !f.has("eab-hmac-file"))
            return Error(ErrorCode::InvalidConfig, "--eab-kid needs --eab-hmac or --eab-hmac-file");
        na.eab_kid = f.get("eab-kid");
        EC_TRY_ASSIGN(na.eab_hmac_key, eab_key(f));
    } else if (dir.meta.external_account_required) {
        return Error(ErrorCode::InvalidConfig,
                     "the CA requires external account binding: pass --eab-kid and --eab-hmac");
    }
    if (!key) {
        EC_TRY_ASSIGN(auto kt, acme::parse_key_type(f.get("account-key-type")));
        EC_TRY_ASSIGN(key, acme::PrivateKey::generate(kt));
        // Persist before registering: if the CA registers it and we die, the key still exists and
        // the next run finds the account with onlyReturnExisting.
        EC_TRY(platform::write_secret_file(key_path, key->to_pem()));
    }
    EC_TRY_ASSIGN(acme::Account acct, acme::ensure_account(*s.client, *key, na));
    if (!dir.meta.terms_of_service.empty())
        spdlog::info("account {}: agreed to the terms of service at {}", acct.url, dir.meta.terms_of_service);
    json m = {{"url", acct.url}, {"server", s.server}, {"contacts", na.contacts}, {"key_type", acme::to_string(key->type())}};
    EC_TRY(platform::write_file_atomic(meta_path, m.dump(2) + "\n", 0600));
    return s;
}

Status StandaloneSolver::prepare() {
    for (const auto& t : types_) {
        if (t == acme::kHttp01 && !http_) {
            EC_TRY_ASSIGN(http_, Http01Responder::create(http_listen_));
        } else if (t == acme::kTlsAlpn01 && !tls_) {
            EC_TRY_ASSIGN(tls_, TlsAlpn01Responder::create(tls_listen_));
        }
    }
    return {};
}

Status StandaloneSolver::present(const std::string& domain, const acme::Challenge& ch,
                                 const std::string& key_authorization) {
    EC_TRY(prepare());
    if (ch.type == acme::kHttp01) {
        http_->set(ch.token, key_authorization);
        return {};
    }
    if (ch.type == acme::kTlsAlpn01) {
        EC_TRY_ASSIGN(auto cc, acme::make_tls_alpn01_cert(domain, key_authorization, clock_));
        tls_->set(domain, cc.cert.get(), cc.key.get());
        return {};
    }
    return Error(ErrorCode::InvalidConfig, "the standalone solver cannot answer " + ch.type);
}

void StandaloneSolver::cleanup(const std::string& domain, const acme::Challenge& ch) noexcept {
    if (ch.type == acme::kHttp01 && http_) http_->remove(ch.token);
    if (ch.type == acme::kTlsAlpn01 && tls_) tls_->remove(domain);
}

Result<acme::ObtainResult> issue_and_store(AcmeSession& s, acme::ChallengeSolver& solver,
                                           const IssueParams& p, Clock& clock) {
    const std::string dir = cert_dir(s.out_dir, p.domains.front());
    const std::string pending = dir + "/.pending";
    const std::string pending_key = pending + "/tls.key", pending_order = pending + "/order.json";

    // An order from an earlier run that did not finish (crash, CA trouble): resume it with its
    // key instead of paying for a second order.
    json po = read_json_file(pending_order);
    std::optional<acme::PrivateKey> key;
    std::string resume_url;
    if (po.is_object() && po.value("server", "") == s.server && po.contains("domains") &&
        sorted(po["domains"].get<std::vector<std::string>>()) == sorted(p.domains) &&
        platform::file_exists(pending_key)) {
        auto pem = platform::read_secret_file(pending_key);
        if (pem) {
            auto k = acme::PrivateKey::from_pem(pem->reveal());
            if (k) key = std::move(*k);
        }
        if (key && po.value("order_url", "") != "") {
            resume_url = po["order_url"].get<std::string>();
            spdlog::info("resuming order {}", resume_url);
        }
    }
    if (!key) {
        if (p.reuse_key) {
            key = *p.reuse_key;
        } else {
            EC_TRY_ASSIGN(key, acme::PrivateKey::generate(p.key_type));
        }
    }
    std::vector<std::string> dns_names, ip_addresses;
    for (const auto& id : p.domains)
        (acme::is_ip_literal(id) ? ip_addresses : dns_names).push_back(id);
    acme::ObtainRequest req{.dns_names = dns_names,
                            .ip_addresses = ip_addresses,
                            .cert_key = *key,
                            .profile = p.profile,
                            .replaces = p.replaces,
                            .preferred_chain = p.preferred_chain,
                            .resume_order_url = resume_url,
                            .on_order_created = nullptr};
    // Recorded the moment the CA has created the order (and not before: a failure before that
    // leaves nothing behind): key first, then the order URL that needs it.
    req.on_order_created = [&](const std::string& url) {
        json o = {{"server", s.server}, {"domains", p.domains}, {"order_url", url}};
        auto st = platform::write_secret_file(pending_key, key->to_pem(), platform::Durability::FileOnly);
        if (st) st = platform::write_file_atomic(pending_order, o.dump(2) + "\n", 0600, platform::Durability::FileOnly);
        if (st) st = platform::sync_dir(pending);
        return st;
    };

    auto res = acme::obtain(*s.client, solver, req);
    if (!res && !req.resume_order_url.empty() && !res.error().retryable()) {
        // The resumed order is dead (invalid or expired): order again with the same key.
        spdlog::warn("resumed order {} cannot complete ({}); placing a new order",
                     req.resume_order_url, res.error().message);
        req.resume_order_url.clear();
        res = acme::obtain(*s.client, solver, req);
    }
    if (!res) {
        // Keep the pending order only if retrying it can still succeed.
        if (!res.error().retryable()) {
            (void)platform::remove_file(pending_order);
            (void)platform::remove_file(pending_key);
            ::rmdir(pending.c_str());
            ::rmdir(dir.c_str());  // only if empty: a failed first issuance leaves no folder
        }
        return res.error();
    }

    const acme::Certificate& leaf = res->chain.front();
    if (!leaf.matches_key(*key)) return Error(ErrorCode::Permanent, "the CA returned a certificate that does not match our key");
    json meta = {{"domains", p.domains},
                 {"server", s.server},
                 {"serial", leaf.serial_hex()},
                 {"not_before", rfc3339(leaf.not_before())},
                 {"not_after", rfc3339(leaf.not_after())},
                 {"issuer", leaf.issuer_name()},
                 {"key_type", acme::to_string(key->type())},
                 {"order_url", res->order_url},
                 {"certificate_url", res->certificate_url},
                 {"profile", p.profile},
                 {"preferred_chain", p.preferred_chain},
                 {"issued_at", rfc3339(clock.now())}};
    if (auto id = leaf.ari_cert_id()) meta["ari_cert_id"] = *id;
    // Key first, then the certificate: a reader that sees the new tls.crt also sees its key.
    // One directory sync covers the three renames; certificate.json can be rebuilt from tls.crt.
    EC_TRY(platform::write_secret_file(dir + "/tls.key", key->to_pem(), platform::Durability::FileOnly));
    EC_TRY(platform::write_file_atomic(dir + "/tls.crt", res->chain_pem, 0644, platform::Durability::FileOnly));
    EC_TRY(platform::write_file_atomic(dir + "/certificate.json", meta.dump(2) + "\n", 0644, platform::Durability::None));
    EC_TRY(platform::sync_dir(dir));
    (void)platform::remove_file(pending_order);
    (void)platform::remove_file(pending_key);
    ::rmdir(pending.c_str());
    return res;
}

int report_failure(const char* cmd, const Error& e) {
    std::fprintf(stderr, "edgecert %s: %s\n", cmd, e.message.c_str());
    for (const auto& d : e.details) std::fprintf(stderr, "  %s\n", d.c_str());
    if (e.code == ErrorCode::RateLimited && e.retry_after)
        std::fprintf(stderr, "  rate limited: retry after %lld s\n", static_cast<long long>(e.retry_after->count()));
    return 1;
}

void print_issued(const std::string& dir, const acme::Certificate& leaf, const std::vector<std::string>& domains) {
    std::string names;
    for (const auto& d : domains) names += (names.empty() ? "" : ", ") + d;
    std::printf("certificate for %s\n", names.c_str());
    std::printf("  serial       %s\n  not after    %s\n  issuer       %s\n", leaf.serial_hex().c_str(),
                rfc3339(leaf.not_after()).c_str(), leaf.issuer_name().c_str());
    std::printf("  certificate  %s/tls.crt (leaf + chain)\n  private key  %s/tls.key (mode 0600)\n", dir.c_str(), dir.c_str());
    std::printf("  inspect      openssl x509 -in %s/tls.crt -noout -text\n", dir.c_str());
}

}  // namespace edgecert::app
