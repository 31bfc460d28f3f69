#include "edgecert/k8s/leader_election.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace edgecert::k8s {

namespace {
constexpr double kJitterFactor = 1.2;  // client-go leaderelection.JitterFactor

int duration_seconds(std::chrono::milliseconds d) {
    return std::max<int>(1, static_cast<int>((d.count() + 999) / 1000));
}
}  // namespace

Result<std::unique_ptr<LeaderElector>> LeaderElector::create(Client& client,
                                                             LeaderElectionConfig cfg) {
    if (cfg.identity.empty())
        return Error(ErrorCode::InvalidConfig, "leader election: empty identity");
    if (cfg.lease_name.empty() || cfg.lease_namespace.empty())
        return Error(ErrorCode::InvalidConfig,
                     "leader election: lease name and namespace required");
    if (cfg.lease_duration <= cfg.renew_deadline)
        return Error(ErrorCode::InvalidConfig,
                     "leader election: lease duration must be greater than the renew deadline");
    if (cfg.renew_deadline.count() <= kJitterFactor * static_cast<double>(cfg.retry_period.count()))
        return Error(ErrorCode::InvalidConfig,
                     "leader election: renew deadline must be greater than 1.2 x retry period");
    if (cfg.retry_period.count() < 1)
        return Error(ErrorCode::InvalidConfig, "leader election: retry period must be positive");
    return std::unique_ptr<LeaderElector>(new LeaderElector(client, std::move(cfg)));
}

LeaderElector::LeaderElector(Client& client, LeaderElectionConfig cfg)
    : client_(client), cfg_(std::move(cfg)) {}

bool LeaderElector::is_leader() const {
    std::lock_guard l(mu_);
    return have_observed_ && observed_.holder_identity == cfg_.identity;
}

std::string LeaderElector::leader() const {
    std::lock_guard l(mu_);
    return observed_.holder_identity;
}

void LeaderElector::stop() {
    stop_.store(true);
}

void LeaderElector::wait(std::chrono::milliseconds d) {
    while (d.count() > 0 && !stop_.load()) {
        auto slice = std::min(d, std::chrono::milliseconds(50));
        client_.clock().sleep_for(slice);
        d -= slice;
    }
}

Result<json> LeaderElector::write(const json& lease, const LeaseSpec& spec) {
    json obj = lease;
    obj["spec"] = spec.to_json();
    return client_.update(resources::Lease, obj);
}

bool LeaderElector::try_acquire_or_renew() {
    auto now_wall = client_.clock().now();
    auto now = client_.clock().steady_now();

    // 1. Fast path: we lead and, by our own clock, the lease is still ours. PUT the cached copy
    //    (its RV): if someone else wrote meanwhile, the 409 sends us down the slow path.
    std::optional<json> cached;
    LeaseSpec spec;
    {
        std::lock_guard l(mu_);
        if (have_observed_ && observed_.holder_identity == cfg_.identity && lease_ &&
            observed_time_ + cfg_.lease_duration > now) {
            cached = lease_;
            spec = observed_;
        }
    }
    if (cached) {
        spec.renew_time = now_wall;
        auto r = write(*cached, spec);
        if (r.ok()) {
            std::lock_guard l(mu_);
            lease_ = *r;
            observed_ = spec;
            observed_time_ = now;
            return true;
        }
        spdlog::debug("leader election: fast renew failed: {}", r.error().message);
    }

    // 2. Read the lease; create it when it does not exist.
    auto got = client_.get(resources::Lease, cfg_.lease_namespace, cfg_.lease_name);
    if (!got.ok()) {
        if (got.error().code != ErrorCode::NotFound) {
            spdlog::warn("leader election: reading lease {}/{}: {}", cfg_.lease_namespace,
                         cfg_.lease_name, got.error().message);
            return false;
        }
        LeaseSpec mine;
        mine.holder_identity = cfg_.identity;
        mine.lease_duration_seconds = duration_seconds(cfg_.lease_duration);
        mine.acquire_time = mine.renew_time = now_wall;
        mine.lease_transitions = 0;
        json obj = {{"apiVersion", "coordination.k8s.io/v1"},
                    {"kind", "Lease"},
                    {"metadata", {{"name", cfg_.lease_name}, {"namespace", cfg_.lease_namespace}}},
                    {"spec", mine.to_json()}};
        auto c = client_.create(resources::Lease, cfg_.lease_namespace, obj);
        if (!c.ok()) return false;  // AlreadyExists: someone else was faster
        std::lock_guard l(mu_);
        lease_ = *c;
        observed_ = mine;
        have_observed_ = true;
        observed_time_ = now;
        return true;
    }

    // 3. Remember when the record last changed, by our clock.
    LeaseSpec remote =
        LeaseSpec::from_json(got->contains("spec") ? (*got)["spec"] : json::object());
    {
        std::lock_guard l(mu_);
        if (!have_observed_ || !(remote == observed_)) {
            observed_ = remote;
            have_observed_ = true;
            observed_time_ = now;
        }
        lease_ = *got;
    }

    // 4. Held by someone else and not expired (by local observation) → not ours.
    std::chrono::milliseconds remote_duration =
        std::chrono::seconds(remote.lease_duration_seconds.value_or(0));
    SteadyTime observed_at;
    {
        std::lock_guard l(mu_);
        observed_at = observed_time_;
    }
    if (!remote.holder_identity.empty() && remote.holder_identity != cfg_.identity &&
        observed_at + remote_duration > now)
        return false;

    // 5. Take or keep it. Leaders keep acquireTime and the transition count.
    LeaseSpec mine;
    mine.holder_identity = cfg_.identity;
    mine.lease_duration_seconds = duration_seconds(cfg_.lease_duration);
    mine.renew_time = now_wall;
    if (remote.holder_identity == cfg_.identity) {
        mine.acquire_time = remote.acquire_time ? remote.acquire_time : now_wall;
        mine.lease_transitions = remote.lease_transitions;
    } else {
        mine.acquire_time = now_wall;
        mine.lease_transitions = remote.lease_transitions + 1;
    }
    auto w = write(*got, mine);
    if (!w.ok()) {
        if (w.error().code != ErrorCode::Conflict)
            spdlog::warn("leader election: updating lease: {}", w.error().message);
        return false;  // 409: another candidate won this round
    }
    std::lock_guard l(mu_);
    lease_ = *w;
    observed_ = mine;
    observed_time_ = now;
    return true;
}

void LeaderElector::report_transition() {
    std::string holder;
    {
        std::lock_guard l(mu_);
        holder = observed_.holder_identity;
        if (holder == reported_leader_) return;
        reported_leader_ = holder;
    }
    if (!holder.empty() && cfg_.on_new_leader) cfg_.on_new_leader(holder);
}

bool LeaderElector::acquire() {
    while (!stop_.load()) {
        bool ok = try_acquire_or_renew();
        report_transition();
        if (ok) return true;
        std::uniform_real_distribution<double> u(0.0, 1.0);
        auto jittered = std::chrono::milliseconds(static_cast<int64_t>(
            static_cast<double>(cfg_.retry_period.count()) * (1.0 + kJitterFactor * u(rng_))));
        wait(jittered);
    }
    return false;
}

void LeaderElector::renew() {
    while (!stop_.load()) {
        // Retry every RetryPeriod until one renewal succeeds or RenewDeadline passes.
        auto deadline = client_.clock().steady_now() + cfg_.renew_deadline;
        bool renewed = false;
        while (!stop_.load()) {
            renewed = try_acquire_or_renew();
            report_transition();
            if (renewed || client_.clock().steady_now() + cfg_.retry_period > deadline) break;
            wait(cfg_.retry_period);
        }
        if (stop_.load()) return;
        if (!renewed) {
            spdlog::warn("leader election: failed to renew lease {}/{} within {} ms",
                         cfg_.lease_namespace, cfg_.lease_name, cfg_.renew_deadline.count());
            std::lock_guard l(mu_);
            // We no longer claim it; the next holder will show up in the record.
            if (observed_.holder_identity == cfg_.identity) have_observed_ = false;
            return;
        }
        wait(cfg_.retry_period);
    }
}

void LeaderElector::run() {
    if (!acquire()) return;
    spdlog::info("leader election: {} acquired lease {}/{}", cfg_.identity, cfg_.lease_namespace,
                 cfg_.lease_name);
    if (cfg_.on_started_leading) cfg_.on_started_leading();
    renew();
    if (stop_.load() && cfg_.release_on_cancel) {
        auto r = release();
        if (!r.ok()) spdlog::warn("leader election: release failed: {}", r.error().message);
    }
    if (cfg_.on_stopped_leading) cfg_.on_stopped_leading();
}

Status LeaderElector::release() {
    std::optional<json> cached;
    LeaseSpec spec;
    {
        std::lock_guard l(mu_);
        if (!have_observed_ || observed_.holder_identity != cfg_.identity || !lease_)
            return ok_status();
        cached = lease_;
        spec = observed_;
    }
    auto now = client_.clock().now();
    LeaseSpec released;
    released.holder_identity = "";
    released.lease_duration_seconds = 1;
    released.acquire_time = now;
    released.renew_time = now;
    released.lease_transitions = spec.lease_transitions;
    auto r = write(*cached, released);
    if (!r.ok()) return r.error();
    std::lock_guard l(mu_);
    lease_ = *r;
    observed_ = released;
    observed_time_ = client_.clock().steady_now();
    return ok_status();
}

}  // namespace edgecert::k8s
