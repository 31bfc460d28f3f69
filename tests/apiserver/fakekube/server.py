"""HTTP layer: routing, auth, fault injection, request log, list/watch encoding."""
import json
import socket
import ssl
import threading
import time
import traceback
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import discovery, errors, rbac, reviews
from .api import handle, parse_bool
from .bootstrap import bootstrap
from .types import Registry
from .writes import Store

FAULT_KINDS = {"conflict_next_put", "gone_next_watch", "throttle", "error_500", "drop_watches",
               "drop_next", "delay", "compact"}


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, f):
        with self.lock:
            self.items.append(f)

    def clear(self):
        with self.lock:
            self.items = []

    def list(self):
        with self.lock:
            return [dict(f) for f in self.items]

    def take(self, method, path, is_watch):
        """Consume and return the faults that apply to this request (delay first)."""
        out = []
        with self.lock:
            for f in self.items:
                if not path.startswith(f.get("path_prefix", "")):
                    continue
                if f.get("method") and f["method"].upper() != method:
                    continue
                k = f["kind"]
                if k == "conflict_next_put" and method != "PUT":
                    continue
                if k == "gone_next_watch" and not is_watch:
                    continue
                if out and k != "delay" and any(x["kind"] != "delay" for x in out):
                    continue
                out.append(dict(f))
                if f.get("count", 1) > 0:
                    f["count"] = f.get("count", 1) - 1
            self.items = [f for f in self.items if f.get("count", 1) != 0]
        return out


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, cfg):
        super().__init__(addr, Handler)
        self.cfg = cfg
        self.registry = Registry()
        self.store = Store(self.registry, history=cfg.history)
        bootstrap(self.store)
        self.faults = Faults()
        self.requests = deque(maxlen=cfg.request_log)
        self.req_lock = threading.Lock()
        if cfg.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
            ctx.set_alpn_protocols(["http/1.1"])
            if cfg.client_ca:  # x509 client auth: optional, verified against --client-ca
                ctx.verify_mode = ssl.CERT_OPTIONAL
                ctx.load_verify_locations(cfg.client_ca)
            self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)

    def tokens(self):
        """{token: User} accepted now, from --token-file (re-read on each request so tests can
        rotate it); None without the flag."""
        if not self.cfg.token_file:
            return None
        try:
            with open(self.cfg.token_file) as f:
                return rbac.parse_token_file(f.read())
        except OSError:
            return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakekube"
    sys_version = ""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ---- plumbing ------------------------------------------------------------------------

    def _send(self, code, body, ctype="application/json", headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        self.status = code
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        for w in self.warnings:
            self.send_header("Warning", '299 - "%s"' % w.replace('"', '\\"'))
        # one write for head and body: split writes + Nagle + delayed ACK cost 40 ms a request
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(data)
        self.flush_headers()

    def _send_error(self, e):
        self._send(e.code, e.status(), headers=e.headers)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _authenticate(self):
        """The User of a valid bearer token (--token-file) or of a client certificate signed by
        --client-ca. Without either flag every request is fakekube-admin (system:masters)."""
        srv = self.server
        tokens = srv.tokens()
        if tokens is None and not srv.cfg.client_ca:
            return rbac.User(rbac.ADMIN, groups=[rbac.MASTERS])
        if srv.cfg.client_ca and isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            if cert:
                return rbac.cert_user(cert)  # the handshake verified it against the CA
        auth = self.headers.get("Authorization", "")
        scheme, _, tok = auth.partition(" ")
        if tokens and scheme.lower() == "bearer" and tok.strip() in tokens:
            return tokens[tok.strip()]
        raise errors.unauthorized()

    def _impersonate(self, user):
        """Impersonate-User / Impersonate-Group headers (kubectl --as, --as-group): allowed when
        `user` may `impersonate` that user, service account and each group
        (k8s.io/apiserver/pkg/endpoints/filters/impersonation.go)."""
        name = self.headers.get("Impersonate-User")
        groups = self.headers.get_all("Impersonate-Group") or []
        if not name:
            if groups:
                raise errors.bad_request("requested %s without impersonating a user" % groups)
            return user
        checks = []
        if name.startswith(rbac.SA_PREFIX):
            ns, _, sa = name[len(rbac.SA_PREFIX):].partition(":")
            checks.append(("", "serviceaccounts", ns, sa))
            # without Impersonate-Group, a ServiceAccount gets its usual groups
            target = rbac.User(name, groups=groups) if groups else rbac.service_account_user(ns, sa)
        else:
            checks.append(("", "users", "", name))
            target = rbac.User(name, groups=groups)
        checks += [("", "groups", "", g) for g in groups]
        for group, resource, ns, obj in checks:
            info = rbac.RequestInfo("", "impersonate")
            info.is_resource, info.api_group, info.resource = True, group, resource
            info.namespace, info.name = ns, obj
            if not rbac.authorize(self.server.store, self.server.cfg.authorization_mode, user,
                                  info):
                raise rbac.forbidden(user, info)
        return target

    def _read_chunked(self):
        out = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(out)
            out.append(self.rfile.read(size))
            self.rfile.readline()

    # The status goes into the request log the moment it is sent, not after the handler returns:
    # a client can get its answer and ask /_debug/requests before this thread reaches the
    # `finally` below, and then read status 0 for a request that was answered.
    @property
    def status(self):
        return self._status

    @status.setter
    def status(self, v):
        self._status = v
        e = getattr(self, "_log_entry", None)
        if e is not None:
            with self.server.req_lock:
                e["status"] = v

    def _dispatch(self, method):
        self._log_entry = None  # a keep-alive connection's previous request keeps its status
        self.status = 0
        self.fault_conflict = False  # per request: a handler serves a whole keep-alive connection
        self.fault_gone = None
        self.warnings = []
        t0 = time.time()
        u = urlsplit(self.path)
        self.q = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.body = self._read_chunked()
        else:
            n = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(n) if n else b""
        srv = self.server
        entry = {"method": method, "path": u.path, "query": u.query, "status": 0,
                 "contentType": self.headers.get("Content-Type", ""),
                 "accept": self.headers.get("Accept", ""),
                 "userAgent": self.headers.get("User-Agent", ""), "user": "", "ms": None}
        if not u.path.startswith("/_"):
            with srv.req_lock:  # logged on arrival, so open watches show up at once
                srv.requests.append(entry)
            self._log_entry = entry
        try:
            if u.path.startswith("/_"):
                return self._control(method, u.path)
            self.user = self._impersonate(self._authenticate())
            entry["user"] = self.user.name
            info = rbac.request_info(method, u.path, self.q)
            if not rbac.authorize(srv.store, srv.cfg.authorization_mode, self.user, info):
                raise rbac.forbidden(self.user, info)
            is_watch = parse_bool(self.q.get("watch")) or "/watch/" in u.path
            for f in srv.faults.take(method, u.path, is_watch):
                k = f["kind"]
                if k == "delay":
                    time.sleep(f.get("ms", 1000) / 1000.0)
                elif k == "throttle":
                    raise errors.too_many_requests(int(f.get("retry_after", 1)))
                elif k == "error_500":
                    raise errors.internal(f.get("message", "injected fault"))
                elif k == "drop_next":
                    self.status = -1
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                elif k == "conflict_next_put":
                    self.fault_conflict = True
                elif k == "gone_next_watch":
                    self.fault_gone = f
            self._route(method, u.path)
        except errors.ApiError as e:
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # a bug in the fake: answer like the real server would
            traceback.print_exc()
            try:
                self._send_error(errors.internal("%s: %s" % (type(e).__name__, e)))
            except OSError:
                pass
        finally:
            with srv.req_lock:
                entry["status"] = self.status
                entry["ms"] = round((time.time() - t0) * 1000, 1)

    # ---- test control endpoints (not part of the Kubernetes API) ---------------------------

    def _control(self, method, path):
        srv = self.server
        if path == "/_fault":
            if method == "DELETE":
                srv.faults.clear()
                return self._send(200, {"faults": []})
            if method == "GET":
                return self._send(200, {"faults": srv.faults.list()})
            f = json.loads(self.body or b"{}")
            if f.get("kind") not in FAULT_KINDS:
                raise errors.bad_request("unknown fault kind %r; one of %s"
                                         % (f.get("kind"), sorted(FAULT_KINDS)))
            if f["kind"] == "drop_watches":
                n = srv.store.watcher_count()
                srv.store.drop_watches()
                return self._send(200, {"dropped": n})
            if f["kind"] == "compact":
                srv.store.compact()
                return self._send(200, {"compacted": srv.store.compacted})
            srv.faults.add(f)
            return self._send(200, {"faults": srv.faults.list()})
        if path == "/_debug/requests":
            with srv.req_lock:
                reqs = [dict(r) for r in srv.requests]
                if method == "DELETE" or parse_bool(self.q.get("clear")):
                    srv.requests.clear()
            return self._send(200, {"requests": reqs})
        if path == "/_debug/stats":
            st = srv.store
            with st.lock:
                counts = {k: len(v) for k, v in st.data.items()}
                out = {"resourceVersion": st.rv, "compacted": st.compacted,
                       "history": len(st.history), "objects": counts,
                       "watchers": sum(len(s) for s in st.watchers.values())}
            return self._send(200, out)
        if path == "/_debug/load" and method == "POST":
            return self._bulk_load()
        raise errors.path_not_found()

    def _bulk_load(self):
        """Create many objects in one request (benchmark setup): {"items":[obj,...]}."""
        st = self.server.store
        items = json.loads(self.body or b"{}").get("items") or []
        created = 0
        for o in items:
            g, _, v = (o.get("apiVersion") or "").rpartition("/")
            rt = next((t for t in self.server.registry.resources(g, v)
                       if t.kind == o.get("kind")), None)
            if rt is None:
                raise errors.bad_request("unknown apiVersion/kind %s/%s"
                                         % (o.get("apiVersion"), o.get("kind")))
            st.create(rt, (o.get("metadata") or {}).get("namespace", "default"), o, "bulk-load")
            created += 1
        self._send(201, {"created": created, "resourceVersion": str(st.rv)})

    # ---- Kubernetes API ----------------------------------------------------------------------

    def _route(self, method, path):
        srv = self.server
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, b"ok", "text/plain")
        if path == "/version":
            return self._send(200, discovery.version_doc(srv.cfg.version_minor))
        if path == "/openapi/v3":
            return self._send(200, discovery.openapi_index(srv.registry))
        if len(parts) >= 3 and parts[0] == "openapi" and parts[1] == "v3":
            rest = parts[2:]
            if rest[0] == "api" and len(rest) == 2:
                doc = discovery.openapi_gv_doc(srv.registry, "", rest[1])
            elif rest[0] == "apis" and len(rest) == 3:
                doc = discovery.openapi_gv_doc(srv.registry, rest[1], rest[2])
            else:
                doc = None
            if doc is None:
                raise errors.path_not_found()
            return self._send(200, doc)
        if not parts or parts[0] not in ("api", "apis"):
            raise errors.path_not_found()
        if parts[0] == "api":
            if len(parts) == 1:
                host = "%s:%d" % srv.server_address[:2]
                return self._send(200, discovery.api_versions(host))
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return self._send(200, discovery.api_group_list(srv.registry))
            if len(parts) == 2:
                doc = discovery.api_group(srv.registry, parts[1])
                if doc is None:
                    raise errors.path_not_found()
                return self._send(200, doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            doc = discovery.resource_list(srv.registry, group, version)
            if doc is None:
                raise errors.path_not_found()
            return self._send(200, doc)
        legacy_watch = rest[0] == "watch"
        if legacy_watch:
            rest = rest[1:]
        ns = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            cand = srv.registry.lookup(group, version, rest[2])
            if cand is not None and cand.namespaced:
                ns, rest = rest[1], rest[2:]
        rt = srv.registry.lookup(group, version, rest[0]) if rest else None
        if rt is None or len(rest) > 3:
            raise errors.path_not_found()
        if rt.namespaced and len(rest) > 1 and not ns:
            raise errors.path_not_found()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and not (sub == "status" and rt.status):
            raise errors.path_not_found()
        if rt.virtual:
            if name or ns or legacy_watch:
                raise errors.path_not_found()
            return reviews.handle(self, method, rt)
        handle(self, method, rt, ns, name, sub, legacy_watch)
