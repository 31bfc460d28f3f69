#include "edgecert/k8s/event_recorder.h"

#include <gtest/gtest.h>

#include <condition_variable>

#include "unit/k8s/fake_http.h"

namespace edgecert::k8s {
namespace {

using testing::FakeHttp;
using testing::json_response;
using testing::path_of;
using testing::status_body;

class EventRecorderTest : public ::testing::Test {
  protected:
    void SetUp() override {
        http.on_send = [this](const HttpRequest& r) -> Result<HttpResponse> {
            std::lock_guard l(mu);
            if (r.method == "POST") {
                posts.push_back(json::parse(r.body));
                return json_response(201, r.body);
            }
            if (r.method == "PATCH") {
                patches.emplace_back(path_of(r.url), json::parse(r.body));
                if (patch_not_found)
                    return json_response(404, status_body(404, "NotFound", "gone"));
                return json_response(200, "{}");
            }
            return json_response(405, "");
        };
    }
    ObjectReference ingress() {
        json obj = json::parse(
            R"({"metadata":{"name":"web","namespace":"shop","uid":"u-1","resourceVersion":"42"}})");
        return ObjectReference::from_object(obj, resources::Ingress);
    }
    FakeHttp http;
    FakeClock clock;
    Client client{http, ClientOptions{"http://api", nullptr}, clock};
    std::mutex mu;
    std::vector<json> posts;
    std::vector<std::pair<std::string, json>> patches;
    bool patch_not_found = false;
};

TEST_F(EventRecorderTest, CreatesEventWithInvolvedObject) {
    EventRecorder rec(client, EventRecorderOptions{"edgecert-controller"});
    ASSERT_TRUE(rec.record(ingress(), "Normal", "Issuing", "Issuing certificate for web-tls"));
    ASSERT_TRUE(rec.flush());
    ASSERT_EQ(posts.size(), 1u);
    const json& e = posts[0];
    EXPECT_EQ(e["kind"], "Event");
    EXPECT_EQ(e["metadata"]["namespace"], "shop");
    EXPECT_EQ(e["metadata"]["name"].get<std::string>().rfind("web.", 0), 0u);
    EXPECT_EQ(e["involvedObject"]["kind"], "Ingress");
    EXPECT_EQ(e["involvedObject"]["apiVersion"], "networking.k8s.io/v1");
    EXPECT_EQ(e["involvedObject"]["uid"], "u-1");
    EXPECT_EQ(e["involvedObject"]["name"], "web");
    EXPECT_EQ(e["involvedObject"]["namespace"], "shop");
    EXPECT_EQ(e["involvedObject"]["resourceVersion"], "42");
    EXPECT_EQ(e["reason"], "Issuing");
    EXPECT_EQ(e["type"], "Normal");
    EXPECT_EQ(e["source"]["component"], "edgecert-controller");
    EXPECT_EQ(e["count"], 1);
    EXPECT_EQ(e["firstTimestamp"], format_time(clock.now()));
    EXPECT_EQ(e["lastTimestamp"], e["firstTimestamp"]);
    EXPECT_EQ(rec.stats().created, 1u);
}

TEST_F(EventRecorderTest, RepeatsWithinTenMinutesArePatchedWithCount) {
    EventRecorder rec(client, EventRecorderOptions{"c"});
    rec.record(ingress(), "Warning", "Failed", "order failed");
    rec.flush();
    clock.advance(std::chrono::seconds(30));
    rec.record(ingress(), "Warning", "Failed", "order failed");
    rec.flush();
    clock.advance(std::chrono::seconds(30));
    rec.record(ingress(), "Warning", "Failed", "order failed");
    rec.record(ingress(), "Warning", "Failed", "a different message");
    rec.flush();
    ASSERT_EQ(posts.size(), 2u);
    ASSERT_EQ(patches.size(), 2u);
    std::string name = posts[0]["metadata"]["name"];
    EXPECT_EQ(patches[0].first, "/api/v1/namespaces/shop/events/" + name);
    EXPECT_EQ(patches[0].second["count"], 2);
    EXPECT_EQ(patches[1].second["count"], 3);
    EXPECT_EQ(patches[1].second["lastTimestamp"], format_time(clock.now()));
    // Past the window (counted from the last occurrence): a new Event.
    clock.advance(std::chrono::minutes(11));
    rec.record(ingress(), "Warning", "Failed", "order failed");
    rec.flush();
    EXPECT_EQ(posts.size(), 3u);
    EXPECT_NE(posts[2]["metadata"]["name"], posts[0]["metadata"]["name"]);
}

TEST_F(EventRecorderTest, PatchOfExpiredEventFallsBackToCreate) {
    EventRecorder rec(client, EventRecorderOptions{"c"});
    rec.record(ingress(), "Normal", "Issued", "ok");
    rec.flush();
    patch_not_found = true;
    rec.record(ingress(), "Normal", "Issued", "ok");
    rec.flush();
    EXPECT_EQ(patches.size(), 1u);
    EXPECT_EQ(posts.size(), 2u);
}

TEST_F(EventRecorderTest, SpamFilterBurst25ThenOnePerFiveMinutes) {
    EventRecorder rec(client, EventRecorderOptions{"c"});
    for (int i = 0; i < 30; ++i)
        rec.record(ingress(), "Normal", "R", "message " + std::to_string(i));
    rec.flush();
    EXPECT_EQ(posts.size(), 25u);
    EXPECT_EQ(rec.stats().dropped_spam, 5u);
    // Another object has its own bucket.
    ObjectReference other = ingress();
    other.name = "other";
    other.uid = "u-2";
    rec.record(other, "Normal", "R", "x");
    rec.flush();
    EXPECT_EQ(posts.size(), 26u);
    clock.advance(std::chrono::seconds(300));
    rec.record(ingress(), "Normal", "R", "after refill 1");
    rec.record(ingress(), "Normal", "R", "after refill 2");
    rec.flush();
    EXPECT_EQ(posts.size(), 27u);
    EXPECT_EQ(rec.stats().dropped_spam, 6u);
}

TEST_F(EventRecorderTest, RecordNeverBlocksAndDropsWhenQueueFull) {
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    bool open = false;
    http.on_send = [&](const HttpRequest& r) -> Result<HttpResponse> {
        std::unique_lock l(gate_mu);
        gate_cv.wait(l, [&] { return open; });
        return json_response(201, r.body);
    };
    EventRecorderOptions o{"c"};
    o.queue_capacity = 3;
    o.spam_burst = 100;
    EventRecorder rec(client, o);
    int accepted = 0;
    for (int i = 0; i < 10; ++i)
        accepted += rec.record(ingress(), "Normal", "R", "m" + std::to_string(i)) ? 1 : 0;
    // One may already be in flight (blocked in the API call), three queued; the rest dropped.
    EXPECT_GE(accepted, 3);
    EXPECT_LE(accepted, 4);
    EXPECT_EQ(rec.stats().dropped_queue_full, static_cast<uint64_t>(10 - accepted));
    {
        std::lock_guard l(gate_mu);
        open = true;
    }
    gate_cv.notify_all();
    ASSERT_TRUE(rec.flush());
    EXPECT_EQ(rec.stats().created, static_cast<uint64_t>(accepted));
}

TEST_F(EventRecorderTest, ClusterScopedObjectsGoToDefault) {
    EventRecorder rec(client, EventRecorderOptions{"c"});
    json ns_obj = json::parse(R"({"metadata":{"name":"shop","uid":"u-ns"}})");
    rec.record(ns_obj, resources::Namespace, "Normal", "R", "m");
    rec.flush();
    ASSERT_EQ(posts.size(), 1u);
    EXPECT_EQ(posts[0]["metadata"]["namespace"], "default");
    EXPECT_EQ(posts[0]["involvedObject"]["kind"], "Namespace");
}

}  // namespace
}  // namespace edgecert::k8s
