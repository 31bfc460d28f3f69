// Table-driven tests for the renewal policy (src/controller/renewal.h).
#include "controller/renewal.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edgecert::controller {
namespace {

using namespace std::chrono_literals;
using std::chrono::hours;
using std::chrono::nanoseconds;
using std::chrono::seconds;

const SystemTime kRenewT0 = SystemTime(seconds(1'800'000'000));
constexpr hours kDay{24};

// ---- Go durations ----

TEST(GoDuration, Valid) {
    struct C {
        std::string in;
        nanoseconds want;
    };
    std::vector<C> cases = {
        {"0", 0ns},
        {"-0", 0ns},
        {"0s", 0ns},
        {"90s", 90s},
        {"30m", 30min},
        {"720h", 720h},
        {"1h30m", 90min},
        {"1h30m15s", 5415s},
        {"2160h", 2160h},
        {"1.5h", 90min},
        {".5s", 500ms},
        {"1.s", 1s},
        {"300ms", 300ms},
        {"10us", 10us},
        {"10\xC2\xB5s", 10us},  // U+00B5 micro sign
        {"10\xCE\xBCs", 10us},  // U+03BC Greek mu
        {"7ns", 7ns},
        {"+5m", 5min},
        {"-1h", -1h},
        {"1h1h", 2h},  // Go accepts repeated units
        {"1.000000001s", 1'000'000'001ns},
        {"2562047h47m16.854775807s", nanoseconds(INT64_MAX)},
        {"-2562047h47m16.854775808s", nanoseconds(INT64_MIN)},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.in);
        auto r = parse_go_duration(c.in);
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ(*r, c.want);
    }
}

TEST(GoDuration, Garbage) {
    for (std::string in : {"", "-", "+", "h", "1", "10", "1d", "1 h", " 1h", "1h ", "1hm",
                           "1.2.3s", "abc", "1H", "1hh", "5m-3s", ".s", "1e3s",
                           "2562047h47m16.854775808s", "9999999999999999999h",
                           "99999999999999999999ns"}) {
        SCOPED_TRACE(in);
        auto r = parse_go_duration(in);
        ASSERT_FALSE(r.ok()) << r->count();
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
        EXPECT_NE(r.error().message.find("invalid duration"), std::string::npos);
    }
}

// Property: any h/m/s/ms/us/ns combination written the way Go prints it parses back exactly;
// random byte strings never crash and either parse or give InvalidConfig.
TEST(GoDuration, RoundTripAndNoise) {
    std::mt19937_64 rng(99);
    std::uniform_int_distribution<int64_t> part(0, 999);
    for (int i = 0; i < 2000; ++i) {
        int64_t h = part(rng) * 10, m = part(rng) % 60, sec = part(rng) % 60, ms = part(rng),
                us = part(rng), ns = part(rng);
        std::string text = std::to_string(h) + "h" + std::to_string(m) + "m" +
                           std::to_string(sec) + "s" + std::to_string(ms) + "ms" +
                           std::to_string(us) + "us" + std::to_string(ns) + "ns";
        nanoseconds want = hours(h) + std::chrono::minutes(m) + seconds(sec) +
                           std::chrono::milliseconds(ms) + std::chrono::microseconds(us) +
                           nanoseconds(ns);
        auto r = parse_go_duration(text);
        ASSERT_TRUE(r.ok()) << text;
        ASSERT_EQ(*r, want) << text;
    }
    const std::string alphabet = "0123456789.hmsunµ+- x";
    std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1), len(0, 12);
    for (int i = 0; i < 5000; ++i) {
        std::string text;
        for (size_t n = len(rng); n > 0; --n) text += alphabet[pick(rng)];
        auto r = parse_go_duration(text);
        if (!r.ok()) {
            EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig) << text;
        }
    }
}

// ---- renewal time ----

struct RenewCase {
    std::string name;
    hours lifetime;
    RenewalSpec spec;
    SystemTime want;
    RenewalBasis basis;
    bool warning = false;
};

TEST(RenewalTime, LifetimeAndOverrideTable) {
    std::vector<RenewCase> cases = {
        {"90-day: 2/3 → day 60", 90 * kDay, {}, kRenewT0 + 60 * kDay, RenewalBasis::TwoThirds},
        {"6-day: 1/2 → day 3", 6 * kDay, {}, kRenewT0 + 3 * kDay, RenewalBasis::Half},
        {"10-day is short-lived: 1/2", 10 * kDay, {}, kRenewT0 + 5 * kDay, RenewalBasis::Half},
        {"11-day: 2/3", 11 * kDay, {}, kRenewT0 + 176h, RenewalBasis::TwoThirds},
        {"47-day: 2/3", 47 * kDay, {}, kRenewT0 + 752h, RenewalBasis::TwoThirds},
        {"renewBefore 720h on 90-day", 90 * kDay, {"720h", std::nullopt}, kRenewT0 + 60 * kDay,
         RenewalBasis::RenewBefore},
        {"renewBefore 240h on 90-day", 90 * kDay, {"240h", std::nullopt}, kRenewT0 + 80 * kDay,
         RenewalBasis::RenewBefore},
        {"renewBefore 1h30m on 6-day", 6 * kDay, {"1h30m", std::nullopt},
         kRenewT0 + 6 * kDay - 90min, RenewalBasis::RenewBefore},
        {"renewBefore longer than lifetime → 2/3 with warning", 90 * kDay,
         {"2400h", std::nullopt}, kRenewT0 + 60 * kDay, RenewalBasis::TwoThirds, true},
        {"renewBefore equal to lifetime → fallback", 6 * kDay, {"144h", std::nullopt},
         kRenewT0 + 3 * kDay, RenewalBasis::Half, true},
        {"percentage 50 on 90-day", 90 * kDay, {std::nullopt, 50}, kRenewT0 + 45 * kDay,
         RenewalBasis::RenewBeforePercentage},
        {"percentage 10 on 90-day", 90 * kDay, {std::nullopt, 10}, kRenewT0 + 81 * kDay,
         RenewalBasis::RenewBeforePercentage},
        {"percentage 99 on 6-day", 6 * kDay, {std::nullopt, 99},
         kRenewT0 + 5184s,  // renew while 99% remains: 1% of 144 h = 1.44 h after notBefore
         RenewalBasis::RenewBeforePercentage},
    };
    std::mt19937_64 rng(1);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = renewal_time(kRenewT0, kRenewT0 + c.lifetime, c.spec, std::nullopt, rng, kRenewT0);
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ(r->renewal_time, c.want);
        EXPECT_EQ(r->basis, c.basis) << to_string(r->basis);
        EXPECT_EQ(r->warning.has_value(), c.warning);
    }
}

TEST(RenewalTime, TruncatedToSeconds) {
    std::mt19937_64 rng(1);
    // 7 s lifetime: 1/2 = 3.5 s → 3 s.
    auto r = renewal_time(kRenewT0, kRenewT0 + 7s, {}, std::nullopt, rng, kRenewT0);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->renewal_time, kRenewT0 + 3s);
}

TEST(RenewalTime, InvalidInputs) {
    std::mt19937_64 rng(1);
    struct C {
        std::string name;
        SystemTime nb, na;
        RenewalSpec spec;
    };
    std::vector<C> cases = {
        {"notAfter before notBefore", kRenewT0, kRenewT0 - 1s, {}},
        {"zero lifetime", kRenewT0, kRenewT0, {}},
        {"both overrides", kRenewT0, kRenewT0 + 90 * kDay, {"720h", 10}},
        {"garbage renewBefore", kRenewT0, kRenewT0 + 90 * kDay, {"30 days", std::nullopt}},
        {"negative renewBefore", kRenewT0, kRenewT0 + 90 * kDay, {"-1h", std::nullopt}},
        {"zero renewBefore", kRenewT0, kRenewT0 + 90 * kDay, {"0s", std::nullopt}},
        {"percentage 0", kRenewT0, kRenewT0 + 90 * kDay, {std::nullopt, 0}},
        {"percentage 100", kRenewT0, kRenewT0 + 90 * kDay, {std::nullopt, 100}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = renewal_time(c.nb, c.na, c.spec, std::nullopt, rng, kRenewT0);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
    }
}

acme::RenewalInfo ari(SystemTime start, SystemTime end) {
    acme::RenewalInfo i;
    i.suggested_window = {start, end};
    return i;
}

TEST(RenewalTime, AriWindowUniformInside) {
    // 90-day certificate, CA suggests days 59..61 (the default rule would say day 60).
    const SystemTime ws = kRenewT0 + 59 * kDay, we = kRenewT0 + 61 * kDay;
    std::mt19937_64 rng(42);
    SystemTime lo = SystemTime::max(), hi = SystemTime::min();
    int first_half = 0;
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
        auto r = renewal_time(kRenewT0, kRenewT0 + 90 * kDay, {}, ari(ws, we), rng, kRenewT0 + 10 * kDay);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->basis, RenewalBasis::Ari);
        ASSERT_GE(r->renewal_time, ws);
        ASSERT_LT(r->renewal_time, we);
        lo = std::min(lo, r->renewal_time);
        hi = std::max(hi, r->renewal_time);
        if (r->renewal_time < kRenewT0 + 60 * kDay) ++first_half;
    }
    // Spread over the window, not a fixed point: both halves get roughly half the draws.
    EXPECT_LT(lo, ws + 2h);
    EXPECT_GT(hi, we - 2h);
    EXPECT_GT(first_half, n * 4 / 10);
    EXPECT_LT(first_half, n * 6 / 10);
}

TEST(RenewalTime, AriTable) {
    const SystemTime na = kRenewT0 + 90 * kDay;
    struct C {
        std::string name;
        RenewalSpec spec;
        SystemTime ws, we, now;
        RenewalBasis basis;
        std::optional<SystemTime> exact;  // when the outcome is deterministic
    };
    std::vector<C> cases = {
        {"window overrides the 2/3 rule", {}, kRenewT0 + 70 * kDay, kRenewT0 + 71 * kDay, kRenewT0,
         RenewalBasis::Ari, std::nullopt},
        {"window in the past → now (revocation)", {}, kRenewT0 + 1 * kDay, kRenewT0 + 2 * kDay,
         kRenewT0 + 5 * kDay, RenewalBasis::Ari, kRenewT0 + 5 * kDay},
        {"renewBefore wins over a later window", {"720h", std::nullopt}, kRenewT0 + 70 * kDay,
         kRenewT0 + 71 * kDay, kRenewT0, RenewalBasis::RenewBefore, kRenewT0 + 60 * kDay},
        {"earlier window wins over renewBefore", {"240h", std::nullopt}, kRenewT0 + 20 * kDay,
         kRenewT0 + 21 * kDay, kRenewT0, RenewalBasis::Ari, std::nullopt},
        {"percentage wins over a later window", {std::nullopt, 50}, kRenewT0 + 70 * kDay,
         kRenewT0 + 71 * kDay, kRenewT0, RenewalBasis::RenewBeforePercentage, kRenewT0 + 45 * kDay},
        {"window ending after notAfter ignored → 2/3", {}, kRenewT0 + 89 * kDay, kRenewT0 + 91 * kDay,
         kRenewT0, RenewalBasis::TwoThirds, kRenewT0 + 60 * kDay},
        {"window ending exactly at notAfter used", {}, kRenewT0 + 89 * kDay, kRenewT0 + 90 * kDay, kRenewT0,
         RenewalBasis::Ari, std::nullopt},
        {"unusable renewBefore → window", {"9999h", std::nullopt}, kRenewT0 + 70 * kDay,
         kRenewT0 + 71 * kDay, kRenewT0, RenewalBasis::Ari, std::nullopt},
    };
    std::mt19937_64 rng(7);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = renewal_time(kRenewT0, na, c.spec, ari(c.ws, c.we), rng, c.now);
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ(r->basis, c.basis) << to_string(r->basis);
        if (c.exact) {
            EXPECT_EQ(r->renewal_time, *c.exact);
        } else {
            EXPECT_GE(r->renewal_time, std::max(c.ws, c.now));
            EXPECT_LT(r->renewal_time, c.we);
        }
    }
}

TEST(RenewalTime, AriWindowPastNotAfterWarns) {
    std::mt19937_64 rng(5);
    auto r = renewal_time(kRenewT0, kRenewT0 + 90 * kDay, {}, ari(kRenewT0 + 95 * kDay, kRenewT0 + 96 * kDay), rng,
                          kRenewT0);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->basis, RenewalBasis::TwoThirds);
    ASSERT_TRUE(r->warning);
    EXPECT_NE(r->warning->find("notAfter"), std::string::npos);
}

// ---- backoff ----

TEST(Backoff, SequenceAndCap) {
    struct C {
        int n;
        seconds want;
    };
    std::vector<C> cases = {{-1, 0s}, {0, 0s},   {1, 1h},   {2, 2h},   {3, 4h},
                            {4, 8h},  {5, 16h},  {6, 32h},  {7, 32h},  {8, 32h},
                            {30, 32h}, {63, 32h}, {64, 32h}, {1000, 32h}, {INT32_MAX, 32h}};
    for (const auto& c : cases) {
        SCOPED_TRACE(c.n);
        EXPECT_EQ(failure_backoff(c.n), c.want);
        EXPECT_EQ(next_retry_time(kRenewT0, c.n), kRenewT0 + c.want);
    }
}

Error err(ErrorCode code, std::optional<seconds> retry_after) {
    Error e(code, "x");
    e.retry_after = retry_after;
    return e;
}

TEST(Backoff, RateLimitPrecedence) {
    struct C {
        std::string name;
        int n;
        std::optional<Error> e;
        seconds want;
    };
    std::vector<C> cases = {
        {"rate limit longer than backoff wins", 1, err(ErrorCode::RateLimited, 3h), 3h},
        {"rate limit shorter than backoff loses", 4, err(ErrorCode::RateLimited, 1h), 8h},
        {"rate limit longer than the cap wins", 9, err(ErrorCode::RateLimited, 7 * 24h),
         7 * 24h},
        {"rate limit without retry_after: backoff", 2, err(ErrorCode::RateLimited, std::nullopt),
         2h},
        {"non-rate-limit retry_after ignored", 1, err(ErrorCode::Transient, 10h), 1h},
        {"no error", 3, std::nullopt, 4h},
        {"rate limit on a first failure not yet counted", 0, err(ErrorCode::RateLimited, 90s),
         90s},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(failure_backoff(c.n, c.e), c.want);
        EXPECT_EQ(next_retry_time(kRenewT0, c.n, c.e), kRenewT0 + c.want);
    }
}

// ---- overdue ----

TEST(Overdue, Table) {
    const SystemTime rt = kRenewT0 + 60 * kDay;
    struct C {
        std::string name;
        SystemTime now;
        seconds grace;
        bool want;
    };
    std::vector<C> cases = {
        {"before renewal time", rt - 1s, kOverdueGrace, false},
        {"at renewal time", rt, kOverdueGrace, false},
        {"order in flight within grace", rt + 59min, kOverdueGrace, false},
        {"grace boundary", rt + kOverdueGrace, kOverdueGrace, false},
        {"past grace", rt + kOverdueGrace + 1s, kOverdueGrace, true},
        {"days late", rt + 5 * kDay, kOverdueGrace, true},
        {"zero grace, one second late", rt + 1s, 0s, true},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(is_overdue(rt, c.now, c.grace), c.want);
    }
    EXPECT_FALSE(is_overdue(rt, rt + 30min));  // default grace
}

// Renewed certificates move the renewal time forward, so they stop being overdue.
TEST(Overdue, RenewalClearsIt) {
    std::mt19937_64 rng(3);
    auto old_rt = renewal_time(kRenewT0, kRenewT0 + 90 * kDay, {}, std::nullopt, rng, kRenewT0);
    ASSERT_TRUE(old_rt.ok());
    SystemTime now = old_rt->renewal_time + 2 * kDay;
    EXPECT_TRUE(is_overdue(old_rt->renewal_time, now));
    auto new_rt = renewal_time(now, now + 90 * kDay, {}, std::nullopt, rng, now);
    ASSERT_TRUE(new_rt.ok());
    EXPECT_FALSE(is_overdue(new_rt->renewal_time, now));
}

}  // namespace
}  // namespace edgecert::controller
