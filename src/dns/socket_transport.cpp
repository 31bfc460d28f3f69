// SocketTransport: one DNS exchange over UDP, retried over TCP when truncated (RFC 1035 §4.2.1,
// §4.2.2: TCP messages carry a two-byte length prefix). Every wait is bounded by the deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "dns/transport.h"

namespace edgecert::dns {
namespace {

using Clock = std::chrono::steady_clock;

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

Error transient(std::string m) {
    return Error(ErrorCode::Transient, std::move(m));
}

int remaining_ms(Clock::time_point deadline) {
    auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return d < 0 ? 0 : static_cast<int>(d);
}

Result<sockaddr_storage> address_of(const Endpoint& ep, socklen_t& len) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* res = nullptr;
    std::string port = std::to_string(ep.port);
    int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || !res)
        return transient(
            fmt::format("nameserver {} does not resolve: {}", ep.to_string(), gai_strerror(rc)));
    sockaddr_storage ss{};
    std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    ::freeaddrinfo(res);
    return ss;
}

uint16_t id_of(std::string_view m) {
    return m.size() < 2 ? 0
                        : static_cast<uint16_t>((static_cast<uint8_t>(m[0]) << 8) |
                                                static_cast<uint8_t>(m[1]));
}

Result<std::string> udp_exchange(const Endpoint& ep, const sockaddr_storage& sa, socklen_t len,
                                 std::string_view msg, Clock::time_point deadline) {
    Fd s{::socket(sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    if (s.fd < 0) return transient(fmt::format("socket: {}", std::strerror(errno)));
    // connect() makes the kernel drop datagrams from any other source (RFC 5452 §4.1 spirit).
    if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&sa), len) != 0)
        return transient(fmt::format("{}: {}", ep.to_string(), std::strerror(errno)));
    if (::send(s.fd, msg.data(), msg.size(), 0) != static_cast<ssize_t>(msg.size()))
        return transient(fmt::format("{}: send: {}", ep.to_string(), std::strerror(errno)));
    char buf[65535];
    for (;;) {
        pollfd p{s.fd, POLLIN, 0};
        int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r == 0) return transient(fmt::format("{}: no answer (timeout)", ep.to_string()));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return transient(fmt::format("{}: poll: {}", ep.to_string(), std::strerror(errno)));
        ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
        if (n < 0) return transient(fmt::format("{}: {}", ep.to_string(), std::strerror(errno)));
        std::string_view got(buf, static_cast<size_t>(n));
        if (got.size() >= 12 && id_of(got) == id_of(msg)) return std::string(got);
        // A late answer to an earlier query: keep waiting for ours.
    }
}

Status write_all(int fd, const std::string& data, Clock::time_point deadline, const Endpoint& ep) {
    size_t off = 0;
    while (off < data.size()) {
        pollfd p{fd, POLLOUT, 0};
        int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r == 0) return transient(fmt::format("{}: TCP write timed out", ep.to_string()));
        if (r < 0 && errno == EINTR) continue;
        ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0)
            return transient(fmt::format("{}: TCP: {}", ep.to_string(), std::strerror(errno)));
        off += static_cast<size_t>(n);
    }
    return ok_status();
}

Result<std::string> read_exact(int fd, size_t want, Clock::time_point deadline,
                               const Endpoint& ep) {
    std::string out;
    out.resize(want);
    size_t off = 0;
    while (off < want) {
        pollfd p{fd, POLLIN, 0};
        int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r == 0)
            return transient(fmt::format("{}: no answer over TCP (timeout)", ep.to_string()));
        if (r < 0 && errno == EINTR) continue;
        ssize_t n = ::recv(fd, out.data() + off, want - off, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0)
            return transient(fmt::format("{}: TCP connection closed early", ep.to_string()));
        off += static_cast<size_t>(n);
    }
    return out;
}

Result<std::string> tcp_exchange(const Endpoint& ep, const sockaddr_storage& sa, socklen_t len,
                                 std::string_view msg, Clock::time_point deadline) {
    Fd s{::socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (s.fd < 0) return transient(fmt::format("socket: {}", std::strerror(errno)));
    if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&sa), len) != 0 && errno != EINPROGRESS)
        return transient(fmt::format("{}: TCP connect: {}", ep.to_string(), std::strerror(errno)));
    pollfd p{s.fd, POLLOUT, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0)
        return transient(fmt::format("{}: TCP connect timed out", ep.to_string()));
    int err = 0;
    socklen_t el = sizeof err;
    ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0)
        return transient(fmt::format("{}: TCP connect: {}", ep.to_string(), std::strerror(err)));
    std::string framed(2, '\0');
    framed[0] = static_cast<char>((msg.size() >> 8) & 0xff);
    framed[1] = static_cast<char>(msg.size() & 0xff);
    framed.append(msg);
    EC_TRY(write_all(s.fd, framed, deadline, ep));
    EC_TRY_ASSIGN(auto hdr, read_exact(s.fd, 2, deadline, ep));
    size_t n = (static_cast<uint8_t>(hdr[0]) << 8) | static_cast<uint8_t>(hdr[1]);
    if (n < 12) return transient(fmt::format("{}: short TCP answer", ep.to_string()));
    return read_exact(s.fd, n, deadline, ep);
}

}  // namespace

std::string Endpoint::to_string() const {
    if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
    return fmt::format("{}:{}", host, port);
}

Result<Endpoint> parse_endpoint(std::string_view spec, uint16_t default_port) {
    Endpoint ep;
    ep.port = default_port;
    std::string s(spec);
    auto bad = [&] {
        return Error(ErrorCode::InvalidConfig,
                     fmt::format("nameserver '{}' is not HOST, HOST:PORT or [IPv6]:PORT", spec));
    };
    std::string port;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string::npos) return bad();
        ep.host = s.substr(1, close - 1);
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') return bad();
            port = s.substr(close + 2);
        }
    } else if (std::count(s.begin(), s.end(), ':') == 1) {
        ep.host = s.substr(0, s.find(':'));
        port = s.substr(s.find(':') + 1);
    } else {
        ep.host = s;  // a name, an IPv4 address or a bare IPv6 address
    }
    if (ep.host.empty()) return bad();
    if (!port.empty()) {
        if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return bad();
        long v = std::stol(port);
        if (v < 1 || v > 65535) return bad();
        ep.port = static_cast<uint16_t>(v);
    }
    return ep;
}

Result<std::string> SocketTransport::exchange(const Endpoint& server, std::string_view message,
                                              std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    socklen_t len = 0;
    EC_TRY_ASSIGN(auto sa, address_of(server, len));
    if (message.size() <= 512) {
        EC_TRY_ASSIGN(auto answer, udp_exchange(server, sa, len, message, deadline));
        // Header byte 2, bit 0x02: TC — the answer did not fit; RFC 1035 §4.2.1 says retry on TCP.
        if (!(static_cast<uint8_t>(answer[2]) & 0x02)) return answer;
        spdlog::debug("dns: {} truncated its answer over UDP; asking again over TCP",
                      server.to_string());
    }
    return tcp_exchange(server, sa, len, message, deadline);
}

std::vector<std::string> SocketTransport::resolve_host(const std::string& name) {
    std::vector<std::string> out;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(name.c_str(), nullptr, &hints, &res) != 0 || !res) return out;
    for (addrinfo* a = res; a; a = a->ai_next) {
        char buf[INET6_ADDRSTRLEN] = {};
        const void* src =
            a->ai_family == AF_INET
                ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
        if (::inet_ntop(a->ai_family, src, buf, sizeof buf)) {
            std::string s(buf);
            if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
        }
    }
    ::freeaddrinfo(res);
    return out;
}

}  // namespace edgecert::dns
