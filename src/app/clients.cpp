#include "app/clients.h"

#include <cstdlib>

#include "platform/files.h"

namespace edgecert::app {

Result<std::unique_ptr<HttpClient>> acme_http_client(const controller::AcmeIssuerSpec& issuer) {
    platform::CurlOptions o;
    o.ca_pem = issuer.ca_bundle_pem;
    EC_TRY_ASSIGN(auto c, platform::CurlHttpClient::create(std::move(o)));
    return std::unique_ptr<HttpClient>(std::move(c));
}

Result<std::unique_ptr<platform::CurlHttpClient>> kube_http_client(const k8s::Config& cfg) {
    platform::CurlOptions co;
    co.ca_pem = cfg.ca_pem;
    co.client_cert_pem = cfg.client_certificate_pem;
    co.client_key_pem = cfg.client_key_pem;
    co.insecure_skip_verify = cfg.insecure_skip_tls_verify;
    return platform::CurlHttpClient::create(std::move(co));
}

std::string default_kubeconfig() {
    if (const char* k = std::getenv("KUBECONFIG"); k && *k) {
        std::string s = k;
        return s.substr(0, s.find(':'));
    }
    if (const char* h = std::getenv("HOME"); h && *h) {
        std::string p = std::string(h) + "/.kube/config";
        if (platform::file_exists(p)) return p;
    }
    return {};
}

Result<KubeConnection> connect_kube(const std::string& kubeconfig, const std::string& context,
                                    std::chrono::milliseconds timeout, Clock& clock) {
    k8s::KubeconfigOptions ko;
    ko.context = context;
    auto cfg = k8s::load_kubeconfig(kubeconfig, ko);
    if (!cfg) return cfg.error().with_context("kubeconfig " + kubeconfig);
    KubeConnection kc{.cfg = std::move(*cfg), .http = nullptr, .client = nullptr};
    EC_TRY_ASSIGN(kc.http, kube_http_client(kc.cfg));
    k8s::ClientOptions co{kc.cfg.server, kc.cfg.token_source};
    co.timeout = timeout;
    kc.client = std::make_unique<k8s::Client>(*kc.http, std::move(co), clock);
    return kc;
}

}  // namespace edgecert::app
