"""Issuer fallback on the Kubernetes path (docs/issuer-fallback.md), with real components: the in-repo
ACME server as the primary CA (it injects 500s and rateLimited answers and counts orders), real
Pebble as the fallback, both validating real http-01 answers from a separate `edgecert terminator`,
fakekube driven with kubectl, and a separate `edgecert controller`.

The primary answering 500 → after N attempts Pebble issues, the certificate is served and verifies
against Pebble's root, status/Events/metrics say so; the renewal goes back to the (healthy) primary.
rateLimited with a long Retry-After falls back at once, a short one is waited for. unauthorized and
rejectedIdentifier never reach the fallback. An unknown fallback issuer is BadConfig and the
certificate in service stays served. An order in flight on the primary is finished there after a
restart, not abandoned for the fallback."""
import base64
import datetime
import json
import re
import subprocess

import pytest

import apiserver_fixture
import pebble_fixture
from acmeserver_fixture import AcmeServer
from controller_fixture import (CRDS, Controller, K8sTerminator, apply, certificate, condition, get_json, issuer,
                                secret_cert, wait_until)
from terminator_fixture import Upstream, free_port, tls_probe

pytestmark = pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")

FALLBACK = [{"name": "pebble", "kind": "Issuer"}]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("fallback")
    tls_port, http_port = free_port(), free_port()
    acme = AcmeServer(d / "acme", validation="http", http_port=http_port)
    acme.start()
    pebble = pebble_fixture.Pebble(str(d / "pebble"), http_port=http_port, tls_port=tls_port, validity=3600)
    srv = apiserver_fixture.start(d / "api", tls=True, token="fallback-t0k3n")
    up = Upstream()
    procs = {}
    try:
        srv.kubectl("apply", "-f", CRDS)
        root = d / "pebble-root.pem"
        root.write_text(pebble.root_pem())
        acme_root = d / "acme-root.pem"
        acme_root.write_text(acme.root_pem())
        apply(srv, issuer("primary", acme.dir_url, open(acme.ca_bundle).read()))
        apply(srv, issuer("pebble", pebble.dir_url, open(pebble.ca_file).read()))
        procs["term"] = K8sTerminator(srv, str(d), up.port, tls_port, http_port).wait_ready()
        # Controller-wide policy: two CA-side failures, and a Retry-After over 30 s falls back.
        procs["ctl"] = start_controller(srv, d, "main")
        yield dict(srv=srv, acme=acme, pebble=pebble, procs=procs, root=str(root), acme_root=str(acme_root), dir=d)
    finally:
        for p in procs.values():
            p.stop()
        up.close()
        srv.stop()
        pebble.stop()
        acme.stop()


def start_controller(srv, d, name):
    return Controller(srv, str(d), "--leader-elect=false", "--fallback-after-attempts", "2",
                      "--fallback-max-retry-after", "30s", name=name).wait_ready()


def orders_for(acme, name):
    return [o for o in acme.orders() if name in json.dumps(o.get("identifiers", o))]


def pebble_orders(pebble):
    return pebble.log().count("POST /order-plz")


def cert_obj(srv, name):
    return get_json(srv, "certificate", name)


def patch_spec(srv, name, spec):
    srv.kubectl("patch", "certificate", name, "--type=merge", "-p", json.dumps({"spec": spec}))


def events(srv, kind, name):
    return srv.kubectl("describe", kind, name).stdout_text


def metric_lines(ctl, name):
    return [line for line in ctl.metrics().splitlines() if line.startswith(name + "{")]


def verify_served(env, name, serial, ca_file):
    port = env["procs"]["term"].tls_port
    wait_until(lambda: tls_probe(port, name)[0] == format(serial, "x"), 15, what=f"{name} serial {serial:x} served")
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
                        "-CAfile", ca_file, "-verify_return_error", "-verify_hostname", name],
                       input=b"", capture_output=True, timeout=15)
    out = r.stdout.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in out, out + r.stderr.decode(errors="replace")


def wait_issued_by(srv, name, issuer_name, timeout=60, newer_than=None):
    def done():
        s = get_json(srv, "secret", name)
        if not s or (s["metadata"].get("annotations") or {}).get("edgecert.io/issuer-name") != issuer_name:
            return None
        leaf = secret_cert(srv, name)
        return leaf if newer_than is None or leaf.serial_number != newer_than else None
    return wait_until(done, timeout, interval=0.2, what=f"Secret {name} signed by {issuer_name}")


def test_primary_500_falls_back_to_pebble_and_the_renewal_returns(env):
    srv, acme, ctl = env["srv"], env["acme"], env["procs"]["ctl"]
    acme.fail("/new-order", count=100000, status=500, type="serverInternal", retry_after=1, detail="database down")
    try:
        apply(srv, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": "shop", "namespace": "default",
                                 "annotations": {"edgecert.io/issuer": "primary",
                                                 "edgecert.io/fallback-issuers": "Issuer/pebble"}},
                    "spec": {"tls": [{"hosts": ["shop.fallback.test"], "secretName": "shop-tls"}]}})
        # The shim copied the annotation into spec.fallbackIssuerRefs.
        c = wait_until(lambda: cert_obj(srv, "shop-tls"), 15, what="Certificate shop-tls")
        assert c["spec"]["fallbackIssuerRefs"] == [{"name": "pebble", "kind": "Issuer", "group": "edgecert.io"}]
        leaf = wait_issued_by(srv, "shop-tls", "pebble")
    finally:
        acme.mgmt("POST", "clear-faults")
    verify_served(env, "shop.fallback.test", leaf.serial_number, env["root"])
    assert "Pebble" in leaf.issuer.rfc4514_string()
    assert orders_for(acme, "shop.fallback.test") == []  # every newOrder on the primary was a 500

    st = wait_until(lambda: (lambda c: c["status"] if (c["status"].get("issuerRef") or {}).get("name") == "pebble"
                             and condition(c, "Ready")["status"] == "True" else None)(cert_obj(srv, "shop-tls")),
                    15, what="status.issuerRef pebble, Ready")
    assert st["issuerRef"] == {"name": "pebble", "kind": "Issuer", "group": "edgecert.io"}
    assert "activeIssuerRef" not in st
    # The primary's record says why it was left, and keeps its own backoff for the next run.
    if "issuerFailures" in st:
        (rec,) = st["issuerFailures"]
        assert rec["name"] == "primary" and rec["exhausted"] and rec["lastFailureReason"] == "serverInternal"
    # Events on the Certificate and on the Ingress name both issuers and the reason.
    for kind, name in (("certificate", "shop-tls"), ("ingress", "shop")):
        text = wait_until(lambda: (lambda t: t if "FallbackIssuer" in t and "Issued" in t else None)(
            events(srv, kind, name)), 15, what=f"FallbackIssuer on {kind} {name}")
        flat = " ".join(text.split())
        assert re.search(r"Warning\s+FallbackIssuer", text), text
        assert "Issuer primary failed 2 times in a row (serverInternal); falling back to Issuer pebble" in flat, flat
        assert "by Issuer pebble (fallback for Issuer primary)" in flat, flat
    m = ctl.metrics()
    assert ('edgecert_certificate_issuer_fallbacks_total{from_issuer_kind="Issuer",from_issuer_name="primary",'
            'name="shop-tls",namespace="default",reason="serverInternal",to_issuer_kind="Issuer",'
            'to_issuer_name="pebble"} 1') in m, m
    assert ('edgecert_certificate_active_issuer{fallback="true",issuer_kind="Issuer",issuer_name="pebble",'
            'name="shop-tls",namespace="default",secret="default/shop-tls"} 1') in m

    # The next renewal (7 s after issuance, once the primary's own 4 s backoff is over) goes to the
    # primary, which is healthy again.
    patch_spec(srv, "shop-tls", {"renewBefore": "59m53s"})
    renewed = wait_issued_by(srv, "shop-tls", "primary", newer_than=leaf.serial_number)
    verify_served(env, "shop.fallback.test", renewed.serial_number, env["acme_root"])
    (order,) = orders_for(acme, "shop.fallback.test")
    assert order.get("replaces") is None  # a Pebble certID means nothing to this CA
    st = wait_until(lambda: (lambda s: s if (s.get("issuerRef") or {}).get("name") == "primary" else None)(
        cert_obj(srv, "shop-tls")["status"]), 15, what="status.issuerRef primary")
    assert "issuerFailures" not in st and "activeIssuerRef" not in st
    wait_until(lambda: any('issuer_name="primary"' in x and 'fallback="false"' in x and x.endswith(" 1")
                           for x in metric_lines(ctl, "edgecert_certificate_active_issuer")), 10,
               what="active issuer metric back on the primary")
    srv.kubectl("delete", "ingress", "shop")
    srv.kubectl("delete", "certificate", "shop-tls", "--ignore-not-found")


def test_rate_limited_long_falls_back_short_waits(env):
    srv, acme, pebble = env["srv"], env["acme"], env["pebble"]
    # Retry-After 1 h > --fallback-max-retry-after 30s: Pebble at once, no second try on the primary.
    acme.fail("/new-order", count=1, status=429, type="rateLimited", retry_after=3600,
              detail="too many certificates for this name")
    apply(srv, certificate("rl-long", ["rl-long.fallback.test"], "primary", fallbackIssuerRefs=FALLBACK))
    leaf = wait_issued_by(srv, "rl-long", "pebble", timeout=30)
    assert leaf is not None
    st = cert_obj(srv, "rl-long")["status"]
    flat = " ".join(events(srv, "certificate", "rl-long").split())
    assert "Issuer primary rate limited for 1h (Retry-After longer than 30s) (rateLimited); falling back to Issuer pebble" \
        in flat, flat
    (rec,) = st["issuerFailures"]  # the primary's hour is remembered, for the next renewal too
    nxt = datetime.datetime.fromisoformat(rec["nextAttemptTime"].replace("Z", "+00:00"))
    assert nxt - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(minutes=55)
    assert orders_for(acme, "rl-long.fallback.test") == []

    # Retry-After 2 s: waited for, then the primary issues; Pebble never sees an order.
    before = pebble_orders(pebble)
    acme.fail("/new-order", count=1, status=429, type="rateLimited", retry_after=2, detail="slow down")
    apply(srv, certificate("rl-short", ["rl-short.fallback.test"], "primary", fallbackIssuerRefs=FALLBACK))
    c = wait_until(lambda: (lambda c: c if (condition(c, "Issuing") or {}).get("reason") == "RateLimited" else None)(
        cert_obj(srv, "rl-short")), 20, what="Issuing=False RateLimited")
    assert c["status"]["activeIssuerRef"]["name"] == "primary"
    leaf = wait_issued_by(srv, "rl-short", "primary", timeout=30)
    assert leaf is not None
    assert len(orders_for(acme, "rl-short.fallback.test")) == 1
    assert pebble_orders(pebble) == before
    assert "FallbackIssuer" not in events(srv, "certificate", "rl-short")
    srv.kubectl("delete", "certificate", "rl-long")


def test_unauthorized_and_rejected_identifier_do_not_fall_back(env):
    srv, acme, pebble = env["srv"], env["acme"], env["pebble"]
    # A CA-side failure would fall back at the first one, so one failure that does not proves it.
    policy = {"afterAttempts": 1}
    before = pebble_orders(pebble)
    # rejectedIdentifier, for real: the primary refuses single-label names.
    apply(srv, certificate("rej", ["intranet"], "primary", fallbackIssuerRefs=FALLBACK, fallbackPolicy=policy))
    # unauthorized on every newOrder for the other certificate.
    c = wait_until(lambda: (lambda c: c if c.get("status", {}).get("failedIssuanceAttempts", 0) >= 1 else None)(
        cert_obj(srv, "rej")), 30, what="rej failed")
    assert condition(c, "Ready")["reason"] == "Failed"
    assert "rejectedIdentifier" in condition(c, "Ready")["message"]
    assert c["status"]["activeIssuerRef"]["name"] == "primary"  # the next attempt too
    (rec,) = c["status"]["issuerFailures"]
    assert rec["lastFailureReason"] == "rejectedIdentifier" and "exhausted" not in rec and "caFailures" not in rec

    acme.fail("/new-order", count=100000, status=403, type="unauthorized", detail="account is not allowed to order")
    try:
        apply(srv, certificate("unauth", ["unauth.fallback.test"], "primary", fallbackIssuerRefs=FALLBACK,
                               fallbackPolicy=policy))
        c = wait_until(lambda: (lambda c: c if c.get("status", {}).get("failedIssuanceAttempts", 0) >= 1 else None)(
            cert_obj(srv, "unauth")), 30, what="unauth failed")
    finally:
        acme.mgmt("POST", "clear-faults")
    assert condition(c, "Issuing")["reason"] == "Failed"
    assert "unauthorized" in condition(c, "Issuing")["message"]
    assert c["status"]["activeIssuerRef"]["name"] == "primary"
    text = events(srv, "certificate", "unauth")
    assert re.search(r"Warning\s+Failed", text) and "FallbackIssuer" not in text, text
    for name in ("rej", "unauth"):
        assert get_json(srv, "secret", name) is None
        assert "FallbackIssuer" not in events(srv, "certificate", name)
    assert pebble_orders(pebble) == before  # no order on the fallback
    srv.kubectl("delete", "certificate", "rej", "unauth")


def test_unknown_fallback_issuer_is_bad_config_and_nothing_is_lost(env):
    srv = env["srv"]
    apply(srv, certificate("keep", ["keep.fallback.test"], "primary"))
    leaf = wait_issued_by(srv, "keep", "primary", timeout=30)
    patch_spec(srv, "keep", {"fallbackIssuerRefs": [{"name": "zerossl", "kind": "ClusterIssuer"}]})
    c = wait_until(lambda: (lambda c: c if (condition(c, "Ready") or {}).get("reason") == "BadConfig" else None)(
        cert_obj(srv, "keep")), 15, what="Ready=False BadConfig")
    assert "spec.fallbackIssuerRefs[0]: ClusterIssuer zerossl not found" in condition(c, "Ready")["message"]
    text = wait_until(lambda: (lambda t: t if "BadConfig" in t else None)(events(srv, "certificate", "keep")), 10,
                      what="BadConfig Event")
    assert re.search(r"Warning\s+BadConfig", text)
    # The Secret and what is served are untouched.
    assert secret_cert(srv, "keep").serial_number == leaf.serial_number
    assert tls_probe(env["procs"]["term"].tls_port, "keep.fallback.test")[0] == format(leaf.serial_number, "x")
    # A selfSigned issuer as a fallback: fallback is between ACME issuers only, said the same way.
    apply(srv, {"apiVersion": "edgecert.io/v1alpha1", "kind": "Issuer",
                "metadata": {"name": "internal-ss", "namespace": "default"}, "spec": {"selfSigned": {}}})
    patch_spec(srv, "keep", {"fallbackIssuerRefs": [{"name": "internal-ss", "kind": "Issuer"}]})
    needle = "spec.fallbackIssuerRefs[0]: Issuer internal-ss is a selfSigned issuer; only ACME issuers can be fallbacks"
    c = wait_until(lambda: (lambda c: c if needle in (condition(c, "Ready") or {}).get("message", "") else None)(
        cert_obj(srv, "keep")), 15, what="Ready=False BadConfig for a selfSigned fallback")
    assert condition(c, "Ready")["reason"] == "BadConfig"
    wait_until(lambda: needle in " ".join(events(srv, "certificate", "keep").split()), 10,
               what="BadConfig Event for a selfSigned fallback")
    assert secret_cert(srv, "keep").serial_number == leaf.serial_number
    srv.kubectl("delete", "issuer", "internal-ss")
    # A bad annotation on an Ingress: BadConfig on the Ingress, no Certificate.
    apply(srv, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "typo", "namespace": "default",
                             "annotations": {"edgecert.io/issuer": "primary", "edgecert.io/fallback-issuers": "pebble"}},
                "spec": {"tls": [{"hosts": ["typo.fallback.test"], "secretName": "typo-tls"}]}})
    text = wait_until(lambda: (lambda t: t if "BadConfig" in t else None)(events(srv, "ingress", "typo")), 15,
                      what="BadConfig on the Ingress")
    assert "must be Issuer/<name> or ClusterIssuer/<name>" in " ".join(text.split())
    assert cert_obj(srv, "typo-tls") is None
    srv.kubectl("delete", "ingress", "typo")
    srv.kubectl("delete", "certificate", "keep")


def test_order_in_flight_on_the_primary_is_finished_there_after_a_restart(env):
    srv, acme, pebble, procs = env["srv"], env["acme"], env["pebble"], env["procs"]
    before = pebble_orders(pebble)
    acme.fail("/finalize", count=100000, status=503, retry_after=1)
    apply(srv, certificate("pin", ["pin.fallback.test"], "primary", fallbackIssuerRefs=FALLBACK,
                           fallbackPolicy={"afterAttempts": 1}))
    # The rule fires at the first 503, but the primary's order is in flight: it is not abandoned.
    c = wait_until(lambda: (lambda c: c if any(r.get("exhausted") for r in c.get("status", {}).get("issuerFailures", []))
                            else None)(cert_obj(srv, "pin")), 30, what="primary exhausted")
    p = get_json(srv, "secret", "pin-next-key")
    assert p["metadata"]["annotations"]["edgecert.io/order-issuer"] == "Issuer/primary"
    key_pem = base64.b64decode(p["data"]["tls.key"])
    assert c["status"]["activeIssuerRef"]["name"] == "primary"
    procs["ctl"].kill()
    procs["ctl"].stop()
    acme.mgmt("POST", "clear-faults")
    procs["ctl"] = start_controller(srv, env["dir"], "restarted")
    leaf = wait_issued_by(srv, "pin", "primary", timeout=40)
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key(key_pem, None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    assert leaf.public_key().public_bytes(serialization.Encoding.PEM, pub) == \
        key.public_key().public_bytes(serialization.Encoding.PEM, pub)  # the order's key: the same order
    assert len(orders_for(acme, "pin.fallback.test")) == 1
    assert pebble_orders(pebble) == before
    assert "FallbackIssuer" not in events(srv, "certificate", "pin")
