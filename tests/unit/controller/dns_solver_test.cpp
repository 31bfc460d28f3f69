// dns01 solver settings (Issuer spec / edgecert run), DnsSolver and CompositeSolver against the
// in-memory authoritative server (tests/unit/dns/fake_dns.h).
#include "controller/dns_solver.h"

#include <gtest/gtest.h>

#include "edgecert/acme/crypto.h"
#include "unit/dns/fake_dns.h"

namespace edgecert::controller {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

TEST(Dns01Spec, ParsesRfc2136AndWebhook) {
    auto c =
        parse_dns01_solver(json{{"rfc2136",
                                 {{"nameserver", "10.0.0.53:5353"},
                                  {"tsigKeyName", "acme-key"},
                                  {"tsigAlgorithm", "HMACSHA512"},
                                  {"tsigSecretSecretRef", {{"name", "tsig"}, {"key", "secret"}}},
                                  {"zone", "example.com"}}},
                                {"propagationTimeout", "90s"},
                                {"pollInterval", "500ms"},
                                {"checkServers", {"10.0.0.1:53"}}});
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->nameserver, "10.0.0.53:5353");
    EXPECT_EQ(c->tsig_key_name, "acme-key");
    EXPECT_EQ(c->tsig_algorithm, "HMACSHA512");
    EXPECT_EQ(c->tsig_secret_name, "tsig");
    EXPECT_EQ(c->tsig_secret_key, "secret");
    EXPECT_EQ(c->zone, "example.com");
    EXPECT_EQ(c->propagation_timeout, 90s);
    EXPECT_EQ(c->poll_interval, 500ms);
    EXPECT_EQ(c->check_servers, std::vector<std::string>{"10.0.0.1:53"});
    EXPECT_TRUE(c->check_propagation);

    auto w = parse_dns01_solver(json{
        {"webhook", {{"url", "https://dns-adapter.svc/present"}, {"nameserver", "10.0.0.53"}}}});
    ASSERT_TRUE(w.ok()) << w.error().message;
    EXPECT_EQ(w->webhook_url, "https://dns-adapter.svc/present");
    json skip_spec = {{"webhook", {{"url", "http://a/b"}}}, {"skipPropagationCheck", true}};
    auto skip = parse_dns01_solver(skip_spec);
    ASSERT_TRUE(skip.ok()) << skip.error().message << skip_spec.dump();
    EXPECT_FALSE(skip->check_propagation);
}

TEST(Dns01Spec, RefusesWhatCannotWork) {
    auto err = [](const json& j) {
        auto r = parse_dns01_solver(j);
        EXPECT_FALSE(r.ok()) << j.dump();
        return r.ok() ? std::string() : r.error().message;
    };
    EXPECT_NE(err(json::object()).find("exactly one of rfc2136 and webhook"), std::string::npos);
    EXPECT_NE(err(json{{"rfc2136", json::object()}}).find("nameserver is required"),
              std::string::npos);
    EXPECT_NE(err(json{{"rfc2136", {{"nameserver", "ns"}, {"tsigKeyName", "k"}}}})
                  .find("tsigSecretSecretRef"),
              std::string::npos);
    EXPECT_NE(err(json{{"rfc2136",
                        {{"nameserver", "ns"},
                         {"tsigKeyName", "k"},
                         {"tsigAlgorithm", "HMACMD5"},
                         {"tsigSecretSecretRef", {{"name", "s"}}}}}})
                  .find("hmac-sha256 or hmac-sha512"),
              std::string::npos);
    EXPECT_NE(err(json{{"rfc2136", {{"nameserver", "ns:99999"}}}}).find("nameserver"),
              std::string::npos);
    EXPECT_NE(err(json{{"webhook", {{"groupName", "acme.example.com"}, {"solverName", "x"}}}})
                  .find("url"),
              std::string::npos);
    EXPECT_NE(err(json{{"webhook", {{"url", "http://a/b"}}}}).find("propagation check needs"),
              std::string::npos);
    EXPECT_NE(err(json{{"rfc2136", {{"nameserver", "ns"}}}, {"propagationTimeout", "soon"}})
                  .find("propagationTimeout"),
              std::string::npos);
}

struct SolverFixture : ::testing::Test {
    dns::testing::FakeDnsServer server;
    dns::testing::FakeTransport transport;
    FakeClock clock;
    std::unique_ptr<DnsSolver> solver;
    void SetUp() override {
        server.key = dns::testing::test_key();
        transport.servers["127.0.0.1:5300"] = &server;
        Dns01Config cfg;
        cfg.nameserver = "127.0.0.1:5300";
        cfg.tsig_key_name = "edgecert-test";
        cfg.tsig_secret = SecretBytes(std::string("XRVYeZiaTd3p7qnygPZPJJWLCohwUDPk019r7/kyA04="));
        cfg.poll_interval = 1s;
        solver = make_dns_solver(cfg, transport, nullptr, clock).value();
    }
};

TEST_F(SolverFixture, WildcardAndBaseShareTheNameAndCleanUpOnlyTheirOwnValue) {
    acme::Challenge wild{.type = "dns-01", .url = "https://ca/chal/1", .token = "t1"};
    acme::Challenge base{.type = "dns-01", .url = "https://ca/chal/2", .token = "t2"};
    ASSERT_TRUE(solver->present("example.test", wild, "t1.thumb").ok());
    ASSERT_TRUE(solver->present("example.test", base, "t2.thumb").ok());
    const std::string name = "_acme-challenge.example.test.";
    EXPECT_EQ(server.txt[name], (std::set<std::string>{acme::dns01_txt_value("t1.thumb"),
                                                       acme::dns01_txt_value("t2.thumb")}));
    solver->cleanup("example.test", wild);
    EXPECT_EQ(server.txt[name], (std::set<std::string>{acme::dns01_txt_value("t2.thumb")}));
    solver->cleanup("example.test", base);
    EXPECT_TRUE(server.txt.empty());
    solver->cleanup("example.test", base);  // twice is harmless
}

TEST_F(SolverFixture, CleanupAfterAFailedPropagationRemovesTheRecord) {
    // An authoritative server that never gets the record: present fails after the limit...
    Dns01Config cfg;
    cfg.nameserver = "127.0.0.1:5300";
    cfg.tsig_key_name = "edgecert-test";
    cfg.tsig_secret = SecretBytes(std::string("XRVYeZiaTd3p7qnygPZPJJWLCohwUDPk019r7/kyA04="));
    cfg.check_servers = {"127.0.0.1:5300", "127.0.0.9:53"};
    cfg.propagation_timeout = 3s;
    cfg.poll_interval = 1s;
    auto s = make_dns_solver(cfg, transport, nullptr, clock).value();
    acme::Challenge ch{.type = "dns-01", .url = "https://ca/chal/3", .token = "t3"};
    auto st = s->present("a.example.test", ch, "t3.thumb");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::Transient);
    EXPECT_NE(st.error().message.find("127.0.0.9:53"), std::string::npos);
    EXPECT_EQ(server.txt.count("_acme-challenge.a.example.test."), 1u);
    // ...and the cleanup the order flow always runs leaves nothing behind.
    s->cleanup("a.example.test", ch);
    EXPECT_TRUE(server.txt.empty());
}

struct TypeSolver : acme::ChallengeSolver {
    std::string type;
    std::vector<std::string> presented, cleaned;
    explicit TypeSolver(std::string t) : type(std::move(t)) {}
    std::vector<std::string> supported_types() const override { return {type}; }
    Status present(const std::string& d, const acme::Challenge&, const std::string&) override {
        presented.push_back(d);
        return {};
    }
    void cleanup(const std::string& d, const acme::Challenge&) noexcept override {
        cleaned.push_back(d);
    }
};

TEST(CompositeSolver, RoutesByChallengeType) {
    TypeSolver http("http-01"), dns("dns-01");
    CompositeSolver c;
    c.add(http);
    c.add(dns);
    EXPECT_EQ(c.supported_types(), (std::vector<std::string>{"http-01", "dns-01"}));
    ASSERT_TRUE(c.present("a.example", acme::Challenge{.type = "dns-01"}, "ka").ok());
    ASSERT_TRUE(c.present("b.example", acme::Challenge{.type = "http-01"}, "ka").ok());
    c.cleanup("a.example", acme::Challenge{.type = "dns-01"});
    EXPECT_EQ(dns.presented, std::vector<std::string>{"a.example"});
    EXPECT_EQ(http.presented, std::vector<std::string>{"b.example"});
    EXPECT_EQ(dns.cleaned, std::vector<std::string>{"a.example"});
    EXPECT_EQ(c.present("x", acme::Challenge{.type = "tls-alpn-01"}, "ka").error().code,
              ErrorCode::InvalidConfig);
}

}  // namespace
}  // namespace edgecert::controller
