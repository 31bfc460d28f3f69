// Decoding of RFC 8555 resources and RFC 3339 timestamps.
#include <gtest/gtest.h>

#include <random>

#include "edgecert/acme/ari.h"
#include "edgecert/acme/client.h"
#include "edgecert/acme/problem.h"
#include "edgecert/acme/types.h"

namespace edgecert::acme {
namespace {

using namespace std::chrono_literals;

TEST(AcmeWire, Rfc3339) {
    auto t = parse_rfc3339("2026-11-28T17:55:00Z");
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(format_rfc3339(*t), "2026-11-28T17:55:00Z");
    EXPECT_EQ(*parse_rfc3339("2026-11-28T18:55:00+01:00"), *t);
    EXPECT_EQ(*parse_rfc3339("2026-11-28t12:25:00-05:30"), *t);
    auto frac = parse_rfc3339("2026-11-28T17:55:00.250Z");
    ASSERT_TRUE(frac.has_value());
    EXPECT_EQ(*frac - *t, 250ms);
    EXPECT_EQ(format_rfc3339(SystemTime{}), "1970-01-01T00:00:00Z");
    for (const char* bad :
         {"", "2026-11-28", "2026-11-28T17:55:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
          "2026-11-28T17:55:00Zjunk", "2026-11-28T17:55:00.Z", "2026-11-28T25:00:00Z"})
        EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
}

// Found by fuzzing (tests/data/fuzz-corpus/acme_json/ari-far-future): a year past 2262 overflowed
// SystemTime's 64-bit nanoseconds (undefined behaviour). "9999-12-31T23:59:59Z" is a common
// "never"; such times now saturate to the last second SystemTime holds, and format back.
TEST(AcmeWire, Rfc3339OutsideSystemTimeSaturates) {
    EXPECT_EQ(parse_rfc3339("9999-12-31T23:59:59Z"), kSystemTimeMax);
    EXPECT_EQ(parse_rfc3339("9999-12-31T23:59:59.999-12:00"), kSystemTimeMax);
    EXPECT_EQ(parse_rfc3339("0001-01-01T00:00:00Z"), kSystemTimeMin);
    EXPECT_EQ(parse_rfc3339(format_rfc3339(kSystemTimeMax)), kSystemTimeMax);
    EXPECT_EQ(parse_rfc3339("2262-04-11T23:47:15Z"), kSystemTimeMax);
    EXPECT_EQ(parse_rfc3339("2262-04-11T23:47:14Z"), kSystemTimeMax - std::chrono::seconds(1));
    auto o = parse_order(R"({"status":"valid","expires":"9999-12-31T23:59:59Z","identifiers":[],
        "finalize":"https://ca/f"})",
                         "https://ca/o/1");
    ASSERT_TRUE(o.ok()) << o.error().message;
    EXPECT_EQ(o->expires, kSystemTimeMax);
    // An ARI window entirely past 2262 collapses to one instant: refused like any empty window
    // (RFC 9773 §4.2), with the default poll interval.
    auto ari = parse_renewal_info(
        R"({"suggestedWindow":{"start":"9999-12-30T00:00:00Z","end":"9999-12-31T00:00:00Z"}})",
        "Fri, 31 Dec 9999 23:59:59 GMT", SystemTime(std::chrono::seconds(1'893'456'000)));
    ASSERT_FALSE(ari.ok());
    EXPECT_EQ(ari.error().retry_after, std::chrono::hours(24));  // the far Retry-After, clamped
}

TEST(AcmeWire, OrderAndAuthorization) {
    auto o = parse_order(R"({"status":"pending","expires":"2026-12-01T00:00:00Z",
        "identifiers":[{"type":"dns","value":"example.com"},{"type":"dns","value":"*.example.com"}],
        "profile":"shortlived","notBefore":"2026-11-28T00:00:00Z","notAfter":"2026-12-04T00:00:00Z",
        "authorizations":["https://ca/a/1","https://ca/a/2"],"finalize":"https://ca/o/1/fin",
        "replaces":"x.y","unknownField":{"ignored":true}})",
                         "https://ca/o/1");
    ASSERT_TRUE(o.ok()) << o.error().message;
    EXPECT_EQ(o->url, "https://ca/o/1");
    EXPECT_EQ(o->identifiers.size(), 2u);
    EXPECT_EQ(o->identifiers[1].value, "*.example.com");
    EXPECT_EQ(o->profile, "shortlived");
    EXPECT_EQ(o->replaces, "x.y");
    EXPECT_EQ(o->authorizations.size(), 2u);
    EXPECT_EQ(format_rfc3339(*o->not_after), "2026-12-04T00:00:00Z");
    EXPECT_TRUE(o->certificate.empty());
    EXPECT_FALSE(o->error.has_value());

    auto a = parse_authorization(
        R"({"status":"invalid","identifier":{"type":"dns","value":"example.com"},
        "wildcard":true,"challenges":[{"type":"dns-01","url":"https://ca/c/1","token":"tok","status":"invalid",
        "validated":"2026-11-28T17:00:00Z",
        "error":{"type":"urn:ietf:params:acme:error:dns","detail":"NXDOMAIN looking up TXT","status":400}}]})",
        "https://ca/a/1");
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_TRUE(a->wildcard);
    ASSERT_EQ(a->challenges.size(), 1u);
    ASSERT_TRUE(a->challenges[0].error.has_value());
    EXPECT_EQ(a->challenges[0].error->type, "urn:ietf:params:acme:error:dns");
    EXPECT_TRUE(a->challenges[0].validated.has_value());
    Error e = authorization_error(*a);
    EXPECT_EQ(e.code, ErrorCode::Permanent);
    EXPECT_EQ(e.type, "urn:ietf:params:acme:error:dns");
    EXPECT_EQ(e.message,
              "dns-01 challenge for *.example.com failed: NXDOMAIN looking up TXT "
              "(urn:ietf:params:acme:error:dns)");
}

TEST(AcmeWire, WrongTypesAreMalformed) {
    EXPECT_FALSE(parse_order(R"({"status":1,"identifiers":[],"finalize":"f"})", "u").ok());
    EXPECT_FALSE(parse_order(R"({"status":"valid","identifiers":{},"finalize":"f"})", "u").ok());
    EXPECT_FALSE(
        parse_order(R"({"status":"valid","identifiers":[],"finalize":"f","expires":"soon"})", "u")
            .ok());
    EXPECT_FALSE(parse_order(R"([1,2])", "u").ok());
    EXPECT_FALSE(parse_directory(R"({"newNonce":"n"})").ok());
    EXPECT_FALSE(parse_challenge(R"({"type":"http-01"})").ok());
    auto e = parse_order("{", "u");
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code, ErrorCode::Transient);
    EXPECT_EQ(e.error().message.rfind("malformed order from the server: ", 0), 0u);
}

TEST(AcmeWire, ProblemDocuments) {
    EXPECT_FALSE(parse_problem("<html>").has_value());
    EXPECT_FALSE(parse_problem(R"({"status":"valid"})").has_value());
    auto p = parse_problem(R"({"detail":"no type"})");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->type, "about:blank");
    Error e = problem_to_error(*p, 500);
    EXPECT_EQ(e.code, ErrorCode::Transient);
    EXPECT_EQ(e.message, "no type (about:blank, HTTP 500)");
    // Multi-line details are flattened so the message stays one line.
    Problem multi{"urn:ietf:params:acme:error:malformed", "line one\nline two", "", 400, {}};
    EXPECT_EQ(problem_to_error(multi, 400).message,
              "line one line two (urn:ietf:params:acme:error:malformed, HTTP 400)");
    EXPECT_EQ(body_excerpt(std::string(500, 'a')).size(), 203u);
}

// Whatever a CA (or something pretending to be one) sends, decoding returns a Result and never
// throws or crashes: mutate valid bodies byte by byte and truncate them.
TEST(AcmeWire, MutatedBodiesNeverThrow) {
    const std::vector<std::string> seeds{
        R"({"status":"valid","identifiers":[{"type":"dns","value":"a"}],"finalize":"f","certificate":"c",
            "authorizations":["x"],"error":{"type":"t","subproblems":[{"identifier":{"type":"dns","value":"a"}}]}})",
        R"({"status":"pending","identifier":{"type":"dns","value":"a"},"challenges":[{"type":"http-01","url":"u",
            "status":"pending","token":"t","validated":"2026-01-01T00:00:00Z"}]})",
        R"({"newNonce":"n","newAccount":"a","newOrder":"o","meta":{"profiles":{"a":"b"},"caaIdentities":["x"]}})",
        R"({"suggestedWindow":{"start":"2026-01-01T00:00:00Z","end":"2026-01-02T00:00:00Z"},"explanationURL":"e"})",
    };
    std::mt19937 rng(1234);
    int decoded = 0;
    for (int i = 0; i < 600; ++i) {
        std::string s = seeds[i % seeds.size()];
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) s[rng() % s.size()] = static_cast<char>(rng() % 256);
        if (rng() % 4 == 0) s.resize(rng() % s.size());
        EXPECT_NO_THROW({
            decoded += parse_order(s, "u").ok();
            decoded += parse_authorization(s, "u").ok();
            decoded += parse_directory(s).ok();
            decoded += parse_renewal_info(s, std::nullopt, SystemTime{}).ok();
            decoded += parse_problem(s).has_value();
            (void)response_to_error(HttpResponse{400, {}, s}, "u", SystemTime{});
            (void)parse_link_headers({s}, "alternate");
            (void)parse_rfc3339(s);
        });
    }
    EXPECT_GT(decoded, 0);  // some mutations stay valid (e.g. inside string values)
}

}  // namespace
}  // namespace edgecert::acme
