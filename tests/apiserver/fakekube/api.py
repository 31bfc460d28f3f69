"""Resource endpoints: get/list/watch/create/update/patch/delete(collection) for one ResourceType.
`h` is the request Handler (server.py)."""
import json
import queue
import select
import socket
import ssl
import time

import yaml

from . import errors, rbac, table
from .schema import prune, schema_for
from .selectors import FieldSelector, LabelSelector


def parse_bool(v):
    """apimachinery Convert_Slice_string_To_bool: only "", "0", "false" (any case) are false;
    "f"/"F" are accepted as false too (strconv.ParseBool spelling)."""
    if v is None:
        return False
    return v.strip().lower() not in ("", "0", "false", "f")


_bool = parse_bool


def _dumps(o):
    return json.dumps(o, separators=(",", ":")).encode()


def _wants_table(h):
    acc = h.headers.get("Accept", "")
    first = acc.split(",")[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def _body(h):
    ctype = (h.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
    if ctype == "application/vnd.kubernetes.protobuf":
        from .protobuf import decode
        return decode(h.body or b"")
    if "protobuf" in ctype or "cbor" in ctype:
        raise errors.ApiError(415, "UnsupportedMediaType", 'the body of the request was in an '
                              'unknown format - accepted media types include: '
                              'application/json, application/yaml')
    try:
        if ctype in ("application/yaml", "application/apply-patch+yaml"):
            return yaml.safe_load(h.body or b"")
        return json.loads(h.body or b"null")
    except (ValueError, yaml.YAMLError) as e:
        raise errors.bad_request("error decoding request body: %s" % e)


def _field_validation(h, rt, body):
    """Drop unknown fields of built-in kinds; 400 when fieldValidation=Strict, a Warning
    header per field otherwise (Warn is the default), nothing with Ignore."""
    sch = schema_for(rt)
    if sch is None or not isinstance(body, dict):
        return body
    unknown = prune(body, sch)
    if not unknown:
        return body
    mode = h.q.get("fieldValidation") or "Warn"
    if mode == "Strict":
        raise errors.bad_request('%s in version "%s" cannot be handled as a %s: strict decoding '
                                 'error: %s' % (rt.kind, rt.version, rt.kind, ", ".join(
                                     'unknown field "%s"' % u for u in unknown)))
    if mode != "Ignore":
        h.warnings.extend('unknown field "%s"' % u for u in unknown)
    return body


def _dry(h):
    return h.q.get("dryRun") == "All"


def _manager(h):
    m = h.q.get("fieldManager")
    if m:
        return m
    return (h.headers.get("User-Agent") or "unknown").split("/")[0]


def _item(h, rt, o):
    """A list item: built-in lists carry no per-item kind/apiVersion (custom resources do)."""
    v = h.server.store.to_view(rt, o)
    if not rt.custom:
        v.pop("kind", None)
        v.pop("apiVersion", None)
    return v


def handle(h, method, rt, ns, name, sub, legacy_watch):
    st = h.server.store
    q = h.q
    if method == "GET":
        watch = legacy_watch or _bool(q.get("watch"))
        fsel_text = q.get("fieldSelector", "")
        if name and watch:  # legacy single-object watch
            fsel_text = "metadata.name=%s" % name + ("," + fsel_text if fsel_text else "")
        if not name or watch:
            lsel = LabelSelector(q.get("labelSelector", ""))
            fsel = FieldSelector(fsel_text, rt.fields)
            if watch:
                return _watch(h, rt, ns, lsel, fsel)
            return _list(h, rt, ns, lsel, fsel)
        obj = st.get(rt, ns, name)
        return _send_obj(h, 200, rt, obj, allow_table=True)
    if method == "POST":
        if name:
            raise errors.method_not_allowed(method)
        obj = st.create(rt, ns, _field_validation(h, rt, _body(h)), _manager(h), _dry(h))
        return _send_obj(h, 201, rt, obj)
    if method == "PUT":
        if not name:
            raise errors.method_not_allowed(method)
        if h.fault_conflict:
            raise errors.conflict(rt, name)
        obj = st.update(rt, ns, name, _field_validation(h, rt, _body(h)), _manager(h), sub,
                        _dry(h))
        return _send_obj(h, 200, rt, obj)
    if method == "PATCH":
        if not name:
            raise errors.method_not_allowed(method)
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        existed = True
        if ctype == "application/apply-patch+yaml":
            try:
                st.get(rt, ns, name)
            except errors.ApiError:
                existed = False
                _authorize_create(h, rt, ns, name)
        raw = h.body
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                     "application/apply-patch+yaml") and schema_for(rt) is not None:
            raw = json.dumps(_field_validation(h, rt, _body(h))).encode()
        obj = st.patch(rt, ns, name, ctype, raw, q.get("fieldManager") or
                       (None if ctype == "application/apply-patch+yaml" else _manager(h)),
                       _bool(q.get("force")), sub, _dry(h))
        return _send_obj(h, 200 if existed else 201, rt, obj)
    if method == "DELETE":
        opts = _body(h) if h.body else {}
        if not isinstance(opts, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        if name:
            obj, details = st.delete(rt, ns, name, opts, _dry(h) or opts.get("dryRun") == ["All"])
            if obj is not None:
                return _send_obj(h, 200, rt, obj)
            return h._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                 "status": "Success", "details": details})
        lsel = LabelSelector(q.get("labelSelector", ""))
        fsel = FieldSelector(q.get("fieldSelector", ""), rt.fields)
        items, rv, _, _ = st.list(rt, ns, lsel, fsel)
        gone = []
        for o in items:
            m = o["metadata"]
            try:
                obj, _ = st.delete(rt, m.get("namespace", ""), m["name"], opts, _dry(h))
                gone.append(_item(h, rt, obj or o))
            except errors.ApiError as e:
                if e.code != 404:
                    raise
        return h._send(200, {"kind": rt.kind + "List", "apiVersion": rt.api_version,
                             "metadata": {"resourceVersion": str(st.rv)}, "items": gone})
    raise errors.method_not_allowed(method)


def _authorize_create(h, rt, ns, name):
    """An apply that creates the object needs `create` too (handlers/rest.go withAuthorization)."""
    info = rbac.RequestInfo("", "create")
    info.is_resource, info.api_group, info.resource = True, rt.group, rt.plural
    info.namespace, info.name = ns, name
    if not rbac.authorize(h.server.store, h.server.cfg.authorization_mode, h.user, info):
        raise rbac.forbidden(h.user, info)


def _send_obj(h, code, rt, obj, allow_table=False):
    st = h.server.store
    if allow_table and _wants_table(h):
        t = table.table(rt, [obj], lambda o: st.to_view(rt, o), h.q.get("includeObject",
                                                                          "Metadata"),
                        {"resourceVersion": obj["metadata"].get("resourceVersion", "")})
        return h._send(code, t)
    return h._send(code, st.to_view(rt, obj))


def _list(h, rt, ns, lsel, fsel):
    st = h.server.store
    q = h.q
    try:
        limit = int(q.get("limit") or 0)
    except ValueError:
        raise errors.bad_request("invalid limit")
    items, rv, cont, remaining = st.list(rt, ns, lsel, fsel, limit, q.get("continue", ""),
                                         q.get("resourceVersion"), q.get("resourceVersionMatch"))
    lm = {"resourceVersion": str(rv)}
    if cont:
        lm["continue"] = cont
        lm["remainingItemCount"] = remaining
    if _wants_table(h):
        return h._send(200, table.table(rt, items, lambda o: st.to_view(rt, o),
                                        q.get("includeObject", "Metadata"), lm))
    parts = [_dumps(_item(h, rt, o)) for o in items]
    head = _dumps({"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": lm})
    body = head[:-1] + b',"items":[' + b",".join(parts) + b"]}"
    h._send(200, body)


def _status_event(e):
    return _dumps({"type": "ERROR", "object": e.status()}) + b"\n"


def _watch(h, rt, ns, lsel, fsel):
    srv = h.server
    st = srv.store
    q = h.q
    try:
        timeout = float(q.get("timeoutSeconds") or 0) or srv.cfg.watch_timeout  # 0: default
    except ValueError:
        raise errors.bad_request("invalid timeoutSeconds")
    bookmarks = _bool(q.get("allowWatchBookmarks"))
    send_initial = _bool(q.get("sendInitialEvents"))
    if send_initial and (q.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
        raise errors.invalid(rt, "", [("sendInitialEvents", "FieldValueForbidden",
                                       "Forbidden: sendInitialEvents requires "
                                       "resourceVersionMatch=NotOlderThan and "
                                       "allowWatchBookmarks=true")])
    gone = h.fault_gone
    if gone is not None:
        e = errors.expired("too old resource version: %s (%d)"
                           % (q.get("resourceVersion", "0"), st.rv))
        if gone.get("mode") == "http":
            raise e
        return _start_stream(h, [_status_event(e)], None, 0, False)
    try:
        w = st.watch(rt, ns, lsel, fsel, q.get("resourceVersion", ""), send_initial)
    except errors.ApiError as e:
        if e.code != 410:
            raise
        return _start_stream(h, [_status_event(e)], None, 0, False)
    try:
        _start_stream(h, [], w, timeout, bookmarks, rt)
    finally:
        st.unwatch(w)


def _encode(h, rt, typ, obj, entry, as_table):
    st = h.server.store
    if as_table:
        t = table.table(rt, [obj], lambda o: st.to_view(rt, o), h.q.get("includeObject",
                                                                          "Metadata"),
                        {"resourceVersion": obj["metadata"].get("resourceVersion", "")})
        return _dumps({"type": typ, "object": t}) + b"\n"
    key = (typ, rt.api_version)
    if entry is not None and entry.obj is obj:
        cached = entry.cache.get(key)
        if cached is not None:
            return cached
    data = b'{"type":"' + typ.encode() + b'","object":' + _dumps(st.to_view(rt, obj)) + b"}\n"
    if entry is not None and entry.obj is obj:
        entry.cache[key] = data
    return data


def _peer_gone(conn):
    """A watching client sends nothing after its request: readable means EOF (or a client we
    cannot serve any more), so the stream ends and the watcher is unregistered."""
    try:
        r, _, _ = select.select([conn], [], [], 0)
        if not r:
            return False
        if isinstance(conn, ssl.SSLSocket):
            return True
        return conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _start_stream(h, first, w, timeout, bookmarks, rt=None):
    h.status = 200
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Transfer-Encoding", "chunked")
    h.send_header("Cache-Control", "no-cache, private")
    h.end_headers()
    h.close_connection = True
    for data in first:
        h._chunk(data)
    if w is None:
        h.wfile.write(b"0\r\n\r\n")
        return
    srv = h.server
    as_table = _wants_table(h)
    deadline = time.monotonic() + timeout
    interval = srv.cfg.bookmark_interval
    next_bm = time.monotonic() + interval
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        wait = deadline - now
        if bookmarks:
            if now >= next_bm:
                srv.store.bookmark(w)
                next_bm = now + interval
            wait = min(wait, max(0.01, next_bm - now))
        try:
            item = w.q.get(timeout=min(wait, 1.0))
        except queue.Empty:
            if _peer_gone(h.connection):
                return
            continue
        batch = [item]
        while len(batch) < 256:
            try:
                batch.append(w.q.get_nowait())
            except queue.Empty:
                break
        out = []
        for typ, obj, entry in batch:
            if typ == "END":
                if out:
                    h._chunk(b"".join(out))
                h.wfile.write(b"0\r\n\r\n")
                return
            if typ == "DROP":
                if out:
                    h._chunk(b"".join(out))
                try:  # an abrupt drop, as when a connection or an apiserver dies
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if typ in ("BOOKMARK", "INITIAL_END"):
                if typ == "BOOKMARK" and not bookmarks:
                    continue
                md = {"resourceVersion": str(obj)}
                if typ == "INITIAL_END":
                    md["annotations"] = {"k8s.io/initial-events-end": "true"}
                out.append(_dumps({"type": "BOOKMARK", "object": {
                    "kind": rt.kind, "apiVersion": rt.api_version, "metadata": md}}) + b"\n")
                continue
            out.append(_encode(h, rt, typ, obj, entry, as_table))
        if out:
            h._chunk(b"".join(out))
    h.wfile.write(b"0\r\n\r\n")
