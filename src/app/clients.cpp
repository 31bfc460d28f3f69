#include "app/clients.h"

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

}  // namespace edgecert::app
