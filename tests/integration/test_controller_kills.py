"""SIGKILL of `edgecert controller` and of `edgecert terminator --cert-source kubernetes` at random
points while short-lived certificates renew continuously and a client keeps requesting through
the terminator (issue 13 item 3; docs/reliability.md "Faults in dependencies").

Real processes throughout: the in-repo API server (fakekube), the in-repo ACME server validating
real http-01 answers from the terminator (it counts orders and lists every certificate it
issued, which Debian's Pebble cannot), `edgecert controller` and `edgecert terminator`. What must
hold: every certificate the CA issued reaches the Secret (a killed order is resumed from its
recorded key and URL, never paid again), no renewal is ordered before it is due, the Secret's
key always matches its certificate, the terminator never serves an older certificate than one
it served before nor one the Secret did not hold, and requests fail only while the terminator
is down.

Three Certificates of 30 s renewed 24 s before they expire (renewBefore) renew every ~6 s; the
controller and the terminator are killed in turn (each pair in a random order), 0.3-3 s apart,
each restarted at once. FAULT_SECONDS (default 20) is how long the kills go on (at least 4 of
each); FAULT_SEED (default 13) picks the kill points. docs/reliability.md records a run with
FAULT_SECONDS=180. Prints a FIGURES line (pytest -s).
"""
import base64
import datetime
import http.client
import json
import os
import random
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import apiserver_fixture
from acmeserver_fixture import AcmeServer
from controller_fixture import CRDS, Controller, K8sTerminator, apply, certificate, issuer, wait_until
from terminator_fixture import Upstream, free_port
from edgecert_helpers import https_request

pytestmark = pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")

FAULT_SECONDS = float(os.environ.get("FAULT_SECONDS", "20"))
# 30 s certificates renewed 24 s before they expire: a renewal every ~6 s, and a margin that a
# few failed attempts in a row (a validation meeting a terminator that is down, then the 2 s
# doubling backoff, then a killed controller) cannot exhaust. With 12 s certificates renewed at
# half life, such a run let one expire before its renewal and the restarted terminator, which
# refuses an expired pair, served its default (another name's) certificate.
VALIDITY, RENEW_BEFORE = 30, 24
NAMES = ["a.kills.test", "b.kills.test", "c.kills.test"]
MIN_KILLS = 4  # of each process


def cert_name(dns):
    return dns.split(".")[0] + "-tls"


def spki(obj):
    return obj.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def utc_ts(dt):
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


class SecretHistory:
    """Every version the test's Secrets took, from a watch on the API server (a poll could miss a
    version overwritten quickly): for each certificate (serial hex, notBefore, key matches,
    arrival time), and the order recorded in its pending-order Secret (<name>-next-key)."""

    def __init__(self, srv):
        self.srv = srv
        self.versions = {cert_name(n): [] for n in NAMES}
        self.pending = {}  # certificate name -> order URL recorded now (None: no order in flight)
        self.gaps = []  # watch errors (410 Expired...): versions may have been missed
        self.end_seen = threading.Event()  # the test's marker Secret "kills-end" arrived
        self.lock = threading.Lock()
        self.rv = srv.http("GET", "/api/v1/namespaces/default/secrets")[2]["metadata"]["resourceVersion"]
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        ctx = ssl.create_default_context(cafile=str(self.srv.ca))
        while not self.stop_ev.is_set():
            conn = http.client.HTTPSConnection("127.0.0.1", self.srv.port, context=ctx, timeout=10)
            try:
                # The server ends each watch after 2 s; the next one resumes from the last version.
                conn.request("GET", "/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=2"
                             "&resourceVersion=" + self.rv, headers={"Authorization": "Bearer " + self.srv.token})
                resp = conn.getresponse()
                for line in iter(resp.readline, b""):
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        self.gaps.append(ev["object"])
                        self.rv = self.srv.http("GET", "/api/v1/namespaces/default/secrets")[2]["metadata"][
                            "resourceVersion"]
                        break
                    self._record(ev["type"], ev["object"])
                    self.rv = ev["object"]["metadata"]["resourceVersion"]
            except (OSError, http.client.HTTPException) as e:
                if not self.stop_ev.is_set():
                    self.gaps.append(repr(e))
            finally:
                conn.close()

    def _record(self, typ, obj):
        name = obj["metadata"]["name"]
        with self.lock:
            if name == "kills-end":
                self.end_seen.set()
            elif name.endswith("-next-key") and name[:-len("-next-key")] in self.versions:
                ann = obj["metadata"].get("annotations") or {}
                self.pending[name[:-len("-next-key")]] = (
                    None if typ == "DELETED" else ann.get("edgecert.io/order-url"))
            elif name in self.versions and typ != "DELETED":
                data = obj.get("data") or {}
                crt = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
                key = serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), None)
                v = (format(crt.serial_number, "x"), utc_ts(crt.not_valid_before), spki(crt) == spki(key),
                     time.monotonic())
                if not self.versions[name] or self.versions[name][-1][0] != v[0]:
                    self.versions[name].append(v)

    def serials(self, name):
        with self.lock:
            return [v[0] for v in self.versions[name]]

    def latest(self, name):
        with self.lock:
            return self.versions[name][-1] if self.versions[name] else None

    def in_flight(self):
        with self.lock:
            return sorted(n for n, url in self.pending.items() if url)

    def stop(self):
        self.stop_ev.set()
        self.th.join(15)


class TerminatorState:
    """Whether the terminator is down (from just before its SIGKILL until its restart is ready),
    and how many times it went down: a request that overlaps a down period failed because of it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.down = False
        self.epoch = 0

    def set_down(self, down):
        with self.lock:
            self.down = down
            self.epoch += 1

    def snapshot(self):
        with self.lock:
            return self.down, self.epoch


def request(ctx, port, name):
    """One HTTPS request through the terminator to the upstream; returns the served leaf. TLS 1.3
    makes the server prove it holds the key of the certificate it sends (CertificateVerify), so a
    mismatched pair fails here."""
    data, der = https_request(port, name, ctx, path="/kills")
    if not data.startswith(b"HTTP/1.1 200"):
        raise AssertionError(f"{name}: {data[:80]!r}")
    return x509.load_der_x509_certificate(der)


class Client:
    """Requests round-robin over NAMES until stopped, recording what was served and counting
    failures apart: while the terminator was down (or went down during the request) and not."""

    def __init__(self, port, state):
        self.port, self.state = port, state
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE  # the test compares serials with the Secret and the CA
        self.served = {cert_name(n): [] for n in NAMES}  # (serial, notBefore, notAfter, time) in order
        self.ok, self.failed_down, self.failed_up = 0, 0, []
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        i = 0
        while not self.stop_ev.is_set():
            name = NAMES[i % len(NAMES)]
            i += 1
            down0, epoch0 = self.state.snapshot()
            try:
                leaf = request(self.ctx, self.port, name)
                self.ok += 1
                self.served[cert_name(name)].append((format(leaf.serial_number, "x"), utc_ts(leaf.not_valid_before),
                                                     utc_ts(leaf.not_valid_after), time.time()))
                self.stop_ev.wait(0.01)  # ~80 requests a second: load, without taking a core from the suite
            except (OSError, ssl.SSLError, AssertionError) as e:
                down1, epoch1 = self.state.snapshot()
                if down0 or down1 or epoch1 != epoch0:
                    self.failed_down += 1
                else:
                    self.failed_up.append(f"{name}: {e!r}")
                self.stop_ev.wait(0.05)  # a refused connection is instant: do not spin meanwhile

    def stop(self):
        self.stop_ev.set()
        self.th.join(15)


def test_sigkill_controller_and_terminator_during_renewals_under_load_loses_nothing(tmp_path):
    rnd = random.Random(int(os.environ.get("FAULT_SEED", "13")))
    d = str(tmp_path)
    tls_port, http_port = free_port(), free_port()
    acme = AcmeServer(tmp_path / "acme", validation="http", http_port=http_port, validity=VALIDITY,
                      ari_window_fraction=0.5, processing_polls=2).start()
    srv = apiserver_fixture.start(tmp_path / "api", tls=True, token="kills-t0k3n")
    up = Upstream()
    state = TerminatorState()
    term = ctl = history = client = None
    kills = {"controller": 0, "terminator": 0}
    in_flight_at_kill = 0
    try:
        srv.kubectl("apply", "-f", CRDS)
        apply(srv, issuer("acme", acme.dir_url, open(acme.ca_bundle).read()))
        history = SecretHistory(srv)
        term = K8sTerminator(srv, d, up.port, tls_port, http_port).wait_ready()
        ctl = Controller(srv, d, "--leader-elect=false", name="ctl").wait_ready()
        apply(srv, "\n".join(json.dumps(certificate(cert_name(n), [n], "acme", renewBefore=f"{RENEW_BEFORE}s"))
                              for n in NAMES))  # one kubectl call, a stream of three objects
        wait_until(lambda: all(history.latest(cert_name(n)) for n in NAMES), 60, interval=0.2,
                   what="the first certificates")
        client = Client(tls_port, state)
        wait_until(lambda: client.ok >= len(NAMES), 20, what="the client served")

        # Kills in pairs, the order of each pair random, at random points of the renewal cycles.
        end = time.monotonic() + FAULT_SECONDS
        while time.monotonic() < end or min(kills.values()) < MIN_KILLS:
            assert time.monotonic() < end + 3 * FAULT_SECONDS, f"restarts too slow: {kills} kills"
            pair = ["controller", "terminator"]
            rnd.shuffle(pair)
            for who in pair:
                time.sleep(rnd.uniform(0.3, 3.0))  # a random point, not a wait for a condition
                if who == "controller":
                    in_flight_at_kill += bool(history.in_flight())
                    ctl.kill()
                    ctl.stop()  # closes its log and checks it holds no key
                    ctl = Controller(srv, d, "--leader-elect=false", name="ctl").wait_ready()
                else:
                    state.set_down(True)
                    term.kill()
                    term.stop()
                    term = K8sTerminator(srv, d, up.port, tls_port, http_port).wait_ready()
                    state.set_down(False)
                kills[who] += 1
        t_last = time.monotonic()

        # Undisturbed, each certificate is renewed once more and that one is served.
        def renewed_and_served():
            for n in NAMES:
                v = history.latest(cert_name(n))
                s = client.served[cert_name(n)]
                if v[3] <= t_last or not s or s[-1][0] != v[0]:
                    return False
            return True
        wait_until(renewed_and_served, 45, interval=0.2, what="a renewal after the last kill, served")
        client.stop()
        assert ctl.stop() == 0
        assert term.stop() == 0
        # A marker Secret written after the controller stopped: once the watch has seen it, it has
        # seen every version before it.
        srv.kubectl("create", "secret", "generic", "kills-end")
        wait_until(history.end_seen.is_set, 15, what="the Secret history caught up")
        ca_certs = [c for c in acme.certs() if len(c["names"]) == 1 and c["names"][0] in NAMES]
        orders = {o["id"]: o for o in acme.orders()}
        pending_at_end = dict(history.pending)
        resumed = sum(open(os.path.join(d, f)).read().count("(resumed order)")
                      for f in os.listdir(d) if f.startswith("ctl-") and f.endswith(".log"))
    finally:
        for p in (client, history):
            if p:
                p.stop()
        for p in (ctl, term):
            if p:
                p.stop()
        up.close()
        srv.stop()
        acme.stop()

    figures = {"seconds of kills": round(t_last - (end - FAULT_SECONDS), 1), "kills": kills,
               "controller kills with an order in flight": in_flight_at_kill, "certificates issued": len(ca_certs),
               "orders created": sum(1 for o in orders.values() if o["identifiers"][0] in NAMES),
               "resumed orders": resumed, "requests ok": client.ok,
               "failed while the terminator was down": client.failed_down,
               "failed while it was up": len(client.failed_up)}
    print("FIGURES", json.dumps(figures))
    assert not history.gaps, history.gaps
    assert kills["controller"] >= MIN_KILLS and kills["terminator"] >= MIN_KILLS, figures
    assert resumed >= 1, ("no kill landed during an order: the test did not exercise resuming", figures)
    for n in NAMES:
        name = cert_name(n)
        certs = sorted((c for c in ca_certs if c["names"] == [n]), key=lambda c: c["not_before"])
        stored = history.serials(name)
        # Nothing paid for is lost: every certificate the CA issued reached the Secret, but the
        # one whose order was recorded in flight when the controller stopped (the next start
        # resumes it with its recorded key).
        for c in certs:
            serial = format(int(c["serial"], 16), "x")
            if serial not in stored:
                url = pending_at_end.get(name) or ""
                assert url.endswith("/order/" + c["order"]), (name, serial, "issued, not stored, not pending",
                                                              stored, figures)
        # No renewal ordered before it was due (renewBefore), and never two certificates for one
        # renewal.
        nbs = [utc_ts(datetime.datetime.fromisoformat(c["not_before"].replace("Z", "+00:00"))) for c in certs]
        early = [(a, b) for a, b in zip(nbs, nbs[1:]) if b - a < VALIDITY - RENEW_BEFORE - 1]
        assert not early, (name, early, figures)
        replaced = [orders[c["order"]]["replaces"] for c in certs if orders[c["order"]]["replaces"]]
        assert len(replaced) == len(set(replaced)), (name, replaced)
        # The Secret: its key always matched its certificate, and it never went back.
        versions = history.versions[name]
        assert all(v[2] for v in versions), (name, "tls.key does not match tls.crt")
        assert all(b[1] >= a[1] for a, b in zip(versions, versions[1:])), (name, versions)
        # Served: only what the Secret held, never older than something served before, never
        # after its notAfter.
        served = client.served[name]
        assert {s[0] for s in served} <= set(stored), (name, {s[0] for s in served} - set(stored))
        best, worse = 0.0, []
        for s in served:
            if s[1] < best:
                worse.append(s)
            best = max(best, s[1])
        assert not worse, (name, worse[:3])
        expired = [s for s in served if s[3] > s[2]]
        assert not expired, (name, "served after notAfter", expired[:3], figures)
    assert not client.failed_up, (client.failed_up[:5], figures)
