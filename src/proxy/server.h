#pragma once
// The data plane: N workers, each one thread with its own epoll loop and its own SO_REUSEPORT
// listeners (TLS and plain HTTP). No blocking call on a loop: upstream addresses are resolved
// once at start-up, certificates come as immutable snapshots, challenge files are tiny local reads.
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "edgecert/base/result.h"
#include "proxy/proxy_protocol.h"
#include "proxy/upstream_h2.h"
#include "tls/cert_snapshot.h"
#include "tls/challenge_source.h"
#include "proxy/ktls.h"
#include "tls/tls_context.h"

namespace edgecert::proxy {

enum class HttpMode { Redirect, Passthrough };

// Kernel TLS for what the terminator sends (docs/tls-policy.md#record-layer-and-ktls).
// Off: OpenSSL encrypts every record. Auto: the kernel encrypts after the handshake when it
// offers kTLS and the cipher suite allows it, else OpenSSL does (one log line says which).
// On: like Auto, but start() fails when the kernel does not offer kTLS.
enum class KtlsMode { Off, Auto, On };

struct ServerOptions {
    std::string listen = "0.0.0.0:443";
    std::string http_listen = "0.0.0.0:80";  // empty: no plain-HTTP listener
    std::string upstream;                    // HOST:PORT, resolved once at start
    int workers = 1;
    // What the upstream speaks. H2c: it accepts HTTP/2 with prior knowledge (and HTTP/1.1) on
    // the forwarded connection, so "h2" in the TLS ALPN list may be offered (see H2Gate).
    UpstreamProtocol upstream_protocol = UpstreamProtocol::Http1;
    // Optional HOST:PORT for the connections that negotiated h2, when the routing proxy has a
    // separate HTTP/2-only port (nginx < 1.25.1 `listen ... http2`, HAProxy `proto h2`). Set, h2
    // is offered (gated like H2c) and those connections go there; the rest go to `upstream`.
    std::string h2_upstream;
    // Off by default: a plain HTTP/1.1 server reads a PROXY header as a bad request.
    ProxyProtocol proxy_protocol = ProxyProtocol::None;
    HttpMode http_mode = HttpMode::Redirect;
    std::chrono::milliseconds handshake_timeout{10'000};
    std::chrono::milliseconds idle_timeout{300'000};
    std::chrono::milliseconds drain_timeout{30'000};
    // Across all workers. At the limit a connection that has sent no request byte yet is closed
    // to make room (the one silent longest after its handshake, else the oldest mid-handshake
    // once it has had a quarter of handshake_timeout); when there is none, new connections wait
    // in the listen queue until there is. Workers admitting at the same moment can exceed it by
    // one connection each.
    // Lowered at start() if the open-files limit cannot hold two sockets per connection.
    long max_connections = 50'000;
    size_t buffer_size = 16 * 1024; // per direction, allocated only while data is in flight
    KtlsMode ktls = KtlsMode::Off;
};

// Counters, one cache line per worker (no sharing on the hot path); summed by stats().
struct alignas(64) WorkerStats {
    std::atomic<uint64_t> hs_ok{0}, hs_failed{0}, hs_timeout{0};
    std::atomic<uint64_t> tls_conns_total{0}, http_conns_total{0};
    std::atomic<int64_t> tls_conns_open{0}, http_conns_open{0};
    std::atomic<uint64_t> bytes_in{0}, bytes_out{0};
    std::atomic<uint64_t> upstream_errors{0}, idle_timeouts{0};
    std::atomic<uint64_t> head_timeouts{0};  // plain-HTTP request head not complete in time
    std::atomic<uint64_t> evicted{0};        // closed at max-connections to admit a new one
    std::atomic<uint64_t> accept_paused{0};  // accept stopped for 100 ms: out of file descriptors
    std::atomic<uint64_t> accept_waits_full{0};  // accept stopped for 10 ms: full, nothing to evict
    std::atomic<uint64_t> http01_served{0}, tls_alpn01_served{0};
    std::atomic<uint64_t> h2_http11_required{0};  // h2 clients told to retry over HTTP/1.1
    std::atomic<uint64_t> upstream_502{0};        // HTTP/1.1 clients answered 502 (upstream down)
    // Kernel TLS: handshakes after which the kernel encrypted what we send, and those that
    // stayed in user space although kTLS was on (cipher suite, or the kernel refused the keys);
    // bytes spliced from the upstream to such a client without a copy through user space.
    std::atomic<uint64_t> ktls_tx_conns{0}, ktls_tx_declined{0}, ktls_spliced_bytes{0};
};

struct StatsTotals {
    uint64_t hs_ok = 0, hs_failed = 0, hs_timeout = 0, tls_conns_total = 0, http_conns_total = 0;
    int64_t tls_conns_open = 0, http_conns_open = 0;
    uint64_t bytes_in = 0, bytes_out = 0, upstream_errors = 0, idle_timeouts = 0;
    uint64_t head_timeouts = 0, evicted = 0, accept_paused = 0, accept_waits_full = 0;
    uint64_t http01_served = 0, tls_alpn01_served = 0;
    uint64_t h2_http11_required = 0, upstream_502 = 0;
    uint64_t ktls_tx_conns = 0, ktls_tx_declined = 0, ktls_spliced_bytes = 0;
};

class Worker;

class Server {
public:
    static Result<std::unique_ptr<Server>> create(ServerOptions opts, tls::TlsContext& tls,
                                                  tls::SnapshotHolder& snapshots,
                                                  const tls::ChallengeSource* challenges);
    ~Server();

    // Binds every listener (so a bad address fails here, not in a thread), then starts workers.
    Status start();
    // SIGTERM: stop accepting, let connections finish up to drain_timeout, then close the rest.
    void begin_drain();
    // Blocks until every worker has exited or `d` passed; true if all exited.
    bool wait_for(std::chrono::milliseconds d);
    void stop();  // immediate: close everything

    int tls_port() const { return tls_port_; }
    long max_connections() const { return opts_.max_connections; }
    int http_port() const { return http_port_; }
    StatsTotals stats() const;
    // Null unless upstream_protocol is H2c (and there is a TLS listener).
    const H2Gate* h2_gate() const { return h2_gate_.get(); }
    // What the kernel offers for TLS records (probed in start()), and whether the workers hand
    // the send keys to it (--ktls auto/on on a kernel that offers it).
    const KtlsSupport& ktls() const { return ktls_; }
    bool ktls_tx() const { return ktls_tx_; }

private:
    Server(ServerOptions opts, tls::TlsContext& tls, tls::SnapshotHolder& snapshots,
           const tls::ChallengeSource* challenges);
    ServerOptions opts_;
    tls::TlsContext& tls_;
    tls::SnapshotHolder& snapshots_;
    const tls::ChallengeSource* challenges_;
    sockaddr_storage upstream_{}, h2_upstream_{};
    socklen_t upstream_len_ = 0, h2_upstream_len_ = 0;
    int tls_port_ = 0, http_port_ = 0;
    std::atomic<long> open_conns_{0};
    std::vector<std::unique_ptr<WorkerStats>> stats_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<std::thread> threads_;
    std::atomic<int> running_{0};
    std::unique_ptr<H2Gate> h2_gate_;
    KtlsSupport ktls_;
    bool ktls_tx_ = false;
    friend class Worker;
};

// "host:port" → sockaddr (numeric hosts, names via getaddrinfo; call only at start-up).
Result<std::pair<sockaddr_storage, socklen_t>> resolve_host_port(const std::string& hp, bool passive);

}  // namespace edgecert::proxy
