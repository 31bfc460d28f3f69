#pragma once
// Resource traits: one generic client over (group, version, plural, kind, namespaced) instead of
// code per kind (kube-rs `Api<K>` / client-go dynamic client). URL layout follows
// https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris
#include <string>
#include <string_view>

namespace edgecert::k8s {

struct ResourceType {
    std::string_view group;    // "" for the core group
    std::string_view version;  // "v1"
    std::string_view plural;   // "secrets": the URL segment
    std::string_view kind;     // "Secret": TypeMeta.kind of one object
    bool namespaced = true;

    // "v1" for core, "group/version" otherwise (TypeMeta.apiVersion).
    std::string api_version() const {
        if (group.empty()) return std::string(version);
        return std::string(group) + "/" + std::string(version);
    }
    // "/api/v1" or "/apis/<group>/<version>".
    std::string base_path() const {
        if (group.empty()) return "/api/" + std::string(version);
        return "/apis/" + std::string(group) + "/" + std::string(version);
    }
    // Collection path; `ns` empty on a namespaced type lists across all namespaces.
    std::string collection_path(std::string_view ns) const {
        std::string p = base_path();
        if (namespaced && !ns.empty()) p += "/namespaces/" + std::string(ns);
        p += "/";
        p += plural;
        return p;
    }
    std::string object_path(std::string_view ns, std::string_view name,
                            std::string_view subresource = {}) const {
        std::string p = collection_path(ns) + "/" + std::string(name);
        if (!subresource.empty()) p += "/" + std::string(subresource);
        return p;
    }
    // "secrets" or "ingresses.networking.k8s.io", as the API server names it in messages.
    std::string qualified_plural() const {
        if (group.empty()) return std::string(plural);
        return std::string(plural) + "." + std::string(group);
    }
};

// Well-known types the controller and the terminator use.
namespace resources {
inline constexpr ResourceType Secret{"", "v1", "secrets", "Secret", true};
inline constexpr ResourceType ConfigMap{"", "v1", "configmaps", "ConfigMap", true};
inline constexpr ResourceType Namespace{"", "v1", "namespaces", "Namespace", false};
inline constexpr ResourceType Event{"", "v1", "events", "Event", true};
inline constexpr ResourceType EventV1{"events.k8s.io", "v1", "events", "Event", true};
inline constexpr ResourceType Lease{"coordination.k8s.io", "v1", "leases", "Lease", true};
inline constexpr ResourceType Ingress{"networking.k8s.io", "v1", "ingresses", "Ingress", true};
inline constexpr ResourceType IngressClass{"networking.k8s.io", "v1", "ingressclasses",
                                           "IngressClass", false};
inline constexpr ResourceType Gateway{"gateway.networking.k8s.io", "v1", "gateways", "Gateway",
                                      true};
inline constexpr ResourceType GatewayClass{"gateway.networking.k8s.io", "v1", "gatewayclasses",
                                           "GatewayClass", false};
inline constexpr ResourceType HTTPRoute{"gateway.networking.k8s.io", "v1", "httproutes",
                                        "HTTPRoute", true};
// v1beta1 is served by every Gateway API release that has ReferenceGrant (v1 only since v1.5).
inline constexpr ResourceType ReferenceGrant{"gateway.networking.k8s.io", "v1beta1",
                                             "referencegrants", "ReferenceGrant", true};
inline constexpr ResourceType CustomResourceDefinition{
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false};
}  // namespace resources

}  // namespace edgecert::k8s
