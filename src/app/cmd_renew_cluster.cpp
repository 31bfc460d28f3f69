// `edgecert renew NAME... | --all` against a cluster: asks the controller for a new certificate
// now, as `cmctl renew` does for cert-manager. It sets the Certificate's condition Issuing=True
// with reason ManuallyTriggered (status subresource, conditional on resourceVersion); the
// controller picks it up from its watch, issues (skipping a failure backoff, not a CA's
// Retry-After), keeps serving the old certificate meanwhile and says Renewed in an Event.
#include <cstdio>
#include <string>
#include <vector>

#include "app/clients.h"
#include "app/commands.h"
#include "app/flags.h"
#include "controller/issuance.h"
#include "controller/resources.h"
#include "controller/status_util.h"
#include "edgecert/base/clock.h"
#include "edgecert/k8s/client.h"
#include "edgecert/k8s/object.h"

namespace edgecert::app {
namespace {

namespace meta = k8s::meta;
using controller::resources::Certificate;
using nlohmann::json;

constexpr const char* kMessage = "Certificate re-issuance manually triggered (edgecert renew)";

// One Certificate: Ready to trigger unless an issuance is already running.
enum class Outcome { Triggered, AlreadyIssuing, Failed };

Outcome trigger(k8s::Client& client, json cert, Clock& clock) {
    const std::string key = meta::namespace_(cert) + "/" + meta::name(cert);
    for (int attempt = 0;; ++attempt) {
        json status = cert.value("status", json::object());
        if (const json* c = controller::find_condition(status, "Issuing"); c && c->value("status", "") == "True") {
            std::printf("Certificate %s is already being issued (%s); not triggered again\n", key.c_str(),
                        c->value("reason", "Issuing").c_str());
            return Outcome::AlreadyIssuing;
        }
        const int64_t gen = cert.value("metadata", json::object()).value("generation", int64_t(0));
        controller::set_condition(status, "Issuing", "True", controller::kManuallyTriggered, kMessage, clock.now(), gen);
        cert["status"] = status;
        auto r = client.update_status(Certificate, cert);  // metadata.resourceVersion: conditional
        if (r) {
            std::printf("Manually triggered issuance of Certificate %s\n", key.c_str());
            return Outcome::Triggered;
        }
        if (r.error().code != ErrorCode::Conflict || attempt >= 4) {
            std::fprintf(stderr, "edgecert renew: Certificate %s: %s\n", key.c_str(), r.error().message.c_str());
            return Outcome::Failed;
        }
        // The controller wrote its status meanwhile: read again and decide again.
        auto again = client.get(Certificate, meta::namespace_(cert), meta::name(cert));
        if (!again) {
            std::fprintf(stderr, "edgecert renew: Certificate %s: %s\n", key.c_str(), again.error().message.c_str());
            return Outcome::Failed;
        }
        cert = std::move(*again);
    }
}

}  // namespace

bool renew_targets_cluster(int argc, char** argv) {
    return has_any_flag(argc, argv, {"--kubeconfig", "--context", "--namespace", "--all-namespaces", "--selector"},
                        "nlA");
}

int cmd_renew_cluster(int argc, char** argv) {
    Flags f("renew", "[--kubeconfig FILE] [-n NS | -A] (NAME... | --all [-l SELECTOR])",
            "Asks the controller to renew Certificates now, as `cmctl renew` does: sets their condition\n"
            "Issuing=True, reason ManuallyTriggered. The controller issues at once (a failure backoff is\n"
            "skipped, a CA's Retry-After is not), serves the old certificate until the new one is stored,\n"
            "and records a Renewed Event. A Certificate already being issued is left alone.\n"
            "Exit status: 0 all triggered or already issuing, 1 a Certificate failed or was not found,\n"
            "2 usage. (Without a cluster flag or NAME, `edgecert renew` renews a local certificate.)");
    f.add("kubeconfig", "FILE", "the cluster (default: $KUBECONFIG or ~/.kube/config)")
        .add("context", "NAME", "kubeconfig context (default: current-context)")
        .add("namespace", "NS", "namespace (-n; default: the context's namespace, else 'default')")
        .add_bool("all-namespaces", "every namespace (-A; with --all)")
        .add_bool("all", "every Certificate in the namespace (or with -A in all of them)")
        .add("selector", "SELECTOR", "with --all: only Certificates with these labels (-l; a=b,c!=d)")
        .add("timeout", "DURATION", "per request to the API server", "10s");
    std::vector<std::string> args = expand_kubectl_flags(argc, argv, {{'n', "namespace"}, {'l', "selector"}});
    std::vector<char*> ptrs;
    for (auto& a : args) ptrs.push_back(a.data());
    auto usage = [](const std::string& msg) {
        std::fprintf(stderr, "edgecert renew: %s\n", msg.c_str());
        return 2;
    };
    if (auto st = f.parse(static_cast<int>(ptrs.size()), ptrs.data()); !st) return usage(st.error().message);
    if (f.help_requested()) {
        std::printf("%s", f.help_text().c_str());
        return 0;
    }
    const bool all = f.get_bool("all");
    const bool all_ns = f.has("all-namespaces") && f.get_bool("all-namespaces");
    const auto& names = f.positional();
    if (all == !names.empty()) return usage("give Certificate names or --all (not both)");
    if (all_ns && f.has("namespace")) return usage("--namespace and --all-namespaces exclude each other");
    if (all_ns && !all) return usage("--all-namespaces goes with --all");
    if (f.has("selector") && !all) return usage("--selector goes with --all");
    auto timeout = f.get_duration("timeout", false);
    if (!timeout) return usage(timeout.error().message);
    const std::string path = f.has("kubeconfig") ? f.get("kubeconfig") : default_kubeconfig();
    if (path.empty()) return usage("no cluster: give --kubeconfig FILE (or set KUBECONFIG)");

    RealClock& clock = RealClock::instance();
    auto kube = connect_kube(path, f.get("context"), *timeout, clock);
    if (!kube) {
        std::fprintf(stderr, "edgecert renew: %s\n", kube.error().message.c_str());
        return kube.error().code == ErrorCode::InvalidConfig ? 2 : 1;
    }
    std::string ns = f.has("namespace") ? f.get("namespace") : kube->cfg.namespace_;
    if (ns.empty()) ns = "default";

    std::vector<json> certs;
    bool failed = false;
    if (all) {
        k8s::ListOptions lo;
        lo.label_selector = f.get("selector");
        auto listed = kube->client->list(Certificate, all_ns ? "" : ns, lo);
        if (!listed) {
            std::fprintf(stderr, "edgecert renew: listing Certificates: %s\n", listed.error().message.c_str());
            return 1;
        }
        certs = std::move(listed->items);
        if (certs.empty()) std::printf("No Certificates found\n");
    } else {
        for (const auto& n : names) {
            auto c = kube->client->get(Certificate, ns, n);
            if (!c) {
                std::fprintf(stderr, "edgecert renew: Certificate %s/%s: %s\n", ns.c_str(), n.c_str(),
                             c.error().code == ErrorCode::NotFound ? "not found" : c.error().message.c_str());
                failed = true;
                continue;
            }
            certs.push_back(std::move(*c));
        }
    }
    for (auto& c : certs) failed |= trigger(*kube->client, std::move(c), clock) == Outcome::Failed;
    return failed ? 1 : 0;
}

}  // namespace edgecert::app
