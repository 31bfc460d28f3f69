"""`edgecert controller --namespaces` with only deploy/'s namespaced RBAC, enforced for real.

The test API server runs with --authorization-mode=RBAC: the controller authenticates as the
ServiceAccount edgecert-system/edgecert-controller (a token mapped to
system:serviceaccount:edgecert-system:edgecert-controller), and every request it makes is
checked against the Roles and bindings kubectl applied — the base install with its cluster-wide
controller binding removed, plus deploy/rbac/namespaced/ for team-a, built by kustomize exactly
as docs/install.md tells users to. Real Pebble validates real http-01 answers served by a
separate terminator process (which runs as cluster admin: it is not under test).

- An annotated Ingress in team-a gets its Certificate and a Pebble-issued Secret.
- team-b holds an annotated Ingress and a Certificate of its own: the controller never makes a
  single request under /namespaces/team-b (the server's request log), so nothing there is
  created or written, and its Certificate keeps no status.
- No request of the controller was refused (403): every call it made was allowed by the
  namespaced Role, the leader-election Role, or the default discovery/self-review policy.
- A Certificate naming a ClusterIssuer, which this RBAC cannot read, gets Ready=False saying so.
- Without --namespaces the same controller exits 2 at once and names the missing permission;
  and where it cannot ask the server (no self-review permission) the first refused list stops
  it the same way: no retry loop of 403s.
- With deploy/rbac/namespaced/clusterissuers added, the confined controller issues from a
  ClusterIssuer (its account key in edgecert-system), still without a refused request.
"""
import json
import os
import subprocess

import pytest
import yaml

import apiserver_fixture
import pebble_fixture
from controller_fixture import (REPO, Controller, K8sTerminator, apply, condition, get_json, issuer,
                                secret_cert, wait_until)
from terminator_fixture import Upstream, free_port

pytestmark = pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")

SA_USER = "system:serviceaccount:edgecert-system:edgecert-controller"
DEPLOY = os.path.join(REPO, "deploy")
# What `kubectl kustomize` builds that the test API server cannot hold (workloads).
NOT_SERVABLE = {"Deployment", "DaemonSet", "PodDisruptionBudget"}


def overlay(d):
    """The overlay docs/install.md shows: the base, the namespaced RBAC for team-a, the
    controller's cluster-wide ClusterRole and binding deleted, --namespaces patched in."""
    d.mkdir()
    base = os.path.relpath(DEPLOY, d)
    (d / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [base, base + "/rbac/namespaced"],
        "patches": [
            {"patch": "$patch: delete\napiVersion: rbac.authorization.k8s.io/v1\n"
                      "kind: ClusterRoleBinding\nmetadata:\n  name: edgecert-controller\n"},
            {"patch": "$patch: delete\napiVersion: rbac.authorization.k8s.io/v1\n"
                      "kind: ClusterRole\nmetadata:\n  name: edgecert-controller\n"},
            {"target": {"kind": "Deployment", "name": "edgecert-controller"},
             "patch": "- op: add\n  path: /spec/template/spec/containers/0/args/-\n"
                      "  value: --namespaces=team-a\n"}]}))
    r = subprocess.run([apiserver_fixture.kubectl_path(), "kustomize", str(d)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return [doc for doc in yaml.safe_load_all(r.stdout) if doc]


def ingress(name, ns, host, secret):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "annotations": {"edgecert.io/issuer": "pebble"}},
            "spec": {"tls": [{"hosts": [host], "secretName": secret}],
                     "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                         "service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def controller_requests(srv):
    return [r for r in srv.requests() if r.get("user") == SA_USER]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("ns")
    tls_port, http_port = free_port(), free_port()
    pebble = pebble_fixture.Pebble(str(d / "pebble"), http_port=http_port, tls_port=tls_port, validity=3600)
    srv = apiserver_fixture.start(d / "api", tls=True, token="admin-t0k3n", args=["--authorization-mode", "RBAC"])
    up = Upstream()
    procs = []
    try:
        sa_kubeconfig = srv.add_user(SA_USER, "controller-t0k3n")
        docs = overlay(d / "overlay")
        ctl_args = next(doc for doc in docs if doc["kind"] == "Deployment")["spec"]["template"]["spec"][
            "containers"][0]["args"]
        for ns in ("team-a", "team-b"):
            srv.kubectl("create", "namespace", ns)
        servable = [doc for doc in docs if doc["kind"] not in NOT_SERVABLE]
        srv.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(servable))
        ca_pem = open(pebble.ca_file).read()
        for ns in ("team-a", "team-b"):
            apply(srv, issuer("pebble", pebble.dir_url, ca_pem, ns=ns))
        term = K8sTerminator(srv, str(d), up.port, tls_port, http_port).wait_ready()
        procs.append(term)
        srv.requests(clear=True)
        namespaces = [a for a in ctl_args if a.startswith("--namespaces=")]
        assert namespaces == ["--namespaces=team-a"]
        # the same setting through --config (a YAML list), as a ConfigMap-mounted file would be
        cfg = d / "controller.yaml"
        cfg.write_text(yaml.safe_dump({"namespaces": namespaces[0].split("=", 1)[1].split(","),
                                       "leaderElectionNamespace": "edgecert-system"}))
        ctl = Controller(srv, str(d), "--leader-elect=true", "--config", str(cfg),
                         kubeconfig=sa_kubeconfig).wait_ready()
        procs.append(ctl)
        yield dict(srv=srv, ctl=ctl, sa_kubeconfig=sa_kubeconfig, dir=d, docs=docs, pebble=pebble,
                   procs=procs)
    finally:
        for p in procs:
            p.stop()
        up.close()
        srv.stop()
        pebble.stop()


def test_only_the_served_namespace_is_touched_and_nothing_is_refused(env):
    srv, ctl = env["srv"], env["ctl"]
    apply(srv, ingress("web", "team-b", "web.team-b.test", "web-tls"))
    apply(srv, {"apiVersion": "edgecert.io/v1alpha1", "kind": "Certificate",
                "metadata": {"name": "manual", "namespace": "team-b"},
                "spec": {"secretName": "manual", "dnsNames": ["manual.team-b.test"],
                         "issuerRef": {"name": "pebble", "kind": "Issuer"}}})
    apply(srv, ingress("web", "team-a", "web.team-a.test", "web-tls"))
    # a ClusterIssuer this RBAC cannot read: a clear condition, not a hang
    apply(srv, {"apiVersion": "edgecert.io/v1alpha1", "kind": "Certificate",
                "metadata": {"name": "via-cluster-issuer", "namespace": "team-a"},
                "spec": {"secretName": "via-cluster-issuer", "dnsNames": ["ci.team-a.test"],
                         "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}})

    try:
        leaf = wait_until(lambda: secret_cert(srv, "web-tls", ns="team-a"), 90, interval=0.3,
                          what="Secret team-a/web-tls")
    except AssertionError:
        print(ctl.logs()[-6000:])
        raise
    assert "Pebble" in leaf.issuer.rfc4514_string()
    cert = wait_until(lambda: (lambda c: c if (condition(c, "Ready") or {}).get("status") == "True" else None)(
        get_json(srv, "certificate", "web-tls", "-n", "team-a")), 20, what="Ready=True in team-a")
    assert cert["status"]["notAfter"]
    bad = wait_until(lambda: condition(get_json(srv, "certificate", "via-cluster-issuer", "-n", "team-a"), "Ready"),
                     20, what="Ready condition on the ClusterIssuer Certificate")
    assert bad["status"] == "False" and bad["reason"] == "BadConfig", bad
    assert "ClusterIssuer letsencrypt cannot be used" in bad["message"], bad
    assert "may not list and watch clusterissuers.edgecert.io" in bad["message"], bad
    assert ctl.logs().count("ClusterIssuers are not readable") == 1
    assert "watching namespaces team-a only" in ctl.logs()

    # team-b: nothing created, nothing written, not even read
    assert [c["metadata"]["name"] for c in get_json(srv, "certificates", "-n", "team-b")["items"]] == ["manual"]
    assert "status" not in get_json(srv, "certificate", "manual", "-n", "team-b")
    assert get_json(srv, "secrets", "-n", "team-b")["items"] == []
    reqs = controller_requests(srv)
    assert reqs, "the request log has no request of the controller's ServiceAccount"
    assert [r for r in reqs if "/namespaces/team-b" in r["path"]] == []
    # every call was allowed; none went to the cluster scope of a namespaced resource
    refused = [(r["method"], r["path"], r["query"]) for r in reqs if r["status"] == 403]
    assert refused == [], refused
    assert not [r for r in reqs if r["path"] in ("/api/v1/secrets", "/apis/networking.k8s.io/v1/ingresses",
                                                 "/apis/edgecert.io/v1alpha1/certificates")]
    # what it did in team-a and in its own namespace (the Lease), as the Role allows
    paths = {(r["method"], r["path"]) for r in reqs}
    assert ("POST", "/apis/edgecert.io/v1alpha1/namespaces/team-a/certificates") in paths
    assert any(p.startswith("/api/v1/namespaces/team-a/secrets") and m in ("POST", "PUT") for m, p in paths)
    assert any(p.startswith("/apis/coordination.k8s.io/v1/namespaces/edgecert-system/leases") for m, p in paths)
    assert any(p == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" for m, p in paths)
    # Events went to team-a only
    events = get_json(srv, "events", "-A")["items"]
    assert {e["metadata"]["namespace"] for e in events if e.get("source", {}).get("component") ==
            "edgecert-controller"} == {"team-a"}


def test_kubectl_auth_can_i_agrees(env):
    """The ServiceAccount's own view (`kubectl auth can-i` = SelfSubjectAccessReview)."""
    srv = env["srv"]
    kc = str(env["sa_kubeconfig"])

    def can(*args):
        r = srv.kubectl("--kubeconfig", kc, "auth", "can-i", *args, check=False)
        return r.stdout_text.strip()
    assert can("list", "secrets", "-n", "team-a") == "yes"
    assert can("create", "certificates.edgecert.io", "-n", "team-a") == "yes"
    assert can("list", "secrets", "-n", "team-b") == "no"
    assert can("list", "secrets", "--all-namespaces") == "no"
    assert can("list", "clusterissuers.edgecert.io") == "no"
    assert can("update", "leases.coordination.k8s.io/edgecert-controller", "-n", "edgecert-system") == "yes"
    assert can("update", "leases.coordination.k8s.io/other", "-n", "edgecert-system") == "no"
    who = srv.kubectl("--kubeconfig", kc, "auth", "whoami", "-o", "json").stdout_text
    assert json.loads(who)["status"]["userInfo"]["username"] == SA_USER


def run_to_exit(env, name):
    """A controller with the ServiceAccount's token and no --namespaces, run until it exits
    (bounded): (exit code, log, its requests)."""
    env["srv"].requests(clear=True)
    ctl = Controller(env["srv"], str(env["dir"]), "--leader-elect=false", name=name,
                     kubeconfig=env["sa_kubeconfig"])
    try:
        ctl.proc.wait(timeout=30)
    finally:
        rc = ctl.stop()
    return rc, open(ctl.log_path).read(), controller_requests(env["srv"])


def test_without_namespaces_it_stops_and_names_the_permission(env):
    rc, logs, reqs = run_to_exit(env, "cluster-wide")
    assert rc == 2, logs
    assert "RBAC denies what the controller needs: list ingresses.networking.k8s.io at the cluster scope" in logs, logs
    assert "--namespaces" in logs
    # it asked first, so it never made the refused request at all
    assert [r for r in reqs if r["status"] == 403] == []


def test_a_refused_watch_stops_it_when_it_cannot_ask_first(env):
    """A cluster where the ServiceAccount may not create SelfSubjectAccessReviews: the controller
    cannot check first, tries, and the first refused lists stop it (exit 2, the server's
    message), instead of retrying 403s forever."""
    srv = env["srv"]
    saved = get_json(srv, "clusterrolebinding", "system:basic-user")
    srv.kubectl("delete", "clusterrolebinding", "system:basic-user")
    try:
        r = srv.kubectl("--kubeconfig", str(env["sa_kubeconfig"]), "auth", "can-i", "list", "secrets", "-n",
                        "team-a", check=False)
        assert r.returncode != 0 and "selfsubjectaccessreviews" in r.stderr_text, r.stderr_text
        rc, logs, reqs = run_to_exit(env, "no-review")
        assert rc == 2, logs
        assert "the API server refused a request the controller cannot work without" in logs, logs
        assert 'cannot list resource' in logs and "at the cluster scope" in logs, logs
        # at most one refused list per watched type, then it stopped
        lists = [r for r in reqs if r["status"] == 403 and "selfsubjectaccessreviews" not in r["path"]]
        assert 1 <= len(lists) <= 8, lists
    finally:
        for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            saved["metadata"].pop(k, None)
        apply(srv, saved)


def test_clusterissuers_are_used_when_the_add_on_allows_it(env):
    """Runs last: it replaces the module's controller."""
    srv, pebble = env["srv"], env["pebble"]
    r = subprocess.run([apiserver_fixture.kubectl_path(), "kustomize",
                        os.path.join(DEPLOY, "rbac", "namespaced", "clusterissuers")], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    srv.kubectl("apply", "-f", "-", input=r.stdout.decode())
    ci = issuer("pebble-cluster", pebble.dir_url, open(pebble.ca_file).read())
    ci["kind"] = "ClusterIssuer"
    del ci["metadata"]["namespace"]
    apply(srv, ci)
    env["ctl"].stop()
    srv.requests(clear=True)
    ctl = Controller(srv, str(env["dir"]), "--leader-elect=false", "--namespaces=team-a", name="with-ci",
                     kubeconfig=env["sa_kubeconfig"], cluster_ns="edgecert-system").wait_ready()
    env["procs"].append(ctl)
    apply(srv, {"apiVersion": "edgecert.io/v1alpha1", "kind": "Certificate",
                "metadata": {"name": "ci-tls", "namespace": "team-a"},
                "spec": {"secretName": "ci-tls", "dnsNames": ["ci.team-a.test"],
                         "issuerRef": {"name": "pebble-cluster", "kind": "ClusterIssuer"}}})
    try:
        wait_until(lambda: secret_cert(srv, "ci-tls", ns="team-a"), 90, interval=0.3, what="Secret team-a/ci-tls")
    except AssertionError:
        print(ctl.logs()[-6000:])
        raise
    assert "ClusterIssuers are not readable" not in ctl.logs()
    iss = wait_until(lambda: (lambda i: i if (condition(i, "Ready") or {}).get("status") == "True" else None)(
        get_json(srv, "clusterissuer", "pebble-cluster")), 20, what="ClusterIssuer Ready")
    assert iss["status"]["acme"]["uri"]
    assert get_json(srv, "secret", "pebble-cluster-account", "-n", "edgecert-system") is not None
    reqs = controller_requests(srv)
    assert [(r["method"], r["path"]) for r in reqs if r["status"] == 403] == []
    assert [r for r in reqs if "/namespaces/team-b" in r["path"]] == []
