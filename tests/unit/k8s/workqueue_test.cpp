#include "edgecert/k8s/workqueue.h"

#include <gtest/gtest.h>

#include <thread>

namespace edgecert::k8s {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(WorkQueue, AddDedupes) {
    FakeClock clock;
    WorkQueue q(clock);
    q.add("a");
    q.add("b");
    q.add("a");
    EXPECT_EQ(q.len(), 2u);
    EXPECT_EQ(q.try_get().value(), "a");
    EXPECT_EQ(q.try_get().value(), "b");
    EXPECT_FALSE(q.try_get().has_value());
}

TEST(WorkQueue, KeyInProcessingIsNotHandedOutTwiceAndRequeuedOnDone) {
    FakeClock clock;
    WorkQueue q(clock);
    q.add("a");
    auto k = q.try_get();
    ASSERT_EQ(k.value(), "a");
    q.add("a");  // changed while being reconciled
    q.add("a");
    EXPECT_FALSE(q.try_get().has_value()) << "a is being processed";
    q.done("a");
    EXPECT_EQ(q.len(), 1u);
    EXPECT_EQ(q.try_get().value(), "a");
    q.done("a");
    EXPECT_FALSE(q.try_get().has_value()) << "not re-queued when not added meanwhile";
}

TEST(WorkQueue, RateLimitedBackoffPerKeyAndForget) {
    FakeClock clock;
    WorkQueue q(clock);
    std::vector<int64_t> delays;
    for (int i = 0; i < 5; ++i) {
        delays.push_back(q.when("a").count());
        q.add_rate_limited("a");
        ASSERT_FALSE(q.try_get().has_value()) << "not before its delay";
        clock.advance(milliseconds(delays.back() - 1));
        ASSERT_FALSE(q.try_get().has_value());
        clock.advance(milliseconds(1));
        ASSERT_EQ(q.try_get().value(), "a");
        q.done("a");
    }
    EXPECT_EQ(delays, (std::vector<int64_t>{5, 10, 20, 40, 80}));
    EXPECT_EQ(q.num_requeues("a"), 5);
    EXPECT_EQ(q.when("b").count(), 5) << "per key";
    q.forget("a");
    EXPECT_EQ(q.num_requeues("a"), 0);
    EXPECT_EQ(q.when("a").count(), 5);
    for (int i = 0; i < 40; ++i) q.add_rate_limited("c");
    EXPECT_EQ(q.when("c").count(), 1000 * 1000) << "capped at 1000 s";
}

TEST(WorkQueue, AddAfterKeepsTheEarliestAndDedupes) {
    FakeClock clock;
    WorkQueue q(clock);
    q.add_after("a", seconds(10));
    q.add_after("a", seconds(3));
    q.add_after("a", seconds(20));
    EXPECT_EQ(q.delayed_len(), 1u);
    clock.advance(seconds(3));
    EXPECT_EQ(q.try_get().value(), "a");
    q.done("a");
    clock.advance(seconds(30));
    EXPECT_FALSE(q.try_get().has_value()) << "the later schedules were folded into the first";
    q.add_after("b", milliseconds(0));
    EXPECT_EQ(q.try_get().value(), "b");
}

TEST(WorkQueue, DelayedKeyAlreadyQueuedIsNotDuplicated) {
    FakeClock clock;
    WorkQueue q(clock);
    q.add("a");
    q.add_after("a", seconds(1));
    clock.advance(seconds(1));
    EXPECT_EQ(q.try_get().value(), "a");
    EXPECT_FALSE(q.try_get().has_value());
}

TEST(WorkQueue, ShutdownWakesBlockedGetters) {
    FakeClock clock;
    WorkQueue q(clock);
    std::optional<std::string> got = "unset";
    std::thread t([&] { got = q.get(); });
    q.shutdown();
    t.join();
    EXPECT_FALSE(got.has_value());
    q.add("x");
    EXPECT_FALSE(q.try_get().has_value());
    EXPECT_TRUE(q.shutting_down());
}

TEST(WorkQueue, BlockingGetReturnsAddedKey) {
    FakeClock clock;
    WorkQueue q(clock);
    std::optional<std::string> got;
    std::thread t([&] { got = q.get(); });
    q.add("k");
    t.join();
    EXPECT_EQ(got.value(), "k");
}

TEST(WorkQueue, BlockingGetSeesDelayedKeyWhenFakeClockAdvances) {
    FakeClock clock;
    WorkQueue q(clock);
    q.add_after("k", seconds(60));
    std::optional<std::string> got;
    std::thread t([&] { got = q.get(milliseconds(5)); });
    clock.advance(seconds(60));
    t.join();
    EXPECT_EQ(got.value(), "k");
}

}  // namespace
}  // namespace edgecert::k8s
