// SourceController::reconcile() against a scripted API (informer caches filled by one list, no
// watch): which writes a pass makes, and which it must not make. The end-to-end behaviour with a
// real API server and kubectl is tests/integration/test_controller_shim.py.
#include "controller/source_controller.h"

#include <gtest/gtest.h>

#include "controller/resources.h"
#include "unit/k8s/fake_http.h"

namespace edgecert::controller {
namespace {

using k8s::testing::json_response;
using k8s::testing::path_of;

// A tiny API: lists from fixed arrays, writes echoed back (with a fresh uid/resourceVersion).
struct FakeApi {
    std::mutex mu;
    json ingresses = json::array();
    json certificates = json::array();
    int rv = 100;
    k8s::testing::FakeHttp http;

    FakeApi() {
        http.on_send = [this](const HttpRequest& r) { return handle(r); };
        // Caches are filled by the list alone; a watch fails (the reflector backs off).
        http.on_stream_exhausted = [](const HttpRequest&) -> Result<HttpResponse> {
            return Error(ErrorCode::Transient, "no watch in this test");
        };
    }

    Result<HttpResponse> handle(const HttpRequest& r) {
        std::lock_guard l(mu);
        std::string p = path_of(r.url);
        auto list = [&](const json& items) {
            return json_response(200, json{{"kind", "List"},
                                           {"metadata", {{"resourceVersion", "50"}}},
                                           {"items", items}}
                                          .dump());
        };
        auto echo = [&](int status) {
            json o = json::parse(r.body);
            o["metadata"]["resourceVersion"] = std::to_string(++rv);
            if (!o["metadata"].contains("uid")) o["metadata"]["uid"] = "uid-" + std::to_string(rv);
            return json_response(status, o.dump());
        };
        if (r.method == "GET" && p == "/apis/networking.k8s.io/v1/ingresses") return list(ingresses);
        if (r.method == "GET" && p == "/apis/edgecert.io/v1alpha1/certificates")
            return list(certificates);
        if (p.find("/events") != std::string::npos) return echo(r.method == "POST" ? 201 : 200);
        if (r.method == "POST") return echo(201);
        if (r.method == "PUT") return echo(200);
        if (r.method == "DELETE")
            return json_response(200, R"({"kind":"Status","status":"Success"})");
        return json_response(404, k8s::testing::status_body(404, "NotFound", "not found"));
    }
};

json ingress(const std::string& uid, json tls,
             json annotations = {{"edgecert.io/issuer", "pebble"}}) {
    // As a list item of a built-in kind arrives: no kind/apiVersion.
    return {{"metadata",
             {{"name", "web"},
              {"namespace", "default"},
              {"uid", uid},
              {"resourceVersion", "10"},
              {"annotations", annotations}}},
            {"spec", {{"tls", tls}}}};
}

json tls(const std::string& secret, std::vector<std::string> hosts) {
    return {{"secretName", secret}, {"hosts", hosts}};
}

// What the shim would make for `source`, as the API would return it.
json stored(const json& source, const std::string& name, const std::string& cert_uid) {
    json s = source;
    s["kind"] = "Ingress";
    s["apiVersion"] = "networking.k8s.io/v1";
    for (const auto& c : desired_certificates(s, {}, {}).certificates) {
        if (c.name != name) continue;
        json o = c.object;
        o["metadata"]["uid"] = cert_uid;
        o["metadata"]["resourceVersion"] = "20";
        o["status"] = {{"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})}};
        return o;
    }
    ADD_FAILURE() << "no desired certificate " << name;
    return {};
}

class SourceControllerTest : public ::testing::Test {
  protected:
    void start() {
        k8s::ReflectorOptions ro;
        ro.type = k8s::resources::Ingress;
        ingresses_ = std::make_unique<k8s::Informer>(client_, ro);
        ro.type = resources::Certificate;
        certificates_ = std::make_unique<k8s::Informer>(client_, ro);
        ingresses_->start();
        certificates_->start();
        ASSERT_TRUE(ingresses_->wait_for_sync(std::chrono::seconds(10)));
        ASSERT_TRUE(certificates_->wait_for_sync(std::chrono::seconds(10)));
        recorder_ = std::make_unique<k8s::EventRecorder>(
            client_, k8s::EventRecorderOptions{.component = kEventComponent});
        Informers inf;
        inf.ingresses = ingresses_.get();
        inf.certificates = certificates_.get();
        ctx_ = std::make_unique<ControllerContext>(
            ControllerContext{client_, *recorder_, registry_, clock_, inf, ShimOptions{}, "ns"});
        sc_ = std::make_unique<SourceController>(*ctx_, Runner::Options{});
    }

    void TearDown() override {
        if (ingresses_) ingresses_->stop();
        if (certificates_) certificates_->stop();
        if (recorder_) recorder_->shutdown();
    }

    // Writes (not GETs) to Certificates, after the informers' lists.
    std::vector<HttpRequest> cert_writes() {
        std::vector<HttpRequest> out;
        for (auto& r : api_.http.requests())
            if (r.method != "GET" && path_of(r.url).find("/certificates") != std::string::npos)
                out.push_back(r);
        return out;
    }
    // Events written (after flushing the recorder): "Type Reason: message".
    std::vector<std::string> events() {
        EXPECT_TRUE(recorder_->flush());
        std::vector<std::string> out;
        for (auto& r : api_.http.requests()) {
            if (r.method != "POST" || path_of(r.url).find("/events") == std::string::npos)
                continue;
            json e = json::parse(r.body);
            out.push_back(e.value("type", "") + " " + e.value("reason", "") + ": " +
                          e.value("message", ""));
        }
        return out;
    }

    FakeApi api_;
    RealClock& clock_ = RealClock::instance();
    k8s::Client client_{api_.http, k8s::ClientOptions{"http://fake", nullptr}, clock_};
    metrics::Registry registry_;
    std::unique_ptr<k8s::Informer> ingresses_, certificates_;
    std::unique_ptr<k8s::EventRecorder> recorder_;
    std::unique_ptr<ControllerContext> ctx_;
    std::unique_ptr<SourceController> sc_;
};

TEST_F(SourceControllerTest, CreatesOneCertificatePerSecret) {
    api_.ingresses.push_back(
        ingress("u1", {tls("a-tls", {"A.example.com"}), tls("b-tls", {"b.example.com"})}));
    start();
    auto r = sc_->reconcile("Ingress/default/web");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r->after);
    auto w = cert_writes();
    ASSERT_EQ(w.size(), 2u);
    for (auto& req : w) {
        EXPECT_EQ(req.method, "POST");
        EXPECT_EQ(path_of(req.url), "/apis/edgecert.io/v1alpha1/namespaces/default/certificates");
        EXPECT_EQ(k8s::testing::query_param(req.url, "fieldManager"), "edgecert");
    }
    json a = json::parse(w[0].body);
    EXPECT_EQ(a["metadata"]["name"], "a-tls");
    EXPECT_EQ(a["spec"]["dnsNames"], json::array({"a.example.com"}));
    EXPECT_EQ(a["metadata"]["ownerReferences"][0]["kind"], "Ingress");
    EXPECT_EQ(a["metadata"]["ownerReferences"][0]["apiVersion"], "networking.k8s.io/v1");
    EXPECT_EQ(a["metadata"]["ownerReferences"][0]["uid"], "u1");
    EXPECT_EQ(a["metadata"]["labels"]["edgecert.io/source-uid"], "u1");
    EXPECT_EQ(events(), (std::vector<std::string>{
                            "Normal CreateCertificate: Created Certificate default/a-tls",
                            "Normal CreateCertificate: Created Certificate default/b-tls"}));
}

TEST_F(SourceControllerTest, UnchangedCertificateIsNotWritten) {
    json src = ingress("u1", {tls("a-tls", {"a.example.com"})});
    api_.ingresses.push_back(src);
    api_.certificates.push_back(stored(src, "a-tls", "c1"));
    start();
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    EXPECT_TRUE(cert_writes().empty()) << cert_writes()[0].method << " " << cert_writes()[0].body;
    EXPECT_TRUE(events().empty());
}

TEST_F(SourceControllerTest, UpdateChangesOnlyManagedFields) {
    json src = ingress("u1", {tls("a-tls", {"a.example.com", "new.example.com"})});
    api_.ingresses.push_back(src);
    json old = stored(ingress("u1", {tls("a-tls", {"a.example.com"})}), "a-tls", "c1");
    old["spec"]["renewBefore"] = "720h";  // a user's own setting
    old["metadata"]["labels"]["team"] = "web";
    api_.certificates.push_back(old);
    start();
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    auto w = cert_writes();
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].method, "PUT");
    EXPECT_EQ(path_of(w[0].url), "/apis/edgecert.io/v1alpha1/namespaces/default/certificates/a-tls");
    json body = json::parse(w[0].body);
    EXPECT_EQ(body["spec"]["dnsNames"], json::array({"a.example.com", "new.example.com"}));
    EXPECT_EQ(body["spec"]["renewBefore"], "720h");
    EXPECT_EQ(body["metadata"]["labels"]["team"], "web");
    EXPECT_EQ(body["metadata"]["resourceVersion"], "20") << "conditional on what was read";
    EXPECT_FALSE(body.contains("status")) << "status belongs to the issuing controller";
    EXPECT_EQ(events(), std::vector<std::string>{
                            "Normal UpdateCertificate: Updated Certificate default/a-tls"});
}

TEST_F(SourceControllerTest, AddressHostsMoveBetweenDnsNamesAndIpAddresses) {
    // The entry's only name is replaced by an address: spec.dnsNames goes (the CRD wants it
    // non-empty when present) and spec.ipAddresses appears.
    json src = ingress("u1", {tls("a-tls", {"192.0.2.10"})});
    api_.ingresses.push_back(src);
    api_.certificates.push_back(
        stored(ingress("u1", {tls("a-tls", {"a.example.com"})}), "a-tls", "c1"));
    start();
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    auto w = cert_writes();
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].method, "PUT");
    json body = json::parse(w[0].body);
    EXPECT_FALSE(body["spec"].contains("dnsNames")) << body.dump();
    EXPECT_EQ(body["spec"]["ipAddresses"], json::array({"192.0.2.10"}));
}

TEST_F(SourceControllerTest, UnchangedAddressOnlyCertificateIsNotWritten) {
    json src = ingress("u1", {tls("a-tls", {"192.0.2.10", "2001:db8::10"})});
    api_.ingresses.push_back(src);
    api_.certificates.push_back(stored(src, "a-tls", "c1"));
    start();
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    EXPECT_TRUE(cert_writes().empty()) << cert_writes()[0].body;
}

TEST_F(SourceControllerTest, ForeignCertificateIsLeftAloneAndReportedOnce) {
    api_.ingresses.push_back(ingress("u1", {tls("a-tls", {"a.example.com"})}));
    api_.certificates.push_back({{"apiVersion", "edgecert.io/v1alpha1"},
                                 {"kind", "Certificate"},
                                 {"metadata",
                                  {{"name", "a-tls"},
                                   {"namespace", "default"},
                                   {"uid", "c9"},
                                   {"resourceVersion", "5"}}},
                                 {"spec", {{"secretName", "a-tls"}, {"dnsNames", {"x.test"}}}}});
    start();
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    EXPECT_TRUE(cert_writes().empty());
    auto ev = events();
    ASSERT_EQ(ev.size(), 1u) << "the same warning is not repeated by the next pass";
    EXPECT_EQ(ev[0],
              "Warning Skipped: Certificate default/a-tls exists and is not made by edgecert from "
              "an Ingress or Gateway; leaving it alone");
}

TEST_F(SourceControllerTest, BadConfigIsInvalidConfigAndWarnsOnce) {
    api_.ingresses.push_back(ingress("u1", {tls("a-tls", {"a.example.com"})},
                                     {{"edgecert.io/issuer", "a"},
                                      {"edgecert.io/cluster-issuer", "b"}}));
    start();
    for (int i = 0; i < 2; ++i) {
        auto r = sc_->reconcile("Ingress/default/web");
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig) << "the runner must not retry it";
    }
    EXPECT_TRUE(cert_writes().empty());
    auto ev = events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].rfind("Warning BadConfig: ", 0), 0u) << ev[0];
}

TEST_F(SourceControllerTest, RecreatedSourceAdoptsItsCertificates) {
    json src = ingress("u2", {tls("a-tls", {"a.example.com"})});
    api_.ingresses.push_back(src);
    api_.certificates.push_back(stored(ingress("u1", {tls("a-tls", {"a.example.com"})}), "a-tls",
                                       "c1"));
    start();
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    auto w = cert_writes();
    ASSERT_EQ(w.size(), 1u);
    json body = json::parse(w[0].body);
    EXPECT_EQ(body["metadata"]["labels"]["edgecert.io/source-uid"], "u2");
    ASSERT_EQ(body["metadata"]["ownerReferences"].size(), 1u);
    EXPECT_EQ(body["metadata"]["ownerReferences"][0]["uid"], "u2");
}

TEST_F(SourceControllerTest, DroppedTlsEntryIsDeleted) {
    json src = ingress("u1", {tls("a-tls", {"a.example.com"})});
    api_.ingresses.push_back(src);
    api_.certificates.push_back(stored(src, "a-tls", "c1"));
    api_.certificates.push_back(
        stored(ingress("u1", {tls("b-tls", {"b.example.com"})}), "b-tls", "c2"));
    start();
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    auto w = cert_writes();
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].method, "DELETE");
    EXPECT_EQ(path_of(w[0].url), "/apis/edgecert.io/v1alpha1/namespaces/default/certificates/b-tls");
}

TEST_F(SourceControllerTest, GoneSourceDeletesWhatItMadeButNotWhatIsAlreadyGoing) {
    json src = ingress("u1", {tls("a-tls", {"a.example.com"})});
    api_.certificates.push_back(stored(src, "a-tls", "c1"));
    json going = stored(ingress("u1", {tls("b-tls", {"b.example.com"})}), "b-tls", "c2");
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
    going["metadata"]["finalizers"] = {"edgecert.io/revoke"};
    api_.certificates.push_back(going);
    start();  // no Ingress: it was deleted
    ASSERT_TRUE(sc_->reconcile("Ingress/default/web").ok());
    auto w = cert_writes();
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].method, "DELETE");
    EXPECT_EQ(path_of(w[0].url), "/apis/edgecert.io/v1alpha1/namespaces/default/certificates/a-tls");
    EXPECT_NE(w[0].body.find("c1"), std::string::npos) << "uid precondition: " << w[0].body;
}

TEST_F(SourceControllerTest, MalformedKeysAreNotRetried) {
    start();
    for (const char* k : {"", "Ingress/default", "Service/default/x", "Ingress//x"}) {
        auto r = sc_->reconcile(k);
        ASSERT_FALSE(r.ok()) << k;
        EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig) << k;
    }
    auto r = sc_->reconcile("Gateway/default/edge");
    ASSERT_FALSE(r.ok()) << "Gateways are not watched here";
    EXPECT_EQ(r.error().code, ErrorCode::InvalidConfig);
}

}  // namespace
}  // namespace edgecert::controller
