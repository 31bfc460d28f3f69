#include "proxy/http_head.h"

#include <cctype>

namespace edgecert::proxy {
namespace {

bool is_tchar(char c) {  // RFC 9110 §5.6.2
    if (std::isalnum(static_cast<unsigned char>(c))) return true;
    switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
        case '.': case '^': case '_': case '`': case '|': case '~': return true;
        default: return false;
    }
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

ParseResult parse_request_head(std::string_view buf, RequestHead* out) {
    size_t end = buf.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        // Reject early what can never become a valid head (binary garbage, a TLS ClientHello).
        size_t line_end = buf.find("\r\n");
        std::string_view first = buf.substr(0, line_end);
        for (char c : first)
            if (c != ' ' && c != '\t' && !std::isprint(static_cast<unsigned char>(c))) return ParseResult::Bad;
        if (!first.empty() && !is_tchar(first[0])) return ParseResult::Bad;
        return buf.size() >= kMaxRequestHead ? ParseResult::TooLarge : ParseResult::Incomplete;
    }
    if (end + 4 > kMaxRequestHead) return ParseResult::TooLarge;
    std::string_view head = buf.substr(0, end + 2);  // keeps the last header's CRLF
    out->head_len = end + 4;

    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || sp1 == 0) return ParseResult::Bad;
    size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return ParseResult::Bad;
    out->method = line.substr(0, sp1);
    out->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    out->version = line.substr(sp2 + 1);
    for (char c : out->method)
        if (!is_tchar(c)) return ParseResult::Bad;
    for (char c : out->target)
        if (c <= 0x20 || c == 0x7f || static_cast<unsigned char>(c) >= 0x80) return ParseResult::Bad;
    if (out->version != "HTTP/1.1" && out->version != "HTTP/1.0") return ParseResult::Bad;

    out->host = {};
    bool have_host = false;
    size_t pos = eol + 2;
    while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        std::string_view h = head.substr(pos, e - pos);
        pos = e + 2;
        size_t colon = h.find(':');
        if (colon == std::string_view::npos || colon == 0) return ParseResult::Bad;
        std::string_view name = h.substr(0, colon);
        for (char c : name)
            if (!is_tchar(c)) return ParseResult::Bad;  // also rejects obs-fold and "Name :"
        std::string_view value = trim(h.substr(colon + 1));
        for (char c : value)
            if ((c < 0x20 && c != '\t') || c == 0x7f) return ParseResult::Bad;
        if (iequals(name, "host")) {
            if (have_host) return ParseResult::Bad;  // RFC 9112 §3.2: exactly one
            have_host = true;
            out->host = value;
        }
    }
    if (out->version == "HTTP/1.1" && !have_host) return ParseResult::Bad;
    return ParseResult::Complete;
}

std::string_view acme_challenge_token(std::string_view target) {
    constexpr std::string_view prefix = "/.well-known/acme-challenge/";
    if (target.substr(0, prefix.size()) != prefix) return {};
    std::string_view t = target.substr(prefix.size());
    if (t.empty() || t.find('/') != std::string_view::npos || t.find('?') != std::string_view::npos) return {};
    return t;
}

std::string_view host_without_port(std::string_view host) {
    if (host.empty()) return {};
    std::string_view name = host;
    if (host.front() == '[') {
        size_t close = host.find(']');
        if (close == std::string_view::npos) return {};
        name = host.substr(0, close + 1);
        for (char c : name.substr(1, name.size() - 2))
            if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return {};
        std::string_view rest = host.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') return {};
        return name;
    }
    if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
        for (char c : host.substr(colon + 1))
            if (!std::isdigit(static_cast<unsigned char>(c))) return {};
        name = host.substr(0, colon);
    }
    if (name.empty() || name.size() > 253) return {};
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return {};
    return name;
}

}  // namespace edgecert::proxy
