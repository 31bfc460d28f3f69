#pragma once
// ResourceTypes of edgecert's own API (deploy/crds/*.yaml): group edgecert.io, version v1alpha1.
// The generic k8s::Client and Informer work over these like over the built-in types.
#include "edgecert/k8s/resource.h"

namespace edgecert::controller::resources {

inline constexpr k8s::ResourceType Certificate{"edgecert.io", "v1alpha1", "certificates",
                                               "Certificate", true};
inline constexpr k8s::ResourceType Issuer{"edgecert.io", "v1alpha1", "issuers", "Issuer", true};
inline constexpr k8s::ResourceType ClusterIssuer{"edgecert.io", "v1alpha1", "clusterissuers",
                                                 "ClusterIssuer", false};
inline constexpr k8s::ResourceType Challenge{"edgecert.io", "v1alpha1", "challenges", "Challenge",
                                             true};

}  // namespace edgecert::controller::resources
