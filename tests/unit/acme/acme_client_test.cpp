// Client transport and resources: nonces, JWS (jwk/kid), retries, error mapping, accounts,
// profiles, revocation, key rollover.
#include <gtest/gtest.h>

#include "acme_test_util.h"
#include "edgecert/acme/problem.h"
#include "test_pki.h"

namespace edgecert::acme {
namespace {

using namespace testutil;
using namespace std::chrono_literals;

json pending_order() {
    return order_json("pending", {"example.com"}, {"https://ca.test/authz/1"});
}

NewOrderOptions names(std::vector<std::string> n) {
    NewOrderOptions o;
    o.dns_names = std::move(n);
    return o;
}

TEST(AcmeClient, CreateValidatesOptions) {
    ScriptedHttp http;
    FakeClock clock;
    auto bad = Client::create(http, clock, ClientOptions{.directory_url = "ftp://x"});
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ErrorCode::InvalidConfig);
    ClientOptions o{.directory_url = kDirUrl};
    o.max_bad_nonce_retries = -1;
    EXPECT_FALSE(Client::create(http, clock, o).ok());
    auto good = Client::create(http, clock, ClientOptions{.directory_url = kDirUrl});
    ASSERT_TRUE(good.ok());
    EXPECT_EQ((*good)->options().max_bad_nonce_retries, 10);
    EXPECT_EQ((*good)->options().poll_deadline, std::chrono::minutes(5));
    EXPECT_TRUE(http.requests().empty());  // nothing fetched until needed
}

TEST(AcmeClient, DirectoryIsFetchedOnceAndParsed) {
    AcmeEnv env;
    json dir = directory_json();
    dir["meta"]["caaIdentities"] = {"ca.test"};
    dir["meta"]["externalAccountRequired"] = false;
    dir["meta"]["profiles"] = {{"classic", "90 days"}, {"shortlived", "6 days"}};
    env.expect_directory(dir);
    auto d = env.client->directory();
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ(d->new_order, kNewOrderUrl);
    EXPECT_EQ(d->renewal_info, kAriUrl);
    EXPECT_EQ(d->meta.terms_of_service, "https://ca.test/tos");
    EXPECT_EQ(d->meta.caa_identities, std::vector<std::string>{"ca.test"});
    EXPECT_EQ(d->meta.profiles.at("shortlived"), "6 days");
    EXPECT_TRUE(env.client->directory().ok());  // cached: no second GET
    EXPECT_TRUE(env.client->supports_ari());
    EXPECT_EQ(env.http.remaining(), 0u);
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, BadNonceRetryUsesTheNonceFromTheErrorResponse) {
    AcmeEnv env;
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(kNewOrderUrl, 400,
                     problem_json("badNonce", "JWS has an invalid anti-replay nonce", 400).dump())
        .header("Replay-Nonce", "fresh-from-error");
    env.http.expect_post(kNewOrderUrl, 201, pending_order().dump())
        .header("Location", kOrderUrl)
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.protected_header.at("nonce"), "fresh-from-error");
        });
    auto o = env.client->new_order(names({"example.com"}));
    ASSERT_TRUE(o.ok()) << o.error().message;
    EXPECT_EQ(o->url, kOrderUrl);
    EXPECT_EQ(o->status, "pending");
    EXPECT_EQ(env.clock.total_slept(), 0s);  // badNonce is retried at once
    EXPECT_TRUE(env.http.failures().empty());
    EXPECT_EQ(env.http.remaining(), 0u);
}

TEST(AcmeClient, BadNonceRetriesAreBounded) {
    AcmeEnv env(ClientOptions{.max_bad_nonce_retries = 2});
    env.use_account();
    env.expect_prelude();
    for (int i = 0; i < 3; ++i)
        env.http.expect_post(kNewOrderUrl, 400, problem_json("badNonce", "bad nonce", 400).dump());
    auto o = env.client->new_order(names({"example.com"}));
    ASSERT_FALSE(o.ok());
    EXPECT_EQ(o.error().code, ErrorCode::BadNonce);
    EXPECT_EQ(env.http.remaining(), 0u);
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, RateLimitedCarriesRetryAfterAndIsNotRetried) {
    AcmeEnv env;
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(
            kNewOrderUrl, 429,
            problem_json("rateLimited",
                         "too many certificates (5) already issued for this exact set", 429)
                .dump())
        .header("Retry-After", "3600");
    auto o = env.client->new_order(names({"example.com"}));
    ASSERT_FALSE(o.ok());
    const Error& e = o.error();
    EXPECT_EQ(e.code, ErrorCode::RateLimited);
    ASSERT_TRUE(e.retry_after.has_value());
    EXPECT_EQ(*e.retry_after, 3600s);
    EXPECT_EQ(e.http_status, 429);
    EXPECT_EQ(e.type, problem::kRateLimited);
    EXPECT_EQ(e.message,
              "too many certificates (5) already issued for this exact set "
              "(urn:ietf:params:acme:error:rateLimited, HTTP 429)");
    EXPECT_EQ(env.clock.total_slept(), 0s);
    EXPECT_EQ(env.http.remaining(), 0u);
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, ServerErrorsAreRetriedABoundedNumberOfTimes) {
    AcmeEnv env;  // max_transient_retries = 3
    env.use_account();
    env.expect_prelude();
    for (int i = 0; i < 4; ++i)
        env.http.expect_post(kNewOrderUrl, 500,
                             problem_json("serverInternal", "database unavailable", 500).dump());
    auto o = env.client->new_order(names({"example.com"}));
    ASSERT_FALSE(o.ok());
    EXPECT_EQ(o.error().code, ErrorCode::Transient);
    EXPECT_EQ(o.error().message,
              "database unavailable (urn:ietf:params:acme:error:serverInternal, HTTP 500)");
    EXPECT_EQ(env.clock.total_slept(), 1s + 2s + 4s);
    EXPECT_EQ(env.http.remaining(), 0u);
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, TransientFailuresRecover) {
    AcmeEnv env;
    env.use_account();
    env.http.expect_transport_error("GET", kDirUrl, "connection refused");
    env.http.expect("GET", kDirUrl, 503, "<html>maintenance</html>").header("Retry-After", "7");
    env.expect_prelude();
    env.http.expect_post(kNewOrderUrl, 502, "<html>bad gateway</html>");
    env.http.expect_post(kNewOrderUrl, 201, pending_order().dump()).header("Location", kOrderUrl);
    auto o = env.client->new_order(names({"example.com"}));
    ASSERT_TRUE(o.ok()) << o.error().message;
    EXPECT_EQ(env.clock.total_slept(), 1s + 7s + 1s);  // backoff, Retry-After, backoff
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, MalformedJsonGivesAClearTransientError) {
    AcmeEnv env;
    env.use_account();
    env.expect_prelude();
    std::string html = "<html><body>" + std::string(5000, 'x') + "</body></html>";
    env.http.expect_post(kOrderUrl, 200, html);
    auto o = env.client->get_order(kOrderUrl);
    ASSERT_FALSE(o.ok());
    EXPECT_EQ(o.error().code, ErrorCode::Transient);
    EXPECT_NE(o.error().message.find("malformed order"), std::string::npos) << o.error().message;
    EXPECT_NE(o.error().message.find(kOrderUrl), std::string::npos) << o.error().message;
    EXPECT_NE(o.error().message.find("HTTP 200"), std::string::npos) << o.error().message;
    EXPECT_LT(o.error().message.size(), 400u);

    // An order missing required members is malformed too.
    env.http.expect_post(kOrderUrl, 200, json{{"status", "pending"}}.dump());
    auto m = env.client->get_order(kOrderUrl);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, ErrorCode::Transient);

    // A non-problem error body: named URL and status, body truncated to ~200 characters.
    env.http.expect_post(kOrderUrl, 403, html);
    auto f = env.client->get_order(kOrderUrl);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code, ErrorCode::Transient);
    EXPECT_EQ(f.error().http_status, 403);
    EXPECT_EQ(
        f.error().message.rfind("unexpected response from " + kOrderUrl + " (HTTP 403): <html>", 0),
        0u)
        << f.error().message;
    EXPECT_LT(f.error().message.size(), 300u);
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, ProfileIsValidatedAgainstTheDirectory) {
    AcmeEnv env;
    env.use_account();
    json dir = directory_json();
    dir["meta"]["profiles"] = {{"classic", "90 days"}, {"shortlived", "6 days"}};
    env.expect_directory(dir);
    NewOrderOptions o = names({"example.com"});
    o.profile = "tlsserver";
    auto bad = env.client->new_order(o);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ErrorCode::InvalidConfig);
    EXPECT_EQ(bad.error().message,
              "the CA does not offer profile \"tlsserver\" (it offers: classic, shortlived)");
    EXPECT_EQ(env.http.requests().size(), 1u);  // only the directory: nothing was sent

    env.expect_nonce();
    env.http.expect_post(kNewOrderUrl, 201, pending_order().dump())
        .header("Location", kOrderUrl)
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.at("profile"), "shortlived");
        });
    o.profile = "shortlived";
    auto good = env.client->new_order(o);
    ASSERT_TRUE(good.ok()) << good.error().message;
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, InvalidProfileFromTheCaIsInvalidConfig) {
    AcmeEnv env;
    env.use_account();
    env.expect_prelude();  // the directory lists no profiles: the CA decides
    env.http.expect_post(kNewOrderUrl, 400,
                         problem_json("invalidProfile", "profile \"x\" is not known", 400).dump());
    NewOrderOptions o = names({"example.com"});
    o.profile = "x";
    auto r = env.client->new_order(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
    EXPECT_EQ(r.error().type, problem::kInvalidProfile);
}

TEST(AcmeClient, NewOrderSendsReplacesAndIdentifiers) {
    AcmeEnv env;
    env.use_account();
    env.expect_prelude();
    env.http.expect_post(kNewOrderUrl, 201, pending_order().dump())
        .header("Location", kOrderUrl)
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.at("replaces"), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
            EXPECT_EQ(
                r.payload.at("identifiers"),
                json::parse(
                    R"([{"type":"dns","value":"example.com"},{"type":"dns","value":"*.example.com"},
                        {"type":"ip","value":"192.0.2.1"},{"type":"ip","value":"2001:db8::1:0:0:1"},
                        {"type":"ip","value":"::1"}])"));
        });
    NewOrderOptions o = names({"example.com", "*.example.com"});
    // RFC 8738 §3: the textual form is canonical: RFC 5952 for IPv6 (lower case, no leading
    // zeros, "::" for the longest — here the first of two equal — run of zero groups).
    o.ip_addresses = {"192.0.2.1", "2001:0DB8:0000:0000:0001:0000:0000:0001", "0:0:0:0:0:0:0:1"};
    o.replaces = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";
    auto r = env.client->new_order(o);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, NewOrderRefusesAddressesInTheWrongPlace) {
    AcmeEnv env;
    env.use_account();
    // Nothing is sent: an IP literal among DNS names, or a malformed address, is the caller's bug.
    auto misplaced = env.client->new_order(names({"example.com", "192.0.2.1"}));
    ASSERT_FALSE(misplaced.ok());
    EXPECT_EQ(misplaced.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(misplaced.error().message.find("'192.0.2.1' is an IP address"), std::string::npos);
    NewOrderOptions o = names({"example.com"});
    o.ip_addresses = {"300.1.1.1"};
    auto malformed = env.client->new_order(o);
    ASSERT_FALSE(malformed.ok());
    EXPECT_EQ(malformed.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(malformed.error().message.find("'300.1.1.1' is not an IP address"),
              std::string::npos);
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, NewAccountWithExternalAccountBinding) {
    AcmeEnv env;
    json dir = directory_json();
    dir["meta"]["externalAccountRequired"] = true;
    env.expect_directory(dir);
    // Without EAB the client refuses before sending anything.
    auto refused = env.client->new_account(env.account_key,
                                           NewAccountOptions{.terms_of_service_agreed = true});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, ErrorCode::InvalidConfig);
    EXPECT_EQ(refused.error().type, problem::kExternalAccountRequired);

    const std::string hmac = "a-32-byte-hmac-key-for-the-test!";
    env.expect_nonce();
    env.http.expect_post(kNewAccountUrl, 201, json{{"status", "valid"}}.dump(), Auth::Jwk)
        .header("Location", kAccountUrl)
        .checking([&](const testing::RecordedRequest& r) {
            const json& eab = r.payload.at("externalAccountBinding");
            auto prot = json::parse(*enc::base64url_decode(eab.at("protected").get<std::string>()));
            EXPECT_EQ(prot.at("alg"), "HS256");
            EXPECT_EQ(prot.at("kid"), "kid-1");
            EXPECT_EQ(prot.at("url"), kNewAccountUrl);
            auto payload = verify_jws(eab, json{{"kty", "oct"}, {"k", enc::base64url(hmac)}});
            ASSERT_TRUE(payload.ok()) << payload.error().message;
            EXPECT_EQ(json::parse(*payload), r.protected_header.at("jwk"));
        });
    NewAccountOptions opts;
    opts.terms_of_service_agreed = true;
    opts.eab_kid = "kid-1";
    opts.eab_hmac_key = SecretBytes(std::string(hmac));
    auto a = env.client->new_account(env.account_key, opts);
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->url, kAccountUrl);
    EXPECT_EQ(a->status, "valid");
    EXPECT_TRUE(env.client->has_account());
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, ProblemTypesMapToCodes) {
    struct Case {
        std::string type;
        int status;
        ErrorCode code;
    };
    const std::vector<Case> cases{
        {"rateLimited", 429, ErrorCode::RateLimited},
        {"badNonce", 400, ErrorCode::BadNonce},
        {"serverInternal", 500, ErrorCode::Transient},
        {"externalAccountRequired", 403, ErrorCode::InvalidConfig},
        {"invalidProfile", 400, ErrorCode::InvalidConfig},
        {"badRevocationReason", 400, ErrorCode::InvalidConfig},
        {"userActionRequired", 403, ErrorCode::InvalidConfig},
        {"accountDoesNotExist", 400, ErrorCode::NotFound},
        {"unauthorized", 403, ErrorCode::Permanent},
        {"connection", 400, ErrorCode::Permanent},
        {"dns", 400, ErrorCode::Permanent},
        {"caa", 403, ErrorCode::Permanent},
        {"tls", 400, ErrorCode::Permanent},
        {"rejectedIdentifier", 400, ErrorCode::Permanent},
        {"incorrectResponse", 403, ErrorCode::Permanent},
        {"alreadyReplaced", 409, ErrorCode::Permanent},
        {"malformed", 400, ErrorCode::Permanent},
    };
    for (const auto& c : cases) {
        HttpResponse resp{c.status, {}, problem_json(c.type, "d", c.status).dump()};
        Error e = response_to_error(resp, "https://ca.test/x", SystemTime{});
        EXPECT_EQ(e.code, c.code) << c.type;
        EXPECT_EQ(e.type, "urn:ietf:params:acme:error:" + c.type);
        EXPECT_EQ(e.message, "d (urn:ietf:params:acme:error:" + c.type + ", HTTP " +
                                 std::to_string(c.status) + ")");
    }
    // userActionRequired names the instance URL (§7.3.3: new terms of service).
    json uar = problem_json("userActionRequired", "Terms of service have changed", 403);
    uar["instance"] = "https://ca.test/tos-v2";
    Error e = response_to_error(HttpResponse{403, {}, uar.dump()}, "u", SystemTime{});
    EXPECT_EQ(e.message,
              "Terms of service have changed; see https://ca.test/tos-v2 "
              "(urn:ietf:params:acme:error:userActionRequired, HTTP 403)");
    // Subproblems (§6.7.1) land in details.
    json comp = problem_json("rejectedIdentifier", "Some identifiers were rejected", 400);
    comp["subproblems"] =
        json::array({json{{"type", "urn:ietf:params:acme:error:rejectedIdentifier"},
                          {"detail", "blocked name"},
                          {"identifier", {{"type", "dns"}, {"value", "bad.example"}}}},
                     json{{"type", "urn:ietf:params:acme:error:caa"},
                          {"detail", "CAA forbids"},
                          {"identifier", {{"type", "dns"}, {"value", "caa.example"}}}}});
    Error s = response_to_error(HttpResponse{400, {}, comp.dump()}, "u", SystemTime{});
    EXPECT_EQ(s.details,
              (std::vector<std::string>{
                  "bad.example: urn:ietf:params:acme:error:rejectedIdentifier: blocked name",
                  "caa.example: urn:ietf:params:acme:error:caa: CAA forbids"}));
    EXPECT_EQ(s.message.find('\n'), std::string::npos);
    // A 5xx whose problem type is a client error is still the server failing.
    EXPECT_EQ(response_to_error(HttpResponse{503, {}, problem_json("malformed", "x", 503).dump()},
                                "u", SystemTime{})
                  .code,
              ErrorCode::Transient);
}

TEST(AcmeClient, AccountLifecycleAndKeyRollover) {
    AcmeEnv env;
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(kAccountUrl, 200,
                     json{{"status", "valid"}, {"contact", {"mailto:a@example.com"}}}.dump())
        .checking([](const testing::RecordedRequest& r) { EXPECT_TRUE(r.post_as_get); });
    auto a = env.client->fetch_account();
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->contact, std::vector<std::string>{"mailto:a@example.com"});

    PrivateKey new_key = testpki::ec_key();
    env.http.expect_post(kKeyChangeUrl, 200, "{}").checking([&](const testing::RecordedRequest& r) {
        // §7.3.5: the payload is a JWS signed by the new key over {account, oldKey}.
        auto inner = verify_jws(r.payload, new_key.public_jwk());
        ASSERT_TRUE(inner.ok()) << inner.error().message;
        json body = json::parse(*inner);
        EXPECT_EQ(body.at("account"), kAccountUrl);
        EXPECT_EQ(body.at("oldKey"), env.account_key.public_jwk());
    });
    ASSERT_TRUE(env.client->key_change(new_key).ok());
    // From now on requests are signed with the new key (the fake verifies against it).
    env.http.set_account(new_key.public_jwk(), kAccountUrl);
    env.http.expect_post(kAccountUrl, 200, json{{"status", "deactivated"}}.dump())
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.at("status"), "deactivated");
        });
    auto d = env.client->deactivate_account();
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ(d->status, "deactivated");
    EXPECT_TRUE(env.http.failures().empty());
    EXPECT_EQ(env.http.remaining(), 0u);
}

TEST(AcmeClient, RevocationByAccountAndByCertificateKey) {
    AcmeEnv env;
    env.use_account();
    env.expect_prelude();
    testpki::Hierarchy ca("Root", "Int", env.clock.now());
    PrivateKey cert_key = testpki::ec_key();
    Certificate leaf = ca.leaf(cert_key, {"example.com"}, env.clock.now());
    env.http.expect_post(kRevokeUrl, 200).checking([&](const testing::RecordedRequest& r) {
        EXPECT_EQ(r.payload.at("certificate"), enc::base64url(leaf.to_der()));
        EXPECT_EQ(r.payload.at("reason"), 4);
    });
    ASSERT_TRUE(env.client->revoke(leaf, RevocationReason::Superseded).ok());

    env.http.expect_post(kRevokeUrl, 200, {}, Auth::Jwk)
        .checking([&](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.protected_header.at("jwk"), cert_key.public_jwk());
            EXPECT_FALSE(r.payload.contains("reason"));
        });
    ASSERT_TRUE(env.client->revoke_with_cert_key(leaf, cert_key).ok());

    // The wrong key is refused locally.
    auto wrong = env.client->revoke_with_cert_key(leaf, testpki::ec_key());
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.error().code, ErrorCode::InvalidConfig);

    env.http.expect_post(kRevokeUrl, 400,
                         problem_json("alreadyRevoked", "Certificate already revoked", 400).dump());
    auto again = env.client->revoke(leaf);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().type, problem::kAlreadyRevoked);
    EXPECT_TRUE(env.http.failures().empty());
    EXPECT_EQ(env.http.remaining(), 0u);
}

TEST(AcmeClient, PollingStopsAtTheDeadline) {
    AcmeEnv env(ClientOptions{.poll_deadline = std::chrono::seconds(60)});
    env.use_account();
    env.expect_prelude();
    const std::string authz = "https://ca.test/authz/1";
    json pending = authz_json("pending", "example.com",
                              json::array({challenge_json("http-01", "https://ca.test/c", "t")}));
    // Retry-After 100 is clamped to 30 s: polls at 0, 30, 60 -> the next would pass 60 s.
    for (int i = 0; i < 3; ++i)
        env.http.expect_post(authz, 200, pending.dump()).header("Retry-After", "100");
    auto r = env.client->wait_authorization(authz);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Transient);
    EXPECT_EQ(r.error().message.rfind(
                  "timed out after 60 s waiting for the authorization of example.com", 0),
              0u)
        << r.error().message;
    EXPECT_EQ(env.clock.total_slept(), 60s);
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, LinkHeaderParsing) {
    std::vector<std::string> v{"<https://a/1>;rel=\"alternate\"",
                               "<https://a/up>;rel=\"up\", <https://a/2> ; rel=alternate",
                               "<https://a/3>; title=\"x\"; rel=\"index alternate\""};
    EXPECT_EQ(parse_link_headers(v, "alternate"),
              (std::vector<std::string>{"https://a/1", "https://a/2", "https://a/3"}));
    EXPECT_EQ(parse_link_headers(v, "up"), std::vector<std::string>{"https://a/up"});
    EXPECT_TRUE(parse_link_headers({"garbage", "<unterminated"}, "alternate").empty());
}

TEST(AcmeClient, RequestHookSeesEveryExchange) {
    std::vector<std::string> seen;
    ClientOptions o;
    o.on_request = [&](const RequestEvent& ev) {
        seen.push_back(std::string(ev.method) + " " + std::string(ev.resource) + " " +
                       std::to_string(ev.status) +
                       (ev.problem_type.empty() ? "" : " " + std::string(ev.problem_type)));
    };
    AcmeEnv env(o);
    env.use_account();
    env.expect_prelude();
    env.http.expect_post(kNewOrderUrl, 400, problem_json("badNonce", "stale", 400).dump());
    env.http
        .expect_post(kNewOrderUrl, 201,
                     order_json("pending", {"a.example"}, {"https://ca.test/authz/1"}).dump())
        .header("Location", kOrderUrl);
    env.http.expect_transport_error("POST", "https://ca.test/authz/1", "connection reset").auth =
        Auth::Kid;
    env.expect_nonce();  // the lost response carried no nonce: the pool is empty again
    env.http
        .expect_post("https://ca.test/authz/1", 200,
                     authz_json("deactivated", "a.example", json::array()).dump())
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.at("status"), "deactivated");
        });
    NewOrderOptions no;
    no.dns_names = {"a.example"};
    ASSERT_TRUE(env.client->new_order(no).ok());
    auto d = env.client->deactivate_authorization("https://ca.test/authz/1");
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ(d->status, "deactivated");
    EXPECT_EQ(seen,
              (std::vector<std::string>{"GET directory 200", "HEAD newNonce 200",
                                        "POST newOrder 400 urn:ietf:params:acme:error:badNonce",
                                        "POST newOrder 201", "POST authz 0", "HEAD newNonce 200",
                                        "POST authz 200"}));
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, TransportErrorsNameTheRequest) {
    AcmeEnv env(ClientOptions{.max_transient_retries = 0});
    env.http.expect_transport_error("GET", kDirUrl, "Could not resolve host: ca.test");
    auto d = env.client->directory();
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, ErrorCode::Transient);
    EXPECT_EQ(d.error().message, "GET " + kDirUrl + ": Could not resolve host: ca.test");
}

TEST(AcmeClient, UpdateContactsAndKeyAuthorization) {
    AcmeEnv env;
    EXPECT_FALSE(env.client->key_authorization("t").ok());  // no account yet
    EXPECT_FALSE(env.client->account_key().has_value());
    env.use_account();
    EXPECT_EQ(env.client->account_url(), kAccountUrl);
    EXPECT_EQ(*env.client->key_authorization("tok"), "tok." + env.account_key.thumbprint());
    env.expect_prelude();
    env.http
        .expect_post(kAccountUrl, 200,
                     json{{"status", "valid"}, {"contact", {"mailto:b@example.com"}}}.dump())
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.at("contact"), json::array({"mailto:b@example.com"}));
        });
    auto a = env.client->update_contacts({"mailto:b@example.com"});
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->contact, std::vector<std::string>{"mailto:b@example.com"});
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, RelativeLocationAndLinkAreResolved) {
    AcmeEnv env;
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(kNewOrderUrl, 201,
                     order_json("pending", {"a.example"}, {"https://ca.test/authz/1"}).dump())
        .header("Location", "/order/1");
    NewOrderOptions no;
    no.dns_names = {"a.example"};
    auto o = env.client->new_order(no);
    ASSERT_TRUE(o.ok()) << o.error().message;
    EXPECT_EQ(o->url, kOrderUrl);

    PrivateKey leaf_key = testpki::ec_key();
    testpki::Hierarchy ca("Root", "Int", env.clock.now());
    std::string pem =
        chain_to_pem({ca.leaf(leaf_key, {"a.example"}, env.clock.now()), ca.intermediate});
    env.http.expect_post(kCertUrl, 200, pem)
        .header("Link", "</cert/1/alt>;rel=\"alternate\"")
        .header("Link", "<alt2>;rel=\"alternate\"");
    env.http.expect_post("https://ca.test/cert/1/alt", 200, pem);
    env.http.expect_post("https://ca.test/cert/alt2", 200, pem);
    auto chains = env.client->download_certificate(kCertUrl);
    ASSERT_TRUE(chains.ok()) << chains.error().message;
    ASSERT_EQ(chains->size(), 3u);
    EXPECT_EQ((*chains)[2].url, "https://ca.test/cert/alt2");
    EXPECT_TRUE(env.http.failures().empty());
}

TEST(AcmeClient, EnsureAccountRefusesADeactivatedAccount) {
    AcmeEnv env;
    env.expect_prelude();
    env.http.expect_post(kNewAccountUrl, 200, json{{"status", "deactivated"}}.dump(), Auth::Jwk)
        .header("Location", kAccountUrl);
    auto a = ensure_account(*env.client, env.account_key, NewAccountOptions{});
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.error().code, ErrorCode::InvalidConfig);
    EXPECT_EQ(a.error().message, "the ACME account " + kAccountUrl +
                                     " for this key is deactivated: use a new account key");
}

TEST(AcmeClient, CancelStopsPollingPromptly) {
    std::atomic<bool> cancel{false};
    ClientOptions o;
    o.cancel = &cancel;
    int exchanges = 0;
    o.on_request = [&](const RequestEvent&) {
        if (++exchanges == 4) cancel = true;  // during the second authorization poll
    };
    AcmeEnv env(o);
    env.use_account();
    env.expect_prelude();
    const std::string authz = "https://ca.test/authz/1";
    json pending = authz_json("pending", "example.com",
                              json::array({challenge_json("http-01", "https://ca.test/c", "t")}));
    env.http.expect_post(authz, 200, pending.dump()).header("Retry-After", "20");
    env.http.expect_post(authz, 200, pending.dump()).header("Retry-After", "20");
    auto r = env.client->wait_authorization(authz);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "ACME request cancelled");
    EXPECT_EQ(env.clock.total_slept(), std::chrono::seconds(20));  // the first wait only
    EXPECT_EQ(env.http.remaining(), 0u);
    EXPECT_FALSE(env.client->directory().ok() && env.client->get_order(kOrderUrl).ok());
    EXPECT_TRUE(env.http.failures().empty());
}

}  // namespace
}  // namespace edgecert::acme
