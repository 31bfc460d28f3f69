#pragma once
// The libcurl clients the long-running commands build: one per ACME issuer endpoint (trusting
// its caBundle) and one for the Kubernetes API (from a kubeconfig or the in-cluster config).
#include <memory>

#include "controller/issuance.h"
#include "edgecert/base/http.h"
#include "edgecert/k8s/config.h"
#include "platform/curl_http.h"

namespace edgecert::app {

// An HttpClient for an issuer's ACME directory; an empty caBundle means the system roots.
Result<std::unique_ptr<HttpClient>> acme_http_client(const controller::AcmeIssuerSpec& issuer);

// An HttpClient for the API server: its CA, client certificate/key, insecure-skip-tls-verify.
Result<std::unique_ptr<platform::CurlHttpClient>> kube_http_client(const k8s::Config& cfg);

}  // namespace edgecert::app
