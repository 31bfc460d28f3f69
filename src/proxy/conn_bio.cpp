// The BIO between OpenSSL and a client socket. OpenSSL's socket BIO makes a read() that is
// known to fail with EAGAIN after every short read (once per handshake flight and once per
// keep-alive request) and sends every record as its own segment. This one shares the
// connection's edge-triggered readiness (Conn::c_rd / c_wr): after a short read the socket is
// drained and the next read is answered "retry" without a system call until epoll reports new
// data; after a short write the same for writes. Conn::more asks the kernel to hold a partial
// segment (MSG_MORE) so that the last response bytes, the close_notify alert and the FIN leave
// as one segment instead of three.
//
// Kernel TLS (--ktls): OpenSSL 3 hands the record keys of each direction to its write BIO
// once they are set, then writes plaintext and marks each non-application record (alerts,
// NewSessionTicket) with a control request first. OpenSSL's socket BIO does that with controls
// its public header lists as internal (72, 74, 75; include/internal/bio.h in OpenSSL 3.0, the
// same numbers in 3.1-3.5); this BIO answers them for the send direction only, the one that
// carries a download. Receiving stays in user space: requests are small, and records read
// through kernel TLS would need recvmsg() with their record type here. If the kernel refuses
// the keys, OpenSSL keeps encrypting in user space on this connection (the "skip" path of its
// key change).
#include <linux/tls.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/worker.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

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

// OpenSSL's controls for kernel TLS (see the top of this file).
constexpr int kCtrlSetKtls = 72;            // larg: non-zero for the send direction; parg: the keys
constexpr int kCtrlSetKtlsCtrlMsg = 74;     // larg: record type of the next write
constexpr int kCtrlClearKtlsCtrlMsg = 75;

// One non-application record through kernel TLS: the record type goes in a control message
// (Documentation/networking/tls.rst, "Send TLS control messages").
ssize_t send_record(int fd, unsigned char type, const char* buf, size_t len) {
    char cbuf[CMSG_SPACE(sizeof type)] = {};
    iovec iov{const_cast<char*>(buf), len};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    cmsghdr* cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_TLS;
    cm->cmsg_type = TLS_SET_RECORD_TYPE;
    cm->cmsg_len = CMSG_LEN(sizeof type);
    std::memcpy(CMSG_DATA(cm), &type, sizeof type);
    return ::sendmsg(fd, &m, MSG_NOSIGNAL);
}

// The size of the kernel's structure for the cipher OpenSSL chose. OpenSSL passes a union of
// these (its ktls_crypto_info_t) whose layout after the union is its own; the header every
// member starts with names the one in use.
size_t crypto_info_size(const tls_crypto_info* info) {
    switch (info->cipher_type) {
        case TLS_CIPHER_AES_GCM_128:
            return sizeof(tls12_crypto_info_aes_gcm_128);
        case TLS_CIPHER_AES_GCM_256:
            return sizeof(tls12_crypto_info_aes_gcm_256);
        case TLS_CIPHER_CHACHA20_POLY1305:
            return sizeof(tls12_crypto_info_chacha20_poly1305);
        default:
            return 0;  // anything else stays in user space
    }
}

// Gives the connection's send keys to the kernel. False leaves the socket as it was for the
// records that follow (OpenSSL then encrypts them itself).
bool start_ktls_tx(Conn* c, const void* keys) {
    const auto* info = static_cast<const tls_crypto_info*>(keys);
    size_t size = info ? crypto_info_size(info) : 0;
    if (size == 0 || c->ktls_tx) return false;  // a second key (KeyUpdate) cannot be installed
    if (::setsockopt(c->cfd, IPPROTO_TCP, TCP_ULP, "tls", 3) != 0 && errno != EEXIST) {
        c->ktls_failed = true;
        return false;
    }
    // Once the ULP is attached, records pass through in clear until keys are set; the keys
    // are set before any record of the new epoch is written, or not at all.
    if (::setsockopt(c->cfd, SOL_TLS, TLS_TX, keys, static_cast<socklen_t>(size)) != 0) {
        c->ktls_failed = true;
        return false;
    }
    c->ktls_tx = true;
    return true;
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
    if (c->ktls_record >= 0) {
        do n = send_record(c->cfd, static_cast<unsigned char>(c->ktls_record), buf, static_cast<size_t>(len));
        while (n < 0 && errno == EINTR);
        if (n >= 0) c->ktls_record = -1;  // sent: later writes are application data again
    } else {
        // MSG_MORE on a kernel TLS socket keeps the record open, and shutdown() would not
        // close it: with kernel TLS every write is a whole record.
        int more = c->more && !c->ktls_tx ? MSG_MORE : 0;
        do n = ::send(c->cfd, buf, static_cast<size_t>(len), MSG_NOSIGNAL | more);
        while (n < 0 && errno == EINTR);
    }
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

long bio_ctrl(BIO* b, int cmd, long larg, void* parg) {
    auto* c = static_cast<Conn*>(BIO_get_data(b));
    switch (cmd) {
        case BIO_CTRL_FLUSH:
            return 1;  // nothing is buffered here
        case kCtrlSetKtls:
            return larg != 0 && c->ktls_allowed && start_ktls_tx(c, parg) ? 1 : 0;
        case BIO_CTRL_GET_KTLS_SEND:
            return c->ktls_tx ? 1 : 0;
        case BIO_CTRL_GET_KTLS_RECV:
            return 0;
        case kCtrlSetKtlsCtrlMsg:
            c->ktls_record = static_cast<int16_t>(larg & 0xff);
            return 0;
        case kCtrlClearKtlsCtrlMsg:
            c->ktls_record = -1;
            return 0;
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
