// obtain(): the whole RFC 8555 issuance flow against a scripted CA that checks every JWS.
#include <gtest/gtest.h>

#include "acme_test_util.h"
#include "edgecert/acme/order.h"
#include "edgecert/acme/problem.h"
#include "test_pki.h"

#include <openssl/x509v3.h>

namespace edgecert::acme {
namespace {

using namespace testutil;
using namespace std::chrono_literals;

const std::string kAuthzUrl = "https://ca.test/authz/1";
const std::string kChallUrl = "https://ca.test/chall/1";
const std::string kDnsChallUrl = "https://ca.test/chall/1-dns";

json two_challenges(const std::string& token = "tok-1") {
    return json::array({challenge_json("http-01", kChallUrl, token),
                        challenge_json("dns-01", kDnsChallUrl, token)});
}

std::string pem_of(const std::vector<Certificate>& certs) {
    return chain_to_pem(certs);
}

class AcmeObtain : public ::testing::Test {
  protected:
    AcmeEnv env;
    PrivateKey cert_key = testpki::ec_key();
    testpki::Hierarchy ca_a{"Root A", "Intermediate A", env.clock.now()};
    Certificate leaf = ca_a.leaf(cert_key, {"example.com"}, env.clock.now());
    RecordingSolver solver;

    ObtainRequest request() {
        return ObtainRequest{.dns_names = {"example.com"}, .cert_key = cert_key};
    }
    // The default chain download after an order went valid.
    void expect_download() {
        env.http.expect_post(kCertUrl, 200, pem_of({leaf, ca_a.intermediate}))
            .header("Content-Type", "application/pem-certificate-chain");
    }
    void expect_order_get(const std::string& status,
                          std::optional<int> retry_after = std::nullopt) {
        auto& s = env.http.expect_post(
            kOrderUrl, 200,
            order_json(status, {"example.com"}, {kAuthzUrl}, status == "valid" ? kCertUrl : "")
                .dump());
        if (retry_after) s.header("Retry-After", std::to_string(*retry_after));
    }
    void expect_finalize(const std::string& resulting_status) {
        env.http
            .expect_post(kFinalizeUrl, 200,
                         order_json(resulting_status, {"example.com"}, {kAuthzUrl},
                                    resulting_status == "valid" ? kCertUrl : "")
                             .dump())
            .checking([this](const testing::RecordedRequest& r) {
                // §7.4: csr = base64url(DER), signed by the certificate key, for our names.
                auto der = enc::base64url_decode(r.payload.at("csr").get<std::string>());
                ASSERT_TRUE(der.has_value());
                EXPECT_FALSE(der->empty());
            });
    }
    void check_clean() {
        EXPECT_TRUE(env.http.failures().empty());
        EXPECT_EQ(env.http.remaining(), 0u);
    }
};

// The whole flow: directory → nonce → account lookup (absent) → newAccount → newOrder → authz →
// challenge → polls with Retry-After → finalize → polls → download with two alternates →
// preferred chain (the one whose top certificate was issued by "Root C"), root dropped.
TEST_F(AcmeObtain, FullFlowWithRetryAfterAndPreferredChain) {
    auto& http = env.http;
    env.expect_prelude();
    http.expect_post(kNewAccountUrl, 400,
                     problem_json("accountDoesNotExist", "No account exists", 400).dump(),
                     Auth::Jwk)
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.value("onlyReturnExisting", false), true);
            EXPECT_FALSE(r.payload.contains("externalAccountBinding"));
        });
    http.expect_post(kNewAccountUrl, 201,
                     json{{"status", "valid"},
                          {"contact", {"mailto:a@example.com"}},
                          {"orders", "https://ca.test/orders"}}
                         .dump(),
                     Auth::Jwk)
        .header("Location", kAccountUrl)
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.at("termsOfServiceAgreed"), true);
            EXPECT_EQ(r.payload.at("contact"), json::array({"mailto:a@example.com"}));
            EXPECT_FALSE(r.payload.contains("onlyReturnExisting"));
        });
    http.set_account(env.account_key.public_jwk(), kAccountUrl);
    http.expect_post(kNewOrderUrl, 201, order_json("pending", {"example.com"}, {kAuthzUrl}).dump())
        .header("Location", kOrderUrl)
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.at("identifiers"),
                      json::array({json{{"type", "dns"}, {"value", "example.com"}}}));
            EXPECT_EQ(r.payload.at("replaces"), "aki.serial");
            EXPECT_FALSE(r.payload.contains("profile"));
        });
    http.expect_post(kAuthzUrl, 200, authz_json("pending", "example.com", two_challenges()).dump())
        .checking([](const testing::RecordedRequest& r) { EXPECT_TRUE(r.post_as_get); });
    http.expect_post(kChallUrl, 200,
                     challenge_json("http-01", kChallUrl, "tok-1", "processing").dump())
        .checking([](const testing::RecordedRequest& r) { EXPECT_EQ(r.payload, json::object()); });
    http.expect_post(kAuthzUrl, 200, authz_json("pending", "example.com", two_challenges()).dump())
        .header("Retry-After", "3");
    http.expect_post(kAuthzUrl, 200, authz_json("pending", "example.com", two_challenges()).dump())
        .header("Retry-After", "5");
    http.expect_post(kAuthzUrl, 200, authz_json("valid", "example.com", two_challenges()).dump());
    expect_order_get("ready");
    expect_finalize("processing");
    expect_order_get("processing", 4);
    expect_order_get("valid");

    testpki::Hierarchy ca_b{"Root B", "Intermediate B", env.clock.now()};
    testpki::Hierarchy ca_c{"Root C", "Intermediate C", env.clock.now()};
    Certificate int_by_b =
        ca_a.cross_signed_intermediate(ca_b.root, ca_b.root_key, env.clock.now());
    Certificate int_by_c =
        ca_a.cross_signed_intermediate(ca_c.root, ca_c.root_key, env.clock.now());
    http.expect_post(kCertUrl, 200, pem_of({leaf, ca_a.intermediate}))
        .header("Link", "<https://ca.test/cert/1/1>;rel=\"alternate\"")
        .header(
            "Link",
            "<https://ca.test/dir>;rel=\"index\", <https://ca.test/cert/1/2>; rel=\"alternate\"")
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_TRUE(r.post_as_get);
            bool accept = false;
            for (const auto& [k, v] : r.request.headers)
                if (ascii_lower(k) == "accept" && v == "application/pem-certificate-chain")
                    accept = true;
            EXPECT_TRUE(accept);
        });
    http.expect_post("https://ca.test/cert/1/1", 200, pem_of({leaf, int_by_b}));
    http.expect_post("https://ca.test/cert/1/2", 200, pem_of({leaf, int_by_c, ca_c.root}));

    NewAccountOptions acct;
    acct.contacts = {"mailto:a@example.com"};
    acct.terms_of_service_agreed = true;
    auto a = ensure_account(*env.client, env.account_key, acct);
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->url, kAccountUrl);
    EXPECT_EQ(env.client->account_url(), kAccountUrl);

    std::string persisted;
    ObtainRequest req = request();
    req.replaces = "aki.serial";
    req.preferred_chain = "Root C";
    req.on_order_created = [&](const std::string& url) {
        persisted = url;
        // Persisted before any authorization work.
        EXPECT_TRUE(solver.presented.empty());
        return Status{};
    };
    auto r = obtain(*env.client, solver, req);
    ASSERT_TRUE(r.ok()) << r.error().message;
    check_clean();

    EXPECT_EQ(persisted, kOrderUrl);
    EXPECT_EQ(r->order_url, kOrderUrl);
    EXPECT_EQ(r->certificate_url, "https://ca.test/cert/1/2");
    ASSERT_EQ(r->chain.size(), 2u);  // the self-signed Root C is dropped
    EXPECT_EQ(r->chain[0].to_der(), leaf.to_der());
    EXPECT_EQ(r->chain[1].to_der(), int_by_c.to_der());
    EXPECT_EQ(r->chain_pem, pem_of({leaf, int_by_c}));
    // Polls slept exactly what the CA asked for: 3 + 5 (authorization) + 4 (order).
    EXPECT_EQ(env.clock.total_slept(), 12s);
    // http-01 presented with the RFC 8555 §8.1 key authorization, and cleaned up.
    ASSERT_EQ(solver.presented.size(), 1u);
    EXPECT_EQ(solver.presented[0],
              "example.com http-01 tok-1 tok-1." + env.account_key.thumbprint());
    EXPECT_EQ(solver.cleaned, std::vector<std::string>{"example.com http-01 tok-1"});
}

TEST_F(AcmeObtain, DefaultChainWhenPreferredIsUnknownOrEmpty) {
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(kNewOrderUrl, 201,
                     order_json("valid", {"example.com"}, {kAuthzUrl}, kCertUrl).dump())
        .header("Location", kOrderUrl);
    expect_download();  // no preferred chain: alternates are not even fetched
    auto r = obtain(*env.client, solver, request());
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->certificate_url, kCertUrl);
    EXPECT_EQ(r->chain.size(), 2u);
    check_clean();

    std::vector<CertChain> chains{{"u1", "", {leaf, ca_a.intermediate}},
                                  {"u2", "", {leaf, ca_a.intermediate, ca_a.root}}};
    EXPECT_EQ(select_chain(chains, "No Such Root").url, "u1");
    EXPECT_EQ(select_chain(chains, "").url, "u1");
    EXPECT_EQ(select_chain(chains, "Root A").url, "u1");  // first chain's top is issued by Root A
}

TEST_F(AcmeObtain, InvalidChallengeCarriesProblemAndCleansUp) {
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(kNewOrderUrl, 201, order_json("pending", {"example.com"}, {kAuthzUrl}).dump())
        .header("Location", kOrderUrl);
    env.http.expect_post(kAuthzUrl, 200,
                         authz_json("pending", "example.com", two_challenges()).dump());
    env.http.expect_post(kChallUrl, 200,
                         challenge_json("http-01", kChallUrl, "tok-1", "processing").dump());
    json failed = challenge_json("http-01", kChallUrl, "tok-1", "invalid");
    failed["error"] = problem_json(
        "unauthorized",
        "Invalid response from http://example.com/.well-known/acme-challenge/tok-1: 404", 403);
    env.http.expect_post(kAuthzUrl, 200,
                         authz_json("invalid", "example.com", json::array({failed})).dump());
    auto r = obtain(*env.client, solver, request());
    ASSERT_FALSE(r.ok());
    check_clean();
    EXPECT_EQ(r.error().code, ErrorCode::Permanent);
    EXPECT_EQ(r.error().type, problem::kUnauthorized);
    EXPECT_NE(r.error().message.find(
                  "Invalid response from http://example.com/.well-known/acme-challenge/tok-1: 404"),
              std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("http-01 challenge for example.com failed"),
              std::string::npos);
    EXPECT_EQ(solver.cleaned, std::vector<std::string>{"example.com http-01 tok-1"});
}

// The order could not be recorded (a full disk): nothing more is sent to the CA, so no
// challenge is answered and no certificate is paid for whose key could not be kept.
TEST_F(AcmeObtain, OrderThatCannotBeRecordedIsNotPursued) {
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(kNewOrderUrl, 201, order_json("pending", {"example.com"}, {kAuthzUrl}).dump())
        .header("Location", kOrderUrl);
    ObtainRequest req = request();
    req.on_order_created = [](const std::string&) {
        return Status(Error(ErrorCode::Transient, "cannot write store/.pending/tls.key: No space left on device"));
    };
    auto r = obtain(*env.client, solver, req);
    ASSERT_FALSE(r.ok());
    check_clean();  // no authorization fetched, no challenge, no finalize
    EXPECT_EQ(r.error().code, ErrorCode::Transient);
    EXPECT_NE(r.error().message.find("not pursued"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("No space left on device"), std::string::npos) << r.error().message;
    EXPECT_TRUE(solver.presented.empty());
}

TEST_F(AcmeObtain, PresentFailureCleansUpEverythingPresented) {
    env.use_account();
    env.expect_prelude();
    const std::string authz2 = "https://ca.test/authz/2";
    env.http
        .expect_post(
            kNewOrderUrl, 201,
            order_json("pending", {"example.com", "www.example.com"}, {kAuthzUrl, authz2}).dump())
        .header("Location", kOrderUrl);
    env.http.expect_post(kAuthzUrl, 200,
                         authz_json("pending", "example.com", two_challenges("t1")).dump());
    env.http.expect_post(
        authz2, 200,
        authz_json("pending", "www.example.com",
                   json::array({challenge_json("http-01", "https://ca.test/chall/2", "t2")}))
            .dump());
    struct FailSecond : RecordingSolver {
        Status present(const std::string& d, const Challenge& ch, const std::string& ka) override {
            (void)RecordingSolver::present(d, ch, ka);
            if (presented.size() == 2) return Error(ErrorCode::Transient, "port 80 is busy");
            return ok_status();
        }
    } failing;
    ObtainRequest req = request();
    req.dns_names = {"example.com", "www.example.com"};
    auto r = obtain(*env.client, failing, req);
    ASSERT_FALSE(r.ok());
    check_clean();
    EXPECT_EQ(r.error().code, ErrorCode::Transient);
    EXPECT_EQ(r.error().message, "presenting http-01 for www.example.com: port 80 is busy");
    EXPECT_EQ(failing.cleaned,
              (std::vector<std::string>{"example.com http-01 t1", "www.example.com http-01 t2"}));
}

TEST_F(AcmeObtain, WildcardUsesDns01Only) {
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(kNewOrderUrl, 201,
                     order_json("pending", {"*.example.com"}, {kAuthzUrl}).dump())
        .header("Location", kOrderUrl)
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.at("identifiers")[0].at("value"), "*.example.com");
        });
    env.http.expect_post(kAuthzUrl, 200,
                         authz_json("pending", "example.com", two_challenges(), true).dump());
    RecordingSolver http_only;  // supports http-01 only
    ObtainRequest req = request();
    req.dns_names = {"*.example.com"};
    auto r = obtain(*env.client, http_only, req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(r.error().message.find("*.example.com"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("wildcard needs dns-01"), std::string::npos)
        << r.error().message;
    check_clean();

    // A solver that prefers http-01 but also has dns-01 gets dns-01 for the wildcard.
    env.http
        .expect_post(kNewOrderUrl, 201,
                     order_json("pending", {"*.example.com"}, {kAuthzUrl}).dump())
        .header("Location", kOrderUrl);
    env.http.expect_post(kAuthzUrl, 200,
                         authz_json("pending", "example.com", two_challenges(), true).dump());
    env.http.expect_post(kDnsChallUrl, 200,
                         challenge_json("dns-01", kDnsChallUrl, "tok-1", "processing").dump());
    env.http.expect_post(kAuthzUrl, 200,
                         authz_json("valid", "example.com", two_challenges(), true).dump());
    env.http.expect_post(kOrderUrl, 200,
                         order_json("ready", {"*.example.com"}, {kAuthzUrl}).dump());
    env.http.expect_post(kFinalizeUrl, 200,
                         order_json("valid", {"*.example.com"}, {kAuthzUrl}, kCertUrl).dump());
    Certificate wild = ca_a.leaf(cert_key, {"*.example.com"}, env.clock.now());
    env.http.expect_post(kCertUrl, 200, pem_of({wild, ca_a.intermediate}));
    RecordingSolver both;
    both.types = {"http-01", "dns-01"};
    auto ok = obtain(*env.client, both, req);
    ASSERT_TRUE(ok.ok()) << ok.error().message;
    ASSERT_EQ(both.presented.size(), 1u);
    EXPECT_EQ(both.presented[0].substr(0, 19), "example.com dns-01 ");
    check_clean();
}

// RFC 8738: an "ip" identifier in the order, the address as an iPAddress SAN in the CSR, and
// http-01 or tls-alpn-01 only (§7: never dns-01, and the error says so).
TEST_F(AcmeObtain, IpAddressUsesHttp01NeverDns01) {
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(kNewOrderUrl, 201, order_json("pending", {"192.0.2.1"}, {kAuthzUrl}).dump())
        .header("Location", kOrderUrl);
    env.http.expect_post(kAuthzUrl, 200,
                         authz_json("pending", "192.0.2.1", two_challenges()).dump());
    RecordingSolver dns_only;
    dns_only.types = {"dns-01"};
    ObtainRequest req{.dns_names = {}, .ip_addresses = {"192.0.2.1"}, .cert_key = cert_key};
    auto r = obtain(*env.client, dns_only, req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(r.error().message.find("no usable challenge for 192.0.2.1"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("never dns-01: RFC 8738"), std::string::npos)
        << r.error().message;
    EXPECT_TRUE(dns_only.presented.empty());
    check_clean();

    // A solver that prefers dns-01 but has http-01 too answers the address with http-01.
    env.http
        .expect_post(kNewOrderUrl, 201, order_json("pending", {"192.0.2.1"}, {kAuthzUrl}).dump())
        .header("Location", kOrderUrl)
        .checking([](const testing::RecordedRequest& rr) {
            EXPECT_EQ(rr.payload.at("identifiers"),
                      json::parse(R"([{"type":"ip","value":"192.0.2.1"}])"));
        });
    env.http.expect_post(kAuthzUrl, 200,
                         authz_json("pending", "192.0.2.1", two_challenges()).dump());
    env.http.expect_post(kChallUrl, 200,
                         challenge_json("http-01", kChallUrl, "tok-1", "processing").dump());
    env.http.expect_post(kAuthzUrl, 200, authz_json("valid", "192.0.2.1", two_challenges()).dump());
    env.http.expect_post(kOrderUrl, 200, order_json("ready", {"192.0.2.1"}, {kAuthzUrl}).dump());
    env.http
        .expect_post(kFinalizeUrl, 200,
                     order_json("valid", {"192.0.2.1"}, {kAuthzUrl}, kCertUrl).dump())
        .checking([](const testing::RecordedRequest& rr) {
            auto der = enc::base64url_decode(rr.payload.at("csr").get<std::string>());
            ASSERT_TRUE(der.has_value());
            const auto* p = reinterpret_cast<const unsigned char*>(der->data());
            ossl::UniquePtr<X509_REQ> csr(
                d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size())));
            ASSERT_TRUE(csr);
            STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(csr.get());
            ossl::UniquePtr<GENERAL_NAMES> sans(static_cast<GENERAL_NAMES*>(
                X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr)));
            sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
            ASSERT_TRUE(sans);
            ASSERT_EQ(sk_GENERAL_NAME_num(sans.get()), 1);
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), 0);
            ASSERT_EQ(gn->type, GEN_IPADD);
            EXPECT_EQ(std::string(reinterpret_cast<const char*>(gn->d.iPAddress->data), 4),
                      std::string("\xc0\x00\x02\x01", 4));
        });
    expect_download();
    RecordingSolver both;
    both.types = {"dns-01", "http-01"};
    auto ok = obtain(*env.client, both, req);
    ASSERT_TRUE(ok.ok()) << ok.error().message;
    ASSERT_EQ(both.presented.size(), 1u);
    EXPECT_EQ(both.presented[0].substr(0, 18), "192.0.2.1 http-01 ");
    check_clean();
}

// ---- resume ----------------------------------------------------------------------------------

// The CA may spell an address its own way: the resumed order is compared address by address.
TEST_F(AcmeObtain, ResumeComparesAddressesNotSpellings) {
    env.use_account();
    env.expect_prelude();
    env.http.expect_post(
        kOrderUrl, 200,
        order_json("valid", {"example.com", "2001:DB8:0:0:0:0:0:1"}, {kAuthzUrl}, kCertUrl).dump());
    expect_download();
    ObtainRequest req{
        .dns_names = {"example.com"}, .ip_addresses = {"2001:db8::1"}, .cert_key = cert_key};
    req.resume_order_url = kOrderUrl;
    auto r = obtain(*env.client, solver, req);
    ASSERT_TRUE(r.ok()) << r.error().message;
    check_clean();

    // A different address is a different order.
    env.http.expect_post(
        kOrderUrl, 200,
        order_json("valid", {"example.com", "2001:db8::2"}, {kAuthzUrl}, kCertUrl).dump());
    auto other = obtain(*env.client, solver, req);
    ASSERT_FALSE(other.ok());
    EXPECT_NE(other.error().message.find("not for the requested [example.com, 2001:db8::1]"),
              std::string::npos)
        << other.error().message;
    check_clean();
}

TEST_F(AcmeObtain, ResumeValidOrderDownloads) {
    env.use_account();
    env.expect_prelude();
    expect_order_get("valid");
    expect_download();
    ObtainRequest req = request();
    req.resume_order_url = kOrderUrl;
    bool created = false;
    req.on_order_created = [&](const std::string&) {
        created = true;
        return Status{};
    };
    auto r = obtain(*env.client, solver, req);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(created);
    EXPECT_TRUE(solver.presented.empty());
    check_clean();
}

TEST_F(AcmeObtain, ResumeReadyOrderFinalizes) {
    env.use_account();
    env.expect_prelude();
    expect_order_get("ready");
    expect_finalize("valid");
    env.http.expect_post(kCertUrl, 200, pem_of({leaf, ca_a.intermediate}));
    ObtainRequest req = request();
    req.resume_order_url = kOrderUrl;
    auto r = obtain(*env.client, solver, req);
    ASSERT_TRUE(r.ok()) << r.error().message;
    check_clean();
}

TEST_F(AcmeObtain, FinalizeThatInvalidatesTheOrderIsPermanent) {
    env.use_account();
    env.expect_prelude();
    expect_order_get("ready");
    json inv = order_json("invalid", {"example.com"}, {kAuthzUrl});
    inv["error"] = problem_json("serverInternal", "signing failed", 500);
    env.http.expect_post(kFinalizeUrl, 200, inv.dump());
    ObtainRequest req = request();
    req.resume_order_url = kOrderUrl;
    auto r = obtain(*env.client, solver, req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Permanent);  // this order is finished, whatever the cause
    EXPECT_EQ(r.error().type, problem::kServerInternal);
    EXPECT_EQ(r.error().message,
              "order " + kOrderUrl +
                  " is invalid: signing failed (urn:ietf:params:acme:error:serverInternal)");
    check_clean();
}

TEST_F(AcmeObtain, ResumeProcessingOrderWaits) {
    env.use_account();
    env.expect_prelude();
    expect_order_get("processing");
    expect_order_get("processing");  // no Retry-After: 250 ms exponential backoff
    expect_order_get("valid");
    expect_download();
    ObtainRequest req = request();
    req.resume_order_url = kOrderUrl;
    auto r = obtain(*env.client, solver, req);
    ASSERT_TRUE(r.ok()) << r.error().message;
    // get_order (processing), then wait_order: poll (processing), 250 ms backoff, poll (valid).
    EXPECT_EQ(env.clock.total_slept(), 250ms);
    check_clean();
}

TEST_F(AcmeObtain, ResumePendingOrderContinuesWithAuthorizations) {
    env.use_account();
    env.expect_prelude();
    expect_order_get("pending");
    // Accepted before the crash: the challenge is processing, so it is presented again (the CA
    // may still fetch it) but not accepted a second time.
    json chs = json::array({challenge_json("http-01", kChallUrl, "tok-1", "processing")});
    env.http.expect_post(kAuthzUrl, 200, authz_json("pending", "example.com", chs).dump());
    env.http.expect_post(kAuthzUrl, 200, authz_json("valid", "example.com", chs).dump());
    expect_order_get("ready");
    expect_finalize("valid");
    expect_download();
    ObtainRequest req = request();
    req.resume_order_url = kOrderUrl;
    auto r = obtain(*env.client, solver, req);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(solver.presented.size(), 1u);
    EXPECT_EQ(solver.cleaned.size(), 1u);
    check_clean();
}

TEST_F(AcmeObtain, ResumeInvalidOrExpiredOrderFails) {
    env.use_account();
    env.expect_prelude();
    json inv = order_json("invalid", {"example.com"}, {kAuthzUrl});
    inv["error"] = problem_json("caa", "CAA record for example.com prevents issuance", 403);
    env.http.expect_post(kOrderUrl, 200, inv.dump());
    ObtainRequest req = request();
    req.resume_order_url = kOrderUrl;
    auto r = obtain(*env.client, solver, req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Permanent);
    EXPECT_EQ(r.error().type, problem::kCaa);
    EXPECT_EQ(r.error().message, "order " + kOrderUrl +
                                     " is invalid: CAA record for example.com prevents issuance "
                                     "(urn:ietf:params:acme:error:caa)");

    expect_order_get("expired");
    auto e = obtain(*env.client, solver, req);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code, ErrorCode::Permanent);
    EXPECT_EQ(e.error().message, "order " + kOrderUrl + " is expired");
    check_clean();
}

TEST_F(AcmeObtain, ResumeOrderForOtherNamesIsRefused) {
    env.use_account();
    env.expect_prelude();
    env.http.expect_post(kOrderUrl, 200,
                         order_json("ready", {"other.example"}, {kAuthzUrl}).dump());
    ObtainRequest req = request();
    req.resume_order_url = kOrderUrl;
    auto r = obtain(*env.client, solver, req);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("is for [other.example]"), std::string::npos)
        << r.error().message;
    check_clean();
}

TEST_F(AcmeObtain, AlreadyReplacedRetriesWithoutReplaces) {
    env.use_account();
    env.expect_prelude();
    env.http
        .expect_post(kNewOrderUrl, 409,
                     problem_json("alreadyReplaced", "already replaced", 409).dump())
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_EQ(r.payload.at("replaces"), "old-id");
        });
    env.http
        .expect_post(kNewOrderUrl, 201,
                     order_json("valid", {"example.com"}, {kAuthzUrl}, kCertUrl).dump())
        .header("Location", kOrderUrl)
        .checking([](const testing::RecordedRequest& r) {
            EXPECT_FALSE(r.payload.contains("replaces"));
        });
    expect_download();
    ObtainRequest req = request();
    req.replaces = "old-id";
    auto r = obtain(*env.client, solver, req);
    ASSERT_TRUE(r.ok()) << r.error().message;
    check_clean();
}

TEST_F(AcmeObtain, CertificateForAnotherKeyIsRejected) {
    env.use_account();
    env.expect_prelude();
    expect_order_get("valid");
    Certificate other = ca_a.leaf(testpki::ec_key(), {"example.com"}, env.clock.now());
    env.http.expect_post(kCertUrl, 200, pem_of({other, ca_a.intermediate}));
    ObtainRequest req = request();
    req.resume_order_url = kOrderUrl;
    auto r = obtain(*env.client, solver, req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Permanent);
    check_clean();
}

TEST_F(AcmeObtain, NeedsAnAccount) {
    auto r = obtain(*env.client, solver, request());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
    EXPECT_TRUE(env.http.requests().empty());
}

}  // namespace
}  // namespace edgecert::acme
