#include "edgecert/k8s/models.h"

#include <gtest/gtest.h>

#include "edgecert/base/encoding.h"

namespace edgecert::k8s {
namespace {

TEST(SecretModel, DecodesAndEncodesData) {
    json j = {{"metadata",
               {{"name", "web-tls"},
                {"namespace", "shop"},
                {"resourceVersion", "7"},
                {"labels", {{"edgecert.io/managed", "true"}}}}},
              {"type", "kubernetes.io/tls"},
              {"data", {{"tls.crt", enc::base64("CERT")}, {"tls.key", enc::base64("KEY")}}}};
    auto s = Secret::from_json(j);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->type, Secret::kTlsType);
    EXPECT_EQ(s->text("tls.crt").value(), "CERT");
    EXPECT_EQ(s->tls_key().reveal(), "KEY");
    EXPECT_FALSE(s->text("ca.crt").has_value());
    EXPECT_EQ(s->labels.at("edgecert.io/managed"), "true");
    json back = s->to_json();
    EXPECT_EQ(back["data"]["tls.key"], enc::base64("KEY"));
    EXPECT_EQ(back["metadata"]["resourceVersion"], "7");
    EXPECT_EQ(back["kind"], "Secret");

    json bad = j;
    bad["data"]["tls.key"] = "!!!";
    auto e = Secret::from_json(bad);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().message.find("!!!"), std::string::npos) << "no secret bytes in errors";
    EXPECT_FALSE(Secret::from_json(json::array()).ok());
}

TEST(EventModel, RoundTrip) {
    Event e;
    e.name = "web.1";
    e.namespace_ = "shop";
    e.involved_object =
        ObjectReference{"Ingress", "shop", "web", "u1", "networking.k8s.io/v1", "5", ""};
    e.reason = "Issued";
    e.message = "ok";
    e.type = "Normal";
    e.source_component = "edgecert";
    e.first_timestamp = e.last_timestamp = SystemTime(std::chrono::seconds(1767225600));
    e.count = 3;
    json j = e.to_json();
    EXPECT_EQ(j["firstTimestamp"], "2026-01-01T00:00:00Z");
    EXPECT_EQ(j["involvedObject"]["uid"], "u1");
    auto back = Event::from_json(j);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->count, 3);
    EXPECT_EQ(back->involved_object.kind, "Ingress");
    EXPECT_EQ(back->last_timestamp, e.last_timestamp);
}

TEST(LeaseModel, MicroTimeRoundTrip) {
    LeaseSpec l;
    l.holder_identity = "pod-a";
    l.lease_duration_seconds = 15;
    l.acquire_time = SystemTime(std::chrono::seconds(1767225600)) + std::chrono::microseconds(5);
    l.renew_time = l.acquire_time;
    l.lease_transitions = 2;
    json j = l.to_json();
    EXPECT_EQ(j["renewTime"], "2026-01-01T00:00:00.000005Z");
    EXPECT_EQ(LeaseSpec::from_json(j), l);
    EXPECT_EQ(LeaseSpec::from_json(json::object()).holder_identity, "");
}

TEST(IngressModel, TlsAndClass) {
    auto in = Ingress::from_json(json::parse(R"({
      "metadata":{"name":"web","namespace":"shop","uid":"u","annotations":{"edgecert.io/issuer":"le"}},
      "spec":{"ingressClassName":"nginx",
              "tls":[{"hosts":["a.example.com","b.example.com"],"secretName":"web-tls"},{"secretName":"x"}],
              "rules":[{"host":"a.example.com"},{"http":{}}]}})"));
    ASSERT_TRUE(in.ok());
    EXPECT_EQ(in->ingress_class_name.value(), "nginx");
    ASSERT_EQ(in->tls.size(), 2u);
    EXPECT_EQ(in->tls[0].hosts.size(), 2u);
    EXPECT_EQ(in->tls[0].secret_name, "web-tls");
    EXPECT_TRUE(in->tls[1].hosts.empty());
    EXPECT_EQ(in->annotations.at("edgecert.io/issuer"), "le");
    EXPECT_EQ(in->rule_hosts, std::vector<std::string>{"a.example.com"});
}

TEST(GatewayModel, Listeners) {
    auto g = Gateway::from_json(json::parse(R"({
      "metadata":{"name":"gw","namespace":"infra"},
      "spec":{"gatewayClassName":"envoy","listeners":[
        {"name":"https","hostname":"a.example.com","port":443,"protocol":"HTTPS",
         "tls":{"certificateRefs":[{"name":"a-tls"},{"kind":"Secret","group":"","name":"b","namespace":"other"}]}},
        {"name":"pass","port":8443,"protocol":"TLS","tls":{"mode":"Passthrough"}},
        {"name":"http","port":80,"protocol":"HTTP"}]}})"));
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->gateway_class_name, "envoy");
    ASSERT_EQ(g->listeners.size(), 3u);
    const auto& l = g->listeners[0];
    EXPECT_EQ(l.hostname.value(), "a.example.com");
    EXPECT_EQ(l.port, 443);
    EXPECT_EQ(l.tls_mode, "Terminate") << "the API default";
    ASSERT_EQ(l.certificate_refs.size(), 2u);
    EXPECT_EQ(l.certificate_refs[0].kind, "Secret");
    EXPECT_FALSE(l.certificate_refs[0].namespace_.has_value());
    EXPECT_EQ(l.certificate_refs[1].namespace_.value(), "other");
    EXPECT_EQ(g->listeners[1].tls_mode, "Passthrough");
    EXPECT_FALSE(g->listeners[2].has_tls);
    EXPECT_FALSE(g->listeners[2].hostname.has_value());
}

TEST(ReferenceGrantModel, Permits) {
    auto rg = ReferenceGrant::from_json(json::parse(R"({
      "metadata":{"name":"allow","namespace":"certs"},
      "spec":{"from":[{"group":"gateway.networking.k8s.io","kind":"Gateway","namespace":"infra"}],
              "to":[{"group":"","kind":"Secret","name":"a-tls"}]}})"));
    ASSERT_TRUE(rg.ok());
    EXPECT_TRUE(
        rg->permits("gateway.networking.k8s.io", "Gateway", "infra", "", "Secret", "a-tls"));
    EXPECT_TRUE(
        rg->permits("gateway.networking.k8s.io", "Gateway", "infra", "core", "Secret", "a-tls"));
    EXPECT_FALSE(
        rg->permits("gateway.networking.k8s.io", "Gateway", "infra", "", "Secret", "other"));
    EXPECT_FALSE(
        rg->permits("gateway.networking.k8s.io", "Gateway", "evil", "", "Secret", "a-tls"));
    EXPECT_FALSE(rg->permits("networking.k8s.io", "Ingress", "infra", "", "Secret", "a-tls"));
}

TEST(ObjectReferenceModel, FromListItemWithoutTypeMeta) {
    json item = {
        {"metadata", {{"name", "x"}, {"namespace", "n"}, {"uid", "u"}, {"resourceVersion", "3"}}}};
    auto r = ObjectReference::from_object(item, resources::Gateway);
    EXPECT_EQ(r.kind, "Gateway");
    EXPECT_EQ(r.api_version, "gateway.networking.k8s.io/v1");
    EXPECT_EQ(r.uid, "u");
    EXPECT_EQ(r.to_json().count("fieldPath"), 0u);
}

}  // namespace
}  // namespace edgecert::k8s
