#pragma once
// One worker: an epoll loop, its SO_REUSEPORT listeners and its connections. Internal to
// src/proxy (Server owns the workers).
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "edgecert/base/ossl.h"
#include "proxy/server.h"
#include "tls/tls_context.h"

namespace edgecert::proxy {

using Clock = std::chrono::steady_clock;

// A byte buffer that exists only while data is in flight (taken from / returned to the
// worker's pool), so an idle connection holds no proxy buffers.
struct Buf {
    char* p = nullptr;
    uint32_t off = 0, len = 0;
    bool empty() const { return len == 0; }
};

struct Conn;

// The most one splice() moves from the upstream into an empty pipe (a pipe holds 64 KiB).
constexpr size_t kPipeChunk = 64 * 1024;

class Worker {
  public:
    friend class Server;
    Worker(Server& server, int index, WorkerStats& stats);
    ~Worker();
    Status init(int tls_fd, int http_fd);  // takes ownership of the listening sockets
    void run();
    void wake_drain();  // thread-safe
    void wake_stop();   // thread-safe

  private:
    friend struct Conn;
    // Event handlers.
    void on_accept(int lfd, bool tls);
    void on_event(Conn* c, bool upstream, uint32_t ev);
    void drive(Conn* c);
    void do_handshake(Conn* c);
    void do_http_head(Conn* c);
    void await_data(Conn* c);
    std::string tls_proxy_prefix(Conn* c);
    void start_upstream(Conn* c, std::string prefix);
    void pump(Conn* c);
    // pump()'s upstream → client step with kernel TLS (splice through a pipe); false if it
    // closed the connection.
    bool splice_u2c(Conn* c, bool& progress);
    // Pipes for splice_u2c, kept in a small per-worker pool while empty.
    bool take_pipe(Conn* c);
    void give_pipe(Conn* c);
    void respond_and_close(Conn* c, std::string response);
    // Replaces the upstream: `bytes` go to the client, then close_notify and the FIN; what the
    // client still sends is read and dropped until it closes (a close with unread data would
    // reset the connection and could destroy `bytes` in flight). Bounded by handshake_timeout.
    void finish_with(Conn* c, std::string_view bytes);
    // The upstream could not be reached (refused, reset or timed out before its first byte):
    // an HTTP/1.1 client gets a 502 instead of an empty reply; anything else is closed.
    void upstream_failed(Conn* c);
    // An h2 client's upstream answered something other than SETTINGS (upstream_h2.h): the
    // upstream is dropped and the client's streams refused once it has opened one.
    void h2_mismatch(Conn* c);
    void h2_refuse_new_streams(Conn* c);
    void close_conn(Conn* c);
    // At max-connections: closes a connection that has sent no request byte yet (the one silent
    // longest after its handshake, else the oldest mid-handshake). False if there is none.
    bool evict_one();
    // Stops watching the listeners for a while (full, or out of file descriptors): they are
    // level-triggered, so a connection that cannot be accepted now would wake the loop at once.
    // resume_accept() (from the loop) watches them again when the time is up.
    void pause_accept(std::chrono::milliseconds how_long);
    void resume_accept();
    void expire_timers();
    int next_timeout_ms() const;
    void refresh_snapshot();

    // Buffers.
    bool ensure(Buf& b);
    void release(Buf& b);

    // Timer lists: intrusive, ordered by deadline because every list has one fixed timeout
    // and entries are appended (or moved to the tail on activity).
    struct List {
        Conn* head = nullptr;
        Conn* tail = nullptr;
    };
    void list_remove(Conn* c);
    void list_append(List& l, Conn* c, Clock::time_point deadline);

    Server& srv_;
    int index_;
    WorkerStats& st_;
    int ep_ = -1, tls_fd_ = -1, http_fd_ = -1, wake_fd_ = -1;
    ossl::UniquePtr<SSL_CTX> ctx_;
    std::shared_ptr<const tls::CertSnapshot> snap_;
    uint64_t snap_gen_ = ~0ull;
    Clock::time_point now_;
    // hs_list_: handshake, request head, upstream connect and close deadlines; await_list_:
    // handshake done, no byte received yet (idle timeout); idle_list_: proxying (idle timeout).
    List hs_list_, await_list_, idle_list_;
    bool accept_paused_ = false;
    Clock::time_point accept_resume_;
    std::vector<char*> pool_;
    std::vector<std::pair<int, int>> pipes_;  // empty pipes (read end, write end)
    size_t conns_ = 0;
    bool draining_ = false, stopping_ = false;
    std::atomic<bool> drain_req_{false}, stop_req_{false};
    std::vector<Conn*>
        dead_;  // closed during this batch; freed after it (events may still name them)
    std::vector<Conn*> again_;  // connections that hit the per-wakeup work bound
    Clock::time_point drain_deadline_;
    sockaddr_storage tls_local_{}, http_local_{};
    bool tls_local_known_ = false, http_local_known_ = false;
};

// One client connection and (after the handshake) its upstream connection.
struct Conn {
    // Closing: finish_with() is delivering our own answer; the upstream is gone.
    // H2Refusing: an h2 client whose upstream is not HTTP/2: every stream it opens is refused
    // with HTTP_1_1_REQUIRED until it closes (h2_mismatch).
    enum class State : uint8_t {
        Handshake,
        AwaitData,
        HttpHead,
        Connecting,
        Streaming,
        Responding,
        Closing,
        H2Refusing
    };
    // Timer list hooks.
    Worker::List* list = nullptr;
    Conn* prev = nullptr;
    Conn* next = nullptr;
    Clock::time_point deadline;

    int cfd = -1, ufd = -1;
    SSL* ssl = nullptr;  // null on the plain-HTTP listener
    State state = State::Handshake;
    bool closed = false;
    bool is_tls = false;
    // Edge-triggered readiness: set by epoll, cleared when an operation would block.
    bool c_rd = true, c_wr = true, u_rd = false, u_wr = false;
    // A short read means "drained" only if no FIN was reported with the data: the edge that
    // announced the FIN has been consumed, so without this flag the EOF would never be seen.
    bool c_hup = false, u_hup = false;
    bool hs_wants_write = false, rd_wants_wr = false, wr_wants_rd = false;
    bool c_eof = false, u_eof = false, c_shut = false, u_shut = false;
    bool more = false;      // client writes: more follows at once (MSG_MORE), see conn_bio.cpp
    // Kernel TLS for the client's send direction (conn_bio.cpp): allowed on this connection
    // (--ktls), the kernel holds the send keys, it refused them; the record type of the next
    // write when OpenSSL marked it as a non-application record (-1: application data).
    bool ktls_allowed = false, ktls_tx = false, ktls_failed = false;
    int16_t ktls_record = -1;
    // With ktls_tx: upstream bytes move to the client through this pipe with splice(2), never
    // through user space. Opened at the first splice, closed with the connection.
    int pipe_r = -1, pipe_w = -1;
    uint32_t pipe_len = 0;
    bool no_splice = false;  // no pipe could be opened: copy through user space
    bool h2_check = false;  // h2 negotiated with an h2c upstream: its first bytes must be SETTINGS
    bool u_any = false;     // the upstream has sent at least one byte
    H2StreamTracker h2_streams;  // h2_check / H2Refusing: the streams the client opened so far
    uint32_t h2_refused = 0;     // H2Refusing: streams up to this one were refused
    bool h2_grace = false;       // H2Refusing: the refusal was acknowledged; closing soon
    // Whether reading the client can make progress: new bytes on the socket, or records
    // OpenSSL already read (read-ahead) but has not handed out yet. The BIO clears c_rd after
    // a short read, so c_rd alone would strand those records.
    bool tls_readable() const { return c_rd || (ssl && SSL_has_pending(ssl) == 1); }
    Buf c2u, u2c;  // client → upstream, upstream → client
    sockaddr_storage peer{};
    tls::TlsConnInfo info;
};

// Gives c->ssl the BIO that reads and writes c->cfd under c's readiness flags (conn_bio.cpp).
bool attach_conn_bio(Conn* c);

}  // namespace edgecert::proxy
