#pragma once
// Issuer fallback: a Certificate names its primary issuer (spec.issuerRef, as in cert-manager)
// and, as an edgecert extension, fallbacks (spec.fallbackIssuerRefs, or the Ingress/Gateway
// annotation edgecert.io/fallback-issuers). When the primary keeps failing for reasons on the
// CA's side, the next issuer is used for that issuance; the next renewal starts at the primary
// again. docs/issuer-fallback.md describes it for users; this is the policy, pure and I/O-free,
// shared by `edgecert controller` (state in Certificate status.issuerFailures) and `edgecert run`
// (state in memory).
//
//   classify_failure()  which failures are the CA's (fall back) and which are ours (report)
//   choose_issuer()     which issuer the next attempt uses, and not before when
//   record_failure()    per-issuer counters, backoff, and whether the fallback rule fired
//   record_success()    ends the run: only issuers still inside their own backoff are remembered
//
// One record per issuer that failed during the current issuance ("run": from the first failed
// attempt to the next success). Each issuer has its own backoff (its own failure count), so a
// fallback's failures never lengthen the primary's wait and vice versa.
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/shim.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"
#include "store/cert_store.h"

namespace edgecert::controller {

// The annotation on Ingress/Gateway: "ClusterIssuer/zerossl,Issuer/internal-acme" (kind required).
inline constexpr std::string_view kAnnFallbackIssuers = "edgecert.io/fallback-issuers";

// When to leave an issuer for the next one (spec.fallbackPolicy; controller flags give the
// defaults). The defaults favour the primary: a renewal starts a third of the lifetime before
// expiry, so there is time to wait out a short outage, and a CA that is down for an hour (or
// rate-limits us for longer than that) is worth leaving.
struct FallbackPolicy {
    int after_attempts = 3;                      // CA-side failures in a row with one issuer
    std::chrono::seconds after_duration{3600};   // or failing (CA-side) for this long
    std::chrono::seconds max_retry_after{3600};  // rateLimited with a longer Retry-After: at once
    bool operator==(const FallbackPolicy&) const = default;
};

// spec.fallbackPolicy as written: unset fields take the controller's defaults.
struct FallbackPolicySpec {
    std::optional<int> after_attempts;
    std::optional<std::chrono::seconds> after_duration, max_retry_after;
    FallbackPolicy with_defaults(const FallbackPolicy& defaults) const;
    bool operator==(const FallbackPolicySpec&) const = default;
};

// spec.fallbackPolicy {afterAttempts: 1.., afterDuration: Go duration > 0, maxRetryAfter: Go
// duration >= 0}. InvalidConfig naming the field.
Result<FallbackPolicySpec> parse_fallback_policy(const nlohmann::json& j);
// spec.fallbackIssuerRefs: [{name, kind (Issuer default | ClusterIssuer), group}]. `primary` is
// spec.issuerRef: naming it again, or one issuer twice, is InvalidConfig.
Result<std::vector<IssuerRef>> parse_fallback_issuer_refs(const nlohmann::json& j,
                                                          const IssuerRef& primary);
// The annotation's value: comma-separated Kind/name, Kind = Issuer | ClusterIssuer.
Result<std::vector<IssuerRef>> parse_fallback_annotation(std::string_view value);

// "ClusterIssuer zerossl": how messages and Events name an issuer.
std::string describe(const IssuerRef& r);
// "ClusterIssuer/zerossl": how the pending-order record and the annotation name one.
std::string ref_key(const IssuerRef& r);
nlohmann::json to_json(const IssuerRef& r);  // {name, kind, group}: status.issuerRef's shape

// ---- which failures fall back -----------------------------------------------------------------

// Where an attempt failed. Local: our side of the attempt (store writes, publishing challenges
// to the terminators, DNS updates, keys, account Secrets): another CA would not help.
enum class FailureOrigin { Local, Ca };

struct FailureClass {
    bool ca_side = false;  // counts toward the fallback rule
    // Stable token for status, Events and the metric's `reason` label: serverInternal,
    // serverError, unreachable, timeout, rateLimited, badNonce, orderNotReady, unexpectedResponse
    // (CA side); the RFC 8555 §6.7 type's short name (unauthorized, caa, ...), badConfig, local.
    std::string reason;
};
// The table, with the reasoning, is in docs/issuer-fallback.md ("Which failures fall back").
FailureClass classify_failure(const Error& e, FailureOrigin origin);

// ---- per-issuer state ---------------------------------------------------------------------------

struct IssuerFailures {
    IssuerRef issuer;
    int failed_attempts = 0;                  // in a row, any cause: this issuer's backoff exponent
    int ca_failures = 0;                      // in a row, CA-side only: the fallback rule's count
    std::optional<SystemTime> failing_since;  // the first of those CA-side failures
    std::optional<SystemTime> next_attempt;   // its backoff / Retry-After: not before
    std::string last_reason;                  // FailureClass::reason
    bool exhausted = false;  // the rule fired: skipped while next_attempt lies ahead
    bool operator==(const IssuerFailures&) const = default;
};

struct FallbackState {
    std::vector<IssuerFailures> issuers;
    const IssuerFailures* find(const IssuerRef& r) const;
    bool operator==(const FallbackState&) const = default;
};

// Certificate status.issuerFailures (times in RFC 3339; unreadable entries are skipped).
nlohmann::json to_json(const FallbackState& s);
FallbackState fallback_state_from_json(const nlohmann::json& j);

// ---- the decisions ------------------------------------------------------------------------------

struct IssuerChoice {
    size_t index = 0;         // into the chain (0 = primary)
    SystemTime not_before{};  // now, or the end of that issuer's backoff
    bool pinned = false;      // an order of this issuer is in flight
};

// The issuer for the next attempt. `chain` = primary then fallbacks. An order in flight pins its
// issuer (`pinned`): an order a CA has created is finished there, never abandoned for another CA.
// Otherwise the candidates are the issuers up to the first one whose rule has not fired (the
// current one), and the one that may be tried first wins, the primary on a tie: an exhausted
// primary is tried again as soon as its own backoff ends. When every issuer is exhausted, each is
// tried again when its backoff ends.
IssuerChoice choose_issuer(const std::vector<IssuerRef>& chain, const FallbackState& st,
                           std::optional<size_t> pinned, SystemTime now);

// The chain entry an in-flight order belongs to: the issuer the record names, or for a record
// written before issuers were recorded, the first issuer whose ACME server is the record's
// (`servers[i]` is chain[i]'s directory URL, "" when not ACME). nullopt: none (it is dropped).
std::optional<size_t> pinned_issuer(const std::vector<IssuerRef>& chain,
                                    const std::vector<std::string>& servers,
                                    const store::PendingOrder& pending);

// How long to wait after an issuer's n-th failure in a row (the caller's backoff rule).
using BackoffFn = std::function<std::chrono::seconds(int failed_attempts, const Error& last)>;

struct FailureOutcome {
    bool fell_back = false;  // the rule fired for this issuer and the next attempt uses another
    std::string why;         // "failed 3 times in a row", ... when the rule fired
    IssuerChoice next;       // the next attempt
};

// Records a failed attempt with chain[index] and decides what comes next. `pinned`: the issuer
// whose order is still in flight after the failure (pinned_issuer() on the record as it is now):
// the rule may fire, but that order is finished first.
FailureOutcome record_failure(FallbackState& st, const std::vector<IssuerRef>& chain, size_t index,
                              const Error& e, const FailureClass& c, const FallbackPolicy& policy,
                              SystemTime now, const BackoffFn& backoff,
                              std::optional<size_t> pinned = std::nullopt);

// Drops what no longer matters: issuers no longer in the chain, and every record but those of
// exhausted issuers still inside their backoff (respected by the next run). Called when a run
// ends (success, or an up-to-date certificate) and before the first attempt of a new run.
void prune(FallbackState& st, const std::vector<IssuerRef>& chain, SystemTime now);
// A success with chain[index]: its record goes, then prune().
void record_success(FallbackState& st, const std::vector<IssuerRef>& chain, size_t index,
                    SystemTime now);

// "1h", "90s", "2h30m": a duration as Go prints it (whole seconds), for messages.
std::string format_duration(std::chrono::seconds d);

}  // namespace edgecert::controller
