#include "edgecert/base/result.h"

#include <gtest/gtest.h>

#include "edgecert/base/clock.h"
#include "edgecert/base/encoding.h"
#include "edgecert/base/http.h"
#include "edgecert/base/secret.h"

namespace edgecert {
namespace {

Result<int> parse_positive(int v) {
    if (v <= 0) return Error(ErrorCode::InvalidConfig, "not positive");
    return v;
}

Result<int> doubled(int v) {
    EC_TRY_ASSIGN(int x, parse_positive(v));
    return x * 2;
}

Status check(int v) {
    EC_TRY(parse_positive(v));
    return {};
}

TEST(Result, PropagatesValuesAndErrors) {
    auto ok = doubled(21);
    ASSERT_TRUE(ok);
    EXPECT_EQ(*ok, 42);
    auto bad = doubled(-1);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, ErrorCode::InvalidConfig);
    EXPECT_EQ(bad.error().message, "not positive");
    EXPECT_TRUE(check(1).ok());
    EXPECT_FALSE(check(0).ok());
}

TEST(Result, ContextPrefixesMessage) {
    Error e(ErrorCode::Transient, "connection refused");
    e.context("fetching directory");
    EXPECT_EQ(e.message, "fetching directory: connection refused");
    EXPECT_TRUE(e.retryable());
    EXPECT_FALSE(Error(ErrorCode::Permanent, "x").retryable());
}

TEST(Encoding, Base64UrlRfc4648Vectors) {
    // RFC 4648 §10 test vectors, base64url without padding.
    EXPECT_EQ(enc::base64url(""), "");
    EXPECT_EQ(enc::base64url("f"), "Zg");
    EXPECT_EQ(enc::base64url("fo"), "Zm8");
    EXPECT_EQ(enc::base64url("foo"), "Zm9v");
    EXPECT_EQ(enc::base64url("foob"), "Zm9vYg");
    EXPECT_EQ(enc::base64url("fooba"), "Zm9vYmE");
    EXPECT_EQ(enc::base64url("foobar"), "Zm9vYmFy");
    EXPECT_EQ(enc::base64("foob"), "Zm9vYg==");
    EXPECT_EQ(enc::base64url(std::string("\xfb\xff", 2)), "-_8");
    EXPECT_EQ(*enc::base64url_decode("-_8"), std::string("\xfb\xff", 2));
    EXPECT_EQ(*enc::base64_decode("Zm9v\nYmFy"), "foobar");
    EXPECT_FALSE(enc::base64url_decode("Zm9v+"));
    EXPECT_FALSE(enc::base64url_decode("Z"));
    EXPECT_EQ(enc::hex("\x01\xab"), "01ab");
    EXPECT_EQ(*enc::hex_decode("01AB"), "\x01\xab");
}

TEST(Http, RetryAfterParsesSecondsAndDates) {
    auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
    EXPECT_EQ(parse_retry_after("120", now), std::chrono::seconds(120));
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now), std::chrono::seconds(120));
    EXPECT_EQ(parse_retry_after("garbage", now), std::nullopt);
    HttpResponse r;
    r.headers = {{"link", "<a>;rel=\"up\""}, {"link", "<b>;rel=\"alternate\""}, {"retry-after", "5"}};
    EXPECT_EQ(r.header("Retry-After"), "5");
    EXPECT_EQ(r.header_all("LINK").size(), 2u);
}

TEST(Secret, WipesAndComparesInConstantTime) {
    SecretBytes a(std::string("hunter2"));
    SecretBytes b = a;
    EXPECT_TRUE(a == b);
    SecretBytes c(std::move(a));
    EXPECT_TRUE(a.empty());  // NOLINT: moved-from is defined as empty
    EXPECT_EQ(c.reveal(), "hunter2");
}

TEST(Clock, FakeClockAdvancesOnSleep) {
    FakeClock c;
    auto t0 = c.now();
    c.sleep_for(std::chrono::seconds(3));
    EXPECT_EQ(c.now() - t0, std::chrono::seconds(3));
    EXPECT_EQ(c.total_slept(), std::chrono::seconds(3));
}

}  // namespace
}  // namespace edgecert
