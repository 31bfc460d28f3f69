// Table-driven tests for the certificate shim (src/controller/shim.h).
#include "controller/shim.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace edgecert::controller {
namespace {

using Ann = std::map<std::string, std::string>;

const ShimOptions kWithDefault{IssuerRef{"letsencrypt", "ClusterIssuer", "edgecert.io"}};

json ingress(const Ann& ann, json tls, std::string ns = "web") {
    json j = {{"apiVersion", "networking.k8s.io/v1"},
              {"kind", "Ingress"},
              {"metadata", {{"name", "shop"}, {"namespace", ns}, {"uid", "uid-ing-1"}}},
              {"spec", {{"tls", std::move(tls)}}}};
    if (!ann.empty()) j["metadata"]["annotations"] = ann;
    return j;
}

json tls_entry(std::vector<std::string> hosts, std::string secret) {
    json e = json::object();
    if (!hosts.empty()) e["hosts"] = hosts;
    if (!secret.empty()) e["secretName"] = secret;
    return e;
}

json listener(std::string name, std::optional<std::string> hostname, json refs,
              std::string protocol = "HTTPS", std::optional<std::string> mode = std::nullopt) {
    json l = {{"name", name}, {"protocol", protocol}, {"port", 443}};
    if (hostname) l["hostname"] = *hostname;
    json tls = {{"certificateRefs", std::move(refs)}};
    if (mode) tls["mode"] = *mode;
    l["tls"] = tls;
    return l;
}

json secret_ref(std::string name, std::optional<std::string> ns = std::nullopt) {
    json r = {{"name", name}};
    if (ns) r["namespace"] = *ns;
    return r;
}

json gateway(json listeners, const Ann& ann = {{"edgecert.io/cluster-issuer", "le"}}) {
    return {{"apiVersion", "gateway.networking.k8s.io/v1"},
            {"kind", "Gateway"},
            {"metadata",
             {{"name", "gw"}, {"namespace", "infra"}, {"uid", "uid-gw-1"}, {"annotations", ann}}},
            {"spec", {{"gatewayClassName", "edgecert"}, {"listeners", std::move(listeners)}}}};
}

json grant(std::string ns, std::string from_ns, std::optional<std::string> to_name,
           std::string from_kind = "Gateway") {
    json to = {{"group", ""}, {"kind", "Secret"}};
    if (to_name) to["name"] = *to_name;
    return {{"apiVersion", "gateway.networking.k8s.io/v1beta1"},
            {"kind", "ReferenceGrant"},
            {"metadata", {{"name", "allow-gw"}, {"namespace", ns}}},
            {"spec",
             {{"from",
               json::array({{{"group", "gateway.networking.k8s.io"},
                             {"kind", from_kind},
                             {"namespace", from_ns}}})},
              {"to", json::array({to})}}}};
}

// ---- issuer selection: every annotation combination ----

struct AnnCase {
    std::string name;
    Ann ann;
    bool has_default;
    std::optional<IssuerRef> want;  // nullopt + !bad = not managed
    bool bad;
    size_t notes = 0;
};

TEST(ShimIssuer, AnnotationTable) {
    const IssuerRef def = *kWithDefault.default_issuer;
    std::vector<AnnCase> cases = {
        {"none", {}, true, std::nullopt, false},
        {"unrelated", {{"foo", "bar"}}, true, std::nullopt, false},
        {"edgecert issuer", {{"edgecert.io/issuer", "a"}}, false, IssuerRef{"a", "Issuer"}, false},
        {"edgecert cluster", {{"edgecert.io/cluster-issuer", "c"}}, false,
         IssuerRef{"c", "ClusterIssuer"}, false},
        {"cm issuer", {{"cert-manager.io/issuer", "a"}}, false, IssuerRef{"a", "Issuer"}, false},
        {"cm cluster", {{"cert-manager.io/cluster-issuer", "c"}}, false,
         IssuerRef{"c", "ClusterIssuer"}, false},
        {"tls-acme with default", {{"kubernetes.io/tls-acme", "true"}}, true, def, false},
        {"tls-acme without default", {{"kubernetes.io/tls-acme", "true"}}, false, std::nullopt,
         true},
        {"tls-acme false", {{"kubernetes.io/tls-acme", "false"}}, true, std::nullopt, false},
        {"tls-acme TRUE is not true", {{"kubernetes.io/tls-acme", "TRUE"}}, true, std::nullopt,
         false},
        {"edgecert both", {{"edgecert.io/issuer", "a"}, {"edgecert.io/cluster-issuer", "c"}},
         true, std::nullopt, true},
        {"cm both", {{"cert-manager.io/issuer", "a"}, {"cert-manager.io/cluster-issuer", "c"}},
         true, std::nullopt, true},
        {"edgecert empty issuer", {{"edgecert.io/issuer", ""}}, true, std::nullopt, true},
        {"edgecert empty cluster", {{"edgecert.io/cluster-issuer", ""}}, true, std::nullopt,
         true},
        {"cm empty issuer", {{"cert-manager.io/issuer", ""}}, true, std::nullopt, true},
        {"edgecert wins over cm (same kind)",
         {{"edgecert.io/issuer", "new"}, {"cert-manager.io/issuer", "old"}}, true,
         IssuerRef{"new", "Issuer"}, false, 1},
        {"edgecert wins over cm (other kind)",
         {{"edgecert.io/issuer", "new"}, {"cert-manager.io/cluster-issuer", "old"}}, true,
         IssuerRef{"new", "Issuer"}, false, 1},
        {"edgecert wins over cm both-set", 
         {{"edgecert.io/cluster-issuer", "new"},
          {"cert-manager.io/issuer", "a"},
          {"cert-manager.io/cluster-issuer", "b"}},
         true, IssuerRef{"new", "ClusterIssuer"}, false, 2},
        {"edgecert empty is bad even with valid cm",
         {{"edgecert.io/issuer", ""}, {"cert-manager.io/issuer", "old"}}, true, std::nullopt,
         true, 1},
        {"cm wins over tls-acme",
         {{"cert-manager.io/issuer", "x"}, {"kubernetes.io/tls-acme", "true"}}, true,
         IssuerRef{"x", "Issuer"}, false},
        {"issuer name not an object name", {{"edgecert.io/issuer", "My Issuer"}}, true,
         std::nullopt, true},
        {"cm issuer-kind ClusterIssuer refines cm issuer",
         {{"cert-manager.io/issuer", "le"}, {"cert-manager.io/issuer-kind", "ClusterIssuer"}},
         true, IssuerRef{"le", "ClusterIssuer"}, false},
        {"cm issuer-kind Issuer",
         {{"cert-manager.io/issuer", "le"}, {"cert-manager.io/issuer-kind", "Issuer"}}, true,
         IssuerRef{"le", "Issuer"}, false},
        {"cm issuer-group cert-manager.io accepted",
         {{"cert-manager.io/issuer", "le"}, {"cert-manager.io/issuer-group", "cert-manager.io"}},
         true, IssuerRef{"le", "Issuer"}, false},
        {"cm external issuer group rejected",
         {{"cert-manager.io/issuer", "x"}, {"cert-manager.io/issuer-group", "awspca.cert-manager.io"}},
         true, std::nullopt, true},
        {"cm external issuer kind rejected",
         {{"cert-manager.io/issuer", "x"}, {"cert-manager.io/issuer-kind", "AWSPCAIssuer"}}, true,
         std::nullopt, true},
        {"cm issuer-kind with cluster-issuer rejected",
         {{"cert-manager.io/cluster-issuer", "x"}, {"cert-manager.io/issuer-kind", "Issuer"}},
         true, std::nullopt, true},
        {"cm issuer-kind alone is no annotation", {{"cert-manager.io/issuer-kind", "Issuer"}},
         true, std::nullopt, false},
        {"edgecert wins over tls-acme",
         {{"edgecert.io/cluster-issuer", "x"}, {"kubernetes.io/tls-acme", "true"}}, false,
         IssuerRef{"x", "ClusterIssuer"}, false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        ShimOptions opts = c.has_default ? kWithDefault : ShimOptions{};
        IssuerSelection sel = select_issuer(c.ann, opts);
        EXPECT_EQ(sel.issuer, c.want);
        EXPECT_EQ(sel.bad_config.has_value(), c.bad) << sel.bad_config.value_or("");
        EXPECT_EQ(sel.notes.size(), c.notes);
        if (sel.issuer) {
            EXPECT_EQ(sel.issuer->group, "edgecert.io");
        }

        // The same through the whole Ingress path: a managed result has the certificate, an
        // unmanaged one none, a bad one none and a message.
        ShimResult r =
            desired_for_ingress(ingress(c.ann, json::array({tls_entry({"a.example"}, "s")})), opts);
        EXPECT_EQ(r.managed, c.want.has_value());
        EXPECT_EQ(r.bad_config.has_value(), c.bad);
        EXPECT_EQ(r.certificates.size(), c.want ? 1u : 0u);
        if (c.want && !r.certificates.empty()) {
            EXPECT_EQ(r.certificates[0].issuer_ref, *c.want);
        }
    }
}

TEST(ShimIssuer, BadConfigMessagesNameTheAnnotation) {
    auto sel = select_issuer({{"edgecert.io/issuer", "a"}, {"edgecert.io/cluster-issuer", "b"}},
                             {});
    ASSERT_TRUE(sel.bad_config);
    EXPECT_NE(sel.bad_config->find("edgecert.io/issuer"), std::string::npos);
    EXPECT_NE(sel.bad_config->find("edgecert.io/cluster-issuer"), std::string::npos);
    // A default issuer with an empty name counts as none.
    sel = select_issuer({{"kubernetes.io/tls-acme", "true"}}, ShimOptions{IssuerRef{""}});
    EXPECT_FALSE(sel.issuer);
    ASSERT_TRUE(sel.bad_config);
    EXPECT_NE(sel.bad_config->find("default issuer"), std::string::npos);
    sel = select_issuer({{"cert-manager.io/cluster-issuer", ""}}, {});
    ASSERT_TRUE(sel.bad_config);
    EXPECT_NE(sel.bad_config->find("cert-manager.io/cluster-issuer"), std::string::npos);
}

// ---- DNS name validation ----

TEST(ShimNames, DnsNameTable) {
    struct C {
        std::string name;
        bool ok;
    };
    std::vector<C> cases = {
        {"example.com", true},       {"a.b.c.example.com", true}, {"xn--bcher-kva.de", true},
        {"*.example.com", true},     {"localhost", true},         {"a-b.example", true},
        {"", false},                 {"*", false},                {"*.", false},
        {"a.*.example.com", false},  {"*a.example.com", false},   {"foo_bar.example", false},
        {"-a.example", false},       {"a-.example", false},       {"a..example", false},
        {"example.com.", false},     {".example.com", false},     {"ex ample.com", false},
        {"Example.com", false},  // upper case: the shim lower-cases before validating
        {std::string(64, 'a') + ".com", false},
        {std::string(63, 'a') + ".com", true},
        {"1.2.3.4", true},  // syntactically a host name; the CA decides
    };
    std::string long_name;
    for (int i = 0; i < 5; ++i) long_name += std::string(60, 'a') + ".";
    long_name += "com";  // 305 chars
    cases.push_back({long_name, false});
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(!invalid_dns_name_reason(c.name).has_value(), c.ok);
    }
    EXPECT_TRUE(invalid_object_name_reason("*.example.com"));
    EXPECT_FALSE(invalid_object_name_reason("shop-tls"));
    EXPECT_TRUE(invalid_object_name_reason("Shop_TLS"));
}

// ---- Ingress ----

TEST(ShimIngress, OneCertificatePerSecretWithObject) {
    auto r = desired_for_ingress(
        ingress({{"edgecert.io/issuer", "pebble"}},
                json::array({tls_entry({"WWW.Shop.Example", "shop.example"}, "shop-tls"),
                             tls_entry({"api.example"}, "api-tls")})),
        {});
    ASSERT_TRUE(r.managed);
    ASSERT_EQ(r.certificates.size(), 2u);
    EXPECT_TRUE(r.skipped.empty());
    // sorted by name: api-tls, shop-tls
    const auto& api = r.certificates[0];
    const auto& shop = r.certificates[1];
    EXPECT_EQ(api.name, "api-tls");
    EXPECT_EQ(shop.name, "shop-tls");
    EXPECT_EQ(shop.secret_name, "shop-tls");
    EXPECT_EQ(shop.namespace_, "web");
    EXPECT_EQ(shop.dns_names, (std::vector<std::string>{"shop.example", "www.shop.example"}));
    ASSERT_TRUE(shop.owner_reference);
    EXPECT_EQ(shop.owner_reference->api_version, "networking.k8s.io/v1");
    EXPECT_EQ(shop.owner_reference->kind, "Ingress");
    EXPECT_EQ(shop.owner_reference->name, "shop");
    EXPECT_EQ(shop.owner_reference->uid, "uid-ing-1");
    EXPECT_TRUE(shop.owner_reference->controller);
    EXPECT_TRUE(shop.owner_reference->block_owner_deletion);

    const json& o = shop.object;
    EXPECT_EQ(o["apiVersion"], "edgecert.io/v1alpha1");
    EXPECT_EQ(o["kind"], "Certificate");
    EXPECT_EQ(o["metadata"]["name"], "shop-tls");
    EXPECT_EQ(o["metadata"]["namespace"], "web");
    EXPECT_EQ(o["metadata"]["labels"]["edgecert.io/source-kind"], "Ingress");
    EXPECT_EQ(o["metadata"]["labels"]["edgecert.io/source-uid"], "uid-ing-1");
    EXPECT_EQ(o["metadata"]["annotations"]["edgecert.io/source-name"], "shop");
    EXPECT_EQ(o["metadata"]["annotations"]["edgecert.io/source-namespace"], "web");
    ASSERT_EQ(o["metadata"]["ownerReferences"].size(), 1u);
    EXPECT_EQ(o["metadata"]["ownerReferences"][0]["uid"], "uid-ing-1");
    EXPECT_EQ(o["metadata"]["ownerReferences"][0]["controller"], true);
    EXPECT_EQ(o["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true);
    EXPECT_EQ(o["spec"]["secretName"], "shop-tls");
    EXPECT_EQ(o["spec"]["dnsNames"], json({"shop.example", "www.shop.example"}));
    EXPECT_EQ(o["spec"]["issuerRef"],
              json({{"name", "pebble"}, {"kind", "Issuer"}, {"group", "edgecert.io"}}));
}

struct IngressCase {
    std::string name;
    json tls;
    std::map<std::string, std::vector<std::string>> want;  // secret → dnsNames
    std::vector<std::string> skipped_what;                 // prefixes of Skipped::what
};

TEST(ShimIngress, EntryTable) {
    std::vector<IngressCase> cases = {
        {"merge entries sharing a secret, dedup case-insensitively",
         json::array({tls_entry({"b.example", "a.example"}, "s"),
                      tls_entry({"A.example", "c.example"}, "s")}),
         {{"s", {"a.example", "b.example", "c.example"}}},
         {}},
        {"entry without secretName is skipped",
         json::array({tls_entry({"a.example"}, ""), tls_entry({"b.example"}, "s")}),
         {{"s", {"b.example"}}},
         {"spec.tls[0]"}},
        {"entry without hosts is skipped",
         json::array({tls_entry({}, "s1"), tls_entry({"b.example"}, "s2")}),
         {{"s2", {"b.example"}}},
         {"spec.tls[0]"}},
        {"invalid host skipped, rest kept",
         json::array({tls_entry({"ok.example", "bad_host.example"}, "s")}),
         {{"s", {"ok.example"}}},
         {"spec.tls[0].hosts[1]"}},
        {"all hosts invalid → no certificate",
         json::array({tls_entry({"bad_host", "-x"}, "s")}),
         {},
         {"spec.tls[0].hosts[0]", "spec.tls[0].hosts[1]", "secret web/s"}},
        {"an IP address goes to ipAddresses (ShimIngress.IpHostsBecomeIpAddresses); a mistyped "
         "or IPv4-mapped one is skipped",
         json::array(
             {tls_entry({"ok.example", "192.0.2.1", "10.0.0.300", "::ffff:192.0.2.1"}, "s")}),
         {{"s", {"ok.example"}}},
         {"spec.tls[0].hosts[2]", "spec.tls[0].hosts[3]"}},
        {"invalid secretName skipped",
         json::array({tls_entry({"a.example"}, "Bad_Secret")}),
         {},
         {"spec.tls[0]"}},
        {"wildcards kept as-is",
         json::array({tls_entry({"*.example.com", "example.com"}, "wild")}),
         {{"wild", {"*.example.com", "example.com"}}},
         {}},
        {"no tls at all", json::array(), {}, {}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = desired_for_ingress(ingress({{"cert-manager.io/cluster-issuer", "le"}}, c.tls), {});
        EXPECT_TRUE(r.managed);
        EXPECT_FALSE(r.bad_config);
        std::map<std::string, std::vector<std::string>> got;
        for (const auto& cert : r.certificates) got[cert.name] = cert.dns_names;
        EXPECT_EQ(got, c.want);
        ASSERT_EQ(r.skipped.size(), c.skipped_what.size());
        for (size_t i = 0; i < r.skipped.size(); ++i) {
            EXPECT_EQ(r.skipped[i].what.rfind(c.skipped_what[i], 0), 0u) << r.skipped[i].what;
            EXPECT_FALSE(r.skipped[i].reason.empty());
        }
    }
}

TEST(ShimIngress, IpHostsBecomeIpAddresses) {
    // cert-manager's ingress-shim puts an IP address in tls[].hosts into spec.ipAddresses
    // (RFC 8738 identifiers); kept canonical and sorted, dnsNames left out when there is none.
    auto r = desired_for_ingress(
        ingress({{"cert-manager.io/cluster-issuer", "le"}},
                json::array({tls_entry({"Edge.example", "2001:DB8:0:0::1", "192.0.2.7"}, "mixed"),
                             tls_entry({"192.0.2.7", "192.0.2.1"}, "only-ip")})),
        {});
    ASSERT_EQ(r.certificates.size(), 2u);
    EXPECT_TRUE(r.skipped.empty());
    const auto& mixed = r.certificates[0];
    EXPECT_EQ(mixed.dns_names, (std::vector<std::string>{"edge.example"}));
    EXPECT_EQ(mixed.ip_addresses, (std::vector<std::string>{"192.0.2.7", "2001:db8::1"}));
    EXPECT_EQ(mixed.object["spec"]["dnsNames"], json({"edge.example"}));
    EXPECT_EQ(mixed.object["spec"]["ipAddresses"], json({"192.0.2.7", "2001:db8::1"}));
    const auto& only = r.certificates[1];
    EXPECT_TRUE(only.dns_names.empty());
    EXPECT_FALSE(only.object["spec"].contains("dnsNames"));  // the CRD wants minItems 1
    EXPECT_EQ(only.object["spec"]["ipAddresses"], json({"192.0.2.1", "192.0.2.7"}));

    auto plain = desired_for_ingress(ingress({{"cert-manager.io/cluster-issuer", "le"}},
                                             json::array({tls_entry({"a.example"}, "s")})),
                                     {});
    ASSERT_EQ(plain.certificates.size(), 1u);
    EXPECT_FALSE(plain.certificates[0].object["spec"].contains("ipAddresses"));
}

TEST(ShimIngress, UnreadableAndUnknownKinds) {
    EXPECT_TRUE(desired_for_ingress(json::array(), {}).bad_config);
    auto r = desired_certificates({{"kind", "Service"}}, {}, {});
    EXPECT_TRUE(r.bad_config);
    EXPECT_FALSE(r.managed);
    // Dispatch reaches the same code path.
    r = desired_certificates(
        ingress({{"edgecert.io/issuer", "i"}}, json::array({tls_entry({"a.example"}, "s")})), {},
        {});
    ASSERT_EQ(r.certificates.size(), 1u);
}

// ---- Gateway ----

struct GwCase {
    std::string name;
    json listeners;
    std::vector<json> grants;
    std::map<std::string, std::vector<std::string>> want;  // "ns/secret" → dnsNames
    std::vector<std::string> skipped_what;
};

TEST(ShimGateway, ListenerTable) {
    std::vector<GwCase> cases = {
        {"two HTTPS listeners sharing a Secret → one Certificate",
         json::array({listener("a", "a.example", json::array({secret_ref("shared")})),
                      listener("b", "b.example", json::array({secret_ref("shared")}))}),
         {},
         {{"infra/shared", {"a.example", "b.example"}}},
         {}},
        {"two HTTPS listeners with own Secrets → two Certificates",
         json::array({listener("a", "a.example", json::array({secret_ref("sa")})),
                      listener("b", "b.example", json::array({secret_ref("sb")}))}),
         {},
         {{"infra/sa", {"a.example"}}, {"infra/sb", {"b.example"}}},
         {}},
        {"TLS protocol, explicit Terminate, wildcard hostname",
         json::array({listener("t", "*.example.com", json::array({secret_ref("w")}), "TLS",
                               "Terminate")}),
         {},
         {{"infra/w", {"*.example.com"}}},
         {}},
        {"Passthrough skipped",
         json::array({listener("p", "p.example", json::array({secret_ref("s")}), "TLS",
                               "Passthrough")}),
         {},
         {},
         {"listener p"}},
        {"no hostname skipped",
         json::array({listener("n", std::nullopt, json::array({secret_ref("s")})),
                      listener("e", "", json::array({secret_ref("s")}))}),
         {},
         {},
         {"listener n", "listener e"}},
        {"HTTP listener skipped",
         json::array({{{"name", "http"}, {"protocol", "HTTP"}, {"port", 80},
                       {"hostname", "a.example"}}}),
         {},
         {},
         {"listener http"}},
        {"HTTPS without tls skipped",
         json::array({{{"name", "x"}, {"protocol", "HTTPS"}, {"port", 443},
                       {"hostname", "a.example"}}}),
         {},
         {},
         {"listener x"}},
        {"no certificateRefs skipped",
         json::array({listener("a", "a.example", json::array())}),
         {},
         {},
         {"listener a"}},
        {"non-Secret kind / non-core group skipped, core Secret kept",
         json::array({listener("a", "a.example",
                               json::array({{{"name", "c"}, {"kind", "ConfigMap"}},
                                            {{"name", "x"}, {"group", "example.io"},
                                             {"kind", "Secret"}},
                                            {{"name", "ok"}, {"group", ""}, {"kind", "Secret"}}}))}),
         {},
         {{"infra/ok", {"a.example"}}},
         {"listener a certificateRefs[0]", "listener a certificateRefs[1]"}},
        {"bad hostname skipped",
         json::array({listener("a", "bad_name.example", json::array({secret_ref("s")})),
                      listener("b", "B.Example", json::array({secret_ref("s")}))}),
         {},
         {{"infra/s", {"b.example"}}},
         {"listener a hostname"}},
        {"cross-namespace ref without grant skipped",
         json::array({listener("a", "a.example", json::array({secret_ref("s", "certs")}))}),
         {},
         {},
         {"listener a certificateRefs[0]"}},
        {"cross-namespace ref with grant for any Secret",
         json::array({listener("a", "a.example", json::array({secret_ref("s", "certs")}))}),
         {grant("certs", "infra", std::nullopt)},
         {{"certs/s", {"a.example"}}},
         {}},
        {"cross-namespace ref with grant naming this Secret",
         json::array({listener("a", "a.example", json::array({secret_ref("s", "certs")}))}),
         {grant("certs", "infra", "s")},
         {{"certs/s", {"a.example"}}},
         {}},
        {"grant naming another Secret does not count",
         json::array({listener("a", "a.example", json::array({secret_ref("s", "certs")}))}),
         {grant("certs", "infra", "other")},
         {},
         {"listener a certificateRefs[0]"}},
        {"grant from another namespace does not count",
         json::array({listener("a", "a.example", json::array({secret_ref("s", "certs")}))}),
         {grant("certs", "elsewhere", std::nullopt)},
         {},
         {"listener a certificateRefs[0]"}},
        {"grant living in the wrong namespace does not count",
         json::array({listener("a", "a.example", json::array({secret_ref("s", "certs")}))}),
         {grant("other-ns", "infra", std::nullopt)},
         {},
         {"listener a certificateRefs[0]"}},
        {"grant for HTTPRoute does not count",
         json::array({listener("a", "a.example", json::array({secret_ref("s", "certs")}))}),
         {grant("certs", "infra", std::nullopt, "HTTPRoute")},
         {},
         {"listener a certificateRefs[0]"}},
        {"an IP address as a listener hostname is skipped (Gateway API forbids it)",
         json::array({listener("a", "192.0.2.1", json::array({secret_ref("s")})),
                      listener("b", "b.example", json::array({secret_ref("s")}))}),
         {},
         {{"infra/s", {"b.example"}}},
         {"listener a hostname"}},
        {"explicit own namespace needs no grant",
         json::array({listener("a", "a.example", json::array({secret_ref("s", "infra")}))}),
         {},
         {{"infra/s", {"a.example"}}},
         {}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = desired_for_gateway(gateway(c.listeners), c.grants, {});
        EXPECT_TRUE(r.managed);
        EXPECT_FALSE(r.bad_config);
        std::map<std::string, std::vector<std::string>> got;
        for (const auto& cert : r.certificates)
            got[cert.namespace_ + "/" + cert.name] = cert.dns_names;
        EXPECT_EQ(got, c.want);
        ASSERT_EQ(r.skipped.size(), c.skipped_what.size());
        for (size_t i = 0; i < r.skipped.size(); ++i) {
            EXPECT_EQ(r.skipped[i].what.rfind(c.skipped_what[i], 0), 0u) << r.skipped[i].what;
            EXPECT_FALSE(r.skipped[i].reason.empty());
        }
    }
}

TEST(ShimGateway, OwnerReferenceOnlyInOwnNamespace) {
    auto r = desired_for_gateway(
        gateway(json::array({listener("a", "a.example", json::array({secret_ref("local")})),
                             listener("b", "b.example",
                                      json::array({secret_ref("remote", "certs")}))})),
        {grant("certs", "infra", "remote")}, {});
    ASSERT_EQ(r.certificates.size(), 2u);
    const auto& remote = r.certificates[0];  // "certs" sorts before "infra"
    const auto& local = r.certificates[1];
    EXPECT_EQ(remote.namespace_, "certs");
    EXPECT_FALSE(remote.owner_reference);
    EXPECT_FALSE(remote.object["metadata"].contains("ownerReferences"));
    EXPECT_EQ(remote.object["metadata"]["labels"]["edgecert.io/source-uid"], "uid-gw-1");
    EXPECT_EQ(remote.object["metadata"]["annotations"]["edgecert.io/source-namespace"], "infra");
    ASSERT_TRUE(local.owner_reference);
    EXPECT_EQ(local.owner_reference->api_version, "gateway.networking.k8s.io/v1");
    EXPECT_EQ(local.owner_reference->kind, "Gateway");
    EXPECT_EQ(local.object["metadata"]["labels"]["edgecert.io/source-kind"], "Gateway");
    EXPECT_EQ(local.object["spec"]["issuerRef"]["kind"], "ClusterIssuer");
}

TEST(ShimGateway, SecretOutsideTheWatchedNamespacesIsSkipped) {
    // --namespaces=infra: a granted Secret in "certs" would be written where the controller
    // neither watches nor may write; it is skipped with a reason (a BadConfig Event).
    ShimOptions opts;
    opts.namespaces = {"infra"};
    auto r = desired_for_gateway(
        gateway(json::array(
            {listener("a", "a.example", json::array({secret_ref("local")})),
             listener("b", "b.example", json::array({secret_ref("remote", "certs")}))})),
        {grant("certs", "infra", "remote")}, opts);
    ASSERT_EQ(r.certificates.size(), 1u);
    EXPECT_EQ(r.certificates[0].namespace_, "infra");
    ASSERT_EQ(r.skipped.size(), 1u);
    EXPECT_EQ(r.skipped[0].what, "listener b certificateRefs[0]");
    EXPECT_EQ(r.skipped[0].reason,
              "Secret certs/remote is in namespace certs, which this controller does not manage "
              "(--namespaces)");
}

TEST(ShimGateway, NotAnnotatedOrBad) {
    json ls = json::array({listener("a", "a.example", json::array({secret_ref("s")}))});
    auto r = desired_for_gateway(gateway(ls, {}), {}, {});
    EXPECT_FALSE(r.managed);
    EXPECT_TRUE(r.certificates.empty());
    EXPECT_FALSE(r.bad_config);
    r = desired_for_gateway(gateway(ls, {{"edgecert.io/issuer", ""}}), {}, {});
    EXPECT_TRUE(r.bad_config);
    EXPECT_TRUE(r.certificates.empty());
    r = desired_for_gateway(gateway(ls, {{"kubernetes.io/tls-acme", "true"}}), {}, kWithDefault);
    ASSERT_EQ(r.certificates.size(), 1u);
    EXPECT_EQ(r.certificates[0].issuer_ref.name, "letsencrypt");
}

// ---- deletion of removed entries ----

json existing_cert(std::string ns, std::string name, std::string source_uid) {
    json j = {{"apiVersion", "edgecert.io/v1alpha1"},
              {"kind", "Certificate"},
              {"metadata", {{"name", name}, {"namespace", ns}}}};
    if (!source_uid.empty()) j["metadata"]["labels"] = {{"edgecert.io/source-uid", source_uid}};
    return j;
}

TEST(ShimDelete, RemovedEntryIsDeleted) {
    Ann ann = {{"edgecert.io/issuer", "i"}};
    // Before: two tls entries; after: one. The Certificate of the removed one goes.
    auto before = desired_for_ingress(
        ingress(ann, json::array({tls_entry({"a.example"}, "a"), tls_entry({"b.example"}, "b")})),
        {});
    std::vector<json> existing;
    for (const auto& c : before.certificates) existing.push_back(c.object);
    auto after = desired_for_ingress(ingress(ann, json::array({tls_entry({"a.example"}, "a")})), {});
    EXPECT_EQ(certificates_to_delete("uid-ing-1", existing, after),
              (std::vector<std::string>{"web/b"}));
    // Nothing removed → nothing deleted.
    EXPECT_TRUE(certificates_to_delete("uid-ing-1", existing, before).empty());
}

TEST(ShimDelete, Table) {
    ShimResult managed_a = desired_for_ingress(
        ingress({{"edgecert.io/issuer", "i"}}, json::array({tls_entry({"a.example"}, "a")})), {});
    ShimResult bad = desired_for_ingress(
        ingress({{"edgecert.io/issuer", ""}}, json::array({tls_entry({"a.example"}, "a")})), {});
    ShimResult unannotated =
        desired_for_ingress(ingress({}, json::array({tls_entry({"a.example"}, "a")})), {});
    ShimResult managed_none =
        desired_for_ingress(ingress({{"edgecert.io/issuer", "i"}}, json::array()), {});
    std::vector<json> existing = {existing_cert("web", "a", "uid-ing-1"),
                                  existing_cert("web", "old", "uid-ing-1"),
                                  existing_cert("web", "handmade", ""),
                                  existing_cert("web", "other-source", "uid-other"),
                                  existing_cert("certs", "remote", "uid-ing-1")};
    struct C {
        std::string name;
        const ShimResult* r;
        std::string uid;
        std::vector<std::string> want;
    };
    std::vector<C> cases = {
        {"stale ones of this source only", &managed_a, "uid-ing-1", {"certs/remote", "web/old"}},
        {"all tls entries removed", &managed_none, "uid-ing-1", {"certs/remote", "web/a", "web/old"}},
        {"bad config deletes nothing", &bad, "uid-ing-1", {}},
        {"annotation removed deletes nothing", &unannotated, "uid-ing-1", {}},
        {"empty uid deletes nothing", &managed_a, "", {}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(certificates_to_delete(c.uid, existing, *c.r), c.want);
    }
}

}  // namespace
}  // namespace edgecert::controller
