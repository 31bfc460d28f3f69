// RFC 2136 client, propagation checker and providers against the in-memory server (fake_dns.h):
// every message goes through wire format and TSIG; time is a FakeClock.
#include "dns/rfc2136.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dns/propagation.h"
#include "dns/provider.h"
#include "unit/dns/fake_dns.h"

namespace edgecert::dns {
namespace {

using namespace std::chrono_literals;
using testing::FakeDnsServer;
using testing::FakeTransport;

const char* kName = "_acme-challenge.example.test.";

struct Fixture : ::testing::Test {
    FakeDnsServer primary;
    FakeTransport transport;
    FakeClock clock;
    void SetUp() override {
        primary.key = testing::test_key();
        transport.servers["127.0.0.1:5300"] = &primary;
    }
    std::unique_ptr<Rfc2136Client> client(std::optional<TsigKey> key = testing::test_key(),
                                          std::string zone = "") {
        Rfc2136Options o;
        o.server = Endpoint{"127.0.0.1", 5300};
        o.tsig = std::move(key);
        o.zone = std::move(zone);
        return Rfc2136Client::create(std::move(o), transport).value();
    }
    std::unique_ptr<PropagationChecker> checker(std::vector<Endpoint> servers = {},
                                                std::chrono::milliseconds timeout = 10s) {
        PropagationOptions o;
        o.nameserver = Endpoint{"127.0.0.1", 5300};
        o.servers = std::move(servers);
        o.timeout = timeout;
        o.poll_interval = 1s;
        return PropagationChecker::create(std::move(o), transport, clock).value();
    }
};

using Rfc2136 = Fixture;
using Propagation = Fixture;

TEST_F(Rfc2136, FindsTheZoneBySoaWalk) {
    auto c = client();
    EXPECT_EQ(c->find_zone("_acme-challenge.deep.sub.example.test").value(), "example.test.");
    EXPECT_EQ(c->find_zone("example.test").value(), "example.test.");
    // A name the server is not authoritative for: REFUSED all the way up.
    auto e = c->find_zone("_acme-challenge.other.test");
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(e.error().message.find("set the zone explicitly"), std::string::npos);
    // A configured zone is used as is, and must contain the name.
    auto z = client(testing::test_key(), "Example.Test");
    EXPECT_EQ(z->find_zone(kName).value(), "example.test.");
    EXPECT_EQ(z->find_zone("_acme-challenge.other.test").error().code, ErrorCode::InvalidConfig);
}

TEST_F(Rfc2136, AddsAndDeletesOnlyItsOwnValue) {
    auto c = client();
    // A wildcard and its base name share one TXT name with two values.
    ASSERT_TRUE(c->add_txt(kName, "wildcard-value").ok());
    ASSERT_TRUE(c->add_txt(kName, "apex-value").ok());
    EXPECT_EQ(primary.txt[kName], (std::set<std::string>{"apex-value", "wildcard-value"}));
    ASSERT_TRUE(c->delete_txt(kName, "wildcard-value").ok());
    EXPECT_EQ(primary.txt[kName], (std::set<std::string>{"apex-value"}));
    ASSERT_TRUE(c->delete_txt(kName, "apex-value").ok());
    EXPECT_EQ(primary.txt.count(kName), 0u);
    // Deleting a value that is not there is harmless (RFC 2136 §3.4.2.4).
    EXPECT_TRUE(c->delete_txt(kName, "never-added").ok());
}

TEST_F(Rfc2136, WrongSecretIsAClearConfigErrorAndChangesNothing) {
    auto c = client(testing::test_key("d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldCB3cm9uZyBzZWNyZXQ="));
    auto st = c->add_txt(kName, "v");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(
        st.error().message.find("TSIG verification failed (BADSIG/BADKEY) for key edgecert-test"),
        std::string::npos)
        << st.error().message;
    EXPECT_TRUE(primary.txt.empty());
}

TEST_F(Rfc2136, UnsignedUpdateToAKeyedZoneFailsAndRefusedIsConfig) {
    auto c = client(std::nullopt);
    auto st = c->add_txt(kName, "v");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(st.error().message.find("NOTAUTH"), std::string::npos);
    primary.accept_updates = false;
    auto r = client()->add_txt(kName, "v");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("REFUSED"), std::string::npos);
    EXPECT_TRUE(primary.txt.empty());
}

TEST_F(Rfc2136, UnreachableServerIsTransient) {
    transport.servers.clear();
    auto st = client(testing::test_key(), "example.test")->add_txt(kName, "v");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::Transient);
    // The SOA walk stops at the first unanswered query instead of blaming the zone.
    auto z = client()->find_zone(kName);
    ASSERT_FALSE(z.ok());
    EXPECT_EQ(z.error().code, ErrorCode::Transient);
    EXPECT_EQ(transport.log.size(), 2u);
}

TEST_F(Propagation, FindsTheNsSetGlueResolverAndFallback) {
    primary.ns = {"ns1.example.test.", "ns2.example.test.", "ns3.elsewhere.test.",
                  "ns4.nowhere.test."};
    primary.addresses = {{"ns1.example.test.", "127.0.0.1"}, {"ns2.example.test.", "127.0.0.2"}};
    transport.hosts["ns3.elsewhere.test"] = {"127.0.0.3"};
    auto servers = checker()->authoritative_servers("example.test.");
    ASSERT_TRUE(servers.ok()) << servers.error().message;
    // Every NS address is asked on the configured nameserver's port; ns4 has no address, so the
    // configured server (already in the list) stands in for it.
    EXPECT_EQ(*servers, (std::vector<Endpoint>{
                            {"127.0.0.1", 5300}, {"127.0.0.2", 5300}, {"127.0.0.3", 5300}}));
    EXPECT_EQ(checker({{"10.9.9.9", 53}})->authoritative_servers("example.test.").value(),
              (std::vector<Endpoint>{{"10.9.9.9", 53}}));
}

TEST_F(Propagation, WaitsForEverySlowServerAskedDirectly) {
    FakeDnsServer secondary;
    transport.servers["127.0.0.2:5300"] = &secondary;
    primary.ns = {"ns1.example.test.", "ns2.example.test."};
    primary.addresses = {{"ns1.example.test.", "127.0.0.1"}, {"ns2.example.test.", "127.0.0.2"}};
    primary.txt[kName] = {"v"};
    // The secondary gets the record on its third TXT query (a zone transfer that lags).
    int asked = 0;
    transport.before = [&](const Endpoint& ep, std::string_view msg) {
        auto q = parse_response(msg);  // a query parses like any message
        if (ep.host == "127.0.0.2" && q.ok() && q->question == kName && ++asked == 3)
            secondary.txt[kName] = {"v"};
    };
    auto st = checker()->wait_for_txt(kName, "example.test.", "v");
    ASSERT_TRUE(st.ok()) << st.error().message;
    EXPECT_EQ(asked, 3);
    EXPECT_EQ(clock.total_slept(), 2s);  // two 1 s polls, no real time
    // Queries went to each server itself, never with RD set.
    EXPECT_GE(primary.queries, 1);
    EXPECT_GE(secondary.queries, 3);
}

TEST_F(Propagation, TimeoutIsEnforcedAndNamesTheLaggingServer) {
    FakeDnsServer secondary;
    transport.servers["127.0.0.2:5300"] = &secondary;
    primary.txt[kName] = {"v"};
    auto c = checker({{"127.0.0.1", 5300}, {"127.0.0.2", 5300}}, 5s);
    auto st = c->wait_for_txt(kName, "example.test.", "v");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::Transient);
    EXPECT_NE(
        st.error().message.find("timed out after 5s: not yet served by 127.0.0.2:5300 (NXDOMAIN"),
        std::string::npos)
        << st.error().message;
    EXPECT_EQ(st.error().message.find("127.0.0.1:5300"), std::string::npos);
    EXPECT_EQ(clock.total_slept(), 5s);
}

TEST_F(Propagation, AnotherValueIsNotEnough) {
    primary.txt[kName] = {"someone-elses"};
    auto st = checker({}, 2s)->wait_for_txt(kName, "example.test.", "mine");
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("NOERROR, 1 other TXT value(s)"), std::string::npos)
        << st.error().message;
}

TEST_F(Propagation, ProviderPresentsWaitsAndCleansUp) {
    Rfc2136Provider p(client(), checker());
    Dns01Record rec{.fqdn = kName, .dns_name = "example.test", .value = "v1", .uid = "u"};
    ASSERT_TRUE(p.present(rec).ok());
    EXPECT_EQ(primary.txt[kName], (std::set<std::string>{"v1"}));
    ASSERT_TRUE(p.cleanup(rec).ok());
    EXPECT_TRUE(primary.txt.empty());
}

// A scripted HttpClient for the webhook provider.
struct RecordingHttp : HttpClient {
    std::vector<HttpRequest> requests;
    int status = 200;
    std::function<void(const HttpRequest&)> on_send;
    Result<HttpResponse> send(const HttpRequest& req) override {
        requests.push_back(req);
        if (on_send) on_send(req);
        HttpResponse r;
        r.status = status;
        r.body = status >= 300 ? "no such zone\n" : "";
        return r;
    }
    Result<HttpResponse> stream(const HttpRequest&,
                                const std::function<bool(std::string_view)>&) override {
        return Error(ErrorCode::Permanent, "not used");
    }
};

TEST_F(Propagation, WebhookPostsTheDocumentedJsonAndWaits) {
    RecordingHttp http;
    // The "adapter" writes the record to the DNS server when it is called.
    http.on_send = [&](const HttpRequest& req) {
        auto j = nlohmann::json::parse(req.body);
        if (j["action"] == "present")
            primary.txt[j["fqdn"].get<std::string>()].insert(j["value"].get<std::string>());
        if (j["action"] == "cleanup") primary.txt.erase(j["fqdn"].get<std::string>());
    };
    auto w = WebhookProvider::create({.url = "http://127.0.0.1:9/hook"}, http, client(std::nullopt),
                                     checker())
                 .value();
    Dns01Record rec{
        .fqdn = kName, .dns_name = "example.test", .value = "v1", .uid = "https://ca/chal/1"};
    ASSERT_TRUE(w->present(rec).ok());
    ASSERT_EQ(http.requests.size(), 1u);
    EXPECT_EQ(http.requests[0].method, "POST");
    auto j = nlohmann::json::parse(http.requests[0].body);
    EXPECT_EQ(j, nlohmann::json({{"action", "present"},
                                 {"fqdn", kName},
                                 {"zone", "example.test."},
                                 {"value", "v1"},
                                 {"dnsName", "example.test"},
                                 {"uid", "https://ca/chal/1"}}));
    ASSERT_TRUE(w->cleanup(rec).ok());
    EXPECT_EQ(nlohmann::json::parse(http.requests[1].body)["action"], "cleanup");
    http.status = 404;
    auto st = w->present(rec);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(st.error().message.find("HTTP 404: no such zone"), std::string::npos)
        << st.error().message;
    http.status = 503;
    EXPECT_EQ(w->present(rec).error().code, ErrorCode::Transient);
    EXPECT_FALSE(WebhookProvider::create({.url = "ftp://x"}, http, nullptr, nullptr).ok());
}

}  // namespace
}  // namespace edgecert::dns
