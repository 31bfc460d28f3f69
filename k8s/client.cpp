#include "edgecert/k8s/client.h"

#include <spdlog/spdlog.h>

namespace edgecert::k8s {

std::string url_encode(std::string_view s) {
    static const char* hexd = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hexd[c >> 4];
            out += hexd[c & 15];
        }
    }
    return out;
}

namespace {

class Query {
  public:
    Query& add(std::string_view k, std::string_view v) {
        if (v.empty()) return *this;
        s_ += s_.empty() ? '?' : '&';
        s_ += k;
        s_ += '=';
        s_ += url_encode(v);
        return *this;
    }
    const std::string& str() const { return s_; }

  private:
    std::string s_;
};

// One line: Status messages may carry newlines (validation errors list every field).
std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    if (s.size() > 400) s = s.substr(0, 400) + "...";
    return s;
}

ErrorCode code_for(int status, std::string_view reason) {
    if (reason == "Conflict") return ErrorCode::Conflict;
    if (reason == "AlreadyExists") return ErrorCode::AlreadyExists;
    if (reason == "Expired" || reason == "Gone") return ErrorCode::Gone;
    if (reason == "NotFound") return ErrorCode::NotFound;
    if (reason == "TooManyRequests") return ErrorCode::RateLimited;
    if (reason == "Unauthorized") return ErrorCode::Unauthorized;
    if (reason == "Forbidden") return ErrorCode::Forbidden;
    if (reason == "Invalid" || reason == "BadRequest") return ErrorCode::InvalidConfig;
    switch (status) {
        case 409:
            return ErrorCode::Conflict;
        case 404:
            return ErrorCode::NotFound;
        case 410:
            return ErrorCode::Gone;
        case 429:
            return ErrorCode::RateLimited;
        case 401:
            return ErrorCode::Unauthorized;
        case 403:
            return ErrorCode::Forbidden;
        case 400:
        case 422:
            return ErrorCode::InvalidConfig;
        default:
            break;
    }
    if (status >= 500 || status == 0 || status == 408) return ErrorCode::Transient;
    return ErrorCode::Permanent;
}

}  // namespace

Error status_object_error(const json& st, std::string_view what) {
    int code = 0;
    std::string reason, message;
    if (st.is_object()) {
        if (st.contains("code") && st["code"].is_number_integer()) code = st["code"].get<int>();
        if (st.contains("reason") && st["reason"].is_string())
            reason = st["reason"].get<std::string>();
        if (st.contains("message") && st["message"].is_string())
            message = st["message"].get<std::string>();
    }
    Error e(code_for(code, reason),
            std::string(what) + ": " +
                (message.empty() ? "HTTP " + std::to_string(code) : one_line(message)));
    e.type = reason;
    e.http_status = code;
    return e;
}

Error status_error(int http_status, std::string_view body,
                   const std::optional<std::string>& retry_after, std::string_view what,
                   SystemTime now) {
    json st;
    try {
        st = json::parse(body);
    } catch (const json::exception&) {
        st = json();
    }
    Error e;
    if (st.is_object() && st.value("kind", "") == "Status") {
        json s = st;
        s["code"] = http_status;  // the HTTP status wins over the body's copy
        e = status_object_error(s, what);
    } else {
        std::string text(body.substr(0, 200));
        e = Error(code_for(http_status, ""), std::string(what) + ": HTTP " +
                                                 std::to_string(http_status) +
                                                 (text.empty() ? "" : ": " + one_line(text)));
        e.http_status = http_status;
    }
    if (retry_after) {
        e.retry_after = parse_retry_after(*retry_after, now);
        if (http_status == 429) e.code = ErrorCode::RateLimited;
    }
    if (e.code == ErrorCode::RateLimited && !e.retry_after) e.retry_after = std::chrono::seconds(1);
    return e;
}

Error status_error(const HttpResponse& r, std::string_view what, SystemTime now) {
    return status_error(r.status, r.body, r.header("retry-after"), what, now);
}

std::string_view content_type(PatchType t) {
    switch (t) {
        case PatchType::Merge:
            return "application/merge-patch+json";
        case PatchType::Json:
            return "application/json-patch+json";
        case PatchType::StrategicMerge:
            return "application/strategic-merge-patch+json";
        case PatchType::Apply:
            return "application/apply-patch+yaml";
    }
    return "application/merge-patch+json";
}

std::string_view to_string(WatchEvent::Type t) {
    switch (t) {
        case WatchEvent::Type::Added:
            return "ADDED";
        case WatchEvent::Type::Modified:
            return "MODIFIED";
        case WatchEvent::Type::Deleted:
            return "DELETED";
        case WatchEvent::Type::Bookmark:
            return "BOOKMARK";
        case WatchEvent::Type::Error:
            return "ERROR";
    }
    return "?";
}

Result<WatchEvent> parse_watch_event(std::string_view line) {
    json j;
    try {
        j = json::parse(line);
    } catch (const json::exception&) {
        return Error(ErrorCode::Permanent,
                     "watch: undecodable line (" + std::to_string(line.size()) + " bytes)");
    }
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string() || !j.contains("object") ||
        !j["object"].is_object())
        return Error(ErrorCode::Permanent, "watch: event without type/object");
    WatchEvent ev;
    std::string t = j["type"].get<std::string>();
    if (t == "ADDED")
        ev.type = WatchEvent::Type::Added;
    else if (t == "MODIFIED")
        ev.type = WatchEvent::Type::Modified;
    else if (t == "DELETED")
        ev.type = WatchEvent::Type::Deleted;
    else if (t == "BOOKMARK")
        ev.type = WatchEvent::Type::Bookmark;
    else if (t == "ERROR")
        ev.type = WatchEvent::Type::Error;
    else
        return Error(ErrorCode::Permanent, "watch: unknown event type " + t.substr(0, 32));
    ev.object = std::move(j["object"]);
    return ev;
}

Client::Client(HttpClient& http, ClientOptions opts, Clock& clock)
    : http_(http), opts_(std::move(opts)), clock_(clock) {
    while (!opts_.server.empty() && opts_.server.back() == '/') opts_.server.pop_back();
}

Client::Client(HttpClient& http, const Config& cfg, Clock& clock)
    : Client(http, ClientOptions{cfg.server, cfg.token_source}, clock) {}

Result<HttpRequest> Client::build(std::string method, const std::string& path_and_query) {
    HttpRequest req;
    req.method = std::move(method);
    req.url = opts_.server + path_and_query;
    req.timeout = opts_.timeout;
    req.headers.emplace_back("Accept", "application/json");
    if (!opts_.user_agent.empty()) req.headers.emplace_back("User-Agent", opts_.user_agent);
    if (opts_.token) {
        auto t = opts_.token->token();
        if (!t.ok()) return t.error();
        req.headers.emplace_back("Authorization", "Bearer " + std::string(t->reveal()));
    }
    return req;
}

Result<HttpResponse> Client::request(std::string method, const std::string& path_and_query,
                                     std::string body, std::string ctype) {
    for (int attempt = 0;; ++attempt) {
        EC_TRY_ASSIGN(HttpRequest req, build(method, path_and_query));
        if (!ctype.empty()) req.headers.emplace_back("Content-Type", ctype);
        req.body = body;
        auto r = http_.send(req);
        if (!r.ok()) return r.error().with_context(method + " " + path_and_query);
        if (r->status == 401 && opts_.token && attempt == 0) {
            // Rotated token or an expired exec credential: fetch a fresh one and retry once.
            opts_.token->invalidate();
            continue;
        }
        return r;
    }
}

Result<json> Client::json_call(std::string method, const std::string& path, std::string body,
                               std::string ctype, std::string_view what) {
    EC_TRY_ASSIGN(HttpResponse r, request(method, path, std::move(body), std::move(ctype)));
    if (!r.success()) return status_error(r, what, clock_.now());
    if (r.body.empty()) return json::object();
    try {
        return json::parse(r.body);
    } catch (const json::exception&) {
        return Error(ErrorCode::Transient, std::string(what) + ": response is not JSON");
    }
}

namespace {
std::string describe(std::string_view verb, const ResourceType& rt, std::string_view ns,
                     std::string_view name) {
    std::string s(verb);
    s += ' ';
    s += rt.qualified_plural();
    if (!name.empty() || !ns.empty()) s += ' ' + meta::key(ns, name);
    return s;
}
}  // namespace

Result<json> Client::get(const ResourceType& rt, std::string_view ns, std::string_view name) {
    return json_call("GET", rt.object_path(ns, name), {}, {}, describe("get", rt, ns, name));
}

Result<ObjectList> Client::list(const ResourceType& rt, std::string_view ns,
                                const ListOptions& opts) {
    ObjectList out;
    std::string cont;
    for (int page = 0;; ++page) {
        Query q;
        q.add("labelSelector", opts.label_selector).add("fieldSelector", opts.field_selector);
        if (opts.limit > 0) q.add("limit", std::to_string(opts.limit));
        if (cont.empty())
            q.add("resourceVersion", opts.resource_version);
        else
            q.add("continue", cont);
        EC_TRY_ASSIGN(json j, json_call("GET", rt.collection_path(ns) + q.str(), {}, {},
                                        describe("list", rt, ns, {})));
        if (!j.is_object()) return Error(ErrorCode::Transient, "list: not an object");
        const json& md = j.contains("metadata") ? j["metadata"] : json::object();
        if (page == 0 && md.is_object() && md.contains("resourceVersion") &&
            md["resourceVersion"].is_string())
            out.resource_version = md["resourceVersion"].get<std::string>();
        if (j.contains("items") && j["items"].is_array())
            for (auto& it : j["items"]) out.items.push_back(std::move(it));
        cont = md.is_object() && md.contains("continue") && md["continue"].is_string()
                   ? md["continue"].get<std::string>()
                   : std::string();
        if (cont.empty()) break;
    }
    return out;
}

namespace {
std::string write_query(const WriteOptions& o) {
    Query q;
    q.add("fieldManager", o.field_manager);
    if (o.dry_run) q.add("dryRun", "All");
    return q.str();
}
}  // namespace

Result<json> Client::create(const ResourceType& rt, std::string_view ns, const json& obj,
                            const WriteOptions& opts) {
    json body = obj;
    if (!body.contains("apiVersion")) body["apiVersion"] = rt.api_version();
    if (!body.contains("kind")) body["kind"] = std::string(rt.kind);
    if (rt.namespaced && !ns.empty() && meta::namespace_(body).empty())
        meta::set_namespace(body, ns);
    return json_call("POST", rt.collection_path(ns) + write_query(opts), body.dump(),
                     "application/json", describe("create", rt, ns, meta::name(obj)));
}

Result<json> Client::update(const ResourceType& rt, const json& obj, const WriteOptions& opts) {
    std::string ns = rt.namespaced ? meta::namespace_(obj) : std::string();
    std::string name = meta::name(obj);
    if (name.empty()) return Error(ErrorCode::InvalidConfig, "update: object has no name");
    json body = obj;
    if (!body.contains("apiVersion")) body["apiVersion"] = rt.api_version();
    if (!body.contains("kind")) body["kind"] = std::string(rt.kind);
    return json_call("PUT", rt.object_path(ns, name) + write_query(opts), body.dump(),
                     "application/json", describe("update", rt, ns, name));
}

Result<json> Client::update_status(const ResourceType& rt, const json& obj,
                                   const WriteOptions& opts) {
    std::string ns = rt.namespaced ? meta::namespace_(obj) : std::string();
    std::string name = meta::name(obj);
    if (name.empty()) return Error(ErrorCode::InvalidConfig, "update_status: object has no name");
    json body = obj;
    if (!body.contains("apiVersion")) body["apiVersion"] = rt.api_version();
    if (!body.contains("kind")) body["kind"] = std::string(rt.kind);
    return json_call("PUT", rt.object_path(ns, name, "status") + write_query(opts), body.dump(),
                     "application/json", describe("update status of", rt, ns, name));
}

Result<json> Client::patch(const ResourceType& rt, std::string_view ns, std::string_view name,
                           PatchType type, const json& patch, const PatchOptions& opts) {
    if (type == PatchType::Apply && opts.field_manager.empty())
        return Error(ErrorCode::InvalidConfig, "apply: a field manager is required");
    Query q;
    q.add("fieldManager", opts.field_manager);
    if (type == PatchType::Apply && opts.force) q.add("force", "true");
    if (opts.dry_run) q.add("dryRun", "All");
    // JSON is valid YAML, so apply bodies are sent as JSON.
    return json_call("PATCH", rt.object_path(ns, name, opts.subresource) + q.str(), patch.dump(),
                     std::string(content_type(type)), describe("patch", rt, ns, name));
}

Result<json> Client::apply(const ResourceType& rt, const json& obj, std::string_view field_manager,
                           bool force) {
    json body = obj;
    if (!body.contains("apiVersion")) body["apiVersion"] = rt.api_version();
    if (!body.contains("kind")) body["kind"] = std::string(rt.kind);
    PatchOptions o;
    o.field_manager = std::string(field_manager);
    o.force = force;
    return patch(rt, rt.namespaced ? meta::namespace_(obj) : std::string(), meta::name(obj),
                 PatchType::Apply, body, o);
}

Status Client::remove(const ResourceType& rt, std::string_view ns, std::string_view name,
                      const DeleteOptions& opts) {
    json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
    if (opts.precondition_uid || opts.precondition_resource_version) {
        json pre = json::object();
        if (opts.precondition_uid) pre["uid"] = *opts.precondition_uid;
        if (opts.precondition_resource_version)
            pre["resourceVersion"] = *opts.precondition_resource_version;
        body["preconditions"] = pre;
    }
    if (opts.propagation_policy) body["propagationPolicy"] = *opts.propagation_policy;
    if (opts.grace_period_seconds) body["gracePeriodSeconds"] = *opts.grace_period_seconds;
    auto r = json_call("DELETE", rt.object_path(ns, name), body.dump(), "application/json",
                       describe("delete", rt, ns, name));
    if (!r.ok()) return r.error();
    return ok_status();
}

Result<WatchResult> Client::watch(const ResourceType& rt, std::string_view ns,
                                  const WatchOptions& opts,
                                  const std::function<bool(WatchEvent&&)>& on_event,
                                  const std::atomic<bool>* cancel,
                                  const std::function<void(const Error&)>& on_decode_error) {
    Query q;
    q.add("watch", "true").add("resourceVersion", opts.resource_version);
    if (opts.allow_bookmarks) q.add("allowWatchBookmarks", "true");
    if (opts.timeout_seconds) q.add("timeoutSeconds", std::to_string(*opts.timeout_seconds));
    q.add("labelSelector", opts.label_selector).add("fieldSelector", opts.field_selector);
    std::string path = rt.collection_path(ns) + q.str();
    std::string what = describe("watch", rt, ns, {});

    for (int attempt = 0;; ++attempt) {
        EC_TRY_ASSIGN(HttpRequest req, build("GET", path));
        req.idle_timeout = opts.idle_timeout;
        req.cancel = cancel;
        WatchResult res;
        LineDecoder dec;
        bool stop = false;
        auto on_line = [&](std::string_view line) {
            if (stop) return;
            auto ev = parse_watch_event(line);
            if (!ev.ok()) {
                if (on_decode_error) on_decode_error(ev.error());
                return;
            }
            ++res.events;
            if (!on_event(std::move(*ev))) {
                stop = true;
                res.stopped_by_callback = true;
            }
        };
        auto r = http_.stream(req, [&](std::string_view chunk) {
            dec.feed(chunk, on_line);
            return !stop;
        });
        if (!r.ok()) {
            if (stop) return res;  // we aborted it ourselves
            return r.error().with_context(what);
        }
        if (r->status == 401 && opts_.token && attempt == 0) {
            opts_.token->invalidate();
            continue;
        }
        if (!r->success()) return status_error(*r, what, clock_.now());
        if (!stop) dec.finish(on_line);
        return res;
    }
}

}  // namespace edgecert::k8s
