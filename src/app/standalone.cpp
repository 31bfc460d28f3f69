#include "app/standalone.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>

#include "edgecert/base/ip.h"

namespace edgecert::app {
namespace {

constexpr int kConnDeadlineMs = 5000;

// Binds ADDR:PORT ("[::1]:80" for IPv6). Without an address: every IPv4 and IPv6 address (one
// dual-stack socket; IPv4 only where the kernel has no IPv6), so that a CA validating an IPv6
// identifier (RFC 8738) reaches the default responder too.
Result<int> listen_socket(const std::string& spec, int default_port, int* bound_port) {
    EC_TRY_ASSIGN(auto hp, parse_listen(spec, default_port));
    auto [host, port] = hp;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    const bool any = host.empty() || host == "*";
    std::optional<IpAddress> ip;
    if (!any && !(ip = IpAddress::parse(host)))
        return Error(ErrorCode::InvalidConfig,
                     "listen address '" + host + "' is not an IP address");
    sockaddr_storage ss{};
    socklen_t sslen = 0;
    int fd = -1;
    if (any || !ip->is_v4()) {
        fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        auto* sa6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sa6->sin6_family = AF_INET6;
        sa6->sin6_port = htons(static_cast<uint16_t>(port));
        if (ip) std::memcpy(&sa6->sin6_addr, ip->data(), 16);
        sslen = sizeof *sa6;
        int v6only = 0;
        if (fd >= 0 && any) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
    if (fd < 0 && (any || ip->is_v4())) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ss = {};
        auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
        sa->sin_family = AF_INET;
        sa->sin_port = htons(static_cast<uint16_t>(port));
        if (ip) std::memcpy(&sa->sin_addr, ip->data(), 4);
        sslen = sizeof *sa;
    }
    if (fd < 0) return Error(ErrorCode::Transient, std::string("socket: ") + strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), sslen) < 0 || ::listen(fd, 64) < 0) {
        std::string e = strerror(errno);
        ::close(fd);
        return Error(ErrorCode::InvalidConfig, "cannot listen on " + spec + ": " + e);
    }
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                 : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return fd;
}

// Waits for fd to become readable (or the wake pipe). Returns false on timeout/stop.
bool wait_readable(int fd, int wake_fd, int timeout_ms) {
    pollfd p[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int n = ::poll(p, wake_fd >= 0 ? 2 : 1, timeout_ms);
    return n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) && !(p[1].revents & POLLIN);
}

int accept_one(int fd) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) {
        timeval tv{kConnDeadlineMs / 1000, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return c;
}

void write_all(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<size_t>(n);
    }
}

}  // namespace

Result<std::pair<std::string, int>> parse_listen(const std::string& spec, int default_port) {
    if (spec.empty()) return std::make_pair(std::string(), default_port);
    std::string host, port = spec;
    if (auto c = spec.rfind(':'); c != std::string::npos) {
        host = spec.substr(0, c);
        port = spec.substr(c + 1);
    }
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5)
        return Error(ErrorCode::InvalidConfig, "'" + spec + "' is not a port or ADDR:PORT");
    int p = std::stoi(port);
    if (p > 65535) return Error(ErrorCode::InvalidConfig, "port " + port + " is out of range");
    return std::make_pair(host, p);
}

// ---------------------------------------------------------------- accept loop

Result<std::unique_ptr<AcceptLoop>> AcceptLoop::start(const std::string& listen, int default_port, Handler h) {
    std::unique_ptr<AcceptLoop> l(new AcceptLoop());
    l->handler_ = std::move(h);
    EC_TRY_ASSIGN(l->fd_, listen_socket(listen, default_port, &l->port_));
    if (::pipe2(l->wake_, O_CLOEXEC) < 0) return Error(ErrorCode::Transient, "pipe failed");
    l->thread_ = std::thread([p = l.get()] { p->run(); });
    return l;
}

AcceptLoop::~AcceptLoop() {
    stop_ = true;
    if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
    if (thread_.joinable()) thread_.join();
    for (int fd : {fd_, wake_[0], wake_[1]})
        if (fd >= 0) ::close(fd);
}

void AcceptLoop::run() {
    while (!stop_) {
        if (!wait_readable(fd_, wake_[0], 1000)) continue;
        int c = accept_one(fd_);
        if (c < 0) continue;
        handler_(c);
        ::close(c);
    }
}

// ---------------------------------------------------------------- http-01

Result<std::unique_ptr<Http01Responder>> Http01Responder::create(const std::string& listen) {
    std::unique_ptr<Http01Responder> r(new Http01Responder());
    EC_TRY_ASSIGN(r->loop_, AcceptLoop::start(listen, 80, [p = r.get()](int fd) { p->handle(fd); }));
    return r;
}

void Http01Responder::set(const std::string& token, const std::string& key_authorization) {
    std::lock_guard l(mu_);
    tokens_[token] = key_authorization;
}

void Http01Responder::remove(const std::string& token) {
    std::lock_guard l(mu_);
    tokens_.erase(token);
}

void Http01Responder::handle(int fd) {
    std::string head;
    char buf[2048];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kConnDeadlineMs);
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192) {
        if (std::chrono::steady_clock::now() > deadline) return;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return;
        head.append(buf, static_cast<size_t>(n));
    }
    // Request line: METHOD SP target SP version
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    size_t s1 = line.find(' '), s2 = line.rfind(' ');
    std::string method = s1 == std::string::npos ? "" : line.substr(0, s1);
    std::string target = (s1 == std::string::npos || s2 <= s1) ? "" : line.substr(s1 + 1, s2 - s1 - 1);
    static const std::string kPrefix = "/.well-known/acme-challenge/";
    std::string body;
    int status = 404;
    if ((method == "GET" || method == "HEAD") && target.rfind(kPrefix, 0) == 0) {
        std::string token = target.substr(kPrefix.size());
        std::lock_guard l(mu_);
        if (auto it = tokens_.find(token); it != tokens_.end()) {
            status = 200;
            body = it->second;
        }
    }
    if (status == 200) ++served_;
    spdlog::debug("http-01 responder: {} {} -> {}", method, target.substr(0, 128), status);
    std::string resp = (status == 200 ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n");
    resp += "Content-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n";
    if (method != "HEAD") resp += body;
    write_all(fd, resp);
}

// ---------------------------------------------------------------- tls-alpn-01

Result<std::unique_ptr<TlsAlpn01Responder>> TlsAlpn01Responder::create(const std::string& listen) {
    std::unique_ptr<TlsAlpn01Responder> r(new TlsAlpn01Responder());
    r->ctx_.reset(SSL_CTX_new(TLS_server_method()));
    if (!r->ctx_) return ossl::error("tls-alpn-01 responder: SSL_CTX_new");
    SSL_CTX_set_min_proto_version(r->ctx_.get(), TLS1_2_VERSION);
    SSL_CTX_set_client_hello_cb(r->ctx_.get(), &TlsAlpn01Responder::on_client_hello, r.get());
    // RFC 8737 §3: the server MUST negotiate acme-tls/1, and only that.
    SSL_CTX_set_alpn_select_cb(
        r->ctx_.get(),
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
           unsigned int inlen, void*) -> int {
            static const unsigned char kProto[] = {10, 'a', 'c', 'm', 'e', '-', 't', 'l', 's', '/', '1'};
            unsigned char* sel = nullptr;
            if (SSL_select_next_proto(&sel, outlen, kProto, sizeof kProto, in, inlen) !=
                OPENSSL_NPN_NEGOTIATED)
                return SSL_TLSEXT_ERR_ALERT_FATAL;
            *out = sel;
            return SSL_TLSEXT_ERR_OK;
        },
        nullptr);
    EC_TRY_ASSIGN(r->loop_, AcceptLoop::start(listen, 443, [p = r.get()](int fd) { p->handle(fd); }));
    return r;
}

namespace {
// An IP identifier (RFC 8738) is kept under its canonical text: the SNI of its validation is the
// reverse-DNS name, mapped back to that text.
std::string responder_key(const std::string& identifier) {
    if (auto ip = IpAddress::parse(identifier)) return ip->to_string();
    return identifier;
}
}  // namespace

void TlsAlpn01Responder::set(const std::string& domain, X509* cert, EVP_PKEY* key) {
    X509_up_ref(cert);
    EVP_PKEY_up_ref(key);
    std::lock_guard l(mu_);
    certs_[responder_key(domain)] =
        Entry{ossl::UniquePtr<X509>(cert), ossl::UniquePtr<EVP_PKEY>(key)};
}

void TlsAlpn01Responder::remove(const std::string& domain) {
    std::lock_guard l(mu_);
    certs_.erase(responder_key(domain));
}

int TlsAlpn01Responder::on_client_hello(SSL* ssl, int* alert, void* arg) {
    auto* self = static_cast<TlsAlpn01Responder*>(arg);
    // Read SNI straight from the ClientHello (servername callback runs later).
    const unsigned char* ext = nullptr;
    size_t len = 0;
    std::string sni;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) && len > 5) {
        // server_name_list length (2) | name_type (1) | host_name length (2) | host_name
        size_t name_len = (static_cast<size_t>(ext[3]) << 8) | ext[4];
        if (ext[2] == TLSEXT_NAMETYPE_host_name && 5 + name_len <= len)
            sni.assign(reinterpret_cast<const char*>(ext + 5), name_len);
    }
    for (auto& c : sni) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::lock_guard l(self->mu_);
    auto it = self->certs_.find(sni);
    // RFC 8738 §6: 1.0.0.127.in-addr.arpa asks for the certificate of 127.0.0.1.
    if (auto ip = IpAddress::from_reverse_name(sni); ip && it == self->certs_.end())
        it = self->certs_.find(ip->to_string());
    if (it == self->certs_.end()) {
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (SSL_use_certificate(ssl, it->second.cert.get()) != 1 ||
        SSL_use_PrivateKey(ssl, it->second.key.get()) != 1) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

void TlsAlpn01Responder::handle(int fd) {
    ossl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
    if (!ssl) return;
    SSL_set_fd(ssl.get(), fd);
    // Blocking socket with SO_RCVTIMEO/SO_SNDTIMEO bounds: this thread serves one validation at a
    // time and only while an order is pending.
    if (SSL_accept(ssl.get()) == 1) {
        ++served_;
        spdlog::debug("tls-alpn-01 responder: served challenge certificate");
        SSL_shutdown(ssl.get());
    } else {
        spdlog::debug("tls-alpn-01 responder: handshake failed: {}", ossl::drain_errors());
    }
}

}  // namespace edgecert::app
