"""`edgecert renew NAME` against a cluster: cmctl renew's manual trigger.

The in-repo API server (objects with kubectl), the in-repo ACME server validating real http-01
answers served by an `edgecert terminator --challenge-source kubernetes`, and an `edgecert
controller` whose failure backoff is an hour. `edgecert renew` sets Issuing=True, reason
ManuallyTriggered on the Certificate's status; the controller renews at once (the old
certificate stays in the Secret until the new one replaces it), records a Renewed Event and
clears the condition. Certificates not named are left alone; --all -l picks by label; a
Certificate in its failure backoff is retried now instead of in an hour; unknown names and bad
flag combinations are clear errors with exit codes 1 and 2.
"""
import os
import subprocess

import pytest

import apiserver_fixture
from acmeserver_fixture import AcmeServer
from controller_fixture import (CRDS, REPO, Controller, K8sTerminator, apply, certificate, condition, get_json, issuer,
                                secret_cert, wait_until)
from edgecert_helpers import BIN
from terminator_fixture import Upstream, free_port

pytestmark = pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("renew")
    tls_port, http_port = free_port(), free_port()
    acme = AcmeServer(d / "acme", validation="http", http_port=http_port, validity=3600)
    acme.start()
    srv = apiserver_fixture.start(d / "api", tls=True, token="renew-t0k3n")
    up = Upstream()
    procs = []
    try:
        srv.kubectl("apply", "-f", CRDS)
        apply(srv, issuer("acme", acme.dir_url, open(acme.ca_bundle).read()))
        procs.append(K8sTerminator(srv, str(d), up.port, tls_port, http_port).wait_ready())
        # An hour of backoff after a failure: only the manual trigger can make it retry in this test.
        procs.append(Controller(srv, str(d), "--leader-elect=false", "--failure-backoff-base", "1h").wait_ready())
        yield dict(srv=srv, acme=acme, ctl=procs[-1])
    finally:
        for p in procs:
            p.stop()
        up.close()
        srv.stop()
        acme.stop()


def renew(srv, *args):
    p = subprocess.run([BIN, "renew", "--kubeconfig", str(srv.kubeconfig), *args], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, EDGECERT_LOG_LEVEL="warn"))
    assert "PRIVATE KEY" not in p.stdout + p.stderr
    return p


def events(srv, name):
    items = (get_json(srv, "events") or {}).get("items", [])
    return [(e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


def ready_serial(srv, name):
    c = get_json(srv, "certificate.edgecert.io", name)
    r = condition(c, "Ready")
    leaf = secret_cert(srv, name)
    if not (r and r["status"] == "True" and leaf and condition(c, "Issuing") is None):
        return None
    return leaf.serial_number


def test_renew_names_renews_those_now_and_leaves_the_others(env):
    srv = env["srv"]
    for n, labels in (("web", {"app": "shop"}), ("api", {"app": "shop"}), ("other", {})):
        c = certificate(n, [f"{n}.renew.test"], "acme")
        c["metadata"]["labels"] = labels
        apply(srv, c)
    first = {n: wait_until(lambda n=n: ready_serial(srv, n), 60, interval=0.2, what=f"{n} issued")
             for n in ("web", "api", "other")}

    p = renew(srv, "web")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "Manually triggered issuance of Certificate default/web", p.stdout
    new = wait_until(lambda: (s := ready_serial(srv, "web")) and s != first["web"] and s, 30, interval=0.2,
                     what="web renewed")
    assert new != first["web"]
    ev = [m for r, m in events(srv, "web") if r == "Renewed"]
    assert ev and f"{new:x}" in ev[-1], events(srv, "web")
    assert any(r == "Issuing" and "manually triggered" in m for r, m in events(srv, "web")), events(srv, "web")
    assert ready_serial(srv, "api") == first["api"] and ready_serial(srv, "other") == first["other"]

    # --all with a label selector: the two labelled ones, not "other".
    p = renew(srv, "--all", "-l", "app=shop")
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.split("\n")[:-1]) == ["Manually triggered issuance of Certificate default/api",
                                                  "Manually triggered issuance of Certificate default/web"], p.stdout
    wait_until(lambda: (s := ready_serial(srv, "api")) and s != first["api"], 30, interval=0.2, what="api renewed")
    wait_until(lambda: (s := ready_serial(srv, "web")) and s != new, 30, interval=0.2, what="web renewed again")
    assert ready_serial(srv, "other") == first["other"]


def test_renew_skips_the_failure_backoff(env):
    srv, acme = env["srv"], env["acme"]
    acme.fail("/new-order", count=1000, status=500, type="serverInternal", detail="database down")
    apply(srv, certificate("flaky", ["flaky.renew.test"], "acme"))

    def failed_once():
        c = get_json(srv, "certificate.edgecert.io", "flaky")
        return c if c and c.get("status", {}).get("failedIssuanceAttempts") == 1 else None
    c = wait_until(failed_once, 30, interval=0.2, what="a failed attempt")
    acme.mgmt("POST", "clear-faults", {})  # the CA is fine again; the controller's next try is an hour away
    assert condition(c, "Ready")["status"] == "False"
    assert condition(c, "Issuing")["status"] == "False"
    assert secret_cert(srv, "flaky") is None

    p = renew(srv, "flaky")
    assert p.returncode == 0, p.stderr
    wait_until(lambda: ready_serial(srv, "flaky"), 30, interval=0.2, what="flaky issued after the manual trigger")
    c = get_json(srv, "certificate.edgecert.io", "flaky")
    assert "failedIssuanceAttempts" not in c["status"], c["status"]


def test_unknown_names_and_bad_flags_are_clear_errors(env):
    srv = env["srv"]
    p = renew(srv, "nope")
    assert p.returncode == 1 and "Certificate default/nope: not found" in p.stderr, (p.returncode, p.stderr)
    p = renew(srv, "-n", "elsewhere", "web")
    assert p.returncode == 1 and "Certificate elsewhere/web: not found" in p.stderr, (p.returncode, p.stderr)
    for args, msg in ((["web", "--all"], "give Certificate names or --all (not both)"),
                      ([], "give Certificate names or --all (not both)"),
                      (["-A", "web"], "--all-namespaces goes with --all"),
                      (["-l", "a=b", "web"], "--selector goes with --all")):
        p = renew(srv, *args)
        assert p.returncode == 2 and msg in p.stderr, (args, p.returncode, p.stderr)


def test_deploy_user_roles_allow_edit_but_not_view_to_renew(tmp_path):
    """deploy/rbac/users.yaml under enforced RBAC: a user granted edgecert-edit in a namespace
    can trigger a renewal there; one with only edgecert-view is refused, clearly, and the
    Certificate's status is unchanged."""
    srv = apiserver_fixture.start(tmp_path / "api", tls=True, token="admin-t0k3n",
                                  args=["--authorization-mode", "RBAC"])
    try:
        srv.kubectl("apply", "-f", CRDS)
        srv.kubectl("apply", "-f", os.path.join(REPO, "deploy", "rbac", "users.yaml"))
        apply(srv, certificate("site", ["site.renew.test"], "acme"))
        editor = srv.add_user("alice", "alice-t0k3n")
        viewer = srv.add_user("bob", "bob-t0k3n")
        for user, roles in (("alice", ("edgecert-view", "edgecert-edit")), ("bob", ("edgecert-view",))):
            for role in roles:
                srv.kubectl("create", "rolebinding", f"{user}-{role}", "--clusterrole", role, "--user", user)

        p = subprocess.run([BIN, "renew", "--kubeconfig", str(viewer), "site"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 1 and "Certificate default/site" in p.stderr and "forbidden" in p.stderr.lower(), \
            (p.returncode, p.stderr)
        assert condition(get_json(srv, "certificate.edgecert.io", "site"), "Issuing") is None

        p = subprocess.run([BIN, "renew", "--kubeconfig", str(editor), "site"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        c = condition(get_json(srv, "certificate.edgecert.io", "site"), "Issuing")
        assert c and c["status"] == "True" and c["reason"] == "ManuallyTriggered", c
        # Asked again while that issuance is pending: left alone, not an error.
        p = subprocess.run([BIN, "renew", "--kubeconfig", str(editor), "site"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0 and "already being issued (ManuallyTriggered)" in p.stdout, (p.stdout, p.stderr)
    finally:
        srv.stop()
