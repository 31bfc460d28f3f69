#include "proxy/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace edgecert::proxy {
namespace {

// Normalises IPv4-mapped IPv6 addresses to plain IPv4 so a dual-stack listener still reports
// TCP4 for IPv4 clients.
sockaddr_storage unmap(const sockaddr_storage& a) {
    if (a.ss_family != AF_INET6) return a;
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&a);
    if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) return a;
    sockaddr_storage out{};
    auto* s4 = reinterpret_cast<sockaddr_in*>(&out);
    s4->sin_family = AF_INET;
    s4->sin_port = s6->sin6_port;
    std::memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
    return out;
}

void put16(std::string& out, size_t v) {
    out.push_back(static_cast<char>((v >> 8) & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
}

void tlv(std::string& out, unsigned char type, std::string_view value) {
    out.push_back(static_cast<char>(type));
    put16(out, value.size());
    out.append(value);
}

}  // namespace

void append_proxy_v1(std::string& out, const ProxyInfo& info) {
    sockaddr_storage s = unmap(info.src), d = unmap(info.dst);
    if (s.ss_family != d.ss_family || (s.ss_family != AF_INET && s.ss_family != AF_INET6)) {
        out += "PROXY UNKNOWN\r\n";
        return;
    }
    char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
    unsigned sp, dp;
    if (s.ss_family == AF_INET) {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&s);
        auto* d4 = reinterpret_cast<sockaddr_in*>(&d);
        inet_ntop(AF_INET, &s4->sin_addr, sa, sizeof sa);
        inet_ntop(AF_INET, &d4->sin_addr, da, sizeof da);
        sp = ntohs(s4->sin_port);
        dp = ntohs(d4->sin_port);
        out += "PROXY TCP4 ";
    } else {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&s);
        auto* d6 = reinterpret_cast<sockaddr_in6*>(&d);
        inet_ntop(AF_INET6, &s6->sin6_addr, sa, sizeof sa);
        inet_ntop(AF_INET6, &d6->sin6_addr, da, sizeof da);
        sp = ntohs(s6->sin6_port);
        dp = ntohs(d6->sin6_port);
        out += "PROXY TCP6 ";
    }
    out += sa;
    out += ' ';
    out += da;
    out += ' ' + std::to_string(sp) + ' ' + std::to_string(dp) + "\r\n";
}

void append_proxy_v2(std::string& out, const ProxyInfo& info) {
    sockaddr_storage s = unmap(info.src), d = unmap(info.dst);
    out.append(reinterpret_cast<const char*>(kV2Signature), sizeof kV2Signature);
    out.push_back(static_cast<char>(0x21));  // version 2, command PROXY
    size_t fam_pos = out.size();
    out.push_back(0);  // family, filled below
    size_t len_pos = out.size();
    put16(out, 0);     // length, filled below
    size_t start = out.size();
    if (s.ss_family == AF_INET && d.ss_family == AF_INET) {
        out[fam_pos] = static_cast<char>(0x11);  // AF_INET, STREAM
        auto* s4 = reinterpret_cast<sockaddr_in*>(&s);
        auto* d4 = reinterpret_cast<sockaddr_in*>(&d);
        out.append(reinterpret_cast<const char*>(&s4->sin_addr), 4);
        out.append(reinterpret_cast<const char*>(&d4->sin_addr), 4);
        out.append(reinterpret_cast<const char*>(&s4->sin_port), 2);  // already network order
        out.append(reinterpret_cast<const char*>(&d4->sin_port), 2);
    } else if (s.ss_family == AF_INET6 && d.ss_family == AF_INET6) {
        out[fam_pos] = static_cast<char>(0x21);  // AF_INET6, STREAM
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&s);
        auto* d6 = reinterpret_cast<sockaddr_in6*>(&d);
        out.append(reinterpret_cast<const char*>(&s6->sin6_addr), 16);
        out.append(reinterpret_cast<const char*>(&d6->sin6_addr), 16);
        out.append(reinterpret_cast<const char*>(&s6->sin6_port), 2);
        out.append(reinterpret_cast<const char*>(&d6->sin6_port), 2);
    } else {
        out[fam_pos] = 0x00;  // AF_UNSPEC: receiver ignores the address block
    }
    if (!info.alpn.empty()) tlv(out, PP2_TYPE_ALPN, info.alpn);
    if (!info.authority.empty()) tlv(out, PP2_TYPE_AUTHORITY, info.authority);
    if (info.tls) {
        // struct pp2_tlv_ssl { uint8_t client; uint32_t verify; struct pp2_tlv sub_tlv[0]; }
        std::string ssl;
        ssl.push_back(static_cast<char>(PP2_CLIENT_SSL));
        // "verify ... zero if the client presented a certificate and it was successfully
        // verified, and non-zero otherwise": we never request client certificates.
        ssl.append("\x00\x00\x00\x01", 4);
        if (!info.tls_version.empty()) tlv(ssl, PP2_SUBTYPE_SSL_VERSION, info.tls_version);
        if (!info.cipher.empty()) tlv(ssl, PP2_SUBTYPE_SSL_CIPHER, info.cipher);
        tlv(out, PP2_TYPE_SSL, ssl);
    }
    size_t len = out.size() - start;
    out[len_pos] = static_cast<char>((len >> 8) & 0xff);
    out[len_pos + 1] = static_cast<char>(len & 0xff);
}

}  // namespace edgecert::proxy
