#pragma once
// What `edgecert controller`'s RBAC allows, asked before any watch starts with
// SelfSubjectAccessReviews (the API behind `kubectl auth can-i`, open to every authenticated
// user): a missing permission stops the controller with its name, instead of an endless stream
// of refused lists; and ClusterIssuers, optional for a namespace-confined controller, are
// skipped when they may not be read.
#include <optional>
#include <string>
#include <vector>

#include "edgecert/base/result.h"
#include "edgecert/k8s/client.h"
#include "edgecert/k8s/resource.h"

namespace edgecert::app {

struct ControllerAccess {
    std::vector<const k8s::ResourceType*> watched;  // namespaced types the informers list/watch
    std::vector<std::string> namespaces;            // --namespaces; empty: the cluster scope
    std::optional<std::pair<std::string, std::string>> lease;  // namespace, name (leader election)
};

// InvalidConfig naming what is denied (at most six, then a count); ok when everything is
// allowed, and also when the server cannot answer reviews (the informers then find out, and
// a refused list or watch stops the controller).
Status check_access(k8s::Client& client, const ControllerAccess& need);

// Why ClusterIssuers cannot be read, or nullopt when they can. Without reviews it tries a
// one-item list, and only a 403 counts as "cannot".
std::optional<std::string> cluster_issuers_unreadable(k8s::Client& client);

}  // namespace edgecert::app
