#include "proxy/worker.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <tuple>

#include "proxy/http_head.h"

namespace edgecert::proxy {

// epoll tags for the non-connection fds; connection pointers are never this small. The
// upstream side of a connection is tagged by setting bit 0 of its Conn pointer.
static void* const kTagTls = reinterpret_cast<void*>(8);
static void* const kTagHttp = reinterpret_cast<void*>(16);
static void* const kTagWake = reinterpret_cast<void*>(24);

Worker::Worker(Server& server, int index, WorkerStats& stats)
    : srv_(server), index_(index), st_(stats) {}

Worker::~Worker() {
    for (char* p : pool_) std::free(p);
    for (auto [r, w] : pipes_) {
        ::close(r);
        ::close(w);
    }
    for (int fd : {ep_, tls_fd_, http_fd_, wake_fd_})
        if (fd >= 0) ::close(fd);
}

Status Worker::init(int tls_fd, int http_fd) {
    tls_fd_ = tls_fd;
    http_fd_ = http_fd;
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ep_ < 0 || wake_fd_ < 0)
        return Error(ErrorCode::Permanent, std::string("epoll/eventfd: ") + strerror(errno));
    auto add = [&](int fd, void* tag) {
        epoll_event ev{};
        ev.events = EPOLLIN;  // level-triggered: accept a bounded batch per wakeup
        ev.data.ptr = tag;
        return epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) == 0;
    };
    if ((tls_fd_ >= 0 && !add(tls_fd_, kTagTls)) || (http_fd_ >= 0 && !add(http_fd_, kTagHttp)) ||
        !add(wake_fd_, kTagWake))
        return Error(ErrorCode::Permanent, std::string("epoll_ctl: ") + strerror(errno));
    EC_TRY_ASSIGN(ctx_, srv_.tls_.new_ssl_ctx());
    return {};
}

void Worker::wake_drain() {
    drain_req_.store(true);
    uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
}

void Worker::wake_stop() {
    stop_req_.store(true);
    uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
}

void Worker::refresh_snapshot() {
    uint64_t g = srv_.snapshots_.generation();
    if (g != snap_gen_) {
        snap_ = srv_.snapshots_.get();
        snap_gen_ = g;
    }
}

// ---- timers ----

void Worker::list_remove(Conn* c) {
    if (!c->list) return;
    List& l = *c->list;
    (c->prev ? c->prev->next : l.head) = c->next;
    (c->next ? c->next->prev : l.tail) = c->prev;
    c->prev = c->next = nullptr;
    c->list = nullptr;
}

void Worker::list_append(List& l, Conn* c, Clock::time_point deadline) {
    list_remove(c);
    c->deadline = deadline;
    c->list = &l;
    c->prev = l.tail;
    (l.tail ? l.tail->next : l.head) = c;
    l.tail = c;
}

void Worker::expire_timers() {
    while (hs_list_.head && hs_list_.head->deadline <= now_) {
        Conn* c = hs_list_.head;
        if (c->state == Conn::State::Handshake)
            st_.hs_timeout.fetch_add(1, std::memory_order_relaxed);
        if (c->state == Conn::State::HttpHead)
            st_.head_timeouts.fetch_add(1, std::memory_order_relaxed);
        if (c->state == Conn::State::Connecting) {
            st_.upstream_errors.fetch_add(1, std::memory_order_relaxed);
            upstream_failed(c);  // connect deadline: a 502 for an HTTP/1.1 client
        } else if (c->state == Conn::State::H2Refusing && c->h2_grace && c->u2c.len == 0) {
            finish_with(c, {});  // the refused client kept the connection: close_notify, FIN
            if (!c->closed) pump(c);
        } else {
            close_conn(c);
        }
    }
    for (List* l : {&await_list_, &idle_list_})
        while (l->head && l->head->deadline <= now_) {
            st_.idle_timeouts.fetch_add(1, std::memory_order_relaxed);
            close_conn(l->head);
        }
}

bool Worker::evict_one() {
    // A connection may be closed to make room once it has had a quarter of handshake_timeout
    // (2.5 s by default) to say something, in its handshake (or plain-HTTP request head) or
    // after it: a client that wants something has sent its request by then (TLS 1.3 clients
    // send it right after their Finished), and a browser's preconnect costs only a reconnect.
    // Younger connections are left alone, so a flood that churns faster than a slow client's
    // handshake cannot cut that handshake off; new connections wait in the listen queue
    // instead. First the one silent longest after its handshake (the await list's head), else
    // the oldest still in its handshake or request head (the deadline list also holds upstream
    // connects and closes, which are not evicted).
    const auto grace = srv_.opts_.handshake_timeout / 4;
    Conn* victim = await_list_.head;
    if (victim && victim->deadline - srv_.opts_.idle_timeout + grace > now_) victim = nullptr;
    if (!victim) {
        victim = hs_list_.head;
        for (int i = 0; victim && i < 64; ++i, victim = victim->next)
            if (victim->state == Conn::State::Handshake || victim->state == Conn::State::HttpHead)
                break;
        if (victim && victim->state != Conn::State::Handshake &&
            victim->state != Conn::State::HttpHead)
            victim = nullptr;
        if (victim && victim->deadline - srv_.opts_.handshake_timeout + grace > now_)
            victim = nullptr;
    }
    if (!victim) return false;
    st_.evicted.fetch_add(1, std::memory_order_relaxed);
    close_conn(victim);
    return true;
}

void Worker::pause_accept(std::chrono::milliseconds how_long) {
    if (accept_paused_) return;
    accept_paused_ = true;
    accept_resume_ = now_ + how_long;
    for (int fd : {tls_fd_, http_fd_})
        if (fd >= 0) epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
}

void Worker::resume_accept() {
    if (!accept_paused_ || now_ < accept_resume_) return;
    accept_paused_ = false;
    for (auto [fd, tag] : {std::pair{tls_fd_, kTagTls}, std::pair{http_fd_, kTagHttp}}) {
        if (fd < 0) continue;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = tag;
        epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    }
}

int Worker::next_timeout_ms() const {
    if (!again_.empty()) return 0;
    auto next = now_ + std::chrono::seconds(1);
    for (const List* l : {&hs_list_, &await_list_, &idle_list_})
        if (l->head && l->head->deadline < next) next = l->head->deadline;
    if (accept_paused_ && accept_resume_ < next) next = accept_resume_;
    if (draining_ && drain_deadline_ < next) next = drain_deadline_;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now_).count() + 1;
    return ms < 0 ? 0 : static_cast<int>(ms);
}

// ---- buffers ----

bool Worker::ensure(Buf& b) {
    if (b.p) return true;
    if (!pool_.empty()) {
        b.p = pool_.back();
        pool_.pop_back();
    } else {
        b.p = static_cast<char*>(std::malloc(srv_.opts_.buffer_size));
        if (!b.p) return false;
    }
    b.off = b.len = 0;
    return true;
}

void Worker::release(Buf& b) {
    if (!b.p) return;
    if (pool_.size() < 64)
        pool_.push_back(b.p);
    else
        std::free(b.p);
    b.p = nullptr;
    b.off = b.len = 0;
}

bool Worker::take_pipe(Conn* c) {
    if (!pipes_.empty()) {
        std::tie(c->pipe_r, c->pipe_w) = pipes_.back();
        pipes_.pop_back();
        return true;
    }
    int p[2];
    if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    c->pipe_r = p[0];
    c->pipe_w = p[1];
    return true;
}

void Worker::give_pipe(Conn* c) {
    if (c->pipe_r < 0) return;
    if (c->pipe_len == 0 && pipes_.size() < 16) {
        pipes_.emplace_back(c->pipe_r, c->pipe_w);
    } else {  // bytes still in it (connection closed early), or the pool is full
        ::close(c->pipe_r);
        ::close(c->pipe_w);
    }
    c->pipe_r = c->pipe_w = -1;
    c->pipe_len = 0;
}

// ---- loop ----

void Worker::run() {
    epoll_event evs[256];
    now_ = Clock::now();
    refresh_snapshot();
    while (!stopping_) {
        int n = epoll_wait(ep_, evs, 256, next_timeout_ms());
        now_ = Clock::now();
        refresh_snapshot();
        for (int i = 0; i < n; ++i) {
            void* tag = evs[i].data.ptr;
            if (tag == kTagTls) {
                on_accept(tls_fd_, true);
            } else if (tag == kTagHttp) {
                on_accept(http_fd_, false);
            } else if (tag == kTagWake) {
                uint64_t v;
                [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof v);
                if (stop_req_.load()) stopping_ = true;
                if (drain_req_.load() && !draining_) {
                    draining_ = true;
                    drain_deadline_ = now_ + srv_.opts_.drain_timeout;
                    // Closing the listeners stops accepting at once; the other workers'
                    // SO_REUSEPORT sockets close too, so nothing is queued on a dead socket.
                    for (int* fd : {&tls_fd_, &http_fd_})
                        if (*fd >= 0) {
                            ::close(*fd);
                            *fd = -1;
                        }
                    // TLS connections that never sent a byte have nothing in flight: close them
                    // now instead of holding the drain for them.
                    while (await_list_.head) close_conn(await_list_.head);
                }
            } else {
                auto bits = reinterpret_cast<uintptr_t>(tag);
                on_event(reinterpret_cast<Conn*>(bits & ~uintptr_t(1)), bits & 1, evs[i].events);
            }
        }
        if (!again_.empty()) {
            std::vector<Conn*> batch;
            batch.swap(again_);
            for (Conn* c : batch)
                if (!c->closed) drive(c);
        }
        expire_timers();
        resume_accept();
        if (!dead_.empty()) {
            std::erase_if(again_, [](Conn* c) { return c->closed; });  // never keep a freed pointer
            for (Conn* c : dead_) delete c;
            dead_.clear();
        }
        if (draining_ && (conns_ == 0 || now_ >= drain_deadline_)) break;
    }
    for (List* l : {&hs_list_, &await_list_, &idle_list_})
        while (l->head) close_conn(l->head);
    for (Conn* c : dead_) delete c;
    dead_.clear();
}

void Worker::on_accept(int lfd, bool tls) {
    for (int i = 0; i < 64; ++i) {
        if (srv_.open_conns_.load(std::memory_order_relaxed) >= srv_.opts_.max_connections) {
            // Full. Only the first pass knows a connection is waiting (epoll said so): later
            // passes return, and the level-triggered listener brings us back for the rest.
            if (i > 0) return;
            // Make room by closing a connection that has sent nothing yet; with none, the new
            // connection stays in the listen queue (the kernel completed its TCP handshake; it
            // waits as under HAProxy's maxconn) and we look again shortly. Closing it instead
            // would fail a well-behaved client that happens to arrive during a flood.
            if (!evict_one()) {
                st_.accept_waits_full.fetch_add(1, std::memory_order_relaxed);
                pause_accept(std::chrono::milliseconds(10));
                return;
            }
        }
        sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd =
            accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // The listeners are level-triggered: without a pause this would spin.
                spdlog::warn("worker {}: accept: {}; not accepting for 100 ms", index_,
                             strerror(errno));
                st_.accept_paused.fetch_add(1, std::memory_order_relaxed);
                pause_accept(std::chrono::milliseconds(100));
            }
            return;
        }
        // Admitted even if another worker took the last place since the check above: the
        // limit is exceeded by at most one connection per worker, and closing a connection
        // already accepted would fail a client that did nothing wrong.
        srv_.open_conns_.fetch_add(1, std::memory_order_relaxed);
        Conn* c = new Conn;
        c->cfd = fd;
        c->peer = peer;
        ++conns_;
        c->is_tls = tls;
        if (tls) {
            c->ssl = SSL_new(ctx_.get());
            if (!c->ssl || !attach_conn_bio(c)) {
                ossl::clear_errors();
                close_conn(c);
                continue;
            }
            if (srv_.ktls_tx_) {
                c->ktls_allowed = true;
                SSL_set_options(c->ssl, SSL_OP_ENABLE_KTLS);
            }
            SSL_set_accept_state(c->ssl);
            tls::TlsContext::attach(c->ssl, &c->info);
            c->info.fd = fd;
            c->info.local = tls_local_known_ ? &tls_local_ : nullptr;
            c->state = Conn::State::Handshake;
            st_.tls_conns_total.fetch_add(1, std::memory_order_relaxed);
            st_.tls_conns_open.fetch_add(1, std::memory_order_relaxed);
        } else {
            c->state = Conn::State::HttpHead;
            st_.http_conns_total.fetch_add(1, std::memory_order_relaxed);
            st_.http_conns_open.fetch_add(1, std::memory_order_relaxed);
        }
        list_append(hs_list_, c, now_ + srv_.opts_.handshake_timeout);
        // Both directions, edge-triggered, registered once: no epoll_ctl per state change.
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.ptr = c;
        if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close_conn(c);
            continue;
        }
        // TCP_DEFER_ACCEPT: the ClientHello / request head is usually already here.
        drive(c);
    }
}

void Worker::on_event(Conn* c, bool upstream, uint32_t ev) {
    if (spdlog::should_log(spdlog::level::trace))
        spdlog::trace("event cfd={} {} ev={:x} closed={}", c->cfd, upstream ? "up" : "client", ev,
                      c->closed);
    if (c->closed) return;
    bool rd = ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    bool wr = ev & (EPOLLOUT | EPOLLHUP | EPOLLERR);
    bool hup = ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    if (upstream) {
        c->u_hup |= hup;
        c->u_rd |= rd;
        c->u_wr |= wr;
    } else {
        c->c_hup |= hup;
        c->c_rd |= rd;
        c->c_wr |= wr;
    }
    drive(c);
}

void Worker::drive(Conn* c) {
    switch (c->state) {
        case Conn::State::Handshake:
            if (c->hs_wants_write ? c->c_wr : c->tls_readable()) do_handshake(c);
            break;
        case Conn::State::AwaitData:
            await_data(c);
            break;
        case Conn::State::HttpHead:
            if (c->c_rd) do_http_head(c);
            break;
        case Conn::State::Connecting:
            if (!c->u_wr) break;  // connect() completes (or fails) with EPOLLOUT/EPOLLERR
            c->state = Conn::State::Streaming;
            list_append(idle_list_, c, now_ + srv_.opts_.idle_timeout);
            pump(c);
            break;
        case Conn::State::Streaming:
            pump(c);
            break;
        case Conn::State::Responding:
        case Conn::State::Closing:
        case Conn::State::H2Refusing:
            pump(c);
            break;
    }
}

void Worker::close_conn(Conn* c) {
    if (c->closed) return;
    c->closed = true;
    list_remove(c);
    if (c->ssl) {
        SSL_free(c->ssl);  // also frees the BIO (it does not own the fd)
        c->ssl = nullptr;
        st_.tls_conns_open.fetch_sub(1, std::memory_order_relaxed);
    } else {
        st_.http_conns_open.fetch_sub(1, std::memory_order_relaxed);
    }
    if (c->cfd >= 0) ::close(c->cfd);  // close() also removes the fd from epoll
    if (c->ufd >= 0) ::close(c->ufd);
    c->cfd = c->ufd = -1;
    give_pipe(c);
    release(c->c2u);
    release(c->u2c);
    --conns_;
    srv_.open_conns_.fetch_sub(1, std::memory_order_relaxed);
    dead_.push_back(c);
}

}  // namespace edgecert::proxy
