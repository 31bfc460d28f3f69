// The :80 listener's request-head parser (src/proxy/http_head.*) on raw client bytes.
// Invariants: every returned view lies inside the input; an accepted head is no longer than the
// input nor than kMaxRequestHead; a complete head stays complete (same length, same fields) when
// more bytes follow it, and each of its proper prefixes is Incomplete, Bad or TooLarge but never
// Complete; the helpers return sub-views with the promised alphabet.
#include <cctype>

#include "proxy/http_head.h"
#include "tests/fuzz/fuzz_util.h"

using namespace edgecert;
using namespace edgecert::proxy;

namespace {

void check_helpers(std::string_view target, std::string_view host) {
    std::string_view tok = acme_challenge_token(target);
    FUZZ_CHECK(fuzz::within(tok, target), "token outside the target");
    FUZZ_CHECK(tok.find_first_of("/?") == std::string_view::npos, "token with / or ?");
    std::string_view name = host_without_port(host);
    FUZZ_CHECK(fuzz::within(name, host), "host name outside the Host value");
    FUZZ_CHECK(name.size() <= host.size(), "host name longer than Host");
    for (char c : name)
        FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
                       c == '[' || c == ']' || c == ':',
                   "unexpected byte %02x in host name", static_cast<unsigned char>(c));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in = fuzz::as_view(data, size);
    // The helpers see any bytes too: the Host value is whatever the client sent.
    check_helpers(in, in);

    RequestHead h;
    ParseResult r = parse_request_head(in, &h);
    if (r != ParseResult::Complete) return 0;
    FUZZ_CHECK(h.head_len <= in.size(), "head_len %zu > input %zu", h.head_len, in.size());
    FUZZ_CHECK(h.head_len <= kMaxRequestHead, "head_len %zu over the limit", h.head_len);
    FUZZ_CHECK(in.substr(h.head_len - 4, 4) == "\r\n\r\n", "head does not end with a blank line");
    std::string_view head = in.substr(0, h.head_len);
    for (std::string_view v : {h.method, h.target, h.version, h.host})
        FUZZ_CHECK(fuzz::within(v, head), "a field lies outside the head");
    FUZZ_CHECK(!h.method.empty() && !h.target.empty(), "empty method or target accepted");
    FUZZ_CHECK(h.version == "HTTP/1.1" || h.version == "HTTP/1.0", "odd version accepted");
    FUZZ_CHECK(fuzz::one_line(h.host) && fuzz::one_line(h.target), "CR/LF inside a field");
    check_helpers(h.target, h.host);

    // More bytes after the head (a pipelined request, a body) change nothing.
    std::string more(in);
    more += "GET / HTTP/1.1\r\n";
    RequestHead h2;
    FUZZ_CHECK(parse_request_head(more, &h2) == ParseResult::Complete,
               "complete head lost by appending");
    FUZZ_CHECK(h2.head_len == h.head_len && h2.method == h.method && h2.target == h.target &&
                   h2.host == h.host,
               "appending bytes changed the parsed head");

    // A proper prefix of the head is never a complete request.
    for (size_t cut : {h.head_len - 1, h.head_len - 2, h.head_len / 2}) {
        RequestHead hp;
        FUZZ_CHECK(parse_request_head(in.substr(0, cut), &hp) != ParseResult::Complete,
                   "a prefix of %zu bytes parsed as complete", cut);
    }
    return 0;
}
