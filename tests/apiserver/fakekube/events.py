"""core/v1 Event <-> events.k8s.io/v1 Event. Both are views of one store (like the real server,
which converts between them); the store keeps the core/v1 form.

Field mapping (k8s.io/kubernetes/pkg/apis/events/v1/conversion.go):
  involvedObject <-> regarding, message <-> note, source <-> deprecatedSource,
  firstTimestamp/lastTimestamp/count <-> deprecatedFirstTimestamp/deprecatedLastTimestamp/
  deprecatedCount, reportingComponent <-> reportingController; reason, type, action, related,
  series, eventTime and reportingInstance keep their names.
"""
from .errors import invalid

_MAP = [("involvedObject", "regarding"), ("message", "note"), ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"), ("count", "deprecatedCount"),
        ("reportingComponent", "reportingController")]


def to_core(ev):
    out = dict(ev)
    for core, new in _MAP:
        out.pop(new, None)
        if new in ev:
            out[core] = ev[new]
    out["apiVersion"] = "v1"
    return out


def from_core(ev):
    out = dict(ev)
    for core, new in _MAP:
        out.pop(core, None)
        if core in ev:
            out[new] = ev[core]
    out["apiVersion"] = "events.k8s.io/v1"
    return out


def validate_new(rt, ev):
    """Create-time validation of an events.k8s.io/v1 Event (pkg/apis/core/validation/events.go)."""
    name = ev.get("metadata", {}).get("name", "")
    causes = []
    if not ev.get("eventTime"):
        causes.append(("eventTime", "FieldValueRequired", "Required value"))
    if ev.get("type") not in ("Normal", "Warning"):
        causes.append(("type", "FieldValueNotSupported",
                       'Unsupported value: "%s": supported values: "Normal", "Warning"'
                       % ev.get("type", "")))
    for f in ("reportingController", "reportingInstance", "action", "reason"):
        if not ev.get(f):
            causes.append((f, "FieldValueRequired", "Required value"))
    for f in ("deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedSource"):
        if ev.get(f):
            causes.append((f, "FieldValueInvalid", "Invalid value: needs to be unset"))
    if ev.get("deprecatedCount"):
        causes.append(("deprecatedCount", "FieldValueInvalid", "Invalid value: needs to be unset"))
    series = ev.get("series")
    if series is not None:
        if (series.get("count") or 0) < 2:
            causes.append(("series.count", "FieldValueInvalid",
                           "Invalid value: should be at least 2"))
        if not series.get("lastObservedTime"):
            causes.append(("series.lastObservedTime", "FieldValueRequired", "Required value"))
    if causes:
        raise invalid(rt, name, causes)


def fields(ev):
    """fieldSelector values of a stored (core form) Event."""
    io = ev.get("involvedObject") or {}
    out = {}
    for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        out["involvedObject." + k] = str(io.get(k, "") or "")
        out["regarding." + k] = out["involvedObject." + k]
    out["reason"] = ev.get("reason", "") or ""
    out["type"] = ev.get("type", "") or ""
    out["reportingComponent"] = ev.get("reportingComponent", "") or ""
    out["reportingController"] = out["reportingComponent"]
    out["source"] = (ev.get("source") or {}).get("component", "") or ""
    out["deprecatedSource"] = out["source"]
    return out
