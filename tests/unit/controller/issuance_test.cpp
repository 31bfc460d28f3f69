// Spec parsing, solver selection and evaluate(): what the controller and `edgecert run` decide
// before they talk to a CA.
#include "controller/issuance.h"

#include <gtest/gtest.h>

#include "edgecert/base/encoding.h"
#include "unit/acme/test_pki.h"

namespace edgecert::controller {
namespace {

using namespace std::chrono_literals;
using acme::testpki::ec_key;
using acme::testpki::make_cert;

json cert_obj(json spec) {
    return json{{"metadata", {{"name", "web"}, {"namespace", "shop"}, {"labels", {{"team", "a"}}}}},
                {"spec", std::move(spec)}};
}

json good_spec() {
    return json{{"secretName", "web-tls"},
                {"dnsNames", {"WWW.Example.com", "example.com", "www.example.com"}},
                {"issuerRef", {{"name", "le"}, {"kind", "ClusterIssuer"}}}};
}

TEST(ParseCertificate, ValidSpecIsNormalised) {
    json spec = good_spec();
    spec["privateKey"] = {{"algorithm", "RSA"}, {"size", 3072}, {"rotationPolicy", "Never"}};
    spec["renewBefore"] = "720h";
    spec["secretTemplate"] = {{"labels", {{"app", "web"}}}};
    auto c = parse_certificate_spec(cert_obj(spec));
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->ref.namespace_, "shop");
    EXPECT_EQ(c->ref.name, "web");
    EXPECT_EQ(c->ref.secret_name, "web-tls");
    EXPECT_EQ(c->dns_names, (std::vector<std::string>{"example.com", "www.example.com"}));
    EXPECT_EQ(c->issuer_kind, "ClusterIssuer");
    EXPECT_EQ(c->key_type, acme::KeyType::Rsa3072);
    EXPECT_FALSE(c->rotate_key);
    EXPECT_EQ(c->renewal.renew_before, "720h");
    EXPECT_EQ(c->secret_labels.at("app"), "web");
    EXPECT_EQ(c->labels.at("team"), "a");
}

TEST(ParseCertificate, IpAddressesAreCanonicalAndEnoughAlone) {
    json spec = good_spec();
    spec["ipAddresses"] = {"192.0.2.1", "2001:DB8:0:0::1", "192.0.2.1", "::1"};
    auto c = parse_certificate_spec(cert_obj(spec));
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->ip_addresses, (std::vector<std::string>{"192.0.2.1", "2001:db8::1", "::1"}));
    spec.erase("dnsNames");  // an address-only certificate
    auto only = parse_certificate_spec(cert_obj(spec));
    ASSERT_TRUE(only.ok()) << only.error().message;
    EXPECT_TRUE(only->dns_names.empty());
    EXPECT_EQ(only->ip_addresses.size(), 3u);
}

TEST(ParseCertificate, DefaultsAreEcdsaP256AndAlwaysRotate) {
    auto c = parse_certificate_spec(cert_obj(good_spec()));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->key_type, acme::KeyType::EcP256);
    EXPECT_TRUE(c->rotate_key);
    EXPECT_EQ(c->issuer_kind, "ClusterIssuer");
}

TEST(ParseCertificate, BadSpecsAreInvalidConfigWithTheField) {
    struct Case {
        std::function<void(json&)> mutate;
        std::string field;
    } cases[] = {
        {[](json& s) { s.erase("secretName"); }, "secretName"},
        {[](json& s) { s["secretName"] = "Bad_Name"; }, "secretName"},
        {[](json& s) { s["dnsNames"] = json::array(); }, "dnsNames"},
        {[](json& s) { s["dnsNames"] = {"ex ample.com"}; }, "dnsNames"},
        {[](json& s) { s["issuerRef"] = json::object(); }, "issuerRef.name"},
        {[](json& s) { s["issuerRef"]["kind"] = "Vault"; }, "issuerRef.kind"},
        {[](json& s) {
             s["privateKey"] = {{"algorithm", "RSA"}, {"size", 1024}};
         },
         "privateKey.size"},
        {[](json& s) {
             s["privateKey"] = {{"algorithm", "DSA"}};
         },
         "privateKey.algorithm"},
        {[](json& s) { s["renewBefore"] = "soon"; }, "duration"},
        {[](json& s) {
             s["renewBefore"] = "1h";
             s["renewBeforePercentage"] = 20;
         },
         ""},
        {[](json& s) { s["renewBeforePercentage"] = 150; }, ""},
        {[](json& s) {
             s["dnsNames"] = {"a.example.com", "10.0.0.1"};
         },
         "'10.0.0.1' is an IP address: list it in spec.ipAddresses"},
        {[](json& s) { s["dnsNames"] = {"2001:db8::1"}; }, "list it in spec.ipAddresses"},
        {[](json& s) { s["ipAddresses"] = {"10.0.0.300"}; },
         "spec.ipAddresses: '10.0.0.300' is not an IP address"},
        {[](json& s) { s["dnsNames"] = {"10.0.0.300"}; },
         "'10.0.0.300' is neither a DNS name (its last label is numeric) nor an IP address"},
        {[](json& s) { s["ipAddresses"] = {"db.example.com"}; },
         "spec.ipAddresses: 'db.example.com' is not an IP address"},
        {[](json& s) { s["ipAddresses"] = {"10.0.0.0/8"}; }, "spec.ipAddresses"},
        {[](json& s) { s["ipAddresses"] = {"::ffff:10.0.0.1"}; }, "write it as 10.0.0.1"},
        {[](json& s) { s["ipAddresses"] = "10.0.0.1"; }, "spec.ipAddresses must be a list"},
        {[](json& s) { s["ipAddresses"] = {7}; }, "spec.ipAddresses must be a list of strings"},
        {[](json& s) {
             s.erase("dnsNames");
             s["ipAddresses"] = json::array();
         },
         "spec.dnsNames or spec.ipAddresses"},
    };
    for (auto& c : cases) {
        json spec = good_spec();
        c.mutate(spec);
        auto r = parse_certificate_spec(cert_obj(spec));
        ASSERT_FALSE(r.ok()) << spec.dump();
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig) << spec.dump();
        EXPECT_NE(r.error().message.find(c.field), std::string::npos) << r.error().message;
    }
}

const char* kPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

TEST(ParseIssuer, AcmeFieldsAndCaBundleForms) {
    json spec = {{"acme",
                  {{"server", "https://acme.test/dir"},
                   {"caBundle", enc::base64(kPem)},
                   {"email", "ops@example.com"},
                   {"privateKeySecretRef", {{"name", "acct"}}},
                   {"profile", "shortlived"},
                   {"solvers", {{{"http01", json::object()}}, {{"tlsAlpn01", json::object()}}}}}}};
    auto a = parse_acme_issuer(spec);
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->ca_bundle_pem, kPem);
    EXPECT_EQ(a->private_key_secret_name, "acct");
    EXPECT_EQ(a->private_key_secret_key, "tls.key");
    EXPECT_EQ(a->profile, "shortlived");
    EXPECT_EQ(a->challenge_types, (std::vector<std::string>{"http-01", "tls-alpn-01"}));
    spec["acme"]["caBundle"] = kPem;  // raw PEM (edgecert run's file) is accepted too
    EXPECT_EQ(parse_acme_issuer(spec)->ca_bundle_pem, kPem);
    spec["acme"]["caBundle"] = enc::base64("not a certificate");
    EXPECT_FALSE(parse_acme_issuer(spec).ok());
}

TEST(ParseIssuer, RefusesWhatItCannotDoSafely) {
    json base = {{"acme", {{"server", "https://acme.test/dir"}}}};
    EXPECT_EQ(parse_acme_issuer(base)->challenge_types, (std::vector<std::string>{"http-01", "tls-alpn-01"}));
    json j = base;
    j["acme"]["skipTLSVerify"] = true;
    EXPECT_EQ(parse_acme_issuer(j).error().code, ErrorCode::InvalidConfig);
    j = base;
    j["acme"]["server"] = "ftp://x";
    EXPECT_FALSE(parse_acme_issuer(j).ok());
    j = base;
    j["acme"]["externalAccountBinding"] = {{"keyID", "kid"}};
    EXPECT_FALSE(parse_acme_issuer(j).ok());
    j = base;
    j["acme"]["solvers"] = {{{"dns01", {{"rfc2136", json::object()}}}}};
    EXPECT_FALSE(parse_acme_issuer(j).ok());
    j = base;
    j["acme"]["solvers"] = {{{"http01", json::object()}, {"tlsAlpn01", json::object()}}};
    EXPECT_FALSE(parse_acme_issuer(j).ok());  // one solver = one type
    EXPECT_FALSE(parse_acme_issuer(json{{"selfSigned", json::object()}}).ok());
}

TEST(SolverSelection, MostSpecificSelectorWins) {
    json spec = {{"acme",
                  {{"server", "https://acme.test/dir"},
                   {"solvers",
                    {{{"http01", json::object()}},
                     {{"selector", {{"matchLabels", {{"edgecert.io/challenge", "tls-alpn-01"}}}}},
                      {"tlsAlpn01", json::object()}},
                     {{"selector", {{"dnsZones", {"internal.example.com"}}}},
                      {"dns01", {{"rfc2136", {{"nameserver", "10.0.0.53"}}}}}},
                     {{"selector", {{"dnsNames", {"alpn.example.com"}}}}, {"tlsAlpn01", json::object()}}}}}}};
    auto a = parse_acme_issuer(spec);
    ASSERT_TRUE(a.ok()) << a.error().message;
    using V = std::vector<std::string>;
    EXPECT_EQ(*challenge_types_for(*a, {}, {"www.example.com"}), V{"http-01"});
    EXPECT_EQ(*challenge_types_for(*a, {{"edgecert.io/challenge", "tls-alpn-01"}}, {"www.example.com"}),
              V{"tls-alpn-01"});
    EXPECT_EQ(*challenge_types_for(*a, {}, {"alpn.example.com"}), V{"tls-alpn-01"});
    // A zone match is more specific than no selector: dns01, with its settings.
    EXPECT_EQ(*challenge_types_for(*a, {}, {"db.internal.example.com"}), V{"dns-01"});
    EXPECT_EQ((*select_solver(*a, {}, {"db.internal.example.com"}))->dns01.nameserver, "10.0.0.53");
    // A wildcard only considers dns01 solvers: here the zone one, or none at all.
    EXPECT_EQ(*challenge_types_for(*a, {}, {"*.internal.example.com"}), V{"dns-01"});
    auto w = challenge_types_for(*a, {}, {"*.example.com"});
    ASSERT_FALSE(w.ok());
    EXPECT_NE(w.error().message.find("a wildcard name needs dns-01"), std::string::npos);
    // Every name must match: the dnsNames solver does not cover www.
    EXPECT_EQ(*challenge_types_for(*a, {}, {"alpn.example.com", "www.example.com"}), V{"http-01"});
    json only = {{"acme",
                  {{"server", "https://acme.test/dir"},
                   {"solvers", {{{"selector", {{"matchLabels", {{"x", "y"}}}}}, {"http01", json::object()}}}}}}};
    EXPECT_FALSE(challenge_types_for(*parse_acme_issuer(only), {}, {"a.example.com"}).ok());
}

// RFC 8738 §7: an address is never validated with dns-01, so dns01 solvers (and dnsZones
// selectors) never select a certificate that has one.
TEST(SolverSelection, IpAddressesNeverGetDns01) {
    using V = std::vector<std::string>;
    json spec = {
        {"acme",
         {{"server", "https://acme.test/dir"},
          {"solvers",
           {{{"http01", json::object()}},
            {{"selector", {{"dnsZones", {"example.com"}}}},
             {"dns01", {{"webhook", {{"url", "http://h"}}}, {"skipPropagationCheck", true}}}},
            {{"selector", {{"dnsNames", {"alpn.example.com", "192.0.2.9"}}}},
             {"tlsAlpn01", json::object()}}}}}}};
    auto a = parse_acme_issuer(spec);
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(*challenge_types_for(*a, {}, {"www.example.com"}), V{"dns-01"});
    EXPECT_EQ(*challenge_types_for(*a, {}, {"www.example.com"}, {"192.0.2.1"}), V{"http-01"});
    EXPECT_EQ(*challenge_types_for(*a, {}, {}, {"192.0.2.1"}), V{"http-01"});
    EXPECT_EQ(*challenge_types_for(*a, {}, {"alpn.example.com"}, {"192.0.2.9"}), V{"tls-alpn-01"});
    auto wild = challenge_types_for(*a, {}, {"*.example.com"}, {"192.0.2.1"});
    ASSERT_FALSE(wild.ok());
    EXPECT_NE(wild.error().message.find("both a wildcard name"), std::string::npos)
        << wild.error().message;

    json dns_only = {
        {"acme",
         {{"server", "https://acme.test/dir"},
          {"solvers",
           {{{"dns01", {{"webhook", {{"url", "http://h"}}}, {"skipPropagationCheck", true}}}}}}}}};
    auto d =
        challenge_types_for(*parse_acme_issuer(dns_only), {}, {"a.example.com"}, {"192.0.2.1"});
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(d.error().message.find("cannot use dns-01, RFC 8738"), std::string::npos)
        << d.error().message;
    // No solvers listed: both terminator-answered types.
    json none = {{"acme", {{"server", "https://acme.test/dir"}}}};
    EXPECT_EQ(*challenge_types_for(*parse_acme_issuer(none), {}, {}, {"192.0.2.1"}),
              (V{"http-01", "tls-alpn-01"}));
}

struct EvalFixture : ::testing::Test {
    SystemTime now = std::chrono::system_clock::from_time_t(1'900'000'000);
    std::mt19937_64 rng{7};
    CertificateSpec spec = *parse_certificate_spec(cert_obj(good_spec()));
    acme::PrivateKey key = ec_key();

    store::StoredCertificate stored(std::vector<std::string> names, SystemTime nb, SystemTime na,
                                    const acme::PrivateKey* k = nullptr) {
        const acme::PrivateKey& kk = k ? *k : key;
        auto c = make_cert("leaf", kk, nullptr, kk, false, names, 42, nb, na);
        return store::StoredCertificate{.cert_pem = c.to_pem(), .key_pem = kk.to_pem()};
    }
};

TEST_F(EvalFixture, NothingStoredOrGarbage) {
    EXPECT_EQ(evaluate(spec, std::nullopt, std::nullopt, std::nullopt, rng, now).reason, IssueReason::DoesNotExist);
    store::StoredCertificate junk{.cert_pem = "garbage", .key_pem = SecretBytes(std::string("x"))};
    EXPECT_EQ(evaluate(spec, junk, std::nullopt, std::nullopt, rng, now).reason, IssueReason::InvalidCertificate);
    auto s = stored(spec.dns_names, now - 24h, now + 60 * 24h);
    s.key_pem = SecretBytes(std::string("not a key"));
    EXPECT_EQ(evaluate(spec, s, std::nullopt, std::nullopt, rng, now).reason, IssueReason::InvalidCertificate);
}

TEST_F(EvalFixture, MismatchesTriggerIssuance) {
    auto other = ec_key();
    auto s = stored(spec.dns_names, now - 24h, now + 60 * 24h);
    s.key_pem = other.to_pem();
    EXPECT_EQ(evaluate(spec, s, std::nullopt, std::nullopt, rng, now).reason, IssueReason::KeyMismatch);
    EXPECT_EQ(evaluate(spec, stored({"example.com"}, now - 24h, now + 60 * 24h), std::nullopt, std::nullopt, rng, now)
                  .reason,
              IssueReason::SANsChanged);
    CertificateSpec rsa = spec;
    rsa.key_type = acme::KeyType::Rsa2048;
    auto ev = evaluate(rsa, stored(spec.dns_names, now - 24h, now + 60 * 24h), std::nullopt, std::nullopt, rng, now);
    EXPECT_EQ(ev.reason, IssueReason::KeyMismatch);
    EXPECT_NE(ev.detail.find("rsa2048"), std::string::npos) << ev.detail;
}

TEST_F(EvalFixture, IpAddressSansAreCompared) {
    CertificateSpec ip = spec;
    ip.ip_addresses = {"192.0.2.1", "2001:db8::1"};
    std::vector<std::string> names = spec.dns_names;
    names.insert(names.end(), {"2001:db8::1", "192.0.2.1"});
    auto ok = evaluate(ip, stored(names, now - 24h, now + 60 * 24h), std::nullopt, std::nullopt,
                       rng, now);
    EXPECT_EQ(ok.reason, IssueReason::None) << ok.detail;
    // Without the addresses, or with other ones: issue again.
    auto missing = evaluate(ip, stored(spec.dns_names, now - 24h, now + 60 * 24h), std::nullopt,
                            std::nullopt, rng, now);
    EXPECT_EQ(missing.reason, IssueReason::SANsChanged);
    EXPECT_NE(missing.detail.find("spec.ipAddresses"), std::string::npos) << missing.detail;
    names.back() = "192.0.2.2";
    EXPECT_EQ(
        evaluate(ip, stored(names, now - 24h, now + 60 * 24h), std::nullopt, std::nullopt, rng, now)
            .reason,
        IssueReason::SANsChanged);
    // And a certificate with an address the spec no longer lists.
    EXPECT_EQ(evaluate(spec, stored(names, now - 24h, now + 60 * 24h), std::nullopt, std::nullopt,
                       rng, now)
                  .reason,
              IssueReason::SANsChanged);
}

TEST_F(EvalFixture, FreshRenewingAndExpired) {
    // 90 days from now-30d: renewal at 2/3 = day 60 → 30 days from now.
    auto s = stored({"example.com", "www.example.com"}, now - 30 * 24h, now + 60 * 24h);
    auto ev = evaluate(spec, s, std::nullopt, std::nullopt, rng, now);
    EXPECT_EQ(ev.reason, IssueReason::None);
    ASSERT_TRUE(ev.renewal);
    EXPECT_EQ(ev.renewal->renewal_time, now + 30 * 24h);
    EXPECT_EQ(evaluate(spec, s, std::nullopt, std::nullopt, rng, now + 31 * 24h).reason, IssueReason::Renewing);
    EXPECT_EQ(evaluate(spec, s, std::nullopt, std::nullopt, rng, now + 61 * 24h).reason, IssueReason::Expired);
}

TEST_F(EvalFixture, AManualRenewalRenewsAValidCertificateAndKeepsItServing) {
    auto s = stored({"example.com", "www.example.com"}, now - 30 * 24h, now + 60 * 24h);
    auto ev = evaluate(spec, s, std::nullopt, std::nullopt, rng, now);
    apply_manual_renewal(ev);
    EXPECT_EQ(ev.reason, IssueReason::ManuallyTriggered);
    EXPECT_TRUE(keeps_serving(ev.reason));
    // Another reason to issue wins; nothing stored is not a renewal.
    auto expired = evaluate(spec, s, std::nullopt, std::nullopt, rng, now + 61 * 24h);
    apply_manual_renewal(expired);
    EXPECT_EQ(expired.reason, IssueReason::Expired);
    EXPECT_FALSE(keeps_serving(expired.reason));
    auto none = evaluate(spec, std::nullopt, std::nullopt, std::nullopt, rng, now);
    apply_manual_renewal(none);
    EXPECT_EQ(none.reason, IssueReason::DoesNotExist);
}

TEST_F(EvalFixture, AriWindowKeepsAnEarlierPickInsideIt) {
    auto s = stored(spec.dns_names, now - 30 * 24h, now + 60 * 24h);
    acme::RenewalInfo ari;
    ari.suggested_window = {now + 10 * 24h, now + 12 * 24h};
    ari.next_poll = now + 6h;
    auto ev = evaluate(spec, s, ari, std::nullopt, rng, now);
    ASSERT_TRUE(ev.renewal);
    EXPECT_EQ(ev.renewal->basis, RenewalBasis::Ari);
    EXPECT_GE(ev.renewal->renewal_time, ari.suggested_window.start);
    EXPECT_LE(ev.renewal->renewal_time, ari.suggested_window.end);
    SystemTime prev = now + 11 * 24h;
    for (int i = 0; i < 5; ++i) EXPECT_EQ(evaluate(spec, s, ari, prev, rng, now).renewal->renewal_time, prev);
    // A previous pick outside a new window is not kept.
    auto moved = evaluate(spec, s, ari, now + 40 * 24h, rng, now);
    EXPECT_LE(moved.renewal->renewal_time, ari.suggested_window.end);
}

}  // namespace
}  // namespace edgecert::controller
