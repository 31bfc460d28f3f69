#pragma once
// Clock: time is passed in (convention 6). Protocol code waits through Clock::sleep_for so a
// FakeClock can run a whole order flow, with its polling and Retry-After, in no real time.
#include <atomic>
#include <chrono>
#include <ctime>
#include <string>
#include <mutex>
#include <thread>

namespace edgecert {

using SystemTime = std::chrono::system_clock::time_point;

// RFC 3339 UTC with whole seconds ("2026-11-28T21:00:00Z"): what logs, status and metadata show.
// The one formatter: acme::format_rfc3339 and k8s::format_time are this.
inline std::string rfc3339(SystemTime t) {
    std::time_t tt = std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}
using SteadyTime = std::chrono::steady_clock::time_point;

// The earliest and latest whole seconds SystemTime holds (system_clock counts nanoseconds in 64
// bits: about 1677-09-21 to 2262-04-11). Whole seconds, so flooring and formatting them is exact.
inline constexpr int64_t kSystemTimeMinUnix =
    std::chrono::duration_cast<std::chrono::seconds>(SystemTime::min().time_since_epoch()).count() + 1;
inline constexpr int64_t kSystemTimeMaxUnix =
    std::chrono::duration_cast<std::chrono::seconds>(SystemTime::max().time_since_epoch()).count() - 1;
inline constexpr SystemTime kSystemTimeMin{std::chrono::seconds(kSystemTimeMinUnix)};
inline constexpr SystemTime kSystemTimeMax{std::chrono::seconds(kSystemTimeMaxUnix)};

// Seconds since the epoch as a SystemTime; anything outside kSystemTimeMin..kSystemTimeMax
// saturates instead of overflowing (undefined behaviour). Wire formats carry such years:
// "9999-12-31T23:59:59Z" is a common "never", RFC 5280 §4.1.2.5 uses 99991231235959Z.
inline SystemTime system_time_from_unix(int64_t secs) {
    if (secs <= kSystemTimeMinUnix) return kSystemTimeMin;
    if (secs >= kSystemTimeMaxUnix) return kSystemTimeMax;
    return SystemTime(std::chrono::seconds(secs));
}

class Clock {
public:
    virtual ~Clock() = default;
    virtual SystemTime now() const = 0;          // wall clock: certificate validity, ARI windows
    virtual SteadyTime steady_now() const = 0;   // monotonic: deadlines, timeouts, backoff
    virtual void sleep_for(std::chrono::milliseconds d) = 0;
};

class RealClock final : public Clock {
public:
    SystemTime now() const override { return std::chrono::system_clock::now(); }
    SteadyTime steady_now() const override { return std::chrono::steady_clock::now(); }
    void sleep_for(std::chrono::milliseconds d) override { std::this_thread::sleep_for(d); }
    static RealClock& instance() {
        static RealClock c;
        return c;
    }
};

// Test clock: sleep_for advances both clocks instantly and records the total slept.
class FakeClock final : public Clock {
public:
    explicit FakeClock(SystemTime start = SystemTime(std::chrono::seconds(1'700'000'000)))
        : wall_(start), mono_(SteadyTime(std::chrono::hours(1))) {}
    SystemTime now() const override {
        std::lock_guard l(mu_);
        return wall_;
    }
    SteadyTime steady_now() const override {
        std::lock_guard l(mu_);
        return mono_;
    }
    void sleep_for(std::chrono::milliseconds d) override { advance(d); }
    void advance(std::chrono::milliseconds d) {
        std::lock_guard l(mu_);
        wall_ += d;
        mono_ += d;
        slept_ += d;
    }
    void set_now(SystemTime t) {
        std::lock_guard l(mu_);
        wall_ = t;
    }
    std::chrono::milliseconds total_slept() const {
        std::lock_guard l(mu_);
        return slept_;
    }

private:
    mutable std::mutex mu_;
    SystemTime wall_;
    SteadyTime mono_;
    std::chrono::milliseconds slept_{0};
};

}  // namespace edgecert
