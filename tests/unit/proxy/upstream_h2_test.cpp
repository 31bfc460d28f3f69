// The h2c check: the server-preface verdict on an upstream's first bytes, the probe against a
// real loopback socket (what it sends, what it concludes), and the gate's state changes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "proxy/upstream_h2.h"

namespace edgecert::proxy {
namespace {

using namespace std::chrono_literals;

std::string frame_bytes(std::initializer_list<int> b) {
    std::string s;
    for (int x : b) s.push_back(static_cast<char>(x));
    return s;
}

TEST(H2Preface, SettingsFirstIsHttp2) {
    EXPECT_EQ(h2_preface_verdict(frame_bytes({0, 0, 0, 4, 0, 0, 0, 0, 0})), PrefaceVerdict::Settings);
    // One parameter (6 bytes), as nghttpd and most servers send it, followed by more frames.
    EXPECT_EQ(h2_preface_verdict(frame_bytes({0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100, 0, 0})),
              PrefaceVerdict::Settings);
}

TEST(H2Preface, AnythingElseIsNot) {
    EXPECT_EQ(h2_preface_verdict("HTTP/1.1 400 Bad Request\r\n"), PrefaceVerdict::NotH2);
    EXPECT_EQ(h2_preface_verdict("HTTP"), PrefaceVerdict::NotH2);  // decided at the 4th byte
    EXPECT_EQ(h2_preface_verdict(frame_bytes({0, 0, 0, 4, 1, 0, 0, 0, 0})),
              PrefaceVerdict::NotH2);  // ACK first
    EXPECT_EQ(h2_preface_verdict(frame_bytes({0, 0, 5, 4, 0, 0, 0, 0, 0})),
              PrefaceVerdict::NotH2);  // not 6n long
    EXPECT_EQ(h2_preface_verdict(frame_bytes({0, 0, 0, 4, 0, 0, 0, 0, 1})),
              PrefaceVerdict::NotH2);  // stream 1
    EXPECT_EQ(h2_preface_verdict(frame_bytes({0, 0, 8, 7, 0, 0, 0, 0, 0})),
              PrefaceVerdict::NotH2);  // GOAWAY first
}

TEST(H2Preface, ShortPrefixesWait) {
    EXPECT_EQ(h2_preface_verdict(""), PrefaceVerdict::NeedMore);
    EXPECT_EQ(h2_preface_verdict(frame_bytes({0, 0, 0})), PrefaceVerdict::NeedMore);
    EXPECT_EQ(h2_preface_verdict(frame_bytes({0, 0, 0, 4, 0, 0, 0})), PrefaceVerdict::NeedMore);
}

TEST(H2Preface, RefusalIsPrefaceThenRstStreamHttp11RequiredPerStream) {
    std::string f = h2_refuse_frames(1, 3, true);
    // SETTINGS, SETTINGS ACK, RST_STREAM(1), RST_STREAM(3); no GOAWAY.
    ASSERT_EQ(f.size(), 9u + 9u + 2 * 13u);
    EXPECT_EQ(h2_preface_verdict(f), PrefaceVerdict::Settings);
    EXPECT_EQ(f.substr(9, 9), frame_bytes({0, 0, 0, 4, 1, 0, 0, 0, 0}));
    EXPECT_EQ(f.substr(18, 13), frame_bytes({0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 0x0d}));
    EXPECT_EQ(f.substr(31, 13), frame_bytes({0, 0, 4, 3, 0, 0, 0, 0, 3, 0, 0, 0, 0x0d}));
    // Later streams: just their resets.
    EXPECT_EQ(h2_refuse_frames(5, 5, false), frame_bytes({0, 0, 4, 3, 0, 0, 0, 0, 5, 0, 0, 0, 0x0d}));
    EXPECT_EQ(h2_refuse_frames(5, 3, false), "");
}

TEST(H2Preface, StreamTrackerFollowsFramesAcrossReads) {
    std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    std::string settings = frame_bytes({0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100});
    std::string headers1 = frame_bytes({0, 0, 2, 1, 5, 0, 0, 0, 1, 0x82, 0x84});
    std::string headers3 = frame_bytes({0, 0, 2, 1, 5, 0, 0, 0, 3, 0x82, 0x84});
    // A DATA frame whose payload looks like a HEADERS frame header: skipped as payload.
    std::string data = frame_bytes({0, 0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 9});
    std::string all = preface + settings + headers1 + data + headers3;
    H2StreamTracker one;
    one.feed(preface + settings);
    EXPECT_EQ(one.max_stream, 0u);  // curl's first record: no request yet
    one.feed(headers1);
    EXPECT_EQ(one.max_stream, 1u);
    // The same bytes cut at every possible point, fed in two pieces: the same answer.
    for (size_t cut = 0; cut <= all.size(); ++cut) {
        H2StreamTracker t;
        t.feed(all.substr(0, cut));
        t.feed(all.substr(cut));
        EXPECT_EQ(t.max_stream, 3u) << cut;
    }
    H2StreamTracker byte_by_byte;
    for (char ch : all) byte_by_byte.feed(std::string_view(&ch, 1));
    EXPECT_EQ(byte_by_byte.max_stream, 3u);
    EXPECT_FALSE(byte_by_byte.settings_acked);
    byte_by_byte.feed(frame_bytes({0, 0, 0, 4, 1, 0, 0, 0, 0}));  // the client's ACK of our SETTINGS
    EXPECT_TRUE(byte_by_byte.settings_acked);
}

TEST(H2Preface, DescribeAnswers) {
    EXPECT_EQ(
        describe_upstream_answer("HTTP/1.0 400 Bad request version ('HTTP/2.0')\r\nServer: x\r\n"),
        "\"HTTP/1.0 400 Bad request version ('HTTP/2.0')\"");
    EXPECT_EQ(describe_upstream_answer(""), "nothing (it closed the connection)");
    EXPECT_EQ(describe_upstream_answer(frame_bytes({0x15, 0x03, 0x03, 0x00, 0x02})), "bytes 1503030002");
    // Python's http.server answers an HTTP/2.0 request line HTTP/0.9-style: the error page only.
    EXPECT_EQ(describe_upstream_answer("<!DOCTYPE HTML>\n<html lang=\"en\">"),
              "\"<!DOCTYPE HTML>\"");
}

// A loopback server answering every connection with `answer` after reading the first bytes
// (or holding the connection open when `silent`); it records what the first one sent.
class FakeUpstream {
  public:
    explicit FakeUpstream(std::string answer, bool silent = false)
        : answer_(std::move(answer)), silent_(silent) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(fd_, 16), 0);
        socklen_t l = sizeof addr_;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &l);
        len_ = l;
        thread_ = std::thread([this] { loop(); });
    }
    ~FakeUpstream() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        thread_.join();
        ::close(fd_);
    }
    void set_answer(std::string a) {
        std::lock_guard<std::mutex> l(mu_);
        answer_ = std::move(a);
    }
    std::string first_request() {
        std::lock_guard<std::mutex> l(mu_);
        return first_;
    }
    int connections() const { return conns_.load(); }
    const sockaddr_storage& addr() const { return addr_; }
    socklen_t len() const { return len_; }

  private:
    void loop() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            ++conns_;
            std::string got;
            char buf[256];
            pollfd q{c, POLLIN, 0};
            while (got.size() < 24 && ::poll(&q, 1, 1000) > 0) {
                ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                got.append(buf, static_cast<size_t>(n));
            }
            std::string answer;
            {
                std::lock_guard<std::mutex> l(mu_);
                if (first_.empty()) first_ = got;
                answer = answer_;
            }
            if (silent_) {
                while (!stop_ && ::poll(&q, 1, 50) == 0) {
                }
            } else {
                [[maybe_unused]] auto r = ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
            }
            ::close(c);
        }
    }
    int fd_ = -1;
    sockaddr_storage addr_{};
    socklen_t len_ = 0;
    std::mutex mu_;
    std::string answer_, first_;
    bool silent_;
    std::atomic<bool> stop_{false};
    std::atomic<int> conns_{0};
    std::thread thread_;
};

const std::string kSettings = frame_bytes({0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100});
const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

TEST(H2Probe, SpeaksWhenSettingsComeBackAndSendsPrefaceAfterProxyLocal) {
    FakeUpstream up(kSettings);
    auto r = probe_h2c(up.addr(), up.len(), ProxyProtocol::V2, 2000ms);
    EXPECT_EQ(r.kind, H2ProbeResult::Kind::Speaks) << r.detail;
    std::string got = up.first_request();
    // PROXY v2 signature, version 2 + LOCAL, AF_UNSPEC, no addresses; then the client preface.
    ASSERT_GE(got.size(), 16u + 24u);
    EXPECT_EQ(got.substr(0, 12),
              frame_bytes({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}));
    EXPECT_EQ(got.substr(12, 4), frame_bytes({0x20, 0x00, 0x00, 0x00}));
    EXPECT_EQ(got.substr(16, 24), kPreface);
}

TEST(H2Probe, V1AndNoProxyHeader) {
    FakeUpstream up(kSettings);
    EXPECT_EQ(probe_h2c(up.addr(), up.len(), ProxyProtocol::V1, 2000ms).kind,
              H2ProbeResult::Kind::Speaks);
    EXPECT_EQ(up.first_request().substr(0, 15 + 24), std::string("PROXY UNKNOWN\r\n") + kPreface);
    FakeUpstream plain(kSettings);
    EXPECT_EQ(probe_h2c(plain.addr(), plain.len(), ProxyProtocol::None, 2000ms).kind,
              H2ProbeResult::Kind::Speaks);
    EXPECT_EQ(plain.first_request().substr(0, 24), kPreface);
}

TEST(H2Probe, Http1AnswerIsNotH2AndNamed) {
    FakeUpstream up("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    auto r = probe_h2c(up.addr(), up.len(), ProxyProtocol::None, 2000ms);
    EXPECT_EQ(r.kind, H2ProbeResult::Kind::NotH2);
    EXPECT_EQ(r.detail, "\"HTTP/1.1 400 Bad Request\"");
}

TEST(H2Probe, CloseWithoutAnswerIsNotH2) {
    FakeUpstream up("");
    auto r = probe_h2c(up.addr(), up.len(), ProxyProtocol::None, 2000ms);
    EXPECT_EQ(r.kind, H2ProbeResult::Kind::NotH2);
    EXPECT_EQ(r.detail, "nothing (it closed the connection)");
}

TEST(H2Probe, SilenceIsNotH2AfterTheDeadline) {
    FakeUpstream up("", /*silent=*/true);
    auto t0 = std::chrono::steady_clock::now();
    auto r = probe_h2c(up.addr(), up.len(), ProxyProtocol::None, 300ms);
    EXPECT_EQ(r.kind, H2ProbeResult::Kind::NotH2);
    EXPECT_NE(r.detail.find("no answer within 300 ms"), std::string::npos) << r.detail;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(H2Probe, ClosedPortIsUnreachable) {
    sockaddr_storage a{};
    socklen_t len;
    {
        FakeUpstream gone(kSettings);
        a = gone.addr();
        len = gone.len();
    }  // closed: connecting is refused now
    auto r = probe_h2c(a, len, ProxyProtocol::None, 2000ms);
    EXPECT_EQ(r.kind, H2ProbeResult::Kind::Unreachable);
    EXPECT_NE(r.detail.find("refused"), std::string::npos) << r.detail;
}

template <typename F>
bool eventually(F f, std::chrono::milliseconds limit = 5000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (f()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return f();
}

TEST(H2Gate, OffersH2OnlyAfterAProbeSucceedsAndWithdrawsItOnAMismatch) {
    FakeUpstream up(kSettings);
    std::atomic<int> offer{-1};
    H2Gate::Options o;
    o.upstream_name = "test-upstream";
    o.addr = up.addr();
    o.addr_len = up.len();
    o.retry_min = 50ms;
    o.retry_max = 200ms;
    H2Gate gate(o, [&](bool on) { offer = on ? 1 : 0; });
    EXPECT_FALSE(gate.offered());  // nothing is offered before the first answer
    gate.start();
    ASSERT_TRUE(eventually([&] { return gate.offered(); }));
    EXPECT_EQ(offer.load(), 1);
    EXPECT_EQ(gate.probes_ok(), 1u);

    // The upstream was replaced by an HTTP/1.1 server: a client connection reports it.
    up.set_answer("HTTP/1.1 400 Bad Request\r\n\r\n");
    gate.report_mismatch("HTTP/1.1 400 Bad Request\r\n\r\n");
    EXPECT_FALSE(gate.offered());  // at once, on the reporting thread
    EXPECT_EQ(offer.load(), 0);
    EXPECT_EQ(gate.mismatches(), 1u);
    ASSERT_TRUE(eventually([&] { return gate.probes_not_h2() >= 2; }));  // rechecked with backoff
    EXPECT_FALSE(gate.offered());

    // h2c is back: offered again without a restart.
    up.set_answer(kSettings);
    ASSERT_TRUE(eventually([&] { return gate.offered(); }));
    EXPECT_EQ(offer.load(), 1);
    gate.stop();
}

TEST(H2Gate, UnreachableUpstreamKeepsH2OffUntilItAnswers) {
    sockaddr_storage a{};
    socklen_t len;
    {
        FakeUpstream gone(kSettings);
        a = gone.addr();
        len = gone.len();
    }
    H2Gate::Options o;
    o.addr = a;
    o.addr_len = len;
    o.retry_min = 20ms;
    o.retry_max = 40ms;
    H2Gate gate(o, [](bool) {});
    gate.start();
    ASSERT_TRUE(eventually([&] { return gate.probes_unreachable() >= 2; }));
    EXPECT_FALSE(gate.offered());
    gate.stop();
}

}  // namespace
}  // namespace edgecert::proxy
