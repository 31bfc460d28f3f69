#pragma once
// Leader election on a coordination.k8s.io/v1 Lease with client-go's algorithm
// (tools/leaderelection/leaderelection.go): acquire by retrying every RetryPeriod (jittered);
// renew every RetryPeriod, giving up leadership when no renewal succeeded within RenewDeadline.
// Expiry is judged by the LOCAL time at which we last saw the lease record change, never by the
// remote renewTime, so clock skew between candidates does not matter. Writes are PUTs carrying
// the resourceVersion just read: of two contenders only one wins (the other gets 409 and tries
// again next period). Without fencing this does not guarantee a single active leader at every
// instant; it guarantees one lease holder.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "edgecert/k8s/client.h"
#include "edgecert/k8s/models.h"

namespace edgecert::k8s {

struct LeaderElectionConfig {
    std::string lease_namespace;
    std::string lease_name;
    std::string identity;  // unique per candidate (e.g. pod name + random suffix)
    // client-go defaults for core components.
    std::chrono::milliseconds lease_duration{15'000};
    std::chrono::milliseconds renew_deadline{10'000};
    std::chrono::milliseconds retry_period{2'000};
    // On stop(), write an empty holder with leaseDurationSeconds=1 so others take over at once.
    bool release_on_cancel = true;

    std::function<void()> on_started_leading;
    std::function<void()> on_stopped_leading;  // only after on_started_leading
    std::function<void(const std::string& identity)> on_new_leader;
};

class LeaderElector {
  public:
    // Checks LeaseDuration > RenewDeadline > 1.2 × RetryPeriod (client-go's JitterFactor) and a
    // non-empty identity and lease name.
    static Result<std::unique_ptr<LeaderElector>> create(Client& client, LeaderElectionConfig cfg);

    // Blocks: acquires, leads until leadership is lost or stop() is called, then returns
    // (after releasing the lease if configured). Run it on its own thread.
    void run();
    void stop();

    bool is_leader() const;
    std::string leader() const;  // the last observed holder

    // One attempt of client-go's tryAcquireOrRenew (public for tests).
    bool try_acquire_or_renew();
    // Gives the lease up if we hold it.
    Status release();

  private:
    LeaderElector(Client& client, LeaderElectionConfig cfg);
    bool acquire();
    void renew();
    void wait(std::chrono::milliseconds d);
    void report_transition();
    Result<json> write(const json& lease, const LeaseSpec& spec);

    Client& client_;
    LeaderElectionConfig cfg_;
    std::mt19937_64 rng_{std::random_device{}()};
    std::atomic<bool> stop_{false};
    mutable std::mutex mu_;
    std::optional<json> lease_;  // last lease object read or written (carries its RV)
    LeaseSpec observed_;         // its spec
    bool have_observed_ = false;
    SteadyTime observed_time_{};  // local time the record last changed
    std::string reported_leader_;
};

}  // namespace edgecert::k8s
