#pragma once
// Built-in standalone challenge responders for `edgecert issue` (like lego's --http / --tls):
// a tiny HTTP server answering /.well-known/acme-challenge/<token> (RFC 8555 §8.3) and a TLS
// server answering tls-alpn-01 (RFC 8737 §3) with the challenge certificate for the SNI name.
// Each runs one thread with poll()-bounded accepts and per-connection deadlines; they exist only
// while an order is being validated. The long-running terminator has its own responders in
// src/proxy on its event loops.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "edgecert/base/ossl.h"
#include "edgecert/base/result.h"

namespace edgecert::app {

// "8080", ":8080", "127.0.0.1:8080" or "[::1]:8080" → (address, port; brackets kept). Empty
// address means all interfaces (IPv4 and IPv6).
Result<std::pair<std::string, int>> parse_listen(const std::string& spec, int default_port);

// One listening socket served by one thread, one connection at a time, each with a deadline.
// Destroying it stops the thread (a pipe wakes the poll) and closes the sockets.
class AcceptLoop {
public:
    using Handler = std::function<void(int fd)>;
    static Result<std::unique_ptr<AcceptLoop>> start(const std::string& listen, int default_port, Handler h);
    ~AcceptLoop();
    int port() const { return port_; }

private:
    AcceptLoop() = default;
    void run();
    Handler handler_;
    int fd_ = -1;
    int port_ = 0;
    int wake_[2] = {-1, -1};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

class Http01Responder {
public:
    static Result<std::unique_ptr<Http01Responder>> create(const std::string& listen);
    void set(const std::string& token, const std::string& key_authorization);
    void remove(const std::string& token);
    int port() const { return loop_->port(); }
    size_t served() const { return served_.load(); }

private:
    Http01Responder() = default;
    void handle(int fd);
    std::atomic<size_t> served_{0};
    std::mutex mu_;
    std::map<std::string, std::string> tokens_;
    std::unique_ptr<AcceptLoop> loop_;  // last: stopped before the state it uses is destroyed
};

class TlsAlpn01Responder {
public:
    static Result<std::unique_ptr<TlsAlpn01Responder>> create(const std::string& listen);
    // Takes references on cert and key.
    void set(const std::string& domain, X509* cert, EVP_PKEY* key);
    void remove(const std::string& domain);
    int port() const { return loop_->port(); }
    size_t served() const { return served_.load(); }

private:
    TlsAlpn01Responder() = default;
    void handle(int fd);
    static int on_client_hello(SSL* ssl, int* alert, void* arg);
    struct Entry {
        ossl::UniquePtr<X509> cert;
        ossl::UniquePtr<EVP_PKEY> key;
    };
    std::atomic<size_t> served_{0};
    ossl::UniquePtr<SSL_CTX> ctx_;
    std::mutex mu_;
    std::map<std::string, Entry> certs_;
    std::unique_ptr<AcceptLoop> loop_;  // last: stopped before the state it uses is destroyed
};

}  // namespace edgecert::app
