"""Objects every real cluster starts with: the four system namespaces, the default RBAC policy
(rbac.bootstrap_policy), and the Gateway API
CRDs (Gateway API is always installed as CRDs, so it is served like any custom resource:
strategic merge patch is refused with 415, list items carry kind/apiVersion)."""

from . import rbac

GATEWAY_GROUP = "gateway.networking.k8s.io"
_SCHEMA = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}


def _age():
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _crd(plural, kind, scope, short, versions, storage, status, columns):
    vs = []
    for v in versions:
        ver = {"name": v, "served": True, "storage": v == storage, "schema": _SCHEMA,
               "additionalPrinterColumns": columns}
        if status:
            ver["subresources"] = {"status": {}}
        vs.append(ver)
    names = {"plural": plural, "singular": kind.lower(), "kind": kind,
             "listKind": kind + "List", "categories": ["gateway-api"]}
    if short:
        names["shortNames"] = short
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.%s" % (plural, GATEWAY_GROUP),
                         "annotations": {"gateway.networking.k8s.io/bundle-version": "v1.5.0",
                                         "gateway.networking.k8s.io/channel": "standard"}},
            "spec": {"group": GATEWAY_GROUP, "scope": scope, "names": names, "versions": vs}}


def gateway_crds():
    cond = '.status.conditions[?(@.type=="%s")].status'
    return [
        _crd("gatewayclasses", "GatewayClass", "Cluster", ["gc"], ["v1", "v1beta1"], "v1", True,
             [{"name": "Controller", "type": "string", "jsonPath": ".spec.controllerName"},
              {"name": "Accepted", "type": "string", "jsonPath": cond % "Accepted"}, _age(),
              {"name": "Description", "type": "string", "jsonPath": ".spec.description",
               "priority": 1}]),
        _crd("gateways", "Gateway", "Namespaced", ["gtw"], ["v1", "v1beta1"], "v1", True,
             [{"name": "Class", "type": "string", "jsonPath": ".spec.gatewayClassName"},
              {"name": "Address", "type": "string", "jsonPath": ".status.addresses[*].value"},
              {"name": "Programmed", "type": "string", "jsonPath": cond % "Programmed"},
              _age()]),
        _crd("httproutes", "HTTPRoute", "Namespaced", [], ["v1", "v1beta1"], "v1", True,
             [{"name": "Hostnames", "type": "string", "jsonPath": ".spec.hostnames"}, _age()]),
        _crd("referencegrants", "ReferenceGrant", "Namespaced", ["refgrant"],
             ["v1", "v1beta1"], "v1beta1", False, [_age()]),
    ]


def bootstrap(store):
    ns_rt = store.reg.lookup("", "v1", "namespaces")
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        store.create(ns_rt, "", {"metadata": {"name": ns}}, "kube-apiserver")
    for plural, obj in rbac.bootstrap_policy():
        store.create(store.reg.lookup(rbac.GROUP, "v1", plural), "", obj, "kube-apiserver")
    crd_rt = store.reg.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    for crd in gateway_crds():
        store.create(crd_rt, "", crd, "kube-apiserver")
