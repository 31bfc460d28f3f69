// TerminatorRuntime: the composition `edgecert run` embeds. Real sockets on 127.0.0.1 (ports
// picked by the kernel); an http-01 answer put into the in-process challenge map is served by the
// very next request, and removed answers are gone.
#include "app/terminator_runtime.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace edgecert::app {
namespace {

std::string http_get(int port, const std::string& path) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{5, 0};  // a bound, not a sleep: a broken server fails the test instead of hanging
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return "connect failed";
    }
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: demo.example.test\r\nConnection: close\r\n\r\n";
    if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
        ::close(fd);
        return "write failed";
    }
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
}

class TerminatorRuntimeTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/terminator_runtime_test.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { (void)std::system(("rm -rf '" + dir_ + "'").c_str()); }
    std::string dir_;
};

TEST_F(TerminatorRuntimeTest, ServesInProcessChallengesAndIsReadyAfterTheFirstLoad) {
    tls::MemoryChallengeSource challenges;
    metrics::Registry reg;
    TerminatorRuntimeOptions o;
    o.server.listen = "127.0.0.1:0";
    o.server.http_listen = "127.0.0.1:0";
    o.server.upstream = "127.0.0.1:1";
    o.server.proxy_protocol = proxy::ProxyProtocol::None;
    o.cert_dir = dir_;
    bool extra = true;
    o.extra_ready = [&] { return extra; };
    auto rt = TerminatorRuntime::create(o, RealClock::instance(), &challenges, reg);
    ASSERT_TRUE(rt) << rt.error().message;
    EXPECT_FALSE((*rt)->ready());  // nothing loaded yet
    ASSERT_TRUE((*rt)->start());
    EXPECT_TRUE((*rt)->ready());  // an empty folder is a complete (empty) set
    extra = false;
    EXPECT_FALSE((*rt)->ready());
    extra = true;
    ASSERT_GT((*rt)->tls_port(), 0);
    ASSERT_GT((*rt)->http_port(), 0);
    EXPECT_EQ((*rt)->admin_port(), 0);  // no admin configured

    const std::string token = "tok_ABC-123";
    std::string r = http_get((*rt)->http_port(), "/.well-known/acme-challenge/" + token);
    EXPECT_EQ(r.find("tok_ABC-123.thumb"), std::string::npos) << r;
    challenges.set_http01(token, token + ".thumb");
    r = http_get((*rt)->http_port(), "/.well-known/acme-challenge/" + token);
    EXPECT_NE(r.find(" 200 "), std::string::npos) << r;
    EXPECT_NE(r.find("tok_ABC-123.thumb"), std::string::npos) << r;
    challenges.remove_http01(token);
    r = http_get((*rt)->http_port(), "/.well-known/acme-challenge/" + token);
    EXPECT_EQ(r.find("tok_ABC-123.thumb"), std::string::npos) << r;

    std::string text = reg.render();
    EXPECT_NE(text.find("edgecert_acme_challenges_served_total{type=\"http-01\"} 1"), std::string::npos) << text;
    EXPECT_NE(text.find("edgecert_loaded_certificates 0"), std::string::npos);

    EXPECT_TRUE((*rt)->drain());
    EXPECT_FALSE((*rt)->ready());
    (*rt)->stop();
    // Collectors are gone with the runtime's state.
    EXPECT_EQ(reg.render().find("edgecert_tls_handshakes_total"), std::string::npos);
}

TEST_F(TerminatorRuntimeTest, RequiresACertificateDirectory) {
    metrics::Registry reg;
    auto rt = TerminatorRuntime::create({}, RealClock::instance(), nullptr, reg);
    ASSERT_FALSE(rt);
    EXPECT_EQ(rt.error().code, ErrorCode::InvalidConfig);
}

}  // namespace
}  // namespace edgecert::app
