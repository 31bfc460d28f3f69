#pragma once
// Abstract HTTP client (convention 6: I/O is passed in). The libcurl implementation lives in
// src/platform; tests pass a scripted fake. Unary calls buffer the body; streaming calls hand
// each chunk to a callback as it arrives (Kubernetes watches).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"

namespace edgecert {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

struct HttpRequest {
    std::string method = "GET";
    std::string url;
    HttpHeaders headers;  // e.g. {"Content-Type", "application/jose+json"}
    std::string body;
    // Whole-request deadline (unary), or connect + first byte (streaming).
    std::chrono::milliseconds timeout{30'000};
    // Streaming only: abort when no byte arrived for this long (0 = never).
    std::chrono::milliseconds idle_timeout{0};
    // Optional: set to true from another thread to abort an in-flight (streaming) request.
    const std::atomic<bool>* cancel = nullptr;
};

struct HttpResponse {
    int status = 0;
    HttpHeaders headers;  // names lower-cased by the client, in arrival order
    std::string body;

    // First header with this name (case-insensitive).
    std::optional<std::string> header(std::string_view name) const {
        std::string n = ascii_lower(name);
        for (const auto& [k, v] : headers)
            if (k == n) return v;
        return std::nullopt;
    }
    // Every header with this name, in order (Link may repeat).
    std::vector<std::string> header_all(std::string_view name) const {
        std::string n = ascii_lower(name);
        std::vector<std::string> out;
        for (const auto& [k, v] : headers)
            if (k == n) out.push_back(v);
        return out;
    }
    bool success() const { return status >= 200 && status < 300; }
};

class HttpClient {
public:
    virtual ~HttpClient() = default;
    // A transport failure (DNS, connect, TLS, timeout) is an Error with code Transient; any HTTP
    // status, 4xx and 5xx included, is a successful HttpResponse for the caller to interpret.
    virtual Result<HttpResponse> send(const HttpRequest& req) = 0;
    // Streaming: on_data is called with each chunk of the body as it arrives and returns false to
    // stop. The returned response carries status and headers; its body is empty unless the status
    // was not 2xx (then the error body is buffered instead of streamed).
    virtual Result<HttpResponse> stream(const HttpRequest& req,
                                        const std::function<bool(std::string_view)>& on_data) = 0;
};

// Parses an HTTP Retry-After value: delta-seconds or an IMF-fixdate. Returns seconds from `now`.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

}  // namespace edgecert

// Implementation is header-only to keep base header-only.
#include <ctime>
namespace edgecert {
inline std::optional<std::chrono::seconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) {
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (value.size() > 10) return std::chrono::seconds(1'000'000'000);
        return std::chrono::seconds(std::stoll(std::string(value)));
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    std::tm tm{};
    std::string s(value);
    const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0') return std::nullopt;
    // A date past what SystemTime holds saturates (and then counts as a long wait).
    auto t = system_time_from_unix(timegm(&tm));
    if (t <= now) return std::chrono::seconds(0);
    return std::chrono::duration_cast<std::chrono::seconds>(t - now);
}
}  // namespace edgecert
