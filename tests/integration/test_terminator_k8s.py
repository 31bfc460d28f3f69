"""`edgecert terminator --cert-source kubernetes --challenge-source kubernetes` against the in-repo
API server (fakekube, HTTPS + bearer token), driven with real clients: kubectl creates, replaces
and deletes Secrets and Challenges, curl / openssl s_client / Python ssl check what is served,
`kubectl get events` / `kubectl describe` show the Loaded / Rejected Events, and fakekube's fault
injection cuts watches and expires resourceVersions."""
import base64
import hashlib
import json
import os
import re
import subprocess
import time
import urllib.request

import pytest

import apiserver_fixture
from terminator_fixture import BIN, Upstream, free_port, make_cert, tls_probe, wait_for

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CRD = os.path.join(REPO, "deploy", "crds", "challenges.edgecert.io.yaml")
TOKEN = "term-t0k3n"

pytestmark = pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")


class K8sTerminator:
    """A running `edgecert terminator` fed from the API server, stopped by PID."""

    def __init__(self, srv, upstream_port, workdir, *extra, wait_ready=True):
        self.tls_port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
        self.log_path = os.path.join(workdir, f"terminator-k8s-{self.tls_port}.log")
        args = [BIN, "terminator", "--listen", f"127.0.0.1:{self.tls_port}", "--http-listen",
                f"127.0.0.1:{self.http_port}", "--upstream", f"127.0.0.1:{upstream_port}",
                "--admin", f"127.0.0.1:{self.admin_port}", "--workers", "1", "--proxy-protocol", "v2",
                "--kubeconfig", str(srv.kubeconfig), *extra]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, EDGECERT_LOG_LEVEL="debug"))
        if not wait_ready:
            return
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"terminator exited {self.proc.returncode}:\n{self.logs()}")
            if self.readyz() == 200:
                return
            time.sleep(0.05)
        raise AssertionError("terminator not ready:\n" + self.logs())

    def readyz(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def metrics_text(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def logs(self):
        self.log.flush()
        return open(self.log_path).read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        logs = open(self.log_path).read()
        assert "PRIVATE KEY" not in logs, "a private key was logged"
        assert TOKEN not in logs, "the API bearer token was logged"
        return self.proc.returncode


def pem_pair(workdir, name, sans):
    """(serial hex, tls.crt bytes, tls.key bytes) of a fresh self-signed ECDSA certificate."""
    folder = os.path.join(workdir, "gen", name + "-" + str(time.monotonic_ns()))
    serial = make_cert(folder, sans, "ec")
    return serial, open(folder + "/tls.crt", "rb").read(), open(folder + "/tls.key", "rb").read(), folder


def secret_manifest(name, crt, key, labelled=True, ns="default"):
    meta = {"name": name, "namespace": ns}
    if labelled:
        meta["labels"] = {"edgecert.io/managed": "true"}
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": meta,
                       "data": {"tls.crt": base64.b64encode(crt).decode(),
                                "tls.key": base64.b64encode(key).decode()}})


def kapply(srv, manifest):
    srv.kubectl("apply", "-f", "-", input=manifest)


def events_for(srv, name, reason):
    out = srv.kubectl("get", "events", "-n", "default", "-o", "json", "--field-selector",
                      f"involvedObject.name={name},reason={reason}").stdout_text
    return json.loads(out)["items"]


def event_serial(message):
    """The serial in a Loaded Event's message as an int (the terminator prints even-length hex,
    Python's format(n, "x") drops a leading zero: compare numbers, not strings)."""
    m = re.search(r"serving certificate serial ([0-9a-f]+) for ", message)
    return int(m.group(1), 16) if m else None


def served_serial(t, sni):
    try:
        return tls_probe(t.tls_port, sni)[0]
    except OSError:
        return None


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("termk8s"))
    srv = apiserver_fixture.start(d, tls=True, token=TOKEN)
    srv.kubectl("apply", "-f", CRD)
    serial, crt, key, folder = pem_pair(d, "site", ["site.test"])
    kapply(srv, secret_manifest("site", crt, key))
    up = Upstream("v2")
    t = K8sTerminator(srv, up.port, d, "--cert-source", "kubernetes", "--challenge-source", "kubernetes")
    state = {"dir": d, "srv": srv, "up": up, "t": t, "site": (serial, folder)}
    yield state
    rc = t.stop()
    up.close()
    srv.stop()
    assert rc == 0, t.logs()
    assert not up.errors, up.errors


def test_serves_labelled_secret_with_loaded_event(env):
    t, srv = env["t"], env["srv"]
    serial, folder = env["site"]
    assert t.readyz() == 200
    assert served_serial(t, "site.test") == serial
    # curl verifies the chain against the certificate itself (self-signed: its own CA) and reaches
    # the upstream through the terminator.
    p = subprocess.run(["curl", "-s", "--http1.1", "--max-time", "10", "--cacert", folder + "/tls.crt", "--resolve",
                        f"site.test:{t.tls_port}:127.0.0.1", f"https://site.test:{t.tls_port}/k8s",
                        "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=20)
    body, code = p.stdout.rsplit("\n", 1)
    assert code == "200", p.stdout + p.stderr
    assert json.loads(body)["request"] == "GET /k8s HTTP/1.1"
    evs = wait_for(lambda: events_for(srv, "site", "Loaded"), timeout=5)
    assert evs, t.logs()
    ev = evs[0]
    assert ev["type"] == "Normal" and ev["source"]["component"] == "edgecert-terminator"
    assert ev["involvedObject"]["kind"] == "Secret" and ev["involvedObject"]["uid"]
    assert event_serial(ev["message"]) == int(serial, 16), ev["message"]
    assert " for 1 name, notAfter " in ev["message"], ev["message"]
    assert "notAfter" in ev["message"]
    # kubectl's Secret describer prints no Events; `kubectl events --for` finds them by the
    # involvedObject fields the recorder filled in.
    out = srv.kubectl("events", "--for", "secret/site").stdout_text
    assert "Loaded" in out and event_serial(out) == int(serial, 16), out
    assert 'name="default/site",serial="' in t.metrics_text()


def test_replaced_secret_served_within_one_second(env):
    t, srv, d = env["t"], env["srv"], env["dir"]
    serial, crt, key, folder = pem_pair(d, "site", ["site.test"])
    kapply(srv, secret_manifest("site", crt, key))
    t0 = time.time()
    assert wait_for(lambda: served_serial(t, "site.test") == serial, timeout=3, interval=0.01), t.logs()
    took = time.time() - t0
    assert took < 1.0, f"new serial served after {took:.2f} s"
    env["site"] = (serial, folder)
    # One Loaded Event per resourceVersion: this version got its own, with the new serial.
    assert wait_for(lambda: any(event_serial(e["message"]) == int(serial, 16)
                                for e in events_for(srv, "site", "Loaded")), timeout=5)


def test_mismatched_key_rejected_last_good_kept(env):
    t, srv, d = env["t"], env["srv"], env["dir"]
    good_serial = env["site"][0]
    _, crt, _, _ = pem_pair(d, "bad-a", ["site.test"])
    _, _, other_key, _ = pem_pair(d, "bad-b", ["site.test"])
    kapply(srv, secret_manifest("site", crt, other_key))
    evs = wait_for(lambda: events_for(srv, "site", "Rejected"), timeout=5)
    assert evs, t.logs()
    assert evs[0]["type"] == "Warning"
    assert "tls.key does not match the certificate" in evs[0]["message"], evs[0]["message"]
    assert served_serial(t, "site.test") == good_serial
    out = srv.kubectl("events", "--for", "secret/site", "--types", "Warning").stdout_text
    assert "Rejected" in out and "does not match" in out, out
    # A rescan (SIGHUP) delivers the same resourceVersion again: still exactly one Rejected Event.
    t.proc.send_signal(1)
    wait_for(lambda: "SIGHUP" in t.logs(), timeout=5)
    time.sleep(0.3)  # let a (wrongly) duplicated Event reach the API server before counting
    evs = events_for(srv, "site", "Rejected")
    assert len(evs) == 1 and evs[0].get("count", 1) == 1, evs
    # Recovery: a good pair again is loaded and reported.
    serial, crt, key, folder = pem_pair(d, "site", ["site.test"])
    kapply(srv, secret_manifest("site", crt, key))
    assert wait_for(lambda: served_serial(t, "site.test") == serial, timeout=3)
    env["site"] = (serial, folder)


def test_expired_and_truncated_rejected(env):
    t, srv, d = env["t"], env["srv"], env["dir"]
    folder = os.path.join(d, "gen", "old")
    serial = make_cert(folder, ["old.test"], expired=True)
    crt, key = open(folder + "/tls.crt", "rb").read(), open(folder + "/tls.key", "rb").read()
    kapply(srv, secret_manifest("old", crt, key))
    evs = wait_for(lambda: events_for(srv, "old", "Rejected"), timeout=5)
    assert evs and "expired" in evs[0]["message"], (evs, t.logs())
    assert served_serial(t, "old.test") != serial
    _, crt, key, _ = pem_pair(d, "cut", ["cut.test"])
    kapply(srv, secret_manifest("cut", crt[: len(crt) // 2], key))
    evs = wait_for(lambda: events_for(srv, "cut", "Rejected"), timeout=5)
    assert evs and "truncated PEM" in evs[0]["message"], (evs, t.logs())
    assert "PRIVATE" not in evs[0]["message"]
    srv.kubectl("delete", "secret", "old", "cut")


def test_unlabelled_secret_ignored_until_labelled(env):
    t, srv, d = env["t"], env["srv"], env["dir"]
    serial, crt, key, _ = pem_pair(d, "plain", ["plain.test"])
    kapply(srv, secret_manifest("plain", crt, key, labelled=False))
    time.sleep(0.5)  # give a (wrong) load the chance to happen
    assert served_serial(t, "plain.test") != serial
    assert 'name="default/plain"' not in t.metrics_text()
    srv.kubectl("label", "secret", "plain", "edgecert.io/managed=true")
    assert wait_for(lambda: served_serial(t, "plain.test") == serial, timeout=3), t.logs()
    srv.kubectl("delete", "secret", "plain")
    # Labelled but not a TLS Secret: skipped, with a log line that says why.
    srv.kubectl("create", "secret", "generic", "opaque", "--from-literal=tls.crt=x", "--from-literal=tls.key=y")
    srv.kubectl("label", "secret", "opaque", "edgecert.io/managed=true")
    assert wait_for(lambda: "secret default/opaque: skipped: type is 'Opaque', not kubernetes.io/tls" in t.logs(),
                    timeout=3), t.logs()
    srv.kubectl("delete", "secret", "opaque")


def test_deleted_secret_no_longer_served(env):
    t, srv, d = env["t"], env["srv"], env["dir"]
    serial, crt, key, _ = pem_pair(d, "gone", ["gone.test"])
    kapply(srv, secret_manifest("gone", crt, key))
    assert wait_for(lambda: served_serial(t, "gone.test") == serial, timeout=3)
    srv.kubectl("delete", "secret", "gone")
    assert wait_for(lambda: 'name="default/gone"' not in t.metrics_text(), timeout=3)
    assert served_serial(t, "gone.test") != serial


def challenge_manifest(name, typ, dns, token, key):
    return json.dumps({"apiVersion": "edgecert.io/v1alpha1", "kind": "Challenge",
                       "metadata": {"name": name, "namespace": "default"},
                       "spec": {"type": typ, "dnsName": dns, "token": token, "key": key, "wildcard": False,
                                "url": "https://ca.test/chall/" + name, "authorizationURL": "https://ca.test/authz/1",
                                "issuerRef": {"name": "pebble", "kind": "ClusterIssuer"}}})


def presented(srv, name):
    return srv.kubectl("get", "challenges.edgecert.io", name, "-o",
                       "jsonpath={.status.presented}").stdout_text == "true"


def test_http01_challenge_served_and_marked_presented(env):
    t, srv = env["t"], env["srv"]
    token, ka = "tok_HTTP-01abc", "tok_HTTP-01abc.thumbprintXYZ"
    kapply(srv, challenge_manifest("h1", "http-01", "site.test", token, ka))

    def fetch():
        p = subprocess.run(["curl", "-s", "--max-time", "5", "-w", "\n%{http_code}",
                            f"http://127.0.0.1:{t.http_port}/.well-known/acme-challenge/{token}"],
                           capture_output=True, text=True)
        return p.stdout
    assert wait_for(lambda: fetch() == ka + "\n200", timeout=3), fetch()
    assert wait_for(lambda: presented(srv, "h1"), timeout=5), t.logs()
    # A dns-01 Challenge is not the terminator's: never marked presented by it.
    kapply(srv, challenge_manifest("d1", "dns-01", "site.test", "tokDNS", "tokDNS.thumb"))
    srv.kubectl("delete", "challenges.edgecert.io", "h1")
    assert wait_for(lambda: fetch().endswith("\n404"), timeout=3), fetch()
    assert not presented(srv, "d1")


def test_presented_patch_retried_after_api_errors(env):
    """The status patch fails twice (500): the terminator answers at once and keeps retrying the
    patch with backoff until status.presented is set."""
    t, srv = env["t"], env["srv"]
    srv.fault("error_500", count=2, method="PATCH",
              path_prefix="/apis/edgecert.io/v1alpha1/namespaces/default/challenges/r1/status")
    token, ka = "tokRetry1", "tokRetry1.thumb"
    kapply(srv, challenge_manifest("r1", "http-01", "site.test", token, ka))
    assert wait_for(lambda: presented(srv, "r1"), timeout=10), t.logs()
    patches = [r for r in srv.requests() if r["method"] == "PATCH" and r["path"].endswith("/challenges/r1/status")]
    assert [r["status"] for r in patches][:3] == [500, 500, 200], patches
    assert "setting status.presented failed" in t.logs()
    srv.kubectl("delete", "challenges.edgecert.io", "r1")


def test_tls_alpn01_challenge_certificate(env, tmp_path):
    from cryptography import x509
    t, srv = env["t"], env["srv"]
    ka = "tokALPN.thumbprintK8s"
    kapply(srv, challenge_manifest("a1", "tls-alpn-01", "Alpn.Test", "tokALPN", ka))
    assert wait_for(lambda: presented(srv, "a1"), timeout=5), t.logs()

    def probe():
        p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{t.tls_port}", "-alpn", "acme-tls/1",
                            "-servername", "alpn.test"], input=b"", capture_output=True, timeout=20)
        return p.stdout.decode(errors="replace")
    out = probe()
    assert "ALPN protocol: acme-tls/1" in out, out
    pem = out[out.index("-----BEGIN CERTIFICATE-----"):out.index("-----END CERTIFICATE-----") + 25]
    cert = x509.load_pem_x509_certificate(pem.encode())
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
    assert ext.critical
    assert ext.value.value == b"\x04\x20" + hashlib.sha256(ka.encode()).digest()
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["alpn.test"]
    srv.kubectl("delete", "challenges.edgecert.io", "a1")
    assert wait_for(lambda: "ALPN protocol: acme-tls/1" not in probe(), timeout=3)


def _secret_lists(srv):
    return len([r for r in srv.requests() if r["path"] == "/api/v1/secrets"
                and "watch=" not in (r.get("query") or "")])


@pytest.mark.parametrize("how", ["drop", "gone_event", "compacted"])
def test_watch_cut_or_expired_then_change_picked_up(env, how):
    t, srv, d = env["t"], env["srv"], env["dir"]
    lists_before = _secret_lists(srv)
    if how == "gone_event":  # the re-watch answers 200 + ERROR 410 Expired
        srv.fault("gone_next_watch", path_prefix="/api/v1/secrets")
    srv.fault("drop_watches")
    if how == "compacted":
        # Forget the history at once (the re-watch comes after a backoff of 0.8 s or more): the
        # terminator's resourceVersion is now too old, its re-watch gets 410 and it must relist.
        srv.fault("compact")
    # Changed while the terminator is not watching.
    serial, crt, key, folder = pem_pair(d, "site", ["site.test"])
    kapply(srv, secret_manifest("site", crt, key))
    assert wait_for(lambda: served_serial(t, "site.test") == serial, timeout=10, interval=0.05), t.logs()
    env["site"] = (serial, folder)
    if how != "drop":  # 410 → the informer relisted (a cut stream alone resumes the watch)
        assert wait_for(lambda: _secret_lists(srv) > lists_before, timeout=5)
    srv.clear_faults()


def test_unreachable_api_server_fails_start(env, tmp_path):
    port = free_port()  # nothing listens there
    kc = tmp_path / "kubeconfig"
    kc.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "x",
                              "clusters": [{"name": "x", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                              "users": [{"name": "x", "user": {}}],
                              "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    up_port = free_port()
    p = subprocess.run([BIN, "terminator", "--listen", f"127.0.0.1:{free_port()}", "--http-listen", "off",
                        "--admin", "off", "--upstream", f"127.0.0.1:{up_port}", "--kubeconfig", str(kc),
                        "--challenge-source", "none", "--sync-timeout", "1500ms"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "listing Secrets: no answer from the API server" in p.stdout + p.stderr, p.stdout + p.stderr


def test_namespaces_and_select_all(env, tmp_path):
    """--namespaces limits the watch; --secret-selector all takes every kubernetes.io/tls Secret."""
    srv, d = env["srv"], env["dir"]
    srv.kubectl("create", "namespace", "team-a")
    serial_a, crt, key, _ = pem_pair(d, "a", ["a.team.test"])
    kapply(srv, secret_manifest("cert-a", crt, key, labelled=False, ns="team-a"))
    up = Upstream("v2")
    t = K8sTerminator(srv, up.port, str(tmp_path), "--cert-source", "kubernetes", "--challenge-source", "none",
                      "--namespaces", "team-a", "--secret-selector", "all")
    try:
        assert served_serial(t, "a.team.test") == serial_a
        m = t.metrics_text()
        assert 'name="team-a/cert-a"' in m and 'name="default/site"' not in m, m
    finally:
        assert t.stop() == 0, t.logs()
        up.close()
