#include "platform/admin_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "edgecert/base/version.h"
#include "platform/curl_http.h"

namespace edgecert::platform {
namespace {

class AdminServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto c = CurlHttpClient::create({});
        ASSERT_TRUE(c.ok()) << c.error().message;
        client_ = std::move(c).value();
        auto s = AdminServer::create({"127.0.0.1:0"}, registry_, [this] { return ready_.load(); });
        ASSERT_TRUE(s.ok()) << s.error().message;
        server_ = std::move(s).value();
        auto st = server_->start();
        ASSERT_TRUE(st.ok()) << st.error().message;
        ASSERT_GT(server_->port(), 0);
    }

    HttpResponse request(const std::string& method, const std::string& path_and_query) {
        HttpRequest req;
        req.method = method;
        req.url = "http://127.0.0.1:" + std::to_string(server_->port()) + path_and_query;
        req.timeout = std::chrono::milliseconds(10'000);
        auto r = client_->send(req);
        EXPECT_TRUE(r.ok()) << r.error().message;
        return r.ok() ? std::move(r).value() : HttpResponse{};
    }

    metrics::Registry registry_;
    std::atomic<bool> ready_{false};
    std::unique_ptr<CurlHttpClient> client_;
    std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, Healthz) {
    auto r = request("GET", "/healthz");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ok");
}

TEST_F(AdminServerTest, ReadinessFollowsCallback) {
    auto r = request("GET", "/readyz");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body, "not ready");
    ready_ = true;
    r = request("GET", "/readyz");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ready");
    ready_ = false;
    EXPECT_EQ(request("GET", "/readyz").status, 503);
}

TEST_F(AdminServerTest, MetricsServesRegistryWithProcessMetrics) {
    registry_.counter("edgecert_tls_handshakes_total", "TLS handshakes by result.",
                      {{"result", "ok"}})
        ->inc(41);
    auto r = request("GET", "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("content-type").value_or(""), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(r.body.find("\nedgecert_tls_handshakes_total{result=\"ok\"} 41\n"), std::string::npos)
        << r.body;
    EXPECT_NE(r.body.find("edgecert_build_info{version=\""), std::string::npos);
    for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                             "process_open_fds", "process_start_time_seconds",
                             "process_virtual_memory_bytes", "process_max_fds"}) {
        EXPECT_NE(r.body.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
    }
    // Plausible values read from /proc/self at scrape time.
    auto value_of = [&](const std::string& name) {
        auto at = r.body.find("\n" + name + " ");
        EXPECT_NE(at, std::string::npos) << name;
        return at == std::string::npos ? -1.0
                                       : std::strtod(r.body.c_str() + at + name.size() + 2, nullptr);
    };
    EXPECT_GT(value_of("process_resident_memory_bytes"), 1e6);
    EXPECT_GT(value_of("process_open_fds"), 2);
    double start = value_of("process_start_time_seconds");
    double now = static_cast<double>(std::time(nullptr));
    EXPECT_LE(start, now + 1);
    EXPECT_GT(start, now - 24 * 3600.0);  // this test process started recently
}

TEST_F(AdminServerTest, VersionIsJson) {
    auto r = request("GET", "/version");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("content-type").value_or(""), "application/json");
    EXPECT_EQ(r.body, std::string("{\"version\":\"") + kVersion + "\"}\n");
}

TEST_F(AdminServerTest, UnknownPathIs404AndNonGetIs405) {
    EXPECT_EQ(request("GET", "/nope").status, 404);
    EXPECT_EQ(request("GET", "/metrics/extra").status, 404);
    auto r = request("POST", "/metrics");
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.header("allow").value_or(""), "GET");
    EXPECT_EQ(request("DELETE", "/healthz").status, 405);
    EXPECT_EQ(request("PUT", "/readyz").status, 405);
}

TEST_F(AdminServerTest, ExtraHandlerGetsPathAndQuery) {
    std::string seen_path, seen_query;
    server_->add_handler("/debug/certs", [&](const std::string& path, const std::string& query,
                                             int& status, std::string& ct, std::string& body) {
        seen_path = path;
        seen_query = query;
        status = 202;
        ct = "application/json";
        body = "[]";
    });
    auto r = request("GET", "/debug/certs?name=web&x=1");
    EXPECT_EQ(r.status, 202);
    EXPECT_EQ(r.body, "[]");
    EXPECT_EQ(r.header("content-type").value_or(""), "application/json");
    EXPECT_EQ(seen_path, "/debug/certs");
    EXPECT_EQ(seen_query, "name=web&x=1");
    EXPECT_EQ(request("POST", "/debug/certs").status, 405);
}

TEST_F(AdminServerTest, ThrowingHandlerGives500AndServerSurvives) {
    server_->add_handler("/boom", [](const std::string&, const std::string&, int&, std::string&,
                                     std::string&) { throw std::runtime_error("kaput"); });
    auto r = request("GET", "/boom");
    EXPECT_EQ(r.status, 500);
    EXPECT_EQ(r.body, "internal error\n");  // the exception text is logged, not served
    EXPECT_EQ(request("GET", "/healthz").status, 200);
}

// The listener binds the given address only, not every interface.
TEST_F(AdminServerTest, ListensOnLoopbackOnly) {
    char want[32];
    std::snprintf(want, sizeof want, "0100007F:%04X", server_->port());
    char any[32];
    std::snprintf(any, sizeof any, "00000000:%04X", server_->port());
    std::ifstream f("/proc/net/tcp");
    std::string line;
    bool found = false, on_any = false;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string sl, local, remote, state;
        in >> sl >> local >> remote >> state;
        if (state != "0A") continue;  // LISTEN
        if (local == want) found = true;
        if (local == any) on_any = true;
    }
    EXPECT_TRUE(found) << "no LISTEN socket on 127.0.0.1:" << server_->port();
    EXPECT_FALSE(on_any);
}

// cpprestsdk's pool threads must not take process signals (SIGTERM/SIGINT/SIGHUP are the roles'
// business): they are created with every signal blocked.
TEST_F(AdminServerTest, PoolThreadsBlockSignals) {
    int blocking = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream f(task.path() / "status");
        for (std::string line; std::getline(f, line);) {
            if (line.rfind("SigBlk:", 0) != 0) continue;
            unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
            auto bit = [&](int sig) { return (mask >> (sig - 1)) & 1; };
            if (bit(SIGTERM) && bit(SIGINT) && bit(SIGHUP)) ++blocking;
        }
    }
    EXPECT_GE(blocking, 4) << "cpprestsdk pool threads do not block signals";
}

TEST_F(AdminServerTest, PortInUseFailsClearly) {
    metrics::Registry other;
    auto s = AdminServer::create({"127.0.0.1:" + std::to_string(server_->port())}, other,
                                 [] { return true; });
    ASSERT_TRUE(s.ok());
    auto st = (*s)->start();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::Transient);
    EXPECT_NE(st.error().message.find("cannot listen on 127.0.0.1:" +
                                      std::to_string(server_->port())),
              std::string::npos)
        << st.error().message;
    // The first server is unaffected.
    EXPECT_EQ(request("GET", "/healthz").status, 200);
}

// A port held by someone else (here: a plain listening socket) is reported, not ignored.
TEST(AdminServerCreate, PortHeldByAnotherSocketFailsClearly) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(fd, 1), 0);
    socklen_t len = sizeof sa;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
    int port = ntohs(sa.sin_port);
    metrics::Registry r;
    auto s = AdminServer::create({"127.0.0.1:" + std::to_string(port)}, r, [] { return true; });
    ASSERT_TRUE(s.ok());
    auto st = (*s)->start();
    ::close(fd);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::Transient);
    EXPECT_NE(st.error().message.find("cannot listen on 127.0.0.1:" + std::to_string(port)),
              std::string::npos)
        << st.error().message;
    EXPECT_EQ((*s)->port(), 0);
}

TEST_F(AdminServerTest, StopClosesThePortAndIsIdempotent) {
    int port = server_->port();
    server_->stop();
    server_->stop();
    EXPECT_EQ(server_->port(), 0);
    HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(port) + "/healthz";
    req.timeout = std::chrono::milliseconds(5'000);
    auto r = client_->send(req);
    EXPECT_FALSE(r.ok());  // connection refused
    // And it can start again.
    ASSERT_TRUE(server_->start().ok());
    EXPECT_EQ(request("GET", "/healthz").status, 200);
}

TEST(AdminServerCreate, RejectsBadListenAddresses) {
    metrics::Registry r;
    for (const char* bad : {"", "9402", "127.0.0.1", ":9402", "127.0.0.1:x", "127.0.0.1:70000",
                            "[::1]9402", "::1:9402", "[::1]:0"}) {
        auto s = AdminServer::create({bad}, r, [] { return true; });
        ASSERT_FALSE(s.ok()) << bad;
        EXPECT_EQ(s.error().code, ErrorCode::InvalidConfig) << bad;
    }
}

TEST(AdminServerCreate, ProcessCollectorsRegisteredOncePerRegistry) {
    metrics::Registry r;
    auto a = AdminServer::create({"127.0.0.1:0"}, r, [] { return true; });
    auto b = AdminServer::create({"127.0.0.1:0"}, r, [] { return true; });
    ASSERT_TRUE(a.ok() && b.ok());
    std::string text = r.render();
    auto first = text.find("\nprocess_open_fds ");
    ASSERT_NE(first, std::string::npos);
    EXPECT_EQ(text.find("\nprocess_open_fds ", first + 1), std::string::npos) << "duplicate series";
    a = Error(ErrorCode::Permanent, "drop a");
    EXPECT_NE(r.render().find("\nprocess_open_fds "), std::string::npos);  // b still holds them
    b = Error(ErrorCode::Permanent, "drop b");
    EXPECT_EQ(r.render().find("process_open_fds"), std::string::npos);
}

// What /metrics really serves passes Prometheus' own checker.
TEST_F(AdminServerTest, PromtoolAcceptsServedMetrics) {
    if (std::system("command -v promtool >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "promtool not installed (Debian package 'prometheus', listed in "
                        "scripts/setup.sh): exposition not validated";
    registry_.histogram("edgecert_tls_handshake_duration_seconds", "TLS handshake duration.",
                        {0.001, 0.01, 0.1})
        ->observe(0.02);
    auto r = request("GET", "/metrics");
    ASSERT_EQ(r.status, 200);
    auto path = std::filesystem::temp_directory_path() /
                ("admin_server_test_" + std::to_string(::getpid()) + ".prom");
    {
        std::ofstream f(path);
        f << r.body;
    }
    FILE* p = ::popen(("promtool check metrics < " + path.string() + " 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string output;
    char buf[512];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) output.append(buf, n);
    int rc = ::pclose(p);
    std::filesystem::remove(path);
    EXPECT_EQ(rc, 0) << output << "\n" << r.body;
    EXPECT_EQ(output, "");
}

}  // namespace
}  // namespace edgecert::platform
