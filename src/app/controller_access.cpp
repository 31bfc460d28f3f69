#include "app/controller_access.h"

#include <spdlog/spdlog.h>

#include "controller/resources.h"
#include "edgecert/k8s/access_review.h"

namespace edgecert::app {
namespace {

// The review's answer; an Error when the server cannot answer it.
Result<bool> ask(k8s::Client& client, const k8s::AccessAttributes& a) {
    auto r = k8s::can_i(client, a);
    if (!r)
        spdlog::debug("controller: cannot ask the API server ({}); trying instead",
                      r.error().message);
    return r;
}

}  // namespace

Status check_access(k8s::Client& client, const ControllerAccess& need) {
    std::vector<k8s::AccessAttributes> asks;
    const std::vector<std::string> scopes =
        need.namespaces.empty() ? std::vector<std::string>{""} : need.namespaces;
    for (const auto* rt : need.watched)
        for (const auto& ns : scopes)
            for (const char* verb : {"list", "watch"})
                asks.push_back(k8s::AccessAttributes::of(verb, *rt, ns));
    if (need.lease) {
        // client-go's algorithm: get the Lease, create it when missing, update it to renew.
        const auto& [ns, name] = *need.lease;
        asks.push_back(k8s::AccessAttributes::of("create", k8s::resources::Lease, ns));
        for (const char* verb : {"get", "update"}) {
            auto a = k8s::AccessAttributes::of(verb, k8s::resources::Lease, ns);
            a.name = name;
            asks.push_back(a);
        }
    }
    std::vector<std::string> denied;
    for (const auto& a : asks) {
        auto ok = ask(client, a);
        if (!ok) return {};  // no reviews here: find out by trying
        if (!*ok) denied.push_back(k8s::describe(a));
    }
    if (denied.empty()) return {};
    std::string list;
    for (size_t i = 0; i < denied.size() && i < 6; ++i) list += (i ? "; " : "") + denied[i];
    if (denied.size() > 6) list += "; and " + std::to_string(denied.size() - 6) + " more";
    const char* fix =
        need.namespaces.empty()
            ? ". Grant deploy/rbac/controller.yaml, or confine the controller with --namespaces "
              "and "
              "deploy/rbac/namespaced/ (docs/install.md)"
            : ". Apply deploy/rbac/namespaced/ for each of --namespaces (docs/install.md)";
    return Error(ErrorCode::InvalidConfig,
                 "the API server's RBAC denies what the controller needs: " + list + fix);
}

std::optional<std::string> cluster_issuers_unreadable(k8s::Client& client) {
    const auto& rt = controller::resources::ClusterIssuer;
    auto l = ask(client, k8s::AccessAttributes::of("list", rt));
    auto w = ask(client, k8s::AccessAttributes::of("watch", rt));
    bool readable;
    if (l && w) {
        readable = *l && *w;
    } else {
        k8s::ListOptions lo;
        lo.limit = 1;
        auto r = client.list(rt, "", lo);
        readable = r || r.error().code != ErrorCode::Forbidden;
    }
    if (readable) return std::nullopt;
    return "this controller may not list and watch clusterissuers.edgecert.io (RBAC); use an "
           "Issuer in the "
           "Certificate's namespace, or grant it and restart the controller";
}

}  // namespace edgecert::app
