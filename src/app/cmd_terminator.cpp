// `edgecert terminator`: the composition root of the TLS edge. Wires the certificate source
// (a directory, or kubernetes.io/tls Secrets through informers) → CertStore (validate, build snapshot, swap) → the proxy's workers, the challenge
// sources, ticket-key rotation, the admin server and signals (SIGHUP full reload, SIGTERM drain).
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "app/commands.h"
#include "app/clients.h"
#include "app/flag_file.h"
#include "app/flags.h"
#include "app/terminator_runtime.h"
#include "app/k8s_cert_source.h"
#include "app/k8s_challenge_source.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/cpus.h"
#include "edgecert/base/metrics.h"
#include "platform/signals.h"
#include "platform/admin_server.h"
#include "platform/cert_dir_source.h"
#include "platform/curl_http.h"
#include "proxy/server.h"
#include "tls/cert_store.h"
#include "tls/challenge_source.h"
#include "tls/tls_context.h"

namespace edgecert::app {

int cmd_terminator(int argc, char** argv) {
    Flags f("terminator", "[flags]",
            "Terminates TLS with certificates from --cert-dir or Kubernetes Secrets (hot-reloaded on\n"
            "change), answers ACME http-01/tls-alpn-01 challenges (from --challenge-dir or Challenge\n"
            "objects), and forwards plain bytes to --upstream (with a PROXY header when\n"
            "--proxy-protocol says so).");
    f.add("listen", "ADDR:PORT", "TLS listener", "0.0.0.0:443")
        .add("http-listen", "ADDR:PORT", "plain-HTTP listener (ACME http-01, redirect/pass-through); 'off' disables",
             "0.0.0.0:80")
        .add("upstream", "HOST:PORT", "where decrypted connections go (resolved once at start)")
        .add("cert-source", "dir|kubernetes",
             "where certificates come from (default: dir with --cert-dir, else kubernetes with --kubeconfig)")
        .add("cert-dir", "DIR", "one folder per certificate with tls.crt and tls.key")
        .add("kubeconfig", "FILE", "Kubernetes API access (default: in-cluster service account)")
        .add("secret-selector", "SELECTOR",
             "label selector of the kubernetes.io/tls Secrets to serve; 'all': every TLS Secret",
             "edgecert.io/managed=true")
        .add("namespaces", "LIST", "namespaces to watch, comma-separated (default: all)")
        .add("sync-timeout", "DURATION", "how long to wait for the first list from the API server", "30s")
        .add("challenge-source", "dir|kubernetes|none",
             "ACME challenge answers (default: dir with --challenge-dir, else kubernetes with "
             "--cert-source kubernetes); --challenge-dir, when given, is consulted first (not with none)")
        .add("challenge-dir", "DIR", "ACME challenges: DIR/<token>, DIR/tls-alpn-01/<domain>")
        .add("default-cert", "NAME",
             "folder (or Secret namespace/name) served when SNI matches nothing (default: first by name)")
        .add_bool("strict-sni", "refuse handshakes whose SNI matches no certificate")
        .add("admin", "ADDR:PORT", "admin server (/healthz, /readyz, /metrics); 'off' disables", "0.0.0.0:9402")
        .add("workers", "N", "worker threads, each with its own event loop and listener (one per CPU this process may use)",
             std::to_string(usable_cpus()))
        .add("upstream-protocol", "http1|h2c",
             "what --upstream speaks: h2c = HTTP/2 with prior knowledge (and HTTP/1.1), which lets clients "
             "negotiate h2 (checked at start and on every h2 connection)",
             "http1")
        .add("upstream-h2", "HOST:PORT",
             "a separate HTTP/2-only (prior knowledge) upstream for the clients that negotiate h2; h2 is then "
             "offered (checked like h2c)")
        .add("proxy-protocol", "none|v1|v2",
             "PROXY protocol header sent upstream (client address, SNI, ALPN); the upstream must expect it", "none")
        .add("ktls", "off|auto|on",
             "kernel TLS for what is sent to clients: auto = the kernel encrypts after the handshake when it offers "
             "kTLS (upstream bytes are then spliced, never copied through user space), else OpenSSL does; on = "
             "refuse to start without it",
             "off")
        .add("http-mode", "redirect|passthrough", "non-challenge requests on the HTTP listener", "redirect")
        .add("handshake-timeout", "DURATION", "TLS handshake / request head / upstream connect deadline", "10s")
        .add("idle-timeout", "DURATION", "close a proxied connection idle this long", "5m")
        .add("max-connections", "N", "open connections across all workers; at it, one that sent no request yet makes room, else new ones wait in the listen queue (lowered to fit ulimit -n)", "50000")
        .add("drain-timeout", "DURATION", "on SIGTERM, how long in-flight connections may finish", "30s")
        .add("rescan-interval", "DURATION", "periodic full compare of --cert-dir (inotify fallback)", "10s")
        .add("ticket-key-rotation", "DURATION", "session-ticket key lifetime (2 previous keys still decrypt)", "12h")
        .add("alpn", "LIST",
             "ALPN protocols in server preference order (default: what --upstream-protocol speaks: "
             "http/1.1, or h2,http/1.1 for h2c)");
    f.add("config", "FILE", "YAML file of these settings (camelCase or flag names); flags override it");
    if (auto rc = parse_command_line(f, argc, argv, "terminator")) return *rc;
    auto fail = [](const Error& e) {
        spdlog::error("terminator: {}", e.message);
        return e.code == ErrorCode::InvalidConfig ? 2 : 1;
    };
    std::string cert_source = f.get("cert-source");
    if (cert_source.empty()) cert_source = f.has("cert-dir") ? "dir" : f.has("kubeconfig") ? "kubernetes" : "";
    if (cert_source.empty())
        return fail(Error(ErrorCode::InvalidConfig, "--cert-dir or --cert-source kubernetes is required"));
    if (cert_source != "dir" && cert_source != "kubernetes")
        return fail(Error(ErrorCode::InvalidConfig, "--cert-source must be dir or kubernetes"));
    if (cert_source == "dir" && !f.has("cert-dir"))
        return fail(Error(ErrorCode::InvalidConfig, "--cert-source dir needs --cert-dir"));
    std::string challenge_source = f.get("challenge-source");
    if (challenge_source.empty())
        challenge_source = f.has("challenge-dir") ? "dir" : cert_source == "kubernetes" ? "kubernetes" : "none";
    if (challenge_source != "dir" && challenge_source != "kubernetes" && challenge_source != "none")
        return fail(Error(ErrorCode::InvalidConfig, "--challenge-source must be dir, kubernetes or none"));
    if (challenge_source == "dir" && !f.has("challenge-dir"))
        return fail(Error(ErrorCode::InvalidConfig, "--challenge-source dir needs --challenge-dir"));
    bool use_k8s = cert_source == "kubernetes" || challenge_source == "kubernetes";

    proxy::ServerOptions so;
    so.listen = f.get("listen");
    so.http_listen = f.get("http-listen") == "off" ? "" : f.get("http-listen");
    so.upstream = f.get("upstream");
    auto workers = f.get_int("workers", 1, 256);
    auto maxc = f.get_int("max-connections", 1, 10'000'000);
    if (!workers) return fail(workers.error());
    if (!maxc) return fail(maxc.error());
    so.workers = static_cast<int>(*workers);
    so.max_connections = *maxc;
    std::string pp = f.get("proxy-protocol");
    if (pp == "none") so.proxy_protocol = proxy::ProxyProtocol::None;
    else if (pp == "v1") so.proxy_protocol = proxy::ProxyProtocol::V1;
    else if (pp == "v2") so.proxy_protocol = proxy::ProxyProtocol::V2;
    else return fail(Error(ErrorCode::InvalidConfig, "--proxy-protocol must be none, v1 or v2"));
    std::string hm = f.get("http-mode");
    if (hm == "redirect") so.http_mode = proxy::HttpMode::Redirect;
    else if (hm == "passthrough") so.http_mode = proxy::HttpMode::Passthrough;
    else return fail(Error(ErrorCode::InvalidConfig, "--http-mode must be redirect or passthrough"));
    std::chrono::milliseconds rescan, rotation, sync_timeout;
    for (auto [name, dst] : {std::pair{"handshake-timeout", &so.handshake_timeout}, {"idle-timeout", &so.idle_timeout},
                             {"drain-timeout", &so.drain_timeout}, {"rescan-interval", &rescan},
                             {"ticket-key-rotation", &rotation}, {"sync-timeout", &sync_timeout}}) {
        auto d = f.get_duration(name);
        if (!d) return fail(d.error());
        *dst = *d;
    }
    auto up = parse_upstream_protocol(f.get("upstream-protocol"));
    if (!up) return fail(up.error().with_context("--upstream-protocol"));
    so.upstream_protocol = *up;
    so.h2_upstream = f.get("upstream-h2");
    auto km = parse_ktls_mode(f.get("ktls"));
    if (!km) return fail(km.error().with_context("--ktls"));
    so.ktls = *km;
    tls::TlsOptions to;
    std::vector<std::string> alpn_flag = split_list(f.get("alpn"));
    auto alpn = offered_alpn(so, f.has("alpn") ? &alpn_flag : nullptr);
    if (!alpn) return fail(alpn.error().with_context("--alpn"));
    to.alpn = *alpn;

    // Signals are taken synchronously by this thread: blocked before any thread starts so every
    // thread inherits the mask.
    platform::SignalWaiter signals;

    RealClock& clock = RealClock::instance();
    TerminatorRuntimeOptions ro;
    ro.server = so;
    ro.tls = to;
    ro.default_cert = f.get("default-cert");
    ro.strict_sni = f.get_bool("strict-sni");
    ro.admin = f.get("admin") == "off" ? "" : f.get("admin");
    ro.rescan = rescan;
    ro.ticket_rotation = std::chrono::duration_cast<std::chrono::seconds>(rotation);
    if (challenge_source == "dir") ro.challenge_dir = f.get("challenge-dir");
    tls::MemoryChallengeSource k8s_challenges;  // filled from Challenge objects

    // Kubernetes access, shared by the Secret and Challenge informers and the Event recorder.
    std::unique_ptr<platform::CurlHttpClient> kube_http;
    std::unique_ptr<k8s::Client> kube;
    std::unique_ptr<k8s::EventRecorder> recorder;
    std::unique_ptr<K8sChallengeSource> challenge_watch;
    if (use_k8s) {
        auto cfg = f.has("kubeconfig") ? k8s::load_kubeconfig(f.get("kubeconfig")) : k8s::in_cluster_config();
        if (!cfg) return fail(Error(ErrorCode::InvalidConfig, cfg.error().message));
        auto http = kube_http_client(*cfg);
        if (!http) return fail(http.error());
        kube_http = std::move(*http);
        kube = std::make_unique<k8s::Client>(*kube_http, *cfg);
        k8s::EventRecorderOptions eo;
        eo.component = "edgecert-terminator";
        if (const char* node = std::getenv("NODE_NAME")) eo.host = node;
        recorder = std::make_unique<k8s::EventRecorder>(*kube, eo);
        spdlog::info("terminator: Kubernetes API {}", kube->server());
    }
    if (challenge_source == "kubernetes") {
        ChallengeSourceOptions co;
        co.namespaces = split_list(f.get("namespaces"));
        co.sync_timeout = sync_timeout;
        auto cs = K8sChallengeSource::create(*kube, k8s_challenges, clock, co);
        if (!cs) return fail(cs.error());
        challenge_watch = std::move(*cs);
        if (auto st = challenge_watch->start(); !st) return fail(st.error());
        ro.extra_challenges.push_back(&k8s_challenges);
    }
    if (cert_source == "dir") {
        ro.cert_dir = f.get("cert-dir");
    } else {
        SecretSourceOptions ko;
        ko.selector = f.get("secret-selector");
        ko.namespaces = split_list(f.get("namespaces"));
        ko.sync_timeout = sync_timeout;
        ro.source_desc = "Secrets (" + (ko.selector.empty() || ko.selector == "all" ? std::string("type=kubernetes.io/tls")
                                                                                    : ko.selector) + ")";
        k8s::EventRecorder* rec = recorder.get();
        k8s::Client* kc = kube.get();
        ro.make_source = [kc, rec, ko](tls::CertStore& store) -> Result<std::unique_ptr<tls::CertSource>> {
            EC_TRY_ASSIGN(auto ks, SecretCertSource::create(*kc, rec, ko));
            SecretCertSource* raw = ks.get();
            store.set_result_callback(
                [raw](const std::string& name, const tls::EntryResult& r) { raw->on_result(name, r); });
            return std::unique_ptr<tls::CertSource>(std::move(ks));
        };
    }

    auto rt = TerminatorRuntime::create(std::move(ro), clock, nullptr, metrics::Registry::global());
    if (!rt) return fail(rt.error());
    if (auto st = (*rt)->start(); !st) return fail(st.error());

    int rc = 0;
    while (true) {
        auto ev = signals.wait(std::chrono::seconds(1));
        (*rt)->tick();
        if (ev == platform::SignalWaiter::Event::Reload) {
            spdlog::info("terminator: SIGHUP: reloading every certificate");
            (*rt)->reload();
        } else if (ev == platform::SignalWaiter::Event::Stop) {
            spdlog::info("terminator: {}: draining (up to {} ms)", signals.last_name(), so.drain_timeout.count());
            if (!(*rt)->drain()) rc = 1;
            break;
        }
    }
    (*rt)->stop();
    if (challenge_watch) challenge_watch->stop();
    if (recorder) recorder->shutdown();  // drains queued Events (bounded)
    spdlog::info("terminator: stopped");
    return rc;
}

}  // namespace edgecert::app
