#include "edgecert/k8s/client.h"

#include <gtest/gtest.h>

#include "unit/k8s/fake_http.h"

namespace edgecert::k8s {
namespace {

using testing::FakeHttp;
using testing::json_response;
using testing::path_of;
using testing::query_param;
using testing::status_body;

TEST(ResourceType, Paths) {
    EXPECT_EQ(resources::Secret.collection_path("ns1"), "/api/v1/namespaces/ns1/secrets");
    EXPECT_EQ(resources::Secret.collection_path(""), "/api/v1/secrets");
    EXPECT_EQ(resources::Secret.object_path("ns1", "a"), "/api/v1/namespaces/ns1/secrets/a");
    EXPECT_EQ(resources::Ingress.object_path("x", "web", "status"),
              "/apis/networking.k8s.io/v1/namespaces/x/ingresses/web/status");
    EXPECT_EQ(resources::Namespace.object_path("ignored", "kube-system"),
              "/api/v1/namespaces/kube-system");
    EXPECT_EQ(resources::GatewayClass.collection_path("x"),
              "/apis/gateway.networking.k8s.io/v1/gatewayclasses");
    EXPECT_EQ(resources::Lease.api_version(), "coordination.k8s.io/v1");
    EXPECT_EQ(resources::Secret.api_version(), "v1");
    EXPECT_EQ(resources::Ingress.qualified_plural(), "ingresses.networking.k8s.io");
}

TEST(Meta, AccessorsAndSetters) {
    json o =
        json::parse(R"({"metadata":{"name":"a","namespace":"n","uid":"u1","resourceVersion":"7",
        "labels":{"x":"1","bad":2},"annotations":{"k":"v"},"finalizers":["f1"],
        "deletionTimestamp":"2026-01-01T00:00:00Z",
        "ownerReferences":[{"apiVersion":"v1","kind":"Thing","name":"o","uid":"ou","controller":true}]}})");
    EXPECT_EQ(meta::name(o), "a");
    EXPECT_EQ(meta::namespace_(o), "n");
    EXPECT_EQ(meta::uid(o), "u1");
    EXPECT_EQ(meta::resource_version(o), "7");
    EXPECT_EQ(meta::labels(o).size(), 1u);  // the non-string value is skipped
    EXPECT_EQ(meta::annotation(o, "k").value(), "v");
    EXPECT_FALSE(meta::label(o, "nope").has_value());
    EXPECT_EQ(meta::finalizers(o), std::vector<std::string>{"f1"});
    EXPECT_TRUE(meta::is_deleting(o));
    auto refs = meta::owner_references(o);
    ASSERT_EQ(refs.size(), 1u);
    EXPECT_TRUE(refs[0].controller);
    EXPECT_EQ(refs[0].uid, "ou");
    EXPECT_EQ(meta::key(o), "n/a");

    json e;  // setters build metadata from nothing
    meta::set_name(e, "b");
    meta::set_label(e, "l", "v");
    meta::set_annotation(e, "a", "b");
    EXPECT_EQ(meta::key(e), "b");
    EXPECT_EQ(meta::label(e, "l").value(), "v");
    EXPECT_EQ(meta::name(json("not an object")), "");
}

TEST(Time, FormatAndParse) {
    SystemTime t = SystemTime(std::chrono::seconds(1767225600)) + std::chrono::microseconds(123456);
    EXPECT_EQ(format_time(t), "2026-01-01T00:00:00Z");
    EXPECT_EQ(format_micro_time(t), "2026-01-01T00:00:00.123456Z");
    EXPECT_EQ(parse_time("2026-01-01T00:00:00.123456Z").value(), t);
    EXPECT_EQ(parse_time("2026-01-01T01:00:00.123456+01:00").value(), t);
    EXPECT_EQ(parse_time("2026-01-01T00:00:00Z").value(),
              SystemTime(std::chrono::seconds(1767225600)));
    EXPECT_FALSE(parse_time("2026-01-01 00:00:00").ok());
    EXPECT_FALSE(parse_time("2026-01-01T00:00:00").ok());
}

// Years past 2262 overflowed SystemTime (undefined behaviour), as in acme::parse_rfc3339 where the
// acme_json fuzz target found it; they saturate the same way, and format and parse back.
TEST(Time, OutsideSystemTimeSaturates) {
    EXPECT_EQ(parse_time("9999-12-31T23:59:59Z").value(), kSystemTimeMax);
    EXPECT_EQ(parse_time("9999-12-31T23:59:59.999999Z").value(), kSystemTimeMax);
    EXPECT_EQ(parse_time("1000-01-01T00:00:00Z").value(), kSystemTimeMin);
    EXPECT_EQ(parse_time(format_micro_time(kSystemTimeMax)).value(), kSystemTimeMax);
    EXPECT_EQ(parse_time(format_time(kSystemTimeMin)).value(), kSystemTimeMin);
}

// Found reviewing the k8s_object fuzz target, confirmed by ASan (tests/data/fuzz-corpus/k8s_object/
// heap-overflow-short-utc-offset): a one-digit offset read past the end of the string.
TEST(Time, UtcOffsetMustBeHhColonMm) {
    for (const char* bad : {"2026-01-01T00:00:00+1:2", "2026-01-01T00:00:00+01:2", "2026-01-01T00:00:00+1",
                            "2026-01-01T00:00:00-", "2026-01-01T00:00:00+0100", "2026-01-01T00:00:00+01:00junk"})
        EXPECT_FALSE(parse_time(bad).ok()) << bad;
    EXPECT_EQ(parse_time("2026-01-01T01:30:00+01:30").value(), SystemTime(std::chrono::seconds(1767225600)));
    EXPECT_EQ(parse_time("2025-12-31T22:30:00-01:30").value(), SystemTime(std::chrono::seconds(1767225600)));
}

struct StatusCase {
    int http;
    std::string reason;
    ErrorCode code;
};

TEST(StatusError, MapsCodesAndReasons) {
    std::vector<StatusCase> cases = {
        {409, "Conflict", ErrorCode::Conflict},
        {409, "AlreadyExists", ErrorCode::AlreadyExists},
        {404, "NotFound", ErrorCode::NotFound},
        {410, "Expired", ErrorCode::Gone},
        {410, "Gone", ErrorCode::Gone},
        {429, "TooManyRequests", ErrorCode::RateLimited},
        {401, "Unauthorized", ErrorCode::Unauthorized},
        {403, "Forbidden", ErrorCode::Forbidden},
        {422, "Invalid", ErrorCode::InvalidConfig},
        {400, "BadRequest", ErrorCode::InvalidConfig},
        {500, "InternalError", ErrorCode::Transient},
        {503, "ServiceUnavailable", ErrorCode::Transient},
        {504, "Timeout", ErrorCode::Transient},
    };
    for (auto& c : cases) {
        Error e =
            status_error(c.http, status_body(c.http, c.reason, "secrets \\\"a\\\" msg\\nline2"),
                         std::nullopt, "op");
        EXPECT_EQ(e.code, c.code) << c.http << " " << c.reason;
        EXPECT_EQ(e.type, c.reason);
        EXPECT_EQ(e.http_status, c.http);
        EXPECT_EQ(e.message.find('\n'), std::string::npos) << "one line";
        EXPECT_NE(e.message.find("msg"), std::string::npos);
    }
    // Not a Status body (a proxy's HTML page): the HTTP status decides.
    EXPECT_EQ(status_error(502, "<html>bad gateway</html>", std::nullopt, "op").code,
              ErrorCode::Transient);
    EXPECT_EQ(status_error(404, "", std::nullopt, "op").code, ErrorCode::NotFound);
    Error rl = status_error(429, status_body(429, "TooManyRequests", "slow down"), "7", "op");
    EXPECT_EQ(rl.code, ErrorCode::RateLimited);
    ASSERT_TRUE(rl.retry_after.has_value());
    EXPECT_EQ(rl.retry_after->count(), 7);
    // A watch ERROR event's Status.
    json st = json::parse(status_body(410, "Expired", "too old resource version: 5 (49)"));
    EXPECT_EQ(status_object_error(st, "watch").code, ErrorCode::Gone);
}

class ClientTest : public ::testing::Test {
  protected:
    FakeHttp http;
    FakeClock clock;
    Client client{http, ClientOptions{"https://api.test:6443/", nullptr}, clock};
};

TEST_F(ClientTest, GetBuildsUrlAndDecodes) {
    http.on_send = [](const HttpRequest& r) -> Result<HttpResponse> {
        EXPECT_EQ(r.method, "GET");
        EXPECT_EQ(r.url, "https://api.test:6443/api/v1/namespaces/n/secrets/s");
        EXPECT_EQ(testing::header(r, "Accept"), "application/json");
        return json_response(200, R"({"metadata":{"name":"s","namespace":"n"}})");
    };
    auto r = client.get(resources::Secret, "n", "s");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(meta::name(*r), "s");
}

TEST_F(ClientTest, GetNotFound) {
    http.on_send = [](const HttpRequest&) -> Result<HttpResponse> {
        return json_response(404, status_body(404, "NotFound", "secrets \\\"s\\\" not found"));
    };
    auto r = client.get(resources::Secret, "n", "s");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::NotFound);
    EXPECT_NE(r.error().message.find("not found"), std::string::npos);
}

TEST_F(ClientTest, TransportErrorIsTransient) {
    http.on_send = [](const HttpRequest&) -> Result<HttpResponse> {
        return Error(ErrorCode::Transient, "connect refused");
    };
    auto r = client.get(resources::Secret, "n", "s");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Transient);
}

TEST_F(ClientTest, ListFollowsContinueTokensAndKeepsFirstRv) {
    int page = 0;
    http.on_send = [&](const HttpRequest& r) -> Result<HttpResponse> {
        EXPECT_EQ(path_of(r.url), "/api/v1/namespaces/n/secrets");
        EXPECT_EQ(query_param(r.url, "limit"), "2");
        EXPECT_EQ(query_param(r.url, "labelSelector"), "app%3Dweb%2Ctier%21%3Ddb");
        ++page;
        if (page == 1) {
            EXPECT_EQ(query_param(r.url, "continue"), "");
            return json_response(
                200,
                R"({"kind":"SecretList","metadata":{"resourceVersion":"100","continue":"tok 1"},
                "items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]})");
        }
        EXPECT_EQ(query_param(r.url, "continue"), "tok%201");
        EXPECT_EQ(query_param(r.url, "resourceVersion"), "") << "continue replaces the RV";
        return json_response(
            200, R"({"metadata":{"resourceVersion":"100"},"items":[{"metadata":{"name":"c"}}]})");
    };
    ListOptions lo;
    lo.label_selector = "app=web,tier!=db";
    lo.limit = 2;
    auto r = client.list(resources::Secret, "n", lo);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(page, 2);
    ASSERT_EQ(r->items.size(), 3u);
    EXPECT_EQ(meta::name(r->items[2]), "c");
    EXPECT_EQ(r->resource_version, "100");
}

TEST_F(ClientTest, ListExpiredContinueIsGone) {
    http.on_send = [&](const HttpRequest&) -> Result<HttpResponse> {
        return json_response(
            410, status_body(410, "Expired", "The provided continue parameter is too old"));
    };
    auto r = client.list(resources::Secret, "n");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Gone);
}

TEST_F(ClientTest, CreateFillsTypeMetaAndNamespace) {
    http.on_send = [](const HttpRequest& r) -> Result<HttpResponse> {
        EXPECT_EQ(r.method, "POST");
        EXPECT_EQ(path_of(r.url), "/apis/coordination.k8s.io/v1/namespaces/ns/leases");
        EXPECT_EQ(query_param(r.url, "fieldManager"), "edgecert");
        EXPECT_EQ(testing::header(r, "Content-Type"), "application/json");
        json b = json::parse(r.body);
        EXPECT_EQ(b["apiVersion"], "coordination.k8s.io/v1");
        EXPECT_EQ(b["kind"], "Lease");
        EXPECT_EQ(b["metadata"]["namespace"], "ns");
        return json_response(201, r.body);
    };
    WriteOptions wo;
    wo.field_manager = "edgecert";
    auto r = client.create(resources::Lease, "ns", json{{"metadata", {{"name", "l"}}}}, wo);
    ASSERT_TRUE(r.ok()) << r.error().message;
}

TEST_F(ClientTest, CreateAlreadyExists) {
    http.on_send = [](const HttpRequest&) -> Result<HttpResponse> {
        return json_response(409,
                             status_body(409, "AlreadyExists", "secrets \\\"a\\\" already exists"));
    };
    auto r = client.create(resources::Secret, "n", json{{"metadata", {{"name", "a"}}}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::AlreadyExists);
}

TEST_F(ClientTest, UpdateAndUpdateStatusUsePut) {
    std::vector<std::string> paths;
    http.on_send = [&](const HttpRequest& r) -> Result<HttpResponse> {
        EXPECT_EQ(r.method, "PUT");
        paths.push_back(path_of(r.url));
        EXPECT_EQ(json::parse(r.body)["metadata"]["resourceVersion"], "5");
        return json_response(200, r.body);
    };
    json obj = {{"metadata", {{"name", "web"}, {"namespace", "n"}, {"resourceVersion", "5"}}}};
    ASSERT_TRUE(client.update(resources::Ingress, obj).ok());
    ASSERT_TRUE(client.update_status(resources::Ingress, obj).ok());
    EXPECT_EQ(paths[0], "/apis/networking.k8s.io/v1/namespaces/n/ingresses/web");
    EXPECT_EQ(paths[1], "/apis/networking.k8s.io/v1/namespaces/n/ingresses/web/status");
    EXPECT_FALSE(client.update(resources::Ingress, json::object()).ok());
}

TEST_F(ClientTest, PatchContentTypes) {
    std::vector<std::pair<std::string, std::string>> seen;
    http.on_send = [&](const HttpRequest& r) -> Result<HttpResponse> {
        seen.emplace_back(testing::header(r, "Content-Type"), r.url);
        return json_response(200, "{}");
    };
    json p = {{"metadata", {{"labels", {{"a", "b"}}}}}};
    ASSERT_TRUE(client.patch(resources::Secret, "n", "s", PatchType::Merge, p).ok());
    ASSERT_TRUE(client.patch(resources::Secret, "n", "s", PatchType::StrategicMerge, p).ok());
    ASSERT_TRUE(client
                    .patch(resources::Secret, "n", "s", PatchType::Json,
                           json::parse(R"([{"op":"replace","path":"/data","value":{}}])"))
                    .ok());
    EXPECT_FALSE(client.patch(resources::Secret, "n", "s", PatchType::Apply, p).ok())
        << "apply without a field manager";
    ASSERT_TRUE(client
                    .apply(resources::Secret,
                           json{{"metadata", {{"name", "s"}, {"namespace", "n"}}}}, "edgecert",
                           true)
                    .ok());
    ASSERT_EQ(seen.size(), 4u);
    EXPECT_EQ(seen[0].first, "application/merge-patch+json");
    EXPECT_EQ(seen[1].first, "application/strategic-merge-patch+json");
    EXPECT_EQ(seen[2].first, "application/json-patch+json");
    EXPECT_EQ(seen[3].first, "application/apply-patch+yaml");
    EXPECT_EQ(query_param(seen[3].second, "fieldManager"), "edgecert");
    EXPECT_EQ(query_param(seen[3].second, "force"), "true");
}

TEST_F(ClientTest, DeleteSendsPreconditionsAndPolicy) {
    http.on_send = [&](const HttpRequest& r) -> Result<HttpResponse> {
        EXPECT_EQ(r.method, "DELETE");
        json b = json::parse(r.body);
        EXPECT_EQ(b["preconditions"]["uid"], "u1");
        EXPECT_EQ(b["preconditions"]["resourceVersion"], "9");
        EXPECT_EQ(b["propagationPolicy"], "Foreground");
        return json_response(200, R"({"kind":"Status","status":"Success"})");
    };
    DeleteOptions d;
    d.precondition_uid = "u1";
    d.precondition_resource_version = "9";
    d.propagation_policy = "Foreground";
    EXPECT_TRUE(client.remove(resources::Secret, "n", "s", d).ok());
}

class CountingTokens final : public TokenSource {
  public:
    Result<SecretBytes> token() override { return SecretBytes("tok-" + std::to_string(gen)); }
    void invalidate() override { ++gen; }
    int gen = 1;
};

TEST(ClientAuth, BearerHeaderAndRetryOnceAfter401) {
    FakeHttp http;
    auto tokens = std::make_shared<CountingTokens>();
    Client client(http, ClientOptions{"http://x", tokens});
    http.on_send = [&](const HttpRequest& r) -> Result<HttpResponse> {
        if (testing::header(r, "Authorization") == "Bearer tok-1")
            return json_response(401, status_body(401, "Unauthorized", "Unauthorized"));
        EXPECT_EQ(testing::header(r, "Authorization"), "Bearer tok-2");
        return json_response(200, "{}");
    };
    ASSERT_TRUE(client.get(resources::Secret, "n", "s").ok());
    EXPECT_EQ(http.request_count(), 2u);
    // A token that keeps failing gives Unauthorized after one retry, not a loop.
    http.on_send = [&](const HttpRequest&) -> Result<HttpResponse> {
        return json_response(401, status_body(401, "Unauthorized", "Unauthorized"));
    };
    auto r = client.get(resources::Secret, "n", "s");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Unauthorized);
    EXPECT_EQ(http.request_count(), 4u);
    EXPECT_EQ(r.error().message.find("tok-"), std::string::npos) << "no token in messages";
}

TEST(RetryOnConflict, RetriesOnlyConflicts) {
    int calls = 0;
    auto r = retry_on_conflict([&]() -> Result<int> {
        if (++calls < 3) return Error(ErrorCode::Conflict, "stale");
        return 42;
    });
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(calls, 3);
    calls = 0;
    auto nf = retry_on_conflict([&]() -> Result<int> {
        ++calls;
        return Error(ErrorCode::NotFound, "gone");
    });
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(nf.error().code, ErrorCode::NotFound);
    calls = 0;
    auto always = retry_on_conflict(
        [&]() -> Result<int> {
            ++calls;
            return Error(ErrorCode::Conflict, "stale");
        },
        4);
    EXPECT_EQ(calls, 4);
    EXPECT_FALSE(always.ok());
}

}  // namespace
}  // namespace edgecert::k8s
