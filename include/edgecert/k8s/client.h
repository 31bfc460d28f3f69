#pragma once
// The generic Kubernetes API client over ResourceType traits, on an injected HttpClient.
// Verbs and their HTTP shapes: https://kubernetes.io/docs/reference/using-api/api-concepts/
// Errors: the API's Status body is decoded into the base error codes (status_error()).
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/base/http.h"
#include "edgecert/base/result.h"
#include "edgecert/k8s/config.h"
#include "edgecert/k8s/object.h"
#include "edgecert/k8s/resource.h"

namespace edgecert::k8s {

// Maps an HTTP error response (a metav1.Status body when the server sent one) to an Error:
// 409 Conflict → Conflict, 409 AlreadyExists → AlreadyExists, 404 → NotFound, 410/Expired/Gone →
// Gone, 429 → RateLimited (+Retry-After), 401 → Unauthorized, 403 → Forbidden,
// 400/422 → InvalidConfig, 5xx → Transient. Error::type carries the Status reason.
Error status_error(int http_status, std::string_view body,
                   const std::optional<std::string>& retry_after, std::string_view what,
                   SystemTime now = std::chrono::system_clock::now());
Error status_error(const HttpResponse& r, std::string_view what,
                   SystemTime now = std::chrono::system_clock::now());
// The same for a watch ERROR event's Status object.
Error status_object_error(const json& status, std::string_view what);

struct ListOptions {
    std::string label_selector;
    std::string field_selector;
    // "" = most recent (consistent read); "0" = any (cache); other = not older than.
    std::string resource_version;
    int64_t limit = 500;  // page size; pages are followed transparently. 0: no limit.
};

struct ObjectList {
    std::vector<json> items;
    std::string resource_version;  // the list's RV: where a watch starts
};

struct WriteOptions {
    std::string field_manager;
    bool dry_run = false;
};

enum class PatchType { Merge, Json, StrategicMerge, Apply };
std::string_view content_type(PatchType t);

struct PatchOptions {
    std::string field_manager;  // required for Apply
    bool force = false;         // Apply only: take ownership of conflicting fields
    bool dry_run = false;
    std::string subresource;  // e.g. "status"
};

struct DeleteOptions {
    std::optional<std::string> precondition_uid;
    std::optional<std::string> precondition_resource_version;
    std::optional<std::string> propagation_policy;  // Foreground|Background|Orphan
    std::optional<int64_t> grace_period_seconds;
};

struct WatchOptions {
    std::string resource_version;
    std::string label_selector;
    std::string field_selector;
    bool allow_bookmarks = true;
    std::optional<int> timeout_seconds;
    std::chrono::milliseconds idle_timeout{0};  // dead-stream detector, HttpRequest.idle_timeout
};

// One decoded watch line (https://kubernetes.io/docs/reference/using-api/api-concepts/#watch).
struct WatchEvent {
    enum class Type { Added, Modified, Deleted, Bookmark, Error };
    Type type = Type::Added;
    json object;
};
std::string_view to_string(WatchEvent::Type t);
Result<WatchEvent> parse_watch_event(std::string_view line);

// Newline framing for a chunked watch body: an event may be split across chunks, and one chunk
// may carry several events.
class LineDecoder {
  public:
    template <class F>
    void feed(std::string_view chunk, F&& on_line) {
        size_t start = 0;
        for (size_t i = 0; i < chunk.size(); ++i) {
            if (chunk[i] != '\n') continue;
            std::string_view piece = chunk.substr(start, i - start);
            if (buf_.empty()) {
                emit(piece, on_line);
            } else {
                buf_.append(piece);
                emit(buf_, on_line);
                buf_.clear();
            }
            start = i + 1;
        }
        buf_.append(chunk.substr(start));
    }
    // The stream ended: a final line without '\n' still counts.
    template <class F>
    void finish(F&& on_line) {
        if (!buf_.empty()) emit(buf_, on_line);
        buf_.clear();
    }
    size_t pending() const { return buf_.size(); }

  private:
    template <class F>
    static void emit(std::string_view line, F& on_line) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
        if (!line.empty()) on_line(line);
    }
    std::string buf_;
};

struct ClientOptions {
    std::string server;                  // "https://host:port"
    std::shared_ptr<TokenSource> token;  // may be null
    std::string user_agent = "edgecert/0.1.0";
    std::chrono::milliseconds timeout{30'000};
};

// How a watch stream ended when no Error was returned.
struct WatchResult {
    int events = 0;
    bool stopped_by_callback = false;
};

class Client {
  public:
    Client(HttpClient& http, ClientOptions opts, Clock& clock = RealClock::instance());
    // From a Config (server + token source); the caller built `http` from the same Config.
    Client(HttpClient& http, const Config& cfg, Clock& clock = RealClock::instance());

    Result<json> get(const ResourceType& rt, std::string_view ns, std::string_view name);
    // Every page, joined; all pages share the first page's resourceVersion.
    Result<ObjectList> list(const ResourceType& rt, std::string_view ns,
                            const ListOptions& opts = {});
    Result<json> create(const ResourceType& rt, std::string_view ns, const json& obj,
                        const WriteOptions& opts = {});
    // PUT: namespace/name from obj.metadata; metadata.resourceVersion makes it conditional
    // (409 Conflict when stale).
    Result<json> update(const ResourceType& rt, const json& obj, const WriteOptions& opts = {});
    Result<json> update_status(const ResourceType& rt, const json& obj,
                               const WriteOptions& opts = {});
    Result<json> patch(const ResourceType& rt, std::string_view ns, std::string_view name,
                       PatchType type, const json& patch, const PatchOptions& opts = {});
    // Server-side apply of a whole (partial) object: PATCH application/apply-patch+yaml.
    Result<json> apply(const ResourceType& rt, const json& obj, std::string_view field_manager,
                       bool force = false);
    Status remove(const ResourceType& rt, std::string_view ns, std::string_view name,
                  const DeleteOptions& opts = {});

    // Streams watch events to on_event until the server ends the stream, on_event returns
    // false, `cancel` becomes true, or an error. A non-2xx answer is a decoded Error (410 → Gone);
    // an ERROR event is handed to on_event like any other (the caller decides).
    // Malformed lines are reported through on_decode_error and skipped.
    Result<WatchResult> watch(const ResourceType& rt, std::string_view ns, const WatchOptions& opts,
                              const std::function<bool(WatchEvent&&)>& on_event,
                              const std::atomic<bool>* cancel = nullptr,
                              const std::function<void(const Error&)>& on_decode_error = {});

    // Low level: a request to `path_and_query` (starting with '/') with auth headers; a 401
    // invalidates the token source and retries once.
    Result<HttpResponse> request(std::string method, const std::string& path_and_query,
                                 std::string body = {}, std::string content_type = {});

    const std::string& server() const { return opts_.server; }
    Clock& clock() { return clock_; }

  private:
    Result<HttpRequest> build(std::string method, const std::string& path_and_query);
    Result<json> json_call(std::string method, const std::string& path, std::string body,
                           std::string content_type, std::string_view what);

    HttpClient& http_;
    ClientOptions opts_;
    Clock& clock_;
};

// Read-modify-write helper: runs fn until it returns something other than Conflict, at most
// `attempts` times (client-go retry.RetryOnConflict). fn must re-read the object each time.
template <class F>
auto retry_on_conflict(F&& fn, int attempts = 5) -> decltype(fn()) {
    auto r = fn();
    for (int i = 1; i < attempts && !r.ok() && r.error().code == ErrorCode::Conflict; ++i) r = fn();
    return r;
}

// URL query helpers (RFC 3986 unreserved characters pass through).
std::string url_encode(std::string_view s);

}  // namespace edgecert::k8s
