#pragma once
// Scripted HttpClient for the k8s unit tests: unary requests go to a handler function; streams
// replay scripted chunks (to exercise watch framing) and then end cleanly or with an error.
// Every request is recorded.
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "edgecert/base/http.h"

namespace edgecert::k8s::testing {

inline HttpResponse json_response(int status, const std::string& body, HttpHeaders headers = {}) {
    HttpResponse r;
    r.status = status;
    r.headers = std::move(headers);
    r.headers.emplace_back("content-type", "application/json");
    r.body = body;
    return r;
}

// A metav1.Status body like the API server's.
inline std::string status_body(int code, const std::string& reason, const std::string& message) {
    return std::string(R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)") +
           R"("message":")" + message + R"(","reason":")" + reason + R"(","code":)" +
           std::to_string(code) + "}";
}

struct StreamScript {
    int status = 200;
    std::string error_body;               // for status != 200
    std::vector<std::string> chunks;      // delivered in order
    std::optional<Error> end_with_error;  // after the chunks (e.g. a dropped connection)
    std::function<void()> before_end;     // runs after the chunks, before returning
};

class FakeHttp final : public HttpClient {
  public:
    std::function<Result<HttpResponse>(const HttpRequest&)> on_send;
    // Called when stream() finds no script left (default: a transport error).
    std::function<Result<HttpResponse>(const HttpRequest&)> on_stream_exhausted;

    void push_stream(StreamScript s) {
        std::lock_guard l(mu_);
        streams_.push_back(std::move(s));
    }

    Result<HttpResponse> send(const HttpRequest& req) override {
        record(req);
        if (!on_send) return Error(ErrorCode::Transient, "no handler");
        return on_send(req);
    }

    Result<HttpResponse> stream(const HttpRequest& req,
                                const std::function<bool(std::string_view)>& on_data) override {
        record(req);
        std::optional<StreamScript> s;
        {
            std::lock_guard l(mu_);
            if (!streams_.empty()) {
                s = std::move(streams_.front());
                streams_.pop_front();
            }
        }
        if (!s) {
            if (on_stream_exhausted) return on_stream_exhausted(req);
            return Error(ErrorCode::Transient, "GET " + req.url + ": connection refused");
        }
        if (s->status != 200) return json_response(s->status, s->error_body);
        for (auto& c : s->chunks) {
            if (req.cancel && req.cancel->load()) return Error(ErrorCode::Transient, "cancelled");
            // Like curl: a callback that refuses data aborts the transfer with an error.
            if (!on_data(c)) return Error(ErrorCode::Transient, "GET " + req.url + ": cancelled");
        }
        if (s->before_end) s->before_end();
        if (s->end_with_error) return *s->end_with_error;
        return json_response(200, "");
    }

    std::vector<HttpRequest> requests() const {
        std::lock_guard l(mu_);
        return requests_;
    }
    size_t request_count() const {
        std::lock_guard l(mu_);
        return requests_.size();
    }
    HttpRequest last() const {
        std::lock_guard l(mu_);
        return requests_.back();
    }

  private:
    void record(const HttpRequest& req) {
        std::lock_guard l(mu_);
        requests_.push_back(req);
        requests_.back().cancel = nullptr;
    }
    mutable std::mutex mu_;
    std::deque<StreamScript> streams_;
    std::vector<HttpRequest> requests_;
};

inline std::string header(const HttpRequest& r, std::string_view name) {
    for (auto& [k, v] : r.headers)
        if (ascii_lower(k) == ascii_lower(name)) return v;
    return {};
}

// Value of a query parameter in a URL ("" when absent).
inline std::string query_param(const std::string& url, const std::string& name) {
    auto q = url.find('?');
    if (q == std::string::npos) return {};
    std::string rest = url.substr(q + 1);
    size_t pos = 0;
    while (pos <= rest.size()) {
        size_t amp = rest.find('&', pos);
        std::string kv = rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        auto eq = kv.find('=');
        if (kv.substr(0, eq) == name) return eq == std::string::npos ? "" : kv.substr(eq + 1);
        if (amp == std::string::npos) break;
        pos = amp + 1;
    }
    return {};
}

inline std::string path_of(const std::string& url) {
    auto scheme = url.find("://");
    auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    auto q = url.find('?');
    return url.substr(slash, q == std::string::npos ? std::string::npos : q - slash);
}

}  // namespace edgecert::k8s::testing
