// PROXY protocol encodings checked byte for byte against haproxy's doc/proxy-protocol.txt.
#include "proxy/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>

namespace edgecert::proxy {
namespace {

sockaddr_storage v4(const char* ip, uint16_t port) {
    sockaddr_storage s{};
    auto* a = reinterpret_cast<sockaddr_in*>(&s);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    return s;
}

sockaddr_storage v6(const char* ip, uint16_t port) {
    sockaddr_storage s{};
    auto* a = reinterpret_cast<sockaddr_in6*>(&s);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return s;
}

std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int c : b) s.push_back(static_cast<char>(c));
    return s;
}

TEST(ProxyV2, Ipv4WithTlvsIsByteExact) {
    ProxyInfo pi;
    pi.src = v4("192.0.2.10", 51000);
    pi.dst = v4("198.51.100.1", 443);
    pi.tls = true;
    pi.alpn = "h2";
    pi.authority = "a.test";
    pi.tls_version = "TLSv1.3";
    pi.cipher = "TLS_AES_128_GCM_SHA256";
    std::string out;
    append_proxy_v2(out, pi);
    std::string want;
    want += bytes({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A});  // sig (§2.2)
    want += bytes({0x21});                  // \x2 version, \x1 PROXY
    want += bytes({0x11});                  // \x1 AF_INET, \x1 STREAM
    // length: 12 (addresses) + ALPN 3+2 + AUTHORITY 3+6 + SSL 3+(5 + 3+7 + 3+22) = 12+5+9+43 = 69
    want += bytes({0x00, 69});
    want += bytes({192, 0, 2, 10, 198, 51, 100, 1});    // src_addr, dst_addr
    want += bytes({0xC7, 0x38, 0x01, 0xBB});            // src_port 51000, dst_port 443
    want += bytes({0x01, 0x00, 0x02}) + "h2";           // PP2_TYPE_ALPN
    want += bytes({0x02, 0x00, 0x06}) + "a.test";       // PP2_TYPE_AUTHORITY
    want += bytes({0x20, 0x00, 40});                    // PP2_TYPE_SSL, len 40
    want += bytes({0x01});                              // client: PP2_CLIENT_SSL
    want += bytes({0x00, 0x00, 0x00, 0x01});            // verify: non-zero (no client cert)
    want += bytes({0x21, 0x00, 0x07}) + "TLSv1.3";      // PP2_SUBTYPE_SSL_VERSION
    want += bytes({0x23, 0x00, 0x16}) + "TLS_AES_128_GCM_SHA256";  // PP2_SUBTYPE_SSL_CIPHER
    ASSERT_EQ(out.size(), want.size());
    EXPECT_EQ(out, want);
}

TEST(ProxyV2, Ipv6AndMappedAndPlain) {
    ProxyInfo pi;
    pi.src = v6("2001:db8::1", 1);
    pi.dst = v6("2001:db8::2", 443);
    std::string out;
    append_proxy_v2(out, pi);
    ASSERT_EQ(out.size(), 16u + 36u);
    EXPECT_EQ(out[13], 0x21);  // AF_INET6, STREAM
    EXPECT_EQ(out[14], 0);
    EXPECT_EQ(out[15], 36);
    EXPECT_EQ(out.substr(16 + 32, 4), bytes({0x00, 0x01, 0x01, 0xBB}));
    // IPv4-mapped addresses on a dual-stack socket are reported as TCP4.
    pi.src = v6("::ffff:192.0.2.1", 5);
    pi.dst = v6("::ffff:192.0.2.2", 80);
    out.clear();
    append_proxy_v2(out, pi);
    EXPECT_EQ(out[13], 0x11);
    EXPECT_EQ(out.substr(16, 8), bytes({192, 0, 2, 1, 192, 0, 2, 2}));
    // Mixed families: AF_UNSPEC with an empty address block.
    pi.src = v4("192.0.2.1", 5);
    pi.dst = v6("2001:db8::2", 80);
    out.clear();
    append_proxy_v2(out, pi);
    EXPECT_EQ(out.size(), 16u);
    EXPECT_EQ(out[13], 0x00);
}

TEST(ProxyV1, Lines) {
    ProxyInfo pi;
    pi.src = v4("192.0.2.10", 51000);
    pi.dst = v4("198.51.100.1", 443);
    std::string out;
    append_proxy_v1(out, pi);
    EXPECT_EQ(out, "PROXY TCP4 192.0.2.10 198.51.100.1 51000 443\r\n");
    pi.src = v6("2001:db8::1", 1);
    pi.dst = v6("2001:db8::2", 443);
    out.clear();
    append_proxy_v1(out, pi);
    EXPECT_EQ(out, "PROXY TCP6 2001:db8::1 2001:db8::2 1 443\r\n");
    pi.dst = v4("198.51.100.1", 443);
    out.clear();
    append_proxy_v1(out, pi);
    EXPECT_EQ(out, "PROXY UNKNOWN\r\n");
    out.clear();
    append_proxy_header(out, ProxyProtocol::None, pi);
    EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace edgecert::proxy
