"""Conformance of the test API server (tests/apiserver) against the official Python client
(python3-kubernetes 22.6, Debian; run with /usr/bin/python3), plus raw-HTTP checks of the wire
details that client hides (Status bodies, watch framing, boolean spellings, pagination)."""
import base64
import json
import socket
import threading
import time
import urllib.request

import pytest

import apiserver_fixture as F

kubernetes = pytest.importorskip("kubernetes", reason="python3-kubernetes is not installed "
                                                      "(apt-get install python3-kubernetes)")
from kubernetes import client, config, dynamic, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

NS = "default"


def api_client(srv, **kw):
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(srv.kubeconfig), client_configuration=cfg, **kw)
    return client.ApiClient(cfg)


@pytest.fixture
def srv(tmp_path):
    s = F.start(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def api(srv):
    with api_client(srv) as c:
        yield c


def status_of(exc):
    return json.loads(exc.body)


def secret(name, labels=None, typ="Opaque", data=None):
    return client.V1Secret(metadata=client.V1ObjectMeta(name=name, labels=labels), type=typ,
                           data=data or {"k": base64.b64encode(b"v").decode()})


def test_secret_typed_crud(api):
    core = client.CoreV1Api(api)
    s = core.create_namespaced_secret(NS, secret("s1", {"app": "web"}, "kubernetes.io/tls",
                                                 {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}))
    assert s.metadata.uid and s.metadata.resource_version and s.metadata.creation_timestamp
    with pytest.raises(ApiException) as e:
        core.create_namespaced_secret(NS, secret("s1"))
    st = status_of(e.value)
    assert e.value.status == 409 and st["reason"] == "AlreadyExists"
    assert st["details"] == {"name": "s1", "kind": "secrets"}
    assert st["message"] == 'secrets "s1" already exists'
    got = core.read_namespaced_secret("s1", NS)
    got.metadata.labels["tier"] = "edge"
    upd = core.replace_namespaced_secret("s1", NS, got)
    assert int(upd.metadata.resource_version) > int(got.metadata.resource_version)
    # typed patch with a dict = strategic merge patch
    core.patch_namespaced_secret("s1", NS, {"metadata": {"annotations": {"a": "b"}}})
    core.create_namespaced_secret(NS, secret("s2", {"app": "api"}))
    core.create_namespaced_secret(NS, client.V1Secret(
        metadata=client.V1ObjectMeta(generate_name="gen-"), string_data={"x": "y"}))
    names = sorted(i.metadata.name for i in core.list_namespaced_secret(NS).items)
    assert names[:2] == ["gen-" + names[0][4:], "s1"] and len(names[0]) == 9
    assert [i.metadata.name for i in core.list_namespaced_secret(
        NS, label_selector="app in (web,x),tier").items] == ["s1"]
    assert [i.metadata.name for i in core.list_namespaced_secret(
        NS, field_selector="type=kubernetes.io/tls").items] == ["s1"]
    assert sorted(i.metadata.name for i in core.list_secret_for_all_namespaces(
        field_selector="metadata.name!=s1,metadata.namespace=default").items) == \
        sorted(n for n in names if n != "s1")
    with pytest.raises(ApiException) as e:
        core.list_namespaced_secret(NS, field_selector="data.k=v")
    assert e.value.status == 400 and "field label not supported" in status_of(e.value)["message"]
    r = core.delete_namespaced_secret("s1", NS)
    assert r.status == "Success" and r.details.name == "s1"
    with pytest.raises(ApiException) as e:
        core.read_namespaced_secret("s1", NS)
    assert e.value.status == 404 and status_of(e.value)["message"] == 'secrets "s1" not found'
    with pytest.raises(ApiException) as e:  # TLS secrets need both keys
        core.create_namespaced_secret(NS, secret("bad", typ="kubernetes.io/tls"))
    assert e.value.status == 422 and status_of(e.value)["reason"] == "Invalid"
    with pytest.raises(ApiException) as e:  # the namespace must exist
        core.create_namespaced_secret("nowhere", secret("x"))
    assert e.value.status == 404


def test_ingress_typed_crud_generation_and_status(api):
    net = client.NetworkingV1Api(api)
    ing = client.V1Ingress(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1IngressSpec(
            ingress_class_name="nginx",
            tls=[client.V1IngressTLS(hosts=["a.example.com"], secret_name="web-tls")]),
        status=client.V1IngressStatus(load_balancer=client.V1LoadBalancerStatus(
            ingress=[client.V1LoadBalancerIngress(ip="1.2.3.4")])))
    created = net.create_namespaced_ingress(NS, ing)
    assert created.metadata.generation == 1
    assert created.status is None or not created.status.load_balancer.ingress  # status dropped
    created.spec.tls[0].hosts = ["b.example.com"]
    upd = net.replace_namespaced_ingress("web", NS, created)
    assert upd.metadata.generation == 2
    upd.status = client.V1IngressStatus(load_balancer=client.V1LoadBalancerStatus(
        ingress=[client.V1LoadBalancerIngress(ip="10.0.0.1")]))
    st = net.replace_namespaced_ingress_status("web", NS, upd)
    assert st.status.load_balancer.ingress[0].ip == "10.0.0.1"
    assert st.metadata.generation == 2
    # labels via the main endpoint keep status; status via the main endpoint is ignored
    st.metadata.labels = {"x": "y"}
    st.status.load_balancer.ingress[0].ip = "9.9.9.9"
    again = net.replace_namespaced_ingress("web", NS, st)
    assert again.status.load_balancer.ingress[0].ip == "10.0.0.1"
    assert again.metadata.labels == {"x": "y"} and again.metadata.generation == 2
    ic = net.create_ingress_class(client.V1IngressClass(
        metadata=client.V1ObjectMeta(name="nginx"),
        spec=client.V1IngressClassSpec(controller="k8s.io/ingress-nginx")))
    assert ic.metadata.namespace is None
    assert [i.metadata.name for i in net.list_ingress_class().items] == ["nginx"]
    net.delete_namespaced_ingress("web", NS)
    assert net.list_namespaced_ingress(NS).items == []


def test_watch_410_and_recovery_by_relist(tmp_path):
    s = F.start(tmp_path, args=["--history", "20"])
    try:
        with api_client(s) as api:
            core = client.CoreV1Api(api)
            lst = core.list_namespaced_config_map(NS)
            old_rv = lst.metadata.resource_version
            for i in range(30):  # push old_rv out of the 20-event history
                core.create_namespaced_config_map(NS, client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name="cm%d" % i)))
            w = watch.Watch()
            with pytest.raises(ApiException) as e:
                for _ in w.stream(core.list_namespaced_config_map, NS,
                                  resource_version=old_rv, timeout_seconds=5):
                    pass
            assert e.value.status == 410
            assert "too old resource version" in str(e.value.reason)
            # the same, raw: HTTP 200 and one ERROR event carrying an Expired Status
            st, _, body = s.http("GET", "/api/v1/namespaces/default/configmaps?watch=1&"
                                 "resourceVersion=%s" % old_rv)
            assert st == 200 and body["type"] == "ERROR"
            assert body["object"]["reason"] == "Expired" and body["object"]["code"] == 410
            # a list with limit at an exact compacted RV is 410 too
            st, _, body = s.http("GET", "/api/v1/namespaces/default/configmaps?limit=5&"
                                 "resourceVersion=%s" % old_rv)
            assert st == 410 and body["reason"] == "Expired"
            # recovery: relist, then watch from the new list RV
            lst = core.list_namespaced_config_map(NS)
            assert len(lst.items) == 30
            got = []

            def consume():
                for ev in watch.Watch().stream(core.list_namespaced_config_map, NS,
                                               resource_version=lst.metadata.resource_version,
                                               timeout_seconds=10):
                    got.append((ev["type"], ev["object"].metadata.name))
                    if ev["type"] == "DELETED":
                        return
            t = threading.Thread(target=consume)
            t.start()
            time.sleep(0.5)
            core.create_namespaced_config_map(NS, client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="after")))
            core.delete_namespaced_config_map("cm0", NS)
            t.join(15)
            assert got == [("ADDED", "after"), ("DELETED", "cm0")]
            # injected: the next watch gets an ERROR 410 even from a fresh RV
            s.fault("gone_next_watch", path_prefix="/api/v1/namespaces/default/configmaps")
            rv = core.list_namespaced_config_map(NS).metadata.resource_version
            with pytest.raises(ApiException) as e:
                for _ in watch.Watch().stream(core.list_namespaced_config_map, NS,
                                              resource_version=rv, timeout_seconds=5):
                    pass
            assert e.value.status == 410
    finally:
        s.stop()


def test_lease_create_update_conflict(api, srv):
    co = client.CoordinationV1Api(api)
    now = "2026-01-01T00:00:00.000000Z"
    lease = co.create_namespaced_lease(NS, client.V1Lease(
        metadata=client.V1ObjectMeta(name="edgecert-leader"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15,
                                acquire_time=now, renew_time=now, lease_transitions=0)))
    a = co.read_namespaced_lease("edgecert-leader", NS)
    b = co.read_namespaced_lease("edgecert-leader", NS)
    a.spec.renew_time = "2026-01-01T00:00:02.000000Z"
    won = co.replace_namespaced_lease("edgecert-leader", NS, a)
    assert won.spec.holder_identity == "a" and \
        won.metadata.resource_version != lease.metadata.resource_version
    b.spec.holder_identity = "b"
    with pytest.raises(ApiException) as e:
        co.replace_namespaced_lease("edgecert-leader", NS, b)
    st = status_of(e.value)
    assert e.value.status == 409 and st["reason"] == "Conflict"
    assert st["details"] == {"name": "edgecert-leader", "group": "coordination.k8s.io",
                             "kind": "leases"}
    assert st["message"].startswith('Operation cannot be fulfilled on leases.coordination.k8s.io '
                                    '"edgecert-leader": the object has been modified')
    # a fresh read then succeeds; an injected conflict hits exactly the next PUT
    c = co.read_namespaced_lease("edgecert-leader", NS)
    srv.fault("conflict_next_put", path_prefix="/apis/coordination.k8s.io/")
    c.spec.holder_identity = "c"
    with pytest.raises(ApiException) as e:
        co.replace_namespaced_lease("edgecert-leader", NS, c)
    assert e.value.status == 409
    done = co.replace_namespaced_lease("edgecert-leader", NS, c)
    assert done.spec.holder_identity == "c"
    assert done.spec.renew_time.microsecond == 0 and done.spec.lease_duration_seconds == 15
    raw = srv.http("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/"
                   "edgecert-leader")[2]
    assert raw["spec"]["renewTime"] == "2026-01-01T00:00:02.000000Z"


def test_events_v1_create_list_and_core_view(api):
    ev = client.EventsV1Api(api)
    e = ev.create_namespaced_event(NS, client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="web.17a"),
        event_time="2026-01-01T00:00:00.000000Z", reporting_controller="edgecert.io/controller",
        reporting_instance="edgecert-0", action="Issue", reason="Issued", type="Normal",
        note="certificate issued",
        regarding=client.V1ObjectReference(kind="Ingress", name="web", namespace=NS,
                                           uid="u-1", api_version="networking.k8s.io/v1")))
    assert e.regarding.uid == "u-1"
    items = ev.list_namespaced_event(NS).items
    assert [(i.metadata.name, i.reason, i.note) for i in items] == \
        [("web.17a", "Issued", "certificate issued")]
    core = client.CoreV1Api(api).list_namespaced_event(
        NS, field_selector="involvedObject.uid=u-1,involvedObject.kind=Ingress").items
    assert [(c.metadata.name, c.message, c.reporting_component, c.involved_object.name)
            for c in core] == [("web.17a", "certificate issued", "edgecert.io/controller", "web")]
    with pytest.raises(ApiException) as x:  # events.k8s.io/v1 validation
        ev.create_namespaced_event(NS, client.EventsV1Event(
            metadata=client.V1ObjectMeta(name="bad"), event_time="2026-01-01T00:00:00.000000Z",
            reason="R", type="Normal"))
    st = status_of(x.value)
    assert x.value.status == 422 and st["reason"] == "Invalid"
    assert {c["field"] for c in st["details"]["causes"]} >= {"reportingController",
                                                              "reportingInstance", "action"}


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "certificates.edgecert.io"},
    "spec": {"group": "edgecert.io", "scope": "Namespaced",
             "names": {"plural": "certificates", "singular": "certificate",
                       "kind": "Certificate", "shortNames": ["cert"]},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {
                               "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_custom_objects_api_on_crd(api, srv):
    client.ApiextensionsV1Api(api).create_custom_resource_definition(CRD)
    co = client.CustomObjectsApi(api)
    args = ("edgecert.io", "v1alpha1", NS, "certificates")
    c = co.create_namespaced_custom_object(*args, {
        "apiVersion": "edgecert.io/v1alpha1", "kind": "Certificate",
        "metadata": {"name": "web"}, "spec": {"dnsNames": ["a.example.com"]},
        "status": {"ready": True}})
    assert c["metadata"]["generation"] == 1 and "status" not in c
    lst = co.list_namespaced_custom_object(*args)
    assert lst["kind"] == "CertificateList"
    assert lst["items"][0]["kind"] == "Certificate"  # CR list items carry kind
    p = co.patch_namespaced_custom_object(*args, "web", {"spec": {"dnsNames": ["b.example.com"]}})
    assert p["spec"]["dnsNames"] == ["b.example.com"] and p["metadata"]["generation"] == 2
    s = co.patch_namespaced_custom_object_status(*args, "web", {"status": {"ready": True},
                                                                "spec": {"dnsNames": []}})
    assert s["status"] == {"ready": True} and s["spec"]["dnsNames"] == ["b.example.com"]
    assert s["metadata"]["generation"] == 2
    # strategic merge patch is not defined for custom resources
    st, _, body = srv.http("PATCH", "/apis/edgecert.io/v1alpha1/namespaces/default/"
                           "certificates/web", {"metadata": {"labels": {"a": "b"}}},
                           headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert st == 415 and body["reason"] == "UnsupportedMediaType"
    # PUT of a CR needs a resourceVersion
    body = dict(s)
    body["metadata"] = dict(s["metadata"])
    del body["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as e:
        co.replace_namespaced_custom_object(*args, "web", body)
    assert e.value.status == 422
    # the dynamic client discovers the new kind
    dyn = dynamic.DynamicClient(api)
    certs = dyn.resources.get(api_version="edgecert.io/v1alpha1", kind="Certificate")
    assert [i.metadata.name for i in certs.get(namespace=NS).items] == ["web"]
    co.delete_namespaced_custom_object(*args, "web")
    assert co.list_namespaced_custom_object(*args)["items"] == []


def test_https_token_auth_and_rotation(tmp_path):
    s = F.start(tmp_path, tls=True, token="first-token")
    try:
        with api_client(s) as api:
            names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
            assert "default" in names and "kube-system" in names
            s.set_token("second-token")
            with pytest.raises(ApiException) as e:
                client.CoreV1Api(api).list_namespace()
            assert e.value.status == 401 and status_of(e.value)["reason"] == "Unauthorized"
        # lower-case scheme, as python's in-cluster config sends it
        st, _, _ = s.http("GET", "/api/v1/namespaces",
                          headers={"Authorization": "bearer second-token"}, token="")
        assert st == 200
        assert s.http("GET", "/api/v1/namespaces", token="nope")[0] == 401
        st, _, body = s.http("GET", "/version", token="")  # no Authorization header at all
        assert st == 401 and body["kind"] == "Status"
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(s.kubeconfig), client_configuration=cfg)
        cfg.api_key = {"authorization": "Bearer second-token"}
        with client.ApiClient(cfg) as api:
            assert client.CoreV1Api(api).read_namespace("default").status.phase == "Active"
    finally:
        s.stop()


def test_watch_selectors_bookmarks_and_boolean_spellings(tmp_path):
    s = F.start(tmp_path, args=["--bookmark-interval", "0.3"])
    try:
        with api_client(s) as api:
            core = client.CoreV1Api(api)
            rv = core.list_namespaced_secret(NS).metadata.resource_version
            got = []

            def consume():
                for ev in watch.Watch().stream(core.list_namespaced_secret, NS,
                                               resource_version=rv, label_selector="app=web",
                                               allow_watch_bookmarks=True, timeout_seconds=10):
                    got.append((ev["type"], ev["raw_object"]["metadata"].get("name"),
                                ev["raw_object"]["metadata"]["resourceVersion"]))
                    if ev["type"] == "DELETED":
                        return
            t = threading.Thread(target=consume)
            t.start()
            time.sleep(0.8)
            core.create_namespaced_secret(NS, secret("other"))  # never matches
            core.create_namespaced_secret(NS, secret("w", {"app": "web"}))
            core.patch_namespaced_secret("w", NS, {"metadata": {"labels": {"x": "1"}}})
            core.patch_namespaced_secret("w", NS, {"metadata": {"labels": {"app": "api"}}})
            t.join(15)
            objs = [g[:2] for g in got if g[0] != "BOOKMARK"]
            # leaving the selector is a DELETED for this watcher
            assert objs == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
            assert any(g[0] == "BOOKMARK" for g in got)
            rvs = [int(g[2]) for g in got]
            assert rvs == sorted(rvs)
        for spelling in ("true", "True", "1", "t", "TRUE"):
            st, hdrs, body = s.http("GET", "/api/v1/namespaces/default/secrets?watch=%s&"
                                    "timeoutSeconds=1&labelSelector=app%%3Dapi" % spelling)
            assert st == 200 and hdrs.get("Transfer-Encoding") == "chunked"
            assert body["type"] == "ADDED" and body["object"]["metadata"]["name"] == "w"
            assert body["object"]["kind"] == "Secret"
    finally:
        s.stop()


def test_pagination_and_consistent_snapshot(api, srv):
    core = client.CoreV1Api(api)
    for i in range(25):
        core.create_namespaced_config_map(NS, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="cm%02d" % i)))
    first = core.list_namespaced_config_map(NS, limit=10)
    assert len(first.items) == 10 and first.metadata._continue
    assert first.metadata.remaining_item_count == 15
    core.delete_namespaced_config_map("cm24", NS)  # after the snapshot
    names = [i.metadata.name for i in first.items]
    cont = first.metadata._continue
    while cont:
        page = core.list_namespaced_config_map(NS, limit=10, _continue=cont)
        assert page.metadata.resource_version == first.metadata.resource_version
        names += [i.metadata.name for i in page.items]
        cont = page.metadata._continue
    assert names == ["cm%02d" % i for i in range(25)]  # cm24 still in the snapshot
    st, _, body = srv.http("GET", "/api/v1/namespaces/default/configmaps?limit=5&continue=xx")
    assert st == 400


def test_finalizers_merge_json_patch_and_dry_run(api, srv):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="f", finalizers=["a/b"]), data={"k": "v"}))
    # with a finalizer the answer is the object (python would force it into a V1Status: raw)
    st, _, d = srv.http("DELETE", "/api/v1/namespaces/default/configmaps/f",
                        {"propagationPolicy": "Background"})
    assert st == 200 and d["kind"] == "ConfigMap" and d["metadata"]["deletionTimestamp"]
    assert core.read_namespaced_config_map("f", NS).metadata.finalizers == ["a/b"]
    with pytest.raises(ApiException) as e:  # no new finalizers while deleting
        core.patch_namespaced_config_map("f", NS, [{"op": "add", "path": "/metadata/finalizers/-",
                                                    "value": "c/d"}])
    assert e.value.status == 422
    core.patch_namespaced_config_map("f", NS, [{"op": "remove", "path": "/metadata/finalizers"}])
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("f", NS)
    core.create_namespaced_config_map(NS, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="m", labels={"a": "1", "b": "2"}), data={"x": "1"}))
    st, _, body = srv.http("PATCH", "/api/v1/namespaces/default/configmaps/m",
                           {"metadata": {"labels": {"a": None}}, "data": {"y": "2"}},
                           headers={"Content-Type": "application/merge-patch+json"})
    assert st == 200 and body["metadata"]["labels"] == {"b": "2"}
    assert body["data"] == {"x": "1", "y": "2"}
    st, _, body = srv.http("PATCH", "/api/v1/namespaces/default/configmaps/m?dryRun=All",
                           {"data": {"z": "3"}},
                           headers={"Content-Type": "application/merge-patch+json"})
    assert st == 200 and body["data"]["z"] == "3"
    assert "z" not in core.read_namespaced_config_map("m", NS).data
    st, _, body = srv.http("POST", "/api/v1/namespaces/default/configmaps?dryRun=All",
                           {"metadata": {"name": "dry"}})
    assert st == 201 and srv.http("GET", "/api/v1/namespaces/default/configmaps/dry")[0] == 404
    # server-side apply creates, then owns; unknown content type is 415
    st, _, body = srv.http("PATCH", "/api/v1/namespaces/default/configmaps/ssa?fieldManager=me",
                           b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},'
                           b'"data":{"a":"b"}}',
                           headers={"Content-Type": "application/apply-patch+yaml"})
    assert st == 201 and body["metadata"]["managedFields"][0]["operation"] == "Apply"
    st, _, body = srv.http("PATCH", "/api/v1/namespaces/default/configmaps/ssa", b"{}",
                           headers={"Content-Type": "text/plain"})
    assert st == 415


def test_namespace_delete_cascades(api, srv):
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="tmp")))
    core.create_namespaced_secret("tmp", secret("a"))
    core.create_namespaced_config_map("tmp", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="held", finalizers=["x/y"])))
    st, _, ns = srv.http("DELETE", "/api/v1/namespaces/tmp")
    assert st == 200 and ns["status"]["phase"] == "Terminating"
    assert core.list_namespaced_secret("tmp").items == []
    with pytest.raises(ApiException) as e:
        core.create_namespaced_secret("tmp", secret("b"))
    assert e.value.status == 403
    core.patch_namespaced_config_map("held", "tmp", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as e:
        core.read_namespace("tmp")
    assert e.value.status == 404


def test_faults_throttle_500_delay_drop(srv):
    srv.fault("throttle", retry_after=3, path_prefix="/api/v1/namespaces/default/secrets")
    st, hdrs, body = srv.http("GET", "/api/v1/namespaces/default/secrets")
    assert st == 429 and hdrs["Retry-After"] == "3"
    assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 3
    assert srv.http("GET", "/api/v1/namespaces/default/secrets")[0] == 200
    srv.fault("error_500", count=2)
    assert [srv.http("GET", "/api/v1/namespaces")[0] for _ in range(3)] == [500, 500, 200]
    srv.fault("delay", ms=300)
    t0 = time.time()
    srv.http("GET", "/api/v1/namespaces")
    assert time.time() - t0 >= 0.3
    # drop_watches: open watch streams end abruptly (no terminating chunk)
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(b"GET /api/v1/namespaces/default/secrets?watch=true&resourceVersion=1 "
                 b"HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(10)
    head = sock.recv(4096)
    assert b"200 OK" in head and b"chunked" in head
    assert srv.fault("drop_watches")["dropped"] == 1
    rest = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    assert b"0\r\n\r\n" not in rest
    sock.close()
    srv.fault("drop_next", path_prefix="/api/v1/namespaces/kube-system")
    with pytest.raises(Exception):
        urllib.request.urlopen(srv.url + "/api/v1/namespaces/kube-system", timeout=5).read()
    assert srv.http("GET", "/api/v1/namespaces/kube-system")[0] == 200


def test_scale_10k_objects_and_50_watchers(srv):
    """10,000 Secrets and 50 watchers: bulk load, paginated list, fan-out of one event."""
    items = [{"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "s%05d" % i, "namespace": NS, "labels": {"i": str(i % 10)}},
              "type": "Opaque", "data": {"tls.crt": base64.b64encode(b"x" * 64).decode()}}
             for i in range(10000)]
    t0 = time.time()
    st, _, body = srv.http("POST", "/_debug/load", {"items": items}, timeout=120)
    load_s = time.time() - t0
    assert st == 201 and body["created"] == 10000
    t0 = time.time()
    n, cont, pages = 0, "", 0
    while True:
        q = "limit=500" + ("&continue=" + cont if cont else "")
        page = srv.http("GET", "/api/v1/namespaces/default/secrets?" + q)[2]
        n += len(page["items"])
        pages += 1
        cont = page["metadata"].get("continue")
        if not cont:
            break
    list_s = time.time() - t0
    assert n == 10000 and pages == 20
    rv = page["metadata"]["resourceVersion"]
    socks = []
    for _ in range(50):
        c = socket.create_connection(("127.0.0.1", srv.port))
        c.sendall(("GET /api/v1/namespaces/default/secrets?watch=true&resourceVersion=%s "
                   "HTTP/1.1\r\nHost: x\r\n\r\n" % rv).encode())
        c.settimeout(20)
        socks.append(c)
    for c in socks:
        assert b"200 OK" in c.recv(4096)
    t0 = time.time()
    srv.http("POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": "fanout"}})
    for c in socks:
        buf = b""
        while b"fanout" not in buf:
            buf += c.recv(65536)
        c.close()
    fan_s = time.time() - t0
    print("\nscale: load 10k %.2fs, list 10k in 20 pages %.2fs, 50-watcher fan-out %.3fs"
          % (load_s, list_s, fan_s))
    assert list_s < 15 and fan_s < 5


def watch_events(srv, path, n, timeout=10):
    """Read n newline-delimited events of a (plain HTTP) watch with http.client."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    out = []
    while len(out) < n:
        line = resp.readline()
        if not line:
            break
        assert line.endswith(b"\n")
        out.append(json.loads(line))
    conn.close()
    return out


def test_raw_wire_details(srv):
    base = "/api/v1/namespaces/default/configmaps"
    for n in ("a", "b"):
        assert srv.http("POST", base, {"metadata": {"name": n, "labels": {"k": n}}})[0] == 201
    # sendInitialEvents: ADDED for each object, then the initial-events-end BOOKMARK
    evs = watch_events(srv, base + "?watch=true&sendInitialEvents=true&allowWatchBookmarks="
                       "true&resourceVersionMatch=NotOlderThan&resourceVersion=", 3)
    assert [e["type"] for e in evs] == ["ADDED", "ADDED", "BOOKMARK"]
    assert evs[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert srv.http("GET", base + "?watch=true&sendInitialEvents=true")[0] == 422
    # legacy /watch/ path, and notin
    evs = watch_events(srv, "/api/v1/watch/namespaces/default/configmaps?labelSelector="
                       "k%20notin%20(a)&timeoutSeconds=2", 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "b")]
    # a resourceVersion from the future
    st, _, body = srv.http("GET", base + "?resourceVersion=999999")
    assert st == 504 and body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    # delete preconditions
    st, _, body = srv.http("DELETE", base + "/a", {"preconditions": {"uid": "not-the-uid"}})
    assert st == 409 and body["reason"] == "Conflict" and "Precondition failed" in body["message"]
    # deletecollection with a selector
    st, _, body = srv.http("DELETE", base + "?labelSelector=k%3Da")
    assert st == 200 and [i["metadata"]["name"] for i in body["items"]] == ["a"]
    assert [i["metadata"]["name"] for i in srv.http("GET", base)[2]["items"]] == ["b"]
    # Table rendering as kubectl asks for it
    st, _, t = srv.http("GET", "/api/v1/namespaces/default/secrets", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    assert st == 200 and t["kind"] == "Table"
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
    # unknown paths are a 404 Status; Secret type is immutable
    st, _, body = srv.http("GET", "/apis/nope.example.com/v1/things")
    assert st == 404 and body["message"] == "the server could not find the requested resource"
    srv.http("POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}})
    st, _, body = srv.http("PATCH", "/api/v1/namespaces/default/secrets/s", {"type": "x/y"},
                           headers={"Content-Type": "application/merge-patch+json"})
    assert st == 422 and body["details"]["causes"][0]["field"] == "type"
    # unknown fields of built-in kinds are dropped with a warning (fieldValidation=Warn default)
    st, hdrs, body = srv.http("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                              {"metadata": {"name": "l", "bogus": 1},
                               "spec": {"holderIdentity": "a", "holdr": "b"}})
    assert st == 201 and body["spec"] == {"holderIdentity": "a"}
    assert "bogus" not in body["metadata"]
    assert 'unknown field' in hdrs.get("Warning", "")
    # CRD selectableFields become field selectors
    crd = json.loads(json.dumps(CRD))
    crd["spec"]["versions"][0]["selectableFields"] = [{"jsonPath": ".spec.issuer"}]
    assert srv.http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                    crd)[0] == 201
    cb = "/apis/edgecert.io/v1alpha1/namespaces/default/certificates"
    for n, iss in (("c1", "le"), ("c2", "zerossl")):
        assert srv.http("POST", cb, {"apiVersion": "edgecert.io/v1alpha1", "kind": "Certificate",
                                     "metadata": {"name": n}, "spec": {"issuer": iss}})[0] == 201
    st, _, body = srv.http("GET", cb + "?fieldSelector=spec.issuer%3Dzerossl")
    assert st == 200 and [i["metadata"]["name"] for i in body["items"]] == ["c2"]
    st, _, _ = srv.http("GET", cb + "?fieldSelector=spec.other%3Dx")
    assert st == 400


def test_watchers_of_closed_connections_are_released(srv):
    for _ in range(10):
        c = socket.create_connection(("127.0.0.1", srv.port))
        c.sendall(b"GET /api/v1/namespaces/default/secrets?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in c.recv(4096)
        c.close()
    deadline = time.time() + 10
    while srv.stats()["watchers"] and time.time() < deadline:
        time.sleep(0.2)
    assert srv.stats()["watchers"] == 0


def test_client_certificate_auth(tmp_path):
    s = F.start(tmp_path, tls=True, client_cert=True)
    try:
        with api_client(s) as api:  # kubeconfig with client-certificate/client-key
            assert client.CoreV1Api(api).read_namespace("default").metadata.name == "default"
        st, _, body = s.http("GET", "/api/v1/namespaces", client_cert=False)
        assert st == 401 and body["reason"] == "Unauthorized"
    finally:
        s.stop()


def test_cluster_scoped_crd_and_gateway_versions(api, srv):
    crd = json.loads(json.dumps(CRD))
    crd["metadata"]["name"] = "clusterissuers.edgecert.io"
    crd["spec"].update(scope="Cluster", names={"plural": "clusterissuers", "kind": "ClusterIssuer",
                                               "singular": "clusterissuer"})
    client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    co = client.CustomObjectsApi(api)
    ci = co.create_cluster_custom_object("edgecert.io", "v1alpha1", "clusterissuers", {
        "apiVersion": "edgecert.io/v1alpha1", "kind": "ClusterIssuer",
        "metadata": {"name": "le"}, "spec": {"acme": {"server": "https://acme.example/dir"}}})
    assert "namespace" not in ci["metadata"]
    assert [i["metadata"]["name"] for i in co.list_cluster_custom_object(
        "edgecert.io", "v1alpha1", "clusterissuers")["items"]] == ["le"]
    st = co.patch_cluster_custom_object_status("edgecert.io", "v1alpha1", "clusterissuers",
                                               "le", {"status": {"ready": True}})
    assert st["status"] == {"ready": True}
    # a namespaced path for a cluster-scoped kind does not exist
    assert srv.http("GET", "/apis/edgecert.io/v1alpha1/namespaces/default/clusterissuers/le"
                    )[0] == 404
    # Gateway API: one store behind v1 and v1beta1 (ReferenceGrant is stored as v1beta1)
    gw = "gateway.networking.k8s.io"
    co.create_namespaced_custom_object(gw, "v1beta1", NS, "referencegrants", {
        "apiVersion": gw + "/v1beta1", "kind": "ReferenceGrant", "metadata": {"name": "rg"},
        "spec": {"from": [{"group": gw, "kind": "Gateway", "namespace": "gw-ns"}],
                 "to": [{"group": "", "kind": "Secret"}]}})
    rg = co.get_namespaced_custom_object(gw, "v1", NS, "referencegrants", "rg")
    assert rg["apiVersion"] == gw + "/v1" and rg["spec"]["to"] == [{"group": "", "kind": "Secret"}]
    co.create_cluster_custom_object(gw, "v1", "gatewayclasses", {
        "apiVersion": gw + "/v1", "kind": "GatewayClass", "metadata": {"name": "eg"},
        "spec": {"controllerName": "example.com/gateway"}})
    co.create_namespaced_custom_object(gw, "v1", NS, "httproutes", {
        "apiVersion": gw + "/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
        "spec": {"hostnames": ["a.example.com"]}})
    assert co.get_namespaced_custom_object(gw, "v1beta1", NS, "httproutes", "r")["apiVersion"] \
        == gw + "/v1beta1"


def test_crd_delete_ends_watches_and_removes_objects(api, srv):
    client.ApiextensionsV1Api(api).create_custom_resource_definition(CRD)
    base = "/apis/edgecert.io/v1alpha1/namespaces/default/certificates"
    assert srv.http("POST", base, {"apiVersion": "edgecert.io/v1alpha1", "kind": "Certificate",
                                   "metadata": {"name": "c"}})[0] == 201
    got = []
    rv = srv.http("GET", base)[2]["metadata"]["resourceVersion"]
    t = threading.Thread(target=lambda: got.extend(
        watch_events(srv, base + "?watch=1&resourceVersion=" + rv, 100, timeout=20)))
    t.start()
    time.sleep(0.5)
    client.ApiextensionsV1Api(api).delete_custom_resource_definition("certificates.edgecert.io")
    t.join(15)
    assert not t.is_alive()  # the stream ended when the kind went away
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [("DELETED", "c")]
    assert srv.http("GET", base)[0] == 404


def test_concurrent_writers_watchers_see_one_consistent_history(srv):
    """4 writers race on 20 names (create/update/delete); 5 watchers from the same
    resourceVersion must see the same strictly increasing event sequence, and replaying it
    must give the final list."""
    base = "/api/v1/namespaces/default/configmaps"
    rv0 = srv.http("GET", base)[2]["metadata"]["resourceVersion"]
    results = [[] for _ in range(5)]

    def watcher(out):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request("GET", base + "?watch=true&timeoutSeconds=60&resourceVersion=" + rv0)
        resp = conn.getresponse()
        for line in iter(resp.readline, b""):
            e = json.loads(line)
            if e["object"]["metadata"]["name"] == "end":
                return
            out.append((e["type"], e["object"]["metadata"]["name"],
                        int(e["object"]["metadata"]["resourceVersion"]),
                        e["object"].get("data")))
    ws = [threading.Thread(target=watcher, args=(r,)) for r in results]
    for w in ws:
        w.start()

    def writer(k):
        import random
        rnd = random.Random(k)
        for i in range(60):
            name = "c%d" % rnd.randrange(20)
            op = rnd.choice(["create", "update", "delete"])
            if op == "create":
                srv.http("POST", base, {"metadata": {"name": name}, "data": {"w": str(k)}})
            elif op == "update":
                srv.http("PATCH", base + "/" + name, {"data": {"i": str(i)}},
                         headers={"Content-Type": "application/merge-patch+json"})
            else:
                srv.http("DELETE", base + "/" + name)
    wr = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in wr:
        t.start()
    for t in wr:
        t.join()
    srv.http("POST", base, {"metadata": {"name": "end"}})  # the watchers stop here
    for w in ws:
        w.join(20)
    assert results[0] and all(r == results[0] for r in results[1:])
    rvs = [e[2] for e in results[0]]
    assert rvs == sorted(set(rvs))
    state = {}
    for typ, name, _, data in results[0]:
        if typ == "DELETED":
            assert name in state
            del state[name]
        else:
            assert (typ == "ADDED") == (name not in state)
            state[name] = data
    final = {i["metadata"]["name"]: i.get("data") for i in srv.http("GET", base)[2]["items"]
             if i["metadata"]["name"] != "end"}
    assert state == final
