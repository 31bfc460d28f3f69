// One Client shared by several threads: the nonce pool hands every nonce out once and the
// cached directory is fetched once (the fake fails the test on a reused nonce).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "acme_test_util.h"

namespace edgecert::acme {
namespace {

using namespace testutil;

TEST(AcmeConcurrency, SharedClientNeverReusesANonce) {
    AcmeEnv env;
    env.use_account();
    constexpr int kThreads = 4, kPerThread = 25;
    env.expect_directory();
    // How many threads find the pool empty is up to the scheduler.
    env.http.serve_nonces_at(kNonceUrl);
    for (int i = 0; i < kThreads * kPerThread; ++i)
        env.http.expect_post(kOrderUrl, 200,
                             order_json("valid", {"example.com"}, {}, kCertUrl).dump());
    // Warm the directory so only nonce fetches race.
    ASSERT_TRUE(env.client->directory().ok());
    std::atomic<int> ok{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t)
        ts.emplace_back([&] {
            for (int i = 0; i < kPerThread; ++i)
                if (env.client->get_order(kOrderUrl).ok()) ++ok;
        });
    for (auto& t : ts) t.join();
    EXPECT_EQ(ok.load(), kThreads * kPerThread);
    EXPECT_GE(env.http.nonces_served(), 1);
    EXPECT_LE(env.http.nonces_served(), kThreads);  // afterwards each response refills the pool
    EXPECT_TRUE(env.http.failures().empty());
}

}  // namespace
}  // namespace edgecert::acme
