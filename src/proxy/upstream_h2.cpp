#include "proxy/upstream_h2.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace edgecert::proxy {
namespace {

// RFC 9113 §3.4: the client connection preface, then our (empty) SETTINGS frame.
constexpr char kClientPreface[] =
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
constexpr size_t kClientPrefaceLen = sizeof kClientPreface - 1;

constexpr uint32_t kHttp11Required = 0x0d;  // RFC 9113 §7

void put32(std::string& out, uint32_t v) {
    for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

// A frame header (RFC 9113 §4.1): length (24), type, flags, stream (31).
void frame_header(std::string& out, uint32_t len, uint8_t type, uint32_t stream) {
    out.push_back(static_cast<char>(len >> 16));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len));
    out.push_back(static_cast<char>(type));
    out.push_back(0);
    put32(out, stream & 0x7fffffffu);
}

// GOAWAY NO_ERROR, to end a successful probe politely.
constexpr char kGoawayNoError[] =
    "\x00\x00\x08\x07\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00";

std::string proxy_local_header(ProxyProtocol pp) {
    // A health check is what the LOCAL command (v2) and UNKNOWN (v1) exist for: the receiver
    // uses the real connection endpoints (proxy-protocol.txt §2.1, §2.2).
    if (pp == ProxyProtocol::V1) return "PROXY UNKNOWN\r\n";
    if (pp == ProxyProtocol::V2) {
        std::string h(reinterpret_cast<const char*>(kV2Signature), sizeof kV2Signature);
        h += std::string("\x20\x00\x00\x00", 4);  // version 2, LOCAL; AF_UNSPEC; length 0
        return h;
    }
    return {};
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
    return ms < 0 ? 0 : static_cast<int>(ms);
}

}  // namespace

PrefaceVerdict h2_preface_verdict(std::string_view b) {
    auto u = [&](size_t i) { return static_cast<unsigned char>(b[i]); };
    if (b.size() >= 4 && u(3) != 0x04) return PrefaceVerdict::NotH2;
    if (b.size() >= 5 && (u(4) & 0x01)) return PrefaceVerdict::NotH2;  // ACK cannot come first
    if (b.size() < 9) return PrefaceVerdict::NeedMore;
    uint32_t len = uint32_t(u(0)) << 16 | uint32_t(u(1)) << 8 | u(2);
    uint32_t stream =
        (uint32_t(u(5)) << 24 | uint32_t(u(6)) << 16 | uint32_t(u(7)) << 8 | u(8)) & 0x7fffffffu;
    if (stream != 0 || len % 6 != 0)
        return PrefaceVerdict::NotH2;  // §6.5: stream 0, 6-byte entries
    return PrefaceVerdict::Settings;
}

void H2StreamTracker::feed(std::string_view b) {
    while (!b.empty()) {
        if (skip > 0) {
            size_t n = std::min<size_t>(skip, b.size());
            skip -= static_cast<uint32_t>(n);
            b.remove_prefix(n);
            continue;
        }
        size_t n = std::min<size_t>(9 - have, b.size());
        std::memcpy(hdr + have, b.data(), n);
        have = static_cast<uint8_t>(have + n);
        b.remove_prefix(n);
        if (have < 9) return;
        have = 0;
        uint32_t sid =
            (uint32_t(hdr[5]) << 24 | uint32_t(hdr[6]) << 16 | uint32_t(hdr[7]) << 8 | hdr[8]) &
            0x7fffffffu;
        if (hdr[3] == 0x01 && (sid & 1))
            max_stream = std::max(max_stream, sid);  // HEADERS, client stream
        if (hdr[3] == 0x04 && (hdr[4] & 0x01)) settings_acked = true;
        skip = uint32_t(hdr[0]) << 16 | uint32_t(hdr[1]) << 8 | hdr[2];
    }
}

std::string h2_refuse_frames(uint32_t from_stream, uint32_t to_stream, bool preface) {
    std::string out;
    if (preface) {
        frame_header(out, 0, 0x04, 0);                                  // SETTINGS, empty
        out += std::string("\x00\x00\x00\x04\x01\x00\x00\x00\x00", 9);  // SETTINGS ACK
    }
    for (uint32_t sid = from_stream | 1; sid <= to_stream && sid != 0; sid += 2) {
        frame_header(out, 4, 0x03, sid);  // RST_STREAM
        put32(out, kHttp11Required);
    }
    return out;
}

std::string describe_upstream_answer(std::string_view b) {
    if (b.empty()) return "nothing (it closed the connection)";
    // Text (an HTTP/1 status line, an HTML error page): its first line, quoted.
    std::string_view line = b.substr(0, std::min(b.find_first_of("\r\n"), size_t(80)));
    bool text = !line.empty() && std::all_of(line.begin(), line.end(), [](char ch) {
        return static_cast<unsigned char>(ch) >= 0x20 && static_cast<unsigned char>(ch) <= 0x7e;
    });
    if (text) return "\"" + std::string(line) + "\"";
    static const char* hex = "0123456789abcdef";
    std::string out = "bytes ";
    for (size_t i = 0; i < std::min(b.size(), size_t(16)); ++i) {
        auto c = static_cast<unsigned char>(b[i]);
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

H2ProbeResult probe_h2c(const sockaddr_storage& addr, socklen_t len, ProxyProtocol pp,
                        std::chrono::milliseconds timeout) {
    using R = H2ProbeResult;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return {R::Kind::Unreachable, std::string("socket: ") + strerror(errno)};
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS)
        return {R::Kind::Unreachable, strerror(errno)};
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0)
        return {R::Kind::Unreachable, "connect timed out"};
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) return {R::Kind::Unreachable, strerror(err)};

    std::string out = proxy_local_header(pp);
    out.append(kClientPreface, kClientPrefaceLen);
    size_t sent = 0;
    while (sent < out.size()) {
        ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            p = {fd, POLLOUT, 0};
            if (::poll(&p, 1, remaining_ms(deadline)) <= 0)
                return {R::Kind::NotH2, "no answer (send timed out)"};
            continue;
        }
        return {R::Kind::Unreachable, std::string("send: ") + strerror(errno)};
    }
    std::string in;
    char buf[512];
    while (true) {
        switch (h2_preface_verdict(in)) {
            case PrefaceVerdict::Settings: {
                [[maybe_unused]] auto r =
                    ::send(fd, kGoawayNoError, sizeof kGoawayNoError - 1, MSG_NOSIGNAL);
                return {R::Kind::Speaks, ""};
            }
            case PrefaceVerdict::NotH2: {
                // Read the rest of a short HTTP/1 answer so the log line shows its status line.
                p = {fd, POLLIN, 0};
                while (in.size() < 200 && in.find('\n') == std::string::npos &&
                       ::poll(&p, 1, 100) > 0) {
                    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
                    if (n <= 0) break;
                    in.append(buf, static_cast<size_t>(n));
                }
                return {R::Kind::NotH2, describe_upstream_answer(in)};
            }
            case PrefaceVerdict::NeedMore:
                break;
        }
        p = {fd, POLLIN, 0};
        int pr = ::poll(&p, 1, remaining_ms(deadline));
        if (pr <= 0) {
            if (pr < 0 && errno == EINTR) continue;
            return {R::Kind::NotH2, "no answer within " + std::to_string(timeout.count()) + " ms"};
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            in.append(buf, static_cast<size_t>(n));
        } else if (n == 0) {
            return {R::Kind::NotH2, describe_upstream_answer(in)};
        } else if (errno != EINTR && errno != EAGAIN) {
            // A reset after the preface is an answer too: the upstream refused it.
            return {R::Kind::NotH2, std::string("a reset (") + strerror(errno) + ")"};
        }
    }
}

H2Gate::H2Gate(Options opts, std::function<void(bool)> set_offer)
    : opts_(std::move(opts)), set_offer_(std::move(set_offer)) {}

H2Gate::~H2Gate() {
    stop();
}

void H2Gate::start() {
    if (thread_.joinable()) return;
    thread_ = std::thread([this] { run(); });
}

void H2Gate::stop() {
    {
        std::lock_guard<std::mutex> l(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void H2Gate::report_mismatch(std::string_view first_bytes) {
    mismatches_.fetch_add(1, std::memory_order_relaxed);
    // Only the first report after h2 was offered matters; the rest are connections that
    // negotiated h2 before the gate closed.
    if (!offered_.exchange(false, std::memory_order_relaxed)) return;
    set_offer_(false);  // at once, from this worker: the next handshake already gets http/1.1
    {
        std::lock_guard<std::mutex> l(mu_);
        recheck_ = true;
        mismatch_detail_ = describe_upstream_answer(first_bytes);
    }
    cv_.notify_all();
}

void H2Gate::apply(const H2ProbeResult& r, bool from_client) {
    using K = H2ProbeResult::Kind;
    if (r.kind == K::Speaks) {
        probes_ok_.fetch_add(1, std::memory_order_relaxed);
        bool was = offered_.exchange(true, std::memory_order_relaxed);
        set_offer_(true);
        if (!was) {
            spdlog::info(
                "terminator: the upstream {} answers the HTTP/2 preface (h2c): offering h2 to "
                "clients",
                opts_.upstream_name);
        }
    } else if (r.kind == K::NotH2) {
        if (!from_client) probes_not_h2_.fetch_add(1, std::memory_order_relaxed);
        // Unconditionally: a worker's report may have raced with an earlier set_offer_(true).
        offered_.store(false, std::memory_order_relaxed);
        set_offer_(false);
        if (last_ != K::NotH2 || from_client || !logged_once_)
            spdlog::warn(
                "terminator: --upstream-protocol h2c, but the upstream {} does not speak HTTP/2 "
                "with prior "
                "knowledge: it answered the HTTP/2 preface with {}{}; offering clients only "
                "http/1.1 until it "
                "does (checked again every {}-{} s). Enable h2c on the upstream "
                "(docs/upstream-protocols.md) "
                "or use --upstream-protocol http1",
                opts_.upstream_name, r.detail, from_client ? " (seen on a client connection)" : "",
                opts_.retry_min.count() / 1000, opts_.retry_max.count() / 1000);
    } else {
        probes_unreachable_.fetch_add(1, std::memory_order_relaxed);
        if (last_ != K::Unreachable || !logged_once_)
            spdlog::warn(
                "terminator: cannot check whether the upstream {} speaks HTTP/2 (h2c): {}; {} "
                "until it "
                "answers",
                opts_.upstream_name, r.detail,
                offered() ? "still offering h2" : "offering clients only http/1.1");
    }
    last_ = r.kind;
    logged_once_ = true;
}

void H2Gate::run() {
    auto delay = std::chrono::milliseconds(0);
    bool need_probe = true;
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
        if (need_probe)
            cv_.wait_for(l, delay, [&] { return stop_ || recheck_; });
        else
            cv_.wait(l, [&] { return stop_ || recheck_; });
        if (stop_) break;
        if (recheck_) {
            recheck_ = false;
            H2ProbeResult r{H2ProbeResult::Kind::NotH2, mismatch_detail_};
            l.unlock();
            apply(r, true);
            l.lock();
            need_probe = true;
            delay = opts_.retry_min;
            continue;
        }
        l.unlock();
        H2ProbeResult r =
            probe_h2c(opts_.addr, opts_.addr_len, opts_.proxy_protocol, opts_.probe_timeout);
        apply(r, false);
        l.lock();
        if (r.kind == H2ProbeResult::Kind::Speaks) {
            need_probe = false;
        } else {
            delay = delay.count() == 0 ? opts_.retry_min : std::min(delay * 2, opts_.retry_max);
        }
    }
}

}  // namespace edgecert::proxy
