#include "platform/curl_http.h"

#include <curl/curl.h>

#include <cstring>

#include "edgecert/base/version.h"

namespace edgecert::platform {
namespace {

struct GlobalInit {
    GlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

struct Transfer {
    HttpResponse* resp = nullptr;
    const std::function<bool(std::string_view)>* on_data = nullptr;
    const std::atomic<bool>* cancel = nullptr;
    bool aborted_by_callback = false;
    bool status_seen = false;
    bool stream_body = false;  // decided once the status line is known
    CURL* easy = nullptr;
};

size_t on_header(char* buf, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    size_t len = size * n;
    std::string_view line(buf, len);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    if (line.rfind("HTTP/", 0) == 0) {
        // A new response (after 100-continue or a redirect): start over.
        t->resp->headers.clear();
        size_t sp = line.find(' ');
        if (sp != std::string_view::npos) t->resp->status = std::atoi(std::string(line.substr(sp + 1, 3)).c_str());
        t->status_seen = true;
        t->stream_body = t->on_data && t->resp->status >= 200 && t->resp->status < 300;
        return len;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return len;
    std::string name = ascii_lower(line.substr(0, colon));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    t->resp->headers.emplace_back(std::move(name), std::string(value));
    return len;
}

size_t on_body(char* buf, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    size_t len = size * n;
    if (t->stream_body) {
        if (!(*t->on_data)(std::string_view(buf, len))) {
            t->aborted_by_callback = true;
            return 0;  // makes curl abort with CURLE_WRITE_ERROR
        }
        return len;
    }
    // Unary body, or the error body of a failed streaming request: bounded at 16 MiB.
    if (t->resp->body.size() + len > (16u << 20)) return 0;
    t->resp->body.append(buf, len);
    return len;
}

int on_progress(void* ud, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(ud);
    if (t->cancel && t->cancel->load(std::memory_order_relaxed)) {
        t->aborted_by_callback = true;
        return 1;
    }
    return 0;
}

}  // namespace

CurlHttpClient::CurlHttpClient(CurlOptions opts) : opts_(std::move(opts)) {
    if (opts_.user_agent.empty()) opts_.user_agent = kUserAgent;
}

Result<std::unique_ptr<CurlHttpClient>> CurlHttpClient::create(CurlOptions opts) {
    static GlobalInit init;
    curl_version_info_data* v = curl_version_info(CURLVERSION_NOW);
    if (!v || !(v->features & CURL_VERSION_SSL))
        return Error(ErrorCode::Permanent, "libcurl was built without TLS support");
    if ((!opts.client_cert_pem.empty()) != (!opts.client_key_pem.empty()))
        return Error(ErrorCode::InvalidConfig, "client certificate and client key go together");
    return std::unique_ptr<CurlHttpClient>(new CurlHttpClient(std::move(opts)));
}

CurlHttpClient::~CurlHttpClient() {
    for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* CurlHttpClient::acquire() {
    {
        std::lock_guard l(mu_);
        if (!idle_.empty()) {
            void* h = idle_.back();
            idle_.pop_back();
            return h;
        }
    }
    return curl_easy_init();
}

void CurlHttpClient::release(void* h) {
    std::lock_guard l(mu_);
    if (idle_.size() < opts_.max_idle_handles) {
        idle_.push_back(h);
        return;
    }
    curl_easy_cleanup(static_cast<CURL*>(h));
}

Result<HttpResponse> CurlHttpClient::send(const HttpRequest& req) { return perform(req, nullptr); }

Result<HttpResponse> CurlHttpClient::stream(const HttpRequest& req,
                                            const std::function<bool(std::string_view)>& on_data) {
    return perform(req, &on_data);
}

Result<HttpResponse> CurlHttpClient::perform(const HttpRequest& req,
                                             const std::function<bool(std::string_view)>* on_data) {
    CURL* c = static_cast<CURL*>(acquire());
    if (!c) return Error(ErrorCode::Transient, "curl_easy_init failed");
    // reset keeps the connection cache, drops per-request options
    curl_easy_reset(c);

    HttpResponse resp;
    Transfer t;
    t.resp = &resp;
    t.on_data = on_data;
    t.cancel = req.cancel;
    t.easy = c;

    curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, opts_.user_agent.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // gzip when the server offers it
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    if (on_data) {
        // Streams run for minutes: no overall timeout; an idle detector instead.
        if (req.idle_timeout.count() > 0) {
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
            long secs = static_cast<long>((req.idle_timeout.count() + 999) / 1000);
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, secs);
        }
    } else {
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
    }
    if (req.cancel) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    }

    if (!opts_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, opts_.ca_file.c_str());
    curl_blob ca_blob{};
    if (!opts_.ca_pem.empty()) {
        ca_blob.data = const_cast<char*>(opts_.ca_pem.data());
        ca_blob.len = opts_.ca_pem.size();
        ca_blob.flags = CURL_BLOB_NOCOPY;
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca_blob);
    }
    curl_blob cert_blob{}, key_blob{};
    if (!opts_.client_cert_pem.empty()) {
        cert_blob.data = const_cast<char*>(opts_.client_cert_pem.data());
        cert_blob.len = opts_.client_cert_pem.size();
        cert_blob.flags = CURL_BLOB_NOCOPY;
        curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert_blob);
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        key_blob.data = const_cast<unsigned char*>(opts_.client_key_pem.data());
        key_blob.len = opts_.client_key_pem.size();
        key_blob.flags = CURL_BLOB_NOCOPY;
        curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key_blob);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (opts_.insecure_skip_verify) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }

    if (req.method == "GET") {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (req.method == "HEAD") {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    }

    curl_slist* hdrs = nullptr;
    bool has_ct = false;
    for (const auto& [k, v] : req.headers) {
        if (ascii_lower(k) == "content-type") has_ct = true;
        hdrs = curl_slist_append(hdrs, (k + ": " + v).c_str());
    }
    // curl adds "Expect: 100-continue" for large bodies; no server here needs the round trip.
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (!has_ct && req.method != "GET" && req.method != "HEAD" && req.method != "DELETE")
        hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);

    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    // Blobs point into our options; detach them before the handle goes back to the pool.
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);

    if (rc == CURLE_OK || (t.aborted_by_callback && t.stream_body)) {
        release(c);
        return resp;
    }
    // Failed transfers may leave a broken connection: do not pool this handle.
    curl_easy_cleanup(c);
    std::string what = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (t.aborted_by_callback) return Error(ErrorCode::Transient, req.method + " " + req.url + ": cancelled");
    Error e(ErrorCode::Transient, req.method + " " + req.url + ": " + what);
    if (rc == CURLE_OPERATION_TIMEDOUT) e.type = "timeout";
    else if (rc == CURLE_COULDNT_CONNECT) e.type = "connect";
    else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
        e.type = "tls";
    }
    return e;
}

}  // namespace edgecert::platform
