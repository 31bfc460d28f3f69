#include "edgecert/k8s/reflector.h"

#include <gtest/gtest.h>

#include "edgecert/k8s/informer.h"
#include "unit/k8s/fake_http.h"

namespace edgecert::k8s {
namespace {

using testing::FakeHttp;
using testing::json_response;
using testing::query_param;
using testing::status_body;
using testing::StreamScript;

std::string obj(const std::string& name, const std::string& rv, const std::string& ns = "n") {
    return R"({"metadata":{"name":")" + name + R"(","namespace":")" + ns +
           R"(","resourceVersion":")" + rv + R"("}})";
}
std::string ev(const std::string& type, const std::string& name, const std::string& rv) {
    return R"({"type":")" + type + R"(","object":)" + obj(name, rv) + "}\n";
}
std::string list_body(const std::vector<std::pair<std::string, std::string>>& items,
                      const std::string& rv) {
    std::string s =
        R"({"kind":"SecretList","metadata":{"resourceVersion":")" + rv + R"("},"items":[)";
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) s += ",";
        s += obj(items[i].first, items[i].second);
    }
    return s + "]}";
}

TEST(LineDecoder, SplitAndMultipleEventsPerChunk) {
    LineDecoder d;
    std::vector<std::string> lines;
    auto on = [&](std::string_view l) { lines.emplace_back(l); };
    d.feed("{\"a\":1}\n{\"b\"", on);
    EXPECT_EQ(lines.size(), 1u);
    d.feed(":2}", on);
    d.feed("\n\n{\"c\":3}\r\n{\"d\":", on);
    d.feed("4}", on);
    EXPECT_EQ(lines.size(), 3u);
    d.finish(on);
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines[1], "{\"b\":2}");
    EXPECT_EQ(lines[2], "{\"c\":3}");
    EXPECT_EQ(lines[3], "{\"d\":4}");
}

TEST(LineDecoder, ByteAtATime) {
    std::string all = ev("ADDED", "a", "1") + ev("MODIFIED", "a", "2");
    LineDecoder d;
    std::vector<std::string> lines;
    for (char c : all)
        d.feed(std::string_view(&c, 1), [&](std::string_view l) { lines.emplace_back(l); });
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(parse_watch_event(lines[1]).value().type, WatchEvent::Type::Modified);
}

TEST(WatchEvent, Parse) {
    auto e = parse_watch_event(ev("DELETED", "x", "9"));
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->type, WatchEvent::Type::Deleted);
    EXPECT_EQ(meta::resource_version(e->object), "9");
    EXPECT_FALSE(parse_watch_event("not json").ok());
    EXPECT_FALSE(parse_watch_event(R"({"type":"ADDED"})").ok());
    EXPECT_FALSE(parse_watch_event(R"({"type":"WEIRD","object":{}})").ok());
    EXPECT_EQ(
        parse_watch_event(R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"5"}}})")
            ->type,
        WatchEvent::Type::Bookmark);
}

TEST(Backoff, DoublesWithJitterUpToCapAndResets) {
    Backoff b(Backoff::Policy{}, 42);
    std::vector<int64_t> ms;
    for (int i = 0; i < 10; ++i) ms.push_back(b.next().count());
    EXPECT_GE(ms[0], 800);
    EXPECT_LT(ms[0], 1200);
    EXPECT_GE(ms[1], 1600);
    EXPECT_GE(ms[2], 3200);
    for (auto v : ms) EXPECT_LE(v, 30'000);
    EXPECT_EQ(ms[9], 30'000);
    b.reset();
    EXPECT_LT(b.next().count(), 1200);
}

// Records what the reflector hands its sink.
struct RecordingSink : ReflectorSink {
    std::vector<std::string> log;
    std::vector<Error> errors;
    void replace(std::vector<json> items, const std::string& rv) override {
        log.push_back("REPLACE " + std::to_string(items.size()) + " @" + rv);
    }
    void apply(WatchEvent&& e) override {
        log.push_back(std::string(to_string(e.type)) + " " + meta::name(e.object) + " @" +
                      meta::resource_version(e.object));
    }
    void bookmark(const std::string& rv) override { log.push_back("BOOKMARK @" + rv); }
    void error(const Error& e) override { errors.push_back(e); }
};

class ReflectorTest : public ::testing::Test {
  protected:
    void SetUp() override {
        http.on_send = [this](const HttpRequest& r) -> Result<HttpResponse> {
            ++lists;
            if (list_responses.empty()) return Error(ErrorCode::Transient, "no list scripted");
            auto body = list_responses.front();
            list_responses.erase(list_responses.begin());
            (void)r;
            return json_response(body.first, body.second);
        };
        opts.type = resources::Secret;
        opts.ns = "n";
        opts.seed = 7;
    }
    FakeHttp http;
    FakeClock clock;
    Client client{http, ClientOptions{"http://api", nullptr}, clock};
    ReflectorOptions opts;
    std::vector<std::pair<int, std::string>> list_responses;
    int lists = 0;
};

TEST_F(ReflectorTest, ListThenWatchFromListRvWithBookmarksAndRandomTimeout) {
    list_responses.push_back({200, list_body({{"a", "1"}, {"b", "2"}}, "10")});
    http.push_stream(StreamScript{200, "", {ev("ADDED", "c", "11") + ev("MODIFIED", "a", "12")}});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    EXPECT_EQ(r.step(), Reflector::State::Watching);
    EXPECT_EQ(r.resource_version(), "10");
    clock.advance(std::chrono::seconds(5));  // (the stream "lasts" a while)
    EXPECT_EQ(r.step(), Reflector::State::Watching);
    auto reqs = http.requests();
    ASSERT_EQ(reqs.size(), 2u);
    const std::string& w = reqs[1].url;
    EXPECT_EQ(query_param(w, "watch"), "true");
    EXPECT_EQ(query_param(w, "resourceVersion"), "10");
    EXPECT_EQ(query_param(w, "allowWatchBookmarks"), "true");
    int timeout = std::stoi(query_param(w, "timeoutSeconds"));
    EXPECT_GE(timeout, 300);
    EXPECT_LE(timeout, 600);
    // Idle detector: silence beyond the server's own timeout means a dead stream.
    EXPECT_EQ(reqs[1].idle_timeout.count(), (timeout + 30) * 1000LL);
    EXPECT_EQ(sink.log,
              (std::vector<std::string>{"REPLACE 2 @10", "ADDED c @11", "MODIFIED a @12"}));
    EXPECT_EQ(r.resource_version(), "12");
}

TEST_F(ReflectorTest, EventsSplitAcrossChunksAndDecodeErrorsAreNotFatal) {
    list_responses.push_back({200, list_body({}, "1")});
    std::string e1 = ev("ADDED", "a", "2"), e2 = ev("ADDED", "b", "3");
    http.push_stream(StreamScript{
        200,
        "",
        {e1.substr(0, 10), e1.substr(10) + "garbage line\n" + e2.substr(0, 5), e2.substr(5)}});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    r.step();
    r.step();
    EXPECT_EQ(sink.log, (std::vector<std::string>{"REPLACE 0 @1", "ADDED a @2", "ADDED b @3"}));
    ASSERT_EQ(sink.errors.size(), 1u);
    EXPECT_EQ(r.stats().decode_errors, 1);
}

TEST_F(ReflectorTest, BookmarkMovesRvOnly) {
    list_responses.push_back({200, list_body({}, "1")});
    http.push_stream(StreamScript{
        200,
        "",
        {R"({"type":"BOOKMARK","object":{"kind":"Secret","apiVersion":"v1","metadata":{"resourceVersion":"50"}}})"
         "\n"}});
    http.push_stream(StreamScript{200, "", {}});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    r.step();
    clock.advance(std::chrono::seconds(2));
    r.step();
    EXPECT_EQ(r.resource_version(), "50");
    EXPECT_EQ(sink.log, (std::vector<std::string>{"REPLACE 0 @1", "BOOKMARK @50"}));
    r.step();
    EXPECT_EQ(query_param(http.requests().back().url, "resourceVersion"), "50");
}

TEST_F(ReflectorTest, HttpGoneRelists) {
    list_responses.push_back({200, list_body({{"a", "1"}}, "5")});
    list_responses.push_back({200, list_body({{"a", "1"}}, "90")});
    http.push_stream(
        StreamScript{410, status_body(410, "Expired", "too old resource version: 5 (49)")});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    r.step();
    EXPECT_EQ(r.step(), Reflector::State::NeedList) << "410 → relist, no backoff";
    EXPECT_EQ(r.step(), Reflector::State::Watching);
    EXPECT_EQ(r.resource_version(), "90");
    EXPECT_EQ(lists, 2);
    EXPECT_EQ(r.stats().relists_after_gone, 1);
}

TEST_F(ReflectorTest, ErrorEvent410RelistsAndStopsReadingTheStream) {
    list_responses.push_back({200, list_body({}, "5")});
    list_responses.push_back({200, list_body({}, "60")});
    http.push_stream(StreamScript{
        200,
        "",
        {ev("ADDED", "a", "6") +
         R"x({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (49)","reason":"Expired","code":410}})x"
         "\n" +
         ev("ADDED", "never", "7")}});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    r.step();
    EXPECT_EQ(r.step(), Reflector::State::NeedList);
    EXPECT_EQ(sink.log, (std::vector<std::string>{"REPLACE 0 @5", "ADDED a @6"}));
    ASSERT_FALSE(sink.errors.empty());
    EXPECT_EQ(sink.errors.back().code, ErrorCode::Gone);
    r.step();
    EXPECT_EQ(r.resource_version(), "60");
}

TEST_F(ReflectorTest, DroppedConnectionBacksOffAndRewatchesFromLastRvWithoutRelist) {
    list_responses.push_back({200, list_body({}, "5")});
    StreamScript dropped{200, "", {ev("ADDED", "a", "6")}};
    dropped.end_with_error = Error(ErrorCode::Transient, "connection reset");
    http.push_stream(dropped);
    http.push_stream(StreamScript{200, "", {ev("ADDED", "b", "7")}});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    r.step();
    EXPECT_EQ(r.step(), Reflector::State::Backoff);
    auto before = clock.total_slept();
    EXPECT_EQ(r.step(), Reflector::State::Watching);
    auto slept = clock.total_slept() - before;
    // The stream had delivered an event, so it counted as healthy: first backoff step.
    EXPECT_GE(slept.count(), 800);
    EXPECT_LT(slept.count(), 1300);
    r.step();
    EXPECT_EQ(lists, 1) << "no relist after a dropped connection";
    EXPECT_EQ(query_param(http.requests().back().url, "resourceVersion"), "6");
    EXPECT_EQ(sink.log.back(), "ADDED b @7");
}

TEST_F(ReflectorTest, RepeatedFailuresGrowBackoffAndHealthyStreamResetsIt) {
    list_responses.push_back({200, list_body({}, "5")});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    r.step();
    // No stream scripted: every watch is "connection refused".
    std::vector<int64_t> waits;
    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(r.step(), Reflector::State::Backoff);
        r.step();
        waits.push_back(r.stats().last_backoff.count());
    }
    EXPECT_LT(waits[0], 1300);
    EXPECT_GT(waits[3], waits[0] * 4);
    EXPECT_LE(waits[7], 30'000);
    EXPECT_GE(waits[7], 20'000);
    // A healthy stream (it delivered events) resets the backoff.
    StreamScript ok{200, "", {ev("ADDED", "a", "6")}};
    ok.end_with_error = Error(ErrorCode::Transient, "reset");
    http.push_stream(ok);
    EXPECT_EQ(r.step(), Reflector::State::Backoff);
    r.step();
    EXPECT_LT(r.stats().last_backoff.count(), 1300);
}

TEST_F(ReflectorTest, VeryShortEmptyWatchBacksOff) {
    list_responses.push_back({200, list_body({}, "5")});
    http.push_stream(StreamScript{200, "", {}});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    r.step();
    EXPECT_EQ(r.step(), Reflector::State::Backoff);
    EXPECT_EQ(r.step(), Reflector::State::Watching);
}

TEST_F(ReflectorTest, ListFailureBacksOffThenRetriesList) {
    list_responses.push_back({500, status_body(500, "InternalError", "etcd unavailable")});
    list_responses.push_back({429, status_body(429, "TooManyRequests", "slow")});
    list_responses.push_back({200, list_body({}, "3")});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    EXPECT_EQ(r.step(), Reflector::State::Backoff);
    EXPECT_EQ(r.step(), Reflector::State::NeedList);
    EXPECT_EQ(r.step(), Reflector::State::Backoff);
    EXPECT_EQ(r.step(), Reflector::State::NeedList);
    EXPECT_EQ(r.step(), Reflector::State::Watching);
    EXPECT_EQ(sink.errors.size(), 2u);
    EXPECT_EQ(sink.errors[1].code, ErrorCode::RateLimited);
}

TEST_F(ReflectorTest, StopCancelsTheInFlightStream) {
    list_responses.push_back({200, list_body({}, "5")});
    RecordingSink sink;
    Reflector r(client, sink, opts);
    StreamScript s{200, "", {ev("ADDED", "a", "6"), ev("ADDED", "b", "7")}};
    http.push_stream(s);
    r.step();
    // Stop from "another thread" while the first event is being handled.
    struct StopSink : RecordingSink {
        Reflector* r = nullptr;
        void apply(WatchEvent&& e) override {
            RecordingSink::apply(std::move(e));
            r->stop();
        }
    };
    StopSink ss;
    Reflector r2(client, ss, opts);
    ss.r = &r2;
    list_responses.push_back({200, list_body({}, "5")});
    http.push_stream(s);
    r2.step();
    EXPECT_EQ(r2.step(), Reflector::State::Stopped);
    EXPECT_EQ(ss.log.size(), 2u) << "the second event is not delivered after stop()";
    r2.run();  // returns at once
}

// ---- Informer over the reflector ----

TEST_F(ReflectorTest, RelistReportsDeletionsThatHappenedWhileNotWatching) {
    list_responses.push_back({200, list_body({{"a", "1"}, {"b", "2"}, {"c", "3"}}, "3")});
    // While the watch was down: b deleted, c modified, d created; then the watch gets 410.
    list_responses.push_back({200, list_body({{"a", "1"}, {"c", "8"}, {"d", "9"}}, "9")});
    http.push_stream(StreamScript{410, status_body(410, "Expired", "too old")});
    Informer inf(client, opts);
    std::vector<std::string> got;
    inf.add_handlers(EventHandlers{
        [&](const ObjectPtr& o) { got.push_back("add " + meta::name(*o)); },
        [&](const ObjectPtr& o, const ObjectPtr& n) {
            got.push_back("update " + meta::name(*o) + " " + meta::resource_version(*o) + "->" +
                          meta::resource_version(*n));
        },
        [&](const ObjectPtr& o, bool unknown) {
            got.push_back("delete " + meta::name(*o) + (unknown ? " (final state unknown)" : ""));
        }});
    Reflector& r = inf.reflector();
    EXPECT_FALSE(inf.has_synced());
    r.step();
    EXPECT_TRUE(inf.has_synced());
    r.step();  // 410
    r.step();  // relist
    std::sort(got.begin() + 3, got.end());
    EXPECT_EQ(got, (std::vector<std::string>{"add a", "add b", "add c", "add d",
                                             "delete b (final state unknown)", "update c 3->8"}));
    EXPECT_EQ(inf.store().size(), 3u);
    EXPECT_EQ(inf.store().get("n", "b"), nullptr);
}

}  // namespace
}  // namespace edgecert::k8s
