#pragma once
// "May I?" — a SelfSubjectAccessReview (authorization.k8s.io/v1, the API behind `kubectl auth
// can-i`). Every authenticated user may create one (the default ClusterRole system:basic-user),
// so a controller can learn what its RBAC allows without making a request that is refused.
#include <string>

#include "edgecert/base/result.h"
#include "edgecert/k8s/client.h"
#include "edgecert/k8s/resource.h"

namespace edgecert::k8s {

// authorization.k8s.io/v1 ResourceAttributes (the fields edgecert asks about).
struct AccessAttributes {
    std::string verb;  // get, list, watch, create, update, patch, delete
    std::string group;
    std::string resource;  // plural
    std::string subresource;
    std::string namespace_;  // empty: the cluster scope (every namespace)
    std::string name;

    static AccessAttributes of(std::string verb, const ResourceType& rt, std::string ns = {});
};

// "list ingresses.networking.k8s.io in namespace team-a" / "... at the cluster scope".
std::string describe(const AccessAttributes& a);

// status.allowed of the review. An Error when the server could not answer it (no authorization
// API, the review itself refused, a transport failure): the caller then finds out by trying.
Result<bool> can_i(Client& client, const AccessAttributes& a);

}  // namespace edgecert::k8s
