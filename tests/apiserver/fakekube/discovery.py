"""Discovery documents and the minimal OpenAPI v3 kubectl needs.

kubectl (1.27+) validates with --validate=strict by default: it fetches /openapi/v3, then the
document of the object's group/version, and only checks that the PATCH operation of the GVK
lists a `fieldValidation` query parameter (cli-runtime query_param_verifier_v3.go); it then sends
fieldValidation=Strict and leaves validation to the server. Aggregated discovery (apidiscovery v2)
is not served: kubectl falls back to per-group discovery when /api and /apis answer plain JSON.
"""
import hashlib
import json


def version_doc(minor):
    return {"major": "1", "minor": str(minor), "gitVersion": "v1.%s.4" % minor,
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
            "platform": "linux/amd64"}


def api_versions(server_address):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group(name, versions):
    vs = [{"groupVersion": "%s/%s" % (name, v), "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(reg):
    groups = [_group(g, vs) for g, vs in sorted(reg.group_versions().items()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(reg, group):
    vs = reg.group_versions().get(group)
    if not vs:
        return None
    return dict(_group(group, vs), kind="APIGroup", apiVersion="v1")


def resource_list(reg, group, version):
    rts = reg.resources(group, version)
    if not rts:
        return None
    res = []
    for rt in rts:
        res.extend(rt.discovery())
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "%s/%s" % (group, version) if group else version, "resources": res}


def _gv_key(group, version):
    return "apis/%s/%s" % (group, version) if group else "api/%s" % version


def _op(rt, action):
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation")]
    if action == "patch":
        params.append({"name": "force", "in": "query", "schema": {"type": "boolean"}})
    return {"operationId": "%s%s" % (action, rt.kind), "tags": [rt.group or "core"],
            "x-kubernetes-action": action, "parameters": params,
            "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version,
                                                "kind": rt.kind},
            "responses": {"200": {"description": "OK"}}}


def openapi_gv_doc(reg, group, version):
    rts = reg.resources(group, version)
    if not rts:
        return None
    paths, schemas = {}, {}
    for rt in rts:
        base = "/" + _gv_key(group, version)
        coll = base + ("/namespaces/{namespace}/" if rt.namespaced else "/") + rt.plural
        paths[coll] = {"post": _op(rt, "post"), "parameters": []}
        paths[coll + "/{name}"] = {"put": _op(rt, "put"), "patch": _op(rt, "patch"),
                                   "parameters": []}
        schema_name = "%s.%s.%s" % (".".join(reversed((rt.group or "core").split("."))),
                                    rt.version, rt.kind)
        schemas[schema_name] = {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [{"group": rt.group, "version": rt.version,
                                                 "kind": rt.kind}]}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (fakekube)", "version": "v1"},
            "paths": paths, "components": {"schemas": schemas}}


def openapi_index(reg):
    paths = {}
    for g, vs in reg.group_versions().items():
        for v in vs:
            doc = openapi_gv_doc(reg, g, v)
            h = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            paths[_gv_key(g, v)] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s"
                                    % (_gv_key(g, v), h)}
    return {"paths": paths}
