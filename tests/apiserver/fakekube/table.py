"""meta.k8s.io/v1 Table rendering (what kubectl asks for with `Accept: ...;as=Table`).

Built-in kinds get a subset of the real server's columns; custom resources use the CRD's
additionalPrinterColumns (NAME first; AGE alone when the CRD defines none), with the
simple JSONPath forms CRDs use: .a.b, .a[0], .a[*].b and .a[?(@.k=="v")].b.
"""
import calendar
import re
import time

NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace."}
AGE = {"name": "Age", "type": "string", "format": "", "priority": 0,
       "description": "CreationTimestamp is a timestamp representing the server time when this "
                      "object was created."}


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd%dh" % (h // 24, h % 24) if h % 24 else "%dd" % (h // 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    y, d = h // (24 * 365), (h // 24) % 365
    if h < 24 * 365 * 8:
        return "%dy%dd" % (y, d) if d else "%dy" % y
    return "%dy" % y


def age(ts):
    if not ts:
        return "<unknown>"
    try:
        t = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "<unknown>"
    return human_duration(time.time() - t)


def _col(name, typ="string", desc="", priority=0, fmt=""):
    return {"name": name, "type": typ, "format": fmt, "description": desc or name,
            "priority": priority}


def _g(o, *path, default=""):
    for k in path:
        if not isinstance(o, dict):
            return default
        o = o.get(k)
    return default if o is None else o


def _ingress_hosts(o):
    hosts = [r.get("host") for r in _g(o, "spec", "rules", default=[]) if r.get("host")]
    return ",".join(hosts) if hosts else "*"


def _lb(o):
    return ",".join(i.get("ip") or i.get("hostname", "")
                    for i in _g(o, "status", "loadBalancer", "ingress", default=[]))


def _svc_ports(o):
    ps = _g(o, "spec", "ports", default=[])
    return ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP")) for p in ps) or "<none>"


def _event_object(o):
    io = o.get("involvedObject") or o.get("regarding") or {}
    return "%s/%s" % (str(io.get("kind", "")).lower(), io.get("name", ""))


BUILTIN = {
    "Secret": ([_col("Type"), _col("Data", "integer")],
               lambda o: [o.get("type", ""), len(o.get("data") or {})]),
    "ConfigMap": ([_col("Data", "integer")],
                  lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {})]),
    "Namespace": ([_col("Status")], lambda o: [_g(o, "status", "phase")]),
    "Service": ([_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)")],
                lambda o: [_g(o, "spec", "type"), _g(o, "spec", "clusterIP") or "<none>",
                           _lb(o) or "<none>", _svc_ports(o)]),
    "Lease": ([_col("Holder")], lambda o: [_g(o, "spec", "holderIdentity")]),
    "Ingress": ([_col("Class"), _col("Hosts"), _col("Address"), _col("Ports")],
                lambda o: [_g(o, "spec", "ingressClassName") or "<none>", _ingress_hosts(o),
                           _lb(o), "80, 443" if _g(o, "spec", "tls") else "80"]),
    "ServiceAccount": ([_col("Secrets", "integer")], lambda o: [len(o.get("secrets") or [])]),
    "RoleBinding": ([_col("Role")], lambda o: ["%s/%s" % (_g(o, "roleRef", "kind"),
                                                          _g(o, "roleRef", "name"))]),
    "ClusterRoleBinding": ([_col("Role")], lambda o: ["%s/%s" % (_g(o, "roleRef", "kind"),
                                                                 _g(o, "roleRef", "name"))]),
    "IngressClass": ([_col("Controller"), _col("Parameters")],
                     lambda o: [_g(o, "spec", "controller"), "<none>"]),
}


def _jsonpath(obj, path):
    """Evaluate the JSONPath subset used by printer columns; returns a list of values."""
    cur = [obj]
    for tok in re.findall(r"\.([^.\[]+)|\[([^\]]*)\]", path):
        name, idx = tok
        nxt = []
        for c in cur:
            if name:
                if isinstance(c, dict) and name in c:
                    nxt.append(c[name])
            elif idx == "*":
                if isinstance(c, list):
                    nxt.extend(c)
                elif isinstance(c, dict):
                    nxt.extend(c.values())
            elif idx.startswith("?("):
                m = re.match(r"\?\(@\.([\w.]+)\s*==\s*['\"]?([^'\"]*)['\"]?\)", idx)
                if m and isinstance(c, list):
                    for el in c:
                        if str(_jsonpath(el, "." + m.group(1))[:1] and
                               _jsonpath(el, "." + m.group(1))[0]) == m.group(2):
                            nxt.append(el)
            elif re.match(r"^-?\d+$", idx) and isinstance(c, list):
                i = int(idx)
                if -len(c) <= i < len(c):
                    nxt.append(c[i])
        cur = nxt
    return cur


def _crd_cell(obj, col):
    vals = _jsonpath(obj, col.get("jsonPath", ""))
    if not vals:
        return None
    typ = col.get("type", "string")
    if typ == "date":
        return age(vals[0]) if isinstance(vals[0], str) else "<unknown>"
    if len(vals) > 1:
        return ",".join(str(v) for v in vals)
    v = vals[0]
    if typ == "boolean" and isinstance(v, bool):
        return v
    if typ in ("integer", "number") and isinstance(v, (int, float)):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, (int, float, str)) else str(v)


def columns(rt):
    if rt.custom:
        cols = rt.columns or []
        if not cols:
            return [NAME, AGE], None
        defs = [NAME] + [_col(c["name"], c.get("type", "string"), c.get("description", ""),
                              c.get("priority", 0), c.get("format", "")) for c in cols]
        return defs, cols
    if rt.kind == "Event":
        return [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"),
                _col("Message")], None
    if rt.kind in ("CustomResourceDefinition", "Role", "ClusterRole"):
        return [NAME, _col("Created At", "date")], None
    extra = BUILTIN.get(rt.kind, ([], None))[0]
    return [NAME] + extra + [AGE], None


def row_cells(rt, obj, crd_cols):
    m = obj.get("metadata") or {}
    if rt.custom:
        if crd_cols is None:
            return [m.get("name", ""), age(m.get("creationTimestamp"))]
        return [m.get("name", "")] + [_crd_cell(obj, c) for c in crd_cols]
    if rt.kind == "Event":  # core/v1 or events.k8s.io/v1 field names
        last = (obj.get("lastTimestamp") or obj.get("deprecatedLastTimestamp")
                or (obj.get("series") or {}).get("lastObservedTime") or obj.get("eventTime")
                or m.get("creationTimestamp"))
        return [age(last), obj.get("type", ""), obj.get("reason", ""), _event_object(obj),
                obj.get("message", obj.get("note", ""))]
    if rt.kind in ("CustomResourceDefinition", "Role", "ClusterRole"):
        return [m.get("name", ""), m.get("creationTimestamp", "")]
    fn = BUILTIN.get(rt.kind, (None, None))[1]
    return [m.get("name", "")] + (fn(obj) if fn else []) + [age(m.get("creationTimestamp"))]


def table(rt, objs, view, include="Metadata", list_meta=None):
    """view(obj) gives the wire form of a stored object."""
    defs, crd_cols = columns(rt)
    rows = []
    for o in objs:
        w = view(o)
        row = {"cells": row_cells(rt, w, crd_cols)}
        if include == "Object":
            row["object"] = w
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": w.get("metadata", {})}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
            "columnDefinitions": defs, "rows": rows}
