// selfSigned / ca issuers at the controller level: the spec fields cert-manager users write, the
// issuer spec, loading a CA key pair with cert-manager's reasons, issue_signed() into a store, and
// check_signed() deciding when a stored certificate must be re-signed.
#include "controller/signing.h"

#include <gtest/gtest.h>

#include <map>

namespace edgecert::controller {
namespace {

using namespace std::chrono_literals;

// The store contract, in memory.
class MemoryStore final : public store::CertificateStore {
  public:
    std::map<std::string, store::StoredCertificate> certs;
    std::map<std::string, store::CertificateMeta> metas;
    std::map<std::string, store::PendingOrder> pending;
    Result<std::optional<store::StoredCertificate>> load_certificate(
        const store::CertificateRef& ref) override {
        auto it = certs.find(ref.secret_name);
        if (it == certs.end()) return std::optional<store::StoredCertificate>{};
        return std::optional<store::StoredCertificate>(it->second);
    }
    Status save_certificate(const store::CertificateRef& ref, const store::StoredCertificate& c,
                            const store::CertificateMeta& m) override {
        certs[ref.secret_name] = c;
        metas[ref.secret_name] = m;
        return {};
    }
    Result<std::optional<store::PendingOrder>> load_pending(
        const store::CertificateRef& ref) override {
        auto it = pending.find(ref.secret_name);
        if (it == pending.end()) return std::optional<store::PendingOrder>{};
        return std::optional<store::PendingOrder>(it->second);
    }
    Status save_pending(const store::CertificateRef& ref, const store::PendingOrder& o) override {
        pending[ref.secret_name] = o;
        return {};
    }
    Status clear_pending(const store::CertificateRef& ref) override {
        pending.erase(ref.secret_name);
        return {};
    }
};

json signing_cert(json spec, const std::string& name = "c") {
    return json{{"metadata", {{"name", name}, {"namespace", "ns"}}}, {"spec", std::move(spec)}};
}

CertificateSpec parse(json spec, const std::string& name = "c") {
    auto s = parse_certificate_spec(signing_cert(std::move(spec), name));
    EXPECT_TRUE(s.ok()) << s.error().message;
    return *s;
}

// cert-manager's bootstrap CA Certificate, translated.
json ca_spec() {
    return json{{"isCA", true},
                {"commonName", "my-selfsigned-ca"},
                {"secretName", "root-secret"},
                {"privateKey", {{"algorithm", "ECDSA"}, {"size", 256}}},
                {"issuerRef", {{"name", "selfsigned-issuer"}, {"kind", "ClusterIssuer"}}}};
}

TEST(SigningSpec, CertManagerFieldsAreParsed) {
    json j = ca_spec();
    j["duration"] = "8760h";
    j["usages"] = {"digital signature", "cert sign", "crl sign", "digital signature"};
    j["subject"] = {{"organizations", {"Example"}}, {"organizationalUnits", {"Ops"}},
                    {"countries", {"NL"}},          {"localities", {"Amsterdam"}},
                    {"provinces", {"NH"}},          {"streetAddresses", {"1 Main"}},
                    {"postalCodes", {"1000"}},      {"serialNumber", "7"}};
    CertificateSpec s = parse(j);
    EXPECT_TRUE(s.is_ca);
    EXPECT_TRUE(s.dns_names.empty());  // commonName alone is enough for a signed-here certificate
    EXPECT_EQ(s.subject.common_name, "my-selfsigned-ca");
    EXPECT_EQ(s.subject.organizations, std::vector<std::string>{"Example"});
    EXPECT_EQ(s.subject.street_addresses, std::vector<std::string>{"1 Main"});
    EXPECT_EQ(s.subject.serial_number, "7");
    EXPECT_EQ(s.usages, (std::vector<pki::Usage>{pki::Usage::DigitalSignature, pki::Usage::CertSign,
                                                 pki::Usage::CrlSign}));  // duplicates dropped
    EXPECT_EQ(s.duration, std::chrono::seconds(8760h));
    auto t = s.signing_template();
    EXPECT_EQ(t.duration, std::chrono::seconds(8760h));
    EXPECT_TRUE(t.is_ca);
    // Without duration: cert-manager's 90 days.
    EXPECT_EQ(parse(ca_spec()).signing_template().duration, pki::kDefaultDuration);
}

TEST(SigningSpec, BadFieldsNameThemselves) {
    struct Case {
        std::function<void(json&)> mutate;
        std::string needle;
    } cases[] = {
        {[](json& s) { s["isCA"] = "yes"; }, "spec.isCA"},
        {[](json& s) { s["usages"] = {"serverAuth"}; },
         "spec.usages: usage 'serverAuth' is not one of"},
        {[](json& s) { s["usages"] = "server auth"; }, "spec.usages must be a list"},
        {[](json& s) { s["duration"] = "90d"; }, "spec.duration"},
        {[](json& s) { s["duration"] = "0s"; }, "spec.duration must be at least one second"},
        {[](json& s) {
             s["subject"] = {{"countries", {"NLD"}}};
         },
         "spec.subject.countries"},
        {[](json& s) {
             s["subject"] = {{"organizations", "Example"}};
         },
         "spec.subject.organizations"},
        {[](json& s) { s["commonName"] = std::string(65, 'a'); }, "longer than 64"},
        {[](json& s) { s.erase("commonName"); }, "spec.dnsNames"},
        {[](json& s) { s["dnsNames"] = json::array(); }, "spec.dnsNames"},
    };
    for (auto& c : cases) {
        json j = ca_spec();
        c.mutate(j);
        auto r = parse_certificate_spec(signing_cert(j));
        ASSERT_FALSE(r.ok()) << j.dump();
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
        EXPECT_NE(r.error().message.find(c.needle), std::string::npos) << r.error().message;
    }
}

TEST(SigningSpec, IssuerSpecIsExactlyOneKind) {
    EXPECT_EQ(parse_issuer_spec(json{{"selfSigned", json::object()}})->type,
              IssuerType::SelfSigned);
    auto ca = parse_issuer_spec(json{{"ca", {{"secretName", "root-secret"}}}});
    ASSERT_TRUE(ca.ok());
    EXPECT_EQ(ca->type, IssuerType::Ca);
    EXPECT_EQ(ca->ca_secret_name, "root-secret");
    EXPECT_EQ(parse_issuer_spec(json{{"acme", {{"server", "https://a.test/dir"}}}})->type,
              IssuerType::Acme);
    for (const json& bad :
         {json::object(), json{{"ca", json::object()}}, json{{"ca", {{"secretName", "Bad_Name"}}}},
          json{{"selfSigned", json::object()}, {"ca", {{"secretName", "x"}}}}}) {
        auto r = parse_issuer_spec(bad);
        ASSERT_FALSE(r.ok()) << bad.dump();
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
    }
    // What an ACME CA cannot give.
    IssuerSpec acme{.type = IssuerType::Acme, .acme = {}, .ca_secret_name = {}};
    EXPECT_NE(
        check_certificate_for_issuer(parse(ca_spec()), acme).error().message.find("spec.dnsNames"),
        std::string::npos);
    json ip_only = ca_spec();
    ip_only.erase("isCA");
    ip_only["ipAddresses"] = {"192.0.2.1"};
    EXPECT_TRUE(check_certificate_for_issuer(parse(ip_only), acme).ok());  // RFC 8738
    json j = ca_spec();
    j["dnsNames"] = {"ca.example"};
    EXPECT_NE(check_certificate_for_issuer(parse(j), acme).error().message.find("spec.isCA"),
              std::string::npos);
    EXPECT_TRUE(
        check_certificate_for_issuer(parse(ca_spec()), IssuerSpec{.type = IssuerType::SelfSigned})
            .ok());
}

struct SigningFixture : ::testing::Test {
    FakeClock clock{std::chrono::system_clock::from_time_t(1'900'000'000)};
    MemoryStore store;
    std::mt19937_64 rng{1};

    IssueResult sign(const CertificateSpec& s, const Signer& signer) {
        std::optional<store::StoredCertificate> current;
        if (auto c = store.load_certificate(s.ref); c.ok() && *c) current = **c;
        auto r = issue_signed(
            store, IssueRequest{.spec = &s, .issuer = nullptr, .current = current}, signer, clock);
        EXPECT_TRUE(r.ok()) << r.error().message;
        return *r;
    }
    CaMaterial material(const std::string& secret) {
        auto& c = store.certs.at(secret);
        return CaMaterial{.where = "Secret ns/" + secret,
                          .exists = true,
                          .tls_crt = c.cert_pem,
                          .tls_key = c.key_pem,
                          .ca_crt = c.ca_pem};
    }
    Evaluation eval(const CertificateSpec& s, const Signer& signer) {
        auto stored = *store.load_certificate(s.ref);
        auto ev = evaluate(s, stored, std::nullopt, std::nullopt, rng, clock.now());
        if (stored) check_signed(ev, s, *stored, signer);
        return ev;
    }
};

TEST_F(SigningFixture, BootstrapRecipeRenewalsIncluded) {
    const Signer self{.type = IssuerType::SelfSigned, .ca = nullptr};
    json cj = ca_spec();
    cj["privateKey"]["rotationPolicy"] = "Never";
    CertificateSpec ca_cert = parse(cj, "my-selfsigned-ca");
    sign(ca_cert, self);
    const auto& stored_ca = store.certs.at("root-secret");
    EXPECT_EQ(stored_ca.ca_pem, stored_ca.cert_pem);  // selfSigned: ca.crt is the certificate
    EXPECT_EQ(store.metas.at("root-secret").issuer_kind, "ClusterIssuer");
    EXPECT_EQ(eval(ca_cert, self).reason, IssueReason::None);

    auto ca = load_ca(material("root-secret"), clock.now());
    ASSERT_TRUE(ca.ok()) << ca.error().message;
    const Signer by_ca{.type = IssuerType::Ca, .ca = &*ca};
    CertificateSpec leaf = parse({{"secretName", "web"},
                                  {"dnsNames", {"web.example"}},
                                  {"usages", {"server auth"}},
                                  {"issuerRef", {{"name", "my-ca-issuer"}}}},
                                 "web");
    sign(leaf, by_ca);
    EXPECT_EQ(store.certs.at("web").ca_pem, ca->ca_pem());
    EXPECT_EQ(eval(leaf, by_ca).reason, IssueReason::None);
    EXPECT_EQ(eval(leaf, self).reason,
              IssueReason::IncorrectIssuer);  // the issuer became selfSigned

    // The spec changes: re-issue.
    CertificateSpec client = leaf;
    client.usages.push_back(pki::Usage::ClientAuth);
    auto changed = eval(client, by_ca);
    EXPECT_EQ(changed.reason, IssueReason::RequestChanged);
    EXPECT_NE(changed.detail.find("spec.usages"), std::string::npos);

    // The CA is renewed with the same key (rotationPolicy: Never): the leaf still verifies, but its
    // ca.crt is the old CA certificate, so it is re-issued with the new one.
    const std::string old_key(stored_ca.key_pem.reveal());
    clock.advance(1h);
    sign(ca_cert, self);
    EXPECT_EQ(store.certs.at("root-secret").key_pem.reveal(), old_key);
    auto renewed_ca = load_ca(material("root-secret"), clock.now());
    ASSERT_TRUE(renewed_ca.ok());
    const Signer by_renewed{.type = IssuerType::Ca, .ca = &*renewed_ca};
    auto ev = eval(leaf, by_renewed);
    EXPECT_EQ(ev.reason, IssueReason::IncorrectIssuer);
    EXPECT_NE(ev.detail.find("ca.crt"), std::string::npos);
    sign(leaf, by_renewed);
    EXPECT_EQ(eval(leaf, by_renewed).reason, IssueReason::None);

    // Renewed with a new key (rotationPolicy: Always, the default): not signed by it any more.
    CertificateSpec rotating = parse(ca_spec(), "my-selfsigned-ca");
    clock.advance(1h);
    sign(rotating, self);
    EXPECT_NE(store.certs.at("root-secret").key_pem.reveal(), old_key);
    auto rotated = load_ca(material("root-secret"), clock.now());
    ASSERT_TRUE(rotated.ok());
    auto ev2 = eval(leaf, Signer{.type = IssuerType::Ca, .ca = &*rotated});
    EXPECT_EQ(ev2.reason, IssueReason::IncorrectIssuer);
    EXPECT_NE(ev2.detail.find("current CA key"), std::string::npos);
    // The CA unreadable right now: the stored leaf is kept (only the spec is compared).
    EXPECT_EQ(eval(leaf, Signer{.type = IssuerType::Ca, .ca = nullptr}).reason, IssueReason::None);
}

TEST_F(SigningFixture, IpAddressesBecomeIpSansOfASignedLeaf) {
    // cert-manager's ca issuer writes spec.ipAddresses as iPAddress SANs (internal services
    // reached by address); so do we, and a change to them re-signs.
    const Signer self{.type = IssuerType::SelfSigned, .ca = nullptr};
    sign(parse(ca_spec(), "my-selfsigned-ca"), self);
    auto ca = load_ca(material("root-secret"), clock.now());
    ASSERT_TRUE(ca.ok()) << ca.error().message;
    const Signer by_ca{.type = IssuerType::Ca, .ca = &*ca};
    CertificateSpec leaf = parse({{"secretName", "svc"},
                                  {"dnsNames", {"svc.ns.svc"}},
                                  {"ipAddresses", {"10.96.0.10", "FD00::0:10"}},
                                  {"issuerRef", {{"name", "my-ca-issuer"}}}},
                                 "svc");
    sign(leaf, by_ca);
    auto chain = acme::parse_pem_chain(store.certs.at("svc").cert_pem);
    ASSERT_TRUE(chain.ok());
    EXPECT_EQ(chain->front().dns_names(), std::vector<std::string>{"svc.ns.svc"});
    EXPECT_EQ(chain->front().ip_addresses(), (std::vector<std::string>{"10.96.0.10", "fd00::10"}));
    EXPECT_EQ(store.metas.at("svc").ip_addresses,
              (std::vector<std::string>{"10.96.0.10", "fd00::10"}));
    EXPECT_EQ(eval(leaf, by_ca).reason, IssueReason::None);

    CertificateSpec moved = leaf;
    moved.ip_addresses = {"10.96.0.11", "fd00::10"};
    EXPECT_EQ(eval(moved, by_ca).reason, IssueReason::SANsChanged);
    // An address-only leaf needs no DNS name.
    CertificateSpec only = parse({{"secretName", "only-ip"},
                                  {"ipAddresses", {"192.0.2.9"}},
                                  {"issuerRef", {{"name", "my-ca-issuer"}}}},
                                 "only-ip");
    sign(only, by_ca);
    auto only_chain = acme::parse_pem_chain(store.certs.at("only-ip").cert_pem);
    ASSERT_TRUE(only_chain.ok());
    EXPECT_TRUE(only_chain->front().dns_names().empty());
    EXPECT_EQ(only_chain->front().ip_addresses(), std::vector<std::string>{"192.0.2.9"});
}

TEST_F(SigningFixture, ClampIsReported) {
    json cj = ca_spec();
    cj["duration"] = "2h";
    CertificateSpec ca_cert = parse(cj, "ca");
    sign(ca_cert, Signer{.type = IssuerType::SelfSigned, .ca = nullptr});
    auto ca = load_ca(material("root-secret"), clock.now());
    ASSERT_TRUE(ca.ok());
    CertificateSpec leaf = parse(
        {{"secretName", "web"}, {"dnsNames", {"web.example"}}, {"issuerRef", {{"name", "ca"}}}});
    auto r = sign(leaf, Signer{.type = IssuerType::Ca, .ca = &*ca});
    EXPECT_EQ(r.obtained.chain.front().not_after(), ca->cert().not_after());
    EXPECT_NE(clamp_note(r).find("clamped to the CA certificate's notAfter"), std::string::npos);
    EXPECT_NE(clamp_note(r).find(rfc3339(clock.now() + pki::kDefaultDuration)), std::string::npos);
}

TEST_F(SigningFixture, CaMaterialProblemsGetCertManagersReasons) {
    CertificateSpec ca_cert = parse(ca_spec(), "ca");
    sign(ca_cert, Signer{.type = IssuerType::SelfSigned, .ca = nullptr});
    CaMaterial good = material("root-secret");
    struct Case {
        std::function<void(CaMaterial&)> mutate;
        const char* reason;
        std::string needle;
    } cases[] = {
        {[](CaMaterial& m) { m.exists = false; }, kReasonGetKeyPair,
         "Error getting keypair for CA issuer: Secret ns/root-secret not found"},
        {[](CaMaterial& m) { m.tls_key.reset(); }, kReasonGetKeyPair, "has no tls.key"},
        {[](CaMaterial& m) { m.tls_crt.reset(); }, kReasonGetKeyPair, "has no tls.crt"},
        {[](CaMaterial& m) {
             m.tls_key = acme::PrivateKey::generate(acme::KeyType::EcP256)->to_pem();
         },
         kReasonInvalidKeyPair,
         "Invalid signing key pair: Secret ns/root-secret: the private key (tls.key) does not "
         "match"},
    };
    for (auto& c : cases) {
        CaMaterial m = good;
        c.mutate(m);
        auto r = load_ca(m, clock.now());
        ASSERT_FALSE(r.ok());
        EXPECT_STREQ(ca_reason(r.error()), c.reason);
        EXPECT_NE(r.error().message.find(c.needle), std::string::npos) << r.error().message;
    }
    // Expired, and a leaf that is not a CA.
    EXPECT_NE(load_ca(good, clock.now() + 24h * 91).error().message.find("expired at"),
              std::string::npos);
    CertificateSpec leaf = parse(
        {{"secretName", "web"}, {"dnsNames", {"web.example"}}, {"issuerRef", {{"name", "x"}}}});
    sign(leaf, Signer{.type = IssuerType::SelfSigned, .ca = nullptr});
    auto not_ca = load_ca(material("web"), clock.now());
    EXPECT_STREQ(ca_reason(not_ca.error()), kReasonInvalidKeyPair);
    EXPECT_NE(not_ca.error().message.find("not a CA"), std::string::npos);
    // The polling delay grows and is bounded.
    EXPECT_EQ(ca_retry_delay(1), 2s);
    EXPECT_EQ(ca_retry_delay(3), 8s);
    EXPECT_EQ(ca_retry_delay(50), 300s);
}

TEST_F(SigningFixture, RotationPolicyAndStaleOrders) {
    json j = {{"secretName", "web"},
              {"dnsNames", {"web.example"}},
              {"issuerRef", {{"name", "s"}}},
              {"privateKey", {{"rotationPolicy", "Never"}}}};
    CertificateSpec keep = parse(j);
    const Signer self{.type = IssuerType::SelfSigned, .ca = nullptr};
    store.pending["web"] = store::PendingOrder{
        .server = "https://old", .dns_names = {}, .order_url = "u", .key_pem = {}};
    sign(keep, self);
    EXPECT_TRUE(store.pending.empty());  // an ACME order from before the issuer changed is dropped
    const std::string k1(store.certs.at("web").key_pem.reveal());
    sign(keep, self);
    EXPECT_EQ(store.certs.at("web").key_pem.reveal(), k1);
    j["privateKey"]["rotationPolicy"] = "Always";
    sign(parse(j), self);
    EXPECT_NE(store.certs.at("web").key_pem.reveal(), k1);
}

}  // namespace
}  // namespace edgecert::controller
