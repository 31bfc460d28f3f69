// `edgecert controller`: the composition root of the Kubernetes controller. Builds the API
// client (kubeconfig or in-cluster), the informers (started and synced on every replica, so a
// standby takes over with a warm cache), the Event recorder, the admin server, and the
// controllers; runs the controllers only while this replica holds the Lease. Losing the Lease
// exits non-zero (client-go controllers do the same) so the pod restarts clean; SIGTERM stops the
// controllers and releases the Lease so a standby takes over at once.
//
// --namespaces confines every namespaced watch (and so every write) to those namespaces, one
// list/watch per namespace, so a Role per namespace is all the RBAC it needs. What the RBAC
// allows is asked first (SelfSubjectAccessReview): a missing permission stops the controller with
// its name instead of an endless stream of refused requests, and ClusterIssuers the controller
// may not read are treated as absent.
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "app/clients.h"
#include "app/commands.h"
#include "app/controller_access.h"
#include "app/flag_file.h"
#include "app/flags.h"
#include "app/k8s_cert_source.h"
#include "app/status_page.h"
#include "app/status_sources.h"
#include "controller/certificate_controller.h"
#include "controller/context.h"
#include "controller/resources.h"
#include "controller/source_controller.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/metrics.h"
#include "edgecert/k8s/client.h"
#include "edgecert/k8s/config.h"
#include "edgecert/k8s/event_recorder.h"
#include "edgecert/k8s/informer.h"
#include "edgecert/k8s/leader_election.h"
#include "platform/admin_server.h"
#include "platform/curl_http.h"
#include "platform/signals.h"

namespace edgecert::app {
namespace {

namespace res = k8s::resources;
using std::chrono::milliseconds;

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

// Is `plural` served in group/version? Discovery, not a list: a list of a missing type and a
// list of an empty one look alike to an informer that just keeps retrying.
Result<bool> served(k8s::Client& client, std::string_view group_version, std::string_view plural) {
    auto r = client.request("GET", "/apis/" + std::string(group_version));
    if (!r) return r.error();
    if (r->status == 404) return false;
    if (r->status != 200) return k8s::status_error(*r, "discovery " + std::string(group_version));
    try {
        auto j = nlohmann::json::parse(r->body);
        for (const auto& res : j.value("resources", nlohmann::json::array()))
            if (res.value("name", "") == plural) return true;
        return false;
    } catch (const nlohmann::json::exception& e) {
        return Error(ErrorCode::Transient,
                     "discovery " + std::string(group_version) + ": " + e.what());
    }
}

std::string identity() {
    std::string base = env("POD_NAME");
    if (base.empty()) {
        char host[256] = {};
        if (gethostname(host, sizeof host - 1) == 0) base = host;
        if (base.empty()) base = "edgecert";
    }
    // A suffix tells two processes on one host (or a restarted pod) apart in the Lease.
    std::mt19937_64 rng{std::random_device{}()};
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(rng()));
    return base + "_" + suffix;
}

}  // namespace

int cmd_controller(int argc, char** argv) {
    Flags f("controller", "[flags]",
            "Watches annotated Ingresses and Gateways and keeps their Certificates (edgecert.io)\n"
            "in line; with leader election, only the replica holding the Lease reconciles.");
    f.add("kubeconfig", "FILE", "kubeconfig to use (default: in-cluster service account)")
        .add("context", "NAME", "kubeconfig context (default: current-context)")
        .add("admin", "ADDR:PORT",
             "admin server (/healthz, /readyz, /metrics, status page /); 'off' disables",
             "0.0.0.0:9402")
        .add_bool("leader-elect",
                  "run the controllers only while holding the Lease (default "
                  "true; --leader-elect=false for a single replica)")
        .add("leader-election-namespace", "NS",
             "namespace of the Lease (default: $POD_NAMESPACE, the in-cluster namespace, or "
             "'default')")
        .add("leader-election-id", "NAME", "name of the Lease", "edgecert-controller")
        .add("leader-election-lease-duration", "DURATION", "how long a Lease is valid", "15s")
        .add("leader-election-renew-deadline", "DURATION",
             "the leader gives up when it could not renew for this long", "10s")
        .add("leader-election-retry-period", "DURATION", "between acquire/renew attempts", "2s")
        .add("cluster-resource-namespace", "NS",
             "where Secrets of ClusterIssuers live (default: $POD_NAMESPACE or the in-cluster "
             "namespace, else 'default')")
        .add("namespaces", "LIST",
             "watch and write only in these namespaces, comma-separated (default: all); "
             "ClusterIssuers are still read when RBAC allows")
        .add("default-issuer", "NAME", "the issuer kubernetes.io/tls-acme: \"true\" selects")
        .add("default-issuer-kind", "Issuer|ClusterIssuer", "kind of --default-issuer",
             "ClusterIssuer")
        .add("workers", "N", "concurrent reconciles of the Ingress/Gateway shim", "2")
        .add("certificate-workers", "N",
             "concurrent issuances (each blocks on the CA and on challenge validation)", "8")
        .add("challenge-timeout", "DURATION",
             "how long to wait for a terminator to present a Challenge before giving up", "60s")
        .add("failure-backoff-base", "DURATION",
             "first wait after a failed issuance; doubles per failure (cap 32x)", "1h")
        .add("fallback-after-attempts", "N",
             "default of spec.fallbackPolicy.afterAttempts: CA-side failures in a row before the "
             "next issuer",
             "3")
        .add("fallback-after-duration", "DURATION",
             "default of spec.fallbackPolicy.afterDuration: or failing (CA side) for this long",
             "1h")
        .add("fallback-max-retry-after", "DURATION",
             "default of spec.fallbackPolicy.maxRetryAfter: a longer rateLimited Retry-After falls "
             "back at once",
             "1h");
    f.add("config", "FILE", "YAML file of these settings (camelCase or flag names); flags override it");
    if (auto rc = parse_command_line(f, argc, argv, "controller")) return *rc;
    auto fail = [](const Error& e) {
        spdlog::error("controller: {}", e.message);
        return e.code == ErrorCode::InvalidConfig ? 2 : 1;
    };

    // ---- flags -----------------------------------------------------------------------------
    const bool leader_elect = !f.has("leader-elect") || f.get_bool("leader-elect");
    milliseconds lease_duration, renew_deadline, retry_period;
    for (auto [name, dst] : {std::pair{"leader-election-lease-duration", &lease_duration},
                             {"leader-election-renew-deadline", &renew_deadline},
                             {"leader-election-retry-period", &retry_period}}) {
        auto d = f.get_duration(name, false);
        if (!d) return fail(d.error());
        *dst = *d;
    }
    auto workers = f.get_int("workers", 1, 64);
    if (!workers) return fail(workers.error());
    controller::ShimOptions shim;
    if (f.has("default-issuer")) {
        std::string kind = f.get("default-issuer-kind");
        if (kind != "Issuer" && kind != "ClusterIssuer")
            return fail(Error(ErrorCode::InvalidConfig,
                              "--default-issuer-kind must be Issuer or ClusterIssuer"));
        if (auto why = controller::invalid_object_name_reason(f.get("default-issuer")))
            return fail(Error(ErrorCode::InvalidConfig, "--default-issuer: " + *why));
        shim.default_issuer = controller::IssuerRef{f.get("default-issuer"), kind};
    }
    std::vector<std::string> namespaces;
    for (auto& ns : split_list(f.get("namespaces"))) {
        if (auto why = controller::invalid_object_name_reason(ns))
            return fail(Error(ErrorCode::InvalidConfig, "--namespaces: " + *why));
        if (std::find(namespaces.begin(), namespaces.end(), ns) == namespaces.end())
            namespaces.push_back(ns);
    }
    shim.namespaces = namespaces;

    // ---- API client ------------------------------------------------------------------------
    Result<k8s::Config> cfg = Error(ErrorCode::InvalidConfig, "no configuration");
    if (f.has("kubeconfig")) {
        k8s::KubeconfigOptions ko;
        ko.context = f.get("context");
        cfg = k8s::load_kubeconfig(f.get("kubeconfig"), ko);
    } else {
        cfg = k8s::in_cluster_config();
    }
    if (!cfg) return fail(cfg.error().with_context("Kubernetes API configuration"));
    std::string pod_ns = env("POD_NAMESPACE");
    if (pod_ns.empty()) pod_ns = f.has("kubeconfig") ? "default" : cfg->namespace_;
    if (pod_ns.empty()) pod_ns = "default";
    const std::string lease_ns =
        f.has("leader-election-namespace") ? f.get("leader-election-namespace") : pod_ns;
    const std::string cluster_ns =
        f.has("cluster-resource-namespace") ? f.get("cluster-resource-namespace") : pod_ns;

    auto http = kube_http_client(*cfg);
    if (!http) return fail(http.error());
    RealClock& clock = RealClock::instance();
    k8s::Client client(**http, *cfg, clock);

    // Signals are taken synchronously by this thread: blocked before any thread starts so every
    // thread inherits the mask.
    platform::SignalWaiter signals;

    // ---- what the cluster serves -------------------------------------------------------------
    auto have_certs = served(client, "edgecert.io/v1alpha1", "certificates");
    if (!have_certs) return fail(have_certs.error().with_context("API discovery"));
    if (!*have_certs)
        return fail(Error(ErrorCode::InvalidConfig,
                          "the edgecert.io/v1alpha1 CRDs are not installed "
                          "(kubectl apply -f deploy/crds/)"));
    auto have_gw = served(client, "gateway.networking.k8s.io/v1", "gateways");
    if (!have_gw) return fail(have_gw.error().with_context("API discovery"));
    auto have_grants = Result<bool>(false);
    if (*have_gw) {
        have_grants = served(client, std::string(res::ReferenceGrant.api_version()),
                             "referencegrants");
        if (!have_grants) return fail(have_grants.error().with_context("API discovery"));
    } else {
        spdlog::info("controller: the Gateway API is not installed; watching Ingresses only");
    }

    // ---- what RBAC allows ----------------------------------------------------------------------
    ControllerAccess need;
    need.watched = {&res::Ingress, &controller::resources::Certificate,
                    &controller::resources::Issuer, &controller::resources::Challenge,
                    &res::Secret};
    if (*have_gw) need.watched.push_back(&res::Gateway);
    if (*have_grants) need.watched.push_back(&res::ReferenceGrant);
    need.namespaces = namespaces;
    if (leader_elect) need.lease = {lease_ns, f.get("leader-election-id")};
    if (auto st = check_access(client, need); !st) return fail(st.error());
    // ClusterIssuers are optional: a controller confined to namespaces may not be allowed to read
    // them. Then they are absent (said once, here), and a Certificate that names one says why.
    std::string cluster_issuers_unavailable = cluster_issuers_unreadable(client).value_or("");
    if (!cluster_issuers_unavailable.empty())
        spdlog::warn("controller: ClusterIssuers are not readable: {}",
                     cluster_issuers_unavailable);
    if (!namespaces.empty()) {
        std::string list;
        for (const auto& ns : namespaces) list += (list.empty() ? "" : ",") + ns;
        spdlog::info("controller: watching namespaces {} only", list);
    }

    // ---- informers (every replica: a standby keeps a warm cache) -----------------------------
    // A refused list or watch is fatal: the RBAC changed under us, or the server cannot answer
    // reviews and the preflight above was skipped. Retrying would only repeat the refusal.
    std::mutex forbidden_mu;
    std::optional<std::string> forbidden;
    std::vector<std::unique_ptr<k8s::Informer>> informers;
    auto make = [&](const k8s::ResourceType& rt, std::string selector = {}) {
        k8s::ReflectorOptions ro;
        ro.type = rt;
        ro.label_selector = std::move(selector);
        auto inf = std::make_unique<k8s::Informer>(
            client, ro, rt.namespaced ? namespaces : std::vector<std::string>{});
        inf->set_transform(k8s::meta::strip_managed_fields);
        std::string what = rt.qualified_plural();
        inf->set_error_handler([what, &forbidden_mu, &forbidden](const Error& e) {
            if (e.code == ErrorCode::Forbidden) {
                std::lock_guard lk(forbidden_mu);
                if (!forbidden) forbidden = "watching " + what + ": " + e.message;
                return;
            }
            spdlog::warn("controller: watching {}: {} ({})", what, e.message, to_string(e.code));
        });
        informers.push_back(std::move(inf));
        return informers.back().get();
    };
    auto refused = [&]() -> std::optional<std::string> {
        std::lock_guard lk(forbidden_mu);
        return forbidden;
    };
    controller::Informers inf;
    inf.ingresses = make(res::Ingress);
    if (*have_gw) inf.gateways = make(res::Gateway);
    if (*have_grants) inf.referencegrants = make(res::ReferenceGrant);
    inf.certificates = make(controller::resources::Certificate);
    inf.issuers = make(controller::resources::Issuer);
    if (cluster_issuers_unavailable.empty())
        inf.clusterissuers = make(controller::resources::ClusterIssuer);
    inf.challenges = make(controller::resources::Challenge);
    inf.secrets = make(res::Secret, std::string(controller::kManagedLabel) + "=true");

    k8s::EventRecorderOptions eo;
    eo.component = controller::kEventComponent;
    eo.host = env("NODE_NAME");
    k8s::EventRecorder recorder(client, eo);
    metrics::Registry& registry = metrics::Registry::global();

    controller::ControllerContext ctx{client, recorder, registry, clock, inf, shim, cluster_ns};
    ctx.cluster_issuers_unavailable = cluster_issuers_unavailable;
    controller::Runner::Options ro;
    ro.workers = static_cast<int>(*workers);
    controller::SourceController shim_controller(ctx, ro);
    shim_controller.register_handlers();

    controller::CertificateControllerOptions cco;
    {
        auto w = f.get_int("certificate-workers", 1, 256);
        if (!w) return fail(w.error());
        cco.workers = static_cast<int>(*w);
        auto ct = f.get_duration("challenge-timeout", false);
        if (!ct) return fail(ct.error());
        cco.challenge_present_timeout = *ct;
        auto fb = f.get_duration("failure-backoff-base", false);
        if (!fb) return fail(fb.error());
        cco.failure_backoff_base = std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(*fb));
        auto fa = f.get_int("fallback-after-attempts", 1, 1000);
        if (!fa) return fail(fa.error());
        cco.fallback.after_attempts = static_cast<int>(*fa);
        auto fd = f.get_duration("fallback-after-duration", false);
        if (!fd) return fail(fd.error());
        cco.fallback.after_duration = std::max(
            std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(*fd));
        auto fr = f.get_duration("fallback-max-retry-after", true);
        if (!fr) return fail(fr.error());
        cco.fallback.max_retry_after = std::chrono::duration_cast<std::chrono::seconds>(*fr);
    }
    controller::CertificateController cert_controller(ctx, acme_http_client, cco);
    cert_controller.register_handlers();

    auto start_controllers = [&] {
        shim_controller.start();
        cert_controller.start();
    };
    auto stop_controllers = [&] {
        cert_controller.stop();
        shim_controller.stop();
    };

    // ---- admin server ------------------------------------------------------------------------
    auto synced = [&informers] {
        for (const auto& i : informers)
            if (!i->has_synced()) return false;
        return true;
    };
    std::unique_ptr<platform::AdminServer> admin;
    if (f.get("admin") != "off") {
        auto a = platform::AdminServer::create({f.get("admin")}, registry, synced);
        if (!a) return fail(a.error());
        admin = std::move(*a);
        // The status page: what the informer caches know (Certificates, their Secrets, Issuers).
        auto store_of = [](k8s::Informer* i) { return i ? &i->store() : nullptr; };
        status::add_status_handlers(*admin,
                                    [&inf, &clock, store_of] {
                                        return status::report_from_caches(
                                            store_of(inf.certificates), store_of(inf.secrets),
                                            store_of(inf.issuers), store_of(inf.clusterissuers),
                                            clock.now());
                                    },
                                    {"edgecert controller"});
        if (auto st = admin->start(); !st) return fail(st.error());
        spdlog::info("controller: admin server on port {}", admin->port());
    }

    for (auto& i : informers) i->start();
    auto shutdown = [&](int code) {
        stop_controllers();
        // Cancel every watch first, then join: a cancelled stream notices within about a second
        // (libcurl's progress callback), so stopping them one by one would add up.
        for (auto& i : informers) i->cancel();
        for (auto& i : informers) i->stop();
        recorder.flush(milliseconds(5'000));
        recorder.shutdown();
        if (admin) admin->stop();
        spdlog::info("controller: stopped");
        return code;
    };

    // Wait for the caches before leading: a reconcile against a half-filled cache would delete
    // Certificates whose sources it has not seen yet.
    auto refused_exit = [&](const std::string& why) {
        spdlog::error(
            "controller: the API server refused a request the controller cannot work without: {}",
            why);
        return shutdown(2);
    };
    while (!synced()) {
        if (signals.wait(milliseconds(100)) == platform::SignalWaiter::Event::Stop) {
            spdlog::info("controller: {} before the caches synced", signals.last_name());
            return shutdown(0);
        }
        if (auto why = refused()) return refused_exit(*why);
    }
    spdlog::info("controller: caches synced ({} informers)", informers.size());

    if (!leader_elect) {
        start_controllers();
        for (;;) {
            if (signals.wait(milliseconds(1000)) == platform::SignalWaiter::Event::Stop) break;
            if (auto why = refused()) return refused_exit(*why);
        }
        spdlog::info("controller: {}: stopping", signals.last_name());
        return shutdown(0);
    }

    k8s::LeaderElectionConfig lc;
    lc.lease_namespace = lease_ns;
    lc.lease_name = f.get("leader-election-id");
    lc.identity = identity();
    lc.lease_duration = lease_duration;
    lc.renew_deadline = renew_deadline;
    lc.retry_period = retry_period;
    lc.release_on_cancel = true;
    std::atomic<bool> leading{false}, lost{false};
    lc.on_started_leading = [&] {
        spdlog::info("controller: {} is the leader: starting controllers", lc.identity);
        leading = true;
        start_controllers();
    };
    lc.on_stopped_leading = [&] {
        if (leading.exchange(false)) lost = true;
    };
    lc.on_new_leader = [&](const std::string& id) {
        if (id != lc.identity) spdlog::info("controller: the leader is {}", id);
    };
    auto elector = k8s::LeaderElector::create(client, lc);
    if (!elector) return fail(elector.error());
    std::atomic<bool> elector_done{false};
    std::thread election([&] {
        (*elector)->run();
        elector_done = true;
    });

    int code = 0;
    bool stopping = false;
    while (!stopping) {
        if (signals.wait(milliseconds(200)) == platform::SignalWaiter::Event::Stop) {
            spdlog::info("controller: {}: stopping and releasing the Lease", signals.last_name());
            stopping = true;
        } else if (auto why = refused()) {
            spdlog::error(
                "controller: the API server refused a request the controller cannot work without: "
                "{}",
                *why);
            code = 2;
            stopping = true;
        } else if (lost.load() || (elector_done.load() && !stopping)) {
            // Another replica may already be reconciling: stop at once and let the pod restart
            // with clean state.
            spdlog::error("controller: lost the Lease {}/{}; exiting", lease_ns, lc.lease_name);
            code = 1;
            stopping = true;
        }
    }
    // Controllers first, so nothing writes after the Lease is released; then release it.
    stop_controllers();
    (*elector)->stop();
    election.join();
    return shutdown(code);
}

}  // namespace edgecert::app
