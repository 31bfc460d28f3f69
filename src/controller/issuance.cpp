#include "controller/issuance.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "controller/shim.h"
#include "edgecert/base/http.h"
#include "edgecert/base/encoding.h"

namespace edgecert::controller {
using enc::base64_decode;
namespace {

Error bad(std::string msg) { return Error(ErrorCode::InvalidConfig, std::move(msg)); }

std::vector<std::string> sorted_unique(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

std::map<std::string, std::string> string_map(const json& j) {
    std::map<std::string, std::string> m;
    if (!j.is_object()) return m;
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.value().is_string()) m[it.key()] = it.value().get<std::string>();
    return m;
}

Result<acme::KeyType> key_type_of(const json& pk) {
    std::string alg = pk.is_object() ? pk.value("algorithm", "ECDSA") : "ECDSA";
    int size = 0;
    if (pk.is_object() && pk.contains("size")) {
        if (!pk["size"].is_number_integer()) return bad("spec.privateKey.size must be an integer");
        size = pk["size"].get<int>();
    }
    if (alg == "ECDSA") {
        if (size == 0 || size == 256) return acme::KeyType::EcP256;
        if (size == 384) return acme::KeyType::EcP384;
        return bad("spec.privateKey.size " + std::to_string(size) +
                   " is not supported for ECDSA (256 or 384)");
    }
    if (alg == "RSA") {
        if (size == 0 || size == 2048) return acme::KeyType::Rsa2048;
        if (size == 3072) return acme::KeyType::Rsa3072;
        if (size == 4096) return acme::KeyType::Rsa4096;
        return bad("spec.privateKey.size " + std::to_string(size) +
                   " is not supported for RSA (2048, 3072 or 4096)");
    }
    if (alg == "Ed25519") return acme::KeyType::Ed25519;
    return bad("spec.privateKey.algorithm '" + alg + "' is not one of RSA, ECDSA, Ed25519");
}

Result<std::vector<std::string>> string_list(const json& obj, const char* key,
                                             const std::string& where) {
    std::vector<std::string> out;
    if (!obj.contains(key)) return out;
    if (!obj[key].is_array()) return bad(where + key + " must be a list of strings");
    for (const auto& v : obj[key]) {
        if (!v.is_string()) return bad(where + key + " must be a list of strings");
        out.push_back(v.get<std::string>());
    }
    return out;
}

// isCA, commonName, subject, usages, duration: what a selfSigned / ca issuer writes into the
// certificate (cert-manager.io/v1 CertificateSpec names).
Status parse_signing_fields(const json& spec, CertificateSpec& s) {
    if (spec.contains("isCA")) {
        if (!spec["isCA"].is_boolean()) return bad("spec.isCA must be true or false");
        s.is_ca = spec["isCA"].get<bool>();
    }
    if (spec.contains("commonName")) {
        if (!spec["commonName"].is_string()) return bad("spec.commonName must be a string");
        s.subject.common_name = spec["commonName"].get<std::string>();
        if (s.subject.common_name.size() > 64)
            return bad("spec.commonName is longer than 64 characters (RFC 5280)");
    }
    if (spec.contains("subject")) {
        const json& sub = spec["subject"];
        if (!sub.is_object()) return bad("spec.subject must be a map");
        const std::string w = "spec.subject.";
        pki::Subject& o = s.subject;
        EC_TRY_ASSIGN(o.organizations, string_list(sub, "organizations", w));
        EC_TRY_ASSIGN(o.organizational_units, string_list(sub, "organizationalUnits", w));
        EC_TRY_ASSIGN(o.countries, string_list(sub, "countries", w));
        EC_TRY_ASSIGN(o.localities, string_list(sub, "localities", w));
        EC_TRY_ASSIGN(o.provinces, string_list(sub, "provinces", w));
        EC_TRY_ASSIGN(o.street_addresses, string_list(sub, "streetAddresses", w));
        EC_TRY_ASSIGN(o.postal_codes, string_list(sub, "postalCodes", w));
        for (const auto& c : o.countries)
            if (c.size() != 2)
                return bad("spec.subject.countries: '" + c + "' is not a two-letter country code");
        if (sub.contains("serialNumber")) {
            if (!sub["serialNumber"].is_string())
                return bad("spec.subject.serialNumber must be a string");
            o.serial_number = sub["serialNumber"].get<std::string>();
        }
    }
    EC_TRY_ASSIGN(auto usages, string_list(spec, "usages", "spec."));
    for (const auto& u : usages) {
        auto parsed = pki::parse_usage(u);
        if (!parsed) return bad("spec.usages: " + parsed.error().message);
        if (std::find(s.usages.begin(), s.usages.end(), *parsed) == s.usages.end())
            s.usages.push_back(*parsed);
    }
    if (spec.contains("duration")) {
        if (!spec["duration"].is_string())
            return bad("spec.duration must be a duration string such as 2160h");
        auto d = parse_go_duration(spec["duration"].get<std::string>());
        if (!d) return bad("spec.duration: " + d.error().message);
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(*d);
        if (secs.count() <= 0) return bad("spec.duration must be at least one second");
        s.duration = secs;
    }
    return {};
}

Result<std::vector<std::string>> dns_names_of(const json& spec) {
    EC_TRY_ASSIGN(auto names, string_list(spec, "dnsNames", "spec."));
    std::vector<std::string> out;
    for (const auto& n : names) {
        if (acme::is_ip_literal(n))  // RFC 8738: an address is its own identifier type
            return bad("spec.dnsNames: '" + n + "' is an IP address: list it in spec.ipAddresses");
        if (acme::has_numeric_last_label(n))
            return bad("spec.dnsNames: '" + n +
                       "' is neither a DNS name (its last label is numeric) nor an IP address");
        std::string name = ascii_lower(n);
        if (auto why = invalid_dns_name_reason(name))
            return bad("spec.dnsNames: '" + n + "' " + *why);
        out.push_back(std::move(name));
    }
    return sorted_unique(std::move(out));
}

Result<std::vector<std::string>> ip_addresses_of(const json& spec) {
    EC_TRY_ASSIGN(auto texts, string_list(spec, "ipAddresses", "spec."));
    std::vector<std::string> out;
    for (const auto& t : texts) {
        auto ip = acme::canonical_ip(t);
        if (!ip) return bad("spec.ipAddresses: " + ip.error().message);
        out.push_back(std::move(*ip));
    }
    return sorted_unique(std::move(out));
}
// Remembers whether the solver failed to present: that failure is ours (terminators, DNS), not the
// CA's, whatever the error looks like.
class PresentTracker final : public acme::ChallengeSolver {
  public:
    explicit PresentTracker(acme::ChallengeSolver& s) : s_(s) {}
    std::vector<std::string> supported_types() const override { return s_.supported_types(); }
    Status present(const std::string& domain, const acme::Challenge& ch,
                   const std::string& ka) override {
        auto st = s_.present(domain, ch, ka);
        if (!st) failed_ = true;
        return st;
    }
    void cleanup(const std::string& domain, const acme::Challenge& ch) noexcept override {
        s_.cleanup(domain, ch);
    }
    bool failed() const { return failed_; }

  private:
    acme::ChallengeSolver& s_;
    bool failed_ = false;
};

}  // namespace

std::vector<IssuerRef> CertificateSpec::issuer_chain() const {
    std::vector<IssuerRef> c{issuer_ref()};
    c.insert(c.end(), fallback_issuers.begin(), fallback_issuers.end());
    return c;
}

pki::CertificateTemplate CertificateSpec::signing_template() const {
    pki::CertificateTemplate t;
    t.subject = subject;
    t.dns_names = dns_names;  // then the addresses: they become iPAddress SANs
    t.dns_names.insert(t.dns_names.end(), ip_addresses.begin(), ip_addresses.end());
    t.is_ca = is_ca;
    t.usages = usages;
    t.duration = duration.value_or(pki::kDefaultDuration);
    return t;
}

std::string_view to_string(IssuerType t) {
    switch (t) {
        case IssuerType::Acme:
            return "acme";
        case IssuerType::SelfSigned:
            return "selfSigned";
        case IssuerType::Ca:
            return "ca";
    }
    return "unknown";
}

Result<IssuerSpec> parse_issuer_spec(const json& issuer_spec) {
    if (!issuer_spec.is_object()) return bad("the issuer has no spec");
    const int kinds = int(issuer_spec.contains("acme")) + int(issuer_spec.contains("selfSigned")) +
                      int(issuer_spec.contains("ca"));
    if (kinds != 1) return bad("the issuer's spec must have exactly one of acme, selfSigned, ca");
    IssuerSpec out;
    if (issuer_spec.contains("acme")) {
        EC_TRY_ASSIGN(out.acme, parse_acme_issuer(issuer_spec));
        return out;
    }
    if (issuer_spec.contains("selfSigned")) {
        if (!issuer_spec["selfSigned"].is_object() && !issuer_spec["selfSigned"].is_null())
            return bad("spec.selfSigned must be a map ({})");
        out.type = IssuerType::SelfSigned;
        return out;
    }
    const json& ca = issuer_spec["ca"];
    if (!ca.is_object()) return bad("spec.ca must be a map with secretName");
    out.type = IssuerType::Ca;
    out.ca_secret_name = ca.value("secretName", "");
    if (out.ca_secret_name.empty()) return bad("spec.ca.secretName is required");
    if (auto why = invalid_object_name_reason(out.ca_secret_name))
        return bad("spec.ca.secretName '" + out.ca_secret_name + "': " + *why);
    return out;
}

Status check_certificate_for_issuer(const CertificateSpec& spec, const IssuerSpec& issuer) {
    if (issuer.type != IssuerType::Acme) return {};
    if (spec.dns_names.empty() && spec.ip_addresses.empty())
        return bad(
            "an ACME issuer validates DNS names and IP addresses: spec.dnsNames or "
            "spec.ipAddresses must list at least one (spec.commonName alone is for selfSigned "
            "and ca issuers)");
    if (spec.is_ca)
        return bad(
            "spec.isCA: an ACME CA does not issue CA certificates (use a selfSigned or ca issuer)");
    return {};
}

store::CertificateMeta secret_meta(const CertificateSpec& spec) {
    return store::CertificateMeta{.issuer_name = spec.issuer_name,
                                  .issuer_kind = spec.issuer_kind,
                                  .dns_names = spec.dns_names,
                                  .ip_addresses = spec.ip_addresses,
                                  .extra_labels = spec.secret_labels,
                                  .extra_annotations = spec.secret_annotations};
}

Result<acme::PrivateKey> key_for_issuance(const CertificateSpec& spec,
                                          const std::optional<store::StoredCertificate>& current) {
    if (!spec.rotate_key && current) {
        auto k = acme::PrivateKey::from_pem(current->key_pem.reveal());
        if (k && k->type() == spec.key_type) return std::move(*k);
    }
    return acme::PrivateKey::generate(spec.key_type);
}

Result<CertificateSpec> parse_certificate_spec(const json& obj) {
    try {
        CertificateSpec s;
        const json& md = obj.contains("metadata") ? obj["metadata"] : json::object();
        s.ref.name = md.value("name", "");
        s.ref.namespace_ = md.value("namespace", "");
        s.labels = string_map(md.value("labels", json::object()));
        if (s.ref.name.empty()) return bad("metadata.name is required");
        const json& spec = obj.contains("spec") ? obj["spec"] : json::object();
        if (!spec.is_object()) return bad("spec must be an object");
        s.ref.secret_name = spec.value("secretName", "");
        if (s.ref.secret_name.empty()) return bad("spec.secretName is required");
        if (auto why = invalid_object_name_reason(s.ref.secret_name))
            return bad("spec.secretName '" + s.ref.secret_name + "': " + *why);
        EC_TRY(parse_signing_fields(spec, s));
        if (spec.contains("dnsNames") && spec["dnsNames"].is_array() && spec["dnsNames"].empty())
            return bad(
                "spec.dnsNames must list at least one name (leave it out when "
                "spec.ipAddresses or spec.commonName names the certificate)");
        EC_TRY_ASSIGN(s.dns_names, dns_names_of(spec));
        EC_TRY_ASSIGN(s.ip_addresses, ip_addresses_of(spec));
        if (s.dns_names.empty() && s.ip_addresses.empty() && s.subject.common_name.empty())
            return bad(
                "spec.dnsNames or spec.ipAddresses must list at least one name (or, for "
                "selfSigned and ca issuers, set spec.commonName)");
        const json& ir = spec.contains("issuerRef") ? spec["issuerRef"] : json::object();
        s.issuer_name = ir.is_object() ? ir.value("name", "") : "";
        if (s.issuer_name.empty()) return bad("spec.issuerRef.name is required");
        s.issuer_kind = ir.value("kind", "Issuer");
        if (s.issuer_kind != "Issuer" && s.issuer_kind != "ClusterIssuer")
            return bad("spec.issuerRef.kind must be Issuer or ClusterIssuer");
        std::string group = ir.value("group", "edgecert.io");
        if (!group.empty() && group != "edgecert.io" && group != "cert-manager.io")
            return bad("spec.issuerRef.group '" + group + "' is not edgecert.io");
        if (spec.contains("fallbackIssuerRefs")) {
            EC_TRY_ASSIGN(s.fallback_issuers,
                          parse_fallback_issuer_refs(spec["fallbackIssuerRefs"], s.issuer_ref()));
        }
        if (spec.contains("fallbackPolicy")) {
            EC_TRY_ASSIGN(s.fallback_policy, parse_fallback_policy(spec["fallbackPolicy"]));
        }
        const json pk = spec.contains("privateKey") ? spec["privateKey"] : json::object();
        EC_TRY_ASSIGN(s.key_type, key_type_of(pk));
        std::string rot = pk.is_object() ? pk.value("rotationPolicy", "Always") : "Always";
        if (rot != "Always" && rot != "Never") return bad("spec.privateKey.rotationPolicy must be Always or Never");
        s.rotate_key = rot == "Always";
        if (spec.contains("renewBefore")) {
            if (!spec["renewBefore"].is_string()) return bad("spec.renewBefore must be a duration string");
            s.renewal.renew_before = spec["renewBefore"].get<std::string>();
        }
        if (spec.contains("renewBeforePercentage")) {
            if (!spec["renewBeforePercentage"].is_number_integer())
                return bad("spec.renewBeforePercentage must be an integer");
            s.renewal.renew_before_percentage = spec["renewBeforePercentage"].get<int>();
        }
        // Validate the renewal rule now (a year-long dummy lifetime), so a bad value is a
        // BadConfig at once and not a surprise at the first renewal.
        std::mt19937_64 rng(1);
        auto t0 = SystemTime{} + std::chrono::hours(24 * 365 * 30);
        EC_TRY(renewal_time(t0, t0 + std::chrono::hours(24 * 365), s.renewal, std::nullopt, rng, t0));
        if (spec.contains("secretTemplate") && spec["secretTemplate"].is_object()) {
            s.secret_labels = string_map(spec["secretTemplate"].value("labels", json::object()));
            s.secret_annotations = string_map(spec["secretTemplate"].value("annotations", json::object()));
        }
        return s;
    } catch (const json::exception& e) {
        return bad(std::string("malformed Certificate: ") + e.what());
    }
}

Result<AcmeIssuerSpec> parse_acme_issuer(const json& issuer_spec) {
    try {
        if (!issuer_spec.is_object() || !issuer_spec.contains("acme") || !issuer_spec["acme"].is_object())
            return bad("the issuer has no spec.acme");
        const json& a = issuer_spec["acme"];
        AcmeIssuerSpec s;
        s.server = a.value("server", "");
        if (s.server.rfind("https://", 0) != 0)  // RFC 8555 §6.1: HTTPS only
            return bad("spec.acme.server must be an https:// directory URL");
        if (a.contains("caBundle") && a["caBundle"].is_string()) {
            std::string v = a["caBundle"].get<std::string>();
            if (v.find("-----BEGIN") != std::string::npos) {
                s.ca_bundle_pem = v;  // raw PEM (convenient in edgecert run's file)
            } else if (!v.empty()) {
                auto d = base64_decode(v);
                if (!d || d->find("-----BEGIN CERTIFICATE-----") == std::string::npos)
                    return bad("spec.acme.caBundle must be base64 of a PEM certificate bundle");
                s.ca_bundle_pem = *d;
            }
        }
        s.skip_tls_verify = a.value("skipTLSVerify", false);
        if (s.skip_tls_verify) return bad("spec.acme.skipTLSVerify is refused: put the server's CA in caBundle");
        s.email = a.value("email", "");
        if (a.contains("privateKeySecretRef") && a["privateKeySecretRef"].is_object()) {
            s.private_key_secret_name = a["privateKeySecretRef"].value("name", "");
            s.private_key_secret_key = a["privateKeySecretRef"].value("key", "tls.key");
        }
        s.disable_account_key_generation = a.value("disableAccountKeyGeneration", false);
        if (a.contains("externalAccountBinding") && a["externalAccountBinding"].is_object()) {
            const json& e = a["externalAccountBinding"];
            s.eab_key_id = e.value("keyID", "");
            if (e.contains("keySecretRef") && e["keySecretRef"].is_object()) {
                s.eab_secret_name = e["keySecretRef"].value("name", "");
                s.eab_secret_key = e["keySecretRef"].value("key", "secret");
            }
            if (s.eab_key_id.empty() || s.eab_secret_name.empty())
                return bad("spec.acme.externalAccountBinding needs keyID and keySecretRef.name");
        }
        s.preferred_chain = a.value("preferredChain", "");
        s.profile = a.value("profile", "");
        bool dns01 = false;
        if (a.contains("solvers") && a["solvers"].is_array()) {
            for (const auto& sv : a["solvers"]) {
                if (!sv.is_object()) continue;
                SolverSpec so;
                if (sv.contains("selector") && sv["selector"].is_object()) {
                    const json& sel = sv["selector"];
                    so.match_labels = string_map(sel.value("matchLabels", json::object()));
                    for (const char* f : {"dnsNames", "dnsZones"}) {
                        if (!sel.contains(f)) continue;
                        if (!sel[f].is_array()) return bad(std::string("spec.acme.solvers[].selector.") + f + " must be a list");
                        for (const auto& n : sel[f]) {
                            if (!n.is_string()) continue;
                            std::string v = ascii_lower(n.get<std::string>());
                            if (auto ip = acme::canonical_ip(v))
                                v = *ip;  // an address, as ipAddresses keeps it
                            (f[3] == 'N' ? so.dns_names : so.dns_zones).push_back(std::move(v));
                        }
                    }
                }
                int kinds = 0;
                if (sv.contains("http01")) { s.challenge_types.push_back("http-01"); so.type = "http-01"; ++kinds; }
                if (sv.contains("tlsAlpn01")) { s.challenge_types.push_back("tls-alpn-01"); so.type = "tls-alpn-01"; ++kinds; }
                if (sv.contains("dns01")) {
                    dns01 = true;
                    so.type = "dns-01";
                    ++kinds;
                    EC_TRY_ASSIGN(so.dns01, parse_dns01_solver(sv["dns01"]));
                }
                if (kinds != 1) return bad("spec.acme.solvers: each solver must have exactly one of http01, tlsAlpn01, dns01");
                s.solvers.push_back(std::move(so));
            }
        }
        std::vector<std::string> uniq;
        for (auto& t : s.challenge_types)
            if (std::find(uniq.begin(), uniq.end(), t) == uniq.end()) uniq.push_back(t);
        s.challenge_types = std::move(uniq);
        if (s.challenge_types.empty()) {
            // Only dns01 solvers: certificates get dns-01 through select_solver().
            if (dns01) s.challenge_types = {"dns-01"};
            else s.challenge_types = {"http-01", "tls-alpn-01"};  // both are answered by the terminators
        }
        return s;
    } catch (const json::exception& e) {
        return bad(std::string("malformed issuer: ") + e.what());
    }
}

Result<std::vector<std::string>> challenge_types_for(
    const AcmeIssuerSpec& issuer, const std::map<std::string, std::string>& cert_labels,
    const std::vector<std::string>& dns_names, const std::vector<std::string>& ip_addresses) {
    EC_TRY_ASSIGN(const SolverSpec* chosen,
                  select_solver(issuer, cert_labels, dns_names, ip_addresses));
    if (!chosen) {
        if (ip_addresses.empty()) return issuer.challenge_types;
        std::vector<std::string> types;  // RFC 8738 §7: never dns-01 for an address
        for (const auto& t : issuer.challenge_types)
            if (t != "dns-01") types.push_back(t);
        if (types.empty())
            return bad(
                "the issuer only solves dns-01, which cannot validate an IP address (RFC 8738)");
        return types;
    }
    return std::vector<std::string>{chosen->type};
}

Result<const SolverSpec*> select_solver(const AcmeIssuerSpec& issuer,
                                        const std::map<std::string, std::string>& cert_labels,
                                        const std::vector<std::string>& dns_names,
                                        const std::vector<std::string>& ip_addresses) {
    if (issuer.solvers.empty()) return static_cast<const SolverSpec*>(nullptr);
    const bool has_ip = !ip_addresses.empty();
    // RFC 8555 §7.1.3: a wildcard can only be validated with dns-01, so only dns01 solvers fit.
    const bool wildcard = std::any_of(dns_names.begin(), dns_names.end(),
                                      [](const std::string& n) { return n.rfind("*.", 0) == 0; });
    auto in_zone = [](const std::string& name, const std::string& zone) {
        std::string n = name.rfind("*.", 0) == 0 ? name.substr(2) : name;
        return n == zone || (n.size() > zone.size() && n.compare(n.size() - zone.size(), zone.size(), zone) == 0 &&
                             n[n.size() - zone.size() - 1] == '.');
    };
    int best = -1;
    const SolverSpec* chosen = nullptr;
    for (const auto& so : issuer.solvers) {
        bool labels_ok = std::all_of(so.match_labels.begin(), so.match_labels.end(), [&](const auto& kv) {
            auto it = cert_labels.find(kv.first);
            return it != cert_labels.end() && it->second == kv.second;
        });
        if (!labels_ok) continue;
        if (wildcard && so.type != "dns-01") continue;
        if (has_ip && so.type == "dns-01") continue;
        int score = static_cast<int>(so.match_labels.size());  // 0 = no selector
        if (!so.dns_names.empty()) {
            auto listed = [&](const std::string& n) {
                return std::find(so.dns_names.begin(), so.dns_names.end(), n) != so.dns_names.end();
            };
            if (!std::all_of(dns_names.begin(), dns_names.end(), listed) ||
                !std::all_of(ip_addresses.begin(), ip_addresses.end(), listed))
                continue;
            score += 100000;
        } else if (!so.dns_zones.empty()) {
            if (has_ip) continue;  // an address is in no DNS zone
            size_t shortest = std::string::npos;
            bool all = true;
            for (const auto& n : dns_names) {
                size_t len = 0;
                for (const auto& z : so.dns_zones)
                    if (in_zone(n, z)) len = std::max(len, z.size() + 1);
                if (len == 0) { all = false; break; }
                shortest = std::min(shortest, len);
            }
            if (!all) continue;
            score += 1000 + static_cast<int>(shortest);
        }
        if (score > best) {
            best = score;
            chosen = &so;
        }
    }
    if (!chosen)
        return bad(
            wildcard && has_ip
                ? "a certificate cannot have both a wildcard name (dns-01 only) and an "
                  "IP address (never dns-01, RFC 8738)"
            : wildcard
                ? "no dns01 solver of the issuer selects this certificate's names and labels "
                  "(a wildcard name needs dns-01)"
            : has_ip
                ? "no http01 or tlsAlpn01 solver of the issuer selects this certificate's names "
                  "and labels (an IP address cannot use dns-01, RFC 8738)"
                : "no solver of the issuer selects this certificate's names and labels");
    return chosen;
}

void apply_manual_renewal(Evaluation& ev) {
    if (ev.reason != IssueReason::None || !ev.leaf || !ev.renewal) return;
    ev.reason = IssueReason::ManuallyTriggered;
    ev.detail = "Renewing certificate as it was manually triggered (edgecert renew)";
}

bool keeps_serving(IssueReason r) {
    return r == IssueReason::Renewing || r == IssueReason::RequestChanged || r == IssueReason::IncorrectIssuer ||
           r == IssueReason::ManuallyTriggered;
}

std::string_view to_string(IssueReason r) {
    switch (r) {
        case IssueReason::None: return "UpToDate";
        case IssueReason::DoesNotExist: return "DoesNotExist";
        case IssueReason::InvalidCertificate: return "InvalidCertificate";
        case IssueReason::SANsChanged: return "SANsChanged";
        case IssueReason::KeyMismatch: return "KeyMismatch";
        case IssueReason::Renewing: return "Renewing";
        case IssueReason::Expired: return "Expired";
        case IssueReason::RequestChanged:
            return "RequestChanged";
        case IssueReason::IncorrectIssuer:
            return "IncorrectIssuer";
        case IssueReason::ManuallyTriggered:
            return kManuallyTriggered;
    }
    return "Unknown";
}

Evaluation evaluate(const CertificateSpec& spec, const std::optional<store::StoredCertificate>& stored,
                    const std::optional<acme::RenewalInfo>& ari,
                    std::optional<SystemTime> previous_renewal_time, std::mt19937_64& rng,
                    SystemTime now) {
    Evaluation ev;
    if (!stored) {
        ev.reason = IssueReason::DoesNotExist;
        ev.detail = "Issuing certificate as Secret does not exist";
        return ev;
    }
    auto chain = acme::parse_pem_chain(stored->cert_pem);
    if (!chain) {
        ev.reason = IssueReason::InvalidCertificate;
        ev.detail = "Issuing certificate as Secret holds no valid certificate: " + chain.error().message;
        return ev;
    }
    ev.leaf = chain->front();
    auto key = acme::PrivateKey::from_pem(stored->key_pem.reveal());
    if (!key) {
        ev.reason = IssueReason::InvalidCertificate;
        ev.detail = "Issuing certificate as Secret holds no valid private key";
        return ev;
    }
    if (!ev.leaf->matches_key(*key)) {
        ev.reason = IssueReason::KeyMismatch;
        ev.detail = "Issuing certificate as the Secret's private key does not match its certificate";
        return ev;
    }
    std::vector<std::string> have;
    for (auto& n : ev.leaf->dns_names()) have.push_back(ascii_lower(n));
    have = sorted_unique(std::move(have));
    if (have != spec.dns_names) {
        ev.reason = IssueReason::SANsChanged;
        ev.detail = "Issuing certificate as the DNS names in the Secret differ from spec.dnsNames";
        return ev;
    }
    if (sorted_unique(ev.leaf->ip_addresses()) != spec.ip_addresses) {
        ev.reason = IssueReason::SANsChanged;
        ev.detail =
            "Issuing certificate as the IP addresses in the Secret differ from spec.ipAddresses";
        return ev;
    }
    if (key->type() != spec.key_type) {
        ev.reason = IssueReason::KeyMismatch;
        ev.detail = std::string("Issuing certificate as the private key is ") +
                    std::string(acme::to_string(key->type())) + ", spec.privateKey asks for " +
                    std::string(acme::to_string(spec.key_type));
        return ev;
    }
    auto d = renewal_time(ev.leaf->not_before(), ev.leaf->not_after(), spec.renewal, ari, rng, now);
    if (!d) {  // validated at parse time; a leaf with notAfter <= notBefore lands here
        ev.reason = IssueReason::InvalidCertificate;
        ev.detail = "Issuing certificate as the stored one has unusable dates: " + d.error().message;
        return ev;
    }
    // Keep an earlier random pick inside the same ARI window (stable status, no dice per pass).
    if (d->basis == RenewalBasis::Ari && previous_renewal_time && ari &&
        *previous_renewal_time >= ari->suggested_window.start &&
        *previous_renewal_time <= ari->suggested_window.end)
        d->renewal_time = *previous_renewal_time;
    ev.renewal = *d;
    if (now >= ev.leaf->not_after()) {
        ev.reason = IssueReason::Expired;
        ev.detail = "Issuing certificate as it expired at " + rfc3339(ev.leaf->not_after());
    } else if (now >= d->renewal_time) {
        ev.reason = IssueReason::Renewing;
        ev.detail = "Renewing certificate as renewal was scheduled at " + rfc3339(d->renewal_time) +
                    " (" + std::string(to_string(d->basis)) + ")";
    }
    return ev;
}

Result<IssueResult> issue(acme::Client& client, acme::ChallengeSolver& solver,
                          store::CertificateStore& store, const IssueRequest& req, Clock& clock) {
    (void)clock;
    const CertificateSpec& spec = *req.spec;
    const AcmeIssuerSpec& iss = *req.issuer;
    const IssuerRef issuer = req.issuer_ref.value_or(spec.issuer_ref());
    IssueResult out;
    // Everything but the CA's answers is our side; set to Ca around acme::obtain below.
    auto local = [&](Error e) {
        if (req.origin) *req.origin = FailureOrigin::Local;
        return e;
    };

    // 1. An order from an earlier attempt (crash, CA trouble): resume it with its key. An order
    // of another issuer is never resumed here (the caller picks the issuer an order belongs to).
    std::optional<acme::PrivateKey> key;
    std::string resume_url;
    auto pending = store.load_pending(spec.ref);
    if (!pending) return local(pending.error());
    if (*pending && (*pending)->server == iss.server && (*pending)->dns_names == spec.dns_names &&
        (*pending)->ip_addresses == spec.ip_addresses &&
        ((*pending)->issuer.empty() || (*pending)->issuer == ref_key(issuer))) {
        auto k = acme::PrivateKey::from_pem((*pending)->key_pem.reveal());
        if (k && k->type() == spec.key_type) {
            key = std::move(*k);
            resume_url = (*pending)->order_url;
            if (!resume_url.empty()) spdlog::info("certificate {}: resuming order {}", spec.ref.key(), resume_url);
        }
    } else if (*pending) {
        spdlog::info("certificate {}: dropping a pending order for other names or another CA", spec.ref.key());
        if (auto st = store.clear_pending(spec.ref); !st) return local(st.error());
    }

    // 2. Otherwise the key: the current one when rotation is off, else a new one.
    std::optional<acme::Certificate> current_leaf;
    if (req.current) {
        if (auto c = acme::Certificate::from_pem(req.current->cert_pem)) current_leaf = std::move(*c);
    }
    if (!key) {
        auto k = key_for_issuance(spec, req.current);
        if (!k) return local(k.error());
        key = std::move(*k);
    }

    acme::ObtainRequest oreq{.dns_names = spec.dns_names,
                             .ip_addresses = spec.ip_addresses,
                             .cert_key = *key,
                             .profile = iss.profile,
                             .replaces = "",
                             .preferred_chain = iss.preferred_chain,
                             .resume_order_url = resume_url,
                             .on_order_created = nullptr};
    if (current_leaf && req.current_from_issuer) {
        auto dir = client.directory();
        if (dir && !dir->renewal_info.empty()) {
            if (auto id = current_leaf->ari_cert_id()) oreq.replaces = *id;
        }
    }
    out.replaced_cert_id = oreq.replaces;
    oreq.on_order_created = [&](const std::string& url) {
        store::PendingOrder po{.server = iss.server,
                               .issuer = ref_key(issuer),
                               .dns_names = spec.dns_names,
                               .ip_addresses = spec.ip_addresses,
                               .order_url = url,
                               .key_pem = key->to_pem()};
        return store.save_pending(spec.ref, po);
    };

    PresentTracker tracked(solver);
    auto res = acme::obtain(client, tracked, oreq);
    if (!res && !oreq.resume_order_url.empty() && !res.error().retryable() && !tracked.failed()) {
        spdlog::warn("certificate {}: resumed order {} cannot complete ({}); placing a new order",
                     spec.ref.key(), oreq.resume_order_url, res.error().message);
        oreq.resume_order_url.clear();
        res = acme::obtain(client, tracked, oreq);
    } else if (res) {
        out.resumed = !oreq.resume_order_url.empty();
    }
    // A resumed order that had already been finished and stored (the process stopped between
    // storing the certificate and clearing the order) hands back the certificate in service: that
    // is no renewal. Drop the order and place a new one, with a new key where rotation asks for it.
    if (res && out.resumed && current_leaf && res->chain.front().to_der() == current_leaf->to_der()) {
        spdlog::info("certificate {}: order {} was already finished and its certificate stored; placing a new order",
                     spec.ref.key(), oreq.resume_order_url);
        if (auto st = store.clear_pending(spec.ref); !st) return local(st.error());
        auto k = key_for_issuance(spec, req.current);
        if (!k) return local(k.error());
        key = std::move(*k);
        oreq.cert_key = *key;
        oreq.resume_order_url.clear();
        out.resumed = false;
        res = acme::obtain(client, tracked, oreq);
    }
    if (!res) {
        if (req.origin) *req.origin = tracked.failed() ? FailureOrigin::Local : FailureOrigin::Ca;
        // Keep the order (and its key) while retrying it can still succeed.
        if (!res.error().retryable()) (void)store.clear_pending(spec.ref);
        return res.error();
    }
    const acme::Certificate& leaf = res->chain.front();
    if (!leaf.matches_key(*key)) {
        if (req.origin) *req.origin = FailureOrigin::Ca;
        return Error(ErrorCode::Permanent, "the CA returned a certificate that does not match our key");
    }

    // The Secret names the issuer that signed it: a fallback, when one did.
    store::CertificateMeta meta = secret_meta(spec);
    meta.issuer_name = issuer.name;
    meta.issuer_kind = issuer.kind;
    store::StoredCertificate sc{.cert_pem = res->chain_pem, .key_pem = key->to_pem(), .ca_pem = {}};
    if (auto st = store.save_certificate(spec.ref, sc, meta); !st) return local(st.error());
    if (auto st = store.clear_pending(spec.ref); !st)
        spdlog::warn("certificate {}: could not clear the finished order: {}", spec.ref.key(), st.error().message);
    out.obtained = std::move(*res);
    return out;
}

}  // namespace edgecert::controller
