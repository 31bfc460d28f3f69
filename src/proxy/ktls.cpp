#include "proxy/ktls.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifndef TCP_ULP
#define TCP_ULP 31  // linux/tcp.h; glibc's netinet/tcp.h has it from 2.26
#endif

namespace edgecert::proxy {
namespace {

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

std::string errno_text(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

KtlsSupport probe_ktls() {
    KtlsSupport out;
    Fd lis, cli, srv;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    lis.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lis.fd < 0 || ::bind(lis.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(lis.fd, 1) != 0 ||
        ::getsockname(lis.fd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
        out.detail = errno_text("loopback listener");
        return out;
    }
    cli.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cli.fd < 0 || ::connect(cli.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        out.detail = errno_text("loopback connect");
        return out;
    }
    srv.fd = ::accept4(lis.fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (srv.fd < 0) {
        out.detail = errno_text("loopback accept");
        return out;
    }
    // ENOENT: no "tls" ULP (CONFIG_TLS off, or the module cannot be loaded).
    if (::setsockopt(srv.fd, IPPROTO_TCP, TCP_ULP, "tls", 3) != 0) {
        out.detail = errno_text("setsockopt(TCP_ULP, \"tls\")");
        return out;
    }
    out.kernel = true;
    return out;
}

}  // namespace edgecert::proxy
