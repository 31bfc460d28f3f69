#pragma once
// The libcurl clients the long-running commands build: one per ACME issuer endpoint (trusting
// its caBundle) and one for the Kubernetes API (from a kubeconfig or the in-cluster config).
#include <chrono>
#include <memory>
#include <string>

#include "controller/issuance.h"
#include "edgecert/base/http.h"
#include "edgecert/k8s/client.h"
#include "edgecert/k8s/config.h"
#include "platform/curl_http.h"

namespace edgecert::app {

// An HttpClient for an issuer's ACME directory; an empty caBundle means the system roots.
Result<std::unique_ptr<HttpClient>> acme_http_client(const controller::AcmeIssuerSpec& issuer);

// An HttpClient for the API server: its CA, client certificate/key, insecure-skip-tls-verify.
Result<std::unique_ptr<platform::CurlHttpClient>> kube_http_client(const k8s::Config& cfg);

// $KUBECONFIG (its first file), else ~/.kube/config when it exists: where kubectl looks. Empty
// when there is neither.
std::string default_kubeconfig();

// A client for the cluster of a kubeconfig (the command-line tools: status, renew).
struct KubeConnection {
    k8s::Config cfg;
    std::unique_ptr<platform::CurlHttpClient> http;
    std::unique_ptr<k8s::Client> client;  // uses *http
};
Result<KubeConnection> connect_kube(const std::string& kubeconfig, const std::string& context,
                                    std::chrono::milliseconds timeout, Clock& clock);

}  // namespace edgecert::app
