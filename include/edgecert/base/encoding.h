#pragma once
// base64 (RFC 4648 §4), base64url without padding (RFC 4648 §5, as JOSE uses it), and hex.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgecert::enc {

namespace detail {
inline constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
inline constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

inline std::string encode(std::string_view in, const char* alphabet, bool pad) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    auto b = [&](size_t k) { return static_cast<uint8_t>(in[k]); };
    for (; i + 2 < in.size(); i += 3) {
        uint32_t v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (i + 1 == in.size()) {
        uint32_t v = b(i) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        if (pad) out += "==";
    } else if (i + 2 == in.size()) {
        uint32_t v = (b(i) << 16) | (b(i + 1) << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        if (pad) out += "=";
    }
    return out;
}

inline int value_of(char c, bool url) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (!url && c == '+') return 62;
    if (!url && c == '/') return 63;
    if (url && c == '-') return 62;
    if (url && c == '_') return 63;
    return -1;
}

inline std::optional<std::string> decode(std::string_view in, bool url) {
    // Standard base64 may be padded and (in PEM/Kubernetes data) may carry whitespace.
    std::string out;
    out.reserve(in.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    size_t pads = 0;
    for (char c : in) {
        if (c == '=') { ++pads; continue; }
        if (!url && (c == '\n' || c == '\r' || c == ' ' || c == '\t')) continue;
        if (pads) return std::nullopt;  // data after padding
        int v = value_of(c, url);
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    if (bits >= 6) return std::nullopt;  // a lone trailing character is not valid base64
    if (pads > 2) return std::nullopt;
    return out;
}
}  // namespace detail

inline std::string base64(std::string_view in) { return detail::encode(in, detail::kStd, true); }
inline std::optional<std::string> base64_decode(std::string_view in) {
    return detail::decode(in, false);
}
inline std::string base64url(std::string_view in) { return detail::encode(in, detail::kUrl, false); }
inline std::optional<std::string> base64url_decode(std::string_view in) {
    return detail::decode(in, true);
}

inline std::string hex(std::string_view in, bool upper = false) {
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    std::string out;
    out.reserve(in.size() * 2);
    for (unsigned char c : in) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

inline std::optional<std::string> hex_decode(std::string_view in) {
    if (in.size() % 2) return std::nullopt;
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    for (size_t i = 0; i < in.size(); i += 2) {
        int h = nib(in[i]), l = nib(in[i + 1]);
        if (h < 0 || l < 0) return std::nullopt;
        out += static_cast<char>((h << 4) | l);
    }
    return out;
}

}  // namespace edgecert::enc
