"""Create-only review resources: authorization.k8s.io/v1 SelfSubjectAccessReview (`kubectl auth
can-i`), SelfSubjectRulesReview (`kubectl auth can-i --list`) and authentication.k8s.io/v1
SelfSubjectReview (`kubectl auth whoami`). They are answered, never stored (pkg/registry/
authorization/selfsubjectaccessreview/rest.go and friends)."""
from . import errors, rbac
from .api import _body as api_body

KINDS = {"selfsubjectaccessreviews": "SelfSubjectAccessReview",
         "selfsubjectrulesreviews": "SelfSubjectRulesReview",
         "selfsubjectreviews": "SelfSubjectReview"}


def _body(h):
    o = api_body(h)
    if not isinstance(o, dict):
        raise errors.bad_request("the body of the request must be a JSON object")
    return o


def handle(h, method, rt):
    if method != "POST":
        raise errors.method_not_allowed(method)
    srv = h.server
    user = h.user
    obj = _body(h)
    out = {"kind": rt.kind, "apiVersion": rt.api_version,
           "metadata": {"creationTimestamp": None}}
    if rt.plural == "selfsubjectreviews":
        out["status"] = {"userInfo": {"username": user.name, "groups": user.groups}}
        if user.uid:
            out["status"]["userInfo"]["uid"] = user.uid
        return h._send(201, out)
    spec = obj.get("spec") or {}
    out["spec"] = spec
    if rt.plural == "selfsubjectaccessreviews":
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if bool(ra) == bool(nra):
            raise errors.invalid(rt, "", [("spec.resourceAttributes", "FieldValueInvalid",
                                           "Invalid value: exactly one of nonResourceAttributes "
                                           "or resourceAttributes must be specified")])
        if ra:
            info = rbac.RequestInfo("", ra.get("verb", ""))
            info.is_resource = True
            info.api_group, info.api_version = ra.get("group", ""), ra.get("version", "")
            info.namespace, info.name = ra.get("namespace", ""), ra.get("name", "")
            info.resource, info.subresource = ra.get("resource", ""), ra.get("subresource", "")
        else:
            info = rbac.RequestInfo(nra.get("path", ""), nra.get("verb", ""))
        allowed, reason = rbac.decide(srv.store, srv.cfg.authorization_mode, user, info)
        out["status"] = {"allowed": allowed}
        if reason:
            out["status"]["reason"] = reason
        return h._send(201, out)
    # selfsubjectrulesreviews
    ns = spec.get("namespace", "")
    if srv.cfg.authorization_mode != "RBAC":
        rules = [({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, ""),
                 ({"verbs": ["*"], "nonResourceURLs": ["*"]}, "")]
    else:
        rules = rbac.rules_for(srv.store, user, ns)
    res, nonres = [], []
    for r, _ in rules:
        if r.get("nonResourceURLs"):
            nonres.append({"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]})
        else:
            rr = {"verbs": r["verbs"], "apiGroups": r.get("apiGroups") or [],
                  "resources": r.get("resources") or []}
            if r.get("resourceNames"):
                rr["resourceNames"] = r["resourceNames"]
            res.append(rr)
    out["status"] = {"resourceRules": res, "nonResourceRules": nonres, "incomplete": False}
    return h._send(201, out)
