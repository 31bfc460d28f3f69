// Issuer fallback (src/controller/fallback.h): the failure classification table, the N/T/Retry-
// After rule and the choice of issuer on a fake clock, and the spec/annotation parsing.
#include "controller/fallback.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "controller/issuance.h"
#include "edgecert/acme/problem.h"

namespace edgecert::controller {
namespace {

using namespace std::chrono_literals;
using std::chrono::seconds;
using json = nlohmann::json;

const SystemTime kT0 = SystemTime(seconds(1'800'000'000));

Error acme_error(std::string_view short_type, int http_status,
                 ErrorCode code = ErrorCode::Permanent) {
    Error e(code, "the CA says no");
    e.type = std::string(acme::problem::kPrefix) + std::string(short_type);
    e.http_status = http_status;
    return e;
}

// The error exactly as the ACME client makes it from a problem document (problem.h), so the
// table tests what the controller really sees.
Error from_problem(std::string_view short_type, int http_status) {
    acme::Problem p;
    p.type = std::string(acme::problem::kPrefix) + std::string(short_type);
    p.detail = "detail";
    return acme::problem_to_error(p, http_status);
}

// ---- classification (docs/issuer-fallback.md, "Which failures fall back") ---------------------

TEST(FallbackClassify, Rfc8555Table) {
    struct C {
        std::string type;
        int status;  // 0: inside a challenge or order (the validation result)
        bool ca_side;
        std::string reason;
    };
    const std::vector<C> cases = {
        // the CA failed
        {"serverInternal", 500, true, "serverInternal"},
        {"serverInternal", 0, true, "serverInternal"},  // a challenge the CA could not validate
        {"rateLimited", 429, true, "rateLimited"},
        {"badNonce", 400, true, "badNonce"},
        {"orderNotReady", 403, true, "orderNotReady"},
        {"malformed", 503, true, "serverError"},  // any 5xx is the server's
        // the request, the account or the names: reported, never sent elsewhere
        {"unauthorized", 403, false, "unauthorized"},
        {"unauthorized", 0, false, "unauthorized"},
        {"rejectedIdentifier", 400, false, "rejectedIdentifier"},
        {"unsupportedIdentifier", 400, false, "unsupportedIdentifier"},
        {"caa", 0, false, "caa"},
        {"caa", 403, false, "caa"},
        {"badCSR", 400, false, "badCSR"},
        {"badPublicKey", 400, false, "badPublicKey"},
        {"badSignatureAlgorithm", 400, false, "badSignatureAlgorithm"},
        {"accountDoesNotExist", 400, false, "accountDoesNotExist"},
        {"externalAccountRequired", 400, false, "externalAccountRequired"},
        {"userActionRequired", 403, false, "userActionRequired"},
        {"invalidContact", 400, false, "invalidContact"},
        {"unsupportedContact", 400, false, "unsupportedContact"},
        {"invalidProfile", 400, false, "invalidProfile"},
        {"malformed", 400, false, "malformed"},
        {"compound", 403, false, "compound"},
        // validation results: the CA reached the name and found our side wanting
        {"connection", 0, false, "connection"},
        {"dns", 0, false, "dns"},
        {"incorrectResponse", 0, false, "incorrectResponse"},
        {"tls", 0, false, "tls"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.type + " HTTP " + std::to_string(c.status));
        auto fc = classify_failure(from_problem(c.type, c.status), FailureOrigin::Ca);
        EXPECT_EQ(fc.ca_side, c.ca_side);
        EXPECT_EQ(fc.reason, c.reason);
    }
}

TEST(FallbackClassify, TransportAndNonProblemAnswers) {
    Error refused(ErrorCode::Transient, "POST https://ca/new-order: Couldn't connect to server");
    refused.type = "connect";
    EXPECT_EQ(classify_failure(refused, FailureOrigin::Ca).reason, "unreachable");
    EXPECT_TRUE(classify_failure(refused, FailureOrigin::Ca).ca_side);
    Error timeout(ErrorCode::Transient, "POST https://ca/finalize: Operation timed out");
    timeout.type = "timeout";
    EXPECT_EQ(classify_failure(timeout, FailureOrigin::Ca).reason, "timeout");
    Error tls(ErrorCode::Transient, "GET https://ca/dir: SSL certificate problem");
    tls.type = "tls";
    EXPECT_TRUE(classify_failure(tls, FailureOrigin::Ca).ca_side);
    // A load balancer's HTML 502 (no problem document) is the server's too.
    HttpResponse lb{.status = 502, .headers = {}, .body = "<html>Bad Gateway</html>"};
    auto e = acme::response_to_error(lb, "https://ca/new-order", kT0);
    EXPECT_EQ(classify_failure(e, FailureOrigin::Ca).reason, "serverError");
    // A poll that never settled: the CA did not finish in time.
    Error stuck(ErrorCode::Transient, "order https://ca/o/1 (still processing) after 120 s");
    stuck.http_status = 200;
    EXPECT_EQ(classify_failure(stuck, FailureOrigin::Ca).reason, "unexpectedResponse");
    EXPECT_TRUE(classify_failure(stuck, FailureOrigin::Ca).ca_side);
    // A 429 without a problem document is a rate limit.
    HttpResponse busy{.status = 429, .headers = {{"retry-after", "120"}}, .body = ""};
    EXPECT_EQ(
        classify_failure(acme::response_to_error(busy, "https://ca/x", kT0), FailureOrigin::Ca)
            .reason,
        "rateLimited");
    // "no usable challenge" (the CA offers none the issuer's solvers answer) is configuration.
    EXPECT_FALSE(
        classify_failure(Error(ErrorCode::InvalidConfig, "no usable challenge"), FailureOrigin::Ca)
            .ca_side);
}

TEST(FallbackClassify, OurSideNeverFallsBack) {
    // The same error shapes from our side (terminators not presenting, the API server failing
    // a Secret write) must not send the certificate to another CA.
    for (Error e :
         {acme_error("serverInternal", 500, ErrorCode::Transient), Error(ErrorCode::Transient, "x"),
          Error(ErrorCode::RateLimited, "API server throttles")}) {
        auto fc = classify_failure(e, FailureOrigin::Local);
        EXPECT_FALSE(fc.ca_side);
        EXPECT_EQ(fc.reason, "local");
    }
}

// ---- the rule on a fake clock -----------------------------------------------------------------

const std::vector<IssuerRef> kChain = {{"letsencrypt", "ClusterIssuer", "edgecert.io"},
                                       {"zerossl", "ClusterIssuer", "edgecert.io"},
                                       {"internal-ca", "Issuer", "edgecert.io"}};

// 10 s, 20 s, 40 s...: the caller's backoff; Retry-After wins when longer.
seconds test_backoff(int n, const Error& e) {
    seconds b = seconds(10) * (1 << std::min(n - 1, 10));
    if (e.retry_after && *e.retry_after > b) b = *e.retry_after;
    return b;
}

struct Sim {
    FallbackState st;
    FallbackPolicy policy;
    SystemTime now = kT0;
    FailureOutcome fail(size_t idx, const Error& e) {
        return record_failure(st, kChain, idx, e, classify_failure(e, FailureOrigin::Ca), policy,
                              now, test_backoff);
    }
    IssuerChoice next(std::optional<size_t> pinned = std::nullopt) const {
        return choose_issuer(kChain, st, pinned, now);
    }
};

Error http500() {
    return from_problem("serverInternal", 500);
}

TEST(FallbackRule, AfterNAttemptsTheNextIssuerRightAway) {
    Sim s;
    s.policy.after_attempts = 3;
    EXPECT_EQ(s.next().index, 0u);
    for (int i = 1; i <= 2; ++i) {
        auto o = s.fail(0, http500());
        EXPECT_FALSE(o.fell_back);
        EXPECT_EQ(o.next.index, 0u);  // the primary again, after its backoff
        EXPECT_EQ(o.next.not_before, s.now + test_backoff(i, http500()));
        s.now = o.next.not_before;
    }
    auto o = s.fail(0, http500());
    EXPECT_TRUE(o.fell_back);
    EXPECT_EQ(o.why, "failed 3 times in a row");
    EXPECT_EQ(o.next.index, 1u);
    EXPECT_EQ(o.next.not_before, s.now);  // the fallback has no backoff of its own yet
    const IssuerFailures* le = s.st.find(kChain[0]);
    ASSERT_NE(le, nullptr);
    EXPECT_TRUE(le->exhausted);
    EXPECT_EQ(le->failed_attempts, 3);
    EXPECT_EQ(le->last_reason, "serverInternal");
}

TEST(FallbackRule, AfterDurationT) {
    Sim s;
    s.policy.after_attempts = 100;
    s.policy.after_duration = 1h;
    auto o = s.fail(0, http500());
    EXPECT_FALSE(o.fell_back);
    s.now += 59min;
    EXPECT_FALSE(s.fail(0, http500()).fell_back);
    s.now += 1min;  // failing for exactly 1 h since the first failure
    o = s.fail(0, http500());
    EXPECT_TRUE(o.fell_back);
    EXPECT_EQ(o.why, "failing for 1h");
    EXPECT_EQ(o.next.index, 1u);
}

TEST(FallbackRule, RateLimitedLongRetryAfterAtOnceShortOneWaits) {
    Sim s;
    s.policy.max_retry_after = 1h;
    Error shortrl = from_problem("rateLimited", 429);
    shortrl.retry_after = 30s;
    auto o = s.fail(0, shortrl);
    EXPECT_FALSE(o.fell_back);
    EXPECT_EQ(o.next.index, 0u);
    EXPECT_EQ(o.next.not_before, s.now + 30s);  // waits for the primary

    Sim l;
    Error longrl = from_problem("rateLimited", 429);
    longrl.retry_after = 168h;
    o = l.fail(0, longrl);
    EXPECT_TRUE(o.fell_back);
    EXPECT_EQ(o.why, "rate limited for 168h (Retry-After longer than 1h)");
    EXPECT_EQ(o.next.index, 1u);
    EXPECT_EQ(o.next.not_before, l.now);
    EXPECT_EQ(*l.st.find(kChain[0])->next_attempt, l.now + 168h);  // the primary's own wait
}

TEST(FallbackRule, UserSideFailuresNeverFallBack) {
    Sim s;
    s.policy.after_attempts = 1;
    for (const char* t :
         {"unauthorized", "rejectedIdentifier", "caa", "badCSR", "accountDoesNotExist"}) {
        auto o = s.fail(0, from_problem(t, 403));
        EXPECT_FALSE(o.fell_back) << t;
        EXPECT_EQ(o.next.index, 0u) << t;
        s.now = o.next.not_before;
    }
    const IssuerFailures* f = s.st.find(kChain[0]);
    EXPECT_EQ(f->failed_attempts, 5);  // the backoff still grows
    EXPECT_EQ(f->ca_failures, 0);
    EXPECT_FALSE(f->exhausted);
}

TEST(FallbackRule, ExhaustedPrimaryIsTriedAgainWhenItsBackoffEnds) {
    Sim s;
    s.policy.after_attempts = 1;
    auto o = s.fail(0, http500());  // primary: next attempt in 10 s
    ASSERT_TRUE(o.fell_back);
    o = s.fail(1, http500());  // zerossl fails too: it is exhausted (N = 1), next is internal-ca
    EXPECT_TRUE(o.fell_back);
    EXPECT_EQ(o.next.index, 2u);
    s.now += 10s;  // the primary's backoff is over: it is preferred again
    EXPECT_EQ(s.next().index, 0u);
    // Every issuer exhausted: each is tried when its own backoff ends, earliest first.
    s.fail(2, http500());
    s.fail(0, http500());  // primary's 2nd failure: next in 20 s
    auto n = s.next();
    EXPECT_EQ(n.index, 1u);  // zerossl's 10 s started earlier
    EXPECT_EQ(n.not_before, kT0 + 10s);
}

TEST(FallbackRule, RenewalStartsAtThePrimaryWithItsBackoffRespected) {
    Sim s;
    Error longrl = from_problem("rateLimited", 429);
    longrl.retry_after = 48h;
    ASSERT_TRUE(s.fail(0, longrl).fell_back);
    record_success(s.st, kChain, 1, s.now);  // zerossl issued
    ASSERT_EQ(s.st.issuers.size(), 1u);      // only the primary's running backoff is remembered
    // A renewal a day later: the primary's Retry-After still runs, so the fallback is used.
    s.now += 24h;
    prune(s.st, kChain, s.now);
    EXPECT_EQ(s.next().index, 1u);
    // Two months later it has long expired: the record goes and the primary is used.
    s.now += 60 * 24h;
    prune(s.st, kChain, s.now);
    EXPECT_TRUE(s.st.issuers.empty());
    EXPECT_EQ(s.next().index, 0u);
}

TEST(FallbackRule, SuccessWithThePrimaryForgetsEverything) {
    Sim s;
    s.fail(0, http500());
    record_success(s.st, kChain, 0, s.now);
    EXPECT_TRUE(s.st.issuers.empty());
    EXPECT_EQ(s.next().index, 0u);
}

TEST(FallbackRule, AnOrderInFlightPinsItsIssuer) {
    Sim s;
    s.policy.after_attempts = 1;
    ASSERT_TRUE(s.fail(0, http500()).fell_back);
    // The primary's order is still recorded (a restart found it): it is finished there, after
    // the primary's backoff, never abandoned for zerossl.
    auto c = s.next(0);
    EXPECT_EQ(c.index, 0u);
    EXPECT_TRUE(c.pinned);
    EXPECT_EQ(c.not_before, s.now + 10s);
    // And an order of the fallback is finished with the fallback.
    EXPECT_EQ(s.next(1).index, 1u);
}

TEST(FallbackRule, PinnedIssuerFromThePendingRecord) {
    const std::vector<std::string> servers = {"https://le/dir", "https://zero/dir", ""};
    store::PendingOrder p{.server = "https://zero/dir", .issuer = "ClusterIssuer/zerossl"};
    EXPECT_EQ(pinned_issuer(kChain, servers, p), 1u);
    p.issuer = "";  // a record written before issuers were recorded: by its server
    EXPECT_EQ(pinned_issuer(kChain, servers, p), 1u);
    p.issuer = "ClusterIssuer/letsencrypt";  // server and issuer disagree: not resumable
    EXPECT_EQ(pinned_issuer(kChain, servers, p), std::nullopt);
    p = {.server = "https://gone/dir", .issuer = "ClusterIssuer/gone"};
    EXPECT_EQ(pinned_issuer(kChain, servers, p), std::nullopt);
}

TEST(FallbackState, JsonRoundTripAndStaleEntries) {
    Sim s;
    s.policy.after_attempts = 2;
    s.fail(0, http500());
    s.now += 10s;
    s.fail(0, http500());
    json j = to_json(s.st);
    ASSERT_TRUE(j.is_array());
    EXPECT_EQ(j[0]["name"], "letsencrypt");
    EXPECT_EQ(j[0]["kind"], "ClusterIssuer");
    EXPECT_EQ(j[0]["failedAttempts"], 2);
    EXPECT_EQ(j[0]["exhausted"], true);
    EXPECT_EQ(j[0]["lastFailureReason"], "serverInternal");
    EXPECT_EQ(j[0]["failingSince"], rfc3339(kT0));
    EXPECT_EQ(fallback_state_from_json(j), s.st);
    EXPECT_TRUE(fallback_state_from_json(json("garbage")).issuers.empty());
    // An issuer removed from the list is forgotten.
    prune(s.st, {kChain[1]}, s.now);
    EXPECT_TRUE(s.st.issuers.empty());
}

// ---- spec, annotation and policy parsing
// ---------------------------------------------------------

json cert(json spec_extra) {
    json spec = {{"secretName", "web-tls"},
                 {"dnsNames", {"a.example.com"}},
                 {"issuerRef", {{"name", "letsencrypt"}, {"kind", "ClusterIssuer"}}}};
    spec.update(spec_extra);
    return {{"metadata", {{"name", "web"}, {"namespace", "shop"}}}, {"spec", spec}};
}

TEST(FallbackSpec, ParsesRefsAndPolicy) {
    auto s = parse_certificate_spec(
        cert({{"fallbackIssuerRefs",
               {{{"name", "zerossl"}, {"kind", "ClusterIssuer"}}, {{"name", "internal-ca"}}}},
              {"fallbackPolicy", {{"afterAttempts", 2}, {"afterDuration", "30m"}}}}));
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_EQ(s->fallback_issuers.size(), 2u);
    EXPECT_EQ(s->fallback_issuers[1],
              (IssuerRef{"internal-ca", "Issuer", "edgecert.io"}));  // kind defaults to Issuer
    auto chain = s->issuer_chain();
    ASSERT_EQ(chain.size(), 3u);
    EXPECT_EQ(chain[0], (IssuerRef{"letsencrypt", "ClusterIssuer", "edgecert.io"}));
    auto p = s->fallback_policy.with_defaults(FallbackPolicy{});
    EXPECT_EQ(p.after_attempts, 2);
    EXPECT_EQ(p.after_duration, 30min);
    EXPECT_EQ(p.max_retry_after, 1h);  // the controller default
    // None: the chain is the primary alone.
    auto plain = parse_certificate_spec(cert(json::object()));
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->issuer_chain().size(), 1u);
}

TEST(FallbackSpec, BadValuesNameTheField) {
    struct C {
        json extra;
        std::string says;
    };
    const std::vector<C> cases = {
        {{{"fallbackIssuerRefs", "zerossl"}}, "spec.fallbackIssuerRefs must be a list"},
        {{{"fallbackIssuerRefs", {{{"kind", "Issuer"}}}}},
         "spec.fallbackIssuerRefs[0].name is required"},
        {{{"fallbackIssuerRefs", {{{"name", "z"}, {"kind", "Vault"}}}}},
         "[0].kind must be Issuer or ClusterIssuer"},
        {{{"fallbackIssuerRefs", {{{"name", "Bad_Name"}}}}},
         "spec.fallbackIssuerRefs[0].name 'Bad_Name'"},
        {{{"fallbackIssuerRefs", {{{"name", "z"}, {"group", "cert-manager.k8s.io"}}}}},
         "is not edgecert.io"},
        {{{"fallbackIssuerRefs", {{{"name", "letsencrypt"}, {"kind", "ClusterIssuer"}}}}},
         "names spec.issuerRef again (ClusterIssuer letsencrypt)"},
        {{{"fallbackIssuerRefs", {{{"name", "z"}}, {{"name", "z"}}}}}, "names Issuer z twice"},
        {{{"fallbackPolicy", {{"afterAttempts", 0}}}},
         "afterAttempts must be an integer in 1..1000"},
        {{{"fallbackPolicy", {{"afterDuration", "0s"}}}}, "afterDuration must be at least 1s"},
        {{{"fallbackPolicy", {{"maxRetryAfter", "soon"}}}},
         "spec.fallbackPolicy.maxRetryAfter: invalid duration"},
        {{{"fallbackPolicy", {{"after", "1h"}}}}, "unknown field 'after'"},
    };
    for (const auto& c : cases) {
        auto s = parse_certificate_spec(cert(c.extra));
        ASSERT_FALSE(s) << c.extra.dump();
        EXPECT_EQ(s.error().code, ErrorCode::InvalidConfig);
        EXPECT_NE(s.error().message.find(c.says), std::string::npos) << s.error().message;
    }
}

TEST(FallbackSpec, Annotation) {
    auto r = parse_fallback_annotation("ClusterIssuer/zerossl, Issuer/internal-ca");
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[0], (IssuerRef{"zerossl", "ClusterIssuer", "edgecert.io"}));
    EXPECT_EQ((*r)[1], (IssuerRef{"internal-ca", "Issuer", "edgecert.io"}));
    struct C {
        std::string value, says;
    };
    for (const C& c :
         std::vector<C>{{"zerossl", "\"zerossl\" must be Issuer/<name> or ClusterIssuer/<name>"},
                        {"", "\"\" must be Issuer/<name> or ClusterIssuer/<name>"},
                        {"Issuer/a,", "\"\" must be"},
                        {"clusterissuer/zerossl", "kind in \"clusterissuer/zerossl\""},
                        {"Issuer/", "not a valid object name"},
                        {"Issuer/a,Issuer/a", "names Issuer a twice"}}) {
        auto bad = parse_fallback_annotation(c.value);
        ASSERT_FALSE(bad) << c.value;
        EXPECT_NE(bad.error().message.find(c.says), std::string::npos) << bad.error().message;
        EXPECT_NE(bad.error().message.find("edgecert.io/fallback-issuers"), std::string::npos);
    }
}

TEST(FallbackSpec, ShimCopiesTheAnnotationIntoEveryCertificate) {
    json ing = {{"apiVersion", "networking.k8s.io/v1"},
                {"kind", "Ingress"},
                {"metadata",
                 {{"name", "shop"},
                  {"namespace", "web"},
                  {"uid", "u1"},
                  {"annotations",
                   {{"cert-manager.io/cluster-issuer", "letsencrypt"},
                    {"edgecert.io/fallback-issuers", "ClusterIssuer/zerossl"}}}}},
                {"spec", {{"tls", {{{"hosts", {"a.example.com"}}, {"secretName", "a-tls"}}}}}}};
    auto r = desired_for_ingress(ing, {});
    ASSERT_FALSE(r.bad_config) << *r.bad_config;
    ASSERT_EQ(r.certificates.size(), 1u);
    const json& spec = r.certificates[0].object["spec"];
    EXPECT_EQ(spec["fallbackIssuerRefs"],
              json::parse(R"([{"name":"zerossl","kind":"ClusterIssuer","group":"edgecert.io"}])"));
    auto parsed = parse_certificate_spec(r.certificates[0].object);
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->issuer_chain().size(), 2u);

    ing["metadata"]["annotations"]["edgecert.io/fallback-issuers"] = "ClusterIssuer/letsencrypt";
    r = desired_for_ingress(ing, {});
    ASSERT_TRUE(r.bad_config);
    EXPECT_NE(r.bad_config->find("names the primary issuer ClusterIssuer letsencrypt again"),
              std::string::npos);
    EXPECT_TRUE(r.certificates.empty());
    ing["metadata"]["annotations"]["edgecert.io/fallback-issuers"] = "zerossl";
    r = desired_for_ingress(ing, {});
    ASSERT_TRUE(r.bad_config);
    EXPECT_FALSE(r.managed);  // nothing is deleted or rewritten on a typo
}

TEST(FallbackFormat, Durations) {
    EXPECT_EQ(format_duration(0s), "0s");
    EXPECT_EQ(format_duration(90s), "1m30s");
    EXPECT_EQ(format_duration(3600s), "1h");
    EXPECT_EQ(format_duration(168h), "168h");
    EXPECT_EQ(format_duration(9015s), "2h30m15s");
}

}  // namespace
}  // namespace edgecert::controller
