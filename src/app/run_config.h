#pragma once
// The configuration file of `edgecert run` (the embedded default: one process, a local
// directory as the store). Issuers and certificates use the SAME field names as the CRDs
// (deploy/crds/*.yaml), so an entry moves to Kubernetes line by line:
//
//   store: /var/lib/edgecert
//   issuers:
//     - name: pebble
//       acme: {server: ..., caBundle|caBundleFile: ..., email: ..., profile: ..., preferredChain:
//       ...,
//              externalAccountBinding: {keyID: ..., keySecretFile: path}, solvers: [{http01: {}}]}
//     - name: selfsigned
//       selfSigned: {}
//     - name: internal-ca
//       ca: {secretName: root-ca}             # STORE/certs/root-ca: a certificate of this file
//       # or ca: {certFile: ca.crt, keyFile: ca.key}   # a CA made elsewhere
//   certificates:
//     - name: demo
//       labels: {tier: web}        # the Certificate's metadata.labels (solver matchLabels)
//       secretName: demo           # default: name; the folder under STORE/certs
//       dnsNames: [demo.example.test]
//       ipAddresses: [192.0.2.1]   # RFC 8738 IP SANs (http01/tlsAlpn01 solvers only)
//       issuerRef: {name: pebble}
//       fallbackIssuerRefs: [{name: other}]   # tried when pebble keeps failing (fallback.h)
//       fallbackPolicy: {afterAttempts: 3, afterDuration: 1h, maxRetryAfter: 1h}
//       privateKey: {algorithm: ECDSA, size: 256, rotationPolicy: Always}
//       renewBefore: 720h          # or renewBeforePercentage
//       # selfSigned / ca issuers also: commonName, isCA, duration, usages, subject
//   terminator: {listen: "0.0.0.0:443", httpListen: "0.0.0.0:80", upstream: "127.0.0.1:8080",
//                proxyProtocol: none|v1|v2, httpMode: redirect|passthrough,
//                admin: "127.0.0.1:9402"|off, workers: N, strictSni: false, defaultCertificate:
//                name}
//
// A few fields differ from the CRDs, because there are no Secrets here: caBundleFile,
// externalAccountBinding.keySecretFile and ca.certFile/keyFile name files (relative paths: from
// the config file's folder); ca.secretName names a folder of the store, like a Secret.
// Each entry is converted to the CRD shape and validated by the same parsers the Kubernetes
// controller uses (controller/issuance.h). Any error names its entry:
// "certificates[1] (demo): spec.dnsNames or spec.ipAddresses must list at least one name".
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "controller/issuance.h"
#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"
#include "proxy/server.h"

namespace edgecert::app {

struct RunIssuer {
    std::string name;
    controller::IssuerType type = controller::IssuerType::Acme;
    controller::AcmeIssuerSpec acme;
    std::optional<SecretBytes> eab_hmac;  // raw HMAC key, read from keySecretFile
    // type Ca: the store folder ca.secretName, or the files ca.certFile / ca.keyFile (read at each
    // issuance, so a replaced CA is picked up without a restart; checked once at load).
    std::string ca_secret_name;
    std::string ca_cert_file, ca_key_file;
};

struct RunTerminator {
    std::string listen = "0.0.0.0:443";
    std::string http_listen = "0.0.0.0:80";  // "" / off: none (then http-01 cannot be answered)
    std::string upstream;                    // required
    // On one machine the upstream is usually the application itself, which rarely speaks PROXY.
    proxy::ProxyProtocol proxy_protocol = proxy::ProxyProtocol::None;
    proxy::HttpMode http_mode = proxy::HttpMode::Redirect;
    std::string admin = "127.0.0.1:9402";  // "" / off: none
    int workers = 1;
    bool strict_sni = false;
    std::string default_certificate;  // a certificate's secretName (the folder the CertStore knows)
    std::chrono::milliseconds drain_timeout{10'000};
    // Bytes are forwarded as they are: h2 is offered only when the upstream speaks it
    // (upstreamProtocol: h2c); an application behind `run` usually speaks HTTP/1.1 only.
    proxy::UpstreamProtocol upstream_protocol = proxy::UpstreamProtocol::Http1;
    std::string upstream_h2;  // upstreamH2: a separate HTTP/2-only port for h2 clients
    proxy::KtlsMode ktls = proxy::KtlsMode::Off;  // ktls: off | auto | on
    std::vector<std::string> alpn = {"http/1.1"};  // resolved by offered_alpn()
};

// `edgecert renew --config FILE NAME` asks a running `edgecert run` for a renewal by leaving an
// empty file STORE/renew-requests/NAME; run takes it within a second (cmd_run.cpp).
inline constexpr const char* kRenewRequestsDir = "renew-requests";

struct RunConfig {
    std::string store;  // a relative path in the file is taken from the config file's folder
    std::vector<RunIssuer> issuers;
    std::vector<controller::CertificateSpec> certificates;
    RunTerminator terminator;

    const RunIssuer* issuer(const std::string& name) const;
    const controller::CertificateSpec* certificate(const std::string& name) const;
};

// YAML text → JSON (plain scalars: null, bool, integer, float, else string; quoted: string).
Result<nlohmann::json> yaml_to_json(const std::string& text);

// `base_dir` resolves relative caBundleFile / keySecretFile / ca.certFile / store paths.
// InvalidConfig errors name the entry.
Result<RunConfig> parse_run_config(const nlohmann::json& doc, const std::string& base_dir);
Result<RunConfig> load_run_config(const std::string& path);

// The key pair of a `ca` issuer given as certFile / keyFile (controller::load_ca()'s errors).
Result<pki::CaKeyPair> load_ca_files(const RunIssuer& iss, SystemTime now);

}  // namespace edgecert::app
