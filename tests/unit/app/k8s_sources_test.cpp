// The pure parts of the terminator's Kubernetes sources: Secret → CertChange conversion,
// Challenge → answer parsing, and the CertStore per-entry results the Loaded/Rejected Events are
// built from. The informer wiring itself runs end to end in
// tests/integration/test_terminator_k8s.py against the test API server.
#include <gtest/gtest.h>

#include "app/k8s_cert_source.h"
#include "app/k8s_challenge_source.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/encoding.h"
#include "tls/cert_store.h"
#include "unit/tls/test_certs.h"

namespace edgecert::app {
namespace {

using k8s::json;

json tls_secret(const std::string& crt, std::string_view key,
                std::string type = "kubernetes.io/tls") {
    json j = {{"metadata", {{"name", "web"}, {"namespace", "shop"}, {"resourceVersion", "7"}}},
              {"type", type}};
    if (!crt.empty()) j["data"]["tls.crt"] = enc::base64(crt);
    if (!key.empty()) j["data"]["tls.key"] = enc::base64(key);
    return j;
}

TEST(SecretConvert, DecodesTlsPairNamedNamespaceSlashName) {
    auto c = SecretCertSource::convert(tls_secret("CERT PEM", "KEY PEM"));
    ASSERT_TRUE(c.usable) << c.skip_reason;
    EXPECT_EQ(c.change.name, "shop/web");
    EXPECT_EQ(c.change.kind, tls::CertChange::Kind::Upsert);
    EXPECT_EQ(c.change.cert_pem, "CERT PEM");
    EXPECT_EQ(c.change.key_pem.reveal(), "KEY PEM");
}

TEST(SecretConvert, SkipsWrongTypeAndMissingKeysWithoutKeyBytesInTheReason) {
    auto wrong = SecretCertSource::convert(tls_secret("CERT", "SECRETKEY", "Opaque"));
    EXPECT_FALSE(wrong.usable);
    EXPECT_NE(wrong.skip_reason.find("Opaque"), std::string::npos);
    auto nokey = SecretCertSource::convert(tls_secret("CERT", ""));
    EXPECT_FALSE(nokey.usable);
    EXPECT_EQ(nokey.skip_reason, "no tls.key in data");
    auto nocrt = SecretCertSource::convert(tls_secret("", "SECRETKEY"));
    EXPECT_FALSE(nocrt.usable);
    EXPECT_EQ(nocrt.skip_reason, "no tls.crt in data");
    json bad = tls_secret("CERT", "SECRETKEY");
    bad["data"]["tls.key"] = "!!not base64!!";
    auto b = SecretCertSource::convert(bad);
    EXPECT_FALSE(b.usable);
    EXPECT_EQ(b.skip_reason.find("SECRETKEY"), std::string::npos);
}

TEST(SplitList, TrimsAndDropsEmpty) {
    EXPECT_EQ(split_list(""), std::vector<std::string>{});
    EXPECT_EQ(split_list("a, b,,c "), (std::vector<std::string>{"a", "b", "c"}));
}

json challenge(const std::string& type, const std::string& dns, const std::string& token,
               const std::string& key) {
    return {{"metadata", {{"name", "c1"}, {"namespace", "shop"}}},
            {"spec", {{"type", type}, {"dnsName", dns}, {"token", token}, {"key", key}}}};
}

TEST(ChallengeParse, Http01ByToken) {
    std::string why;
    auto a = parse_challenge(challenge("http-01", "a.test", "tok_-1", "tok_-1.thumb"), why);
    ASSERT_TRUE(a) << why;
    EXPECT_EQ(a->type, ChallengeAnswer::Type::Http01);
    EXPECT_EQ(a->lookup, "tok_-1");
    EXPECT_EQ(a->key_authorization, "tok_-1.thumb");
}

TEST(ChallengeParse, TlsAlpn01ByLowercaseName) {
    std::string why;
    auto a = parse_challenge(challenge("tls-alpn-01", "WWW.Shop.Test.", "tok", "tok.thumb"), why);
    ASSERT_TRUE(a) << why;
    EXPECT_EQ(a->type, ChallengeAnswer::Type::TlsAlpn01);
    EXPECT_EQ(a->lookup, "www.shop.test");
    // An IP identifier (RFC 8738): answered under the address's canonical text.
    auto ip = parse_challenge(challenge("tls-alpn-01", "2001:DB8:0::1", "tok", "tok.thumb"), why);
    ASSERT_TRUE(ip) << why;
    EXPECT_EQ(ip->lookup, "2001:db8::1");
}

TEST(ChallengeParse, RejectsDns01AndMalformed) {
    std::string why;
    EXPECT_FALSE(parse_challenge(challenge("dns-01", "a.test", "tok", "tok.t"), why));
    EXPECT_NE(why.find("dns-01"), std::string::npos);
    EXPECT_FALSE(parse_challenge(challenge("http-01", "a.test", "../../etc/passwd", "k.t"), why));
    EXPECT_FALSE(parse_challenge(challenge("http-01", "a.test", "tok", ""), why));
    EXPECT_FALSE(parse_challenge(challenge("http-01", "a.test", "tok", "bad key\n"), why));
    EXPECT_FALSE(parse_challenge(challenge("tls-alpn-01", "bad name/x", "tok", "tok.t"), why));
    EXPECT_FALSE(parse_challenge(challenge("http-02", "a.test", "tok", "tok.t"), why));
    EXPECT_FALSE(parse_challenge(json{{"metadata", json::object()}}, why));
}

// The per-entry result callback the Secret source turns into Events.
TEST(CertStoreResults, OkUnchangedAndRejectedReported) {
    FakeClock clock;
    time_t now = std::chrono::system_clock::to_time_t(clock.now());
    tls::SnapshotHolder holder;
    tls::CertStore store({}, clock, holder);
    std::vector<std::pair<std::string, tls::EntryResult>> got;
    store.set_result_callback(
        [&](const std::string& n, const tls::EntryResult& r) { got.emplace_back(n, r); });
    auto a = tls::testing::make_cert({"a.test", "www.a.test"}, false, 0x1234, now);
    auto b = tls::testing::make_cert({"a.test"}, false, 0x99, now);
    std::vector<tls::CertChange> v;
    v.push_back({tls::CertChange::Kind::Upsert, "shop/a", a.cert_pem, a.key_pem});
    store.apply(std::move(v), true);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(got[0].second.ok);
    EXPECT_FALSE(got[0].second.unchanged);
    EXPECT_EQ(got[0].second.serial, "1234");
    EXPECT_EQ(got[0].second.names, 2u);
    EXPECT_EQ(got[0].second.not_after, now + 30 * 86400);

    v.clear();
    v.push_back({tls::CertChange::Kind::Upsert, "shop/a", a.cert_pem, a.key_pem});
    store.apply(std::move(v), false);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_TRUE(got[1].second.ok && got[1].second.unchanged);

    v.clear();
    v.push_back(
        {tls::CertChange::Kind::Upsert, "shop/a", a.cert_pem, b.key_pem});  // key of another cert
    store.apply(std::move(v), false);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_FALSE(got[2].second.ok);
    EXPECT_NE(got[2].second.error.find("does not match"), std::string::npos) << got[2].second.error;
    EXPECT_EQ(got[2].second.error.find("PRIVATE KEY"), std::string::npos);
    EXPECT_EQ(holder.get()->find_entry("shop/a")->serial, "1234");  // last good kept

    v.clear();
    v.push_back({tls::CertChange::Kind::Remove, "shop/a", {}, {}});
    store.apply(std::move(v), false);
    EXPECT_EQ(got.size(), 3u);  // removals are not results
}

}  // namespace
}  // namespace edgecert::app
