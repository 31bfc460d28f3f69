#!/usr/bin/python3
"""In-repo ACME test server: RFC 8555 + RFC 8737 + RFC 9773 (ARI) + profiles + fault injection.

Test tooling for what Debian's Pebble 2.4.0 lacks. It is meant to be faithful: every POST is a
flattened JWS whose signature, nonce (single use), url and Content-Type are checked; resources go
through real state transitions. See tests/acmeserver/README.md for the interface.
"""
import argparse
import base64
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import acme  # noqa: E402
import ca as ca_mod  # noqa: E402
from jws import ParsedJWS, Problem, public_key_from_jwk  # noqa: E402

MAX_BODY = 1 << 20

# POST routes: regex -> (handler name, auth) with auth "jwk", "kid" or "either".
POST_ROUTES = [
    (re.compile(r"^/new-account$"), "new_account", "jwk"),
    (re.compile(r"^/new-order$"), "new_order", "kid"),
    (re.compile(r"^/revoke-cert$"), "revoke", "either"),
    (re.compile(r"^/key-change$"), "key_change", "kid"),
    (re.compile(r"^/acct/([0-9a-f]+)$"), "account_update", "kid"),
    (re.compile(r"^/acct/([0-9a-f]+)/orders$"), "account_orders", "kid"),
    (re.compile(r"^/order/([0-9a-f]+)$"), "get_order", "kid"),
    (re.compile(r"^/finalize/([0-9a-f]+)$"), "finalize", "kid"),
    (re.compile(r"^/authz/([0-9a-f]+)$"), "get_authz", "kid"),
    (re.compile(r"^/chall/([0-9a-f]+)$"), "challenge", "kid"),
    (re.compile(r"^/cert/([0-9a-f]+)(?:/([0-9]+))?$"), "download", "kid"),
]
ACME_GET = re.compile(r"^/(dir|new-nonce|renewal-info/[^/]+)$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "edgecert-acmeserver/1"
    timeout = 30

    @property
    def state(self):
        return self.server.state

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            sys.stderr.write("acmeserver: %s\n" % (fmt % args))

    # --- plumbing -----------------------------------------------------------------------------------
    def base(self):
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        return f"{self.server.scheme}://{host}"

    def send(self, reply, acme_path=True):
        body = reply.body
        if isinstance(body, (dict, list)):
            body = acme.dumps(body)
        body = body or b""
        self.send_response(reply.status)
        if body:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(body)))
        if acme_path:
            self.send_header("Replay-Nonce", self.state.new_nonce())
            self.send_header("Cache-Control", "no-store")
        links = reply.headers.get("Link", [])
        links = [links] if isinstance(links, str) else list(links)
        if acme_path and not any('rel="index"' in lk for lk in links):
            links.append(f'<{self.base()}/dir>;rel="index"')
        for lk in links:
            self.send_header("Link", lk)
        for k, v in reply.headers.items():
            if k != "Link":
                self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_problem(self, p):
        self.send(acme.Reply(p.status, p.document(), "application/problem+json", p.headers))

    def read_body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True  # the rest of the stream cannot be framed: drop the connection
            if length is None:
                raise Problem("malformed", "Content-Length is required", 411)
            raise Problem("malformed", "bad or too large Content-Length", 413)
        length = int(length)
        return self.rfile.read(length)

    def inject_fault(self):
        f = self.state.take_fault(self.path.split("?")[0])
        if f is None:
            return False
        if f.get("delay"):
            time.sleep(float(f["delay"]))
        if self.command == "POST":
            self.read_body()
        status = int(f.get("status", 503))
        headers = {"Retry-After": str(f["retry_after"])} if f.get("retry_after") is not None else {}
        if f.get("malformed"):
            self.send(acme.Reply(status, b'{"status": "valid", "identifiers": [{"ty', "application/json", headers))
            return True
        p = Problem(f.get("type", "serverInternal"), f.get("detail", "injected fault"), status, headers=headers)
        self.send_problem(p)
        return True

    # --- verbs ----------------------------------------------------------------------------------------
    def do_HEAD(self):
        path = self.path.split("?")[0]
        if path.startswith("/_mgmt/"):
            return self.send(acme.Reply(405, b""), acme_path=False)
        try:
            if self.inject_fault():
                return
            if path == "/new-nonce":
                self.state.stats["newNonce"] += 1
                return self.send(acme.Reply(200, b""))
            raise Problem("malformed", "HEAD is only allowed on newNonce", 405, headers={"Allow": "POST"})
        except Problem as p:
            self.send_problem(p)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.startswith("/_mgmt/"):
            return self.mgmt_get(path)
        try:
            if self.inject_fault():
                return
            if path == "/dir":
                return self.send(acme.Reply(200, self.state.directory(self.base())))
            if path == "/new-nonce":
                self.state.stats["newNonce"] += 1
                return self.send(acme.Reply(204, b""))
            if path.startswith("/renewal-info/"):
                return self.send(self.state.renewal_info(path[len("/renewal-info/"):]))
            if any(r.match(path) for r, _, _ in POST_ROUTES):
                # RFC 8555 §6.3: resources other than directory and newNonce are read with POST-as-GET.
                raise Problem("malformed", "use POST-as-GET for this resource", 405, headers={"Allow": "POST"})
            raise Problem("malformed", f"no resource at {path}", 404)
        except Problem as p:
            self.send_problem(p)

    def do_POST(self):
        path = self.path.split("?")[0]
        if path.startswith("/_mgmt/"):
            return self.mgmt_post(path)
        try:
            if self.inject_fault():
                return
            body = self.read_body()
            for rx, name, auth in POST_ROUTES:
                m = rx.match(path)
                if m:
                    break
            else:
                if ACME_GET.match(path):
                    raise Problem("malformed", "this resource only supports GET", 405, headers={"Allow": "GET"})
                raise Problem("malformed", f"no resource at {path}", 404)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/jose+json":
                raise Problem("malformed", "Content-Type must be application/jose+json (RFC 8555 §6.2)", 415)
            req = self.authenticate(body, path, auth)
            base = self.base()
            args = [a for a in m.groups()]
            if name == "download":
                args = [args[0], int(args[1] or 0)]
            if name == "key_change":
                args = [ParsedJWS]
            self.send(getattr(self.state, name)(base, req, *args))
        except Problem as p:
            self.send_problem(p)
        except (ConnectionError, socket.timeout):
            raise
        except Exception as e:  # a bug in the fake must still be a well-formed problem, and visible
            sys.stderr.write(f"acmeserver: internal error on {path}: {e!r}\n")
            import traceback
            traceback.print_exc()
            self.send_problem(Problem("serverInternal", f"internal error: {e!r}", 500))

    def authenticate(self, body, path, auth):
        """RFC 8555 §6.2-6.5: structure, alg, jwk xor kid, signature, url, then single-use nonce."""
        req = ParsedJWS(body)
        req.check_alg()
        hdr = req.protected
        if ("jwk" in hdr) == ("kid" in hdr):
            raise Problem("malformed", "the protected header must contain exactly one of jwk and kid")
        if auth == "jwk" and "jwk" not in hdr:
            raise Problem("malformed", "this resource requires a jwk, not a kid (RFC 8555 §6.2)")
        if auth == "kid" and "kid" not in hdr:
            raise Problem("malformed", "this resource requires a kid (account URL), not a jwk")
        base = self.base()
        req.account = None
        if "jwk" in hdr:
            req.key = public_key_from_jwk(req.jwk)
        else:
            m = re.match(r"^(.*)/acct/([0-9a-f]+)$", req.kid) if isinstance(req.kid, str) else None
            with self.state.lock:
                acct = self.state.accounts.get(m.group(2)) if m and m.group(1) == base else None
            if acct is None:
                raise Problem("accountDoesNotExist", f"account {req.kid!r} does not exist")
            req.account, req.key, req.jwk = acct, acct.key, acct.jwk
        req.verify_with(req.key)
        if req.url != base + path:
            raise Problem("unauthorized", f"JWS url {req.url!r} does not match the request URL {base + path!r} "
                          "(RFC 8555 §6.4)", 403)
        self.state.consume_nonce(req.nonce)
        if req.account is not None and req.account.status != "valid":
            raise Problem("unauthorized", f"account is {req.account.status}", 403)
        return req

    # --- management API (plain JSON, no JWS) -------------------------------------------------------
    def mgmt_json(self, obj, status=200):
        self.send(acme.Reply(status, obj), acme_path=False)

    def mgmt_get(self, path):
        st = self.state
        m = re.match(r"^/_mgmt/(roots|intermediates)/([0-9]+)$", path)
        if m:
            n = int(m.group(2))
            if n >= len(st.ca.chains):
                return self.mgmt_json({"error": "no such chain"}, 404)
            c = st.ca.chains[n]
            pem = ca_mod.pem(c.root if m.group(1) == "roots" else c.intermediate)
            return self.send(acme.Reply(200, pem.encode(), "application/x-pem-file"), acme_path=False)
        with st.lock:
            if path == "/_mgmt/stats":
                return self.mgmt_json(dict(st.stats))
            if path == "/_mgmt/orders":
                out = []
                for o in st.orders.values():
                    st._refresh_order(o)
                    out.append({"id": o.id, "url": f"{self.base()}/order/{o.id}", "account": o.account.id,
                                "status": o.status, "identifiers": o.identifiers, "profile": o.profile,
                                "replaces": o.replaces, "cert_id": o.cert.cert_id if o.cert else None})
                return self.mgmt_json(out)
            if path == "/_mgmt/certs":
                return self.mgmt_json([{"id": c.id, "cert_id": c.cert_id, "serial": hex(c.leaf.serial_number),
                                        "names": c.names, "account": c.account.id, "order": c.order.id,
                                        "profile": c.order.profile,
                                        "not_before": acme.rfc3339(c.leaf.not_valid_before),
                                        "not_after": acme.rfc3339(c.leaf.not_valid_after),
                                        "revoked": c.revoked_at is not None, "revocation_reason": c.revoked_reason,
                                        "replaced_by": c.replaced_by.id if c.replaced_by else None}
                                       for c in st.certs.values()])
            if path == "/_mgmt/accounts":
                return self.mgmt_json([{"id": a.id, "status": a.status, "contact": a.contact, "eab_kid": a.eab_kid,
                                        "thumbprint": a.thumb} for a in st.accounts.values()])
        self.mgmt_json({"error": f"no management resource {path}"}, 404)

    def mgmt_post(self, path):
        st = self.state
        try:
            body = json.loads(self.read_body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except (ValueError, Problem) as e:
            return self.mgmt_json({"error": f"bad JSON: {e}"}, 400)
        with st.lock:
            if path == "/_mgmt/fail":
                f = {"path_prefix": body.get("path_prefix", "*"), "count": int(body.get("count", 1)),
                     "status": int(body.get("status", 200 if body.get("malformed") else 503)),
                     "type": body.get("type", "serverInternal"),
                     "retry_after": body.get("retry_after"), "malformed": bool(body.get("malformed")),
                     "detail": body.get("detail", "injected fault"), "delay": body.get("delay")}
                st.faults.append(f)
                return self.mgmt_json({"ok": True, "faults": len(st.faults)})
            if path == "/_mgmt/clear-faults":
                st.faults = []
                return self.mgmt_json({"ok": True})
            if path == "/_mgmt/renewal-info":
                cid = body.get("cert_id")
                if not isinstance(cid, str):
                    return self.mgmt_json({"error": "cert_id required"}, 400)
                if body.get("clear"):
                    st.ari_overrides.pop(cid, None)
                elif "raw" in body:
                    st.ari_overrides[cid] = {"raw": body["raw"], **({"retry_after": body["retry_after"]}
                                                                    if "retry_after" in body else {})}
                else:
                    if not isinstance(body.get("start"), str) or not isinstance(body.get("end"), str):
                        return self.mgmt_json({"error": "start and end (RFC 3339) required"}, 400)
                    st.ari_overrides[cid] = {k: body[k] for k in ("start", "end", "explanation_url", "retry_after")
                                             if k in body}
                return self.mgmt_json({"ok": True})
            if path == "/_mgmt/dns-txt":
                name = body.get("name")
                if not isinstance(name, str):
                    return self.mgmt_json({"error": "name required"}, 400)
                if body.get("clear"):
                    st.dns_txt.pop(name, None)
                else:
                    st.dns_txt[name].append(str(body.get("value", "")))
                return self.mgmt_json({"ok": True})
            if path == "/_mgmt/config":
                for k in ("retry_after", "ari_retry_after", "processing_polls", "validity"):
                    if k in body:
                        setattr(st.o, k, int(body[k]))
                if "authz_reuse" in body:
                    st.o.authz_reuse = bool(body["authz_reuse"])
                if "ari_window_fraction" in body:
                    st.o.ari_window_fraction = float(body["ari_window_fraction"])
                if body.get("validation") in ("auto", "http", "tls-alpn", "real"):
                    st.o.validation = body["validation"]
                return self.mgmt_json({"ok": True})
        self.mgmt_json({"error": f"no management resource {path}"}, 404)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, tls_ctx, quiet):
        self.state, self.tls_ctx, self.quiet = state, tls_ctx, quiet
        self.scheme = "https" if tls_ctx else "http"
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the per-connection thread, so a slow client cannot stall accept().
        if self.tls_ctx is not None:
            try:
                request.settimeout(30)
                request = self.tls_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--validation", choices=["auto", "http", "tls-alpn", "real"], default="auto")
    ap.add_argument("--http-port", type=int, default=5002)
    ap.add_argument("--tls-port", type=int, default=5001)
    ap.add_argument("--validity", type=int, default=7776000, help="leaf validity in seconds without a profile")
    ap.add_argument("--profiles", default="", help="name=validitySeconds,...")
    ap.add_argument("--default-profile")
    ap.add_argument("--eab-required", action="store_true")
    ap.add_argument("--eab-key", action="append", default=[], help="KID=base64urlHMAC (repeatable)")
    ap.add_argument("--alternate-roots", type=int, default=0)
    ap.add_argument("--ari-window-fraction", type=float, default=2.0 / 3.0)
    ap.add_argument("--ari-retry-after", type=int, default=60)
    ap.add_argument("--retry-after", type=int, default=1, help="Retry-After on pending orders/authz (0: none)")
    ap.add_argument("--authz-reuse", action="store_true", help="reuse the account's valid authorizations")
    ap.add_argument("--processing-polls", type=int, default=1, help="order polls answered 'processing' after finalize")
    ap.add_argument("--tos", default="https://acme.example.test/terms", help="termsOfService URL ('' for none)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    profiles = {}
    for item in filter(None, a.profiles.split(",")):
        name, _, secs = item.partition("=")
        if not name or not secs.isdigit():
            ap.error(f"--profiles item {item!r} is not name=seconds")
        profiles[name] = int(secs)
    if a.default_profile and a.default_profile not in profiles:
        ap.error("--default-profile must name one of --profiles")
    eab = {}
    for item in a.eab_key:
        kid, _, key = item.partition("=")
        try:
            eab[kid] = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        except ValueError:
            ap.error(f"--eab-key {kid}: key is not base64url")
    if bool(a.tls_cert) != bool(a.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    opts = acme.Options(validation=a.validation, http_port=a.http_port, tls_port=a.tls_port, validity=a.validity,
                        profiles=profiles, default_profile=a.default_profile, eab_required=a.eab_required,
                        eab_keys=eab, alternate_roots=a.alternate_roots, ari_window_fraction=a.ari_window_fraction,
                        ari_retry_after=a.ari_retry_after, retry_after=a.retry_after,
                        processing_polls=a.processing_polls, authz_reuse=a.authz_reuse, tos=a.tos or None)
    return a, opts


def main(argv=None):
    def on_term(signum, frame):
        raise KeyboardInterrupt

    # Installed first and covering everything after it, so a SIGTERM at any moment exits 0.
    signal.signal(signal.SIGTERM, on_term)
    srv = None
    try:
        a, opts = parse_args(sys.argv[1:] if argv is None else argv)
        tls_ctx = None
        if a.tls_cert:
            tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls_ctx.load_cert_chain(a.tls_cert, a.tls_key)
            tls_ctx.set_alpn_protocols(["http/1.1"])  # HTTP/1.1 only: keep curl/Go clients off h2
        state = acme.State(opts)
        srv = Server(("127.0.0.1", a.port), state, tls_ctx, a.quiet)
        print("ready" if a.port else f"ready port={srv.server_address[1]}", flush=True)
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if srv is not None:
            srv.server_close()
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "acmeserver-main"
    sys.exit(main())
