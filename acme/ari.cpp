// RFC 9773 renewalInfo decoding and renewal-time selection.
#include "edgecert/acme/ari.h"

#include <algorithm>

#include "acme/wire.h"
#include "edgecert/acme/problem.h"
#include "edgecert/base/http.h"

namespace edgecert::acme {

Result<RenewalInfo> parse_renewal_info(std::string_view body,
                                       std::optional<std::string_view> retry_after_header,
                                       SystemTime now) {
    RenewalInfo info;
    // §4.3: poll again after Retry-After; clients clamp it to something sane so a CA cannot make
    // them poll every second or never again.
    info.retry_after = kAriDefaultRetry;
    if (retry_after_header) {
        if (auto ra = parse_retry_after(*retry_after_header, now))
            info.retry_after = std::clamp(*ra, kAriMinRetry, kAriMaxRetry);
    }
    info.next_poll = now + info.retry_after;
    try {
        auto j = wire::json::parse(body);
        if (!j.is_object()) throw wire::WireError("not a JSON object");
        const auto& w = j.at("suggestedWindow");
        if (!w.is_object()) throw wire::WireError("\"suggestedWindow\" is not an object");
        auto start = wire::opt_time(w, "start");
        auto end = wire::opt_time(w, "end");
        if (!start || !end) throw wire::WireError("suggestedWindow needs start and end");
        info.suggested_window = RenewalWindow{*start, *end};
        info.explanation_url = wire::opt_str(j, "explanationURL");
    } catch (const std::exception& e) {
        Error err(ErrorCode::Transient, std::string("malformed renewalInfo from the server: ") +
                                            body_excerpt(e.what(), 160));
        err.retry_after = info.retry_after;
        return err;
    }
    if (info.suggested_window.end <= info.suggested_window.start) {
        // §4.2: an invalid window is treated as if no renewalInfo had been received.
        Error err(ErrorCode::Transient, "renewalInfo suggestedWindow end is not after its start");
        err.retry_after = info.retry_after;
        return err;
    }
    return info;
}

SystemTime choose_renewal_time(const RenewalWindow& window, std::mt19937_64& rng, SystemTime now) {
    if (window.end <= now) return now;  // the window has passed: renew right away
    // In whole seconds since the epoch: a window parsed from far-off dates is saturated to
    // kSystemTimeMin/Max, and neither its span nor an offset into it need fit in SystemTime's
    // 64-bit nanoseconds (found by fuzzing). The pick is floored to a second, so it is raised
    // back to the start when it lands before it.
    using std::chrono::duration_cast;
    using std::chrono::seconds;
    const int64_t start_s = duration_cast<seconds>(window.start.time_since_epoch()).count();
    const int64_t span = duration_cast<seconds>(window.end.time_since_epoch()).count() - start_s;
    SystemTime t = window.start;
    if (span > 0) {
        std::uniform_int_distribution<int64_t> dist(0, span - 1);
        t = std::max(system_time_from_unix(start_s + dist(rng)), window.start);
    }
    return std::max(t, now);
}

std::string renewal_info_url(std::string_view base, std::string_view cert_id) {
    std::string url(base);
    if (url.empty() || url.back() != '/') url += '/';
    url += cert_id;
    return url;
}

}  // namespace edgecert::acme
