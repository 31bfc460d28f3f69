"""Who is asking, and may they: authentication identities, request attributes and the RBAC
authorizer of kube-apiserver --authorization-mode=RBAC.

- Identities (k8s.io/apiserver/pkg/authentication/user): a --token-file line
  `token,user,uid,"group1,group2"` (kube-apiserver's --token-auth-file CSV) authenticates as that
  user; a bare token line (fakekube's original form) as `fakekube-admin` in `system:masters`; a
  client certificate as CN = user, O = groups. Every authenticated user is also in
  `system:authenticated`. A ServiceAccount's user is `system:serviceaccount:NS:NAME`, in groups
  `system:serviceaccounts` and `system:serviceaccounts:NS`.
- Request attributes: request_info() follows k8s.io/apiserver/pkg/endpoints/request/
  requestinfo.go (verbs from the HTTP method, list/watch/deletecollection for collections, the
  name taken from a `metadata.name=` field selector, namespace subresources).
- Authorization: the group `system:masters` is always allowed (kube-apiserver's privileged-group
  authorizer); otherwise the RBAC rules of every ClusterRoleBinding, and of the RoleBindings in
  the request's namespace, whose subjects match the user (plugin/pkg/auth/authorizer/rbac/rbac.go
  and pkg/apis/rbac/v1/evaluation_helpers.go). Nothing matches: denied (deny by default).
- A denial is a 403 Status with responsewriters.Forbidden's message.
- bootstrap_policy(): the default ClusterRoles/Bindings every cluster has (bootstrappolicy),
  that is cluster-admin, system:discovery, system:basic-user and system:public-info-viewer.
"""
import csv
import io

from . import errors

GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SA_PREFIX = "system:serviceaccount:"
ADMIN = "fakekube-admin"


class User:
    def __init__(self, name, uid="", groups=()):
        self.name, self.uid = name, uid
        self.groups = list(groups)
        if name != "system:anonymous" and AUTHENTICATED not in self.groups:
            self.groups.append(AUTHENTICATED)

    def __repr__(self):
        return "User(%r, %r)" % (self.name, self.groups)


def service_account_user(ns, name):
    return User(SA_PREFIX + "%s:%s" % (ns, name),
                groups=["system:serviceaccounts", "system:serviceaccounts:" + ns])


def parse_token_file(text):
    """{token: User} from --token-file contents."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if "," not in line:
            out[line.strip()] = User(ADMIN, groups=[MASTERS])
            continue
        row = next(csv.reader(io.StringIO(line)))
        if len(row) < 3 or not row[0] or not row[1]:
            raise ValueError("token file: want token,user,uid[,\"group1,group2\"]")
        groups = [g for g in (row[3].split(",") if len(row) > 3 else []) if g]
        if row[1].startswith(SA_PREFIX) and not groups:
            ns = row[1][len(SA_PREFIX):].split(":")[0]
            groups = ["system:serviceaccounts", "system:serviceaccounts:" + ns]
        out[row[0]] = User(row[1], row[2], groups)
    return out


def cert_user(peercert):
    """User from a verified client certificate (ssl.getpeercert() form): CN and O."""
    cn, orgs = "", []
    for rdn in peercert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
            elif k == "organizationName":
                orgs.append(v)
    return User(cn, groups=orgs)


# ---- request attributes -------------------------------------------------------------------

class RequestInfo:
    def __init__(self, path, verb):
        self.path, self.verb = path, verb
        self.is_resource = False
        self.api_group = self.api_version = self.namespace = ""
        self.resource = self.subresource = self.name = ""

    def __repr__(self):
        if not self.is_resource:
            return "%s %s" % (self.verb, self.path)
        return "%s %s/%s%s ns=%r name=%r" % (self.verb, self.api_group, self.resource,
                                            "/" + self.subresource if self.subresource else "",
                                            self.namespace, self.name)


_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}


def request_info(method, path, query):
    """query: {name: first value}. Non-resource requests get the lower-case HTTP method as verb."""
    parts = [p for p in path.split("/") if p]
    info = RequestInfo(path, method.lower())
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return info
    prefix, parts = parts[0], parts[1:]
    if prefix == "apis":
        if len(parts) < 3:
            return info
        info.api_group, parts = parts[0], parts[1:]
    info.is_resource = True
    info.api_version, parts = parts[0], parts[1:]
    if parts[0] in ("watch", "proxy"):
        info.verb, parts = parts[0], parts[1:]
        if not parts:
            return info
    else:
        info.verb = _METHOD_VERBS.get(method, "")
    if parts[0] == "namespaces":
        if len(parts) > 1:
            info.namespace = parts[1]
            if len(parts) > 2 and parts[2] not in ("status", "finalize"):
                parts = parts[2:]
    if len(parts) >= 3 and info.verb != "proxy":
        info.subresource = parts[2]
    if len(parts) >= 2:
        info.name = parts[1]
    info.resource = parts[0]
    if not info.name and info.verb == "get":
        from .api import parse_bool
        info.verb = "watch" if parse_bool(query.get("watch")) else "list"
        for term in (query.get("fieldSelector") or "").split(","):  # RequiresExactMatch
            k, _, v = term.partition("=")
            v = v[1:] if v.startswith("=") else v
            if k.strip() == "metadata.name" and v.strip():
                info.name = v.strip()
    if not info.name and info.verb == "delete":
        info.verb = "deletecollection"
    return info


# ---- RBAC evaluation ----------------------------------------------------------------------

def _has(values, want):
    return "*" in values or want in values


def rule_allows(rule, info):
    if not _has(rule.get("verbs") or [], info.verb):
        return False
    if not info.is_resource:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == info.path or (url.endswith("*") and
                                                  info.path.startswith(url.rstrip("*"))):
                return True
        return False
    if not _has(rule.get("apiGroups") or [], info.api_group):
        return False
    combined = info.resource + ("/" + info.subresource if info.subresource else "")
    ok = False
    for r in rule.get("resources") or []:
        if r == "*" or r == combined or (info.subresource and r == "*/" + info.subresource):
            ok = True
            break
    if not ok:
        return False
    names = rule.get("resourceNames") or []
    return not names or info.name in names


def _applies(subject, user, namespace):
    kind = subject.get("kind")
    if kind == "User":
        return user.name == subject.get("name")
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        return bool(ns) and user.name == "%s%s:%s" % (SA_PREFIX, ns, subject.get("name"))
    return False


def _role_rules(store, ref, namespace):
    kind = ref.get("kind")
    if kind == "ClusterRole":
        o = store.data.get(GROUP + "/clusterroles", {}).get(("", ref.get("name")))
    elif kind == "Role" and namespace:
        o = store.data.get(GROUP + "/roles", {}).get((namespace, ref.get("name")))
    else:
        o = None
    return (o or {}).get("rules") or []


def _subject_text(user):
    if user.name.startswith(SA_PREFIX):
        ns, _, name = user.name[len(SA_PREFIX):].partition(":")
        return 'ServiceAccount "%s/%s"' % (name, ns)
    return 'User "%s"' % user.name


def rules_for(store, user, namespace):
    """[(rule, why)] granted to user in namespace ("" = cluster-wide bindings only); `why` is
    the RBAC authorizer's "allowed by ..." reason."""
    out = []
    who = _subject_text(user)
    with store.lock:
        for b in store.data.get(GROUP + "/clusterrolebindings", {}).values():
            if any(_applies(s, user, "") for s in b.get("subjects") or []):
                ref = b.get("roleRef") or {}
                why = 'RBAC: allowed by ClusterRoleBinding "%s" of ClusterRole "%s" to %s' % (
                    b["metadata"]["name"], ref.get("name"), who)
                out += [(r, why) for r in _role_rules(store, ref, "")]
        if namespace:
            for (ns, name), b in store.data.get(GROUP + "/rolebindings", {}).items():
                if ns == namespace and any(_applies(s, user, ns) for s in b.get("subjects") or []):
                    ref = b.get("roleRef") or {}
                    why = 'RBAC: allowed by RoleBinding "%s/%s" of %s "%s" to %s' % (
                        name, ns, ref.get("kind"), ref.get("name"), who)
                    out += [(r, why) for r in _role_rules(store, ref, ns)]
    return out


def decide(store, mode, user, info):
    """(allowed, reason) like an authorizer.Decision."""
    if mode != "RBAC":
        return True, ""
    if MASTERS in user.groups:
        return True, ""
    for rule, why in rules_for(store, user, info.namespace):
        if rule_allows(rule, info):
            return True, why
    return False, ""


def authorize(store, mode, user, info):
    return decide(store, mode, user, info)[0]


def forbidden(user, info):
    """responsewriters.Forbidden + apierrors.NewForbidden."""
    if not info.is_resource:
        return errors.ApiError(403, "Forbidden", 'forbidden: User "%s" cannot %s path "%s"'
                               % (user.name, info.verb, info.path), {})
    res = info.resource + ("/" + info.subresource if info.subresource else "")
    where = ('in the namespace "%s"' % info.namespace if info.namespace
             else "at the cluster scope")
    why = 'User "%s" cannot %s resource "%s" in API group "%s" %s' % (
        user.name, info.verb, res, info.api_group, where)
    qualified = info.resource + ("." + info.api_group if info.api_group else "")
    if info.name:
        msg = '%s "%s" is forbidden: %s' % (qualified, info.name, why)
    else:
        msg = "%s is forbidden: %s" % (qualified, why)
    details = {"kind": info.resource}
    if info.name:
        details["name"] = info.name
    if info.api_group:
        details["group"] = info.api_group
    return errors.ApiError(403, "Forbidden", msg, details)


# ---- validation of RBAC objects (pkg/apis/rbac/validation) --------------------------------

def validate(rt, obj, old):
    causes = []
    if rt.plural in ("roles", "clusterroles"):
        for i, r in enumerate(obj.get("rules") or []):
            if not r.get("verbs"):
                causes.append(("rules[%d].verbs" % i, "FieldValueRequired",
                               "Required value: verbs must contain at least one value"))
            if r.get("nonResourceURLs") and rt.plural == "roles":
                causes.append(("rules[%d].nonResourceURLs" % i, "FieldValueInvalid",
                               "Invalid value: %s: namespaced rules cannot apply to non-resource "
                               "URLs" % r["nonResourceURLs"]))
            elif not r.get("nonResourceURLs") and not r.get("resources"):
                causes.append(("rules[%d].resources" % i, "FieldValueRequired",
                               "Required value: resource rules must supply at least one "
                               "resource"))
            elif r.get("resources") and r.get("apiGroups") is None:
                causes.append(("rules[%d].apiGroups" % i, "FieldValueRequired",
                               "Required value: resource rules must supply at least one api "
                               "group"))
    if rt.plural in ("rolebindings", "clusterrolebindings"):
        ref = obj.get("roleRef") or {}
        if ref.get("apiGroup") != GROUP:
            causes.append(("roleRef.apiGroup", "FieldValueNotSupported",
                           'Unsupported value: "%s": supported values: "%s"'
                           % (ref.get("apiGroup", ""), GROUP)))
        kinds = ["ClusterRole"] if rt.plural == "clusterrolebindings" else ["Role", "ClusterRole"]
        if ref.get("kind") not in kinds:
            causes.append(("roleRef.kind", "FieldValueNotSupported",
                           'Unsupported value: "%s": supported values: %s'
                           % (ref.get("kind", ""), ", ".join('"%s"' % k for k in kinds))))
        if not ref.get("name"):
            causes.append(("roleRef.name", "FieldValueRequired", "Required value"))
        for i, s in enumerate(obj.get("subjects") or []):
            if s.get("kind") == "ServiceAccount" and not s.get("namespace") \
                    and rt.plural == "clusterrolebindings":
                causes.append(("subjects[%d].namespace" % i, "FieldValueRequired",
                               "Required value"))
            elif s.get("kind") not in ("User", "Group", "ServiceAccount"):
                causes.append(("subjects[%d].kind" % i, "FieldValueNotSupported",
                               'Unsupported value: "%s": supported values: "ServiceAccount", '
                               '"User", "Group"' % s.get("kind", "")))
        if old is not None and (old.get("roleRef") or {}) != ref:
            causes.append(("roleRef", "FieldValueInvalid",
                           "Invalid value: %s: cannot change roleRef" % ref))
    if causes:
        raise errors.invalid(rt, (obj.get("metadata") or {}).get("name", ""), causes)


# ---- the default policy -------------------------------------------------------------------

def _labelled(kind, name, **body):
    o = {"apiVersion": GROUP + "/v1", "kind": kind,
         "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                      "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}}
    o.update(body)
    return o


def _binding(name, role, groups):
    return _labelled("ClusterRoleBinding", name,
                     roleRef={"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
                     subjects=[{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups])


def bootstrap_policy():
    """[(plural, object)] in creation order."""
    get = ["get"]
    return [
        ("clusterroles", _labelled("ClusterRole", "cluster-admin", rules=[
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]}])),
        ("clusterroles", _labelled("ClusterRole", "system:discovery", rules=[
            {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                 "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
             "verbs": get}])),
        ("clusterroles", _labelled("ClusterRole", "system:basic-user", rules=[
            {"apiGroups": ["authorization.k8s.io"],
             "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
             "verbs": ["create"]},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
             "verbs": ["create"]}])),
        ("clusterroles", _labelled("ClusterRole", "system:public-info-viewer", rules=[
            {"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
             "verbs": get}])),
        ("clusterrolebindings", _binding("cluster-admin", "cluster-admin", [MASTERS])),
        ("clusterrolebindings", _binding("system:discovery", "system:discovery",
                                         [AUTHENTICATED])),
        ("clusterrolebindings", _binding("system:basic-user", "system:basic-user",
                                         [AUTHENTICATED])),
        ("clusterrolebindings", _binding("system:public-info-viewer", "system:public-info-viewer",
                                         [AUTHENTICATED, UNAUTHENTICATED])),
    ]
