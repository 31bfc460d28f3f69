#include "controller/fallback.h"

#include <algorithm>

#include "controller/renewal.h"
#include "edgecert/acme/problem.h"
#include "edgecert/k8s/object.h"

namespace edgecert::controller {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

Error bad(std::string msg) {
    return Error(ErrorCode::InvalidConfig, std::move(msg));
}

Result<seconds> duration_field(const json& j, const char* key, bool allow_zero) {
    const std::string where = std::string("spec.fallbackPolicy.") + key;
    if (!j[key].is_string()) return bad(where + " must be a duration such as \"1h\"");
    auto d = parse_go_duration(j[key].get<std::string>());
    if (!d) return bad(where + ": " + d.error().message);
    auto s = std::chrono::duration_cast<seconds>(*d);
    if (s.count() < 0 || (!allow_zero && s.count() == 0))
        return bad(where + " must be " + (allow_zero ? "zero or more" : "at least 1s"));
    return s;
}

bool same(const IssuerRef& a, const IssuerRef& b) {
    return a.name == b.name && a.kind == b.kind;
}

std::optional<SystemTime> time_field(const json& j, const char* key) {
    if (!j.contains(key) || !j[key].is_string()) return std::nullopt;
    auto t = k8s::parse_time(j[key].get<std::string>());
    if (!t) return std::nullopt;
    return *t;
}

}  // namespace

FallbackPolicy FallbackPolicySpec::with_defaults(const FallbackPolicy& d) const {
    return FallbackPolicy{.after_attempts = after_attempts.value_or(d.after_attempts),
                          .after_duration = after_duration.value_or(d.after_duration),
                          .max_retry_after = max_retry_after.value_or(d.max_retry_after)};
}

Result<FallbackPolicySpec> parse_fallback_policy(const json& j) {
    FallbackPolicySpec p;
    if (j.is_null()) return p;
    if (!j.is_object()) return bad("spec.fallbackPolicy must be an object");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "afterAttempts" && it.key() != "afterDuration" &&
            it.key() != "maxRetryAfter")
            return bad("spec.fallbackPolicy: unknown field '" + it.key() +
                       "' (known: afterAttempts, afterDuration, maxRetryAfter)");
    if (j.contains("afterAttempts")) {
        if (!j["afterAttempts"].is_number_integer() || j["afterAttempts"].get<int64_t>() < 1 ||
            j["afterAttempts"].get<int64_t>() > 1000)
            return bad("spec.fallbackPolicy.afterAttempts must be an integer in 1..1000");
        p.after_attempts = j["afterAttempts"].get<int>();
    }
    if (j.contains("afterDuration")) {
        EC_TRY_ASSIGN(p.after_duration, duration_field(j, "afterDuration", false));
    }
    if (j.contains("maxRetryAfter")) {
        EC_TRY_ASSIGN(p.max_retry_after, duration_field(j, "maxRetryAfter", true));
    }
    return p;
}

Result<std::vector<IssuerRef>> parse_fallback_issuer_refs(const json& j, const IssuerRef& primary) {
    std::vector<IssuerRef> out;
    if (j.is_null()) return out;
    if (!j.is_array()) return bad("spec.fallbackIssuerRefs must be a list of {name, kind, group}");
    for (size_t i = 0; i < j.size(); ++i) {
        const std::string where = "spec.fallbackIssuerRefs[" + std::to_string(i) + "]";
        const json& e = j[i];
        if (!e.is_object() || !e.contains("name") || !e["name"].is_string() ||
            e["name"].get<std::string>().empty())
            return bad(where + ".name is required");
        IssuerRef r{e["name"].get<std::string>(), e.value("kind", "Issuer"),
                    e.value("group", std::string(kGroup))};
        if (auto why = invalid_object_name_reason(r.name))
            return bad(where + ".name '" + r.name + "': " + *why);
        if (r.kind != "Issuer" && r.kind != "ClusterIssuer")
            return bad(where + ".kind must be Issuer or ClusterIssuer");
        if (!r.group.empty() && r.group != kGroup && r.group != "cert-manager.io")
            return bad(where + ".group '" + r.group + "' is not edgecert.io");
        r.group = std::string(kGroup);
        if (same(r, primary))
            return bad(where + " names spec.issuerRef again (" + describe(r) + ")");
        for (const auto& o : out)
            if (same(o, r)) return bad(where + " names " + describe(r) + " twice");
        out.push_back(std::move(r));
    }
    return out;
}

Result<std::vector<IssuerRef>> parse_fallback_annotation(std::string_view value) {
    std::vector<IssuerRef> out;
    const std::string ann(kAnnFallbackIssuers);
    size_t start = 0;
    while (start <= value.size()) {
        size_t comma = value.find(',', start);
        std::string_view item = value.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        const std::string shown = "\"" + std::string(item) + "\"";
        auto slash = item.find('/');
        if (slash == std::string_view::npos)
            return bad("annotation " + ann + ": " + shown +
                       " must be Issuer/<name> or ClusterIssuer/<name>");
        IssuerRef r{std::string(item.substr(slash + 1)), std::string(item.substr(0, slash)),
                    std::string(kGroup)};
        if (r.kind != "Issuer" && r.kind != "ClusterIssuer")
            return bad("annotation " + ann + ": kind in " + shown +
                       " must be Issuer or ClusterIssuer");
        if (auto why = invalid_object_name_reason(r.name))
            return bad("annotation " + ann + ": " + shown + ": " + *why);
        for (const auto& o : out)
            if (same(o, r)) return bad("annotation " + ann + " names " + describe(r) + " twice");
        out.push_back(std::move(r));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return out;
}

std::string describe(const IssuerRef& r) {
    return r.kind + " " + r.name;
}
std::string ref_key(const IssuerRef& r) {
    return r.kind + "/" + r.name;
}
json to_json(const IssuerRef& r) {
    return {{"name", r.name},
            {"kind", r.kind},
            {"group", r.group.empty() ? std::string(kGroup) : r.group}};
}

FailureClass classify_failure(const Error& e, FailureOrigin origin) {
    namespace p = acme::problem;
    if (origin == FailureOrigin::Local) return {false, "local"};
    const std::string_view type = e.type;
    const bool acme_type = type.starts_with(p::kPrefix);
    const std::string short_type =
        acme_type ? std::string(type.substr(p::kPrefix.size())) : std::string();
    // The CA's own failures: another CA can do the job.
    if (type == p::kServerInternal) return {true, "serverInternal"};
    if (e.http_status >= 500) return {true, "serverError"};
    if (e.code == ErrorCode::RateLimited || type == p::kRateLimited) return {true, "rateLimited"};
    if (e.code == ErrorCode::BadNonce || type == p::kBadNonce) return {true, "badNonce"};
    if (type == p::kOrderNotReady)
        return {true, "orderNotReady"};  // we finalize only once it said ready
    // Every other problem type is about the request, the account or the names: another CA would
    // be asked the same thing (or should not be asked behind the operator's back).
    if (acme_type) return {false, short_type};
    if (e.code == ErrorCode::InvalidConfig) return {false, "badConfig"};
    if (e.code == ErrorCode::Transient) {
        // No HTTP response at all: connect, DNS or TLS failure towards the CA, or a timeout.
        if (e.http_status == 0) return {true, e.type == "timeout" ? "timeout" : "unreachable"};
        // An answer that is not a problem document (a malformed body, a poll that never settled).
        return {true, "unexpectedResponse"};
    }
    if (e.code == ErrorCode::Unauthorized || e.code == ErrorCode::Forbidden)
        return {false, "unauthorized"};
    return {false, e.http_status ? "http" + std::to_string(e.http_status) : "failed"};
}

const IssuerFailures* FallbackState::find(const IssuerRef& r) const {
    for (const auto& f : issuers)
        if (same(f.issuer, r)) return &f;
    return nullptr;
}

json to_json(const FallbackState& s) {
    json a = json::array();
    for (const auto& f : s.issuers) {
        json e = to_json(f.issuer);
        e["failedAttempts"] = f.failed_attempts;
        if (f.ca_failures) e["caFailures"] = f.ca_failures;
        if (f.failing_since) e["failingSince"] = rfc3339(*f.failing_since);
        if (f.next_attempt) e["nextAttemptTime"] = rfc3339(*f.next_attempt);
        if (!f.last_reason.empty()) e["lastFailureReason"] = f.last_reason;
        if (f.exhausted) e["exhausted"] = true;
        a.push_back(std::move(e));
    }
    return a;
}

FallbackState fallback_state_from_json(const json& j) {
    FallbackState s;
    if (!j.is_array()) return s;
    for (const auto& e : j) {
        if (!e.is_object() || !e.contains("name") || !e["name"].is_string()) continue;
        IssuerFailures f;
        f.issuer = IssuerRef{e["name"].get<std::string>(), e.value("kind", "Issuer"),
                             e.value("group", std::string(kGroup))};
        f.failed_attempts = e.value("failedAttempts", 0);
        f.ca_failures = e.value("caFailures", 0);
        f.failing_since = time_field(e, "failingSince");
        f.next_attempt = time_field(e, "nextAttemptTime");
        f.last_reason = e.value("lastFailureReason", "");
        f.exhausted = e.value("exhausted", false);
        s.issuers.push_back(std::move(f));
    }
    return s;
}

IssuerChoice choose_issuer(const std::vector<IssuerRef>& chain, const FallbackState& st,
                           std::optional<size_t> pinned, SystemTime now) {
    auto ready_at = [&](size_t i) {
        const IssuerFailures* f = st.find(chain[i]);
        return f && f->next_attempt && *f->next_attempt > now ? *f->next_attempt : now;
    };
    if (pinned && *pinned < chain.size()) return {*pinned, ready_at(*pinned), true};
    size_t last = chain.empty() ? 0 : chain.size() - 1;
    for (size_t i = 0; i < chain.size(); ++i) {
        const IssuerFailures* f = st.find(chain[i]);
        if (!f || !f->exhausted) {
            last = i;
            break;
        }
    }
    IssuerChoice best{0, chain.empty() ? now : ready_at(0), false};
    for (size_t i = 1; i <= last && i < chain.size(); ++i)
        if (ready_at(i) < best.not_before) best = {i, ready_at(i), false};
    return best;
}

std::optional<size_t> pinned_issuer(const std::vector<IssuerRef>& chain,
                                    const std::vector<std::string>& servers,
                                    const store::PendingOrder& pending) {
    for (size_t i = 0; i < chain.size(); ++i) {
        const bool server_ok = i < servers.size() && servers[i] == pending.server;
        if (!pending.issuer.empty() ? pending.issuer == ref_key(chain[i]) && server_ok : server_ok)
            return i;
    }
    return std::nullopt;
}

FailureOutcome record_failure(FallbackState& st, const std::vector<IssuerRef>& chain, size_t index,
                              const Error& e, const FailureClass& c, const FallbackPolicy& policy,
                              SystemTime now, const BackoffFn& backoff,
                              std::optional<size_t> pinned) {
    FailureOutcome out;
    if (index >= chain.size()) return out;
    auto it = std::find_if(st.issuers.begin(), st.issuers.end(),
                           [&](const IssuerFailures& f) { return same(f.issuer, chain[index]); });
    if (it == st.issuers.end()) {
        st.issuers.push_back(IssuerFailures{.issuer = chain[index]});
        it = std::prev(st.issuers.end());
    }
    IssuerFailures& f = *it;
    f.failed_attempts++;
    f.last_reason = c.reason;
    f.next_attempt = now + backoff(f.failed_attempts, e);
    if (c.ca_side) {
        f.ca_failures++;
        if (!f.failing_since) f.failing_since = now;
        if (chain.size() > 1) {
            if (e.code == ErrorCode::RateLimited && e.retry_after &&
                *e.retry_after > policy.max_retry_after)
                out.why = "rate limited for " + format_duration(*e.retry_after) +
                          " (Retry-After longer than " + format_duration(policy.max_retry_after) +
                          ")";
            else if (f.ca_failures >= policy.after_attempts)
                out.why = "failed " + std::to_string(f.ca_failures) +
                          (f.ca_failures == 1 ? " time" : " times") + " in a row";
            else if (now - *f.failing_since >= policy.after_duration)
                out.why =
                    "failing for " +
                    format_duration(std::chrono::duration_cast<seconds>(now - *f.failing_since));
            if (!out.why.empty()) f.exhausted = true;
        }
    }
    out.next = choose_issuer(chain, st, pinned, now);
    out.fell_back = f.exhausted && !out.why.empty() && out.next.index != index;
    return out;
}

void prune(FallbackState& st, const std::vector<IssuerRef>& chain, SystemTime now) {
    std::erase_if(st.issuers, [&](const IssuerFailures& f) {
        const bool listed = std::any_of(chain.begin(), chain.end(),
                                        [&](const IssuerRef& r) { return same(r, f.issuer); });
        return !listed || !f.exhausted || !f.next_attempt || *f.next_attempt <= now;
    });
}

void record_success(FallbackState& st, const std::vector<IssuerRef>& chain, size_t index,
                    SystemTime now) {
    if (index < chain.size())
        std::erase_if(st.issuers,
                      [&](const IssuerFailures& f) { return same(f.issuer, chain[index]); });
    prune(st, chain, now);
}

std::string format_duration(seconds d) {
    if (d.count() <= 0) return "0s";
    int64_t s = d.count();
    std::string out;
    if (s >= 3600) out += std::to_string(s / 3600) + "h";
    if (s % 3600 >= 60) out += std::to_string(s % 3600 / 60) + "m";
    if (s % 60 || out.empty()) out += std::to_string(s % 60) + "s";
    return out;
}

}  // namespace edgecert::controller
