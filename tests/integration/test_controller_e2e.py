"""End to end on the Kubernetes path with real components: fakekube (kubectl applies the CRDs, an
Issuer, an annotated Ingress, a Gateway), real Pebble validating real http-01 and tls-alpn-01
answers served by a separate `edgecert terminator` process that reads Challenges and Secrets from
the API, and a separate `edgecert controller` process. Certificates are 6 minutes long (Pebble's
certificateValidityPeriod), so renewal happens during the test."""
import base64
import subprocess
import threading
import time

import pytest

import apiserver_fixture
import monitoring_names
import pebble_fixture
from controller_fixture import (CRDS, Controller, K8sTerminator, apply, certificate, condition, get_json, issuer,
                                secret_cert, wait_until)
from terminator_fixture import Upstream, free_port, tls_probe

pytestmark = pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    tls_port, http_port = free_port(), free_port()
    pebble = pebble_fixture.Pebble(str(d / "pebble"), http_port=http_port, tls_port=tls_port, validity=360)
    srv = apiserver_fixture.start(d / "api", tls=True, token="e2e-t0k3n")
    up = Upstream()
    procs = []
    try:
        srv.kubectl("apply", "-f", CRDS)
        root = d / "root.pem"
        root.write_text(pebble.root_pem())
        ca_pem = open(pebble.ca_file).read()
        apply(srv, issuer("pebble", pebble.dir_url, ca_pem))
        apply(srv, issuer("pebble-alpn", pebble.dir_url, ca_pem, solvers=[{"tlsAlpn01": {}}]))
        term = K8sTerminator(srv, str(d), up.port, tls_port, http_port).wait_ready()
        procs.append(term)
        ctl = Controller(srv, str(d), "--leader-elect=false").wait_ready()
        procs.append(ctl)
        yield dict(srv=srv, pebble=pebble, term=term, ctl=ctl, root=str(root), dir=d)
    finally:
        for p in procs:
            p.stop()
        up.close()
        srv.stop()
        pebble.stop()


def verify_served(env, name, serial=None):
    """openssl s_client against the terminator: the chain verifies against this Pebble's root."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{env['term'].tls_port}", "-servername", name,
                        "-CAfile", env["root"], "-verify_return_error", "-verify_hostname", name],
                       input=b"", capture_output=True, timeout=15)
    out = r.stdout.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in out, out + r.stderr.decode(errors="replace")
    if serial is not None:
        assert tls_probe(env["term"].tls_port, name)[0] == format(serial, "x")


def wait_secret(env, name, timeout=90, newer_than=None):
    def ready():
        c = secret_cert(env["srv"], name)
        if c is None:
            return None
        if newer_than is not None and c.serial_number == newer_than:
            return None
        return c
    try:
        return wait_until(ready, timeout, interval=0.2, what=f"Secret {name}")
    except AssertionError:
        print(env["ctl"].logs()[-6000:])
        raise


def test_ingress_to_served_certificate(env):
    srv = env["srv"]
    apply(srv, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "namespace": "default", "annotations": {"edgecert.io/issuer": "pebble"}},
                "spec": {"tls": [{"hosts": ["web.e2e.test", "www.e2e.test"], "secretName": "web-tls"}],
                         "rules": [{"host": "web.e2e.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                   "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    leaf = wait_secret(env, "web-tls")
    sans = sorted(leaf.extensions.get_extension_for_class(
        __import__("cryptography").x509.SubjectAlternativeName).value.get_values_for_type(
        __import__("cryptography").x509.DNSName))
    assert sans == ["web.e2e.test", "www.e2e.test"]
    # The terminator serves it, and it verifies against Pebble's root.
    wait_until(lambda: tls_probe(env["term"].tls_port, "www.e2e.test")[0] == format(leaf.serial_number, "x"), 10,
               what="served serial")
    verify_served(env, "web.e2e.test", leaf.serial_number)
    verify_served(env, "www.e2e.test", leaf.serial_number)

    s = get_json(srv, "secret", "web-tls")
    assert s["type"] == "kubernetes.io/tls"
    assert s["metadata"]["labels"]["edgecert.io/managed"] == "true"
    ann = s["metadata"]["annotations"]
    assert ann["edgecert.io/certificate-name"] == "web-tls"
    assert ann["edgecert.io/issuer-name"] == "pebble" and ann["edgecert.io/issuer-kind"] == "Issuer"
    assert ann["edgecert.io/alt-names"] == "web.e2e.test,www.e2e.test"
    # tls.crt is leaf + intermediate, no root.
    assert base64.b64decode(s["data"]["tls.crt"]).count(b"BEGIN CERTIFICATE") == 2
    # The order is finished: no pending-order Secret left, no Challenge objects left.
    assert get_json(srv, "secret", "web-tls-next-key") is None
    wait_until(lambda: get_json(srv, "challenges")["items"] == [], 10, what="Challenges cleaned up")

    cert = wait_until(lambda: (lambda c: c if (condition(c, "Ready") or {}).get("status") == "True" else None)(
        get_json(srv, "certificate", "web-tls")), 15, what="Ready=True")
    st = cert["status"]
    assert st["notAfter"] and st["renewalTime"] and st["revision"] == 1
    desc = wait_until(lambda: (lambda t: t if "Issued" in t else None)(
        srv.kubectl("describe", "ingress", "web").stdout_text), 15, what="Issued event on the Ingress")
    assert "CreateCertificate" in desc
    assert "Issuing" in srv.kubectl("describe", "certificate", "web-tls").stdout_text

    # The Issuers registered their ACME account and say so (kubectl get issuers: READY True).
    iss = wait_until(lambda: (lambda i: i if (condition(i, "Ready") or {}).get("status") == "True" else None)(
        get_json(srv, "issuer", "pebble")), 15, what="Issuer Ready")
    assert iss["status"]["acme"]["uri"].startswith("https://127.0.0.1:")
    assert condition(iss, "Ready")["reason"] == "ACMEAccountRegistered"
    assert "True" in srv.kubectl("get", "issuers").stdout_text
    acct = get_json(srv, "secret", "pebble-account")
    assert "tls.key" in acct["data"]

    m = env["ctl"].metrics()
    assert 'edgecert_certificate_expiration_timestamp_seconds{issuer_kind="Issuer",issuer_name="pebble",name="web-tls",namespace="default",secret="default/web-tls"}' in m
    assert 'edgecert_certificate_ready_status{condition="True",issuer_kind="Issuer",issuer_name="pebble",name="web-tls",namespace="default",secret="default/web-tls"} 1' in m
    assert 'edgecert_acme_requests_total{resource="newOrder",status="201"}' in m
    tm = env["term"].metrics()
    assert 'edgecert_acme_challenges_served_total{type="http-01"}' in tm
    assert 'edgecert_acme_challenges_served_total{type="http-01"} 0' not in tm


def test_gateway_with_two_https_listeners(env):
    srv = env["srv"]
    apply(srv, {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "gw", "namespace": "default", "annotations": {"edgecert.io/issuer": "pebble"}},
                "spec": {"gatewayClassName": "edge", "listeners": [
                    {"name": "https-a", "hostname": "a.gw.e2e.test", "port": 443, "protocol": "HTTPS",
                     "tls": {"mode": "Terminate", "certificateRefs": [{"name": "gw-a-tls"}]}},
                    {"name": "https-b", "hostname": "b.gw.e2e.test", "port": 443, "protocol": "HTTPS",
                     "tls": {"mode": "Terminate", "certificateRefs": [{"name": "gw-b-tls"}]}}]}})
    a = wait_secret(env, "gw-a-tls")
    b = wait_secret(env, "gw-b-tls")
    for name, leaf in (("a.gw.e2e.test", a), ("b.gw.e2e.test", b)):
        wait_until(lambda: tls_probe(env["term"].tls_port, name)[0] == format(leaf.serial_number, "x"), 10,
                   what=f"{name} served")
        verify_served(env, name, leaf.serial_number)
    desc = wait_until(lambda: (lambda t: t if t.count("Issued") >= 1 else None)(
        srv.kubectl("describe", "gateway", "gw").stdout_text), 15, what="Issued events on the Gateway")
    assert "gw-a-tls" in desc and "gw-b-tls" in desc


def test_tls_alpn_01_through_the_terminator(env):
    srv = env["srv"]
    before = env["term"].metrics()
    apply(srv, certificate("alpn-tls", ["alpn.e2e.test"], "pebble-alpn"))
    leaf = wait_secret(env, "alpn-tls")
    wait_until(lambda: tls_probe(env["term"].tls_port, "alpn.e2e.test")[0] == format(leaf.serial_number, "x"), 10,
               what="served")
    verify_served(env, "alpn.e2e.test", leaf.serial_number)
    tm = env["term"].metrics()
    line = [l for l in tm.splitlines() if l.startswith('edgecert_acme_challenges_served_total{type="tls-alpn-01"}')]
    assert line and float(line[0].split()[-1]) >= 1, before


def test_ip_address_certificate(env):
    """RFC 8738 through the Kubernetes path: a Certificate with ipAddresses, validated over tls-alpn-01
    by Pebble connecting to 127.0.0.1 with the reverse-DNS name in SNI, answered by the separate
    terminator from the Challenge object; the Secret carries the IP SAN and edgecert.io/ip-sans, and
    a client that sends no SNI (https://127.0.0.1/) gets it. An address in dnsNames is BadConfig."""
    srv = env["srv"]
    ipaddress = __import__("ipaddress")
    x509 = __import__("cryptography").x509
    apply(srv, certificate("edge-ip-tls", ["edge.e2e.test"], "pebble-alpn", ipAddresses=["127.0.0.1"]))
    leaf = wait_secret(env, "edge-ip-tls")
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["edge.e2e.test"]
    ann = get_json(srv, "secret", "edge-ip-tls")["metadata"]["annotations"]
    assert ann["edgecert.io/ip-sans"] == "127.0.0.1" and ann["edgecert.io/alt-names"] == "edge.e2e.test"
    wait_until(lambda: tls_probe(env["term"].tls_port, None)[0] == format(leaf.serial_number, "x"), 10,
               what="the IP certificate served without SNI")
    r = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", env["root"], "-o", "/dev/null", "-w",
                        "%{ssl_verify_result}", f"https://127.0.0.1:{env['term'].tls_port}/"],
                       capture_output=True, text=True, timeout=15)
    assert r.stdout == "0", r.stderr  # verified against Pebble's root, iPAddress SAN matched
    cert = wait_until(lambda: (lambda c: c if (condition(c, "Ready") or {}).get("status") == "True" else None)(
        get_json(srv, "certificate", "edge-ip-tls")), 15, what="Ready=True")
    assert cert["status"]["notAfter"]

    # Bad input on a Certificate in service loses nothing: the address also put in dnsNames is
    # BadConfig with a Warning, while the Secret and what the terminator serves stay as they were;
    # put right, it is Ready again with the same certificate (no new order).
    apply(srv, certificate("edge-ip-tls", ["edge.e2e.test", "127.0.0.1"], "pebble-alpn", ipAddresses=["127.0.0.1"]))
    bad = wait_until(lambda: (lambda c: c if (condition(c, "Ready") or {}).get("reason") == "BadConfig" else None)(
        get_json(srv, "certificate", "edge-ip-tls")), 15, what="BadConfig for the Certificate in service")
    assert "'127.0.0.1' is an IP address: list it in spec.ipAddresses" in condition(bad, "Ready")["message"]
    wait_until(lambda: "list it in spec.ipAddresses" in srv.kubectl("describe", "certificate", "edge-ip-tls").stdout_text,
               15, what="Warning BadConfig event on edge-ip-tls")
    assert secret_cert(srv, "edge-ip-tls").serial_number == leaf.serial_number
    assert tls_probe(env["term"].tls_port, None)[0] == format(leaf.serial_number, "x")
    apply(srv, certificate("edge-ip-tls", ["edge.e2e.test"], "pebble-alpn", ipAddresses=["127.0.0.1"]))
    wait_until(lambda: (condition(get_json(srv, "certificate", "edge-ip-tls"), "Ready") or {}).get("status") == "True",
               15, what="Ready=True again")
    assert secret_cert(srv, "edge-ip-tls").serial_number == leaf.serial_number

    apply(srv, certificate("bad-ip-tls", ["good.e2e.test", "10.0.0.1"], "pebble"))
    bad = wait_until(lambda: (lambda c: c if (condition(c, "Ready") or {}).get("reason") == "BadConfig" else None)(
        get_json(srv, "certificate", "bad-ip-tls")), 15, what="BadConfig for an address in dnsNames")
    assert "'10.0.0.1' is an IP address: list it in spec.ipAddresses" in condition(bad, "Ready")["message"]
    wait_until(lambda: "list it in spec.ipAddresses" in srv.kubectl("describe", "certificate", "bad-ip-tls").stdout_text,
               15, what="Warning BadConfig event")
    assert get_json(srv, "secret", "bad-ip-tls") is None


def test_renewal_under_load_moves_not_after_forward(env):
    """6-minute certificates renewed at 15% of their lifetime left... several times, while a client
    keeps making requests through the terminator: zero failures, notAfter moves forward each time."""
    srv = env["srv"]
    apply(srv, certificate("renew-tls", ["renew.e2e.test"], "pebble", renewBeforePercentage=85))
    first = wait_secret(env, "renew-tls")
    port = env["term"].tls_port
    wait_until(lambda: tls_probe(port, "renew.e2e.test")[0] == format(first.serial_number, "x"), 10, what="served")

    stop = threading.Event()
    stats = {"ok": 0, "fail": 0, "errors": [], "served": []}

    def client():
        while not stop.is_set():
            try:
                serial, _, _, _ = tls_probe(port, "renew.e2e.test")
                if not stats["served"] or stats["served"][-1] != serial:
                    stats["served"].append(serial)
                stats["ok"] += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                stats["fail"] += 1
                stats["errors"].append(repr(e))
            time.sleep(0.05)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    try:
        leaves = [first]
        for _ in range(2):
            leaves.append(wait_secret(env, "renew-tls", timeout=120, newer_than=leaves[-1].serial_number))
            nxt = leaves[-1]
            wait_until(lambda: format(nxt.serial_number, "x") in stats["served"], 10, what="renewed serial served")
    finally:
        stop.set()
        t.join(10)
    assert stats["fail"] == 0, stats["errors"][:5]
    assert stats["ok"] > 100
    afters = [l.not_valid_after for l in leaves]
    assert afters[0] < afters[1] < afters[2], afters
    # Rotation policy Always: a new key each time.
    keys = {l.public_key().public_numbers().x for l in leaves}
    assert len(keys) == 3
    # The status follows the Secret (written right after it).
    wait_until(lambda: get_json(srv, "certificate", "renew-tls")["status"].get("revision", 0) >= 3, 40,
               what="status.revision 3")
    events = srv.kubectl("describe", "certificate", "renew-tls").stdout_text
    assert "Renewed" in events


def test_monitoring_names_are_exposed(env):
    """deploy/monitoring's alert rules and dashboard use only metrics and labels that this
    controller and terminator really expose (after the issuances above, so the per-certificate
    series exist), and the stale-certificate join works on real series: every stored
    certificate's `secret` label is the `name` its terminator serves it under, with the same
    notAfter once it is served."""
    ctl, term = env["ctl"].metrics(), env["term"].metrics()
    assert monitoring_names.problems([ctl, term]) == []

    def joined():
        ctl, term = env["ctl"].metrics(), env["term"].metrics()
        stored = {l["secret"]: v for l, v in monitoring_names.series(
            ctl, "edgecert_certificate_expiration_timestamp_seconds")}
        served = {l["name"]: v for l, v in monitoring_names.series(
            term, "edgecert_served_certificate_not_after_timestamp_seconds")}
        if "default/web-tls" not in stored or any(served.get(s) != v for s, v in stored.items()):
            return None
        return stored
    stored = wait_until(joined, 20, what="served notAfter == stored notAfter for every Secret")
    assert {"default/web-tls", "default/gw-a-tls", "default/alpn-tls"} <= set(stored)
