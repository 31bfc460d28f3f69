#pragma once
// Where status rows come from (status_model.h):
//   - Kubernetes: a Certificate object (spec + status conditions) and its Secret's tls.crt;
//     Issuers/ClusterIssuers by their Ready condition. Used by `edgecert status --kubeconfig`
//     (objects listed from the API) and by the controller's status page (its informer cache).
//   - An `edgecert run` store: STORE/certs/<secretName>/{tls.crt,certificate.json,status.json};
//     status.json is what `edgecert run` persists about its controller (RunCertStatus).
//   - Terminators: the admin endpoint GET /certificates (ServedEntry list), matched to rows.
// Only certificates are read from Secrets and stores; key material is never opened.
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/status_model.h"
#include "edgecert/base/result.h"

namespace edgecert::k8s {
class Client;
class Store;
}  // namespace edgecert::k8s
namespace edgecert::tls {
class CertSnapshot;
}

namespace edgecert::app::status {

// ---- stored certificates --------------------------------------------------------------------

// Fills serial, notBefore, notAfter, issuer DN (and dnsNames when the row has none) from the
// first certificate of a tls.crt. Unparseable: the row keeps no serial and says why in
// ready_message when nothing else explains it.
void fill_from_pem(CertRow& row, std::string_view cert_pem);

// ---- Kubernetes -------------------------------------------------------------------------------

// `secret` may be null (not found / not readable).
CertRow row_from_certificate(const nlohmann::json& certificate, const nlohmann::json* secret);
IssuerRow row_from_issuer(const nlohmann::json& issuer, std::string kind);

struct K8sScope {
    std::string namespace_;  // "" with all_namespaces
    bool all_namespaces = false;
};
// Lists Certificates (and their Secrets: one list of edgecert.io/managed Secrets, then a GET for
// any Secret that list missed), Issuers and ClusterIssuers (a Forbidden ClusterIssuer list is
// skipped). Errors of the Certificate list are returned; others become row messages.
Result<Report> collect_kubernetes(k8s::Client& client, const K8sScope& scope, SystemTime now);

// The controller's page: the same rows from informer caches (any pointer may be null).
Report report_from_caches(const k8s::Store* certificates, const k8s::Store* secrets,
                          const k8s::Store* issuers, const k8s::Store* clusterissuers,
                          SystemTime now);

// ---- edgecert run -----------------------------------------------------------------------------

// What `edgecert run` knows about one certificate beyond the certificate itself; persisted as
// STORE/certs/<secretName>/status.json (rewritten atomically when it changes).
struct RunCertStatus {
    std::string name, secret_name;
    std::vector<std::string> dns_names;
    std::string issuer_name;
    std::string ready = "Unknown", reason, message;
    std::optional<SystemTime> renewal_time;
    int failed_attempts = 0;
    std::optional<SystemTime> last_failure_time;
    std::string failure_reason, failure_message;
    std::optional<SystemTime> next_attempt_time;
    bool operator==(const RunCertStatus&) const = default;
};
nlohmann::json to_json(const RunCertStatus& s);
Result<RunCertStatus> run_status_from_json(const nlohmann::json& j);

// A row from what run knows (status may be null: nothing recorded yet) and the stored tls.crt
// (empty: none).
CertRow row_from_run(const RunCertStatus* status, std::string_view cert_pem,
                     const std::string& name, const std::string& secret_name);

// `edgecert status --store DIR`: every folder under DIR/certs. With `names` (from --config:
// certificate name → secretName) exactly those, including ones never issued.
Result<Report> collect_store(const std::string& root,
                             const std::optional<std::map<std::string, std::string>>& names,
                             SystemTime now);

// ---- terminators ------------------------------------------------------------------------------

// One certificate a terminator serves (GET /certificates on its admin port). Never key material.
struct ServedEntry {
    std::string name;  // folder, or Secret namespace/name
    std::vector<std::string> dns_names;
    std::string serial;
    std::optional<SystemTime> not_before, not_after;
    std::string issuer;       // RFC 2253 issuer DN of the leaf
    std::string fingerprint;  // SHA-256 of the leaf's DER, colon-separated upper-case hex
};
// Every entry of a terminator's current snapshot (what is on the wire), by name.
std::vector<ServedEntry> served_entries(const tls::CertSnapshot& snap);
nlohmann::json served_to_json(const std::vector<ServedEntry>& entries);
Result<std::vector<ServedEntry>> parse_served(std::string_view body);

// Adds one Served per row from a terminator's answer (`entries` is an Error when it could not be
// asked). A row matches the entry named "<namespace>/<secretName>" or "<secretName>", else the
// entry whose names cover all of the row's dnsNames (what a client asking for them gets).
void attach_served(Report& r, const std::string& terminator,
                   const Result<std::vector<ServedEntry>>& entries);

}  // namespace edgecert::app::status
