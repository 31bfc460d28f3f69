#pragma once
// PROXY protocol headers (haproxy doc/proxy-protocol.txt, versions 1 and 2) sent to the upstream
// before the first byte of the client's stream.
#include <sys/socket.h>

#include <string>
#include <string_view>

namespace edgecert::proxy {

enum class ProxyProtocol { None, V1, V2 };

struct ProxyInfo {
    sockaddr_storage src{};  // client address as seen by us
    sockaddr_storage dst{};  // our local address the client connected to
    bool tls = false;
    std::string_view alpn;        // negotiated ALPN, empty if none
    std::string_view authority;   // SNI, empty if none
    std::string_view tls_version; // e.g. "TLSv1.3"
    std::string_view cipher;      // e.g. "TLS_AES_128_GCM_SHA256"
};

// v2 constants (proxy-protocol.txt §2.2).
inline constexpr unsigned char kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
inline constexpr unsigned char PP2_TYPE_ALPN = 0x01;
inline constexpr unsigned char PP2_TYPE_AUTHORITY = 0x02;
inline constexpr unsigned char PP2_TYPE_SSL = 0x20;
inline constexpr unsigned char PP2_SUBTYPE_SSL_VERSION = 0x21;
inline constexpr unsigned char PP2_SUBTYPE_SSL_CIPHER = 0x23;
inline constexpr unsigned char PP2_CLIENT_SSL = 0x01;

// Appends the header to `out`. Mixed or non-IP families are sent as UNKNOWN (v1) / LOCAL-less
// AF_UNSPEC (v2) as the spec asks.
void append_proxy_v1(std::string& out, const ProxyInfo& info);
void append_proxy_v2(std::string& out, const ProxyInfo& info);
inline void append_proxy_header(std::string& out, ProxyProtocol p, const ProxyInfo& info) {
    if (p == ProxyProtocol::V1) append_proxy_v1(out, info);
    else if (p == ProxyProtocol::V2) append_proxy_v2(out, info);
}

}  // namespace edgecert::proxy
