#include "proxy/server.h"

#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>

#include "proxy/worker.h"

namespace edgecert::proxy {
namespace {

// One SO_REUSEPORT listener. port 0 asks the kernel; the first socket's port is then reused
// for every other worker's socket.
Result<int> make_listener(const sockaddr_storage& addr, socklen_t len, bool defer_accept) {
    int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error(ErrorCode::Permanent, std::string("socket: ") + strerror(errno));
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    // Inherited by accepted sockets: saves one setsockopt per connection.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (defer_accept) {
        // Wake us only when the first bytes (ClientHello / request head) have arrived.
        int secs = 5;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof secs);
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 || ::listen(fd, 4096) != 0) {
        std::string e = strerror(errno);
        ::close(fd);
        return Error(ErrorCode::InvalidConfig, "bind/listen: " + e);
    }
    return fd;
}

int bound_port(int fd) {
    sockaddr_storage a{};
    socklen_t l = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
    if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
}

void set_port(sockaddr_storage& a, int port) {
    if (a.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&a)->sin_port = htons(static_cast<uint16_t>(port));
    else reinterpret_cast<sockaddr_in6*>(&a)->sin6_port = htons(static_cast<uint16_t>(port));
}

bool is_wildcard(const sockaddr_storage& a) {
    if (a.ss_family == AF_INET) return reinterpret_cast<const sockaddr_in*>(&a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&a)->sin6_addr);
}

}  // namespace

Result<std::pair<sockaddr_storage, socklen_t>> resolve_host_port(const std::string& hp, bool passive) {
    std::string host, port;
    if (!hp.empty() && hp[0] == '[') {
        auto close = hp.find(']');
        if (close == std::string::npos || close + 1 >= hp.size() || hp[close + 1] != ':')
            return Error(ErrorCode::InvalidConfig, "bad address '" + hp + "' (want [v6]:port)");
        host = hp.substr(1, close - 1);
        port = hp.substr(close + 2);
    } else {
        auto colon = hp.rfind(':');
        if (colon == std::string::npos) return Error(ErrorCode::InvalidConfig, "bad address '" + hp + "' (want host:port)");
        host = hp.substr(0, colon);
        port = hp.substr(colon + 1);
    }
    if (host.empty() || host == "*") host = passive ? "0.0.0.0" : "127.0.0.1";
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || !res) return Error(ErrorCode::InvalidConfig, "cannot resolve '" + hp + "': " + gai_strerror(rc));
    std::pair<sockaddr_storage, socklen_t> out{};
    std::memcpy(&out.first, res->ai_addr, res->ai_addrlen);
    out.second = res->ai_addrlen;
    freeaddrinfo(res);
    return out;
}

Server::Server(ServerOptions opts, tls::TlsContext& tls, tls::SnapshotHolder& snapshots,
               const tls::ChallengeSource* challenges)
    : opts_(std::move(opts)), tls_(tls), snapshots_(snapshots), challenges_(challenges) {}

Server::~Server() { stop(); }

Result<std::unique_ptr<Server>> Server::create(ServerOptions opts, tls::TlsContext& tls,
                                               tls::SnapshotHolder& snapshots, const tls::ChallengeSource* challenges) {
    if (opts.workers < 1 || opts.workers > 256) return Error(ErrorCode::InvalidConfig, "--workers must be 1..256");
    if (opts.buffer_size < 4096) return Error(ErrorCode::InvalidConfig, "buffer size too small");
    bool need_upstream = !opts.listen.empty() || opts.http_mode == HttpMode::Passthrough;
    std::unique_ptr<Server> s(new Server(std::move(opts), tls, snapshots, challenges));
    if (need_upstream) {
        if (s->opts_.upstream.empty()) return Error(ErrorCode::InvalidConfig, "--upstream is required");
        EC_TRY_ASSIGN(auto ua, resolve_host_port(s->opts_.upstream, false));
        s->upstream_ = ua.first;
        s->upstream_len_ = ua.second;
    }
    if (!s->opts_.h2_upstream.empty()) {
        EC_TRY_ASSIGN(auto ua, resolve_host_port(s->opts_.h2_upstream, false));
        s->h2_upstream_ = ua.first;
        s->h2_upstream_len_ = ua.second;
    } else {
        s->h2_upstream_ = s->upstream_;
        s->h2_upstream_len_ = s->upstream_len_;
    }
    bool offer_h2 = s->opts_.upstream_protocol == UpstreamProtocol::H2c || !s->opts_.h2_upstream.empty();
    if (offer_h2 && !s->opts_.listen.empty()) {
        H2Gate::Options go;
        go.upstream_name = s->opts_.h2_upstream.empty() ? s->opts_.upstream : s->opts_.h2_upstream;
        go.addr = s->h2_upstream_;
        go.addr_len = s->h2_upstream_len_;
        go.proxy_protocol = s->opts_.proxy_protocol;
        tls::TlsContext* tc = &s->tls_;
        tc->set_offer_h2(false);  // until the first probe says the upstream answers h2
        s->h2_gate_ = std::make_unique<H2Gate>(go, [tc](bool on) { tc->set_offer_h2(on); });
    }
    return s;
}

// Each proxied connection holds two sockets. A limit the process cannot reach would end in
// EMFILE at accept() instead of in the documented behaviour at max-connections, so the soft
// open-files limit is raised to the hard one (HAProxy does the same) and max-connections
// lowered to what fits.
static void fit_connections_to_fd_limit(long& max_connections, int workers) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlimit want = rl;
        want.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
    }
    if (rl.rlim_cur == RLIM_INFINITY) return;
    // Listeners, epoll and eventfds, the admin server, certificate reloads, logs: a margin.
    const long reserve = 64 + 4L * workers;
    const long fit = (static_cast<long>(rl.rlim_cur) - reserve) / 2;
    if (fit < max_connections) {
        spdlog::warn("terminator: max-connections lowered from {} to {}: the open-files limit is {} "
                     "(ulimit -n / LimitNOFILE) and each proxied connection needs two",
                     max_connections, std::max(1L, fit), static_cast<long>(rl.rlim_cur));
        max_connections = std::max(1L, fit);
    }
}

Status Server::start() {
    fit_connections_to_fd_limit(opts_.max_connections, opts_.workers);
    if (!opts_.listen.empty()) {
        ktls_ = probe_ktls();
        if (opts_.ktls == KtlsMode::On && !ktls_.kernel)
            return Error(ErrorCode::InvalidConfig,
                         "--ktls on: kTLS is not available on this kernel (" + ktls_.detail +
                             "); use --ktls auto to fall back to user space");
        ktls_tx_ = opts_.ktls != KtlsMode::Off && ktls_.kernel;
    }
    std::vector<int> tls_fds, http_fds;
    auto cleanup = [&] {
        for (int fd : tls_fds) ::close(fd);
        for (int fd : http_fds) ::close(fd);
    };
    sockaddr_storage tls_addr{}, http_addr{};
    socklen_t tls_len = 0, http_len = 0;
    if (!opts_.listen.empty()) {
        EC_TRY_ASSIGN(auto a, resolve_host_port(opts_.listen, true));
        tls_addr = a.first;
        tls_len = a.second;
    }
    if (!opts_.http_listen.empty()) {
        EC_TRY_ASSIGN(auto a, resolve_host_port(opts_.http_listen, true));
        http_addr = a.first;
        http_len = a.second;
    }
    for (int i = 0; i < opts_.workers; ++i) {
        if (tls_len) {
            auto fd = make_listener(tls_addr, tls_len, true);
            if (!fd) {
                cleanup();
                return fd.error().with_context("--listen " + opts_.listen);
            }
            tls_fds.push_back(*fd);
            if (i == 0) {
                tls_port_ = bound_port(*fd);
                set_port(tls_addr, tls_port_);
            }
        }
        if (http_len) {
            auto fd = make_listener(http_addr, http_len, true);
            if (!fd) {
                cleanup();
                return fd.error().with_context("--http-listen " + opts_.http_listen);
            }
            http_fds.push_back(*fd);
            if (i == 0) {
                http_port_ = bound_port(*fd);
                set_port(http_addr, http_port_);
            }
        }
    }
    for (int i = 0; i < opts_.workers; ++i) {
        stats_.push_back(std::make_unique<WorkerStats>());
        auto w = std::make_unique<Worker>(*this, i, *stats_.back());
        if (tls_len && !is_wildcard(tls_addr)) {
            w->tls_local_ = tls_addr;
            w->tls_local_known_ = true;
        }
        if (http_len && !is_wildcard(http_addr)) {
            w->http_local_ = http_addr;
            w->http_local_known_ = true;
        }
        int tfd = tls_len ? tls_fds[static_cast<size_t>(i)] : -1;
        int hfd = http_len ? http_fds[static_cast<size_t>(i)] : -1;
        tls_fds.size() > static_cast<size_t>(i) ? tls_fds[static_cast<size_t>(i)] = -1 : 0;
        http_fds.size() > static_cast<size_t>(i) ? http_fds[static_cast<size_t>(i)] = -1 : 0;
        auto st = w->init(tfd, hfd);
        if (!st) {
            cleanup();
            return st;
        }
        workers_.push_back(std::move(w));
    }
    cleanup();  // only the -1 placeholders remain
    for (auto& w : workers_) {
        running_.fetch_add(1);
        threads_.emplace_back([this, wp = w.get()] {
            wp->run();
            running_.fetch_sub(1);
        });
    }
    spdlog::info("terminator: {} worker(s), TLS on port {}, HTTP on port {}", opts_.workers, tls_port_, http_port_);
    if (tls_port_) {
        if (ktls_tx_)
            spdlog::info("terminator: the kernel encrypts what is sent to clients after the handshake (kTLS, "
                         "--ktls {}); upstream bytes are spliced to clients; received records are decrypted "
                         "in user space (OpenSSL)",
                         opts_.ktls == KtlsMode::On ? "on" : "auto");
        else if (opts_.ktls == KtlsMode::Off)
            spdlog::info("terminator: TLS records are encrypted in user space (OpenSSL; --ktls off); the kernel "
                         "{}",
                         ktls_.kernel ? "offers kTLS" : "does not offer kTLS (" + ktls_.detail + ")");
        else
            spdlog::info("terminator: TLS records are encrypted in user space (OpenSSL); kTLS is not available "
                         "on this kernel ({})",
                         ktls_.detail);
    }
    if (h2_gate_) h2_gate_->start();
    return {};
}

void Server::begin_drain() {
    for (auto& w : workers_) w->wake_drain();
}

bool Server::wait_for(std::chrono::milliseconds d) {
    auto deadline = std::chrono::steady_clock::now() + d;
    while (running_.load() > 0) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

void Server::stop() {
    if (h2_gate_) h2_gate_->stop();
    for (auto& w : workers_) w->wake_stop();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
    workers_.clear();
}

StatsTotals Server::stats() const {
    StatsTotals t;
    for (const auto& s : stats_) {
        auto r = [](const auto& a) { return a.load(std::memory_order_relaxed); };
        t.hs_ok += r(s->hs_ok);
        t.hs_failed += r(s->hs_failed);
        t.hs_timeout += r(s->hs_timeout);
        t.tls_conns_total += r(s->tls_conns_total);
        t.http_conns_total += r(s->http_conns_total);
        t.tls_conns_open += r(s->tls_conns_open);
        t.http_conns_open += r(s->http_conns_open);
        t.bytes_in += r(s->bytes_in);
        t.bytes_out += r(s->bytes_out);
        t.upstream_errors += r(s->upstream_errors);
        t.idle_timeouts += r(s->idle_timeouts);
        t.head_timeouts += r(s->head_timeouts);
        t.evicted += r(s->evicted);
        t.accept_paused += r(s->accept_paused);
        t.accept_waits_full += r(s->accept_waits_full);
        t.http01_served += r(s->http01_served);
        t.tls_alpn01_served += r(s->tls_alpn01_served);
        t.h2_http11_required += r(s->h2_http11_required);
        t.upstream_502 += r(s->upstream_502);
        t.ktls_tx_conns += r(s->ktls_tx_conns);
        t.ktls_tx_declined += r(s->ktls_tx_declined);
        t.ktls_spliced_bytes += r(s->ktls_spliced_bytes);
    }
    return t;
}

}  // namespace edgecert::proxy
