#include "edgecert/k8s/informer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "unit/k8s/fake_http.h"

namespace edgecert::k8s {
namespace {

using testing::FakeHttp;
using testing::json_response;
using testing::StreamScript;

json make(const std::string& ns, const std::string& name, const std::string& rv,
          std::map<std::string, std::string> labels = {}) {
    json o = {{"metadata", {{"name", name}, {"resourceVersion", rv}}}};
    if (!ns.empty()) o["metadata"]["namespace"] = ns;
    if (!labels.empty()) o["metadata"]["labels"] = labels;
    return o;
}

WatchEvent event(WatchEvent::Type t, json o) {
    return WatchEvent{t, std::move(o)};
}

std::vector<std::string> names(std::vector<ObjectPtr> v) {
    std::vector<std::string> out;
    for (auto& o : v) out.push_back(meta::key(*o));
    std::sort(out.begin(), out.end());
    return out;
}

TEST(Store, IndexesFollowUpdatesAndDeletes) {
    Store s;
    auto d = s.replace({make("a", "x", "1", {{"app", "web"}}),
                        make("b", "y", "2", {{"app", "web"}}), make("", "cluster-wide", "3")});
    EXPECT_EQ(d.size(), 3u);
    EXPECT_EQ(names(s.list_namespace("a")), std::vector<std::string>{"a/x"});
    EXPECT_EQ(names(s.list_label("app", "web")), (std::vector<std::string>{"a/x", "b/y"}));
    EXPECT_EQ(names(s.list_namespace("")), std::vector<std::string>{"cluster-wide"});
    ASSERT_NE(s.get("cluster-wide"), nullptr);

    // Relabel y: it leaves app=web and enters app=db.
    auto u = s.apply(event(WatchEvent::Type::Modified, make("b", "y", "4", {{"app", "db"}})));
    ASSERT_TRUE(u.has_value());
    EXPECT_EQ(u->type, Delta::Type::Updated);
    EXPECT_EQ(meta::resource_version(*u->old_obj), "2");
    EXPECT_EQ(names(s.list_label("app", "web")), std::vector<std::string>{"a/x"});
    EXPECT_EQ(names(s.list_label("app", "db")), std::vector<std::string>{"b/y"});

    auto del = s.apply(event(WatchEvent::Type::Deleted, make("a", "x", "5", {{"app", "web"}})));
    ASSERT_TRUE(del.has_value());
    EXPECT_EQ(del->type, Delta::Type::Deleted);
    EXPECT_FALSE(del->final_state_unknown);
    EXPECT_TRUE(s.list_label("app", "web").empty());
    EXPECT_TRUE(s.list_namespace("a").empty());
    EXPECT_EQ(s.size(), 2u);
}

TEST(Store, ReplayedAndUnknownEventsAreDropped) {
    Store s;
    (void)s.replace({make("a", "x", "1")});
    EXPECT_FALSE(s.apply(event(WatchEvent::Type::Added, make("a", "x", "1"))).has_value())
        << "same resourceVersion: a duplicate";
    EXPECT_FALSE(
        s.apply(event(WatchEvent::Type::Deleted, make("a", "never-seen", "2"))).has_value());
    auto added_again = s.apply(event(WatchEvent::Type::Added, make("a", "x", "3")));
    ASSERT_TRUE(added_again.has_value());
    EXPECT_EQ(added_again->type, Delta::Type::Updated) << "ADDED for a known key is an update";
}

TEST(Store, ReplaceComputesDeltas) {
    Store s;
    (void)s.replace({make("n", "keep", "1"), make("n", "change", "1"), make("n", "gone", "1")});
    auto d = s.replace({make("n", "keep", "1"), make("n", "change", "2"), make("n", "new", "3")});
    std::map<std::string, Delta> by;
    for (auto& x : d) by[meta::name(*x.obj)] = x;
    EXPECT_EQ(by.size(), 3u) << "unchanged objects produce no delta";
    EXPECT_EQ(by["change"].type, Delta::Type::Updated);
    EXPECT_EQ(by["new"].type, Delta::Type::Added);
    EXPECT_EQ(by["gone"].type, Delta::Type::Deleted);
    EXPECT_TRUE(by["gone"].final_state_unknown);
    EXPECT_EQ(meta::resource_version(*by["gone"].obj), "1") << "last known state";
}

TEST(Store, ReplaceInOneNamespaceLeavesTheOthers) {
    // A multi-namespace informer relists one namespace at a time.
    Store s;
    (void)s.replace({make("a", "x", "1"), make("b", "y", "2")}, "a");
    auto d = s.replace({}, "a");
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(meta::key(*d[0].obj), "a/x");
    EXPECT_EQ(d[0].type, Delta::Type::Deleted);
    EXPECT_EQ(names(s.list()), std::vector<std::string>{"b/y"})
        << "namespace b is not a's to relist";
    (void)s.replace({}, "");
    EXPECT_EQ(s.size(), 0u) << "an unscoped relist owns everything";
}

class InformerTest : public ::testing::Test {
  protected:
    FakeHttp http;
    FakeClock clock;
    Client client{http, ClientOptions{"http://api", nullptr}, clock};
};

TEST_F(InformerTest, HandlersRunOutsideTheLockInOrder) {
    http.on_send = [](const HttpRequest&) -> Result<HttpResponse> {
        return json_response(200, R"({"metadata":{"resourceVersion":"1"},"items":[
            {"metadata":{"name":"a","namespace":"n","resourceVersion":"1"}}]})");
    };
    http.push_stream(StreamScript{
        200,
        "",
        {R"({"type":"MODIFIED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"2"}}})"
         "\n"
         R"({"type":"ADDED","object":{"metadata":{"name":"b","namespace":"n","resourceVersion":"3"}}})"
         "\n"
         R"({"type":"DELETED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"4"}}})"
         "\n"}});
    ReflectorOptions o;
    o.type = resources::Secret;
    Informer inf(client, o);
    std::vector<std::string> seen;
    inf.add_handlers(
        EventHandlers{[&](const ObjectPtr& obj) {
                          // Reading the store from a handler would deadlock if handlers ran under
                          // its lock.
                          EXPECT_NE(inf.store().get(meta::key(*obj)), nullptr);
                          seen.push_back("add " + meta::name(*obj) +
                                         " size=" + std::to_string(inf.store().size()));
                      },
                      [&](const ObjectPtr& old, const ObjectPtr& now) {
                          EXPECT_EQ(inf.store().get(meta::key(*now)), now);
                          seen.push_back("update " + meta::resource_version(*old) + "->" +
                                         meta::resource_version(*now));
                      },
                      [&](const ObjectPtr& last, bool unknown) {
                          EXPECT_EQ(inf.store().get(meta::key(*last)), nullptr);
                          seen.push_back("delete " + meta::name(*last) + "@" +
                                         meta::resource_version(*last) + (unknown ? "?" : ""));
                      }});
    inf.reflector().step();
    clock.advance(std::chrono::seconds(3));
    inf.reflector().step();
    EXPECT_EQ(seen, (std::vector<std::string>{"add a size=1", "update 1->2", "add b size=2",
                                              "delete a@4"}));
}

TEST_F(InformerTest, ThreadedStartSyncStop) {
    std::atomic<int> lists{0};
    http.on_send = [&](const HttpRequest&) -> Result<HttpResponse> {
        ++lists;
        return json_response(200, R"({"metadata":{"resourceVersion":"1"},"items":[]})");
    };
    // No streams scripted: the watch keeps failing and backing off (on the fake clock) until
    // stop() ends it.
    ReflectorOptions o;
    o.type = resources::Secret;
    Informer inf(client, o);
    inf.start();
    ASSERT_TRUE(inf.wait_for_sync(std::chrono::seconds(10)));
    // Concurrent readers while the writer thread runs.
    std::thread reader([&] {
        for (int i = 0; i < 1000; ++i) (void)inf.store().list();
    });
    reader.join();
    inf.stop();
    EXPECT_EQ(lists.load(), 1);
    EXPECT_EQ(inf.reflector().state(), Reflector::State::Stopped);
}

TEST_F(InformerTest, NamespacesEachGetTheirOwnListAndWatchIntoOneCache) {
    std::mutex mu;
    std::vector<std::string> paths;
    http.on_send = [&](const HttpRequest& r) -> Result<HttpResponse> {
        std::lock_guard l(mu);
        paths.push_back(r.url.substr(std::string("http://api").size()));
        std::string ns =
            r.url.find("/namespaces/team-a/") != std::string::npos ? "team-a" : "team-b";
        return json_response(200, R"({"metadata":{"resourceVersion":"1"},"items":[
            {"metadata":{"name":"s","namespace":")" +
                                      ns + R"(","resourceVersion":"1"}}]})");
    };
    ReflectorOptions o;
    o.type = resources::Secret;
    o.label_selector = "edgecert.io/managed=true";
    o.ns = "ignored";
    Informer inf(client, o, {"team-a", "team-b"});
    ASSERT_EQ(inf.reflector_count(), 2u);
    std::atomic<int> added{0};
    inf.add_handlers(EventHandlers{[&](const ObjectPtr&) { ++added; }, nullptr, nullptr});
    inf.reflector(0).step();
    EXPECT_FALSE(inf.has_synced()) << "team-b has not listed yet";
    inf.reflector(1).step();
    EXPECT_TRUE(inf.has_synced());
    EXPECT_EQ(names(inf.store().list()), (std::vector<std::string>{"team-a/s", "team-b/s"}));
    EXPECT_EQ(added.load(), 2);
    std::sort(paths.begin(), paths.end());
    ASSERT_EQ(paths.size(), 2u);
    EXPECT_EQ(paths[0].rfind("/api/v1/namespaces/team-a/secrets?", 0), 0u) << paths[0];
    EXPECT_EQ(paths[1].rfind("/api/v1/namespaces/team-b/secrets?", 0), 0u) << paths[1];
    EXPECT_NE(paths[0].find("labelSelector=edgecert.io%2Fmanaged%3Dtrue"), std::string::npos)
        << paths[0];
}

TEST_F(InformerTest, ThreadedNamespacesSyncAndStop) {
    std::atomic<int> lists{0};
    http.on_send = [&](const HttpRequest&) -> Result<HttpResponse> {
        ++lists;
        return json_response(200, R"({"metadata":{"resourceVersion":"1"},"items":[]})");
    };
    ReflectorOptions o;
    o.type = resources::Secret;
    Informer inf(client, o, {"a", "b", "c"});
    inf.start();
    ASSERT_TRUE(inf.wait_for_sync(std::chrono::seconds(10)));
    EXPECT_EQ(lists.load(), 3);
    inf.cancel();
    inf.stop();
    for (size_t i = 0; i < inf.reflector_count(); ++i)
        EXPECT_EQ(inf.reflector(i).state(), Reflector::State::Stopped);
}

}  // namespace
}  // namespace edgecert::k8s

namespace edgecert::k8s {
namespace {

TEST(InformerTransform, StripsManagedFieldsBeforeCaching) {
    testing::FakeHttp http;
    FakeClock clock;
    Client client(http, ClientOptions{"http://api", nullptr}, clock);
    http.on_send = [](const HttpRequest&) -> Result<HttpResponse> {
        return testing::json_response(200, R"({"metadata":{"resourceVersion":"1"},"items":[
            {"metadata":{"name":"a","namespace":"n","resourceVersion":"1",
                         "managedFields":[{"manager":"kubectl"}]}}]})");
    };
    http.push_stream(testing::StreamScript{
        200,
        "",
        {R"({"type":"ADDED","object":{"metadata":{"name":"b","namespace":"n","resourceVersion":"2","managedFields":[{}]}}})"
         "\n"}});
    ReflectorOptions o;
    o.type = resources::Secret;
    Informer inf(client, o);
    inf.set_transform(meta::strip_managed_fields);
    int seen = 0;
    inf.add_handlers(EventHandlers{[&](const ObjectPtr& obj) {
                                       EXPECT_FALSE((*obj)["metadata"].contains("managedFields"));
                                       ++seen;
                                   },
                                   nullptr, nullptr});
    inf.reflector().step();
    clock.advance(std::chrono::seconds(2));
    inf.reflector().step();
    EXPECT_EQ(seen, 2);
    EXPECT_FALSE((*inf.store().get("n", "a"))["metadata"].contains("managedFields"));
    EXPECT_EQ(meta::resource_version(*inf.store().get("n", "b")), "2");
}

}  // namespace
}  // namespace edgecert::k8s
