#pragma once
// Renewal policy: when to renew a certificate, how long to wait after a failed issuance, and
// when a certificate counts as overdue. Pure: time and randomness are passed in.
//
// Renewal time, in order:
//   1. spec.renewBefore / spec.renewBeforePercentage (mutually exclusive, as the CRD says):
//      renewalTime = notAfter - renewBefore, or notAfter - lifetime * pct / 100. A renewBefore
//      not shorter than the lifetime would renew at once, forever: like cert-manager it falls
//      back to the default rule, with a warning.
//   2. else an ARI suggested window (RFC 9773 §4.2): a uniform random time inside it. A window
//      that ends after notAfter is ignored with a warning (renewing then would be too late).
//   3. else 2/3 of the lifetime after notBefore; 1/2 for lifetimes of 10 days or less (short-
//      lived certificates need a larger margin for a failed renewal to be retried).
// An explicit renewBefore still yields to an ARI window that starts EARLIER than it: the CA
// asks for early renewal when it is about to revoke (RFC 9773 §1), and waiting would let the
// certificate be revoked in service.
// Times are truncated to whole seconds (status fields are RFC 3339 seconds).
#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "edgecert/acme/ari.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"

namespace edgecert::controller {

// Go time.ParseDuration: "[-+]?(<n>[.<frac>]<unit>)+" with units ns, us, µs (U+00B5), μs
// (U+03BC), ms, s, m, h; "0" alone is allowed. InvalidConfig for anything else or overflow.
Result<std::chrono::nanoseconds> parse_go_duration(std::string_view s);

// The renewal-relevant part of a Certificate spec.
struct RenewalSpec {
    std::optional<std::string> renew_before;     // Go duration
    std::optional<int> renew_before_percentage;  // 1..99
};

enum class RenewalBasis { RenewBefore, RenewBeforePercentage, Ari, TwoThirds, Half };
std::string_view to_string(RenewalBasis b);

struct RenewalDecision {
    SystemTime renewal_time;
    RenewalBasis basis = RenewalBasis::TwoThirds;
    std::optional<std::string> warning;  // e.g. renewBefore ignored; for an Event / log line
};

// InvalidConfig when notAfter is not after notBefore, renewBefore does not parse or is not
// positive, the percentage is outside 1..99, or both overrides are set.
Result<RenewalDecision> renewal_time(SystemTime not_before, SystemTime not_after,
                                     const RenewalSpec& spec,
                                     const std::optional<acme::RenewalInfo>& ari,
                                     std::mt19937_64& rng, SystemTime now);

// cert-manager's issuance backoff: after n consecutive failures wait min(1h * 2^(n-1), 32h);
// n <= 0 → no wait. When the last error is RateLimited with a longer retry_after, that wins.
inline constexpr std::chrono::seconds kBackoffBase{3600};
inline constexpr std::chrono::seconds kBackoffCap{32 * 3600};
std::chrono::seconds failure_backoff(int failed_issuance_attempts,
                                     const std::optional<Error>& last_error = std::nullopt);
// lastFailureTime + failure_backoff(...).
SystemTime next_retry_time(SystemTime last_failure_time, int failed_issuance_attempts,
                           const std::optional<Error>& last_error = std::nullopt);

// Overdue: the renewal time passed more than `grace` ago and the certificate was not renewed
// (a renewal moves renewalTime forward, so "not renewed" = renewal_time still in the past). The
// grace keeps an order that is simply in flight from counting; one hour is longer than any
// sane order and as long as the first backoff step.
inline constexpr std::chrono::seconds kOverdueGrace{3600};
bool is_overdue(SystemTime renewal_time, SystemTime now,
                std::chrono::seconds grace = kOverdueGrace);

}  // namespace edgecert::controller
