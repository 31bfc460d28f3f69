#pragma once
// IP address literals, for RFC 8738 "ip" identifiers, iPAddress SANs and the terminator's
// no-SNI lookup. Header-only so that acme/, src/controller and src/tls share one parser and one
// canonical form without depending on each other.
//
//  - parse(): strict literals only — IPv4 dotted quad (four decimal octets, no leading zeros,
//    inet_pton's grammar), IPv6 as RFC 4291 §2.2 writes it (embedded IPv4 included). No
//    brackets, zone index ("%eth0"), prefix length or whitespace.
//  - to_string(): the canonical text RFC 8738 §3 asks for in identifiers: dotted quad for IPv4,
//    RFC 5952 §4 for IPv6 (lower-case hex, no leading zeros, "::" for the longest run of two or
//    more zero groups, the first one on a tie) and RFC 5952 §5 "::ffff:a.b.c.d" for IPv4-mapped.
//  - reverse_name() / from_reverse_name(): the in-addr.arpa / ip6.arpa names (RFC 1034 §5.2.1,
//    RFC 3596 §2.5) that RFC 8738 §6 puts in the tls-alpn-01 SNI. from_reverse_name() and the
//    comparisons allocate nothing: they run in the TLS ClientHello callback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace edgecert {

class IpAddress {
  public:
    static std::optional<IpAddress> parse(std::string_view text) {
        // INET6_ADDRSTRLEN bounds every literal inet_pton accepts; '%' would be a zone index.
        char buf[INET6_ADDRSTRLEN];
        if (text.empty() || text.size() >= sizeof buf || text.find('\0') != std::string_view::npos)
            return std::nullopt;
        std::memcpy(buf, text.data(), text.size());
        buf[text.size()] = '\0';
        IpAddress a;
        if (text.find(':') == std::string_view::npos) {
            if (inet_pton(AF_INET, buf, a.b_.data()) != 1) return std::nullopt;
            a.len_ = 4;
        } else {
            if (inet_pton(AF_INET6, buf, a.b_.data()) != 1) return std::nullopt;
            a.len_ = 16;
        }
        return a;
    }

    // The contents of an iPAddress GeneralName (RFC 5280 §4.2.1.6): 4 or 16 octets.
    static std::optional<IpAddress> from_bytes(const unsigned char* p, size_t n) {
        if (n != 4 && n != 16) return std::nullopt;
        IpAddress a;
        a.len_ = static_cast<uint8_t>(n);
        std::memcpy(a.b_.data(), p, n);
        return a;
    }

    // A socket's address. An IPv4 connection accepted on a dual-stack IPv6 socket shows up as
    // ::ffff:a.b.c.d; it is the IPv4 address the client dialled, so it comes back as IPv4.
    static std::optional<IpAddress> from_sockaddr(const sockaddr* sa) {
        if (!sa) return std::nullopt;
        if (sa->sa_family == AF_INET) {
            const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
            return from_bytes(reinterpret_cast<const unsigned char*>(&in->sin_addr), 4);
        }
        if (sa->sa_family == AF_INET6) {
            const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
            auto a = from_bytes(in6->sin6_addr.s6_addr, 16);
            if (a && a->is_v4_mapped()) return from_bytes(in6->sin6_addr.s6_addr + 12, 4);
            return a;
        }
        return std::nullopt;
    }

    // "4.3.2.1.in-addr.arpa" or the 32 nibble labels + "ip6.arpa"; case-insensitive, an
    // absolute name's trailing dot allowed. Decimal labels as reverse_name() writes them (no
    // leading zeros), one hex digit per ip6.arpa label.
    static std::optional<IpAddress> from_reverse_name(std::string_view name) {
        if (!name.empty() && name.back() == '.') name.remove_suffix(1);
        IpAddress a;
        if (ends_with_nocase(name, ".in-addr.arpa")) {
            name.remove_suffix(13);
            for (int i = 3; i >= 0; --i) {
                size_t dot = name.find('.');
                if ((dot == std::string_view::npos) != (i == 0)) return std::nullopt;
                std::string_view label = name.substr(0, dot);
                if (label.empty() || label.size() > 3 || (label.size() > 1 && label[0] == '0'))
                    return std::nullopt;
                unsigned v = 0;
                for (char c : label) {
                    if (c < '0' || c > '9') return std::nullopt;
                    v = v * 10 + static_cast<unsigned>(c - '0');
                }
                if (v > 255) return std::nullopt;
                a.b_[static_cast<size_t>(i)] = static_cast<uint8_t>(v);
                name.remove_prefix(dot == std::string_view::npos ? name.size() : dot + 1);
            }
            a.len_ = 4;
            return a;
        }
        if (ends_with_nocase(name, ".ip6.arpa") && name.size() == 9 + 63) {
            for (size_t i = 0; i < 32; ++i) {  // least significant nibble first
                char c = name[2 * i];
                if (i < 31 && name[2 * i + 1] != '.') return std::nullopt;
                int v = hex_value(c);
                if (v < 0) return std::nullopt;
                uint8_t& byte = a.b_[15 - i / 2];
                byte = static_cast<uint8_t>(i % 2 == 0 ? v : byte | (v << 4));
            }
            a.len_ = 16;
            return a;
        }
        return std::nullopt;
    }

    bool is_v4() const { return len_ == 4; }
    // ::ffff:0:0/96 (RFC 4291 §2.5.5.2).
    bool is_v4_mapped() const {
        static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        return len_ == 16 && std::memcmp(b_.data(), kPrefix, sizeof kPrefix) == 0;
    }
    const uint8_t* data() const { return b_.data(); }
    size_t size() const { return len_; }

    std::string to_string() const {
        char buf[INET6_ADDRSTRLEN];
        if (len_ == 4) return v4_text(b_.data(), buf);
        if (is_v4_mapped()) return "::ffff:" + std::string(v4_text(b_.data() + 12, buf));
        uint16_t g[8];
        for (int i = 0; i < 8; ++i) g[i] = static_cast<uint16_t>(b_[2 * i] << 8 | b_[2 * i + 1]);
        int best = -1, best_len = 1;  // RFC 5952 §4.2.2: never "::" for a single zero group
        for (int i = 0; i < 8;) {
            int j = i;
            while (j < 8 && g[j] == 0) ++j;
            if (j - i > best_len) best = i, best_len = j - i;
            i = j == i ? i + 1 : j;
        }
        std::string out;
        for (int i = 0; i < 8; ++i) {
            if (i == best) {
                out += "::";
                i += best_len - 1;
                continue;
            }
            if (!out.empty() && out.back() != ':') out += ':';
            char h[8];
            std::snprintf(h, sizeof h, "%x", g[i]);
            out += h;
        }
        return out;
    }

    // RFC 8738 §6: "4.3.2.1.in-addr.arpa" for 1.2.3.4; for IPv6 every nibble, least significant
    // first, then "ip6.arpa". No trailing dot (the form a TLS client puts in SNI).
    std::string reverse_name() const {
        std::string out;
        if (len_ == 4) {
            for (int i = 3; i >= 0; --i) out += std::to_string(b_[static_cast<size_t>(i)]) + ".";
            return out + "in-addr.arpa";
        }
        static constexpr char kHex[] = "0123456789abcdef";
        for (int i = 15; i >= 0; --i) {
            out += kHex[b_[static_cast<size_t>(i)] & 0xf];
            out += '.';
            out += kHex[b_[static_cast<size_t>(i)] >> 4];
            out += '.';
        }
        return out + "ip6.arpa";
    }

    // Orders IPv4 before IPv6, then by octets: a total order for sorted indexes.
    auto operator<=>(const IpAddress&) const = default;
    bool operator==(const IpAddress&) const = default;

  private:
    static const char* v4_text(const uint8_t* p, char* buf) {
        std::snprintf(buf, INET6_ADDRSTRLEN, "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
        return buf;
    }
    static int hex_value(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    static bool ends_with_nocase(std::string_view s, std::string_view suffix) {
        if (s.size() <= suffix.size()) return false;
        s = s.substr(s.size() - suffix.size());
        for (size_t i = 0; i < s.size(); ++i) {
            char c = s[i];
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
            if (c != suffix[i]) return false;
        }
        return true;
    }

    uint8_t len_ = 0;  // 0 only in a default-constructed (not yet parsed) value
    std::array<uint8_t, 16> b_{};
};

}  // namespace edgecert
