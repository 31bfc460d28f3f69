#include "app/status_model.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "controller/renewal.h"

namespace edgecert::app::status {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

json time_or_null(const std::optional<SystemTime>& t) {
    return t ? json(rfc3339(*t)) : json(nullptr);
}
json str_or_null(const std::string& s) {
    return s.empty() ? json(nullptr) : json(s);
}

// Smaller is worse.
int severity(Problem p) {
    return static_cast<int>(p);
}

}  // namespace

std::string_view to_string(Problem p) {
    switch (p) {
        case Problem::Expired:
            return "Expired";
        case Problem::RenewalOverdue:
            return "RenewalOverdue";
        case Problem::ServedMismatch:
            return "ServedMismatch";
        case Problem::NotServed:
            return "NotServed";
        case Problem::TerminatorUnreachable:
            return "TerminatorUnreachable";
        case Problem::NotReady:
            return "NotReady";
        case Problem::Failing:
            return "Failing";
    }
    return "Unknown";
}

bool has_stored(const CertRow& row) {
    return !row.serial.empty() || row.not_after.has_value();
}

std::string served_state(const Served& s, const CertRow& row) {
    if (!s.error.empty()) return "unreachable";
    if (!s.found) return has_stored(row) ? "not-served" : "none";
    // No serial but a notAfter: the Secret could not be read, so there is nothing to compare.
    if (row.serial.empty()) return has_stored(row) ? "unknown" : "mismatch";
    return s.serial == row.serial ? "ok" : "mismatch";
}

void evaluate(CertRow& row, SystemTime now) {
    row.problems.clear();
    auto add = [&](Problem p) { row.problems.push_back(p); };
    const bool stored = has_stored(row);
    const bool expired = stored && row.not_after && *row.not_after <= now;
    if (expired) add(Problem::Expired);
    if (stored && (row.overdue_condition ||
                   (row.renewal_time && controller::is_overdue(*row.renewal_time, now))))
        add(Problem::RenewalOverdue);
    if (!row.served.empty()) {
        bool any_found = false, mismatch = false, unreachable = false;
        for (const auto& s : row.served) {
            const std::string st = served_state(s, row);
            unreachable |= st == "unreachable";
            mismatch |= st == "mismatch";
            any_found |= s.found;
        }
        if (mismatch) add(Problem::ServedMismatch);
        // One terminator serving it is enough: several may split the certificates between them.
        if (stored && !expired && !any_found && !unreachable) add(Problem::NotServed);
        if (unreachable) add(Problem::TerminatorUnreachable);
    }
    if (row.ready != "True") add(Problem::NotReady);
    if (row.failed_attempts > 0) add(Problem::Failing);
}

void evaluate(Report& r) {
    for (auto& c : r.certificates) evaluate(c, r.generated_at);
    auto worst = [](const CertRow& c) {
        return c.problems.empty() ? 1000 : severity(c.problems.front());
    };
    std::stable_sort(r.certificates.begin(), r.certificates.end(),
                     [&](const CertRow& a, const CertRow& b) {
                         int wa = worst(a), wb = worst(b);
                         if (wa != wb) return wa < wb;
                         if (a.not_after.has_value() != b.not_after.has_value())
                             return a.not_after.has_value();
                         if (a.not_after && *a.not_after != *b.not_after)
                             return *a.not_after < *b.not_after;
                         return a.key() < b.key();
                     });
}

int exit_code(const Report& r) {
    int code = kExitOk;
    for (const auto& c : r.certificates) {
        for (Problem p : c.problems) {
            int e = kExitOk;
            switch (p) {
                case Problem::Expired:
                    e = kExitExpired;
                    break;
                case Problem::RenewalOverdue:
                    e = kExitOverdue;
                    break;
                case Problem::ServedMismatch:
                case Problem::NotServed:
                case Problem::TerminatorUnreachable:
                    e = kExitServed;
                    break;
                case Problem::NotReady:
                case Problem::Failing:
                    e = kExitNotReady;
                    break;
            }
            code = std::max(code, e);
        }
    }
    return code;
}

std::string normalize_serial(std::string_view hex) {
    std::string out;
    for (char c : hex) {
        if (out.empty() && c == '0') continue;
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out.empty() && !hex.empty() ? "0" : out;
}

std::string relative_time(SystemTime t, SystemTime now) {
    auto d = std::chrono::duration_cast<seconds>(t - now).count();
    if (d == 0) return "now";
    const long long a = std::llabs(d);
    std::string n;
    if (a < 60)
        n = std::to_string(a) + "s";
    else if (a < 3600)
        n = std::to_string(a / 60) + "m";
    else if (a < 48 * 3600)
        n = std::to_string(a / 3600) + "h";
    else if (a < 2 * 365 * 86400LL)
        n = std::to_string(a / 86400) + "d";
    else
        n = std::to_string(a / (365 * 86400LL)) + "y";
    return d > 0 ? "in " + n : n + " ago";
}

std::string failure_summary(const CertRow& row, SystemTime now) {
    if (row.failed_attempts <= 0 && row.failure_reason.empty() && row.failure_message.empty())
        return {};
    std::string s = row.failure_reason.empty() ? "Failed" : row.failure_reason;
    if (row.failed_attempts > 1) s += " x" + std::to_string(row.failed_attempts);
    if (row.last_failure_time) s += " (" + relative_time(*row.last_failure_time, now) + ")";
    if (!row.failure_message.empty()) s += ": " + row.failure_message;
    return s;
}

std::string served_state(const CertRow& row) {
    if (row.served.empty()) return {};
    std::vector<std::string> states;
    for (const auto& s : row.served) states.push_back(served_state(s, row));
    for (const char* st : {"unreachable", "mismatch", "ok", "unknown"})
        if (std::find(states.begin(), states.end(), st) != states.end()) return st;
    return has_stored(row) ? "not-served" : "none";
}

json to_json(const Report& r) {
    json certs = json::array();
    for (const auto& c : r.certificates) {
        json served = json::array();
        for (const auto& s : c.served)
            served.push_back({{"terminator", s.terminator},
                              {"state", served_state(s, c)},
                              {"entry", str_or_null(s.entry)},
                              {"serial", str_or_null(s.serial)},
                              {"notAfter", time_or_null(s.not_after)},
                              {"error", str_or_null(s.error)}});
        json problems = json::array();
        for (Problem p : c.problems) problems.push_back(std::string(to_string(p)));
        json last_failure = nullptr;
        if (c.failed_attempts > 0 || c.last_failure_time || !c.failure_reason.empty())
            last_failure = {{"time", time_or_null(c.last_failure_time)},
                            {"reason", str_or_null(c.failure_reason)},
                            {"message", str_or_null(c.failure_message)}};
        std::string st = served_state(c);
        certs.push_back({{"namespace", c.namespace_},
                         {"name", c.name},
                         {"secretName", c.secret_name},
                         {"dnsNames", c.dns_names},
                         {"issuerRef", {{"name", c.issuer_name}, {"kind", c.issuer_kind}}},
                         {"serial", str_or_null(c.serial)},
                         {"issuerDN", str_or_null(c.issuer_dn)},
                         {"notBefore", time_or_null(c.not_before)},
                         {"notAfter", time_or_null(c.not_after)},
                         {"renewalTime", time_or_null(c.renewal_time)},
                         {"ready",
                          {{"status", c.ready},
                           {"reason", str_or_null(c.ready_reason)},
                           {"message", str_or_null(c.ready_message)}}},
                         {"failedIssuanceAttempts", c.failed_attempts},
                         {"lastFailure", last_failure},
                         {"nextAttemptTime", time_or_null(c.next_attempt_time)},
                         {"served", served},
                         {"servedState", st.empty() ? json(nullptr) : json(st)},
                         {"problems", problems}});
    }
    json issuers = json::array();
    for (const auto& i : r.issuers)
        issuers.push_back({{"namespace", i.namespace_},
                           {"name", i.name},
                           {"kind", i.kind},
                           {"ready",
                            {{"status", i.ready},
                             {"reason", str_or_null(i.reason)},
                             {"message", str_or_null(i.message)}}}});
    json terms = json::array();
    for (const auto& t : r.terminators)
        terms.push_back({{"url", t.url},
                         {"reachable", t.error.empty()},
                         {"error", str_or_null(t.error)},
                         {"certificates", t.certificates}});
    size_t with_problems = 0;
    std::optional<Problem> worst;
    for (const auto& c : r.certificates) {
        if (c.problems.empty()) continue;
        ++with_problems;
        if (!worst || severity(c.problems.front()) < severity(*worst)) worst = c.problems.front();
    }
    return {{"schemaVersion", 1},
            {"generatedAt", rfc3339(r.generated_at)},
            {"source", {{"kind", r.source_kind}, {"location", r.source}}},
            {"summary",
             {{"certificates", r.certificates.size()},
              {"withProblems", with_problems},
              {"worstProblem", worst ? json(std::string(to_string(*worst))) : json(nullptr)},
              {"exitCode", exit_code(r)}}},
            {"certificates", certs},
            {"issuers", issuers},
            {"terminators", terms},
            {"warnings", r.warnings}};
}

}  // namespace edgecert::app::status
