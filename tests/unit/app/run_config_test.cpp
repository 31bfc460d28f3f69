// `edgecert run` config: YAML → CRD-shaped specs, validated by the controller's own parsers,
// with every error naming its entry.
#include "app/run_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace edgecert::app {
namespace {

const char* kBase = R"(
store: /var/lib/edgecert
issuers:
  - name: pebble
    acme:
      server: https://127.0.0.1:14000/dir
      caBundle: |
        -----BEGIN CERTIFICATE-----
        MIIB
        -----END CERTIFICATE-----
      email: ops@example.test
      profile: shortlived
      preferredChain: "Pebble Root"
      solvers:
        - http01: {}
        - tlsAlpn01: {}
certificates:
  - name: demo
    dnsNames: [Demo.Example.test, www.example.test]
    issuerRef: {name: pebble}
    privateKey: {algorithm: RSA, size: 3072, rotationPolicy: Never}
    renewBefore: 720h
  - name: api
    secretName: api-tls
    dnsNames: [api.example.test]
    issuerRef: {name: pebble}
    renewBeforePercentage: 25
terminator:
  listen: "127.0.0.1:8443"
  httpListen: off
  upstream: 127.0.0.1:8080
  proxyProtocol: v2
  httpMode: passthrough
  admin: 127.0.0.1:0
  workers: 3
  strictSni: true
  defaultCertificate: api
  drainTimeout: 2s
  upstreamProtocol: h2c
  alpn: [h2, http/1.1]
)";

Result<RunConfig> parse(const std::string& yaml, const std::string& base = "/etc/edgecert") {
    auto j = yaml_to_json(yaml);
    if (!j) return j.error();
    return parse_run_config(*j, base);
}

// Parses kBase with one line replaced (or a block appended).
std::string with(std::string from, const std::string& to, std::string s = kBase) {
    auto p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    if (p != std::string::npos) s.replace(p, from.size(), to);
    return s;
}

TEST(RunConfig, FullExampleMapsToCrdSpecs) {
    auto c = parse(kBase);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->store, "/var/lib/edgecert");
    ASSERT_EQ(c->issuers.size(), 1u);
    const auto& iss = c->issuers[0];
    EXPECT_EQ(iss.name, "pebble");
    EXPECT_EQ(iss.acme.server, "https://127.0.0.1:14000/dir");
    EXPECT_NE(iss.acme.ca_bundle_pem.find("BEGIN CERTIFICATE"), std::string::npos);
    EXPECT_EQ(iss.acme.email, "ops@example.test");
    EXPECT_EQ(iss.acme.profile, "shortlived");
    EXPECT_EQ(iss.acme.preferred_chain, "Pebble Root");
    EXPECT_EQ(iss.acme.challenge_types, (std::vector<std::string>{"http-01", "tls-alpn-01"}));
    EXPECT_FALSE(iss.eab_hmac);

    ASSERT_EQ(c->certificates.size(), 2u);
    const auto& demo = c->certificates[0];
    EXPECT_EQ(demo.ref.name, "demo");
    EXPECT_EQ(demo.ref.secret_name, "demo");  // defaults to the name
    EXPECT_EQ(demo.ref.namespace_, "");
    EXPECT_EQ(demo.dns_names, (std::vector<std::string>{"demo.example.test", "www.example.test"}));
    EXPECT_EQ(demo.issuer_name, "pebble");
    EXPECT_EQ(demo.key_type, acme::KeyType::Rsa3072);
    EXPECT_FALSE(demo.rotate_key);
    EXPECT_EQ(demo.renewal.renew_before, "720h");
    const auto& api = c->certificates[1];
    EXPECT_EQ(api.ref.secret_name, "api-tls");
    EXPECT_EQ(api.key_type, acme::KeyType::EcP256);
    EXPECT_EQ(api.renewal.renew_before_percentage, 25);

    const auto& t = c->terminator;
    EXPECT_EQ(t.listen, "127.0.0.1:8443");
    EXPECT_EQ(t.http_listen, "");  // off
    EXPECT_EQ(t.upstream, "127.0.0.1:8080");
    EXPECT_EQ(t.proxy_protocol, proxy::ProxyProtocol::V2);
    EXPECT_EQ(t.http_mode, proxy::HttpMode::Passthrough);
    EXPECT_EQ(t.admin, "127.0.0.1:0");
    EXPECT_EQ(t.workers, 3);
    EXPECT_TRUE(t.strict_sni);
    EXPECT_EQ(t.default_certificate, "api-tls");  // the folder the terminator knows
    EXPECT_EQ(t.drain_timeout, std::chrono::milliseconds(2000));
    EXPECT_EQ(t.upstream_protocol, proxy::UpstreamProtocol::H2c);
    EXPECT_EQ(t.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
    EXPECT_EQ(c->issuer("pebble"), &c->issuers[0]);
    EXPECT_EQ(c->certificate("api"), &c->certificates[1]);
    EXPECT_EQ(c->certificate("nope"), nullptr);
}

TEST(RunConfig, TerminatorDefaults) {
    auto c = parse("store: s\nterminator: {upstream: 127.0.0.1:80}\n");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->store, "/etc/edgecert/s");  // relative to the config file's folder
    EXPECT_TRUE(c->issuers.empty());
    EXPECT_TRUE(c->certificates.empty());
    EXPECT_EQ(c->terminator.listen, "0.0.0.0:443");
    EXPECT_EQ(c->terminator.http_listen, "0.0.0.0:80");
    EXPECT_EQ(c->terminator.proxy_protocol, proxy::ProxyProtocol::None);
    EXPECT_EQ(c->terminator.http_mode, proxy::HttpMode::Redirect);
    EXPECT_EQ(c->terminator.admin, "127.0.0.1:9402");
    EXPECT_EQ(c->terminator.workers, 1);
    EXPECT_EQ(c->terminator.upstream_protocol, proxy::UpstreamProtocol::Http1);
    EXPECT_EQ(c->terminator.alpn, (std::vector<std::string>{"http/1.1"}));
    EXPECT_EQ(c->terminator.ktls, proxy::KtlsMode::Off);
}

TEST(RunConfig, KtlsModes) {
    for (auto [text, mode] : {std::pair{"off", proxy::KtlsMode::Off}, {"auto", proxy::KtlsMode::Auto},
                              {"on", proxy::KtlsMode::On}}) {
        auto c = parse(std::string("store: s\nterminator: {upstream: 127.0.0.1:80, ktls: ") + text + "}\n");
        ASSERT_TRUE(c) << c.error().message;
        EXPECT_EQ(c->terminator.ktls, mode) << text;
    }
    auto bad = parse("store: s\nterminator: {upstream: 127.0.0.1:80, ktls: yes}\n");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("ktls 'yes': use off"), std::string::npos) << bad.error().message;
}

TEST(RunConfig, H2IsOfferedOnlyToAnH2cUpstream) {
    auto c = parse("store: s\nterminator: {upstream: 127.0.0.1:80, upstreamProtocol: h2c}\n");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->terminator.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
    c = parse("store: s\nterminator: {upstream: 127.0.0.1:80, upstreamProtocol: h2c, alpn: [http/1.1]}\n");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->terminator.alpn, (std::vector<std::string>{"http/1.1"}));
}

struct BadCase {
    const char* what;
    std::string yaml;
    const char* expect;  // substring of the message
};

TEST(RunConfig, ErrorsNameTheEntry) {
    const BadCase cases[] = {
        {"unknown top-level key", std::string(kBase) + "stores: /x\n", "unknown field 'stores'"},
        {"missing store", with("store: /var/lib/edgecert", ""), "store: required"},
        {"unknown certificate field", with("    renewBefore: 720h", "    renewbefore: 720h"),
         "certificates[0] (demo): unknown field 'renewbefore'"},
        {"no dnsNames", with("    dnsNames: [api.example.test]", "    dnsNames: []"),
         "certificates[1] (api): spec.dnsNames must list at least one name"},
        {"bad dns name", with("[api.example.test]", "[\"bad name\"]"),
         "certificates[1] (api): spec.dnsNames"},
        {"missing issuer",
         with("    issuerRef: {name: pebble}\n    renewBeforePercentage",
              "    issuerRef: {name: le}\n    renewBeforePercentage"),
         "certificates[1] (api): issuerRef.name 'le' is not one of the issuers"},
        {"ClusterIssuer",
         with("    issuerRef: {name: pebble}\n    renewBeforePercentage",
              "    issuerRef: {name: pebble, kind: ClusterIssuer}\n    renewBeforePercentage"),
         "certificates[1] (api): issuerRef.kind"},
        {"duplicate certificate", with("  - name: api\n", "  - name: demo\n"),
         "certificates[1] (demo): duplicate certificate name 'demo'"},
        {"duplicate folder", with("    secretName: api-tls", "    secretName: demo"),
         "certificates[1] (api): secretName 'demo' is used by another certificate"},
        {"bad renewBefore", with("renewBefore: 720h", "renewBefore: soon"),
         "certificates[0] (demo): invalid duration"},
        {"both renewal overrides",
         with("renewBefore: 720h", "renewBefore: 720h\n    renewBeforePercentage: 10"),
         "certificates[0] (demo): renewBefore and renewBeforePercentage are mutually exclusive"},
        {"bad key size", with("size: 3072", "size: 1024"),
         "certificates[0] (demo): spec.privateKey.size 1024"},
        {"ca with acme's fields", with("    acme:\n      server", "    ca:\n      server"),
         "issuers[0] (pebble): ca: unknown field 'caBundle'"},
        {"two issuer kinds", with("    acme:\n", "    selfSigned: {}\n    acme:\n"),
         "issuers[0] (pebble): exactly one of acme, selfSigned, ca is required"},
        {"isCA from an ACME CA",
         with("    renewBefore: 720h", "    renewBefore: 720h\n    isCA: true"),
         "certificates[0] (demo): issuer 'pebble': spec.isCA: an ACME CA does not issue CA "
         "certificates"},
        {"bad usage",
         with("    renewBefore: 720h", "    renewBefore: 720h\n    usages: [serverAuth]"),
         "certificates[0] (demo): spec.usages: usage 'serverAuth'"},
        {"unknown fallback issuer",
         with("    renewBefore: 720h",
              "    renewBefore: 720h\n    fallbackIssuerRefs: [{name: zerossl}]"),
         "certificates[0] (demo): fallbackIssuerRefs[0].name 'zerossl' is not one of the issuers "
         "in this file"},
        {"fallback ClusterIssuer",
         with("    renewBefore: 720h",
              "    renewBefore: 720h\n    fallbackIssuerRefs: [{name: pebble, kind: "
              "ClusterIssuer}]"),
         "certificates[0] (demo): fallbackIssuerRefs[].kind"},
        {"fallback is the primary",
         with("    renewBefore: 720h",
              "    renewBefore: 720h\n    fallbackIssuerRefs: [{name: pebble}]"),
         "certificates[0] (demo): spec.fallbackIssuerRefs[0] names spec.issuerRef again"},
        {"bad fallbackPolicy",
         with("    renewBefore: 720h",
              "    renewBefore: 720h\n    fallbackPolicy: {afterAttempts: 0}"),
         "certificates[0] (demo): spec.fallbackPolicy.afterAttempts"},
        {"fallback to a selfSigned issuer",
         with("    renewBefore: 720h",
              "    renewBefore: 720h\n    fallbackIssuerRefs: [{name: internal}]",
              with("certificates:\n", "  - name: internal\n    selfSigned: {}\ncertificates:\n")),
         "certificates[0] (demo): fallbackIssuerRefs[0]: issuer 'internal' is selfSigned; only "
         "ACME issuers can have or be fallbacks"},
        {"bad server", with("server: https://127.0.0.1:14000/dir", "server: ftp://x"),
         "issuers[0] (pebble): spec.acme.server"},
        {"unknown acme field",
         with("      email: ops@example.test", "      mail: ops@example.test"),
         "issuers[0] (pebble): acme: unknown field 'mail'"},
        {"missing caBundleFile",
         with("      email: ops@example.test", "      caBundleFile: /nonexistent/ca.pem"),
         "issuers[0] (pebble): acme.caBundleFile /nonexistent/ca.pem"},
        {"dns01 without rfc2136 or webhook",
         with("        - http01: {}\n        - tlsAlpn01: {}", "        - dns01: {}"),
         "issuers[0] (pebble): spec.acme.solvers[].dns01: set exactly one of rfc2136 and webhook"},
        {"missing upstream", with("  upstream: 127.0.0.1:8080\n", ""),
         "terminator: upstream is required"},
        {"bad proxyProtocol", with("proxyProtocol: v2", "proxyProtocol: v3"),
         "terminator: proxyProtocol"},
        {"h2 to an http1 upstream", with("  upstreamProtocol: h2c\n", ""),
         "terminator: ALPN h2 is offered but the upstream protocol is http1"},
        {"bad upstreamProtocol", with("upstreamProtocol: h2c", "upstreamProtocol: http3"),
         "terminator: upstream protocol 'http3': use http1"},
        {"bad workers", with("workers: 3", "workers: zero"), "terminator: workers"},
        {"unknown terminator key", with("  workers: 3", "  threads: 3"),
         "terminator: unknown field 'threads'"},
        {"unknown defaultCertificate", with("defaultCertificate: api", "defaultCertificate: web"),
         "terminator: defaultCertificate 'web'"},
        {"not a map", "- a\n- b\n", "must be a YAML map"},
        {"broken YAML", "store: [unclosed\n", "not valid YAML"},
    };
    for (const auto& c : cases) {
        auto r = parse(c.yaml);
        ASSERT_FALSE(r) << c.what;
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig) << c.what;
        EXPECT_NE(r.error().message.find(c.expect), std::string::npos)
            << c.what << ": got '" << r.error().message << "', want '" << c.expect << "'";
    }
}

TEST(RunConfig, FallbackIssuersAreIssuersOfTheFile) {
    std::string yaml = with("        - tlsAlpn01: {}\n",
                            "        - tlsAlpn01: {}\n  - name: zerossl\n    acme:\n"
                            "      server: https://127.0.0.1:15000/dir\n");
    yaml = with("    renewBefore: 720h",
                "    renewBefore: 720h\n    fallbackIssuerRefs: [{name: zerossl}]\n"
                "    fallbackPolicy: {afterAttempts: 2, maxRetryAfter: 10m}",
                yaml);
    auto r = parse(yaml);
    ASSERT_TRUE(r) << r.error().message;
    const auto* demo = r->certificate("demo");
    ASSERT_EQ(demo->issuer_chain().size(), 2u);
    EXPECT_EQ(demo->issuer_chain()[1].name, "zerossl");
    auto p = demo->fallback_policy.with_defaults(controller::FallbackPolicy{});
    EXPECT_EQ(p.after_attempts, 2);
    EXPECT_EQ(p.after_duration, std::chrono::hours(1));
    EXPECT_EQ(p.max_retry_after, std::chrono::minutes(10));
    EXPECT_TRUE(r->certificate("api")->fallback_issuers.empty());
}

TEST(RunConfig, YamlScalarsFollowTheCoreSchema) {
    auto j = yaml_to_json("a: 1\nb: \"1\"\nc: true\nd: 'true'\ne: ~\nf: 1.5\ng: 720h\nh: 127.0.0.1:80\ni: -3\nj: 1.2.3\n");
    ASSERT_TRUE(j) << j.error().message;
    EXPECT_EQ((*j)["a"], 1);
    EXPECT_EQ((*j)["b"], "1");
    EXPECT_EQ((*j)["c"], true);
    EXPECT_EQ((*j)["d"], "true");
    EXPECT_TRUE((*j)["e"].is_null());
    EXPECT_DOUBLE_EQ((*j)["f"].get<double>(), 1.5);
    EXPECT_EQ((*j)["g"], "720h");
    EXPECT_EQ((*j)["h"], "127.0.0.1:80");
    EXPECT_EQ((*j)["i"], -3);
    EXPECT_EQ((*j)["j"], "1.2.3");
}

TEST(RunConfig, LabelsFeedSolverSelectors) {
    const std::string yaml = R"(
store: s
issuers:
  - name: ca
    acme:
      server: https://127.0.0.1:1/dir
      solvers:
        - tlsAlpn01: {}
          selector: {matchLabels: {edge: alpn}}
        - http01: {}
          selector: {dnsZones: [web.example.test]}
certificates:
  - name: a
    labels: {edge: alpn}
    dnsNames: [a.example.test]
    issuerRef: {name: ca}
  - name: b
    dnsNames: [b.web.example.test]
    issuerRef: {name: ca}
terminator: {upstream: "127.0.0.1:80"}
)";
    auto c = parse(yaml);
    ASSERT_TRUE(c) << c.error().message;
    const auto* a = c->certificate("a");
    EXPECT_EQ(a->labels.at("edge"), "alpn");
    auto ta = controller::challenge_types_for(c->issuers[0].acme, a->labels, a->dns_names);
    ASSERT_TRUE(ta);
    EXPECT_EQ(*ta, (std::vector<std::string>{"tls-alpn-01"}));
    const auto* b = c->certificate("b");
    auto tb = controller::challenge_types_for(c->issuers[0].acme, b->labels, b->dns_names);
    ASSERT_TRUE(tb);
    EXPECT_EQ(*tb, (std::vector<std::string>{"http-01"}));

    // A certificate no solver selects is refused at load, naming the entry.
    std::string bad = yaml;
    bad.replace(bad.find("b.web.example.test"), 18, "c.other.test");
    auto r = parse(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("certificates[1] (b): issuer 'ca': no solver"), std::string::npos)
        << r.error().message;
    bad = yaml;
    bad.replace(bad.find("labels: {edge: alpn}"), 20, "labels: {edge: [x]}");
    r = parse(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("certificates[0] (a): labels.edge must be a string"), std::string::npos)
        << r.error().message;
}

class RunConfigFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/run_config_test.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
    void write(const std::string& name, const std::string& text) { std::ofstream(dir_ + "/" + name) << text; }
    std::string dir_;
};

TEST_F(RunConfigFiles, FilesAreReadRelativeToTheConfig) {
    write("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    write("eab.key", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\n");
    write("run.yaml", R"(
store: state
issuers:
  - name: zerossl
    acme:
      server: https://127.0.0.1:1/dir
      caBundleFile: ca.pem
      externalAccountBinding: {keyID: kid-1, keySecretFile: eab.key}
certificates: []
terminator: {upstream: "127.0.0.1:80"}
)");
    auto c = load_run_config(dir_ + "/run.yaml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->store, dir_ + "/state");
    const auto& iss = c->issuers.at(0);
    EXPECT_NE(iss.acme.ca_bundle_pem.find("MIIB"), std::string::npos);
    EXPECT_EQ(iss.acme.eab_key_id, "kid-1");
    ASSERT_TRUE(iss.eab_hmac);
    EXPECT_EQ(iss.eab_hmac->size(), 48u);  // 64 base64url characters, decoded
    EXPECT_EQ(iss.acme.challenge_types, (std::vector<std::string>{"http-01", "tls-alpn-01"}));
}

TEST_F(RunConfigFiles, SelfSignedAndCaIssuers) {
    auto key = acme::PrivateKey::generate(acme::KeyType::EcP256);
    ASSERT_TRUE(key);
    pki::CertificateTemplate t;
    t.subject.common_name = "file-ca";
    t.is_ca = true;
    auto ca = pki::issue(t, *key, nullptr, RealClock::instance().now());
    ASSERT_TRUE(ca);
    write("ca.crt", ca->chain_pem);
    write("ca.key", std::string(key->to_pem().reveal()));
    const std::string yaml = R"(
store: s
issuers:
  - name: selfsigned
    selfSigned: {}
  - name: internal
    ca: {secretName: root}
  - name: files
    ca: {certFile: ca.crt, keyFile: ca.key}
certificates:
  - name: root
    isCA: true
    commonName: run-root
    duration: 87600h
    issuerRef: {name: selfsigned}
  - name: web
    dnsNames: [web.example.test]
    usages: [server auth]
    subject: {organizations: [Example]}
    issuerRef: {name: internal}
terminator: {upstream: "127.0.0.1:80"}
)";
    write("run.yaml", yaml);
    auto c = load_run_config(dir_ + "/run.yaml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->issuers[0].type, controller::IssuerType::SelfSigned);
    EXPECT_EQ(c->issuers[1].type, controller::IssuerType::Ca);
    EXPECT_EQ(c->issuers[1].ca_secret_name, "root");
    EXPECT_EQ(c->issuers[2].ca_cert_file, dir_ + "/ca.crt");
    EXPECT_TRUE(load_ca_files(c->issuers[2], RealClock::instance().now()));
    EXPECT_TRUE(c->certificates[0].is_ca);
    EXPECT_TRUE(c->certificates[0].dns_names.empty());
    EXPECT_EQ(c->certificates[0].duration, std::chrono::seconds(87600 * 3600));
    EXPECT_EQ(c->certificates[1].usages, std::vector<pki::Usage>{pki::Usage::ServerAuth});
    EXPECT_EQ(c->certificates[1].subject.organizations, std::vector<std::string>{"Example"});

    // A key that is not the certificate's stops the load, naming the issuer and both files.
    write("ca.key",
          std::string(acme::PrivateKey::generate(acme::KeyType::EcP256)->to_pem().reveal()));
    auto bad = load_run_config(dir_ + "/run.yaml");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find(
                  "issuers[2] (files): Invalid signing key pair: ca.certFile/keyFile"),
              std::string::npos)
        << bad.error().message;
    EXPECT_NE(bad.error().message.find("does not match"), std::string::npos);
    std::remove((dir_ + "/ca.key").c_str());
    bad = load_run_config(dir_ + "/run.yaml");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("ca.keyFile " + dir_ + "/ca.key not found"),
              std::string::npos)
        << bad.error().message;
    write("run.yaml", yaml.substr(0, yaml.find("  - name: files")) +
                          "  - name: files\n    ca: {certFile: ca.crt}\n" +
                          yaml.substr(yaml.find("certificates:")));
    bad = load_run_config(dir_ + "/run.yaml");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("ca.certFile and ca.keyFile are both required"),
              std::string::npos)
        << bad.error().message;
}

TEST_F(RunConfigFiles, MissingFileAndEabFileAreClearErrors) {
    auto c = load_run_config(dir_ + "/absent.yaml");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("absent.yaml"), std::string::npos);
    write("run.yaml", R"(
store: s
issuers:
  - name: z
    acme:
      server: https://127.0.0.1:1/dir
      externalAccountBinding: {keyID: kid-1}
terminator: {upstream: "127.0.0.1:80"}
)");
    c = load_run_config(dir_ + "/run.yaml");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("issuers[0] (z): acme.externalAccountBinding.keySecretFile is required"),
              std::string::npos)
        << c.error().message;
}

}  // namespace
}  // namespace edgecert::app
