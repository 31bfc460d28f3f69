#pragma once
// Admin HTTP server: /healthz, /readyz, /metrics (Prometheus text 0.0.4), /version, plus GET
// endpoints other components add (e.g. /debug/certs). Implemented on cpprestsdk's http_listener,
// which stays behind this header (DESIGN.md convention 11): nothing here includes cpprest, so
// callers never see its `U` macro or its exceptions.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "edgecert/base/metrics.h"
#include "edgecert/base/result.h"

namespace edgecert::platform {

class AdminServer {
public:
    struct Options {
        // host:port, host an IPv4 address or a name (no IPv6 literals: cpprestsdk cannot parse
        // them); port 0 picks a free port.
        std::string listen = "127.0.0.1:9402";
    };
    // Called on a listener thread for GET <path>. status defaults to 200 and content_type to
    // "text/plain; charset=utf-8"; the handler may change both. `query` is the raw query string
    // without '?'.
    using Handler = std::function<void(const std::string& path, const std::string& query,
                                       int& status, std::string& content_type, std::string& body)>;

    // Validates the options; nothing is bound until start(). `ready` is called on each /readyz,
    // from listener threads (possibly several at once): it must be thread-safe and quick.
    // Also registers the standard process_* collectors on `registry` (read from /proc/self at
    // scrape time only); they are removed again by the destructor.
    static Result<std::unique_ptr<AdminServer>> create(Options opts, metrics::Registry& registry,
                                                       std::function<bool()> ready);
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // Extra GET endpoint (exact path match; takes precedence over the built-in paths). May be
    // called before or after start(); handlers run on listener threads.
    void add_handler(const std::string& path, Handler h);

    // Binds and starts serving; fails (Transient) if the address is taken or cannot be bound.
    Status start();
    // The bound port (after start(), also when 0 was requested); 0 before start().
    int port() const;
    // Stops listening; idempotent. In-flight requests finish first.
    void stop();

private:
    struct Impl;
    AdminServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Registers process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
// process_start_time_seconds (and process_virtual_memory_bytes, process_max_fds) as collectors
// reading /proc/self at scrape time. Returns the collector ids (for remove_collector).
std::vector<int> register_process_collectors(metrics::Registry& registry);

}  // namespace edgecert::platform
