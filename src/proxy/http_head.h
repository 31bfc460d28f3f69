#pragma once
// A bounded, strict parser for HTTP/1.x request heads on the :80 listener (RFC 9112 §2-§5).
// It only needs the request line and Host; anything malformed is an error, never a guess.
#include <string>
#include <string_view>

namespace edgecert::proxy {

inline constexpr size_t kMaxRequestHead = 8192;

struct RequestHead {
    std::string_view method, target, version, host;  // views into the parsed buffer
    size_t head_len = 0;                              // bytes up to and including the blank line
};

enum class ParseResult { Complete, Incomplete, Bad, TooLarge };

ParseResult parse_request_head(std::string_view buf, RequestHead* out);

// "/.well-known/acme-challenge/<token>" → token; empty view if the target is not one.
std::string_view acme_challenge_token(std::string_view target);

// Host header value without the port, validated (letters, digits, '-', '.', or an IPv6 literal
// in brackets). Empty if invalid.
std::string_view host_without_port(std::string_view host);

}  // namespace edgecert::proxy
