"""The C++ Kubernetes client (k8s/) against the in-repo test API server (tests/apiserver).

Driven through tests/k8s_driver (the library on the real libcurl client), one JSON line per
result/event. Covers: a watch that survives dropped connections and 410s while 200 objects are
written concurrently (no missed, no duplicated event), deletions detected across a relist,
409 retried with a fresh read, bearer-token file rotation over HTTPS, kubeconfig variants
(token, tokenFile, CA data, client certificate data, exec plugin, --context, in-cluster files),
two processes contending for a Lease (SIGKILL failover and release on SIGTERM), and Events.
"""
import base64
import concurrent.futures
import json
import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

import apiserver_fixture as F

BUILD = Path(os.environ.get("EDGECERT_BUILD", F.REPO / "build"))
DRIVER = BUILD / "tests" / "k8s_driver"
CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module", autouse=True)
def driver_built():
    if not DRIVER.exists():
        pytest.fail("k8s_driver not built at %s (build target k8s_driver)" % DRIVER)


@pytest.fixture
def srv(tmp_path):
    s = F.start(tmp_path)
    yield s
    s.stop()


def run(args, env=None, timeout=60):
    r = subprocess.run([str(DRIVER)] + [str(a) for a in args], capture_output=True, timeout=timeout,
                       env=env)
    lines = [json.loads(x) for x in r.stdout.decode().splitlines() if x.startswith("{")]
    return r.returncode, lines, r.stderr.decode(errors="replace")


class Proc:
    """A long-running driver process whose JSON output lines are collected by a thread."""

    def __init__(self, args, env=None):
        self.p = subprocess.Popen([str(DRIVER)] + [str(a) for a in args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.lines = []
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for raw in self.p.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            with self.cv:
                self.lines.append(obj)
                self.cv.notify_all()

    def wait_for(self, pred, timeout=30, start=0):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for i in range(start, len(self.lines)):
                    if pred(self.lines[i]):
                        return i, self.lines[i]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out; last lines: %s" % self.lines[-10:])
                self.cv.wait(left)

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def ask(self, line, key, timeout=30):
        n = len(self.lines)
        self.send(line)
        return self.wait_for(lambda o: key in o, timeout, start=n)[1]

    def events(self):
        with self.cv:
            return [l for l in self.lines if l.get("ev") in ("add", "update", "delete")]

    def stop(self):
        if self.p.poll() is None:
            try:
                self.send("quit")
                self.p.stdin.close()
                self.p.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


def server_state(srv):
    st, _, body = srv.http("GET", CM)
    assert st == 200, body
    return {"default/" + o["metadata"]["name"]: o["metadata"]["resourceVersion"]
            for o in body["items"]}


def wait_cache_equals(inf, srv, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        want = server_state(srv)
        got = inf.ask("dump", "dump")["dump"]
        if got == want:
            return want
        if time.monotonic() > deadline:
            missing = set(want) - set(got)
            extra = set(got) - set(want)
            stale = {k for k in want if k in got and got[k] != want[k]}
            raise AssertionError("cache != server: missing %s extra %s stale %s"
                                 % (sorted(missing)[:5], sorted(extra)[:5], sorted(stale)[:5]))
        time.sleep(0.2)


def check_sequences(events, final):
    """Per object: starts with add, resourceVersions strictly increase (the fake's RVs are
    integers; the library itself never orders them), nothing delivered twice, and the last
    event is the server's final state."""
    per = {}
    for e in events:
        per.setdefault(e["key"], []).append(e)
    for key, evs in per.items():
        assert evs[0]["ev"] == "add", (key, evs[:3])
        rvs = [int(e["rv"]) for e in evs]
        assert rvs == sorted(set(rvs)), ("duplicate or out-of-order events", key, evs)
        for prev, cur in zip(evs, evs[1:]):
            if cur["ev"] == "update":
                assert cur["old_rv"] == prev["rv"], ("update does not chain", key, evs)
    for key, rv in final.items():
        assert key in per, ("no event for", key)
        live = [e for e in per[key] if e["ev"] != "delete"]
        assert live[-1]["rv"] == rv, (key, per[key], rv)


def test_watch_survives_drops_and_410_without_missing_or_duplicating(srv):
    inf = Proc(["--kubeconfig", srv.kubeconfig, "informer", "configmaps", "default",
                "--page-size", 64])
    try:
        inf.wait_for(lambda o: o.get("ev") == "synced")

        def write(i):
            name = "cm-%03d" % i
            st, _, o = srv.http("POST", CM, {"metadata": {"name": name}, "data": {"v": "0"}})
            assert st == 201, o
            o["data"]["v"] = "1"
            st, _, o = srv.http("PUT", CM + "/" + name, o)
            assert st == 200, o
            return name

        def faults():
            # While the writes are in flight: two plain drops, a 410 as an ERROR event and a 410
            # as an HTTP status. Each drop is retried until it hit a live watch.
            for gone in (None, "event", None, "http"):
                if gone:
                    srv.fault("gone_next_watch", path_prefix=CM,
                              **({"mode": "http"} if gone == "http" else {}))
                deadline = time.monotonic() + 30
                while srv.fault("drop_watches")["dropped"] < 1:
                    assert time.monotonic() < deadline, "no watch to drop"
                    time.sleep(0.02)
                time.sleep(0.1)

        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            injector = pool.submit(faults)
            futs = [pool.submit(write, i) for i in range(200)]
            for f in futs:
                f.result()
            injector.result()
        final = wait_cache_equals(inf, srv)
        assert len(final) == 200
        check_sequences(inf.events(), final)
        deadline = time.monotonic() + 30
        while True:
            stats = inf.ask("stats", "stats")["stats"]
            if stats["relists_after_gone"] >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert stats["relists_after_gone"] >= 2, stats
        assert stats["watches"] >= 4, stats
        # The relists were paginated (limit 64 → continue tokens), all pages joined.
        lists = [r for r in srv.requests() if r["path"] == CM and r["method"] == "GET"
                 and "watch=" not in r["query"]]
        assert any("continue=" in r["query"] for r in lists), lists[:3]
        final = wait_cache_equals(inf, srv)
        check_sequences(inf.events(), final)
        assert stats["decode_errors"] == 0
        assert not [e for e in inf.events() if e["ev"] == "delete"]
    finally:
        inf.stop()


def test_deletions_while_watch_is_down_are_reported_after_relist(srv):
    for i in range(10):
        st, _, _ = srv.http("POST", CM, {"metadata": {"name": "d-%d" % i}})
        assert st == 201
    inf = Proc(["--kubeconfig", srv.kubeconfig, "informer", "configmaps", "default",
                "--page-size", 64])
    try:
        inf.wait_for(lambda o: o.get("ev") == "synced")
        assert len(inf.ask("dump", "dump")["dump"]) == 10
        # Keep the watch down for a few seconds (backoff 0.8 s, a 500, backoff 1.6 s), delete half
        # the objects, then forget the history so the re-watch from the old resourceVersion
        # gets 410.
        deadline = time.monotonic() + 30
        while srv.fault("drop_watches")["dropped"] < 1:  # the watch may not be open yet
            assert time.monotonic() < deadline, "no watch to drop"
            time.sleep(0.02)
        srv.fault("error_500", path_prefix=CM, method="GET", count=1)
        for i in range(5):
            st, _, _ = srv.http("DELETE", CM + "/d-%d" % i)
            assert st == 200
        srv.fault("compact")
        for i in range(5):
            _, ev = inf.wait_for(lambda o, k="default/d-%d" % i: o.get("ev") == "delete"
                                 and o["key"] == k, timeout=60)
            assert ev["unknown"] is True, ev  # learnt from the relist, not from a DELETED event
        final = wait_cache_equals(inf, srv)
        assert sorted(final) == ["default/d-%d" % i for i in range(5, 10)]
        stats = inf.ask("stats", "stats")["stats"]
        assert stats["relists_after_gone"] >= 1 and stats["backoffs"] >= 2, stats
    finally:
        inf.stop()


def test_conflict_retried_with_fresh_read(srv):
    st, _, _ = srv.http("POST", CM, {"metadata": {"name": "c"}, "data": {"counter": "0"}})
    assert st == 201
    srv.fault("conflict_next_put", count=2)
    rc, out, err = run(["--kubeconfig", srv.kubeconfig, "bump", "default", "c"])
    assert rc == 0, (out, err)
    assert out[0]["attempts"] == 3 and out[0]["counter"] == "1"
    assert srv.http("GET", CM + "/c")[2]["data"]["counter"] == "1"
    # A conflict that never clears gives up after the retry budget with Conflict.
    srv.fault("conflict_next_put", count=10)
    rc, out, _ = run(["--kubeconfig", srv.kubeconfig, "bump", "default", "c"])
    assert rc == 1 and out[0]["code"] == "Conflict" and out[0]["attempts"] == 5
    srv.clear_faults()


def write_kubeconfig(path, server, user, cluster_extra=None, contexts=None, current="main"):
    cluster = {"server": server}
    cluster.update(cluster_extra or {})
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": current,
           "clusters": [{"name": "main", "cluster": cluster},
                        {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:1"}}],
           "users": [{"name": "main", "user": user}],
           "contexts": contexts or [{"name": "main", "context": {"cluster": "main",
                                                                 "user": "main"}}]}
    Path(path).write_text(json.dumps(cfg))
    return path


def test_token_file_rotation_over_https(tmp_path):
    srv = F.start(tmp_path, tls=True, token="tok-1")
    try:
        srv.http("POST", CM, {"metadata": {"name": "t"}})
        tok = tmp_path / "client-token"
        tok.write_text("tok-1\n")
        kc = write_kubeconfig(tmp_path / "kc", srv.url, {"tokenFile": "client-token"},
                              {"certificate-authority": str(srv.ca)})
        repl = Proc(["--kubeconfig", kc, "repl"])
        try:
            assert repl.ask("get configmaps default t", "ok")["ok"] is True
            srv.requests(clear=True)
            # Rotation: the kubelet rewrites the file, the server accepts only the new token.
            tok.write_text("tok-2\n")
            srv.set_token("tok-2")
            assert repl.ask("get configmaps default t", "ok")["ok"] is True
            statuses = [r["status"] for r in srv.requests() if r["path"].endswith("/configmaps/t")]
            assert statuses == [401, 200], statuses
            # A wrong token is Unauthorized (and never echoed); fixing the file recovers.
            srv.set_token("tok-3")
            r = repl.ask("get configmaps default t", "ok")
            assert r["ok"] is False and r["code"] == "Unauthorized", r
            assert "tok-" not in r["message"]
            tok.write_text("tok-3\n")
            assert repl.ask("get configmaps default t", "ok")["ok"] is True
        finally:
            repl.stop()
    finally:
        srv.stop()


def client_cert(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgecert-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_kubeconfig_variants(tmp_path):
    srv = F.start(tmp_path, tls=True, token="tok-A")
    plain = F.start(tmp_path / "plain", tls=True)
    try:
        for s in (srv, plain):
            st, _, _ = s.http("POST", CM, {"metadata": {"name": "k"}})
            assert st == 201
        ca_data = base64.b64encode(Path(srv.ca).read_bytes()).decode()

        def get(kc, *extra):
            rc, out, err = run(["--kubeconfig", kc] + list(extra) + ["get", "configmaps",
                                                                   "default", "k"])
            assert out, err
            return rc, out[0]

        # Inline token + certificate-authority-data.
        kc = write_kubeconfig(tmp_path / "kc-token", srv.url, {"token": "tok-A"},
                              {"certificate-authority-data": ca_data})
        rc, out = get(kc)
        assert rc == 0, out
        # A wrong inline token: 401 → Unauthorized.
        kc = write_kubeconfig(tmp_path / "kc-bad", srv.url, {"token": "nope"},
                              {"certificate-authority-data": ca_data})
        rc, out = get(kc)
        assert rc == 1 and out["code"] == "Unauthorized"
        # Without the CA the TLS handshake must fail; insecure-skip-tls-verify accepts it.
        kc = write_kubeconfig(tmp_path / "kc-noca", srv.url, {"token": "tok-A"})
        rc, out = get(kc)
        assert rc == 1 and out["code"] == "Transient", out
        kc = write_kubeconfig(tmp_path / "kc-insecure", srv.url, {"token": "tok-A"},
                              {"insecure-skip-tls-verify": True})
        assert get(kc)[0] == 0
        # Client certificate and key as data (the server does not demand client certs; this
        # proves they parse and load into the TLS client).
        crt, key = client_cert(tmp_path)
        kc = write_kubeconfig(tmp_path / "kc-cert", plain.url,
                              {"client-certificate-data": base64.b64encode(crt).decode(),
                               "client-key-data": base64.b64encode(key).decode()},
                              {"certificate-authority": str(plain.ca)})
        assert get(kc)[0] == 0
        kc = write_kubeconfig(tmp_path / "kc-cert-nokey", plain.url,
                              {"client-certificate-data": base64.b64encode(crt).decode()},
                              {"certificate-authority": str(plain.ca)})
        rc, out = get(kc)
        assert rc == 1 and out["stage"] == "config"
        # exec credential plugin (client.authentication.k8s.io/v1), relative command path.
        plugin = tmp_path / "plugin.sh"
        plugin.write_text("#!/bin/sh\n"
                          "echo \"$KUBERNETES_EXEC_INFO|$1|$PLUGIN_ENV\" >> \"$(dirname \"$0\")/plugin.log\"\n"
                          "cat <<EOF\n"
                          '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
                          '"status":{"token":"tok-A","expirationTimestamp":"2099-01-01T00:00:00Z"}}\n'
                          "EOF\n")
        plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
        kc = write_kubeconfig(tmp_path / "kc-exec", srv.url,
                              {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                        "command": "./plugin.sh", "args": ["arg1"],
                                        "env": [{"name": "PLUGIN_ENV", "value": "e1"}],
                                        "interactiveMode": "Never"}},
                              {"certificate-authority": str(srv.ca)})
        rc, out = get(kc)
        assert rc == 0, out
        log = (tmp_path / "plugin.log").read_text().splitlines()
        assert len(log) == 1, "credential cached, plugin ran once"
        info, arg, env = log[0].split("|")
        assert json.loads(info)["kind"] == "ExecCredential" and arg == "arg1" and env == "e1"
        # --context selects another cluster and its namespace.
        ctxs = [{"name": "main", "context": {"cluster": "nowhere", "user": "main"}},
                {"name": "other", "context": {"cluster": "main", "user": "main",
                                              "namespace": "kube-system"}}]
        kc = write_kubeconfig(tmp_path / "kc-ctx", srv.url, {"token": "tok-A"},
                              {"certificate-authority": str(srv.ca)}, contexts=ctxs)
        assert get(kc)[0] == 1  # current-context points nowhere
        rc, out = get(kc, "--context", "other")
        assert rc == 0 and out["namespace_default"] == "kube-system", out
        # In-cluster files and environment.
        sa = tmp_path / "sa"
        sa.mkdir()
        (sa / "token").write_text("tok-A")
        (sa / "ca.crt").write_bytes(Path(srv.ca).read_bytes())
        (sa / "namespace").write_text("prod")
        env = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1",
                   KUBERNETES_SERVICE_PORT=str(srv.port))
        rc, out, err = run(["--in-cluster", sa, "get", "configmaps", "default", "k"], env=env)
        assert rc == 0 and out[0]["namespace_default"] == "prod", (out, err)
    finally:
        srv.stop()
        plain.stop()


ELECT = ["--lease-duration-ms", 3000, "--renew-deadline-ms", 2000, "--retry-period-ms", 500]


def lease(srv):
    st, _, body = srv.http("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/lock")
    assert st == 200, body
    return body["spec"]


def test_two_processes_contend_for_a_lease_failover_after_sigkill(srv):
    a = Proc(["--kubeconfig", srv.kubeconfig, "elect", "default", "lock", "A"] + ELECT)
    b = c = None
    try:
        a.wait_for(lambda o: o.get("ev") == "leading", timeout=20)
        b = Proc(["--kubeconfig", srv.kubeconfig, "elect", "default", "lock", "B"] + ELECT)
        b.wait_for(lambda o: o.get("ev") == "new-leader" and o["id"] == "A", timeout=20)
        time.sleep(2)  # B keeps observing A's renewals and stays a follower
        assert not [l for l in b.lines if l.get("ev") == "leading"]
        assert lease(srv)["holderIdentity"] == "A"
        t0 = time.monotonic()
        a.p.send_signal(signal.SIGKILL)
        a.p.wait()
        b.wait_for(lambda o: o.get("ev") == "leading", timeout=15)
        took = time.monotonic() - t0
        # Lease duration 3 s, judged from B's last observation; plus up to one jittered retry.
        assert took < 3.0 + 2 * 0.5 * 2.2 + 1.5, took  # slack for a loaded 2-core CI box
        spec = lease(srv)
        assert spec["holderIdentity"] == "B" and spec["leaseTransitions"] == 1, spec
        assert spec["leaseDurationSeconds"] == 3
        assert spec["renewTime"].endswith("Z") and len(spec["renewTime"]) == 27  # MicroTime
        # SIGTERM: B releases the lease (empty holder, 1 s), so C takes over at once.
        c = Proc(["--kubeconfig", srv.kubeconfig, "elect", "default", "lock", "C"] + ELECT)
        c.wait_for(lambda o: o.get("ev") == "new-leader" and o["id"] == "B", timeout=20)
        t0 = time.monotonic()
        b.p.send_signal(signal.SIGTERM)
        b.wait_for(lambda o: o.get("ev") == "stopped", timeout=10)
        c.wait_for(lambda o: o.get("ev") == "leading", timeout=10)
        took_release = time.monotonic() - t0
        assert took_release < 1.0 + 2 * 0.5 * 2.2 + 1.5, took_release
        assert lease(srv)["leaseTransitions"] == 2
    finally:
        for p in (a, b, c):
            if p is not None and p.p.poll() is None:
                p.p.send_signal(signal.SIGTERM)
                try:
                    p.p.wait(10)
                except subprocess.TimeoutExpired:
                    p.p.kill()


def test_event_recorder_dedupes_and_limits(srv):
    st, _, cm = srv.http("POST", CM, {"metadata": {"name": "ev"}})
    assert st == 201
    rc, out, err = run(["--kubeconfig", srv.kubeconfig, "events", "configmaps", "default", "ev",
                        5])
    assert rc == 0, err
    # 5 identical (1 create + 4 patches) and 30 distinct, through a burst of 25.
    assert out[0] == {"ok": True, "created": 21, "patched": 4, "dropped_spam": 10, "failed": 0}
    st, _, evs = srv.http("GET", "/api/v1/namespaces/default/events?fieldSelector="
                          "involvedObject.name=ev,involvedObject.uid=" + cm["metadata"]["uid"])
    assert st == 200
    failed = [e for e in evs["items"] if e["reason"] == "Failed"]
    assert len(failed) == 1 and failed[0]["count"] == 5, failed
    e = failed[0]
    assert e["type"] == "Warning" and e["source"]["component"] == "edgecert-test"
    assert e["involvedObject"]["kind"] == "ConfigMap" and e["involvedObject"]["apiVersion"] == "v1"
    assert len(evs["items"]) == 21


@pytest.mark.skipif(F.kubectl_path() is None, reason="kubectl is not installed on this machine")
def test_kubectl_describe_shows_recorded_events(srv):
    """involvedObject.uid is what kubectl describe's field selector matches on."""
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "web"},
           "spec": {"ingressClassName": "nginx",
                    "tls": [{"hosts": ["a.example.com"], "secretName": "web-tls"}],
                    "rules": [{"host": "a.example.com"}]}}
    st, _, body = srv.http("POST", "/apis/networking.k8s.io/v1/namespaces/default/ingresses", ing)
    assert st == 201, body
    rc, out, err = run(["--kubeconfig", srv.kubeconfig, "events", "ingresses", "default", "web", 3])
    assert rc == 0, err
    d = srv.kubectl("describe", "ingress", "web").stdout_text
    assert "Events:" in d and "Failed" in d and "the same thing went wrong" in d, d
    assert "edgecert-test" in d, d
    assert "x3 over" in d, d  # the patched count
