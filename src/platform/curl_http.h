#pragma once
// libcurl implementation of HttpClient: a pool of easy handles (one per concurrent caller), each
// keeping its own connection cache so sequential requests to the same CA or API server reuse one
// TLS connection. Thread-safe: concurrent send()/stream() calls each take a handle from the pool.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "edgecert/base/http.h"
#include "edgecert/base/secret.h"

namespace edgecert::platform {

struct CurlOptions {
    std::string ca_file;           // PEM bundle to trust instead of the system store
    std::string ca_pem;            // PEM text to trust (kubeconfig certificate-authority-data)
    std::string client_cert_pem;   // mTLS client certificate (kubeconfig)
    SecretBytes client_key_pem;    // mTLS client key
    bool insecure_skip_verify = false;
    std::string user_agent;        // default: edgecert/<version>
    std::chrono::milliseconds connect_timeout{10'000};
    size_t max_idle_handles = 8;
};

class CurlHttpClient final : public HttpClient {
public:
    static Result<std::unique_ptr<CurlHttpClient>> create(CurlOptions opts);
    ~CurlHttpClient() override;

    Result<HttpResponse> send(const HttpRequest& req) override;
    Result<HttpResponse> stream(const HttpRequest& req,
                                const std::function<bool(std::string_view)>& on_data) override;

private:
    explicit CurlHttpClient(CurlOptions opts);
    void* acquire();
    void release(void* h);
    Result<HttpResponse> perform(const HttpRequest& req,
                                 const std::function<bool(std::string_view)>* on_data);

    CurlOptions opts_;
    std::mutex mu_;
    std::vector<void*> idle_;
};

}  // namespace edgecert::platform
