"""Known fields of the built-in kinds, for `fieldValidation` (KEP-2885).

The real server decodes built-in objects into Go structs: unknown fields are dropped, with a
`Warning: 299` header per field (fieldValidation=Warn, the default) or silently (Ignore), and
fieldValidation=Strict refuses the request with 400 `strict decoding error: unknown field "x"`.
Custom resources (and so Gateway API kinds) keep unknown fields here because their schemas
preserve them. Notation: {field: subschema}; None = any value; ANY = a map with any keys;
[schema] = a list of schema.
"""
ANY = "*"
OBJREF = {k: None for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                            "fieldPath")}
OBJECT_META = {
    "name": None, "generateName": None, "namespace": None, "selfLink": None, "uid": None,
    "resourceVersion": None, "generation": None, "creationTimestamp": None,
    "deletionTimestamp": None, "deletionGracePeriodSeconds": None, "labels": ANY,
    "annotations": ANY, "finalizers": None, "managedFields": None,
    "ownerReferences": [{k: None for k in ("apiVersion", "kind", "name", "uid", "controller",
                                           "blockOwnerDeletion")}]}
BACKEND = {"service": {"name": None, "port": {"name": None, "number": None}},
           "resource": {"apiGroup": None, "kind": None, "name": None}}
SOURCE = {"component": None, "host": None}
SERIES = {"count": None, "lastObservedTime": None}
RULE = {k: None for k in ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")}
BINDING = {"subjects": [{k: None for k in ("kind", "apiGroup", "name", "namespace")}],
           "roleRef": {k: None for k in ("apiGroup", "kind", "name")}}

KINDS = {
    "/secrets": {"data": ANY, "stringData": ANY, "type": None, "immutable": None},
    "/configmaps": {"data": ANY, "binaryData": ANY, "immutable": None},
    "/namespaces": {"spec": {"finalizers": None}, "status": {"phase": None, "conditions": None}},
    "/services": {"spec": ANY, "status": ANY},
    "coordination.k8s.io/leases": {"spec": {k: None for k in (
        "holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
        "leaseTransitions", "strategy", "preferredHolder")}},
    "core-events": {"involvedObject": OBJREF, "related": OBJREF, "reason": None,
                    "message": None, "source": SOURCE, "firstTimestamp": None,
                    "lastTimestamp": None, "count": None, "type": None, "eventTime": None,
                    "series": SERIES, "action": None, "reportingComponent": None,
                    "reportingInstance": None},
    "events.k8s.io-events": {"regarding": OBJREF, "related": OBJREF, "reason": None,
                             "note": None, "deprecatedSource": SOURCE,
                             "deprecatedFirstTimestamp": None, "deprecatedLastTimestamp": None,
                             "deprecatedCount": None, "type": None, "eventTime": None,
                             "series": SERIES, "action": None, "reportingController": None,
                             "reportingInstance": None},
    "networking.k8s.io/ingresses": {
        "spec": {"ingressClassName": None, "defaultBackend": BACKEND,
                 "tls": [{"hosts": None, "secretName": None}],
                 "rules": [{"host": None, "http": {"paths": [
                     {"path": None, "pathType": None, "backend": BACKEND}]}}]},
        "status": {"loadBalancer": {"ingress": [{"ip": None, "hostname": None,
                                                 "ports": None}]}}},
    "networking.k8s.io/ingressclasses": {"spec": {"controller": None, "parameters": {
        k: None for k in ("apiGroup", "kind", "name", "namespace", "scope")}}},
    "apiextensions.k8s.io/customresourcedefinitions": {"spec": ANY, "status": ANY},
    "/serviceaccounts": {"secrets": None, "imagePullSecrets": None,
                         "automountServiceAccountToken": None},
    "rbac.authorization.k8s.io/roles": {"rules": [RULE]},
    "rbac.authorization.k8s.io/clusterroles": {"rules": [RULE],
                                               "aggregationRule": {"clusterRoleSelectors": None}},
    "rbac.authorization.k8s.io/rolebindings": BINDING,
    "rbac.authorization.k8s.io/clusterrolebindings": BINDING,
}


def schema_for(rt):
    if rt.custom:
        return None
    key = rt.storage
    if key == "/events":
        key = "events.k8s.io-events" if rt.group == "events.k8s.io" else "core-events"
    fields = KINDS.get(key)
    if fields is None:
        return None
    return dict(fields, apiVersion=None, kind=None, metadata=OBJECT_META)


def prune(obj, schema, prefix=""):
    """Remove unknown fields from obj in place; return their dotted paths. Keys starting with
    "$" (strategic-merge directives) are left alone."""
    unknown = []
    if schema is None or schema == ANY or not isinstance(obj, dict):
        return unknown
    for k in list(obj):
        path = prefix + k
        if k.startswith("$"):
            continue
        if k not in schema:
            unknown.append(path)
            del obj[k]
            continue
        sub = schema[k]
        if isinstance(sub, list):
            if isinstance(obj[k], list):
                for i, el in enumerate(obj[k]):
                    unknown += prune(el, sub[0], "%s[%d]." % (path, i))
        elif isinstance(sub, dict):
            unknown += prune(obj[k], sub, path + ".")
    return unknown
