"""Resource types served by the fake: built-in kinds plus kinds defined by CRDs.

A ResourceType is one (group, version, plural). Versions of one resource share a storage key, so
an object written through gateway.networking.k8s.io/v1beta1 is read back through v1, and core/v1
Events and events.k8s.io/v1 Events are one store (objects are kept in core/v1 form; see events.py).
"""
import threading

RBAC = "rbac.authorization.k8s.io"
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
EVENT_FIELDS = COMMON_FIELDS | {
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
    "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
    "reason", "reportingComponent", "source", "type",
    "regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
    "regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath",
    "reportingController", "deprecatedSource"}


class ResourceType:
    def __init__(self, group, version, plural, singular, kind, namespaced, short_names=(),
                 status=False, generation=False, custom=False, fields=COMMON_FIELDS,
                 columns=None, categories=(), crd_name=None, storage_version=None,
                 verbs=VERBS, virtual=False):
        self.group, self.version, self.plural = group, version, plural
        self.singular, self.kind, self.namespaced = singular, kind, namespaced
        self.short_names = list(short_names)
        self.status = status            # has a /status subresource
        self.generation = generation    # metadata.generation tracks spec changes
        self.custom = custom            # served from a CRD: no strategic merge, items carry kind
        self.fields = set(fields)       # supported fieldSelector labels
        self.columns = columns          # CRD additionalPrinterColumns (None: built-in table)
        self.categories = list(categories)
        self.crd_name = crd_name
        self.storage = "%s/%s" % (group, plural)
        self.storage_version = storage_version or version
        self.verbs = list(verbs)
        self.virtual = virtual          # answered per request, never stored (reviews.py)

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def gv_path(self):
        return "/apis/%s/%s" % (self.group, self.version) if self.group else "/api/v1"

    def discovery(self):
        out = [{"name": self.plural, "singularName": self.singular,
                "namespaced": self.namespaced, "kind": self.kind, "verbs": self.verbs}]
        if self.short_names:
            out[0]["shortNames"] = self.short_names
        if self.categories:
            out[0]["categories"] = self.categories
        if self.status:
            out.append({"name": self.plural + "/status", "singularName": "",
                        "namespaced": self.namespaced, "kind": self.kind,
                        "verbs": ["get", "patch", "update"]})
        return out


def _builtin():
    R = ResourceType
    return [
        R("", "v1", "namespaces", "namespace", "Namespace", False, ["ns"], status=True,
          fields=COMMON_FIELDS | {"status.phase"}),
        R("", "v1", "secrets", "secret", "Secret", True, fields=COMMON_FIELDS | {"type"}),
        R("", "v1", "configmaps", "configmap", "ConfigMap", True, ["cm"]),
        R("", "v1", "events", "event", "Event", True, ["ev"], fields=EVENT_FIELDS),
        R("", "v1", "services", "service", "Service", True, ["svc"], status=True,
          fields=COMMON_FIELDS | {"spec.clusterIP", "spec.type"}, categories=["all"]),
        R("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
        R("events.k8s.io", "v1", "events", "event", "Event", True, ["ev"], fields=EVENT_FIELDS),
        R("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", True, ["ing"],
          status=True, generation=True),
        R("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", False,
          generation=True),
        R("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
          "CustomResourceDefinition", False, ["crd", "crds"], status=True, generation=True),
        R("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"]),
        R(RBAC, "v1", "roles", "role", "Role", True),
        R(RBAC, "v1", "rolebindings", "rolebinding", "RoleBinding", True),
        R(RBAC, "v1", "clusterroles", "clusterrole", "ClusterRole", False),
        R(RBAC, "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", False),
        R("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "",
          "SelfSubjectAccessReview", False, verbs=["create"], virtual=True),
        R("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "",
          "SelfSubjectRulesReview", False, verbs=["create"], virtual=True),
        R("authentication.k8s.io", "v1", "selfsubjectreviews", "", "SelfSubjectReview", False,
          verbs=["create"], virtual=True),
    ]


class Registry:
    """All served ResourceTypes. Replaced copy-on-write so readers need no lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self.types = {}
        for rt in _builtin():
            if rt.group == "events.k8s.io":
                rt.storage = "/events"  # one store with core/v1 Events (kept in core form)
            self.types[(rt.group, rt.version, rt.plural)] = rt

    def lookup(self, group, version, plural):
        return self.types.get((group, version, plural))

    def by_storage(self, storage):
        return [rt for rt in self.types.values() if rt.storage == storage]

    def group_versions(self):
        """{group: [versions, preferred first]} for /api and /apis."""
        out = {}
        for rt in self.types.values():
            vs = out.setdefault(rt.group, [])
            if rt.version not in vs:
                vs.append(rt.version)
        for g, vs in out.items():
            vs.sort(key=_version_priority)
        return out

    def resources(self, group, version):
        return [rt for (g, v, _), rt in sorted(self.types.items()) if g == group and v == version]

    def set_crd(self, crd):
        """(Re)register the served versions of a CRD object (apiextensions.k8s.io/v1 form)."""
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        group = spec.get("group", "")
        storage_v = next((v["name"] for v in spec.get("versions", []) if v.get("storage")), None)
        new = {}
        for v in spec.get("versions", []):
            if not v.get("served", True):
                continue
            subs = v.get("subresources") or {}
            cols = [c for c in (v.get("additionalPrinterColumns") or [])]
            fields = set(COMMON_FIELDS)
            for sf in v.get("selectableFields") or []:
                fields.add(sf.get("jsonPath", "").lstrip("."))
            rt = ResourceType(group, v["name"], names.get("plural"),
                              names.get("singular") or names.get("kind", "").lower(),
                              names.get("kind"), spec.get("scope") == "Namespaced",
                              names.get("shortNames") or (), status="status" in subs,
                              generation=True, custom=True, fields=fields, columns=cols,
                              categories=names.get("categories") or (),
                              crd_name=crd["metadata"]["name"], storage_version=storage_v)
            new[(group, v["name"], rt.plural)] = rt
        with self._lock:
            types = {k: t for k, t in self.types.items() if t.crd_name != crd["metadata"]["name"]}
            for k, t in new.items():
                if k not in types:  # never shadow a built-in
                    types[k] = t
            self.types = types

    def remove_crd(self, name):
        with self._lock:
            self.types = {k: t for k, t in self.types.items() if t.crd_name != name}


def _version_priority(v):
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    import re
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0, v)
    major, tier, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[tier], -major, -minor, v)
