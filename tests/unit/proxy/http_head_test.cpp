#include "proxy/http_head.h"

#include <gtest/gtest.h>

#include <random>

namespace edgecert::proxy {
namespace {

TEST(HttpHead, ParsesAValidRequest) {
    RequestHead h;
    std::string req = "GET /.well-known/acme-challenge/abc_-1 HTTP/1.1\r\nHost: a.test:80\r\nUser-Agent: x\r\n\r\nBODY";
    ASSERT_EQ(parse_request_head(req, &h), ParseResult::Complete);
    EXPECT_EQ(h.method, "GET");
    EXPECT_EQ(h.target, "/.well-known/acme-challenge/abc_-1");
    EXPECT_EQ(h.host, "a.test:80");
    EXPECT_EQ(h.head_len, req.size() - 4);
    EXPECT_EQ(acme_challenge_token(h.target), "abc_-1");
    EXPECT_EQ(host_without_port(h.host), "a.test");
}

TEST(HttpHead, IncompleteUntilBlankLine) {
    RequestHead h;
    EXPECT_EQ(parse_request_head("", &h), ParseResult::Incomplete);
    EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nHost: a", &h), ParseResult::Incomplete);
    EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nHost: a\r\n", &h), ParseResult::Incomplete);
}

TEST(HttpHead, RejectsGarbage) {
    RequestHead h;
    const char* bad[] = {
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  // a TLS ClientHello on the plain port
        "GET / HTTP/1.1\r\n\r\n",                          // HTTP/1.1 without Host
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",    // two Hosts
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",              // empty target
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",     // obs-fold
        "GET / HTTP/1.1\r\nBad Header: x\r\nHost: a\r\n\r\n",
        "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "\r\n\r\n",
    };
    for (const char* b : bad) EXPECT_EQ(parse_request_head(b, &h), ParseResult::Bad) << b;
}

TEST(HttpHead, TooLarge) {
    RequestHead h;
    std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(kMaxRequestHead, 'a');
    EXPECT_EQ(parse_request_head(big, &h), ParseResult::TooLarge);
    EXPECT_EQ(parse_request_head(big + "\r\n\r\n", &h), ParseResult::TooLarge);
}

TEST(HttpHead, RandomBytesNeverCrashOrPass) {
    std::mt19937 rng(42);
    RequestHead h;
    for (int i = 0; i < 20000; ++i) {
        std::string s(rng() % 200, '\0');
        for (auto& c : s) c = static_cast<char>(rng());
        auto r = parse_request_head(s, &h);
        EXPECT_NE(r, ParseResult::Complete);
    }
}

TEST(HttpHead, ChallengeTokenAndHost) {
    EXPECT_EQ(acme_challenge_token("/.well-known/acme-challenge/"), "");
    EXPECT_EQ(acme_challenge_token("/.well-known/acme-challenge/a/b"), "");
    EXPECT_EQ(acme_challenge_token("/.well-known/acme-challenge/a?x"), "");
    EXPECT_EQ(acme_challenge_token("/other"), "");
    EXPECT_EQ(host_without_port("[2001:db8::1]:8080"), "[2001:db8::1]");
    EXPECT_EQ(host_without_port("a.test"), "a.test");
    EXPECT_EQ(host_without_port("a.test:x"), "");
    EXPECT_EQ(host_without_port("evil.test\r\nSet-Cookie: x"), "");
    EXPECT_EQ(host_without_port("a b"), "");
    EXPECT_EQ(host_without_port(""), "");
}

}  // namespace
}  // namespace edgecert::proxy
