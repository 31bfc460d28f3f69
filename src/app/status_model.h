#pragma once
// The data behind `edgecert status` and the admin status page (docs/status.md): one row per
// certificate with what is stored, what the controller says about it, and what terminators serve.
// Collected from Kubernetes objects or an `edgecert run` store (status_sources.h), judged here
// (evaluate: problems, sort, exit code), rendered as a terminal table (status_table.h), JSON
// (to_json, a documented schema) or HTML (status_page.h). Pure: time is passed in.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/clock.h"

namespace edgecert::app::status {

// What one terminator serves for a certificate, from its admin /certificates endpoint.
struct Served {
    std::string terminator;  // the admin URL as given, or "built-in" (edgecert run)
    std::string error;       // non-empty: the terminator could not be asked
    bool found = false;      // it serves an entry for this certificate
    std::string entry;       // that entry's name (folder or Secret namespace/name)
    std::string serial;      // lowercase hex, as `openssl x509 -serial` without leading zeros
    std::optional<SystemTime> not_after;
};

// Ordered by severity, worst first: the order problems are listed and rows are sorted in.
enum class Problem {
    Expired,                // the stored certificate's notAfter has passed
    RenewalOverdue,         // renewalTime passed more than an hour ago and it was not renewed
    ServedMismatch,         // a terminator serves another serial than the one stored
    NotServed,              // stored and valid, but none of the given terminators serves it
    TerminatorUnreachable,  // a given terminator could not be asked
    NotReady,               // Ready is not True (includes "never issued")
    Failing,                // the last issuance attempt failed (failedIssuanceAttempts > 0)
};
std::string_view to_string(Problem p);

struct CertRow {
    std::string namespace_;  // "" off Kubernetes
    std::string name;
    std::string secret_name;  // Secret / folder under STORE/certs
    std::vector<std::string> dns_names;
    std::string issuer_name, issuer_kind;
    // The stored certificate (Secret tls.crt / STORE/certs/<secretName>/tls.crt); serial empty
    // when nothing (parseable) is stored.
    std::string serial;
    std::string issuer_dn;  // RFC 2253, of the stored leaf
    std::optional<SystemTime> not_before, not_after, renewal_time;
    std::string ready = "Unknown";  // True | False | Unknown
    std::string ready_reason, ready_message;
    bool overdue_condition = false;  // the controller set RenewalOverdue=True
    int failed_attempts = 0;
    std::optional<SystemTime> last_failure_time;
    std::string failure_reason, failure_message;
    std::optional<SystemTime> next_attempt_time;  // when known (edgecert run)
    std::vector<Served> served;                   // one per terminator consulted
    std::vector<Problem> problems;                // filled by evaluate()

    std::string key() const { return namespace_.empty() ? name : namespace_ + "/" + name; }
};

struct IssuerRow {
    std::string namespace_, name, kind;  // kind: Issuer | ClusterIssuer
    std::string ready = "Unknown", reason, message;
};

struct TerminatorInfo {
    std::string url;
    std::string error;  // non-empty: unreachable or not an edgecert admin endpoint
    size_t certificates = 0;
};

struct Report {
    std::string source_kind;  // kubernetes | store | run | controller
    std::string source;       // API server URL, store directory, ...
    SystemTime generated_at{};
    std::vector<CertRow> certificates;
    std::vector<IssuerRow> issuers;  // controller and Kubernetes sources only
    std::vector<TerminatorInfo> terminators;
    std::vector<std::string> warnings;  // what could not be read (e.g. Secrets: RBAC)
};

// Fills row.problems from the row's data and `now`.
void evaluate(CertRow& row, SystemTime now);
// evaluate() on every row, then sorts: rows with problems first (worst first), then by notAfter
// (soonest first; rows without one last), then by key.
void evaluate(Report& r);

// Exit codes of `edgecert status` (docs/status.md): the worst problem found decides.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;     // could not collect (API server, store unreadable)
inline constexpr int kExitUsage = 2;     // bad flags or configuration
inline constexpr int kExitNotReady = 3;  // not Ready, or the last issuance failed
inline constexpr int kExitServed = 4;    // served != stored, not served, terminator unreachable
inline constexpr int kExitOverdue = 5;   // renewal overdue
inline constexpr int kExitExpired = 6;   // a stored certificate has expired
int exit_code(const Report& r);          // after evaluate()

// "in 23d", "5h ago", "now": the largest unit that keeps two digits of precision readable
// (s < 1m, m < 1h, h < 48h, d < 2y, then y).
std::string relative_time(SystemTime t, SystemTime now);

// Serials compare as lower-case hex without leading zeros (what acme::Certificate::serial_hex
// gives; the terminator's CertEntry keeps BN_bn2hex's byte-aligned form, "0d..").
std::string normalize_serial(std::string_view hex);

// The JSON document (schemaVersion 1, docs/status.md): `edgecert status -o json` and the admin
// server's /status.json.
nlohmann::json to_json(const Report& r);

// The last failure in one line: "Failed x3 (5m ago): message"; "" when none.
std::string failure_summary(const CertRow& row, SystemTime now);
// Something is stored: a serial from tls.crt, or at least a notAfter from the Certificate status
// (when its Secret cannot be read).
bool has_stored(const CertRow& row);
// One terminator's answer for the row: ok, mismatch, not-served, unreachable, none (nothing
// stored, nothing served), unknown (served, but the stored serial could not be read).
std::string served_state(const Served& s, const CertRow& row);
// The row's worst: unreachable, mismatch, ok, unknown, not-served, none; "" without terminators.
std::string served_state(const CertRow& row);

}  // namespace edgecert::app::status
