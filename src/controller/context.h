#pragma once
// What every reconciler of `edgecert controller` shares, built once by the composition root
// (src/app/cmd_controller.cpp) and outliving every controller. Holds references only: the
// composition root owns the client, recorder, registry, clock and informers.
//
// Reconcilers read state from the informer caches (never told why they ran) and write through
// `client` with `field_manager`. Informers are started and synced before any reconciler runs.
#include <string>

#include "controller/shim.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/metrics.h"
#include "edgecert/k8s/client.h"
#include "edgecert/k8s/event_recorder.h"
#include "edgecert/k8s/informer.h"

namespace edgecert::controller {

inline constexpr const char* kFieldManager = "edgecert";
inline constexpr const char* kEventComponent = "edgecert-controller";
// The label on every Secret edgecert writes; the secrets informer selects on it.
inline constexpr const char* kManagedLabel = "edgecert.io/managed";

struct Informers {
    k8s::Informer* ingresses = nullptr;
    // Null when the Gateway API CRDs are not installed (the controller then runs Ingress-only).
    k8s::Informer* gateways = nullptr;
    k8s::Informer* referencegrants = nullptr;
    k8s::Informer* certificates = nullptr;
    k8s::Informer* issuers = nullptr;
    k8s::Informer* clusterissuers = nullptr;
    k8s::Informer* challenges = nullptr;
    // Secrets labelled edgecert.io/managed=true only (TLS Secrets edgecert wrote); other Secrets
    // (account keys, EAB) are read with client.get when needed, not cached cluster-wide.
    k8s::Informer* secrets = nullptr;
};

struct ControllerContext {
    k8s::Client& client;
    k8s::EventRecorder& events;
    metrics::Registry& metrics;
    Clock& clock;
    Informers informers;
    ShimOptions shim;
    // Where Secrets referenced by ClusterIssuers (ACME account key, EAB HMAC) live.
    std::string cluster_resource_namespace;
    // Why ClusterIssuers cannot be read (RBAC), when they cannot: informers.clusterissuers is
    // null then, and a Certificate naming a ClusterIssuer reports this.
    std::string cluster_issuers_unavailable;
    std::string field_manager = kFieldManager;
};

}  // namespace edgecert::controller
