#include "app/status_sources.h"

#include <dirent.h>

#include <algorithm>
#include <set>

#include "controller/resources.h"
#include "edgecert/acme/crypto.h"
#include "edgecert/base/encoding.h"
#include "edgecert/base/http.h"
#include "edgecert/k8s/client.h"
#include "edgecert/k8s/informer.h"
#include "edgecert/k8s/object.h"
#include "edgecert/k8s/resource.h"
#include "platform/files.h"
#include "tls/cert_snapshot.h"

namespace edgecert::app::status {
namespace {

using json = nlohmann::json;
namespace meta = k8s::meta;

std::optional<SystemTime> time_field(const json& obj, const char* key) {
    if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) return std::nullopt;
    auto t = k8s::parse_time(obj[key].get<std::string>());
    if (!t) return std::nullopt;
    return *t;
}

std::string str_field(const json& obj, const char* key) {
    return obj.is_object() && obj.contains(key) && obj[key].is_string()
               ? obj[key].get<std::string>()
               : "";
}

const json* condition(const json& status, std::string_view type) {
    if (!status.is_object() || !status.contains("conditions") || !status["conditions"].is_array())
        return nullptr;
    for (const auto& c : status["conditions"])
        if (c.is_object() && c.value("type", "") == type) return &c;
    return nullptr;
}

void put_time(json& j, const char* key, const std::optional<SystemTime>& t) {
    if (t) j[key] = rfc3339(*t);
}

std::vector<std::string> strings(const json& obj, const char* key) {
    std::vector<std::string> out;
    if (obj.is_object() && obj.contains(key) && obj[key].is_array())
        for (const auto& v : obj[key])
            if (v.is_string()) out.push_back(v.get<std::string>());
    return out;
}

std::optional<std::string> tls_crt(const json& secret) {
    const json& data = secret.is_object() && secret.contains("data") ? secret["data"] : json();
    if (!data.is_object() || !data.contains("tls.crt") || !data["tls.crt"].is_string())
        return std::nullopt;
    return enc::base64_decode(data["tls.crt"].get<std::string>());
}

bool is_hidden(const std::string& n) {
    return n.empty() || n[0] == '.';
}

}  // namespace

// ---- stored certificates ----------------------------------------------------------------------

void fill_from_pem(CertRow& row, std::string_view cert_pem) {
    if (cert_pem.empty()) return;
    auto leaf = acme::Certificate::from_pem(cert_pem);
    if (!leaf) {
        if (row.ready_message.empty())
            row.ready_message = "stored tls.crt does not parse: " + leaf.error().message;
        return;
    }
    row.serial = normalize_serial(leaf->serial_hex());
    row.not_before = leaf->not_before();
    row.not_after = leaf->not_after();
    row.issuer_dn = leaf->issuer_name();
    if (row.dns_names.empty()) {
        row.dns_names = leaf->dns_names();
        for (auto& ip : leaf->ip_addresses())
            row.dns_names.push_back(std::move(ip));  // RFC 8738 SANs
    }
}

// ---- Kubernetes -------------------------------------------------------------------------------

CertRow row_from_certificate(const json& cert, const json* secret) {
    CertRow row;
    row.namespace_ = meta::namespace_(cert);
    row.name = meta::name(cert);
    const json spec = cert.value("spec", json::object());
    const json st = cert.value("status", json::object());
    row.secret_name = str_field(spec, "secretName");
    row.dns_names = strings(spec, "dnsNames");
    for (auto& ip : strings(spec, "ipAddresses")) row.dns_names.push_back(std::move(ip));
    // The issuer that signed the stored certificate (a fallback, perhaps), else the primary.
    json ref = st.is_object() ? st.value("issuerRef", json::object()) : json::object();
    if (!ref.is_object() || str_field(ref, "name").empty())
        ref = spec.value("issuerRef", json::object());
    row.issuer_name = str_field(ref, "name");
    row.issuer_kind = str_field(ref, "kind");
    if (row.issuer_kind.empty()) row.issuer_kind = "Issuer";
    row.not_before = time_field(st, "notBefore");
    row.not_after = time_field(st, "notAfter");
    row.renewal_time = time_field(st, "renewalTime");
    row.last_failure_time = time_field(st, "lastFailureTime");
    if (st.is_object() && st.contains("failedIssuanceAttempts") &&
        st["failedIssuanceAttempts"].is_number_integer())
        row.failed_attempts = st["failedIssuanceAttempts"].get<int>();
    if (const json* ready = condition(st, "Ready")) {
        row.ready = str_field(*ready, "status");
        row.ready_reason = str_field(*ready, "reason");
        row.ready_message = str_field(*ready, "message");
    }
    if (const json* od = condition(st, "RenewalOverdue"))
        row.overdue_condition = str_field(*od, "status") == "True";
    // The controller records a failed attempt on Issuing=False (reason Failed/RateLimited, the
    // message names the next attempt). While the next attempt runs (Issuing=True) both
    // conditions describe that attempt instead: the last failure's text is not known then.
    if (row.failed_attempts > 0 || row.last_failure_time) {
        const json* issuing = condition(st, "Issuing");
        const json* c = issuing && str_field(*issuing, "status") == "False" ? issuing : nullptr;
        if (c) {
            row.failure_reason = str_field(*c, "reason");
            row.failure_message = str_field(*c, "message");
        }
    }
    if (secret) {
        if (auto pem = tls_crt(*secret)) {
            // What is in the Secret wins over the status: it is what terminators load.
            row.serial.clear();
            fill_from_pem(row, *pem);
        }
    }
    return row;
}

IssuerRow row_from_issuer(const json& issuer, std::string kind) {
    IssuerRow r;
    r.namespace_ = meta::namespace_(issuer);
    r.name = meta::name(issuer);
    r.kind = std::move(kind);
    const json st = issuer.value("status", json::object());  // condition() points into it
    if (const json* c = condition(st, "Ready")) {
        r.ready = str_field(*c, "status");
        r.reason = str_field(*c, "reason");
        r.message = str_field(*c, "message");
    }
    return r;
}

Result<Report> collect_kubernetes(k8s::Client& client, const K8sScope& scope, SystemTime now) {
    Report rep;
    rep.source_kind = "kubernetes";
    rep.source = client.server();
    rep.generated_at = now;
    const std::string ns = scope.all_namespaces ? "" : scope.namespace_;
    auto certs = client.list(controller::resources::Certificate, ns);
    if (!certs) return certs.error().with_context("listing Certificates");
    std::map<std::string, json> secrets;  // namespace/name → Secret
    k8s::ListOptions managed;
    managed.label_selector = "edgecert.io/managed=true";
    auto listed = client.list(k8s::resources::Secret, ns, managed);
    if (listed) {
        for (auto& o : listed->items) secrets[meta::key(o)] = std::move(o);
    } else {
        // Often RBAC: many may read Certificates but not Secrets. The status's notAfter still
        // tells expiry; serials (and so stored vs served) stay unknown.
        rep.warnings.push_back("cannot list Secrets (" + listed.error().message +
                               "): stored serials are unknown, notAfter comes from the status");
    }
    bool get_failed = false;
    for (const auto& c : certs->items) {
        const std::string sname = c.value("spec", json::object()).value("secretName", "");
        const std::string key = meta::key(meta::namespace_(c), sname);
        auto it = secrets.find(key);
        if (it == secrets.end() && !sname.empty() && listed) {
            // Not (yet) labelled as ours, e.g. adopted from cert-manager: ask for it directly.
            auto s = client.get(k8s::resources::Secret, meta::namespace_(c), sname);
            if (s) {
                it = secrets.emplace(key, std::move(*s)).first;
            } else if (s.error().code != ErrorCode::NotFound && !get_failed) {
                get_failed = true;
                rep.warnings.push_back("cannot read Secret " + key + ": " + s.error().message);
            }
        }
        rep.certificates.push_back(
            row_from_certificate(c, it == secrets.end() ? nullptr : &it->second));
    }
    if (auto is = client.list(controller::resources::Issuer, ns))
        for (const auto& o : is->items) rep.issuers.push_back(row_from_issuer(o, "Issuer"));
    else
        rep.warnings.push_back("cannot list Issuers: " + is.error().message);
    // Namespaced RBAC usually forbids listing ClusterIssuers: skipped without a warning.
    if (auto cis = client.list(controller::resources::ClusterIssuer, ""))
        for (const auto& o : cis->items) rep.issuers.push_back(row_from_issuer(o, "ClusterIssuer"));
    return rep;
}

Report report_from_caches(const k8s::Store* certificates, const k8s::Store* secrets,
                          const k8s::Store* issuers, const k8s::Store* clusterissuers,
                          SystemTime now) {
    Report rep;
    rep.source_kind = "controller";
    rep.source = "informer cache";
    rep.generated_at = now;
    if (certificates) {
        for (const auto& c : certificates->list()) {
            const std::string sname = c->value("spec", json::object()).value("secretName", "");
            k8s::ObjectPtr s = secrets ? secrets->get(meta::namespace_(*c), sname) : nullptr;
            rep.certificates.push_back(row_from_certificate(*c, s ? s.get() : nullptr));
        }
    }
    for (auto [store, kind] :
         {std::pair{issuers, "Issuer"}, std::pair{clusterissuers, "ClusterIssuer"}})
        if (store)
            for (const auto& o : store->list()) rep.issuers.push_back(row_from_issuer(*o, kind));
    std::sort(rep.issuers.begin(), rep.issuers.end(), [](const IssuerRow& a, const IssuerRow& b) {
        return std::tie(a.kind, a.namespace_, a.name) < std::tie(b.kind, b.namespace_, b.name);
    });
    return rep;
}

// ---- edgecert run -----------------------------------------------------------------------------

json to_json(const RunCertStatus& s) {
    json j = {{"certificate", s.name},   {"secretName", s.secret_name},
              {"dnsNames", s.dns_names}, {"issuer", s.issuer_name},
              {"ready", s.ready},        {"reason", s.reason},
              {"message", s.message},    {"failedIssuanceAttempts", s.failed_attempts}};
    put_time(j, "renewalTime", s.renewal_time);
    put_time(j, "lastFailureTime", s.last_failure_time);
    if (!s.failure_reason.empty()) j["lastFailureReason"] = s.failure_reason;
    if (!s.failure_message.empty()) j["lastFailureMessage"] = s.failure_message;
    put_time(j, "nextAttemptTime", s.next_attempt_time);
    return j;
}

Result<RunCertStatus> run_status_from_json(const json& j) {
    if (!j.is_object()) return Error(ErrorCode::InvalidConfig, "status.json is not an object");
    RunCertStatus s;
    s.name = str_field(j, "certificate");
    s.secret_name = str_field(j, "secretName");
    s.dns_names = strings(j, "dnsNames");
    s.issuer_name = str_field(j, "issuer");
    s.ready = str_field(j, "ready");
    if (s.ready.empty()) s.ready = "Unknown";
    s.reason = str_field(j, "reason");
    s.message = str_field(j, "message");
    s.renewal_time = time_field(j, "renewalTime");
    if (j.contains("failedIssuanceAttempts") && j["failedIssuanceAttempts"].is_number_integer())
        s.failed_attempts = j["failedIssuanceAttempts"].get<int>();
    s.last_failure_time = time_field(j, "lastFailureTime");
    s.failure_reason = str_field(j, "lastFailureReason");
    s.failure_message = str_field(j, "lastFailureMessage");
    s.next_attempt_time = time_field(j, "nextAttemptTime");
    return s;
}

CertRow row_from_run(const RunCertStatus* st, std::string_view cert_pem, const std::string& name,
                     const std::string& secret_name) {
    CertRow row;
    row.name = name;
    row.secret_name = secret_name;
    row.issuer_kind = "Issuer";
    if (st) {
        row.dns_names = st->dns_names;
        row.issuer_name = st->issuer_name;
        row.ready = st->ready;
        row.ready_reason = st->reason;
        row.ready_message = st->message;
        row.renewal_time = st->renewal_time;
        row.failed_attempts = st->failed_attempts;
        row.last_failure_time = st->last_failure_time;
        row.failure_reason = st->failure_reason;
        row.failure_message = st->failure_message;
        row.next_attempt_time = st->next_attempt_time;
    } else {
        row.ready_message = "no status recorded yet (edgecert run has not looked at it)";
    }
    fill_from_pem(row, cert_pem);
    return row;
}

Result<Report> collect_store(const std::string& root,
                             const std::optional<std::map<std::string, std::string>>& names,
                             SystemTime now) {
    Report rep;
    rep.source_kind = "store";
    rep.source = root;
    rep.generated_at = now;
    const std::string certs = root + "/certs";
    std::map<std::string, std::string> todo;  // name → folder
    if (names) {
        todo = *names;
    } else {
        DIR* d = opendir(certs.c_str());
        if (!d)
            return Error(
                ErrorCode::InvalidConfig,
                "store " + root + ": no certs/ folder (is this the store of `edgecert run`?)");
        while (dirent* e = readdir(d)) {
            std::string n = e->d_name;
            if (is_hidden(n)) continue;
            if (platform::file_exists(certs + "/" + n + "/tls.crt") ||
                platform::file_exists(certs + "/" + n + "/status.json"))
                todo[n] = n;
        }
        closedir(d);
    }
    for (const auto& [name, folder] : todo) {
        const std::string dir = certs + "/" + folder;
        std::optional<RunCertStatus> st;
        if (auto text = platform::read_file(dir + "/status.json", 1 << 20)) {
            try {
                auto parsed = run_status_from_json(json::parse(*text));
                if (parsed) st = std::move(*parsed);
            } catch (const json::exception&) {
                // A torn or foreign file: shown as "no status recorded".
            }
        }
        std::string crt;
        if (auto c = platform::read_file(dir + "/tls.crt")) crt = std::move(*c);
        std::string row_name = name;
        if (!names && st && !st->name.empty()) row_name = st->name;
        CertRow row = row_from_run(st ? &*st : nullptr, crt, row_name, folder);
        if (row.issuer_name.empty() || row.dns_names.empty()) {
            // Written with every issued certificate (dir_store.h), also by `edgecert issue`.
            if (auto m = platform::read_file(dir + "/certificate.json", 1 << 20)) {
                try {
                    json mj = json::parse(*m);
                    if (row.issuer_name.empty()) row.issuer_name = str_field(mj, "issuer");
                    if (row.dns_names.empty()) {
                        row.dns_names = strings(mj, "dnsNames");
                        for (auto& ip : strings(mj, "ipAddresses"))
                            row.dns_names.push_back(std::move(ip));
                    }
                } catch (const json::exception&) {
                }
            }
        }
        rep.certificates.push_back(std::move(row));
    }
    return rep;
}

// ---- terminators ------------------------------------------------------------------------------

std::vector<ServedEntry> served_entries(const tls::CertSnapshot& snap) {
    std::vector<ServedEntry> out;
    snap.for_each_entry([&](const std::string& name, const tls::CertEntry& e) {
        ServedEntry s;
        s.name = name;
        s.dns_names = e.dns_names;
        for (const auto& ip : e.ip_addresses) s.dns_names.push_back(ip.to_string());  // IP SANs too
        s.serial = normalize_serial(e.serial);
        s.not_before = std::chrono::system_clock::from_time_t(e.not_before);
        s.not_after = std::chrono::system_clock::from_time_t(e.not_after);
        if (e.leaf) {
            X509_up_ref(e.leaf.get());
            auto leaf = acme::Certificate::adopt(ossl::UniquePtr<X509>(e.leaf.get()));
            s.issuer = leaf.issuer_name();
            std::string digest = acme::sha256(leaf.to_der());
            for (size_t i = 0; i < digest.size(); ++i)
                s.fingerprint += (i ? ":" : "") + enc::hex(digest.substr(i, 1), true);
        }
        out.push_back(std::move(s));
    });
    std::sort(out.begin(), out.end(),
              [](const ServedEntry& a, const ServedEntry& b) { return a.name < b.name; });
    return out;
}

json served_to_json(const std::vector<ServedEntry>& entries) {
    json arr = json::array();
    for (const auto& e : entries) {
        json j = {{"name", e.name},
                  {"dnsNames", e.dns_names},
                  {"serial", e.serial},
                  {"issuer", e.issuer},
                  {"sha256Fingerprint", e.fingerprint}};
        put_time(j, "notBefore", e.not_before);
        put_time(j, "notAfter", e.not_after);
        arr.push_back(std::move(j));
    }
    return {{"certificates", arr}};
}

Result<std::vector<ServedEntry>> parse_served(std::string_view body) {
    try {
        json j = json::parse(body);
        if (!j.is_object() || !j.contains("certificates") || !j["certificates"].is_array())
            return Error(ErrorCode::Permanent, "not an edgecert /certificates document");
        std::vector<ServedEntry> out;
        for (const auto& e : j["certificates"]) {
            ServedEntry s;
            s.name = str_field(e, "name");
            s.dns_names = strings(e, "dnsNames");
            s.serial = normalize_serial(str_field(e, "serial"));
            s.not_before = time_field(e, "notBefore");
            s.not_after = time_field(e, "notAfter");
            s.issuer = str_field(e, "issuer");
            s.fingerprint = str_field(e, "sha256Fingerprint");
            out.push_back(std::move(s));
        }
        return out;
    } catch (const json::exception& e) {
        return Error(ErrorCode::Permanent, std::string("not JSON: ") + e.what());
    }
}

void attach_served(Report& r, const std::string& terminator,
                   const Result<std::vector<ServedEntry>>& entries) {
    TerminatorInfo info{terminator, entries ? "" : entries.error().message,
                        entries ? entries->size() : 0};
    r.terminators.push_back(info);
    for (auto& row : r.certificates) {
        Served s;
        s.terminator = terminator;
        if (!entries) {
            s.error = entries.error().message;
            row.served.push_back(std::move(s));
            continue;
        }
        const ServedEntry* hit = nullptr;
        const std::string qualified =
            row.namespace_.empty() ? row.secret_name : row.namespace_ + "/" + row.secret_name;
        for (const auto& e : *entries)
            if (e.name == qualified) hit = &e;
        if (!hit)
            for (const auto& e : *entries)
                if (e.name == row.secret_name) hit = &e;
        if (!hit && !row.dns_names.empty()) {
            for (const auto& e : *entries) {
                std::set<std::string> have(e.dns_names.begin(), e.dns_names.end());
                if (std::all_of(
                        row.dns_names.begin(), row.dns_names.end(),
                        [&](const std::string& n) { return have.count(ascii_lower(n)) > 0; })) {
                    hit = &e;
                    break;
                }
            }
        }
        if (hit) {
            s.found = true;
            s.entry = hit->name;
            s.serial = hit->serial;
            s.not_after = hit->not_after;
        }
        row.served.push_back(std::move(s));
    }
}

}  // namespace edgecert::app::status
