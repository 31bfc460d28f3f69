"""RBAC in the test API server (--authorization-mode=RBAC), checked with the clients nobody here
wrote: kubectl 1.32 (apply of Roles and bindings, `auth can-i` = SelfSubjectAccessReview,
`auth can-i --list` = SelfSubjectRulesReview, `auth whoami` = SelfSubjectReview, --as
impersonation) and python3-kubernetes (a refusal is ApiException 403 with a Status body).

Identities come from --token-file lines in kube-apiserver's CSV form; ServiceAccount users are
system:serviceaccount:NS:NAME. Messages are kube-apiserver's (responsewriters.Forbidden).
"""
import json

import pytest
import yaml

import apiserver_fixture as F

pytestmark = pytest.mark.skipif(F.kubectl_path() is None, reason="kubectl is not installed")

client = pytest.importorskip("kubernetes.client")
config = pytest.importorskip("kubernetes.config")
ApiException = client.exceptions.ApiException

SA = "system:serviceaccount:apps:builder"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = F.start(tmp_path_factory.mktemp("rbac"), tls=True, token="admin",
                args=["--authorization-mode", "RBAC"])
    s.sa_kc = s.add_user(SA, "builder-token")
    s.alice_kc = s.add_user("alice", "alice-token", groups=["devs"])
    for ns in ("apps", "other"):
        s.kubectl("create", "namespace", ns)
    yield s
    s.stop()


def as_kc(srv, kc, *args, input=None):
    return srv.kubectl("--kubeconfig", str(kc), *args, check=False, input=input)


def can_i(srv, kc, *args):
    r = as_kc(srv, kc, "auth", "can-i", *args)
    assert r.stdout_text.strip() in ("yes", "no"), r.stdout_text + r.stderr_text
    return r.stdout_text.strip() == "yes"


def api(kc):
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kc), client_configuration=cfg)
    return client.ApiClient(cfg)


def test_deny_by_default_with_kube_apiservers_messages(srv):
    r = as_kc(srv, srv.sa_kc, "get", "secrets", "-n", "apps")
    assert r.returncode == 1
    assert ('Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:apps:builder" '
            'cannot list resource "secrets" in API group "" in the namespace "apps"') in r.stderr_text
    r = as_kc(srv, srv.sa_kc, "get", "ingresses.networking.k8s.io", "-A")
    assert ('ingresses.networking.k8s.io is forbidden: User "system:serviceaccount:apps:builder" cannot list '
            'resource "ingresses" in API group "networking.k8s.io" at the cluster scope') in r.stderr_text
    # discovery and the self reviews are allowed to every authenticated user (default policy)
    assert as_kc(srv, srv.sa_kc, "get", "--raw", "/apis").returncode == 0
    who = json.loads(as_kc(srv, srv.sa_kc, "auth", "whoami", "-o", "json").stdout_text)["status"]["userInfo"]
    assert who["username"] == SA
    assert who["groups"] == ["system:serviceaccounts", "system:serviceaccounts:apps", "system:authenticated"]
    # python3-kubernetes: ApiException 403 with the Status body, for a list, a get and a watch
    with api(srv.sa_kc) as a:
        core = client.CoreV1Api(a)
        with pytest.raises(ApiException) as e:
            core.list_namespaced_secret("apps")
        assert e.value.status == 403
        body = json.loads(e.value.body)
        assert body["kind"] == "Status" and body["reason"] == "Forbidden" and body["code"] == 403
        assert body["details"] == {"kind": "secrets"}
        with pytest.raises(ApiException) as e:
            core.read_namespaced_secret("db", "apps")
        body = json.loads(e.value.body)
        assert body["message"].startswith('secrets "db" is forbidden: User "%s" cannot get resource' % SA)
        assert body["details"] == {"kind": "secrets", "name": "db"}
        with pytest.raises(ApiException) as e:
            core.list_namespaced_config_map("apps", watch=True, _preload_content=False)
        assert e.value.status == 403
        assert 'cannot watch resource "configmaps"' in json.loads(e.value.body)["message"]
    # a non-resource path
    st, _, body = srv.http("GET", "/metrics", token="builder-token")
    assert st == 403 and body["message"] == 'forbidden: User "%s" cannot get path "/metrics"' % SA


ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: builder, namespace: apps}
rules:
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, list, watch, patch]
  - apiGroups: [""]
    resources: [configmaps]
    resourceNames: [settings]
    verbs: [get, list, update]
  - apiGroups: [""]
    resources: [services/status]
    verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: builder, namespace: apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: builder}
subjects:
  - {kind: ServiceAccount, name: builder, namespace: apps}
"""


def test_a_role_grants_exactly_its_rules_in_its_namespace(srv):
    srv.kubectl("apply", "-f", "-", input=ROLE)
    assert "Role/builder" in srv.kubectl("get", "rolebindings", "-n", "apps").stdout_text
    kc = srv.sa_kc
    assert can_i(srv, kc, "list", "secrets", "-n", "apps")
    assert can_i(srv, kc, "watch", "secrets", "-n", "apps")
    assert not can_i(srv, kc, "create", "secrets", "-n", "apps")
    assert not can_i(srv, kc, "list", "secrets", "-n", "other")
    assert not can_i(srv, kc, "list", "secrets", "-A")
    # resourceNames: that object only, and never a list
    assert can_i(srv, kc, "update", "configmaps/settings", "-n", "apps")
    assert not can_i(srv, kc, "update", "configmaps/other", "-n", "apps")
    assert not can_i(srv, kc, "list", "configmaps", "-n", "apps")
    # a subresource rule covers the subresource, not the object
    assert can_i(srv, kc, "patch", "services", "--subresource=status", "-n", "apps")
    assert not can_i(srv, kc, "patch", "services", "-n", "apps")
    # the same answers from real requests
    srv.kubectl("create", "secret", "generic", "db", "-n", "apps", "--from-literal=k=v")
    srv.kubectl("create", "configmap", "settings", "-n", "apps", "--from-literal=a=1")
    with api(kc) as a:
        core = client.CoreV1Api(a)
        assert [s.metadata.name for s in core.list_namespaced_secret("apps").items] == ["db"]
        cm = core.read_namespaced_config_map("settings", "apps")
        cm.data["a"] = "2"
        core.replace_namespaced_config_map("settings", "apps", cm)
        with pytest.raises(ApiException) as e:
            core.create_namespaced_secret("apps", {"metadata": {"name": "x"}})
        assert e.value.status == 403
    # server-side apply is a patch, and one that creates the object needs create too
    apply_doc = "apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: apps}\nstringData: {k: v2}\n"
    assert as_kc(srv, kc, "apply", "--server-side", "-f", "-", input=apply_doc % "db").returncode == 0
    r = as_kc(srv, kc, "apply", "--server-side", "-f", "-", input=apply_doc % "fresh")
    assert 'cannot create resource "secrets" in API group "" in the namespace "apps"' in r.stderr_text, \
        r.stderr_text
    # a list with a metadata.name field selector names the object (RequestInfo), so
    # resourceNames can grant it; the same list without the selector is refused
    assert srv.http("GET", "/api/v1/namespaces/apps/configmaps", token="builder-token")[0] == 403
    assert srv.http("GET", "/api/v1/namespaces/apps/configmaps?fieldSelector=metadata.name%3Dsettings",
                    token="builder-token")[0] == 200
    # --list shows the Role's rules (SelfSubjectRulesReview)
    listed = as_kc(srv, kc, "auth", "can-i", "--list", "-n", "apps").stdout_text
    assert "secrets" in listed and "[get list watch patch]" in listed and "[settings]" in listed


def test_clusterroles_users_groups_and_cluster_scope(srv):
    srv.kubectl("create", "clusterrole", "ingress-reader", "--verb=get,list,watch",
                "--resource=ingresses.networking.k8s.io")
    # a ClusterRole bound by a RoleBinding grants in that namespace only
    srv.kubectl("create", "rolebinding", "alice-ingresses", "-n", "other", "--clusterrole=ingress-reader",
                "--user=alice")
    assert can_i(srv, srv.alice_kc, "list", "ingresses", "-n", "other")
    assert not can_i(srv, srv.alice_kc, "list", "ingresses", "-n", "apps")
    assert not can_i(srv, srv.alice_kc, "list", "ingresses", "-A")
    # bound to a Group by a ClusterRoleBinding: everywhere, for every member
    srv.kubectl("create", "clusterrolebinding", "devs-ingresses", "--clusterrole=ingress-reader", "--group=devs")
    assert can_i(srv, srv.alice_kc, "list", "ingresses", "-A")
    assert not can_i(srv, srv.sa_kc, "list", "ingresses", "-A")
    # the ServiceAccounts group of a namespace
    srv.kubectl("create", "rolebinding", "apps-sas", "-n", "apps", "--clusterrole=ingress-reader",
                "--group=system:serviceaccounts:apps")
    assert can_i(srv, srv.sa_kc, "list", "ingresses", "-n", "apps")
    with api(srv.alice_kc) as a:
        assert client.NetworkingV1Api(a).list_ingress_for_all_namespaces().items == []


def test_impersonation_and_system_masters(srv):
    # the admin token is in system:masters: everything, and --as to see someone else's view
    assert can_i(srv, srv.kubeconfig, "delete", "namespaces")
    assert can_i(srv, srv.kubeconfig, "list", "secrets", "-n", "apps", "--as", SA)
    assert not can_i(srv, srv.kubeconfig, "list", "secrets", "-n", "other", "--as", SA)
    r = srv.kubectl("get", "secrets", "-n", "other", "--as", SA, check=False)
    assert 'User "%s" cannot list resource "secrets"' % SA in r.stderr_text
    # nobody else may impersonate
    r = as_kc(srv, srv.alice_kc, "get", "secrets", "-n", "apps", "--as", SA)
    assert ('serviceaccounts "builder" is forbidden: User "alice" cannot impersonate resource '
            '"serviceaccounts" in API group "" in the namespace "apps"') in r.stderr_text
    # the default policy is there, labelled as kube-apiserver labels it
    roles = yaml.safe_load(srv.kubectl("get", "clusterroles", "-o", "yaml").stdout_text)["items"]
    names = {r["metadata"]["name"] for r in roles}
    assert {"cluster-admin", "system:discovery", "system:basic-user", "system:public-info-viewer"} <= names


def test_rbac_objects_are_validated(srv):
    r = srv.kubectl("apply", "-f", "-", check=False, input="""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: builder, namespace: apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ingress-reader}
subjects:
  - {kind: ServiceAccount, name: builder, namespace: apps}
""")
    assert r.returncode != 0 and "cannot change roleRef" in r.stderr_text, r.stderr_text
    r = srv.kubectl("create", "-f", "-", check=False, input="""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: empty, namespace: apps}
rules:
  - apiGroups: [""]
    resources: [secrets]
""")
    assert "rules[0].verbs: Required value" in r.stderr_text, r.stderr_text
