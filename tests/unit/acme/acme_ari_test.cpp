// RFC 9773 renewal information: parsing, Retry-After clamping, the renewal-time choice, and the
// renewalInfo request the client makes.
#include <gtest/gtest.h>

#include "acme_test_util.h"
#include "edgecert/acme/ari.h"
#include "test_pki.h"

namespace edgecert::acme {
namespace {

using namespace testutil;
using namespace std::chrono_literals;

const SystemTime kNow = SystemTime(std::chrono::seconds(1'700'000'000));  // 2023-11-14T22:13:20Z

// RFC 9773 §4.2 example shape.
const std::string kBody = R"({
  "suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"},
  "explanationURL": "https://acme.example.com/docs/ari"
})";

TEST(AcmeAri, ParsesWindowAndExplanation) {
    auto r = parse_renewal_info(kBody, std::nullopt, kNow);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(format_rfc3339(r->suggested_window.start), "2025-01-02T04:00:00Z");
    EXPECT_EQ(format_rfc3339(r->suggested_window.end), "2025-01-03T04:00:00Z");
    EXPECT_EQ(r->explanation_url, "https://acme.example.com/docs/ari");
    EXPECT_EQ(r->retry_after, 6h);  // default when there is no Retry-After
    EXPECT_EQ(r->next_poll, kNow + 6h);
}

TEST(AcmeAri, RetryAfterIsClampedBetweenOneMinuteAndOneDay) {
    EXPECT_EQ(parse_renewal_info(kBody, "21600", kNow)->retry_after, 6h);
    EXPECT_EQ(parse_renewal_info(kBody, "3", kNow)->retry_after, 60s);
    EXPECT_EQ(parse_renewal_info(kBody, "9999999", kNow)->retry_after, 24h);
    EXPECT_EQ(parse_renewal_info(kBody, "not a date", kNow)->retry_after, 6h);
    // HTTP-date form: two hours after kNow.
    auto r = parse_renewal_info(kBody, "Wed, 15 Nov 2023 00:13:20 GMT", kNow);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->retry_after, 2h);
    EXPECT_EQ(r->next_poll, kNow + 2h);
}

TEST(AcmeAri, RejectsMalformedOrInvertedWindows) {
    for (
        std::string bad :
        {std::string("not json"), std::string(R"({"suggestedWindow": 5})"),
         std::string(R"({"suggestedWindow": {"start": "2025-01-02T04:00:00Z"}})"),
         std::string(
             R"({"suggestedWindow": {"start": "yesterday", "end": "2025-01-03T04:00:00Z"}})"),
         std::string(
             R"({"suggestedWindow": {"start": "2025-01-03T04:00:00Z", "end": "2025-01-02T04:00:00Z"}})")}) {
        auto r = parse_renewal_info(bad, "120", kNow);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_EQ(r.error().code, ErrorCode::Transient) << bad;
        ASSERT_TRUE(r.error().retry_after.has_value());
        EXPECT_EQ(*r.error().retry_after, 120s);  // still tells the caller when to ask again
    }
}

TEST(AcmeAri, ChooseRenewalTimeStaysInsideTheWindow) {
    std::mt19937_64 rng(42);
    RenewalWindow w{kNow + 24h, kNow + 48h};
    SystemTime lo = w.end, hi = w.start;
    for (int i = 0; i < 2000; ++i) {
        SystemTime t = choose_renewal_time(w, rng, kNow);
        ASSERT_GE(t, w.start);
        ASSERT_LT(t, w.end);
        lo = std::min(lo, t);
        hi = std::max(hi, t);
    }
    // Uniform: 2000 draws cover most of the 24 h window.
    EXPECT_LT(lo, w.start + 1h);
    EXPECT_GT(hi, w.end - 1h);
}

TEST(AcmeAri, ChooseRenewalTimeInThePastMeansNow) {
    std::mt19937_64 rng(7);
    EXPECT_EQ(choose_renewal_time({kNow - 48h, kNow - 24h}, rng, kNow), kNow);  // window over
    for (int i = 0; i < 200; ++i) {  // window straddles now: never earlier than now
        SystemTime t = choose_renewal_time({kNow - 1h, kNow + 1h}, rng, kNow);
        ASSERT_GE(t, kNow);
        ASSERT_LT(t, kNow + 1h);
    }
    EXPECT_EQ(
        choose_renewal_time({kNow + 1h, kNow + 1h + std::chrono::milliseconds(10)}, rng, kNow),
        kNow + 1h);
}

// Fuzzing found it (corpus acme_json/ubsan-ari-window-start-before-1678): a window starting in
// year 1015 saturates to kSystemTimeMin, and end - start overflowed SystemTime's nanoseconds.
TEST(AcmeAri, ChooseRenewalTimeInAWindowFromTheEdgesOfSystemTime) {
    std::mt19937_64 rng(7);
    for (int i = 0; i < 50; ++i) {
        SystemTime t = choose_renewal_time({kSystemTimeMin, kNow + 1h}, rng, kNow);
        ASSERT_GE(t, kNow);
        ASSERT_LT(t, kNow + 1h);
        t = choose_renewal_time({kNow + 1h, kSystemTimeMax}, rng, kNow);
        ASSERT_GE(t, kNow + 1h);
        ASSERT_LE(t, kSystemTimeMax);
    }
}

TEST(AcmeAri, RenewalInfoUrlJoinsWithOneSlash) {
    EXPECT_EQ(renewal_info_url("https://ca.test/ari", "a.b"), "https://ca.test/ari/a.b");
    EXPECT_EQ(renewal_info_url("https://ca.test/ari/", "a.b"), "https://ca.test/ari/a.b");
}

TEST(AcmeAri, ClientFetchesRenewalInfoByCertId) {
    AcmeEnv env;
    testpki::Hierarchy ca("Root", "Int", env.clock.now());
    Certificate leaf = ca.leaf(testpki::ec_key(), {"example.com"}, env.clock.now());
    auto id = leaf.ari_cert_id();
    ASSERT_TRUE(id.ok()) << id.error().message;
    env.expect_directory();
    // RFC 9773 §4.1: an unauthenticated GET of <renewalInfo>/<certID>.
    env.http.expect("GET", kAriUrl + "/" + *id, 200, kBody).header("Retry-After", "3600");
    auto r = env.client->renewal_info(leaf);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->retry_after, 1h);
    EXPECT_EQ(r->next_poll, env.clock.now() + 1h);
    EXPECT_EQ(format_rfc3339(r->suggested_window.start), "2025-01-02T04:00:00Z");

    env.http.expect("GET", kAriUrl + "/" + *id, 404,
                    problem_json("malformed", "Certificate not found", 404).dump());
    auto nf = env.client->renewal_info(leaf);
    ASSERT_FALSE(nf.ok());
    EXPECT_EQ(nf.error().http_status, 404);
    EXPECT_TRUE(env.http.failures().empty());
    EXPECT_EQ(env.http.remaining(), 0u);
}

TEST(AcmeAri, NoRenewalInfoInDirectoryIsNotFound) {
    AcmeEnv env;
    json dir = directory_json();
    dir.erase("renewalInfo");
    env.expect_directory(dir);
    testpki::Hierarchy ca("Root", "Int", env.clock.now());
    Certificate leaf = ca.leaf(testpki::ec_key(), {"example.com"}, env.clock.now());
    EXPECT_FALSE(env.client->supports_ari());
    auto r = env.client->renewal_info(leaf);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::NotFound);
    EXPECT_EQ(env.http.requests().size(), 1u);
}

}  // namespace
}  // namespace edgecert::acme
