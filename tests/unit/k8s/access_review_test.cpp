#include "edgecert/k8s/access_review.h"

#include <gtest/gtest.h>

#include "unit/k8s/fake_http.h"

namespace edgecert::k8s {
namespace {

using testing::FakeHttp;
using testing::json_response;

TEST(AccessReview, DescribeNamesTheWholePermission) {
    EXPECT_EQ(describe(AccessAttributes::of("list", resources::Ingress)),
              "list ingresses.networking.k8s.io at the cluster scope");
    EXPECT_EQ(describe(AccessAttributes::of("watch", resources::Secret, "team-a")),
              "watch secrets in namespace team-a");
    auto a = AccessAttributes::of("update", resources::Lease, "edgecert-system");
    a.name = "edgecert-controller";
    EXPECT_EQ(describe(a),
              "update leases.coordination.k8s.io edgecert-controller in namespace edgecert-system");
}

TEST(AccessReview, PostsASelfSubjectAccessReviewAndReadsAllowed) {
    FakeHttp http;
    FakeClock clock;
    Client client{http, ClientOptions{"http://api", nullptr}, clock};
    json sent;
    bool allowed = true;
    http.on_send = [&](const HttpRequest& r) -> Result<HttpResponse> {
        EXPECT_EQ(r.method, "POST");
        EXPECT_EQ(r.url, "http://api/apis/authorization.k8s.io/v1/selfsubjectaccessreviews");
        sent = json::parse(r.body);
        json out = sent;
        out["status"] = {{"allowed", allowed}};
        return json_response(201, out.dump());
    };
    auto a = AccessAttributes::of("list", resources::Secret, "team-a");
    auto r = can_i(client, a);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r);
    EXPECT_EQ(sent["kind"], "SelfSubjectAccessReview");
    EXPECT_EQ(
        sent["spec"]["resourceAttributes"],
        (json{{"verb", "list"}, {"group", ""}, {"resource", "secrets"}, {"namespace", "team-a"}}));
    allowed = false;
    r = can_i(client, AccessAttributes::of("list", resources::Ingress));
    ASSERT_TRUE(r);
    EXPECT_FALSE(*r);
    EXPECT_FALSE(sent["spec"]["resourceAttributes"].contains("namespace")) << "the cluster scope";
}

TEST(AccessReview, AServerThatCannotAnswerIsAnError) {
    FakeHttp http;
    FakeClock clock;
    Client client{http, ClientOptions{"http://api", nullptr}, clock};
    http.on_send = [](const HttpRequest&) -> Result<HttpResponse> {
        return json_response(
            403, R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden",
            "message":"selfsubjectaccessreviews.authorization.k8s.io is forbidden","code":403})");
    };
    auto r = can_i(client, AccessAttributes::of("list", resources::Secret));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::Forbidden);
}

}  // namespace
}  // namespace edgecert::k8s
