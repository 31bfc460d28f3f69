#include "app/run_config.h"
#include "app/terminator_runtime.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <set>

#include "controller/renewal.h"
#include "controller/shim.h"
#include "controller/signing.h"
#include "edgecert/base/encoding.h"
#include "platform/files.h"

namespace edgecert::app {
namespace {

using nlohmann::json;

Error bad(std::string msg) { return Error(ErrorCode::InvalidConfig, std::move(msg)); }

// A plain (untagged, unquoted) YAML scalar as JSON: YAML 1.2 core schema, which is what
// Kubernetes manifests assume (no yes/no booleans, no octal surprises).
json plain_scalar(const std::string& s) {
    if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    const char* b = s.c_str();
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(b, &end, 10);
    if (*end == '\0' && errno == 0 && (std::isdigit(static_cast<unsigned char>(s.back())))) return i;
    errno = 0;
    double d = std::strtod(b, &end);
    bool numeric = *end == '\0' && errno == 0 && s.find_first_of("0123456789") != std::string::npos &&
                   s.find_first_not_of("0123456789.eE+-") == std::string::npos;
    if (numeric) return d;
    return s;
}

Result<json> node_to_json(const YAML::Node& n, int depth) {
    if (depth > 64) return bad("the YAML is nested too deeply");
    switch (n.Type()) {
        case YAML::NodeType::Undefined:
        case YAML::NodeType::Null: return json(nullptr);
        case YAML::NodeType::Scalar:
            // "!" is the tag yaml-cpp gives a quoted scalar: always a string.
            if (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str") return json(n.Scalar());
            return plain_scalar(n.Scalar());
        case YAML::NodeType::Sequence: {
            json a = json::array();
            for (const auto& c : n) {
                EC_TRY_ASSIGN(json v, node_to_json(c, depth + 1));
                a.push_back(std::move(v));
            }
            return a;
        }
        case YAML::NodeType::Map: {
            json o = json::object();
            for (const auto& kv : n) {
                if (!kv.first.IsScalar()) return bad("a YAML map key is not a string");
                EC_TRY_ASSIGN(json v, node_to_json(kv.second, depth + 1));
                o[kv.first.Scalar()] = std::move(v);
            }
            return o;
        }
    }
    return json(nullptr);
}

std::string resolve(const std::string& base, const std::string& p) {
    if (p.empty() || p.front() == '/' || base.empty()) return p;
    return base + "/" + p;
}

// Every key of `obj` must be in `allowed`: a typo must not silently drop a setting.
Status only_keys(const json& obj, std::initializer_list<const char*> allowed, const std::string& where) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
        bool ok = std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return it.key() == a; });
        if (!ok) {
            std::string list;
            for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
            return bad(where + "unknown field '" + it.key() + "' (known: " + list + ")");
        }
    }
    return {};
}

std::string entry_name(const char* list, size_t i, const json& e) {
    std::string n = e.is_object() && e.contains("name") && e["name"].is_string() ? e["name"].get<std::string>() : "";
    return std::string(list) + "[" + std::to_string(i) + "]" + (n.empty() ? "" : " (" + n + ")") + ": ";
}

// ca: {secretName} (a folder of the store, as a Secret) or {certFile, keyFile} (files). The files
// are checked now, so a wrong key or a certificate that is not a CA stops the start with exit 2.
Status parse_ca_issuer(const json& ca, const std::string& base_dir, RunIssuer& out) {
    if (!ca.is_object()) return bad("ca must be a map with secretName, or certFile and keyFile");
    EC_TRY(only_keys(ca, {"secretName", "certFile", "keyFile"}, "ca: "));
    out.type = controller::IssuerType::Ca;
    const bool files = ca.contains("certFile") || ca.contains("keyFile");
    if (files == ca.contains("secretName"))
        return bad(
            "ca needs either secretName (a certificate folder of the store) or certFile and "
            "keyFile");
    if (!files) {
        EC_TRY_ASSIGN(auto spec, controller::parse_issuer_spec(json{{"ca", ca}}));
        out.ca_secret_name = spec.ca_secret_name;
        return {};
    }
    if (!ca.value("certFile", json()).is_string() || !ca.value("keyFile", json()).is_string())
        return bad("ca.certFile and ca.keyFile are both required (paths)");
    out.ca_cert_file = resolve(base_dir, ca["certFile"].get<std::string>());
    out.ca_key_file = resolve(base_dir, ca["keyFile"].get<std::string>());
    auto ok = load_ca_files(out, RealClock::instance().now());
    if (!ok) return bad(ok.error().message);
    return {};
}

Result<RunIssuer> parse_issuer(const json& e, const std::string& base_dir) {
    if (!e.is_object()) return bad("must be a map with name and one of acme, selfSigned, ca");
    EC_TRY(only_keys(e, {"name", "acme", "selfSigned", "ca"}, ""));
    RunIssuer out;
    out.name = e.value("name", "");
    if (out.name.empty()) return bad("name is required");
    if (auto why = controller::invalid_object_name_reason(out.name)) return bad("name '" + out.name + "': " + *why);
    if (int(e.contains("acme")) + int(e.contains("selfSigned")) + int(e.contains("ca")) != 1)
        return bad("exactly one of acme, selfSigned, ca is required");
    if (e.contains("selfSigned")) {
        EC_TRY(controller::parse_issuer_spec(json{{"selfSigned", e["selfSigned"]}}));
        out.type = controller::IssuerType::SelfSigned;
        return out;
    }
    if (e.contains("ca")) {
        EC_TRY(parse_ca_issuer(e["ca"], base_dir, out));
        return out;
    }
    if (!e["acme"].is_object()) return bad("acme must be a map");
    json acme = e["acme"];
    EC_TRY(only_keys(acme,
                     {"server", "caBundle", "caBundleFile", "email", "profile", "preferredChain",
                      "externalAccountBinding", "solvers", "disableAccountKeyGeneration", "skipTLSVerify"},
                     "acme: "));
    if (acme.contains("caBundleFile")) {
        if (!acme["caBundleFile"].is_string()) return bad("acme.caBundleFile must be a path");
        std::string path = resolve(base_dir, acme["caBundleFile"].get<std::string>());
        auto pem = platform::read_file(path, 1 << 20);
        if (!pem) return bad("acme.caBundleFile " + path + ": " + pem.error().message);
        if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos)
            return bad("acme.caBundleFile " + path + " holds no PEM certificate");
        if (acme.contains("caBundle")) return bad("acme.caBundle and acme.caBundleFile are mutually exclusive");
        acme["caBundle"] = *pem;
        acme.erase("caBundleFile");
    }
    std::optional<SecretBytes> hmac;
    if (acme.contains("externalAccountBinding")) {
        json& eab = acme["externalAccountBinding"];
        if (!eab.is_object()) return bad("acme.externalAccountBinding must be a map");
        EC_TRY(only_keys(eab, {"keyID", "keySecretFile", "keyAlgorithm"}, "acme.externalAccountBinding: "));
        if (!eab.contains("keySecretFile") || !eab["keySecretFile"].is_string())
            return bad("acme.externalAccountBinding.keySecretFile is required (a file holding the base64url HMAC key)");
        std::string path = resolve(base_dir, eab["keySecretFile"].get<std::string>());
        auto raw = platform::read_secret_file(path, 4096);
        if (!raw) return bad("acme.externalAccountBinding.keySecretFile " + path + ": " + raw.error().message);
        std::string enc(raw->reveal());
        while (!enc.empty() && std::isspace(static_cast<unsigned char>(enc.back()))) enc.pop_back();
        auto key = enc::base64url_decode(enc);
        if (!key) key = enc::base64_decode(enc);
        std::fill(enc.begin(), enc.end(), '\0');
        if (!key || key->empty())
            return bad("acme.externalAccountBinding.keySecretFile " + path + " is not base64url");
        hmac = SecretBytes(std::move(*key));
        // The CRD shape names a Secret; the parser only needs to know one is referenced.
        eab["keySecretRef"] = {{"name", "file:" + path}};
        eab.erase("keySecretFile");
    }
    // dns01.rfc2136.tsigSecretFile (this file's stand-in for tsigSecretSecretRef) is relative to
    // the config file like every other path; it is read when a certificate is issued.
    if (acme.contains("solvers") && acme["solvers"].is_array()) {
        for (auto& sv : acme["solvers"]) {
            if (!sv.is_object() || !sv.contains("dns01") || !sv["dns01"].is_object()) continue;
            json& d = sv["dns01"];
            if (d.contains("rfc2136") && d["rfc2136"].is_object() && d["rfc2136"].contains("tsigSecretFile") &&
                d["rfc2136"]["tsigSecretFile"].is_string())
                d["rfc2136"]["tsigSecretFile"] = resolve(base_dir, d["rfc2136"]["tsigSecretFile"].get<std::string>());
        }
    }
    EC_TRY_ASSIGN(out.acme, controller::parse_acme_issuer(json{{"acme", acme}}));
    out.eab_hmac = std::move(hmac);
    return out;
}

Result<controller::CertificateSpec> parse_certificate(const json& e) {
    if (!e.is_object()) return bad("must be a map with name, dnsNames and issuerRef");
    EC_TRY(only_keys(e,
                     {"name", "labels", "secretName", "dnsNames", "ipAddresses", "issuerRef",
                      "fallbackIssuerRefs", "fallbackPolicy", "privateKey", "renewBefore",
                      "renewBeforePercentage", "secretTemplate", "commonName", "isCA", "duration",
                      "usages", "subject"},
                     ""));
    std::string name = e.value("name", "");
    if (name.empty()) return bad("name is required");
    if (auto why = controller::invalid_object_name_reason(name)) return bad("name '" + name + "': " + *why);
    json spec = e;
    spec.erase("name");
    // `labels` is the Certificate's metadata.labels: what solver selectors (matchLabels) match.
    json md = {{"name", name}};
    if (spec.contains("labels")) {
        if (!spec["labels"].is_object()) return bad("labels must be a map of strings");
        for (auto it = spec["labels"].begin(); it != spec["labels"].end(); ++it)
            if (!it.value().is_string()) return bad("labels." + it.key() + " must be a string");
        md["labels"] = spec["labels"];
        spec.erase("labels");
    }
    if (!spec.contains("secretName")) spec["secretName"] = name;
    if (spec.contains("issuerRef") && spec["issuerRef"].is_object()) {
        const json& ir = spec["issuerRef"];
        if (ir.value("kind", "Issuer") != "Issuer")
            return bad("issuerRef.kind: edgecert run has only issuers from this file (kind Issuer)");
    }
    if (spec.contains("fallbackIssuerRefs") && spec["fallbackIssuerRefs"].is_array()) {
        for (const auto& ir : spec["fallbackIssuerRefs"])
            if (ir.is_object() && ir.value("kind", "Issuer") != "Issuer")
                return bad(
                    "fallbackIssuerRefs[].kind: edgecert run has only issuers from this file (kind "
                    "Issuer)");
    }
    auto parsed = controller::parse_certificate_spec(json{{"metadata", md}, {"spec", spec}});
    if (!parsed) return parsed.error();
    return parsed;
}

Result<std::chrono::milliseconds> duration_field(const json& t, const char* key, std::chrono::milliseconds def) {
    if (!t.contains(key)) return def;
    if (!t[key].is_string()) return bad(std::string(key) + " must be a duration such as \"10s\"");
    EC_TRY_ASSIGN(auto ns, controller::parse_go_duration(t[key].get<std::string>()));
    if (ns.count() < 0) return bad(std::string(key) + " must not be negative");
    return std::chrono::duration_cast<std::chrono::milliseconds>(ns);
}

Result<RunTerminator> parse_terminator(const json& t) {
    RunTerminator out;
    if (t.is_null()) return bad("upstream is required (where decrypted connections go, HOST:PORT)");
    if (!t.is_object()) return bad("must be a map");
    EC_TRY(only_keys(t,
                     {"listen", "httpListen", "upstream", "proxyProtocol", "httpMode", "admin", "workers", "strictSni",
                      "defaultCertificate", "drainTimeout", "alpn", "upstreamProtocol", "upstreamH2", "ktls"},
                     ""));
    auto str = [&](const char* k, std::string& dst) -> Status {
        if (!t.contains(k)) return {};
        if (!t[k].is_string()) return bad(std::string(k) + " must be a string");
        dst = t[k].get<std::string>();
        return {};
    };
    EC_TRY(str("listen", out.listen));
    EC_TRY(str("httpListen", out.http_listen));
    EC_TRY(str("upstream", out.upstream));
    EC_TRY(str("admin", out.admin));
    EC_TRY(str("defaultCertificate", out.default_certificate));
    if (out.http_listen == "off") out.http_listen.clear();
    if (out.admin == "off") out.admin.clear();
    if (out.upstream.empty()) return bad("upstream is required (where decrypted connections go, HOST:PORT)");
    std::string pp = "none", hm = "redirect";
    EC_TRY(str("proxyProtocol", pp));
    EC_TRY(str("httpMode", hm));
    if (pp == "none") out.proxy_protocol = proxy::ProxyProtocol::None;
    else if (pp == "v1") out.proxy_protocol = proxy::ProxyProtocol::V1;
    else if (pp == "v2") out.proxy_protocol = proxy::ProxyProtocol::V2;
    else return bad("proxyProtocol must be none, v1 or v2");
    if (hm == "redirect") out.http_mode = proxy::HttpMode::Redirect;
    else if (hm == "passthrough") out.http_mode = proxy::HttpMode::Passthrough;
    else return bad("httpMode must be redirect or passthrough");
    if (t.contains("workers")) {
        if (!t["workers"].is_number_integer() || t["workers"].get<long>() < 1 || t["workers"].get<long>() > 256)
            return bad("workers must be an integer in 1..256");
        out.workers = t["workers"].get<int>();
    }
    if (t.contains("strictSni")) {
        if (!t["strictSni"].is_boolean()) return bad("strictSni must be true or false");
        out.strict_sni = t["strictSni"].get<bool>();
    }
    EC_TRY_ASSIGN(out.drain_timeout, duration_field(t, "drainTimeout", out.drain_timeout));
    std::string upstream_protocol = "http1";
    EC_TRY(str("upstreamProtocol", upstream_protocol));
    auto up = parse_upstream_protocol(upstream_protocol);
    if (!up) return bad(up.error().message);
    out.upstream_protocol = *up;
    EC_TRY(str("upstreamH2", out.upstream_h2));
    std::string ktls = "off";
    EC_TRY(str("ktls", ktls));
    auto km = parse_ktls_mode(ktls);
    if (!km) return bad(km.error().message);
    out.ktls = *km;
    std::vector<std::string> alpn;
    if (t.contains("alpn")) {
        if (!t["alpn"].is_array()) return bad("alpn must be a list such as [h2, http/1.1]");
        for (const auto& a : t["alpn"]) {
            if (!a.is_string() || a.get<std::string>().empty()) return bad("alpn entries must be strings");
            alpn.push_back(a.get<std::string>());
        }
    }
    proxy::ServerOptions so;
    so.upstream_protocol = out.upstream_protocol;
    so.h2_upstream = out.upstream_h2;
    auto offered = offered_alpn(so, t.contains("alpn") ? &alpn : nullptr);
    if (!offered) return bad(offered.error().message);
    out.alpn = *offered;
    return out;
}

}  // namespace

Result<pki::CaKeyPair> load_ca_files(const RunIssuer& iss, SystemTime now) {
    controller::CaMaterial m{
        .where = "ca.certFile/keyFile " + iss.ca_cert_file + ", " + iss.ca_key_file,
        .exists = false,
        .tls_crt = {},
        .tls_key = {},
        .ca_crt = {}};
    auto crt = platform::read_file(iss.ca_cert_file, 1 << 20);
    if (!crt && crt.error().code != ErrorCode::NotFound)
        return bad(m.where + ": " + crt.error().message);
    auto key = platform::read_secret_file(iss.ca_key_file, 1 << 20);
    if (!key && key.error().code != ErrorCode::NotFound)
        return bad("ca.keyFile " + iss.ca_key_file + ": " + key.error().message);
    m.exists = crt.ok();
    if (crt) m.tls_crt = std::move(*crt);
    if (key) m.tls_key = std::move(*key);
    if (m.exists && !m.tls_key)
        return Error(ErrorCode::NotFound, "Error getting keypair for CA issuer: ca.keyFile " +
                                              iss.ca_key_file + " not found");
    return controller::load_ca(m, now);
}

const RunIssuer* RunConfig::issuer(const std::string& name) const {
    for (const auto& i : issuers)
        if (i.name == name) return &i;
    return nullptr;
}

const controller::CertificateSpec* RunConfig::certificate(const std::string& name) const {
    for (const auto& c : certificates)
        if (c.ref.name == name) return &c;
    return nullptr;
}

Result<json> yaml_to_json(const std::string& text) {
    try {
        YAML::Node n = YAML::Load(text);
        return node_to_json(n, 0);
    } catch (const YAML::Exception& e) {
        return bad(std::string("not valid YAML: ") + e.what());
    }
}

Result<RunConfig> parse_run_config(const json& doc, const std::string& base_dir) {
    if (!doc.is_object()) return bad("the config must be a YAML map with store, issuers, certificates, terminator");
    EC_TRY(only_keys(doc, {"store", "issuers", "certificates", "terminator"}, ""));
    RunConfig cfg;
    if (!doc.contains("store") || !doc["store"].is_string() || doc["store"].get<std::string>().empty())
        return bad("store: required (the directory certificates and account keys are kept in)");
    cfg.store = resolve(base_dir, doc["store"].get<std::string>());

    auto list = [&](const char* key) -> Result<json> {
        if (!doc.contains(key) || doc[key].is_null()) return json::array();
        if (!doc[key].is_array()) return bad(std::string(key) + ": must be a list");
        return doc[key];
    };
    EC_TRY_ASSIGN(json issuers, list("issuers"));
    EC_TRY_ASSIGN(json certs, list("certificates"));
    std::set<std::string> seen;
    for (size_t i = 0; i < issuers.size(); ++i) {
        std::string where = entry_name("issuers", i, issuers[i]);
        auto r = parse_issuer(issuers[i], base_dir);
        if (!r) return bad(where + r.error().message);
        if (!seen.insert(r->name).second) return bad(where + "duplicate issuer name '" + r->name + "'");
        cfg.issuers.push_back(std::move(*r));
    }
    seen.clear();
    std::set<std::string> folders;
    for (size_t i = 0; i < certs.size(); ++i) {
        std::string where = entry_name("certificates", i, certs[i]);
        auto r = parse_certificate(certs[i]);
        if (!r) return bad(where + r.error().message);
        if (!seen.insert(r->ref.name).second) return bad(where + "duplicate certificate name '" + r->ref.name + "'");
        if (!folders.insert(r->ref.secret_name).second)
            return bad(where + "secretName '" + r->ref.secret_name + "' is used by another certificate");
        const auto chain = r->issuer_chain();
        for (size_t k = 0; k < chain.size(); ++k) {
            const std::string field = k == 0 ? std::string("issuerRef")
                                             : "fallbackIssuerRefs[" + std::to_string(k - 1) + "]";
            const RunIssuer* iss = cfg.issuer(chain[k].name);
            if (!iss)
                return bad(where + field + ".name '" + chain[k].name +
                           "' is not one of the issuers in this file");
            // Fallback is for CA outages: selfSigned and ca issuers sign here and cannot fail over.
            if (chain.size() > 1 && iss->type != controller::IssuerType::Acme)
                return bad(where + field + ": issuer '" + iss->name + "' is " +
                           std::string(controller::to_string(iss->type)) +
                           "; only ACME issuers can have or be fallbacks");
            controller::IssuerSpec is{
                .type = iss->type, .acme = iss->acme, .ca_secret_name = iss->ca_secret_name};
            if (auto fits = controller::check_certificate_for_issuer(*r, is); !fits)
                return bad(where + "issuer '" + iss->name + "': " + fits.error().message);
            // Solver selectors are checked now, so a certificate no solver can answer fails at
            // load.
            if (iss->type == controller::IssuerType::Acme)
                if (auto t = controller::challenge_types_for(iss->acme, r->labels, r->dns_names,
                                                             r->ip_addresses);
                    !t)
                    return bad(where + "issuer '" + iss->name + "': " + t.error().message);
        }
        cfg.certificates.push_back(std::move(*r));
    }
    {
        auto t = parse_terminator(doc.contains("terminator") ? doc["terminator"] : json());
        if (!t) return bad("terminator: " + t.error().message);
        cfg.terminator = std::move(*t);
    }
    if (!cfg.terminator.default_certificate.empty()) {
        const auto* c = cfg.certificate(cfg.terminator.default_certificate);
        if (!c)
            return bad("terminator: defaultCertificate '" + cfg.terminator.default_certificate +
                       "' is not one of the certificates in this file");
        cfg.terminator.default_certificate = c->ref.secret_name;
    }
    return cfg;
}

Result<RunConfig> load_run_config(const std::string& path) {
    auto text = platform::read_file(path, 4 << 20);
    if (!text) return bad("config " + path + ": " + text.error().message);
    auto doc = yaml_to_json(*text);
    if (!doc) return bad("config " + path + ": " + doc.error().message);
    std::string base = ".";
    if (auto slash = path.rfind('/'); slash != std::string::npos) base = slash == 0 ? "/" : path.substr(0, slash);
    auto cfg = parse_run_config(*doc, base == "." ? "" : base);
    if (!cfg) return bad("config " + path + ": " + cfg.error().message);
    return cfg;
}

}  // namespace edgecert::app
