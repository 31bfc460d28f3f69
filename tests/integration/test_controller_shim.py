"""`edgecert controller` against the in-repo API server (fakekube): the shim turns annotated
Ingresses and Gateways into edgecert.io Certificates, and leader election picks one replica.

Objects are written with kubectl (the real client users have) and read back over HTTP. Each
test uses its own namespace on one shared server and controller; the leader-election and
"no Gateway API" tests start servers of their own.
"""
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import apiserver_fixture as F

BIN = os.environ.get("EDGECERT_BIN") or str(F.REPO / "build" / "edgecert")
CRDS = F.REPO / "deploy" / "crds"
CERTS = "/apis/edgecert.io/v1alpha1/namespaces/%s/certificates"
# Short leases so failover fits in the test's time budget (client-go ratios kept).
LEASE = ["--leader-election-lease-duration", "2s", "--leader-election-renew-deadline", "1500ms",
         "--leader-election-retry-period", "250ms"]

pytestmark = pytest.mark.skipif(F.kubectl_path() is None, reason="kubectl is not installed")


def wait_for(pred, timeout=15, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


class Controller:
    """One `edgecert controller` process; stderr goes to a file; stopped by PID."""

    def __init__(self, srv, workdir, name, args=(), env=None):
        self.log_path = Path(workdir) / ("controller-%s-%d.log" % (name, time.monotonic_ns()))
        self.log = open(self.log_path, "wb")
        e = dict(os.environ, POD_NAME=name, EDGECERT_LOG_LEVEL="info")
        e.pop("POD_NAMESPACE", None)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [BIN, "controller", "--kubeconfig", str(srv.kubeconfig), "--admin", "127.0.0.1:0",
             *args], stdout=subprocess.DEVNULL, stderr=self.log, env=e)
        self.name = name
        m = wait_for(lambda: re.search(r"admin server on port (\d+)", self.logs()) or
                     self._died(), 15, "the admin server of " + name)
        self.admin_port = int(m.group(1))

    def _died(self):
        if self.proc.poll() is not None:
            raise AssertionError("controller %s exited %d:\n%s" % (self.name, self.proc.returncode,
                                                                   self.logs()))
        return None

    def logs(self):
        return self.log_path.read_text(errors="replace")

    def get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name, **labels):
        _, text = self.get("/metrics")
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("%s{%s} " % (name, want)) or (not labels and
                                                            line.startswith(name + " ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("controller %s did not stop on %s:\n%s" % (
                    self.name, sig, self.logs()))
        self.log.close()
        return self.proc.returncode


def apply(srv, doc):
    srv.kubectl("apply", "-f", "-", input=json.dumps(doc))


def certs(srv, ns):
    st, _, body = srv.http("GET", CERTS % ns)
    assert st == 200, body
    return {c["metadata"]["name"]: c for c in body["items"]}


def events(srv, ns, name=None):
    st, _, body = srv.http("GET", "/api/v1/namespaces/%s/events" % ns)
    assert st == 200, body
    return [e for e in body["items"] if name is None or e["involvedObject"]["name"] == name]


def has_event(srv, ns, name, reason, text=""):
    return any(e["reason"] == reason and text in e["message"] for e in events(srv, ns, name))


def namespace(srv, ns):
    srv.kubectl("create", "namespace", ns)


def ingress(name, ns, tls, annotations=None):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns,
                         "annotations": annotations or {"edgecert.io/issuer": "pebble"}},
            "spec": {"tls": [{"hosts": h, "secretName": s} for s, h in tls],
                     "rules": [{"host": tls[0][1][0], "http": {"paths": [{
                         "path": "/", "pathType": "Prefix", "backend": {"service": {
                             "name": "web", "port": {"number": 80}}}}]}}]}}


def uid(srv, path):
    st, _, body = srv.http("GET", path)
    assert st == 200, body
    return body["metadata"]["uid"]


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    d = tmp_path_factory.mktemp("shim")
    srv = F.start(d)
    srv.kubectl("apply", "-f", str(CRDS))
    ctl = Controller(srv, d, "ctl-main", LEASE + ["--workers", "2"])
    yield srv, ctl
    rc = ctl.stop()
    srv.stop()
    assert rc == 0, ctl.logs()
    assert "PRIVATE KEY" not in ctl.logs()


def test_ready_and_holds_the_lease(kube):
    srv, ctl = kube
    wait_for(lambda: ctl.get("/readyz")[0] == 200, 10, "/readyz")
    assert ctl.get("/healthz")[0] == 200
    holder = wait_for(lambda: srv.http("GET", "/apis/coordination.k8s.io/v1/namespaces/default/"
                                       "leases/edgecert-controller")[2].get("spec", {})
                      .get("holderIdentity"), 10, "the Lease")
    assert holder.startswith("ctl-main_")


def test_ingress_tls_entries_become_certificates(kube):
    srv, ctl = kube
    ns = "shop"
    namespace(srv, ns)
    apply(srv, ingress("web", ns, [("www-tls", ["www.shop.test", "Shop.test"]),
                                   ("api-tls", ["api.shop.test"])]))
    got = wait_for(lambda: (lambda c: c if len(c) == 2 else None)(certs(srv, ns)), 15,
                   "two Certificates")
    ing_uid = uid(srv, "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web")
    www, api = got["www-tls"], got["api-tls"]
    assert www["spec"]["dnsNames"] == ["shop.test", "www.shop.test"]  # lower-cased, sorted
    assert www["spec"]["secretName"] == "www-tls"
    assert www["spec"]["issuerRef"] == {"name": "pebble", "kind": "Issuer",
                                        "group": "edgecert.io"}
    assert api["spec"]["dnsNames"] == ["api.shop.test"]
    for c in (www, api):
        assert c["metadata"]["ownerReferences"] == [{
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web",
            "uid": ing_uid, "controller": True, "blockOwnerDeletion": True}]
        assert c["metadata"]["labels"]["edgecert.io/source-kind"] == "Ingress"
        assert c["metadata"]["labels"]["edgecert.io/source-uid"] == ing_uid
    wait_for(lambda: has_event(srv, ns, "web", "CreateCertificate", "shop/www-tls"), 10,
             "the CreateCertificate Event")

    # Idempotent: a change to the Ingress that does not change what it wants writes nothing.
    before = ctl.metric("edgecert_controller_reconcile_total", controller="shim",
                        result="success")
    srv.requests(clear=True)
    srv.kubectl("label", "ingress", "web", "-n", ns, "touched=yes")
    wait_for(lambda: ctl.metric("edgecert_controller_reconcile_total", controller="shim",
                                result="success") > before, 10, "a reconcile of the label change")
    # (status writes are the issuing CertificateController's, which runs in the same process)
    writes = [r for r in srv.requests() if "/certificates" in r["path"] and r["method"] != "GET"
              and not r["path"].endswith("/status")]
    assert writes == [], writes

    # Drop one tls entry: its Certificate goes, the other stays untouched.
    srv.requests(clear=True)
    apply(srv, ingress("web", ns, [("www-tls", ["www.shop.test", "Shop.test"])]))
    wait_for(lambda: "api-tls" not in certs(srv, ns), 10, "api-tls deleted")
    # (its resourceVersion may move: the issuing controller writes its status)
    assert certs(srv, ns)["www-tls"]["metadata"]["uid"] == www["metadata"]["uid"]
    touched = [r for r in srv.requests() if r["path"].endswith("/certificates/www-tls") and
               r["method"] != "GET"]
    assert touched == [], touched
    wait_for(lambda: has_event(srv, ns, "web", "DeleteCertificate", "shop/api-tls"), 10,
             "the DeleteCertificate Event")

    # A hostname change updates the Certificate in place (same object, new spec).
    apply(srv, ingress("web", ns, [("www-tls", ["www.shop.test", "new.shop.test"])]))
    wait_for(lambda: certs(srv, ns)["www-tls"]["spec"]["dnsNames"] ==
             ["new.shop.test", "www.shop.test"], 10, "dnsNames updated")
    assert certs(srv, ns)["www-tls"]["metadata"]["uid"] == www["metadata"]["uid"]
    wait_for(lambda: has_event(srv, ns, "web", "UpdateCertificate"), 10, "UpdateCertificate")

    # An IP address among tls[].hosts becomes spec.ipAddresses (an RFC 8738 identifier, canonical
    # text), as cert-manager's ingress-shim does; dropping it removes the field again.
    apply(srv, ingress("web", ns, [("www-tls", ["www.shop.test", "new.shop.test", "2001:DB8::0:50"])]))
    ip = wait_for(lambda: (lambda c: c if c["spec"].get("ipAddresses") == ["2001:db8::50"] else None)(
        certs(srv, ns)["www-tls"]), 10, "spec.ipAddresses from the Ingress")
    assert ip["spec"]["dnsNames"] == ["new.shop.test", "www.shop.test"]
    apply(srv, ingress("web", ns, [("www-tls", ["www.shop.test", "new.shop.test"])]))
    wait_for(lambda: "ipAddresses" not in certs(srv, ns)["www-tls"]["spec"], 10, "ipAddresses removed")

    # Someone else's Certificate of the same name is left alone, with a Warning.
    apply(srv, {"apiVersion": "edgecert.io/v1alpha1", "kind": "Certificate",
                "metadata": {"name": "mine-tls", "namespace": ns},
                "spec": {"secretName": "mine-tls", "dnsNames": ["mine.test"],
                         "issuerRef": {"name": "other", "kind": "ClusterIssuer"}}})
    apply(srv, ingress("web", ns, [("www-tls", ["www.shop.test", "new.shop.test"]),
                                   ("mine-tls", ["taken.shop.test"])]))
    wait_for(lambda: has_event(srv, ns, "web", "Skipped", "mine-tls exists"), 10,
             "the Warning about a Certificate the Ingress does not own")
    assert certs(srv, ns)["mine-tls"]["spec"]["dnsNames"] == ["mine.test"]

    # Deleting the Ingress deletes what it made (fakekube has no garbage collector), not more.
    srv.kubectl("delete", "ingress", "web", "-n", ns)
    wait_for(lambda: set(certs(srv, ns)) == {"mine-tls"}, 10, "the Ingress's Certificates gone")


def test_bad_annotation_warns_once_without_retry_storm(kube):
    srv, ctl = kube
    ns = "bad"
    namespace(srv, ns)
    apply(srv, ingress("broken", ns, [("b-tls", ["b.bad.test"])],
                       {"edgecert.io/issuer": "a", "edgecert.io/cluster-issuer": "b"}))
    wait_for(lambda: "BadConfig" in srv.kubectl("describe", "ingress", "broken", "-n",
                                                ns).stdout_text, 10, "BadConfig in describe")
    out = srv.kubectl("describe", "ingress", "broken", "-n", ns).stdout_text
    assert re.search(r"Warning\s+BadConfig\s+.*edgecert-controller", out), out
    invalid = ctl.metric("edgecert_controller_reconcile_total", controller="shim",
                         result="invalid")
    assert invalid >= 1
    srv.requests(clear=True)
    time.sleep(1.5)  # a window in which a retrying controller (5 ms backoff) would show up
    assert ctl.metric("edgecert_controller_reconcile_total", controller="shim",
                      result="invalid") == invalid, "a bad annotation is not retried"
    noise = [r for r in srv.requests() if r["method"] != "GET" and "/leases/" not in r["path"]]
    assert noise == [], noise
    assert certs(srv, ns) == {}
    bad = [e for e in events(srv, ns, "broken") if e["reason"] == "BadConfig"]
    assert len(bad) == 1 and bad[0]["type"] == "Warning" and bad[0].get("count", 1) == 1, bad

    # Fixing the annotation is a change: it is reconciled at once.
    srv.kubectl("annotate", "ingress", "broken", "-n", ns, "edgecert.io/cluster-issuer-")
    wait_for(lambda: "b-tls" in certs(srv, ns), 10, "the Certificate after the fix")
    assert certs(srv, ns)["b-tls"]["spec"]["issuerRef"]["name"] == "a"


def gateway(name, ns, listeners):
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": ns,
                         "annotations": {"edgecert.io/cluster-issuer": "le"}},
            "spec": {"gatewayClassName": "example", "listeners": listeners}}


def https(name, host, secret, ns=None, mode="Terminate", protocol="HTTPS"):
    ref = {"name": secret}
    if ns:
        ref["namespace"] = ns
    return {"name": name, "hostname": host, "protocol": protocol, "port": 443,
            "tls": {"mode": mode, "certificateRefs": [ref]}}


def test_gateway_listeners_and_reference_grants(kube):
    srv, ctl = kube
    ns, other = "gw", "gw-certs"
    namespace(srv, ns)
    namespace(srv, other)
    apply(srv, gateway("edge", ns, [
        {"name": "http", "protocol": "HTTP", "port": 80},
        https("a", "a.gw.test", "a-tls"),
        https("b", "b.gw.test", "b-tls"),
        https("pass", "p.gw.test", "p-tls", mode="Passthrough", protocol="TLS"),
        https("x", "x.gw.test", "x-tls", ns=other),
    ]))
    got = wait_for(lambda: (lambda c: c if len(c) == 2 else None)(certs(srv, ns)), 15,
                   "two Gateway Certificates")
    gw_uid = uid(srv, "/apis/gateway.networking.k8s.io/v1/namespaces/gw/gateways/edge")
    assert got["a-tls"]["spec"]["dnsNames"] == ["a.gw.test"]
    assert got["b-tls"]["spec"]["issuerRef"] == {"name": "le", "kind": "ClusterIssuer",
                                                 "group": "edgecert.io"}
    assert got["a-tls"]["metadata"]["ownerReferences"][0]["kind"] == "Gateway"
    assert got["a-tls"]["metadata"]["ownerReferences"][0]["uid"] == gw_uid
    wait_for(lambda: has_event(srv, ns, "edge", "Skipped", "Passthrough"), 10,
             "a Warning for the Passthrough listener")
    wait_for(lambda: has_event(srv, ns, "edge", "Skipped", "ReferenceGrant"), 10,
             "a Warning for the cross-namespace reference")
    assert not has_event(srv, ns, "edge", "Skipped", "listener http"), "plain HTTP is not a problem"
    assert certs(srv, other) == {}

    # The ReferenceGrant in the Secret's namespace lets the Gateway in: the Certificate appears
    # there, without an owner reference (they cannot cross namespaces), found by its uid label.
    apply(srv, {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                "metadata": {"name": "let-gw", "namespace": other},
                "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "namespace": ns}],
                         "to": [{"group": "", "kind": "Secret"}]}})
    x = wait_for(lambda: certs(srv, other).get("x-tls"), 10, "the granted Certificate")
    assert x["spec"]["dnsNames"] == ["x.gw.test"]
    assert not x["metadata"].get("ownerReferences")
    assert x["metadata"]["labels"]["edgecert.io/source-uid"] == gw_uid

    # Withdrawing the grant withdraws the Certificate made under it.
    srv.kubectl("delete", "referencegrant", "let-gw", "-n", other)
    wait_for(lambda: certs(srv, other) == {}, 10, "the Certificate gone with its grant")
    apply(srv, {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                "metadata": {"name": "let-gw", "namespace": other},
                "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "namespace": ns}],
                         "to": [{"group": "", "kind": "Secret", "name": "x-tls"}]}})
    wait_for(lambda: "x-tls" in certs(srv, other), 10, "granted again, by Secret name")

    srv.kubectl("delete", "gateway", "edge", "-n", ns)
    wait_for(lambda: certs(srv, ns) == {} and certs(srv, other) == {}, 10,
             "every Certificate of the Gateway deleted, in both namespaces")


def test_changes_during_a_dropped_watch_and_410_are_reconciled(kube):
    srv, ctl = kube
    ns = "relist"
    namespace(srv, ns)
    apply(srv, ingress("old", ns, [("old-tls", ["old.relist.test"])]))
    wait_for(lambda: "old-tls" in certs(srv, ns), 10, "old-tls")
    srv.requests(clear=True)
    # Every watch is cut, and the next ingress watch (from the last resourceVersion) answers
    # 410 Expired: the controller must relist and still see what changed meanwhile.
    srv.fault("gone_next_watch", path_prefix="/apis/networking.k8s.io/v1/ingresses")
    srv.fault("drop_watches")
    srv.kubectl("delete", "ingress", "old", "-n", ns)
    apply(srv, ingress("new", ns, [("new-tls", ["new.relist.test"])]))
    wait_for(lambda: set(certs(srv, ns)) == {"new-tls"}, 15,
             "the created Ingress reconciled and the deleted one's Certificate removed")
    reqs = srv.requests()
    assert any(r["path"] == "/apis/networking.k8s.io/v1/ingresses" and
               "watch" not in (r.get("query") or "") for r in reqs), "no relist of ingresses"
    srv.clear_faults()


def lease(srv, ns="default", name="edgecert-controller"):
    st, _, body = srv.http("GET", "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s" %
                           (ns, name))
    return body.get("spec", {}) if st == 200 else {}


def test_leader_election_failover(tmp_path):
    srv = F.start(tmp_path)
    procs = []
    try:
        srv.kubectl("apply", "-f", str(CRDS))
        srv.kubectl("create", "namespace", "edgecert-system")
        args = LEASE + ["--leader-election-namespace", "edgecert-system"]
        a = Controller(srv, tmp_path, "ctl-a", args)
        procs.append(a)
        holder = wait_for(lambda: lease(srv, "edgecert-system").get("holderIdentity"), 10,
                          "a leader")
        assert holder.startswith("ctl-a_")
        out = srv.kubectl("get", "lease", "-n", "edgecert-system", "-o",
                          "jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity}"
                          "{\"\\n\"}{end}").stdout_text
        assert out.split() == ["edgecert-controller=" + holder], out
        b = Controller(srv, tmp_path, "ctl-b", args)
        procs.append(b)
        # The standby keeps a warm cache (ready) but does not reconcile.
        wait_for(lambda: b.get("/readyz")[0] == 200, 10, "standby ready")
        srv.kubectl("create", "namespace", "fo")
        apply(srv, ingress("one", "fo", [("one-tls", ["one.fo.test"])]))
        wait_for(lambda: "one-tls" in certs(srv, "fo"), 10, "one-tls from the leader")
        assert lease(srv, "edgecert-system")["holderIdentity"] == holder
        assert "starting controllers" not in b.logs()
        assert b.metric("edgecert_controller_reconcile_total", controller="shim",
                        result="success") == 0

        # SIGKILL: no release; the standby waits out the lease duration (2 s) and takes over.
        t0 = time.monotonic()
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(5)
        new = wait_for(lambda: (lambda h: h if h and h.startswith("ctl-b_") else None)(
            lease(srv, "edgecert-system").get("holderIdentity")), 8, "ctl-b to take over")
        took = time.monotonic() - t0
        assert took < 2 + 2, took  # lease duration + retry jitter and polling
        apply(srv, ingress("two", "fo", [("two-tls", ["two.fo.test"])]))
        wait_for(lambda: "two-tls" in certs(srv, "fo"), 10, "two-tls from the new leader")
        assert lease(srv, "edgecert-system")["leaseTransitions"] >= 1

        # SIGTERM: stop and release the Lease (empty holder) so a successor need not wait.
        assert b.stop() == 0, b.logs()
        spec = lease(srv, "edgecert-system")
        assert spec.get("holderIdentity", "") == "", spec
        assert new.startswith("ctl-b_")
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        srv.stop()


def test_losing_the_lease_exits_nonzero(tmp_path):
    srv = F.start(tmp_path)
    c = None
    try:
        srv.kubectl("apply", "-f", str(CRDS))
        c = Controller(srv, tmp_path, "ctl-lose", LEASE)
        wait_for(lambda: lease(srv).get("holderIdentity", "").startswith("ctl-lose_"), 10,
                 "leading")
        # Renewals fail from now on: after the renew deadline the replica must stop reconciling
        # and exit non-zero (another may already lead).
        srv.fault("error_500", count=-1, path_prefix="/apis/coordination.k8s.io")
        rc = c.proc.wait(10)
        assert rc != 0
        assert "lost the Lease" in c.logs()
    finally:
        srv.clear_faults()
        if c and c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()
        srv.stop()


def test_without_gateway_api_runs_ingress_only(tmp_path):
    srv = F.start(tmp_path)
    c = None
    try:
        srv.kubectl("apply", "-f", str(CRDS))
        srv.kubectl("delete", "crd", "gateways.gateway.networking.k8s.io",
                    "referencegrants.gateway.networking.k8s.io")
        c = Controller(srv, tmp_path, "ctl-nogw", ["--leader-elect=false"])
        wait_for(lambda: c.get("/readyz")[0] == 200, 10, "ready without the Gateway API")
        assert c.logs().count("Gateway API is not installed") == 1
        apply(srv, ingress("web", "default", [("w-tls", ["w.test"])]))
        wait_for(lambda: "w-tls" in certs(srv, "default"), 10, "Ingress still reconciled")
        assert lease(srv) == {}, "no Lease without --leader-elect"
        assert c.stop() == 0, c.logs()
        # Deleted while no controller ran: the restarted one finds the orphan through the
        # Certificate's source annotations and deletes it.
        srv.kubectl("delete", "ingress", "web")
        c = Controller(srv, tmp_path, "ctl-nogw2", ["--leader-elect=false"])
        wait_for(lambda: certs(srv, "default") == {}, 10, "the orphaned Certificate deleted")
        assert c.stop() == 0, c.logs()
    finally:
        if c and c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()
        srv.stop()


def test_missing_crds_fail_fast(tmp_path):
    srv = F.start(tmp_path)
    try:
        r = subprocess.run([BIN, "controller", "--kubeconfig", str(srv.kubeconfig), "--admin",
                            "off"], capture_output=True, timeout=15)
        assert r.returncode == 2
        assert b"deploy/crds" in r.stderr
    finally:
        srv.stop()
