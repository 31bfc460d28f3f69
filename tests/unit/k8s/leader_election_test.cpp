#include "edgecert/k8s/leader_election.h"

#include <gtest/gtest.h>

#include <thread>

#include "unit/k8s/fake_http.h"

namespace edgecert::k8s {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeHttp;
using testing::json_response;
using testing::path_of;
using testing::status_body;

// One Lease with real optimistic concurrency: PUT with a stale resourceVersion → 409.
class LeaseServer {
  public:
    Result<HttpResponse> handle(const HttpRequest& r) {
        std::lock_guard l(mu_);
        const std::string base = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
        std::string p = path_of(r.url);
        if (r.method == "GET" && p == base + "/lock") {
            if (!lease_) return json_response(404, status_body(404, "NotFound", "not found"));
            return json_response(200, lease_->dump());
        }
        if (r.method == "POST" && p == base) {
            if (lease_) return json_response(409, status_body(409, "AlreadyExists", "exists"));
            json o = json::parse(r.body);
            meta::set_resource_version(o, std::to_string(++rv_));
            lease_ = o;
            return json_response(201, o.dump());
        }
        if (r.method == "PUT" && p == base + "/lock") {
            json o = json::parse(r.body);
            if (fail_next_put_) {
                fail_next_put_ = false;
                return json_response(409, status_body(409, "Conflict", "injected"));
            }
            if (!lease_ || meta::resource_version(o) != meta::resource_version(*lease_))
                return json_response(409,
                                     status_body(409, "Conflict", "the object has been modified"));
            meta::set_resource_version(o, std::to_string(++rv_));
            lease_ = o;
            ++puts_;
            return json_response(200, o.dump());
        }
        return json_response(404, status_body(404, "NotFound", "no route"));
    }
    LeaseSpec spec() {
        std::lock_guard l(mu_);
        return LeaseSpec::from_json((*lease_)["spec"]);
    }
    // Another writer (e.g. an old leader with a skewed clock) rewrites the lease.
    void overwrite(const LeaseSpec& s) {
        std::lock_guard l(mu_);
        (*lease_)["spec"] = s.to_json();
        meta::set_resource_version(*lease_, std::to_string(++rv_));
    }
    void fail_next_put() {
        std::lock_guard l(mu_);
        fail_next_put_ = true;
    }
    int puts() {
        std::lock_guard l(mu_);
        return puts_;
    }

  private:
    std::mutex mu_;
    std::optional<json> lease_;
    int rv_ = 0;
    int puts_ = 0;
    bool fail_next_put_ = false;
};

struct Candidate {
    Candidate(LeaseServer& server, FakeClock& clock, const std::string& id) {
        http.on_send = [&server](const HttpRequest& r) { return server.handle(r); };
        client = std::make_unique<Client>(http, ClientOptions{"http://api", nullptr}, clock);
        LeaderElectionConfig cfg;
        cfg.lease_namespace = "ns";
        cfg.lease_name = "lock";
        cfg.identity = id;
        cfg.on_started_leading = [this] { ++started; };
        cfg.on_stopped_leading = [this] { ++stopped; };
        cfg.on_new_leader = [this](const std::string& l) { leaders.push_back(l); };
        elector = std::move(LeaderElector::create(*client, cfg).value());
    }
    FakeHttp http;
    std::unique_ptr<Client> client;
    std::unique_ptr<LeaderElector> elector;
    std::atomic<int> started{0}, stopped{0};
    std::vector<std::string> leaders;
};

TEST(LeaderElection, ConfigValidation) {
    FakeHttp http;
    Client c(http, ClientOptions{"http://api", nullptr});
    LeaderElectionConfig cfg;
    cfg.lease_namespace = "ns";
    cfg.lease_name = "l";
    EXPECT_FALSE(LeaderElector::create(c, cfg).ok()) << "no identity";
    cfg.identity = "me";
    EXPECT_TRUE(LeaderElector::create(c, cfg).ok()) << "client-go defaults 15/10/2";
    cfg.renew_deadline = seconds(15);
    EXPECT_FALSE(LeaderElector::create(c, cfg).ok()) << "lease duration must exceed renew deadline";
    cfg.renew_deadline = milliseconds(2400);
    EXPECT_FALSE(LeaderElector::create(c, cfg).ok()) << "renew deadline must exceed 1.2 x retry";
    cfg.lease_duration = seconds(3);
    cfg.renew_deadline = seconds(2);
    cfg.retry_period = milliseconds(500);
    EXPECT_TRUE(LeaderElector::create(c, cfg).ok()) << "a short test configuration";
}

TEST(LeaderElection, CreateThenHeldThenTakeOverAfterLocalExpiry) {
    LeaseServer server;
    FakeClock clock;
    Candidate a(server, clock, "a"), b(server, clock, "b");
    ASSERT_TRUE(a.elector->try_acquire_or_renew());
    EXPECT_TRUE(a.elector->is_leader());
    LeaseSpec s = server.spec();
    EXPECT_EQ(s.holder_identity, "a");
    EXPECT_EQ(s.lease_duration_seconds.value(), 15);
    EXPECT_EQ(s.lease_transitions, 0);
    ASSERT_TRUE(s.renew_time.has_value());

    EXPECT_FALSE(b.elector->try_acquire_or_renew());
    EXPECT_EQ(b.elector->leader(), "a");
    clock.advance(seconds(14));
    EXPECT_FALSE(b.elector->try_acquire_or_renew()) << "b observed the record 14 s ago";
    clock.advance(seconds(2));
    ASSERT_TRUE(b.elector->try_acquire_or_renew()) << "no change seen for 16 s > 15 s";
    s = server.spec();
    EXPECT_EQ(s.holder_identity, "b");
    EXPECT_EQ(s.lease_transitions, 1);
    // a's fast path PUTs its stale copy: 409, then the slow path sees b's fresh record.
    EXPECT_FALSE(a.elector->try_acquire_or_renew());
    EXPECT_FALSE(a.elector->is_leader());
}

TEST(LeaderElection, ExpiryUsesLocalObservationNotRemoteRenewTime) {
    LeaseServer server;
    FakeClock clock;
    Candidate a(server, clock, "a"), b(server, clock, "b");
    ASSERT_TRUE(a.elector->try_acquire_or_renew());
    // a's clock is an hour behind: the renewTime it writes looks long expired to b.
    LeaseSpec s = server.spec();
    s.renew_time = clock.now() - std::chrono::hours(1);
    server.overwrite(s);
    EXPECT_FALSE(b.elector->try_acquire_or_renew()) << "just observed a change: still held";
    // Every renewal by a is a change b observes, so b keeps waiting as long as a renews.
    for (int i = 0; i < 10; ++i) {
        clock.advance(seconds(10));
        s.renew_time = *s.renew_time + seconds(1);
        server.overwrite(s);
        EXPECT_FALSE(b.elector->try_acquire_or_renew());
    }
}

TEST(LeaderElection, ConflictMeansRetryNextPeriod) {
    LeaseServer server;
    FakeClock clock;
    Candidate a(server, clock, "a");
    ASSERT_TRUE(a.elector->try_acquire_or_renew());
    server.fail_next_put();  // fails the fast path; the slow path re-reads and succeeds
    EXPECT_TRUE(a.elector->try_acquire_or_renew());
    clock.advance(seconds(20));
    Candidate b(server, clock, "b");
    EXPECT_FALSE(b.elector->try_acquire_or_renew()) << "first sighting starts b's timer";
    clock.advance(seconds(16));
    server.fail_next_put();
    EXPECT_FALSE(b.elector->try_acquire_or_renew()) << "409 on the takeover write";
    EXPECT_TRUE(b.elector->try_acquire_or_renew());
    EXPECT_EQ(server.spec().lease_transitions, 1);
}

TEST(LeaderElection, LeaderKeepsAcquireTimeAndTransitionsOnRenew) {
    LeaseServer server;
    FakeClock clock;
    Candidate a(server, clock, "a");
    ASSERT_TRUE(a.elector->try_acquire_or_renew());
    auto acquired = server.spec().acquire_time;
    clock.advance(seconds(2));
    ASSERT_TRUE(a.elector->try_acquire_or_renew());
    LeaseSpec s = server.spec();
    EXPECT_EQ(s.acquire_time, acquired);
    EXPECT_EQ(*s.renew_time - *acquired, seconds(2));
    EXPECT_EQ(s.lease_transitions, 0);
}

TEST(LeaderElection, RunLeadsUntilStopAndReleases) {
    LeaseServer server;
    FakeClock clock;
    Candidate a(server, clock, "a");
    std::thread t([&] { a.elector->run(); });
    while (a.started.load() == 0) std::this_thread::yield();
    // It keeps renewing on the (fake) retry period.
    int puts = server.puts();
    while (server.puts() < puts + 3) std::this_thread::yield();
    a.elector->stop();
    t.join();
    EXPECT_EQ(a.stopped.load(), 1);
    LeaseSpec s = server.spec();
    EXPECT_EQ(s.holder_identity, "") << "released on shutdown";
    EXPECT_EQ(s.lease_duration_seconds.value(), 1);
    // The next candidate takes over after a second, not after 15.
    Candidate b(server, clock, "b");
    EXPECT_TRUE(b.elector->try_acquire_or_renew()) << "an empty holder is free to take";
    EXPECT_TRUE(b.elector->is_leader());
    EXPECT_EQ(server.spec().lease_transitions, 1);
    EXPECT_EQ(a.leaders, std::vector<std::string>{"a"}) << "on_new_leader reported the holder";
}

TEST(LeaderElection, LosesLeadershipWhenRenewDeadlinePasses) {
    LeaseServer server;
    FakeClock clock;
    Candidate a(server, clock, "a");
    std::atomic<bool> api_down{false};
    a.http.on_send = [&](const HttpRequest& r) -> Result<HttpResponse> {
        if (api_down.load()) return Error(ErrorCode::Transient, "connection refused");
        return server.handle(r);
    };
    std::thread t([&] { a.elector->run(); });
    while (a.started.load() == 0) std::this_thread::yield();
    api_down = true;
    t.join();  // run() returns on its own: leadership lost
    EXPECT_EQ(a.stopped.load(), 1);
    EXPECT_FALSE(a.elector->is_leader());
}

}  // namespace
}  // namespace edgecert::k8s
