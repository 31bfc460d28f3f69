// PROXY protocol v1/v2 headers (src/proxy/proxy_protocol.*). edgecert only writes them, but what
// it writes carries client-chosen bytes (SNI, ALPN) to an upstream that parses them, so the
// writer is fuzzed against an independent reader written from haproxy's doc/proxy-protocol.txt:
//
//  - an input that is itself a PROXY header (the seeds are real v1/v2 headers) is read, written
//    again in both versions, and read back: same addresses, ports and TLVs;
//  - any other input is taken as the fields of a ProxyInfo (families, addresses, ports, strings
//    as long as OpenSSL lets a client make them) and the written headers must read back.
// Invariants: v1 lines are at most 107 bytes (§2.1) with exactly the right tokens; the v2 length
// field covers exactly the bytes written; every TLV lies inside it; nothing else is appended.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <optional>
#include <vector>

#include "proxy/proxy_protocol.h"
#include "tests/fuzz/fuzz_util.h"

using namespace edgecert;
using namespace edgecert::proxy;

namespace {

struct Parsed {
    int family = AF_UNSPEC;  // AF_INET, AF_INET6 or AF_UNSPEC (v1 UNKNOWN / v2 LOCAL-less)
    std::string src, dst;    // raw address bytes (4 or 16)
    uint16_t sport = 0, dport = 0;
    std::vector<std::pair<uint8_t, std::string>> tlvs;  // v2 only, in order
    size_t len = 0;                                     // header bytes consumed
};

uint16_t be16(std::string_view s, size_t i) {
    return static_cast<uint16_t>(static_cast<uint8_t>(s[i]) << 8 | static_cast<uint8_t>(s[i + 1]));
}

bool parse_port(std::string_view s, uint16_t* out) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 65535) return false;
    *out = static_cast<uint16_t>(v);
    return true;
}

// §2.1: "PROXY" SP ("TCP4" | "TCP6" | "UNKNOWN") [SP src SP dst SP sport SP dport] CRLF, <= 107.
std::optional<Parsed> read_v1(std::string_view in) {
    size_t crlf = in.find("\r\n");
    if (crlf == std::string_view::npos || crlf + 2 > 107 || in.substr(0, 6) != "PROXY ")
        return std::nullopt;
    std::string_view line = in.substr(6, crlf - 6);
    Parsed p;
    p.len = crlf + 2;
    if (line.substr(0, 7) == "UNKNOWN") return p;  // the rest of the line is ignored (§2.1)
    std::vector<std::string_view> tok;
    for (size_t pos = 0;;) {
        size_t sp = line.find(' ', pos);
        tok.push_back(line.substr(pos, sp == std::string_view::npos ? sp : sp - pos));
        if (sp == std::string_view::npos) break;
        pos = sp + 1;
    }
    if (tok.size() != 5) return std::nullopt;
    if (tok[0] == "TCP4")
        p.family = AF_INET;
    else if (tok[0] == "TCP6")
        p.family = AF_INET6;
    else
        return std::nullopt;
    char buf[16];
    for (int i = 0; i < 2; ++i) {
        std::string a(tok[1 + i]);
        if (inet_pton(p.family, a.c_str(), buf) != 1) return std::nullopt;
        (i == 0 ? p.src : p.dst).assign(buf, p.family == AF_INET ? 4 : 16);
    }
    if (!parse_port(tok[3], &p.sport) || !parse_port(tok[4], &p.dport)) return std::nullopt;
    return p;
}

// §2.2: signature, ver_cmd, fam, len, addresses, TLVs.
std::optional<Parsed> read_v2(std::string_view in) {
    if (in.size() < 16 || std::memcmp(in.data(), kV2Signature, sizeof kV2Signature) != 0)
        return std::nullopt;
    uint8_t ver_cmd = static_cast<uint8_t>(in[12]), fam = static_cast<uint8_t>(in[13]);
    size_t len = be16(in, 14);
    if ((ver_cmd >> 4) != 2 || (ver_cmd & 0xf) > 1 || in.size() < 16 + len) return std::nullopt;
    std::string_view body = in.substr(16, len);
    Parsed p;
    p.len = 16 + len;
    size_t alen = 0;
    if (fam == 0x11) {
        p.family = AF_INET;
        alen = 12;
    } else if (fam == 0x21) {
        p.family = AF_INET6;
        alen = 36;
    } else if (fam != 0x00) {
        return std::nullopt;  // UNIX sockets and DGRAM: edgecert never writes them
    }
    if (body.size() < alen) return std::nullopt;
    if (alen) {
        size_t a = alen == 12 ? 4 : 16;
        p.src.assign(body.substr(0, a));
        p.dst.assign(body.substr(a, a));
        p.sport = be16(body, 2 * a);
        p.dport = be16(body, 2 * a + 2);
    }
    for (size_t i = alen; i < body.size();) {
        if (body.size() - i < 3) return std::nullopt;
        size_t n = be16(body, i + 1);
        if (body.size() - i - 3 < n) return std::nullopt;  // a TLV must not run past len
        p.tlvs.emplace_back(static_cast<uint8_t>(body[i]), std::string(body.substr(i + 3, n)));
        i += 3 + n;
    }
    return p;
}

sockaddr_storage to_sockaddr(int family, std::string_view addr, uint16_t port) {
    sockaddr_storage s{};
    if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&s);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        std::memcpy(&a->sin_addr, addr.data(), 4);
    } else if (family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&s);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        std::memcpy(&a->sin6_addr, addr.data(), 16);
    } else {
        s.ss_family = static_cast<sa_family_t>(family);
    }
    return s;
}

// What a reader must see for `s` after the writer's IPv4-mapped → IPv4 normalisation.
std::pair<int, std::string> expected(const sockaddr_storage& s, uint16_t* port) {
    if (s.ss_family == AF_INET) {
        auto* a = reinterpret_cast<const sockaddr_in*>(&s);
        *port = ntohs(a->sin_port);
        return {AF_INET, std::string(reinterpret_cast<const char*>(&a->sin_addr), 4)};
    }
    if (s.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&s);
        *port = ntohs(a->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            return {AF_INET,
                    std::string(reinterpret_cast<const char*>(a->sin6_addr.s6_addr + 12), 4)};
        return {AF_INET6, std::string(reinterpret_cast<const char*>(&a->sin6_addr), 16)};
    }
    *port = 0;
    return {AF_UNSPEC, ""};
}

void check_written(const ProxyInfo& pi) {
    uint16_t sp = 0, dp = 0;
    auto [sf, sa] = expected(pi.src, &sp);
    auto [df, da] = expected(pi.dst, &dp);
    bool same = sf == df && sf != AF_UNSPEC;

    std::string prefix = "payload-before";  // the header is appended: what is there stays
    std::string v1 = prefix;
    append_proxy_v1(v1, pi);
    FUZZ_CHECK(v1.compare(0, prefix.size(), prefix) == 0, "v1 writer touched the bytes before it");
    std::string_view h1 = std::string_view(v1).substr(prefix.size());
    auto r1 = read_v1(h1);
    FUZZ_CHECK(r1.has_value(), "unreadable v1 header: %s", std::string(h1).c_str());
    FUZZ_CHECK(r1->len == h1.size(), "v1 header has %zu trailing bytes", h1.size() - r1->len);
    if (same) {
        FUZZ_CHECK(r1->family == sf && r1->src == sa && r1->dst == da && r1->sport == sp &&
                       r1->dport == dp,
                   "v1 addresses differ: %s", std::string(h1).c_str());
    } else {
        FUZZ_CHECK(r1->family == AF_UNSPEC, "mixed families must be UNKNOWN");
    }

    std::string v2 = prefix;
    append_proxy_v2(v2, pi);
    FUZZ_CHECK(v2.compare(0, prefix.size(), prefix) == 0, "v2 writer touched the bytes before it");
    std::string_view h2 = std::string_view(v2).substr(prefix.size());
    auto r2 = read_v2(h2);
    FUZZ_CHECK(r2.has_value(), "unreadable v2 header (%zu bytes)", h2.size());
    FUZZ_CHECK(r2->len == h2.size(), "v2 length field %zu, %zu bytes written", r2->len, h2.size());
    if (same) {
        FUZZ_CHECK(r2->family == sf && r2->src == sa && r2->dst == da && r2->sport == sp &&
                       r2->dport == dp,
                   "v2 addresses differ");
    } else {
        FUZZ_CHECK(r2->family == AF_UNSPEC, "mixed families must be AF_UNSPEC");
    }
    // TLVs: ALPN, AUTHORITY, then SSL with its sub-TLVs, each present iff non-empty.
    std::vector<std::pair<uint8_t, std::string>> want;
    if (!pi.alpn.empty()) want.emplace_back(PP2_TYPE_ALPN, std::string(pi.alpn));
    if (!pi.authority.empty()) want.emplace_back(PP2_TYPE_AUTHORITY, std::string(pi.authority));
    if (pi.tls) {
        std::string ssl("\x01\x00\x00\x00\x01", 5);
        auto sub = [&](uint8_t t, std::string_view v) {
            if (v.empty()) return;
            ssl.push_back(static_cast<char>(t));
            ssl.push_back(static_cast<char>(v.size() >> 8));
            ssl.push_back(static_cast<char>(v.size() & 0xff));
            ssl.append(v);
        };
        sub(PP2_SUBTYPE_SSL_VERSION, pi.tls_version);
        sub(PP2_SUBTYPE_SSL_CIPHER, pi.cipher);
        want.emplace_back(PP2_TYPE_SSL, ssl);
    }
    FUZZ_CHECK(r2->tlvs == want, "v2 TLVs differ from what was given");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in = fuzz::as_view(data, size);
    ProxyInfo pi;
    std::string alpn, authority, version, cipher;
    std::optional<Parsed> p = read_v2(in);
    if (!p) p = read_v1(in);
    if (p) {
        // A real header: write what it says again.
        pi.src = to_sockaddr(p->family, p->src, p->sport);
        pi.dst = to_sockaddr(p->family, p->dst, p->dport);
        for (const auto& [type, value] : p->tlvs) {
            if (type == PP2_TYPE_ALPN) alpn = value.substr(0, 255);
            if (type == PP2_TYPE_AUTHORITY) authority = value.substr(0, 255);
            if (type == PP2_TYPE_SSL) pi.tls = true;
        }
    } else {
        fuzz::Reader r(in);
        auto addr = [&](sockaddr_storage* s) {
            uint8_t kind = r.u8() % 4;
            uint16_t port = r.u16();
            std::string a(r.bytes(16));
            a.resize(16, '\0');
            if (kind == 0)
                *s = to_sockaddr(AF_INET, a.substr(0, 4), port);
            else if (kind == 1)
                *s = to_sockaddr(AF_INET6, a, port);
            else if (kind == 2)
                *s = to_sockaddr(AF_INET6, std::string(10, '\0') + "\xff\xff" + a.substr(0, 4),
                                 port);
            else
                *s = to_sockaddr(AF_UNIX, "", 0);
        };
        addr(&pi.src);
        addr(&pi.dst);
        pi.tls = r.flag();
        // What conn_io hands in: OpenSSL's negotiated ALPN (<= 255 bytes, RFC 7301), its SNI
        // (<= 255, TLSEXT_MAXLEN_host_name), SSL_get_version and the cipher name.
        alpn = r.str(255);
        authority = r.str(255);
        version = r.str(32);
        cipher = r.str(64);
    }
    pi.alpn = alpn;
    pi.authority = authority;
    pi.tls_version = version;
    pi.cipher = cipher;
    check_written(pi);
    return 0;
}
