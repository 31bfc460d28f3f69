// The BIO between OpenSSL and a client socket. OpenSSL's socket BIO makes a read() that is
// known to fail with EAGAIN after every short read (once per handshake flight and once per
// keep-alive request) and sends every record as its own segment. This one shares the
// connection's edge-triggered readiness (Conn::c_rd / c_wr): after a short read the socket is
// drained and the next read is answered "retry" without a system call until epoll reports new
// data; after a short write the same for writes. Conn::more asks the kernel to hold a partial
// segment (MSG_MORE) so that the last response bytes, the close_notify alert and the FIN leave
// as one segment instead of three.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "proxy/worker.h"

namespace edgecert::proxy {
namespace {

int bio_read(BIO* b, char* buf, int len) {
    auto* c = static_cast<Conn*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (!c->c_rd) {  // drained since the last edge: nothing new can be there
        BIO_set_retry_read(b);
        return -1;
    }
    ssize_t n;
    do n = ::read(c->cfd, buf, static_cast<size_t>(len));
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        // A short read empties the receive queue. With a FIN reported (c_hup) keep reading:
        // its edge has been consumed and the EOF must still be seen.
        if (n < len && !c->c_hup) c->c_rd = false;
        return static_cast<int>(n);
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->c_rd = false;
        BIO_set_retry_read(b);
        return -1;
    }
    return static_cast<int>(n);  // 0: EOF; -1: error, errno kept for SSL_ERROR_SYSCALL
}

int bio_write(BIO* b, const char* buf, int len) {
    auto* c = static_cast<Conn*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (!c->c_wr) {
        BIO_set_retry_write(b);
        return -1;
    }
    ssize_t n;
    do n = ::send(c->cfd, buf, static_cast<size_t>(len), MSG_NOSIGNAL | (c->more ? MSG_MORE : 0));
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        if (n < len) c->c_wr = false;  // the socket buffer is full
        return static_cast<int>(n);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->c_wr = false;
        BIO_set_retry_write(b);
    }
    return -1;
}

long bio_ctrl(BIO*, int cmd, long, void*) {
    switch (cmd) {
        case BIO_CTRL_FLUSH:
            return 1;  // nothing is buffered here
        default:
            return 0;
    }
}

int bio_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
        BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "edgecert client socket");
        BIO_meth_set_read(bm, bio_read);
        BIO_meth_set_write(bm, bio_write);
        BIO_meth_set_ctrl(bm, bio_ctrl);
        BIO_meth_set_create(bm, bio_create);
        return bm;
    }();
    return m;
}

}  // namespace

bool attach_conn_bio(Conn* c) {
    BIO_METHOD* m = method();
    BIO* b = m ? BIO_new(m) : nullptr;
    if (!b) return false;
    BIO_set_data(b, c);
    SSL_set_bio(c->ssl, b, b);  // one reference for both directions; freed by SSL_free
    return true;
}

}  // namespace edgecert::proxy
