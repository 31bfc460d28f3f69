"""The object store: one global integer resourceVersion, a bounded event history (older
resourceVersions are "compacted" -> 410 Expired), per-watcher queues, and the write semantics of
the generic registry (uid, generateName, generation, finalizers/deletionTimestamp, status
subresource, optimistic concurrency, managedFields).

Objects are immutable once stored (every write stores a fresh dict), so readers may serialize
them outside the lock.
"""
import base64
import binascii
import json
import queue
import re
import threading
import time
from collections import deque

from . import errors, events, patch as P

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def meta(o):
    return o.get("metadata") or {}


def key_of(o):
    m = meta(o)
    return (m.get("namespace", ""), m.get("name", ""))


def _with_rv(obj, rv):
    o = dict(obj)
    o["metadata"] = dict(obj["metadata"], resourceVersion=str(rv))
    return o


class Entry:
    __slots__ = ("rv", "storage", "type", "obj", "old", "cache")

    def __init__(self, rv, storage, etype, obj, old):
        self.rv, self.storage, self.type, self.obj, self.old = rv, storage, etype, obj, old
        self.cache = {}


class Watcher:
    """One watch stream. Items are (type, object-in-storage-form, entry or None)."""

    def __init__(self, store, rt, ns, lsel, fsel):
        self.store, self.rt, self.ns, self.lsel, self.fsel = store, rt, ns, lsel, fsel
        self.q = queue.SimpleQueue()
        self.storage = rt.storage

    def match(self, obj):
        if obj is None:
            return False
        m = meta(obj)
        if self.ns and m.get("namespace") != self.ns:
            return False
        if not self.lsel.empty() and not self.lsel.matches(m.get("labels")):
            return False
        if not self.fsel.empty() and not self.fsel.matches(self.store.fields(self.rt, obj)):
            return False
        return True

    def offer(self, e):
        new_m = self.match(e.obj)
        if e.type == "MODIFIED":
            old_m = self.match(e.old)
            if new_m:
                self.q.put(("MODIFIED" if old_m else "ADDED", e.obj, e))
            elif old_m:  # stopped matching the selector: the cacher reports DELETED
                self.q.put(("DELETED", _with_rv(e.old, e.rv), None))
        elif new_m:
            self.q.put((e.type, e.obj, e))

    def close(self, reason="DROP"):
        self.q.put((reason, None, None))


class StoreBase:
    def __init__(self, registry, history=1000):
        self.reg = registry
        self.lock = threading.RLock()
        self.rv = 0
        self.data = {}
        self.history = deque()
        self.history_max = history
        self.compacted = 0
        self.watchers = {}
        self._ip = 10

    # ---- views ---------------------------------------------------------------------------

    def to_view(self, rt, obj):
        o = events.from_core(obj) if rt.group == "events.k8s.io" else obj
        out = {"apiVersion": rt.api_version, "kind": rt.kind}
        for k, v in o.items():
            if k not in out:
                out[k] = v
        return out

    def from_view(self, rt, obj):
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        if obj.get("kind") and obj["kind"] != rt.kind:
            raise errors.bad_request("the kind of the object (%s) does not match the resource "
                                     "(%s)" % (obj["kind"], rt.kind))
        if rt.group == "events.k8s.io":
            o = events.to_core(obj)
        else:
            o = dict(obj)
            sv = rt.storage_version
            o["apiVersion"] = "%s/%s" % (rt.group, sv) if rt.group else sv
        o["kind"] = rt.kind
        o["metadata"] = dict(o.get("metadata") or {})
        return o

    def fields(self, rt, obj):
        m = meta(obj)
        f = {"metadata.name": m.get("name", ""), "metadata.namespace": m.get("namespace", "")}
        if rt.storage == "/events":
            f.update(events.fields(obj))
        elif rt.storage == "/secrets":
            f["type"] = obj.get("type", "")
        elif rt.storage == "/namespaces":
            f["status.phase"] = (obj.get("status") or {}).get("phase", "")
        elif rt.storage == "/services":
            f["spec.clusterIP"] = (obj.get("spec") or {}).get("clusterIP", "")
            f["spec.type"] = (obj.get("spec") or {}).get("type", "")
        else:
            for fl in rt.fields - set(f):
                v = P.get_path(obj, tuple(fl.split(".")))
                f[fl] = "" if v is P._MISSING else str(v).lower() if isinstance(v, bool) else str(v)
        return f

    # ---- core plumbing -------------------------------------------------------------------

    def _commit(self, rt, etype, new, old):
        self.rv += 1
        obj = _with_rv(new if etype != "DELETED" else (new or old), self.rv)
        bucket = self.data.setdefault(rt.storage, {})
        k = key_of(obj)
        if etype == "DELETED":
            bucket.pop(k, None)
        else:
            bucket[k] = obj
        e = Entry(self.rv, rt.storage, etype, obj, old)
        self.history.append(e)
        while len(self.history) > self.history_max:
            self.compacted = self.history.popleft().rv
        for w in list(self.watchers.get(rt.storage, ())):
            w.offer(e)
        self._after_commit(rt, etype, obj)
        return obj

    def _after_commit(self, rt, etype, obj):
        if rt.storage == "apiextensions.k8s.io/customresourcedefinitions":
            if etype == "DELETED":
                storage = "%s/%s" % (obj["spec"]["group"], obj["spec"]["names"]["plural"])
                crts = [t for t in self.reg.by_storage(storage)
                        if t.crd_name == obj["metadata"]["name"]]
                for o in list(self.data.get(storage, {}).values()):
                    if crts:
                        self._commit(crts[0], "DELETED", None, o)
                self.reg.remove_crd(obj["metadata"]["name"])
                for w in list(self.watchers.get(storage, ())):
                    w.close("END")  # the kind is gone: its watches end (cleanly)
            else:
                self.reg.set_crd(obj)
        elif etype == "DELETED" and rt.namespaced:
            self._maybe_finish_namespace(meta(obj).get("namespace"))

    def compact(self):
        """Forget all history: any watch/list from an older resourceVersion gets 410."""
        with self.lock:
            self.history.clear()
            self.compacted = self.rv

    def watcher_count(self):
        with self.lock:
            return sum(len(s) for s in self.watchers.values())

    def drop_watches(self, prefix_storage=None):
        with self.lock:
            for storage, ws in self.watchers.items():
                if prefix_storage is None or storage == prefix_storage:
                    for w in ws:
                        w.close("DROP")

    def _get(self, rt, ns, name):
        o = self.data.get(rt.storage, {}).get((ns if rt.namespaced else "", name))
        if o is None:
            raise errors.not_found(rt, name)
        return o

    def get(self, rt, ns, name):
        with self.lock:
            return self._get(rt, ns, name)

    # ---- list ----------------------------------------------------------------------------

    def _snapshot(self, storage, rv):
        objs = dict(self.data.get(storage, {}))
        if rv >= self.rv:
            return objs
        for e in reversed(self.history):
            if e.rv <= rv:
                break
            if e.storage != storage:
                continue
            k = key_of(e.obj)
            if e.type == "ADDED":
                objs.pop(k, None)
            else:
                objs[k] = e.old
        return objs

    def list(self, rt, ns, lsel, fsel, limit=0, cont="", rv="", rv_match=""):
        with self.lock:
            start = None
            if cont:
                if rv not in ("", None):
                    raise errors.bad_request("specifying resource version is not allowed when "
                                             "using continue")
                try:
                    tok = json.loads(base64.b64decode(cont + "=" * (-len(cont) % 4)))
                    snap, start = int(tok["rv"]), tuple(tok["start"])
                except (ValueError, KeyError, TypeError, binascii.Error):
                    raise errors.bad_request("continue key is not valid")
                if snap < self.compacted:
                    raise errors.expired(
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter, "
                        "or use the continue token in this response to retrieve the remainder "
                        "of the results. Continuing with the provided token results in an "
                        "inconsistent list - objects that were created, modified, or deleted "
                        "between the time the first chunk was returned and now may show up in "
                        "the list.")
            elif rv in ("", "0", None):
                snap = self.rv
            else:
                n = self._parse_rv(rv)
                if n > self.rv:
                    raise errors.timeout_too_large_rv()
                exact = rv_match == "Exact" or (limit and rv_match != "NotOlderThan")
                if exact and n < self.compacted:
                    raise errors.expired("too old resource version: %d (%d)"
                                         % (n, self.compacted))
                snap = n if exact else self.rv
            objs = self._snapshot(rt.storage, snap)
        keys = sorted(k for k in objs if not ns or k[0] == ns)
        if start is not None:
            keys = [k for k in keys if k > start]
        items, last, remaining = [], None, 0
        for k in keys:
            o = objs[k]
            if not lsel.empty() and not lsel.matches(meta(o).get("labels")):
                continue
            if not fsel.empty() and not fsel.matches(self.fields(rt, o)):
                continue
            if limit and len(items) >= limit:
                remaining += 1
                continue
            items.append(o)
            last = k
        cont_out = ""
        if remaining:
            cont_out = base64.b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": snap,
                                                    "start": list(last)}).encode()).decode()
        return items, snap, cont_out, remaining

    def _parse_rv(self, rv):
        try:
            n = int(rv)
            if n < 0:
                raise ValueError
            return n
        except ValueError:
            raise errors.ApiError(400, "BadRequest", 'invalid resource version "%s"' % rv)

    # ---- watch ---------------------------------------------------------------------------

    def watch(self, rt, ns, lsel, fsel, rv="", send_initial=False):
        with self.lock:
            w = Watcher(self, rt, ns, lsel, fsel)
            if rv not in ("", "0", None) and not send_initial:
                n = self._parse_rv(rv)
                if n < self.compacted:
                    raise errors.expired("too old resource version: %d (%d)" % (n, self.compacted))
                for e in self.history:
                    if e.rv > n and e.storage == rt.storage:
                        w.offer(e)
            else:
                objs = sorted(self.data.get(rt.storage, {}).values(),
                              key=lambda o: int(meta(o)["resourceVersion"]))
                for o in objs:
                    if w.match(o):
                        w.q.put(("ADDED", o, None))
                if send_initial:
                    w.q.put(("INITIAL_END", self.rv, None))
            self.watchers.setdefault(rt.storage, set()).add(w)
            return w

    def unwatch(self, w):
        with self.lock:
            self.watchers.get(w.storage, set()).discard(w)

    def bookmark(self, w):
        """Queue a BOOKMARK behind every event already queued (so its RV is safe to resume from)."""
        with self.lock:
            w.q.put(("BOOKMARK", self.rv, None))
