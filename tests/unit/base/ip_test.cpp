// IpAddress (base/ip.h): strict literals, RFC 5952 canonical text, RFC 8738 §6 reverse names.
#include "edgecert/base/ip.h"

#include <gtest/gtest.h>

#include <cctype>

namespace edgecert {
namespace {

std::string canonical(std::string_view text) {
    auto ip = IpAddress::parse(text);
    return ip ? ip->to_string() : "<invalid>";
}

TEST(IpAddress, ParsesIPv4DottedQuadOnly) {
    auto a = IpAddress::parse("192.0.2.1");
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->is_v4());
    EXPECT_EQ(a->size(), 4u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(a->data()), 4),
              std::string("\xc0\x00\x02\x01", 4));
    EXPECT_EQ(canonical("0.0.0.0"), "0.0.0.0");
    EXPECT_EQ(canonical("255.255.255.255"), "255.255.255.255");
    // Shorthand, octal-looking, out-of-range, decorated or embedded-NUL forms are not literals.
    const std::string_view bad_v4[] = {"",
                                       "192.0.2",
                                       "192.0.2.1.",
                                       "1.2.3.4.5",
                                       "192.0.2.256",
                                       "01.2.3.4",
                                       "1.2.3.04",
                                       "0x7f.0.0.1",
                                       "127.1",
                                       " 192.0.2.1",
                                       "192.0.2.1 ",
                                       "192.0.2.1/32",
                                       "example.com",
                                       "1.2.3.4:80",
                                       std::string_view("1.2.3.4\0", 8)};
    for (std::string_view bad : bad_v4) EXPECT_FALSE(IpAddress::parse(bad)) << bad;
}

// RFC 5952 §4: lower case, leading zeros dropped, "::" for the longest run of two or more zero
// groups (the first on a tie), never for a single group; §5: IPv4-mapped as ::ffff:a.b.c.d.
TEST(IpAddress, IPv6CanonicalTextIsRfc5952) {
    EXPECT_EQ(canonical("2001:0db8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
    EXPECT_EQ(canonical("2001:DB8::1"), "2001:db8::1");
    EXPECT_EQ(canonical("0:0:0:0:0:0:0:1"), "::1");
    EXPECT_EQ(canonical("::"), "::");
    EXPECT_EQ(canonical("1::"), "1::");
    EXPECT_EQ(canonical("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");  // §4.2.2: one zero group
    EXPECT_EQ(canonical("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");  // §4.2.3: the longest run
    EXPECT_EQ(canonical("2001:db8:0:0:1:0:0:1"),
              "2001:db8::1:0:0:1");  // §4.2.3: the first on a tie
    EXPECT_EQ(canonical("2001:db8:aaaa:bbbb:cccc:dddd:eeee:AAAA"),
              "2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa");
    EXPECT_EQ(canonical("::ffff:192.0.2.1"), "::ffff:192.0.2.1");  // §5
    EXPECT_EQ(canonical("::192.0.2.1"), "::c000:201");             // deprecated compatible form
    auto mapped = IpAddress::parse("::FFFF:c000:0201");
    ASSERT_TRUE(mapped);
    EXPECT_TRUE(mapped->is_v4_mapped());
    EXPECT_FALSE(IpAddress::parse("2001:db8::1")->is_v4_mapped());
    const std::string_view bad_v6[] = {
        "[::1]", "fe80::1%eth0", "2001:db8::/32", "1:2:3:4:5:6:7:8:9",
        "::g",   "2001:db8:::1", "12345::1"};
    for (std::string_view bad : bad_v6) EXPECT_FALSE(IpAddress::parse(bad)) << bad;
}

// RFC 8738 §6 (tls-alpn-01 SNI) and its example for 2001:db8::1.
TEST(IpAddress, ReverseDnsNames) {
    EXPECT_EQ(IpAddress::parse("127.0.0.1")->reverse_name(), "1.0.0.127.in-addr.arpa");
    EXPECT_EQ(IpAddress::parse("192.0.2.10")->reverse_name(), "10.2.0.192.in-addr.arpa");
    const std::string v6 =
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
    EXPECT_EQ(IpAddress::parse("2001:db8::1")->reverse_name(), v6);
    EXPECT_EQ(IpAddress::parse("::1")->reverse_name(),
              "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");

    // And back, as the terminator maps the SNI of a validation to the address it asks for.
    EXPECT_EQ(IpAddress::from_reverse_name("1.0.0.127.in-addr.arpa"),
              IpAddress::parse("127.0.0.1"));
    EXPECT_EQ(IpAddress::from_reverse_name("1.0.0.127.IN-ADDR.ARPA."),
              IpAddress::parse("127.0.0.1"));
    EXPECT_EQ(IpAddress::from_reverse_name(v6), IpAddress::parse("2001:db8::1"));
    EXPECT_EQ(IpAddress::from_reverse_name(v6 + "."), IpAddress::parse("2001:db8::1"));
    std::string upper = v6;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(IpAddress::from_reverse_name(upper), IpAddress::parse("2001:db8::1"));
    for (const char* text :
         {"0.0.0.0", "255.254.253.252", "fe80::1:2", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}) {
        auto ip = IpAddress::parse(text);
        ASSERT_TRUE(ip) << text;
        EXPECT_EQ(IpAddress::from_reverse_name(ip->reverse_name()), ip) << text;
    }
    const std::string_view bad_names[] = {
        "",
        "in-addr.arpa",
        ".in-addr.arpa",
        "1.0.127.in-addr.arpa",
        "1.0.0.0.127.in-addr.arpa",
        "1.0.0.256.in-addr.arpa",
        "1.0.0.0127.in-addr.arpa",
        "01.0.0.127.in-addr.arpa",
        "1..0.127.in-addr.arpa",
        "x.0.0.127.in-addr.arpa",
        "1.0.0.127.in-addr.arpa.example",
        "example.com",
        "1.0.0.ip6.arpa",
        "10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
        "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"};
    for (std::string_view bad : bad_names) EXPECT_FALSE(IpAddress::from_reverse_name(bad)) << bad;
}

TEST(IpAddress, FromSocketAddressesMapsDualStackToIPv4) {
    // Callers hold a sockaddr_storage (accept, getsockname), as here.
    sockaddr_storage ss{};
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    inet_pton(AF_INET, "198.51.100.7", &in->sin_addr);
    const auto* sa = reinterpret_cast<const sockaddr*>(&ss);
    EXPECT_EQ(IpAddress::from_sockaddr(sa), IpAddress::parse("198.51.100.7"));
    ss = {};
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:198.51.100.7", &in6->sin6_addr);  // IPv4 client on a [::] listener
    auto v4 = IpAddress::from_sockaddr(sa);
    ASSERT_TRUE(v4);
    EXPECT_TRUE(v4->is_v4());
    EXPECT_EQ(v4, IpAddress::parse("198.51.100.7"));
    inet_pton(AF_INET6, "2001:db8::7", &in6->sin6_addr);
    EXPECT_EQ(IpAddress::from_sockaddr(sa), IpAddress::parse("2001:db8::7"));
    ss = {};
    ss.ss_family = AF_UNIX;
    EXPECT_FALSE(IpAddress::from_sockaddr(sa));
    EXPECT_FALSE(IpAddress::from_sockaddr(nullptr));
}

TEST(IpAddress, FromSanOctetsAndOrdering) {
    const unsigned char four[] = {10, 0, 0, 1};
    EXPECT_EQ(IpAddress::from_bytes(four, 4), IpAddress::parse("10.0.0.1"));
    EXPECT_FALSE(IpAddress::from_bytes(four, 3));
    EXPECT_FALSE(IpAddress::from_bytes(four, 8));  // name-constraint form (address + mask)
    // A total order (IPv4 first) for sorted indexes; equal addresses compare equal.
    EXPECT_LT(*IpAddress::parse("255.255.255.255"), *IpAddress::parse("::"));
    EXPECT_LT(*IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.0.0.2"));
    EXPECT_EQ(*IpAddress::parse("::1"), *IpAddress::parse("0::0:1"));
    EXPECT_NE(*IpAddress::parse("::ffff:10.0.0.1"), *IpAddress::parse("10.0.0.1"));
}

}  // namespace
}  // namespace edgecert
