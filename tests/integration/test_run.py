"""`edgecert run --config FILE`: controller + terminator in one process, a directory as the store.

Real validation: Pebble connects to the in-process terminator's ports (httpPort/tlsPort = the
terminator's) for http-01 and tls-alpn-01. The in-repo ACME server is used only for what Pebble
lacks: fault injection (a held finalize, rateLimited + Retry-After) and ARI.
"""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
import urllib.request

import pytest
from cryptography import x509

from acmeserver_fixture import AcmeServer
from edgecert_helpers import BIN, https_request, openssl, verify_chain
from pebble_fixture import Pebble, free_port


def wait_for(cond, timeout, what, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"edgecert run exited ({proc.returncode}) while waiting for {what}:\n"
                                 + (log() if log else ""))
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n" + (log()[-4000:] if log else ""))


class Backend:
    """The application behind the terminator: answers every GET with a fixed page."""

    def __init__(self, workdir):
        self.port = free_port()
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "index.html"), "w") as f:
            f.write("hello from the backend\n")
        self.proc = subprocess.Popen(["/usr/bin/python3", "-m", "http.server", str(self.port), "--bind", "127.0.0.1"],
                                     cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("backend did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class EdgecertRun:
    """One `edgecert run` process with its config, store and log under workdir."""

    def __init__(self, workdir, issuers, certificates, backend_port, tls_port=None, http_port=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.store = os.path.join(self.workdir, "store")
        self.tls_port = tls_port or free_port()
        self.http_port = http_port or free_port()
        self.admin_port = free_port()
        self.config = os.path.join(self.workdir, "run.yaml")
        doc = {"store": "store", "issuers": issuers, "certificates": certificates,
               "terminator": {"listen": f"127.0.0.1:{self.tls_port}", "httpListen": f"127.0.0.1:{self.http_port}",
                              "upstream": f"127.0.0.1:{backend_port}", "admin": f"127.0.0.1:{self.admin_port}",
                              "drainTimeout": "2s"}}
        with open(self.config, "w") as f:
            json.dump(doc, f, indent=1)  # JSON is YAML
        self.log_path = os.path.join(self.workdir, "run.log")
        self.proc = None

    def start(self):
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen([BIN, "run", "--config", self.config], stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, EDGECERT_LOG_LEVEL="info"))
        return self

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, pattern, timeout=30):
        return wait_for(lambda: re.search(pattern, self.log()), timeout, f"log /{pattern}/", self.proc, self.log)

    def cert_dir(self, name):
        return os.path.join(self.store, "certs", name)

    def wait_cert(self, name, timeout=30):
        crt = os.path.join(self.cert_dir(name), "tls.crt")
        wait_for(lambda: os.path.exists(crt), timeout, f"{crt}", self.proc, self.log)
        return crt

    def admin(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        rc = self.proc.returncode if self.proc else None
        assert "PRIVATE KEY" not in self.log(), "a private key was logged"
        return rc


def https_get(port, name, cafile):
    """GET / through the terminator with SNI `name`, verified against cafile; (body, the peer's
    notAfter in seconds since the epoch)."""
    data, der = https_request(port, name, ssl.create_default_context(cafile=cafile))
    na = x509.load_der_x509_certificate(der).not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return data.decode(errors="replace"), na.timestamp()


@pytest.fixture
def backend(tmp_path):
    b = Backend(str(tmp_path / "www"))
    yield b
    b.stop()


def test_broken_config_exits_2_naming_the_entry(tmp_path, backend):
    r = EdgecertRun(tmp_path, [{"name": "ca", "acme": {"server": "https://127.0.0.1:1/dir"}}],
                    [{"name": "ok", "dnsNames": ["ok.example.test"], "issuerRef": {"name": "ca"}},
                     {"name": "web", "dnsNames": ["web.example.test"], "issuerRef": {"name": "le"}}],
                    backend.port)
    p = subprocess.run([BIN, "run", "--config", r.config], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2, p.stderr
    assert "certificates[1] (web): issuerRef.name 'le' is not one of the issuers" in p.stderr
    assert not os.path.exists(r.store), "nothing is created for a config that does not load"
    # A typo in a field name is an error too, not a silently ignored setting.
    with open(r.config, "w") as f:
        f.write("store: s\nissuers: []\ncertificates:\n  - name: a\n    dnsName: [a.example.test]\n"
                "    issuerRef: {name: x}\nterminator: {upstream: '127.0.0.1:1'}\n")
    p = subprocess.run([BIN, "run", "--config", r.config], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "certificates[0] (a): unknown field 'dnsName'" in p.stderr, p.stderr
    p = subprocess.run([BIN, "run"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "--config" in p.stderr


def test_pebble_issues_both_challenge_types_serves_and_renews_without_a_failed_request(tmp_path, backend):
    tls_port, http_port = free_port(), free_port()
    # 30 s certificates: renewed at half life (~15 s), so two renewals fit in well under a minute.
    pebble = Pebble(str(tmp_path / "pebble"), http_port=http_port, tls_port=tls_port, validity=30)
    r = None
    try:
        issuers = [{"name": "pebble-http", "acme": {"server": pebble.dir_url, "caBundleFile": pebble.ca_file,
                                                    "email": "ops@example.test", "solvers": [{"http01": {}}]}},
                   {"name": "pebble-alpn", "acme": {"server": pebble.dir_url, "caBundleFile": pebble.ca_file,
                                                    "solvers": [{"tlsAlpn01": {}}]}}]
        certs = [{"name": "web", "dnsNames": ["web.edgecert.test", "www.edgecert.test"],
                  "issuerRef": {"name": "pebble-http"}},
                 {"name": "api", "secretName": "api-tls", "dnsNames": ["api.edgecert.test"],
                  "issuerRef": {"name": "pebble-alpn"}, "privateKey": {"algorithm": "RSA", "size": 2048}}]
        r = EdgecertRun(tmp_path / "run", issuers, certs, backend.port, tls_port=tls_port, http_port=http_port)
        r.start()
        root = str(tmp_path / "pebble-root.pem")
        with open(root, "w") as f:
            f.write(pebble.root_pem())
        web_crt, api_crt = r.wait_cert("web"), r.wait_cert("api-tls")
        for d in (r.cert_dir("web"), r.cert_dir("api-tls")):
            assert stat.S_IMODE(os.stat(os.path.join(d, "tls.key")).st_mode) == 0o600
            assert "BEGIN" in open(os.path.join(d, "tls.key")).read()
        assert stat.S_IMODE(os.stat(os.path.join(r.store, "accounts", "pebble-http", "account.key")).st_mode) == 0o600
        v = verify_chain(web_crt, pebble.root_pem(), str(tmp_path))
        assert v.returncode == 0, v.stdout + v.stderr
        # Served the moment it is stored: curl and s_client against Pebble's root, by SNI.
        # Both loaded and published: in one snapshot when the two were stored close together, else in two.
        def both_published():
            log = r.log()
            loaded = [log.find(f"certificate {n}: loaded serial") for n in ("web", "api-tls")]
            return min(loaded) >= 0 and log.rfind("snapshot published") > max(loaded)
        wait_for(both_published, 10, "both certificates served", r.proc, r.log)
        for name in ("web.edgecert.test", "www.edgecert.test", "api.edgecert.test"):
            c = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", root, "--resolve",
                                f"{name}:{tls_port}:127.0.0.1", f"https://{name}:{tls_port}/"],
                               capture_output=True, text=True)
            assert c.returncode == 0 and "hello from the backend" in c.stdout, (name, c.stderr)
        s = openssl("s_client", "-connect", f"127.0.0.1:{tls_port}", "-servername", "api.edgecert.test",
                    "-CAfile", root, "-verify_return_error", "-brief", input="")
        assert "Verification: OK" in s.stderr + s.stdout, s.stderr
        assert "rsaEncryption" in subprocess.run(["openssl", "x509", "-in", api_crt, "-noout", "-text"],
                                                 capture_output=True, text=True).stdout
        status, metrics = r.admin("/metrics")
        assert status == 200
        assert re.search(r'edgecert_certificate_ready_status\{condition="True",issuer_kind="Issuer",'
                         r'issuer_name="pebble-http",name="web",secret="web"\} 1', metrics), metrics
        assert re.search(r'edgecert_certificate_expiration_timestamp_seconds\{[^}]*name="api",secret="api-tls"\} \d', metrics)
        # `secret` is the folder, the name the served-certificate series carries (the
        # stale-certificate alert of deploy/monitoring joins the two on it)
        assert re.search(r'edgecert_served_certificate_not_after_timestamp_seconds\{name="api-tls",serial="[0-9a-f]+"\} \d',
                         metrics)
        assert re.search(r'edgecert_certificate_renewal_timestamp_seconds\{[^}]*name="web",secret="web"\} \d', metrics)
        assert re.search(r'edgecert_acme_requests_total\{resource="newOrder",status="201"\} [1-9]', metrics)
        # Pebble really validated each type against the in-process terminator.
        assert re.search(r'edgecert_acme_challenges_served_total\{type="tls-alpn-01"\} [1-9]', metrics), metrics
        assert re.search(r'edgecert_acme_challenges_served_total\{type="http-01"\} [1-9]', metrics), metrics
        assert r.admin("/readyz")[0] == 200

        # Renewal under load: a client keeps requesting through the terminator; every request
        # must succeed while the served notAfter moves forward at least twice.
        results = {"ok": 0, "fail": [], "not_after": []}
        stop = threading.Event()

        def client():
            while not stop.is_set():
                try:
                    body, na = https_get(tls_port, "web.edgecert.test", root)
                    assert "hello from the backend" in body
                    results["ok"] += 1
                    if not results["not_after"] or results["not_after"][-1] != na:
                        results["not_after"].append(na)
                except Exception as e:  # noqa: BLE001 - every failure is recorded and fails the test
                    results["fail"].append(repr(e))
                time.sleep(0.05)

        th = threading.Thread(target=client)
        th.start()
        try:
            wait_for(lambda: len(results["not_after"]) >= 3 or results["fail"], 75,
                     "two renewals of web seen on the wire", r.proc, r.log)
        finally:
            stop.set()
            th.join(10)
        assert not results["fail"], results["fail"][:5]
        times = results["not_after"]
        assert len(times) >= 3 and times == sorted(times) and len(set(times)) == len(times), results["not_after"]
        assert results["ok"] > 20
        assert re.search(r"certificate web: renewed serial", r.log())
        assert r.stop() == 0
        assert "run: stopped" in r.log()
    finally:
        if r:
            r.stop()
        pebble.stop()


def test_kill9_with_a_pending_order_resumes_the_same_order(tmp_path, backend):
    with AcmeServer(tmp_path / "ca", validation="auto") as ca:
        # finalize keeps failing (503): the order is pending when edgecert is killed.
        ca.fail("/finalize/", count=1000, status=503, type="serverInternal")
        issuers = [{"name": "ca", "acme": {"server": ca.dir_url, "caBundleFile": ca.ca_bundle}}]
        certs = [{"name": "app", "dnsNames": ["app.example.test"], "issuerRef": {"name": "ca"}}]
        r = EdgecertRun(tmp_path / "run", issuers, certs, backend.port).start()
        pending = os.path.join(r.cert_dir("app"), ".pending")
        try:
            wait_for(lambda: os.path.isdir(pending) and os.listdir(pending) and
                     ca.stats().get("faultsInjected", 0) >= 1, 30, "a pending order with finalize failing",
                     r.proc, r.log)
            for f in os.listdir(pending):
                if f.endswith(".key"):
                    assert stat.S_IMODE(os.stat(os.path.join(pending, f)).st_mode) == 0o600
        finally:
            r.stop(signal.SIGKILL)
        assert ca.stats().get("ordersCreated") == 1
        assert not os.path.exists(os.path.join(r.cert_dir("app"), "tls.crt"))
        ca.mgmt("POST", "clear-faults", {})
        r.start()
        try:
            crt = r.wait_cert("app")
            r.wait_log(r"certificate app: resuming order https://")
            r.wait_log(r"certificate app: issued serial .* \(resumed order\)")
            st = ca.stats()
            assert st.get("ordersCreated") == 1, st  # no second order
            assert st.get("certsIssued") == 1, st
            v = verify_chain(crt, ca.root_pem(), str(tmp_path))
            assert v.returncode == 0, v.stdout + v.stderr
            assert not os.path.exists(pending) or not os.listdir(pending)
            # ARI (the in-repo CA offers it): the renewal window was fetched for the new certificate.
            r.wait_log(r"certificate app: ARI window")
            assert ca.stats().get("renewalInfo", 0) >= 1
            assert r.stop() == 0
        finally:
            r.stop()


def test_an_order_finished_before_a_kill_is_not_taken_for_the_next_renewal(tmp_path, backend):
    # Killed after storing the certificate and before clearing its order: at the next renewal,
    # resuming that order would hand back the certificate in service. That is no renewal: the
    # order is dropped and a new one placed, with a new key (rotation "Always", the default).
    with AcmeServer(tmp_path / "ca", validation="auto", validity=24, ari_window_fraction=0.75) as ca:
        ca.fail("/finalize/", count=1000, status=503, type="serverInternal")
        issuers = [{"name": "ca", "acme": {"server": ca.dir_url, "caBundleFile": ca.ca_bundle}}]
        certs = [{"name": "app", "dnsNames": ["app.example.test"], "issuerRef": {"name": "ca"}}]
        r = EdgecertRun(tmp_path / "run", issuers, certs, backend.port).start()
        pending = os.path.join(r.cert_dir("app"), ".pending")
        left_behind = str(tmp_path / "left-behind")
        try:
            wait_for(lambda: os.path.isdir(pending) and os.listdir(pending) and
                     ca.stats().get("faultsInjected", 0) >= 1, 30, "a pending order with finalize failing",
                     r.proc, r.log)
            shutil.copytree(pending, left_behind)  # the order and its key, as that kill leaves them
            ca.mgmt("POST", "clear-faults", {})
            crt = r.wait_cert("app")
            first = r.wait_log(r"certificate app: issued serial (\S+) ").group(1)
            wait_for(lambda: not os.path.exists(pending) or not os.listdir(pending), 10, "the finished order cleared",
                     r.proc, r.log)
            key_before = open(os.path.join(r.cert_dir("app"), "tls.key")).read()
            assert r.stop() == 0
        finally:
            r.stop()
        shutil.rmtree(pending, ignore_errors=True)
        shutil.copytree(left_behind, pending)
        r.start()
        try:
            r.wait_log(r"certificate app: order https://\S+ was already finished and its certificate stored; "
                       r"placing a new order", timeout=40)
            m = r.wait_log(r"certificate app: renewed serial (\S+) .*", timeout=20)
            assert m.group(1) != first and "(resumed order)" not in m.group(0), m.group(0)
            st = ca.stats()
            assert st.get("ordersCreated") == 2 and st.get("certsIssued") == 2, st
            assert open(os.path.join(r.cert_dir("app"), "tls.key")).read() != key_before  # a new key
            assert not os.path.exists(pending) or not os.listdir(pending)
            v = verify_chain(crt, ca.root_pem(), str(tmp_path))
            assert v.returncode == 0, v.stdout + v.stderr
            assert r.stop() == 0
        finally:
            r.stop()


def test_renew_asks_the_running_process_to_renew_now(tmp_path, backend):
    # `edgecert renew --config FILE NAME`: run renews at once, skipping the failure backoff.
    with AcmeServer(tmp_path / "ca", validation="auto", validity=3600) as ca:
        ca.fail("/new-order", count=1000, status=500, type="serverInternal", detail="database down")
        issuers = [{"name": "ca", "acme": {"server": ca.dir_url, "caBundleFile": ca.ca_bundle}}]
        certs = [{"name": "app", "dnsNames": ["app.example.test"], "issuerRef": {"name": "ca"}},
                 {"name": "other", "dnsNames": ["other.example.test"], "issuerRef": {"name": "ca"}}]
        r = EdgecertRun(tmp_path / "run", issuers, certs, backend.port).start()

        def renew(*args):
            p = subprocess.run([BIN, "renew", *args], capture_output=True, text=True, timeout=30)
            assert "PRIVATE KEY" not in p.stdout + p.stderr
            return p
        try:
            retry_at = r.wait_log(r"certificate app: issuance failed \(attempt 1\): .*; retrying at (\S+)").group(1)
            ca.mgmt("POST", "clear-faults", {})
            p = renew("--config", r.config, "app")
            assert p.returncode == 0 and "Renewal of app requested" in p.stdout, (p.stdout, p.stderr)
            r.wait_log(r"certificate app: renewal requested: trying now instead of at " + re.escape(retry_at))
            t_issued = r.wait_log(r"(\S+) \S+\s+certificate app: issued serial (\S+)", timeout=10)
            assert t_issued.group(1)[:19] < retry_at[:19], (t_issued.group(0), retry_at)  # before the backoff ended
            first = t_issued.group(2)
            other = r.wait_log(r"certificate other: issued serial (\S+)", timeout=40).group(1)

            # A valid certificate: renewed now, the other one left alone; the request is used up.
            p = renew("--config", r.config, "app")
            assert p.returncode == 0, p.stderr
            m = r.wait_log(r"certificate app: renewed serial (\S+)", timeout=15)
            assert m.group(1) != first
            assert not os.listdir(os.path.join(r.store, "renew-requests"))
            assert "certificate other: renewed" not in r.log() and other in r.log()

            # Names are checked against the config; through --store, run says so in its log.
            p = renew("--config", r.config, "nope")
            assert p.returncode == 2 and "'nope' is not a certificate of" in p.stderr, (p.returncode, p.stderr)
            p = renew("--store", r.store, "nope")
            assert p.returncode == 0, p.stderr
            r.wait_log(r"run: a renewal was requested for 'nope', which is not a certificate of the config; ignored")
            p = renew("--store", str(tmp_path / "missing"), "app")
            assert p.returncode == 1 and "missing" in p.stderr, (p.returncode, p.stderr)
            assert r.stop() == 0
        finally:
            r.stop()


def test_rate_limited_logs_one_clear_line_and_issues_after_the_fault_clears(tmp_path, backend):
    with AcmeServer(tmp_path / "ca", validation="auto") as ca:
        ca.fail("/new-order", count=1000, status=429, type="rateLimited", retry_after=3,
                detail="too many certificates for this name")
        issuers = [{"name": "ca", "acme": {"server": ca.dir_url, "caBundleFile": ca.ca_bundle}}]
        certs = [{"name": "shop", "dnsNames": ["shop.example.test"], "issuerRef": {"name": "ca"}}]
        r = EdgecertRun(tmp_path / "run", issuers, certs, backend.port).start()
        try:
            m = r.wait_log(r"certificate shop: rate limited by the CA, retrying at (\S+) \(.*too many certificates")
            _, metrics = r.admin("/metrics")
            assert re.search(r'edgecert_acme_requests_total\{resource="newOrder",status="429"\} [1-9]', metrics)
            assert re.search(r'edgecert_certificate_ready_status\{condition="False",[^}]*name="shop"[^}]*\} 1', metrics)
            # Not ready while no certificate is served... but the terminator is (nothing to load).
            assert ca.stats().get("ordersCreated", 0) == 0
            account_key = os.path.join(r.store, "accounts", "ca", "account.key")
            assert os.path.exists(account_key)
            key_before = open(account_key).read()
            ca.mgmt("POST", "clear-faults", {})
            crt = r.wait_cert("shop", timeout=20)
            r.wait_log(r"certificate shop: issued serial")
            assert open(account_key).read() == key_before  # same account, nothing lost
            st = ca.stats()
            assert st.get("ordersCreated") == 1 and st.get("certsIssued") == 1, st
            assert len(json.loads(ca.mgmt("GET", "accounts"))) == 1  # one account, reused
            # The retry came no earlier than the Retry-After.
            log = r.log()
            t_limited = re.search(r"^(\S+) \S+\s+certificate shop: rate limited", log, re.M).group(1)
            t_issued = re.search(r"^(\S+) \S+\s+certificate shop: issued serial", log, re.M).group(1)
            assert t_issued > t_limited and m.group(1)
            assert log.count("rate limited by the CA") <= 3
            assert r.stop() == 0
            assert os.path.exists(crt)
        finally:
            r.stop()


def test_ari_window_drives_renewal_with_replaces_and_sighup_reloads_the_config(tmp_path, backend):
    # 24 s certificates whose ARI window is [75%, 87.5%] of the lifetime: the lifetime rule alone
    # would renew at 50% (12 s), so a renewal after 18 s shows the window was followed.
    with AcmeServer(tmp_path / "ca", validation="auto", validity=24, ari_window_fraction=0.75) as ca:
        issuers = [{"name": "ca", "acme": {"server": ca.dir_url, "caBundleFile": ca.ca_bundle}}]
        certs = [{"name": "ari", "dnsNames": ["ari.example.test"], "issuerRef": {"name": "ca"}}]
        r = EdgecertRun(tmp_path / "run", issuers, certs, backend.port).start()
        try:
            r.wait_cert("ari")
            m = r.wait_log(r"certificate ari: serial \S+, valid until (\S+), renewal at (\S+) \(ARI\)")
            not_after, renew_at = (datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ") for v in m.groups())
            # Inside the window [notAfter - 6 s, notAfter - 3 s] (seconds truncated), not at half
            # life (notAfter - 12 s).
            assert 2 <= (not_after - renew_at).total_seconds() <= 7, m.group(0)
            first = ca.certs()[0]
            r.wait_log(r"certificate ari: renewed serial", timeout=40)
            orders = ca.orders()
            assert len(orders) == 2, orders
            second = [o for o in orders if o.get("replaces")]
            assert second and second[0]["replaces"] == first["cert_id"], orders  # RFC 9773 §5
            assert re.search(r"certificate ari: Renewing certificate as renewal was scheduled at \S+ \(ARI\)", r.log())

            # SIGHUP: a new certificate appears in the file; a broken file is refused and the
            # running config kept.
            with open(r.config) as f:
                doc = json.load(f)
            doc["certificates"].append({"name": "added", "dnsNames": ["added.example.test"],
                                        "issuerRef": {"name": "ca"}})
            with open(r.config, "w") as f:
                json.dump(doc, f)
            r.proc.send_signal(signal.SIGHUP)
            r.wait_cert("added", timeout=20)
            r.wait_log(r"run: SIGHUP: config reloaded, 2 certificate\(s\)")
            with open(r.config, "w") as f:
                f.write("store: store\ncertificates: [{name: x}]\n")
            r.proc.send_signal(signal.SIGHUP)
            r.wait_log(r"run: SIGHUP: .*certificates\[0\] \(x\).*keeping the running config")
            assert r.proc.poll() is None
            assert r.admin("/readyz")[0] == 200
            assert r.stop() == 0
        finally:
            r.stop()
