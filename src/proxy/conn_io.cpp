// The connection state machine's I/O: handshake, the plain-HTTP request head, the lazy
// upstream connect and the bidirectional copy with backpressure. Sockets are edge-triggered;
// Conn's c_rd/c_wr/u_rd/u_wr say whether a side may have progress to make, so no call is made
// that is known to return EAGAIN.
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include "proxy/http_head.h"
#include "proxy/worker.h"

namespace edgecert::proxy {
namespace {

bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

}  // namespace

void Worker::do_handshake(Conn* c) {
    c->info.snapshot = snap_.get();  // the worker's current snapshot, alive during this call
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        st_.hs_ok.fetch_add(1, std::memory_order_relaxed);
        if (c->ktls_tx) st_.ktls_tx_conns.fetch_add(1, std::memory_order_relaxed);
        else if (c->ktls_allowed) st_.ktls_tx_declined.fetch_add(1, std::memory_order_relaxed);
        if (c->info.acme_tls_alpn) {  // RFC 8737 §3: validation only, no application data
            st_.tls_alpn01_served.fetch_add(1, std::memory_order_relaxed);
            SSL_shutdown(c->ssl);
            close_conn(c);
            return;
        }
        c->info.snapshot = nullptr;
        if (srv_.h2_gate_) {
            const unsigned char* alpn = nullptr;
            unsigned alpn_len = 0;
            SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
            c->h2_check = alpn_len == 2 && std::memcmp(alpn, "h2", 2) == 0;
        }
        // The upstream is connected lazily, when the first application bytes arrive: an idle
        // or preconnected client costs one socket, not two (HTTP is client-speaks-first).
        c->state = Conn::State::AwaitData;
        list_append(await_list_, c, now_ + srv_.opts_.idle_timeout);
        await_data(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        c->c_rd = false;
        c->hs_wants_write = false;
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        c->c_wr = false;
        c->hs_wants_write = true;
        return;
    }
    st_.hs_failed.fetch_add(1, std::memory_order_relaxed);
    if (spdlog::should_log(spdlog::level::debug))
        spdlog::debug("worker {}: handshake failed: {}", index_, ossl::drain_errors());
    ossl::clear_errors();
    close_conn(c);
}

std::string Worker::tls_proxy_prefix(Conn* c) {
    std::string prefix;
    if (srv_.opts_.proxy_protocol == ProxyProtocol::None) return prefix;
    ProxyInfo pi;
    pi.src = c->peer;
    socklen_t l = sizeof pi.dst;
    if (tls_local_known_) pi.dst = tls_local_;
    else getsockname(c->cfd, reinterpret_cast<sockaddr*>(&pi.dst), &l);
    pi.tls = true;
    const unsigned char* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn) pi.alpn = std::string_view(reinterpret_cast<const char*>(alpn), alpn_len);
    if (const char* sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name)) pi.authority = sni;
    pi.tls_version = SSL_get_version(c->ssl);
    if (const char* ciph = SSL_get_cipher_name(c->ssl)) pi.cipher = ciph;
    append_proxy_header(prefix, srv_.opts_.proxy_protocol, pi);
    return prefix;
}

void Worker::await_data(Conn* c) {
    if (!(c->rd_wants_wr ? c->c_wr : c->tls_readable())) return;
    std::string prefix = tls_proxy_prefix(c);
    if (prefix.size() >= srv_.opts_.buffer_size || !ensure(c->c2u)) return close_conn(c);
    Buf& a = c->c2u;
    std::memcpy(a.p, prefix.data(), prefix.size());
    uint32_t cap = static_cast<uint32_t>(srv_.opts_.buffer_size);
    int n = SSL_read(c->ssl, a.p + prefix.size(), static_cast<int>(cap - prefix.size()));
    if (n > 0) {
        a.off = 0;
        a.len = static_cast<uint32_t>(prefix.size()) + static_cast<uint32_t>(n);
        st_.bytes_in.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        c->rd_wants_wr = false;
        if (c->h2_check) c->h2_streams.feed(std::string_view(a.p + prefix.size(), size_t(n)));
        start_upstream(c, {});
        return;
    }
    release(a);
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ) {
        c->c_rd = false;
        c->rd_wants_wr = false;
    } else if (e == SSL_ERROR_WANT_WRITE) {
        c->c_wr = false;
        c->rd_wants_wr = true;
    } else {
        ossl::clear_errors();
        close_conn(c);  // closed (or failed) before sending anything: nothing to forward
    }
}

void Worker::start_upstream(Conn* c, std::string prefix) {
    // h2 clients go to the h2 upstream (the same one unless --upstream-h2 names another).
    const auto& ua = c->h2_check ? srv_.h2_upstream_ : srv_.upstream_;
    socklen_t ua_len = c->h2_check ? srv_.h2_upstream_len_ : srv_.upstream_len_;
    c->ufd = ::socket(ua.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->ufd < 0) {
        st_.upstream_errors.fetch_add(1, std::memory_order_relaxed);
        upstream_failed(c);
        return;
    }
    int one = 1;
    setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = ::connect(c->ufd, reinterpret_cast<const sockaddr*>(&ua), ua_len);
    if (r != 0 && errno != EINPROGRESS) {
        st_.upstream_errors.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("upstream connect: {}", strerror(errno));
        upstream_failed(c);
        return;
    }
    c->u_wr = (r == 0);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(c) | 1);
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c->ufd, &ev) != 0) {
        close_conn(c);
        return;
    }
    if (!prefix.empty()) {
        // The PROXY header (and, for pass-through, the request head) goes out in the same
        // write as the first client bytes.
        if (prefix.size() > srv_.opts_.buffer_size || !ensure(c->c2u)) {
            close_conn(c);
            return;
        }
        std::memcpy(c->c2u.p, prefix.data(), prefix.size());
        c->c2u.len = static_cast<uint32_t>(prefix.size());
    }
    c->state = Conn::State::Connecting;
    list_append(hs_list_, c, now_ + srv_.opts_.handshake_timeout);  // connect deadline
    drive(c);
}

void Worker::finish_with(Conn* c, std::string_view bytes) {
    c->pipe_len = 0;  // what the upstream sent is replaced by `bytes`
    give_pipe(c);
    if (c->ufd >= 0) {
        ::close(c->ufd);  // also leaves epoll; a queued event for it finds ufd < 0
        c->ufd = -1;
    }
    c->u_rd = c->u_wr = false;
    c->h2_check = false;
    release(c->c2u);
    if (!ensure(c->u2c)) return close_conn(c);
    size_t n = std::min(bytes.size(), srv_.opts_.buffer_size);
    std::memcpy(c->u2c.p, bytes.data(), n);
    c->u2c.off = 0;
    c->u2c.len = static_cast<uint32_t>(n);
    c->u_eof = c->u_shut = true;
    c->state = Conn::State::Closing;
    list_append(hs_list_, c, now_ + srv_.opts_.handshake_timeout);
}

void Worker::upstream_failed(Conn* c) {
    bool http1 = !c->ssl;  // the plain-HTTP listener forwards only HTTP requests
    if (c->ssl) {
        const unsigned char* alpn = nullptr;
        unsigned alpn_len = 0;
        SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
        http1 = alpn_len == 8 && std::memcmp(alpn, "http/1.1", 8) == 0;
    }
    // Without a negotiated HTTP/1.1 the client may speak anything: only close.
    if (!http1 || c->u_any) return close_conn(c);
    static constexpr std::string_view kBody = "edgecert: the upstream is not reachable\n";
    static const std::string kResponse = "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: " +
                                         std::to_string(kBody.size()) + "\r\nConnection: close\r\n\r\n" +
                                         std::string(kBody);
    st_.upstream_502.fetch_add(1, std::memory_order_relaxed);
    finish_with(c, kResponse);
    if (!c->closed) pump(c);
}

void Worker::h2_mismatch(Conn* c) {
    std::string_view first(c->u2c.p ? c->u2c.p + c->u2c.off : "", c->u2c.len);
    srv_.h2_gate_->report_mismatch(first);  // copies what it needs; h2 is withdrawn from now on
    st_.h2_http11_required.fetch_add(1, std::memory_order_relaxed);
    ::close(c->ufd);
    c->ufd = -1;
    c->u_rd = c->u_wr = false;
    c->u_eof = c->u_hup = false;  // the upstream's close no longer ends this connection
    c->h2_check = false;
    release(c->u2c);
    release(c->c2u);
    // The upstream may answer the preface before the client's HEADERS got here; a stream can be
    // refused only once it exists. The client closes once it has moved to HTTP/1.1.
    c->state = Conn::State::H2Refusing;
    list_append(hs_list_, c, now_ + srv_.opts_.handshake_timeout);
    h2_refuse_new_streams(c);
}

void Worker::h2_refuse_new_streams(Conn* c) {
    if (c->c_eof) return close_conn(c);
    // The client acknowledged our SETTINGS, sent with the resets: it has read them. The client
    // closes the connection itself once it moved to HTTP/1.1; if it does not, a close_notify
    // follows after a grace period (expire_timers), not at once: curl 7.88 reports an empty
    // reply when the end of the connection reaches it before it acted on the reset (measured).
    if (c->h2_refused > 0 && c->h2_streams.settings_acked && !c->h2_grace) {
        c->h2_grace = true;
        list_append(hs_list_, c, now_ + std::min<std::chrono::milliseconds>(std::chrono::seconds(1),
                                                                             srv_.opts_.handshake_timeout));
    }
    uint32_t max = c->h2_streams.max_stream;
    if (max <= c->h2_refused) return;
    std::string frames = h2_refuse_frames(c->h2_refused + 1, max, c->h2_refused == 0);
    if (!ensure(c->u2c)) return close_conn(c);
    Buf& b = c->u2c;
    if (b.len == 0) b.off = 0;
    if (b.off + b.len + frames.size() > srv_.opts_.buffer_size) return;  // after the pending bytes
    std::memcpy(b.p + b.off + b.len, frames.data(), frames.size());
    b.len += static_cast<uint32_t>(frames.size());
    c->h2_refused = max;
}

void Worker::respond_and_close(Conn* c, std::string response) {
    release(c->c2u);
    if (!ensure(c->u2c)) {
        close_conn(c);
        return;
    }
    size_t n = std::min(response.size(), srv_.opts_.buffer_size);
    std::memcpy(c->u2c.p, response.data(), n);
    c->u2c.len = static_cast<uint32_t>(n);
    c->u_eof = c->c_eof = true;  // nothing more to read on either side
    c->state = Conn::State::Responding;
    pump(c);
}

void Worker::do_http_head(Conn* c) {
    if (!ensure(c->c2u)) {
        close_conn(c);
        return;
    }
    Buf& b = c->c2u;
    while (b.len < kMaxRequestHead) {
        ssize_t n = ::read(c->cfd, b.p + b.len, kMaxRequestHead - b.len);
        if (n > 0) {
            b.len += static_cast<uint32_t>(n);
            continue;
        }
        if (n == 0) {  // client went away before finishing its request
            close_conn(c);
            return;
        }
        if (errno == EINTR) continue;
        if (would_block(errno)) {
            c->c_rd = false;
            break;
        }
        close_conn(c);
        return;
    }
    RequestHead h;
    ParseResult pr = parse_request_head(std::string_view(b.p, b.len), &h);
    if (pr == ParseResult::Incomplete) {
        if (b.len == 0) release(b);
        return;
    }
    if (pr == ParseResult::Bad) {
        respond_and_close(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    if (pr == ParseResult::TooLarge) {
        respond_and_close(c,
                          "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: "
                          "close\r\n\r\n");
        return;
    }
    std::string_view token = acme_challenge_token(h.target);
    if (!token.empty() && (h.method == "GET" || h.method == "HEAD")) {
        // RFC 8555 §8.3: the body is the key authorization, nothing else.
        auto ka = srv_.challenges_ ? srv_.challenges_->http01(token) : std::nullopt;
        std::string resp;
        if (ka) {
            st_.http01_served.fetch_add(1, std::memory_order_relaxed);
            resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(ka->size()) +
                   "\r\nConnection: close\r\n\r\n";
            if (h.method == "GET") resp += *ka;
        } else {
            resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        }
        respond_and_close(c, std::move(resp));
        return;
    }
    if (srv_.opts_.http_mode == HttpMode::Redirect) {
        std::string_view host = host_without_port(h.host);
        if (host.empty()) {
            respond_and_close(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        std::string loc = "https://" + std::string(host);
        if (srv_.tls_port_ != 443) loc += ":" + std::to_string(srv_.tls_port_);
        loc += (h.target.empty() || h.target[0] != '/') ? std::string("/") : std::string(h.target);
        respond_and_close(c, "HTTP/1.1 301 Moved Permanently\r\nLocation: " + loc +
                                 "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    // Pass-through: the plain connection goes to the upstream, PROXY header first.
    std::string prefix;
    if (srv_.opts_.proxy_protocol != ProxyProtocol::None) {
        ProxyInfo pi;
        pi.src = c->peer;
        socklen_t l = sizeof pi.dst;
        if (http_local_known_) pi.dst = http_local_;
        else getsockname(c->cfd, reinterpret_cast<sockaddr*>(&pi.dst), &l);
        append_proxy_header(prefix, srv_.opts_.proxy_protocol, pi);
    }
    prefix.append(b.p, b.len);
    release(b);
    start_upstream(c, std::move(prefix));
}

// Copies in both directions until nothing can move. A direction stops reading while its
// buffer is full (backpressure); buffers go back to the pool as soon as they are empty.
void Worker::pump(Conn* c) {
    const uint32_t cap = static_cast<uint32_t>(srv_.opts_.buffer_size);
    bool any = false;
    for (int round = 0; round < 64; ++round) {
        bool progress = false;
        // ---- client → upstream ----
        Buf& a = c->c2u;
        bool can_read_client = c->rd_wants_wr ? c->c_wr : c->tls_readable();
        if (!c->c_eof && can_read_client && (!a.p || a.off + a.len < cap)) {
            if (!ensure(a)) return close_conn(c);
            if (a.len == 0) a.off = 0;
            char* dst = a.p + a.off + a.len;
            uint32_t space = cap - a.off - a.len;
            if (c->ssl) {
                int n = SSL_read(c->ssl, dst, static_cast<int>(space));
                if (n > 0) {
                    if (c->h2_check || c->state == Conn::State::H2Refusing)
                        c->h2_streams.feed(std::string_view(dst, size_t(n)));
                    a.len += static_cast<uint32_t>(n);
                    st_.bytes_in.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
                    c->rd_wants_wr = false;
                    progress = true;
                } else {
                    int e = SSL_get_error(c->ssl, n);
                    if (e == SSL_ERROR_WANT_READ) {
                        c->c_rd = false;
                        c->rd_wants_wr = false;
                    } else if (e == SSL_ERROR_WANT_WRITE) {
                        c->c_wr = false;
                        c->rd_wants_wr = true;
                    } else if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                        c->c_eof = true;  // close_notify, or a plain FIN without it
                        progress = true;
                    } else {
                        ossl::clear_errors();
                        return close_conn(c);
                    }
                }
            } else {
                ssize_t n = ::read(c->cfd, dst, space);
                if (n > 0) {
                    a.len += static_cast<uint32_t>(n);
                    st_.bytes_in.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
                    if (static_cast<uint32_t>(n) < space && !c->c_hup) c->c_rd = false;  // drained; ET re-arms
                    progress = true;
                } else if (n == 0) {
                    c->c_eof = true;
                    progress = true;
                } else if (would_block(errno)) {
                    c->c_rd = false;
                } else if (errno != EINTR) {
                    return close_conn(c);
                }
            }
            if (c->state == Conn::State::Closing || c->state == Conn::State::H2Refusing)
                a.len = 0;  // nobody to forward to (the client's frames were tracked above)
            if (c->state == Conn::State::H2Refusing) {
                h2_refuse_new_streams(c);
                if (c->closed) return;
            }
            if (a.len == 0) release(a);
        }
        if (a.len > 0 && c->u_wr && c->ufd >= 0) {
            ssize_t n = ::send(c->ufd, a.p + a.off, a.len, MSG_NOSIGNAL);
            if (n > 0) {
                a.off += static_cast<uint32_t>(n);
                a.len -= static_cast<uint32_t>(n);
                if (a.len == 0) release(a);
                else c->u_wr = false;  // short write: the socket buffer is full
                progress = true;
            } else if (n < 0 && would_block(errno)) {
                c->u_wr = false;
            } else if (n < 0 && errno != EINTR) {
                st_.upstream_errors.fetch_add(1, std::memory_order_relaxed);
                return upstream_failed(c);  // refused or reset: a 502 if nothing came back yet
            }
        }
        if (c->c_eof && a.len == 0 && !c->u_shut && c->ufd >= 0) {
            ::shutdown(c->ufd, SHUT_WR);  // half-close: pass the client's FIN on
            c->u_shut = true;
            progress = true;
        }
        // ---- upstream → client ----
        Buf& b = c->u2c;
        if (c->ktls_tx && c->state == Conn::State::Streaming && !c->h2_check && b.len == 0 && !c->no_splice) {
            if (!splice_u2c(c, progress)) return;  // closed
        } else if (!c->u_eof && c->u_rd && c->ufd >= 0 && (!b.p || b.off + b.len < cap)) {
            if (!ensure(b)) return close_conn(c);
            if (b.len == 0) b.off = 0;
            uint32_t space = cap - b.off - b.len;
            ssize_t n = ::read(c->ufd, b.p + b.off + b.len, space);
            if (n > 0) {
                b.len += static_cast<uint32_t>(n);
                c->u_any = true;
                if (static_cast<uint32_t>(n) < space && !c->u_hup) c->u_rd = false;
                progress = true;
            } else if (n == 0) {
                c->u_eof = true;
                progress = true;
            } else if (would_block(errno)) {
                c->u_rd = false;
            } else if (errno != EINTR) {
                st_.upstream_errors.fetch_add(1, std::memory_order_relaxed);
                return upstream_failed(c);
            }
            if (c->h2_check && (b.len > 0 || c->u_eof)) {
                PrefaceVerdict v = h2_preface_verdict(std::string_view(b.p ? b.p + b.off : "", b.len));
                if (v == PrefaceVerdict::Settings) c->h2_check = false;
                else if (v == PrefaceVerdict::NotH2 || c->u_eof) h2_mismatch(c);  // NeedMore: hold
                if (c->closed) return;
            }
            if (b.len == 0) release(b);
        }
        bool can_write_client = c->wr_wants_rd ? c->tls_readable() : c->c_wr;
        if (b.len > 0 && can_write_client && !c->h2_check) {
            if (c->ssl) {
                // The upstream has finished: these are the last bytes, and close_notify plus
                // the FIN follow at once. Hold the partial segment for them (conn_bio.cpp).
                c->more = c->u_eof;
                int n = SSL_write(c->ssl, b.p + b.off, static_cast<int>(b.len));
                c->more = false;  // only these bytes: nothing else written later may wait
                if (n > 0) {
                    st_.bytes_out.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
                    b.off += static_cast<uint32_t>(n);
                    b.len -= static_cast<uint32_t>(n);
                    c->wr_wants_rd = false;
                    progress = true;
                } else {
                    int e = SSL_get_error(c->ssl, n);
                    if (e == SSL_ERROR_WANT_WRITE) {
                        c->c_wr = false;
                        c->wr_wants_rd = false;
                    } else if (e == SSL_ERROR_WANT_READ) {
                        c->c_rd = false;
                        c->wr_wants_rd = true;
                    } else {
                        ossl::clear_errors();
                        return close_conn(c);
                    }
                }
            } else {
                ssize_t n = ::send(c->cfd, b.p + b.off, b.len, MSG_NOSIGNAL);
                if (n > 0) {
                    st_.bytes_out.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
                    if (static_cast<uint32_t>(n) < b.len) c->c_wr = false;
                    b.off += static_cast<uint32_t>(n);
                    b.len -= static_cast<uint32_t>(n);
                    progress = true;
                } else if (n < 0 && would_block(errno)) {
                    c->c_wr = false;
                } else if (n < 0 && errno != EINTR) {
                    return close_conn(c);
                }
            }
            if (b.len == 0) release(b);
        }
        if (c->u_eof && b.len == 0 && c->pipe_len == 0 && !c->c_shut) {
            if (c->state == Conn::State::Responding) return close_conn(c);
            if (c->ssl) {
                c->more = true;
                SSL_shutdown(c->ssl);  // close_notify, then our FIN
                c->more = false;
            }
            ::shutdown(c->cfd, SHUT_WR);  // sends what MSG_MORE held, with the FIN
            c->c_shut = true;
            progress = true;
        }
        if (c->c_eof && c->u_eof && c->c2u.len == 0 && c->u2c.len == 0 && c->pipe_len == 0) return close_conn(c);
        if (spdlog::should_log(spdlog::level::trace))
            spdlog::trace("conn cfd={} ufd={} st={} c_rd={} c_wr={} u_rd={} u_wr={} c_eof={} u_eof={} c2u={} u2c={} progress={}",
                          c->cfd, c->ufd, int(c->state), c->c_rd, c->c_wr, c->u_rd, c->u_wr, c->c_eof, c->u_eof,
                          c->c2u.len, c->u2c.len, progress);
        if (!progress) break;
        any = true;
        if (round == 63) again_.push_back(c);  // fairness: finish after the other ready events
    }
    if (any && c->state == Conn::State::Streaming)
        list_append(idle_list_, c, now_ + srv_.opts_.idle_timeout);
}

// Upstream → client with kernel TLS: splice(2) moves the bytes from the upstream socket into a
// pipe and from the pipe into the client socket, where the kernel encrypts them; they never
// reach user space. The pipe is filled only when it is empty, so EAGAIN from the upstream means
// "drained" (edge-triggered readiness), never "pipe full".
bool Worker::splice_u2c(Conn* c, bool& progress) {
    if (c->pipe_r < 0 && !take_pipe(c)) {
        c->no_splice = true;  // out of file descriptors: copy through user space instead
        return true;
    }
    if (c->pipe_len == 0 && !c->u_eof && c->u_rd && c->ufd >= 0) {
        ssize_t n = ::splice(c->ufd, nullptr, c->pipe_w, nullptr, kPipeChunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            c->pipe_len = static_cast<uint32_t>(n);
            c->u_any = true;
            progress = true;
        } else if (n == 0) {
            c->u_eof = true;
            progress = true;
        } else if (would_block(errno)) {
            c->u_rd = false;
        } else if (errno != EINTR) {
            st_.upstream_errors.fetch_add(1, std::memory_order_relaxed);
            upstream_failed(c);
            return false;
        }
    }
    if (c->pipe_len > 0 && c->c_wr) {
        ssize_t n = ::splice(c->pipe_r, nullptr, c->cfd, nullptr, c->pipe_len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            c->pipe_len -= static_cast<uint32_t>(n);
            st_.bytes_out.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
            st_.ktls_spliced_bytes.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
            progress = true;
        } else if (n < 0 && would_block(errno)) {
            c->c_wr = false;
        } else if (n < 0 && errno != EINTR) {
            close_conn(c);
            return false;
        }
    }
    // A drained connection gives its empty pipe back: an idle keep-alive connection holds none.
    if (c->pipe_len == 0 && (!c->u_rd || c->u_eof)) give_pipe(c);
    return true;
}

}  // namespace edgecert::proxy
