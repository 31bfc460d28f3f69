#pragma once
// RFC 9773 ACME Renewal Information (ARI): the suggested renewal window and when to ask again.
#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"

namespace edgecert::acme {

// RFC 9773 §4.2 suggestedWindow.
struct RenewalWindow {
    SystemTime start;
    SystemTime end;
};

// RFC 9773 §4.2 renewalInfo response.
struct RenewalInfo {
    RenewalWindow suggested_window;
    std::string explanation_url;  // optional; shown to the operator, never fetched
    // RFC 9773 §4.3: when to poll again, from Retry-After clamped to [1 min, 1 day];
    // 6 h when the header is absent or unparseable.
    std::chrono::seconds retry_after{std::chrono::hours(6)};
    SystemTime next_poll;  // response time + retry_after
};

inline constexpr std::chrono::seconds kAriMinRetry{60};
inline constexpr std::chrono::seconds kAriMaxRetry{86'400};
inline constexpr std::chrono::seconds kAriDefaultRetry{6 * 3600};

// Parses a renewalInfo body. `retry_after_header` is the raw header value (if any); `now` is the
// time the response arrived. A window whose end is not after its start is rejected (§4.2:
// the client treats it as if no window was received) with a Transient error.
Result<RenewalInfo> parse_renewal_info(std::string_view body,
                                       std::optional<std::string_view> retry_after_header,
                                       SystemTime now);

// RFC 9773 §4.2: a uniformly random time inside the window; `now` when the window's end has
// already passed, and never earlier than `now`.
SystemTime choose_renewal_time(const RenewalWindow& window, std::mt19937_64& rng, SystemTime now);

// The renewalInfo resource URL for a certificate: <renewal_info_base>/<cert_id> (§4.1).
std::string renewal_info_url(std::string_view renewal_info_base, std::string_view cert_id);

}  // namespace edgecert::acme
