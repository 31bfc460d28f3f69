#include "controller/runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace edgecert::controller {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A scripted reconcile: per key, the results to return in order (the last one repeats).
struct Script {
    std::mutex mu;
    std::map<std::string, std::vector<Result<Requeue>>> plan;
    std::map<std::string, int> calls;

    ReconcileFn fn() {
        return [this](const std::string& key) -> Result<Requeue> {
            std::lock_guard l(mu);
            int n = calls[key]++;
            auto& p = plan[key];
            if (p.empty()) return Requeue::done();
            return p[std::min<size_t>(n, p.size() - 1)];
        };
    }
    int count(const std::string& key) {
        std::lock_guard l(mu);
        return calls[key];
    }
};

Runner::Options opts(const char* name) {
    Runner::Options o;
    o.name = name;
    return o;
}

TEST(Runner, SuccessForgetsAndDoesNotRequeue) {
    FakeClock clock;
    metrics::Registry reg;
    Script s;
    Runner r(opts("t"), clock, reg, s.fn());
    r.enqueue("Ingress/default/a");
    r.enqueue("Ingress/default/a");  // deduplicated
    EXPECT_TRUE(r.process_one());
    EXPECT_FALSE(r.process_one());
    clock.advance(seconds(3600));
    EXPECT_FALSE(r.process_one()) << "a successful key is not reconciled again by itself";
    EXPECT_EQ(s.count("Ingress/default/a"), 1);
    EXPECT_EQ(r.stats().success, 1u);
    EXPECT_EQ(r.queue().num_requeues("Ingress/default/a"), 0);
}

TEST(Runner, TransientErrorBacksOffExponentiallyThenForgets) {
    FakeClock clock;
    metrics::Registry reg;
    Script s;
    s.plan["k"] = {Error(ErrorCode::Transient, "apiserver 500"),
                   Error(ErrorCode::Conflict, "stale"), Requeue::done()};
    Runner r(opts("t"), clock, reg, s.fn());
    r.enqueue("k");
    ASSERT_TRUE(r.process_one());
    EXPECT_EQ(r.queue().num_requeues("k"), 1);
    EXPECT_FALSE(r.process_one()) << "not before its backoff (5 ms)";
    clock.advance(milliseconds(4));
    EXPECT_FALSE(r.process_one());
    clock.advance(milliseconds(1));
    ASSERT_TRUE(r.process_one()) << "due after 5 ms";
    EXPECT_EQ(r.queue().num_requeues("k"), 2);
    clock.advance(milliseconds(9));
    EXPECT_FALSE(r.process_one()) << "second backoff doubles to 10 ms";
    clock.advance(milliseconds(1));
    ASSERT_TRUE(r.process_one());
    EXPECT_EQ(r.queue().num_requeues("k"), 0) << "success forgets the failures";
    EXPECT_EQ(s.count("k"), 3);
    auto st = r.stats();
    EXPECT_EQ(st.error, 2u);
    EXPECT_EQ(st.success, 1u);
}

TEST(Runner, InvalidConfigIsNotRetriedUntilTheObjectChanges) {
    FakeClock clock;
    metrics::Registry reg;
    Script s;
    s.plan["bad"] = {Error(ErrorCode::InvalidConfig, "issuer and cluster-issuer both set")};
    Runner r(opts("t"), clock, reg, s.fn());
    r.enqueue("bad");
    ASSERT_TRUE(r.process_one());
    clock.advance(seconds(24 * 3600));
    EXPECT_FALSE(r.process_one()) << "no retry storm for a bad spec";
    EXPECT_EQ(r.queue().delayed_len(), 0u);
    EXPECT_EQ(r.stats().invalid, 1u);
    r.enqueue("bad");  // an informer update: the object changed
    EXPECT_TRUE(r.process_one());
    EXPECT_EQ(s.count("bad"), 2);
}

TEST(Runner, RequeueAfterSchedulesOnTheClock) {
    FakeClock clock;
    metrics::Registry reg;
    Script s;
    s.plan["renew"] = {Requeue::in(seconds(30)), Requeue::done()};
    Runner r(opts("t"), clock, reg, s.fn());
    r.enqueue("renew");
    ASSERT_TRUE(r.process_one());
    EXPECT_EQ(r.queue().delayed_len(), 1u);
    clock.advance(seconds(29));
    EXPECT_FALSE(r.process_one());
    clock.advance(seconds(1));
    EXPECT_TRUE(r.process_one());
    EXPECT_EQ(r.stats().requeue, 1u);
    EXPECT_EQ(r.stats().success, 1u);
}

TEST(Runner, RetryAfterFromTheServerIsHonoured) {
    FakeClock clock;
    metrics::Registry reg;
    Script s;
    Error throttled(ErrorCode::RateLimited, "429");
    throttled.retry_after = seconds(7);
    s.plan["k"] = {throttled, Requeue::done()};
    Runner r(opts("t"), clock, reg, s.fn());
    r.enqueue("k");
    ASSERT_TRUE(r.process_one());
    clock.advance(milliseconds(6999));
    EXPECT_FALSE(r.process_one()) << "not at the 5 ms backoff step: the server asked for 7 s";
    clock.advance(milliseconds(1));
    EXPECT_TRUE(r.process_one());
}

TEST(Runner, ExceptionInReconcileIsATransientError) {
    FakeClock clock;
    metrics::Registry reg;
    int calls = 0;
    Runner r(opts("t"), clock, reg, [&](const std::string&) -> Result<Requeue> {
        if (++calls == 1) throw std::runtime_error("bug");
        return Requeue::done();
    });
    r.enqueue("k");
    ASSERT_TRUE(r.process_one());
    EXPECT_EQ(r.stats().error, 1u);
    clock.advance(milliseconds(5));
    EXPECT_TRUE(r.process_one());
    EXPECT_EQ(calls, 2);
}

TEST(Runner, MetricsAreRendered) {
    FakeClock clock;
    metrics::Registry reg;
    Script s;
    s.plan["x"] = {Error(ErrorCode::InvalidConfig, "bad")};
    Runner r(opts("shim"), clock, reg, s.fn());
    r.enqueue("a");
    r.enqueue("b");
    r.enqueue("x");
    std::string before = reg.render();
    EXPECT_NE(before.find("edgecert_controller_workqueue_depth{controller=\"shim\"} 3"),
              std::string::npos)
        << before;
    while (r.process_one()) {
    }
    std::string out = reg.render();
    EXPECT_NE(out.find("edgecert_controller_reconcile_total{controller=\"shim\",result=\"success\"} 2"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("edgecert_controller_reconcile_total{controller=\"shim\",result=\"invalid\"} 1"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("edgecert_controller_workqueue_depth{controller=\"shim\"} 0"),
              std::string::npos)
        << out;
}

// Polls (real time, bounded) for a condition the worker threads make true.
template <class F>
bool eventually(F&& pred, milliseconds timeout = milliseconds(10'000)) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::yield();
    }
    return pred();
}

TEST(Runner, WorkersProcessConcurrentlyButNeverTheSameKeyTwiceAtOnce) {
    RealClock& clock = RealClock::instance();
    metrics::Registry reg;
    std::mutex mu;
    std::set<std::string> in_flight;
    std::atomic<int> overlaps{0}, total{0};
    std::atomic<bool> release{false};
    auto o = opts("workers");
    o.workers = 4;
    o.poll = milliseconds(5);
    Runner r(o, clock, reg, [&](const std::string& key) -> Result<Requeue> {
        {
            std::lock_guard l(mu);
            if (!in_flight.insert(key).second) ++overlaps;
        }
        // The first reconcile of "slow" holds its worker until released, while the key is
        // enqueued again: the queue must hold the second run back until this one is done.
        if (key == "slow") {
            while (!release.load()) std::this_thread::yield();
        }
        {
            std::lock_guard l(mu);
            in_flight.erase(key);
        }
        ++total;
        return Requeue::done();
    });
    r.enqueue("slow");
    r.start();
    EXPECT_TRUE(r.running());
    ASSERT_TRUE(eventually([&] {
        std::lock_guard l(mu);
        return in_flight.count("slow") == 1;
    }));
    r.enqueue("slow");  // dirty while processing
    for (int i = 0; i < 50; ++i) r.enqueue("k" + std::to_string(i));
    ASSERT_TRUE(eventually([&] { return total.load() == 50; })) << total.load();
    release = true;
    ASSERT_TRUE(eventually([&] { return total.load() == 52; })) << total.load();
    EXPECT_EQ(overlaps.load(), 0);
    r.stop();
    EXPECT_FALSE(r.running());
    r.stop();  // idempotent
    r.enqueue("after-stop");
    EXPECT_FALSE(r.process_one()) << "a stopped runner takes no more work";
}

TEST(Runner, StopWaitsForInFlightReconcile) {
    RealClock& clock = RealClock::instance();
    metrics::Registry reg;
    std::atomic<bool> entered{false}, finished{false}, release{false};
    auto o = opts("stop");
    o.poll = milliseconds(5);
    Runner r(o, clock, reg, [&](const std::string&) -> Result<Requeue> {
        entered = true;
        while (!release.load()) std::this_thread::yield();
        finished = true;
        return Requeue::done();
    });
    r.enqueue("k");
    r.start();
    ASSERT_TRUE(eventually([&] { return entered.load(); }));
    std::thread stopper([&] { r.stop(); });
    release = true;
    stopper.join();
    EXPECT_TRUE(finished.load()) << "stop() returned only after the reconcile finished";
}

}  // namespace
}  // namespace edgecert::controller
