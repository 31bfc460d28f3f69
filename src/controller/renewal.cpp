#include "renewal.h"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace edgecert::controller {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;

Error bad_duration(std::string_view s, std::string_view why) {
    return make_error(ErrorCode::InvalidConfig,
                      "invalid duration \"" + std::string(s) + "\": " + std::string(why));
}

SystemTime trunc_s(SystemTime t) { return std::chrono::floor<seconds>(t); }

}  // namespace

Result<nanoseconds> parse_go_duration(std::string_view in) {
    std::string_view s = in;
    bool neg = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s.remove_prefix(1);
    }
    if (s == "0") return nanoseconds(0);
    if (s.empty()) return bad_duration(in, "empty");
    // Accumulate in unsigned 64-bit nanoseconds like Go, limit = 2^63 (exact for a negative).
    const uint64_t limit = uint64_t(1) << 63;
    uint64_t total = 0;
    while (!s.empty()) {
        uint64_t whole = 0;
        size_t i = 0;
        bool digits = false;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            if (whole > (limit - 9) / 10) return bad_duration(in, "overflow");
            whole = whole * 10 + uint64_t(s[i] - '0');
            ++i;
            digits = true;
        }
        // Fraction: keep up to 18 digits (more cannot matter at nanosecond precision).
        uint64_t frac = 0, scale = 1;
        bool frac_digits = false;
        if (i < s.size() && s[i] == '.') {
            ++i;
            while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
                if (scale < 1'000'000'000'000'000'000ULL) {
                    frac = frac * 10 + uint64_t(s[i] - '0');
                    scale *= 10;
                }
                ++i;
                frac_digits = true;
            }
        }
        if (!digits && !frac_digits) return bad_duration(in, "expected a number");
        s.remove_prefix(i);
        size_t u = 0;
        while (u < s.size() && s[u] != '.' && !(s[u] >= '0' && s[u] <= '9')) ++u;
        std::string_view unit = s.substr(0, u);
        s.remove_prefix(u);
        uint64_t mult = 0;
        if (unit == "ns") mult = 1;
        else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") mult = 1'000;
        else if (unit == "ms") mult = 1'000'000;
        else if (unit == "s") mult = 1'000'000'000ULL;
        else if (unit == "m") mult = 60'000'000'000ULL;
        else if (unit == "h") mult = 3'600'000'000'000ULL;
        else if (unit.empty()) return bad_duration(in, "missing unit");
        else return bad_duration(in, "unknown unit \"" + std::string(unit) + "\"");
        if (whole > limit / mult) return bad_duration(in, "overflow");
        uint64_t v = whole * mult;
        if (frac_digits) {
            // frac/scale of a unit, in nanoseconds; long double keeps 64 bits of mantissa.
            long double f = static_cast<long double>(frac) * static_cast<long double>(mult) /
                            static_cast<long double>(scale);
            v += static_cast<uint64_t>(f);
            if (v > limit) return bad_duration(in, "overflow");
        }
        if (v > limit - total) return bad_duration(in, "overflow");
        total += v;
    }
    if (!neg && total > limit - 1) return bad_duration(in, "overflow");
    if (neg) return nanoseconds(total == limit ? std::numeric_limits<int64_t>::min()
                                               : -static_cast<int64_t>(total));
    return nanoseconds(static_cast<int64_t>(total));
}

std::string_view to_string(RenewalBasis b) {
    switch (b) {
        case RenewalBasis::RenewBefore: return "renewBefore";
        case RenewalBasis::RenewBeforePercentage: return "renewBeforePercentage";
        case RenewalBasis::Ari: return "ARI";
        case RenewalBasis::TwoThirds: return "2/3 of lifetime";
        case RenewalBasis::Half: return "1/2 of lifetime";
    }
    return "unknown";
}

Result<RenewalDecision> renewal_time(SystemTime not_before, SystemTime not_after,
                                     const RenewalSpec& spec,
                                     const std::optional<acme::RenewalInfo>& ari,
                                     std::mt19937_64& rng, SystemTime now) {
    if (not_after <= not_before)
        return make_error(ErrorCode::InvalidConfig, "certificate notAfter is not after notBefore");
    if (spec.renew_before && spec.renew_before_percentage)
        return make_error(ErrorCode::InvalidConfig,
                          "renewBefore and renewBeforePercentage are mutually exclusive");
    const auto lifetime = std::chrono::duration_cast<nanoseconds>(not_after - not_before);

    RenewalDecision d;
    // The default rule, also the fallback for an unusable override.
    auto lifetime_rule = [&] {
        if (lifetime <= std::chrono::hours(24 * 10)) {
            d.basis = RenewalBasis::Half;
            d.renewal_time = not_before + lifetime / 2;
        } else {
            d.basis = RenewalBasis::TwoThirds;
            d.renewal_time = not_before + lifetime * 2 / 3;
        }
    };

    bool explicit_rule = false;
    if (spec.renew_before) {
        EC_TRY_ASSIGN(auto rb, parse_go_duration(*spec.renew_before));
        if (rb <= nanoseconds(0))
            return make_error(ErrorCode::InvalidConfig,
                              "renewBefore \"" + *spec.renew_before + "\" must be positive");
        if (rb >= lifetime) {
            d.warning = "renewBefore " + *spec.renew_before +
                        " is not shorter than the certificate's lifetime; using the default";
        } else {
            d.basis = RenewalBasis::RenewBefore;
            d.renewal_time = not_after - rb;
            explicit_rule = true;
        }
    } else if (spec.renew_before_percentage) {
        int pct = *spec.renew_before_percentage;
        if (pct < 1 || pct > 99)
            return make_error(ErrorCode::InvalidConfig,
                              "renewBeforePercentage " + std::to_string(pct) +
                                  " is outside 1..99");
        d.basis = RenewalBasis::RenewBeforePercentage;
        d.renewal_time = not_after - lifetime * pct / 100;
        explicit_rule = true;
    }

    // A window reaching past notAfter cannot be right (the certificate would expire in service
    // before renewal): ignore it rather than trust it.
    const bool ari_usable = ari && ari->suggested_window.end <= not_after;
    if (ari && !ari_usable)
        d.warning = "ARI suggested window ends after the certificate's notAfter; ignored";
    if (ari_usable) {
        SystemTime t = acme::choose_renewal_time(ari->suggested_window, rng, now);
        if (!explicit_rule || t < d.renewal_time) {
            d.basis = RenewalBasis::Ari;
            d.renewal_time = t;
        }
    } else if (!explicit_rule) {
        lifetime_rule();
    }
    d.renewal_time = trunc_s(d.renewal_time);
    return d;
}

std::chrono::seconds failure_backoff(int n, const std::optional<Error>& last_error) {
    seconds wait{0};
    if (n > 0) {
        // 2^(n-1) hours, capped: 32 h = 2^5 h, so any n > 6 is the cap (and no shift overflows).
        wait = n > 6 ? kBackoffCap : std::min(kBackoffBase * (int64_t(1) << (n - 1)), kBackoffCap);
    }
    if (last_error && last_error->code == ErrorCode::RateLimited && last_error->retry_after &&
        *last_error->retry_after > wait)
        wait = *last_error->retry_after;
    return wait;
}

SystemTime next_retry_time(SystemTime last_failure_time, int n,
                           const std::optional<Error>& last_error) {
    return last_failure_time + failure_backoff(n, last_error);
}

bool is_overdue(SystemTime renewal_time, SystemTime now, std::chrono::seconds grace) {
    return now > renewal_time + grace;
}

}  // namespace edgecert::controller
