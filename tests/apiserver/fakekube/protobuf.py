"""Decode the Kubernetes protobuf request bodies that kubectl's typed clients send.

`kubectl create secret|configmap|namespace|serviceaccount|role|rolebinding|clusterrole|
clusterrolebinding` and `kubectl auth can-i|whoami` POST `application/vnd.kubernetes.protobuf`
(and do not fall back to JSON on 415), so the fake decodes those kinds. Envelope (k8s.io/apimachinery
runtime/serializer/protobuf): the 4 bytes "k8s\\x00", then runtime.Unknown{typeMeta=1
{apiVersion=1, kind=2}, raw=2, contentEncoding=3, contentType=4}; `raw` is the object in the
field numbering of k8s.io/api/core/v1/generated.proto. Fields not listed below are dropped.
Responses are always JSON (clients send `Accept: ...protobuf,application/json`).
"""
import base64
import datetime

from .errors import ApiError

MAGIC = b"k8s\x00"

OWNER_REF = {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"),
             5: ("apiVersion", "string"), 6: ("controller", "bool"),
             7: ("blockOwnerDeletion", "bool")}
OBJECT_META = {1: ("name", "string"), 2: ("generateName", "string"),
               3: ("namespace", "string"), 5: ("uid", "string"),
               6: ("resourceVersion", "string"), 7: ("generation", "int"),
               8: ("creationTimestamp", "time"), 11: ("labels", ("map", "string", "string")),
               12: ("annotations", ("map", "string", "string")),
               13: ("ownerReferences", ("repeated", ("msg", OWNER_REF))),
               14: ("finalizers", ("repeated", "string"))}
META = (1, ("metadata", ("msg", OBJECT_META)))
KINDS = {
    "Secret": {1: META[1], 2: ("data", ("map", "string", "bytes")), 3: ("type", "string"),
               4: ("stringData", ("map", "string", "string")), 5: ("immutable", "bool")},
    "ConfigMap": {1: META[1], 2: ("data", ("map", "string", "string")),
                  3: ("binaryData", ("map", "string", "bytes")), 4: ("immutable", "bool")},
    "Namespace": {1: META[1],
                  2: ("spec", ("msg", {1: ("finalizers", ("repeated", "string"))}))},
}
# k8s.io/api/rbac/v1, authorization/v1, authentication/v1 generated.proto
RULE = {1: ("verbs", ("repeated", "string")), 2: ("apiGroups", ("repeated", "string")),
        3: ("resources", ("repeated", "string")), 4: ("resourceNames", ("repeated", "string")),
        5: ("nonResourceURLs", ("repeated", "string"))}
SUBJECT = {1: ("kind", "string"), 2: ("apiGroup", "string"), 3: ("name", "string"),
           4: ("namespace", "string")}
ROLE_REF = {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")}
BINDING = {1: META[1], 2: ("subjects", ("repeated", ("msg", SUBJECT))),
           3: ("roleRef", ("msg", ROLE_REF))}
RESOURCE_ATTRS = {1: ("namespace", "string"), 2: ("verb", "string"), 3: ("group", "string"),
                  4: ("version", "string"), 5: ("resource", "string"),
                  6: ("subresource", "string"), 7: ("name", "string")}
KINDS.update({
    "Role": {1: META[1], 2: ("rules", ("repeated", ("msg", RULE)))},
    "ClusterRole": {1: META[1], 2: ("rules", ("repeated", ("msg", RULE)))},
    "RoleBinding": BINDING,
    "ClusterRoleBinding": BINDING,
    "ServiceAccount": {1: META[1], 4: ("automountServiceAccountToken", "bool")},
    "SelfSubjectAccessReview": {1: META[1], 2: ("spec", ("msg", {
        1: ("resourceAttributes", ("msg", RESOURCE_ATTRS)),
        2: ("nonResourceAttributes", ("msg", {1: ("path", "string"), 2: ("verb", "string")}))}))},
    "SelfSubjectRulesReview": {1: META[1], 2: ("spec", ("msg", {1: ("namespace", "string")}))},
    "SelfSubjectReview": {1: META[1]},
})
TIME = {1: ("seconds", "int"), 2: ("nanos", "int")}
UNKNOWN = {1: ("typeMeta", ("msg", {1: ("apiVersion", "string"), 2: ("kind", "string")})),
           2: ("raw", "raw"), 3: ("contentEncoding", "string"), 4: ("contentType", "string")}


def _varint(b, i):
    shift = out = 0
    while True:
        c = b[i]
        i += 1
        out |= (c & 0x7F) << shift
        if not c & 0x80:
            return out, i
        shift += 7


def _fields(b):
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield num, v


def _scalar(typ, v):
    if typ == "string":
        return v.decode()
    if typ == "bytes":
        return base64.b64encode(v).decode()
    if typ == "raw":
        return v
    if typ == "bool":
        return bool(v)
    if typ == "int":
        return v if v < (1 << 63) else v - (1 << 64)
    if typ == "time":
        t = _decode(v, TIME)
        return datetime.datetime.fromtimestamp(t.get("seconds", 0), datetime.timezone.utc) \
            .strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(typ, tuple) and typ[0] == "msg":
        return _decode(v, typ[1])
    raise ValueError("unsupported type %r" % (typ,))


def _decode(b, schema):
    out = {}
    for num, v in _fields(b):
        if num not in schema:
            continue
        name, typ = schema[num]
        if isinstance(typ, tuple) and typ[0] == "map":
            entry = dict(_fields(v))
            out.setdefault(name, {})[_scalar(typ[1], entry.get(1, b""))] = \
                _scalar(typ[2], entry.get(2, b""))
        elif isinstance(typ, tuple) and typ[0] == "repeated":
            out.setdefault(name, []).append(_scalar(typ[1], v))
        else:
            out[name] = _scalar(typ, v)
    return out


def decode(body):
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "protobuf body without the k8s envelope")
    try:
        unk = _decode(body[4:], UNKNOWN)
        tm = unk.get("typeMeta", {})
        kind = tm.get("kind", "")
        if kind not in KINDS:
            raise ApiError(415, "UnsupportedMediaType",
                           "the fake API server decodes protobuf only for %s; send JSON"
                           % ", ".join(sorted(KINDS)))
        obj = _decode(unk.get("raw", b""), KINDS[kind])
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise ApiError(400, "BadRequest", "error decoding protobuf body: %s" % e)
    obj["apiVersion"] = tm.get("apiVersion", "v1")
    obj["kind"] = kind
    return obj
