"""Conformance of the test API server (tests/apiserver) against a real client: kubectl.

Each test starts its own server on a free port with a private kubeconfig and discovery cache.
kubectl is /usr/lib/google-cloud-sdk/bin/kubectl.1.32 (what the /usr/bin/kubectl dispatcher runs
for the server's minor version), see apiserver_fixture.kubectl_path(); test_dispatcher drives the
dispatcher itself. Validation is left at kubectl's default (--validate=strict), which only works
if the server's OpenAPI v3 is good enough.
"""
import json
import os
import subprocess
import time

import pytest
import yaml

import apiserver_fixture as F

pytestmark = pytest.mark.skipif(F.kubectl_path() is None,
                                reason="kubectl is not installed on this machine")

SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: tls1
  labels: {app: web}
type: kubernetes.io/tls
stringData:
  tls.crt: CERT
  tls.key: KEY
"""

INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {edgecert.io/issuer: le}
spec:
  ingressClassName: nginx
  tls:
  - hosts: [a.example.com]
    secretName: web-tls
  rules:
  - host: a.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
"""

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"""


@pytest.fixture
def srv(tmp_path):
    s = F.start(tmp_path)
    yield s
    s.stop()


def obj(srv, *args):
    return json.loads(srv.kubectl("get", *args, "-o", "json").stdout)


def wait_for(cond, timeout=20, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def test_create_get_json_yaml_table(srv):
    assert srv.kubectl("create", "-f", "-", input=SECRET).stdout_text.strip() == \
        "secret/tls1 created"
    s = obj(srv, "secret", "tls1")
    md = s["metadata"]
    assert s["type"] == "kubernetes.io/tls" and s["data"]["tls.crt"] == "Q0VSVA=="
    assert md["uid"] and md["creationTimestamp"].endswith("Z") and md["resourceVersion"].isdigit()
    y = yaml.safe_load(srv.kubectl("get", "secret", "tls1", "-o", "yaml").stdout)
    assert y["metadata"]["uid"] == md["uid"] and "stringData" not in y
    table = srv.kubectl("get", "secrets").stdout_text.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert table[1].split()[:3] == ["tls1", "kubernetes.io/tls", "2"]
    # kubectl validated with its default --validate=strict: OpenAPI v3 fetched, Strict sent.
    reqs = srv.requests()
    assert any(r["path"] == "/openapi/v3" for r in reqs)
    post = [r for r in reqs if r["method"] == "POST"]
    assert post and "fieldValidation=Strict" in post[0]["query"] and post[0]["status"] == 201
    again = srv.kubectl("create", "-f", "-", input=SECRET, check=False)
    assert again.returncode != 0
    assert 'Error from server (AlreadyExists): error when creating "STDIN": secrets "tls1" ' \
           'already exists' in again.stderr_text
    missing = srv.kubectl("get", "secret", "nope", check=False)
    assert 'Error from server (NotFound): secrets "nope" not found' in missing.stderr_text


def test_field_validation_strict_and_warn(srv):
    bad = SECRET.replace("type: kubernetes.io/tls", "type: kubernetes.io/tls\nspec: {x: 1}")
    r = srv.kubectl("create", "-f", "-", input=bad, check=False)
    assert r.returncode != 0
    assert ('Error from server (BadRequest): error when creating "STDIN": Secret in version "v1" '
            'cannot be handled as a Secret: strict decoding error: unknown field "spec"'
            ) in r.stderr_text
    r = srv.kubectl("create", "--validate=warn", "-f", "-", input=bad)
    assert 'Warning: unknown field "spec"' in r.stderr_text
    assert "spec" not in obj(srv, "secret", "tls1")  # dropped, like a typed decoder does
    ing = INGRESS.replace("secretName: web-tls", "secretName: web-tls\n    sercretName: typo")
    r = srv.kubectl("apply", "-f", "-", input=ing, check=False)
    assert r.returncode != 0 and 'unknown field "spec.tls[0].sercretName"' in r.stderr_text


def test_get_watch_sees_add_modify_delete(srv):
    kc = F.kubectl_path()
    srv.kubectl("get", "secrets")  # warm the discovery cache
    p = subprocess.Popen([kc, "--kubeconfig", str(srv.kubeconfig), "--cache-dir",
                          str(srv.cache_dir), "get", "secrets", "-w", "--output-watch-events"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, HOME=str(srv.dir)))
    lines = []
    import threading
    t = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
    t.start()
    try:
        wait_for(lambda: any(r["query"].find("watch=true") >= 0 for r in srv.requests()),
                 what="kubectl to start watching")
        srv.kubectl("create", "secret", "generic", "w1", "--from-literal=a=b")
        srv.kubectl("label", "secret", "w1", "x=y")
        srv.kubectl("delete", "secret", "w1")
        wait_for(lambda: any(ln.split()[:2] == ["DELETED", "w1"] for ln in lines),
                 what="DELETED event in kubectl get -w output")
        events = [ln.split()[:2] for ln in lines if ln.strip()]
        assert events[0] == ["EVENT", "NAME"]
        assert ["ADDED", "w1"] in events and ["MODIFIED", "w1"] in events
        assert events.index(["ADDED", "w1"]) < events.index(["MODIFIED", "w1"]) < \
            events.index(["DELETED", "w1"])
    finally:
        p.terminate()
        p.wait(10)


def test_apply_client_side_twice_with_update(srv):
    assert "created" in srv.kubectl("apply", "-f", "-", input=INGRESS).stdout_text
    ing = obj(srv, "ingress", "web")
    assert ing["metadata"]["generation"] == 1
    assert "kubectl.kubernetes.io/last-applied-configuration" in ing["metadata"]["annotations"]
    assert "unchanged" in srv.kubectl("apply", "-f", "-", input=INGRESS).stdout_text
    changed = INGRESS.replace("a.example.com", "b.example.com")
    assert "configured" in srv.kubectl("apply", "-f", "-", input=changed).stdout_text
    ing2 = obj(srv, "ingress", "web")
    assert ing2["spec"]["tls"][0]["hosts"] == ["b.example.com"]
    assert ing2["spec"]["rules"][0]["host"] == "b.example.com"
    assert ing2["metadata"]["generation"] == 2
    assert ing2["metadata"]["uid"] == ing["metadata"]["uid"]
    patches = [r for r in srv.requests() if r["method"] == "PATCH"]
    assert patches[-1]["contentType"].startswith("application/strategic-merge-patch+json")
    # A Gateway is a custom resource to kubectl: client-side apply uses a merge patch.
    gw = ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
          "spec:\n  gatewayClassName: eg\n  listeners:\n  - {name: https, port: 443, "
          "protocol: HTTPS, hostname: a.example.com}\n")
    srv.kubectl("apply", "-f", "-", input=gw)
    srv.kubectl("apply", "-f", "-", input=gw.replace("port: 443", "port: 8443"))
    assert obj(srv, "gateway", "gw")["spec"]["listeners"][0]["port"] == 8443
    patches = [r for r in srv.requests() if r["method"] == "PATCH"]
    assert patches[-1]["contentType"].startswith("application/merge-patch+json")
    out = srv.kubectl("get", "gateways").stdout_text.splitlines()
    assert out[0].split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    assert out[1].split()[:2] == ["gw", "eg"]


def test_apply_server_side(srv):
    assert "serverside-applied" in srv.kubectl("apply", "--server-side", "-f", "-",
                                               input=SECRET).stdout_text
    s = obj(srv, "secret", "tls1", "--show-managed-fields")
    mf = s["metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in mf] == [("kubectl", "Apply")]
    assert "f:labels" in mf[0]["fieldsV1"]["f:metadata"]
    # Another manager takes a field; re-applying the old value conflicts unless forced.
    srv.kubectl("label", "secret", "tls1", "app=other", "--overwrite")
    r = srv.kubectl("apply", "--server-side", "-f", "-", input=SECRET, check=False)
    assert r.returncode != 0 and "conflict" in r.stderr_text.lower()
    assert "kubectl-label" in r.stderr_text and ".metadata.labels.app" in r.stderr_text
    srv.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=SECRET)
    assert obj(srv, "secret", "tls1")["metadata"]["labels"]["app"] == "web"
    # Dropping a field from the applied config removes it (the manager owned it alone).
    srv.kubectl("apply", "--server-side", "-f", "-",
                input=SECRET.replace("  labels: {app: web}\n", ""))
    assert "app" not in (obj(srv, "secret", "tls1")["metadata"].get("labels") or {})


def test_client_side_then_server_side_apply(srv):
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {a: b}}\ndata: {k: v}\n"
    srv.kubectl("apply", "-f", "-", input=cm)
    # fields applied client-side before do not conflict (lastappliedmanager), and the
    # last-applied annotation follows the server-side applied config (lastappliedupdater)
    out = srv.kubectl("apply", "--server-side", "-f", "-", input=cm.replace("k: v", "k: w"))
    assert "serverside-applied" in out.stdout_text
    got = obj(srv, "configmap", "c", "--show-managed-fields")
    assert got["data"] == {"k": "w"}
    last = json.loads(got["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"])
    assert last["data"] == {"k": "w"}
    owners = {m["manager"]: m for m in got["metadata"]["managedFields"]}
    assert owners["kubectl"]["operation"] == "Apply"
    assert "f:k" in owners["kubectl"]["fieldsV1"]["f:data"]
    # a different field manager still conflicts
    r = srv.kubectl("apply", "--server-side", "--field-manager", "other", "-f", "-",
                    input=cm.replace("k: v", "k: z"), check=False)
    assert r.returncode != 0 and 'conflict with "kubectl"' in r.stderr_text


def test_patch_merge_json_strategic(srv):
    svc = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n"
           "  - {name: http, port: 80}\n  - {name: https, port: 443}\n")
    srv.kubectl("create", "-f", "-", input=svc)
    # strategic (kubectl's default): Service ports merge by port, maps merge.
    srv.kubectl("patch", "service", "web", "-p",
                '{"metadata":{"labels":{"a":"1"}},"spec":{"ports":[{"port":443,"name":"tls"}]}}')
    s = obj(srv, "service", "web")
    assert [(p["port"], p["name"]) for p in s["spec"]["ports"]] == [(80, "http"), (443, "tls")]
    # merge: lists replaced whole, null deletes
    srv.kubectl("patch", "service", "web", "--type", "merge", "-p",
                '{"metadata":{"labels":{"a":null,"b":"2"}},"spec":{"ports":[{"port":8080}]}}')
    s = obj(srv, "service", "web")
    assert s["metadata"]["labels"] == {"b": "2"}
    assert [p["port"] for p in s["spec"]["ports"]] == [8080]
    # json patch (RFC 6902), including a failing test op
    srv.kubectl("patch", "service", "web", "--type", "json", "-p",
                '[{"op":"add","path":"/metadata/labels/c","value":"3"},'
                '{"op":"replace","path":"/spec/ports/0/port","value":9090}]')
    s = obj(srv, "service", "web")
    assert s["metadata"]["labels"]["c"] == "3" and s["spec"]["ports"][0]["port"] == 9090
    bad = srv.kubectl("patch", "service", "web", "--type", "json", "-p",
                      '[{"op":"test","path":"/metadata/labels/c","value":"nope"}]', check=False)
    assert bad.returncode != 0
    cts = {r["contentType"].split(";")[0] for r in srv.requests() if r["method"] == "PATCH"}
    assert cts == {"application/strategic-merge-patch+json", "application/merge-patch+json",
                   "application/json-patch+json"}


def test_label_and_annotate(srv):
    srv.kubectl("create", "configmap", "cfg", "--from-literal=k=v")
    srv.kubectl("label", "configmap", "cfg", "tier=edge", "team=certs")
    srv.kubectl("annotate", "configmap", "cfg", "note=hello")
    cm = obj(srv, "configmap", "cfg")
    assert cm["metadata"]["labels"] == {"tier": "edge", "team": "certs"}
    assert cm["metadata"]["annotations"]["note"] == "hello"
    srv.kubectl("label", "configmap", "cfg", "team-")
    assert obj(srv, "configmap", "cfg")["metadata"]["labels"] == {"tier": "edge"}
    names = srv.kubectl("get", "cm", "-l", "tier in (edge,core),!team", "-o", "name").stdout_text
    assert names.split() == ["configmap/cfg"]
    assert srv.kubectl("get", "cm", "-l", "tier!=edge", "-o", "name").stdout_text.strip() == ""
    r = srv.kubectl("label", "configmap", "cfg", "tier=core", check=False)
    assert r.returncode != 0 and "already has a value" in r.stderr_text


def test_replace_with_stale_object_conflicts(srv, tmp_path):
    srv.kubectl("create", "-f", "-", input=SECRET)
    stale = srv.kubectl("get", "secret", "tls1", "-o", "yaml").stdout_text
    srv.kubectl("label", "secret", "tls1", "bump=1")
    r = srv.kubectl("replace", "-f", "-", input=stale, check=False)
    assert r.returncode != 0
    assert ('Error from server (Conflict): error when replacing "STDIN": Operation cannot be '
            'fulfilled on secrets "tls1": the object has been modified; please apply your '
            'changes to the latest version and try again') in r.stderr_text
    fresh = srv.kubectl("get", "secret", "tls1", "-o", "yaml").stdout_text
    assert "replaced" in srv.kubectl("replace", "-f", "-",
                                     input=fresh.replace("bump: \"1\"", "bump: \"2\"")).stdout_text
    assert obj(srv, "secret", "tls1")["metadata"]["labels"]["bump"] == "2"


def test_delete_with_finalizer(srv):
    cm = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n"
          "  finalizers: [example.com/hold]\ndata: {a: b}\n")
    srv.kubectl("create", "-f", "-", input=cm)
    kc = F.kubectl_path()
    # `kubectl delete` waits (watch with fieldSelector=metadata.name) until the object is gone.
    p = subprocess.Popen([kc, "--kubeconfig", str(srv.kubeconfig), "--cache-dir",
                          str(srv.cache_dir), "delete", "configmap", "held", "--timeout=60s"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, HOME=str(srv.dir)))
    try:
        wait_for(lambda: obj(srv, "configmap", "held")["metadata"].get("deletionTimestamp"),
                 what="deletionTimestamp")
        wait_for(lambda: any("fieldSelector=metadata.name" in r["query"] and "watch=true"
                             in r["query"] for r in srv.requests()), what="delete-wait watch")
        held = obj(srv, "configmap", "held")
        assert held["metadata"]["finalizers"] == ["example.com/hold"]
        assert p.poll() is None  # still waiting: the finalizer holds the object
        srv.kubectl("patch", "configmap", "held", "--type", "json", "-p",
                    '[{"op":"remove","path":"/metadata/finalizers"}]')
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert 'configmap "held" deleted' in out
    finally:
        if p.poll() is None:
            p.kill()
    r = srv.kubectl("get", "configmap", "held", check=False)
    assert "NotFound" in r.stderr_text


def test_describe_shows_events(srv):
    srv.kubectl("apply", "-f", "-", input=INGRESS)
    ing = obj(srv, "ingress", "web")
    ev = {"apiVersion": "v1", "kind": "Event",
          "metadata": {"name": "web.1234", "namespace": "default"},
          "involvedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                             "name": "web", "namespace": "default",
                             "uid": ing["metadata"]["uid"]},
          "reason": "CreateCertificate", "message": "Successfully created Certificate web-tls",
          "type": "Normal", "count": 1, "source": {"component": "edgecert"},
          "firstTimestamp": ing["metadata"]["creationTimestamp"],
          "lastTimestamp": ing["metadata"]["creationTimestamp"]}
    st, _, body = srv.http("POST", "/api/v1/namespaces/default/events", ev)
    assert st == 201, body
    # An event for another object with the same name but another uid must not show up.
    ev2 = json.loads(json.dumps(ev))
    ev2["metadata"]["name"] = "web.5678"
    ev2["involvedObject"]["uid"] = "00000000-0000-0000-0000-000000000000"
    ev2["reason"] = "OtherObject"
    assert srv.http("POST", "/api/v1/namespaces/default/events", ev2)[0] == 201
    out = srv.kubectl("describe", "ingress", "web").stdout_text
    assert "Events:" in out and "CreateCertificate" in out
    assert "Successfully created Certificate web-tls" in out and "edgecert" in out
    assert "OtherObject" not in out
    assert "web-tls terminates a.example.com" in out
    q = [r["query"] for r in srv.requests() if r["path"] == "/api/v1/namespaces/default/events"
         and r["method"] == "GET"]
    assert any("involvedObject.uid%3D" + ing["metadata"]["uid"] in x or
               "involvedObject.uid=" + ing["metadata"]["uid"] in x for x in q)
    evs = srv.kubectl("get", "events").stdout_text
    assert "CreateCertificate" in evs and "ingress/web" in evs


def test_crd_apply_then_get_with_printer_columns(srv):
    assert "created" in srv.kubectl("apply", "-f", "-", input=CRD).stdout_text
    crd = obj(srv, "crd", "widgets.example.com")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"
    w = ("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\n"
         "spec: {size: 3}\nstatus: {conditions: [{type: Ready, status: 'True'}]}\n")
    assert "created" in srv.kubectl("apply", "-f", "-", input=w).stdout_text
    lines = srv.kubectl("get", "widgets").stdout_text.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    # status is a subresource: the main endpoint dropped it on create (READY cell empty)
    assert lines[1].split()[:2] == ["w1", "3"] and len(lines[1].split()) == 3
    srv.kubectl("patch", "widget", "w1", "--subresource=status", "--type=merge", "-p",
                '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}')
    lines = srv.kubectl("get", "wdg").stdout_text.splitlines()
    assert lines[1].split()[:3] == ["w1", "3", "True"]
    got = obj(srv, "widget", "w1")
    assert got["metadata"]["generation"] == 1  # status changes do not bump generation
    srv.kubectl("apply", "-f", "-", input=w.replace("size: 3", "size: 4"))
    got = obj(srv, "widget", "w1")
    assert got["spec"]["size"] == 4 and got["metadata"]["generation"] == 2
    assert got["status"]["conditions"][0]["status"] == "True"
    # deleting the CRD removes its kind from discovery and its objects
    srv.kubectl("delete", "crd", "widgets.example.com")
    r = srv.kubectl("get", "widgets", check=False)
    assert r.returncode != 0
    # kubectl's cached discovery still knows "widgets"; the server no longer serves them.
    assert ("doesn't have a resource type" in r.stderr_text
            or "could not find the requested resource" in r.stderr_text)
    assert srv.http("GET", "/apis/example.com/v1/namespaces/default/widgets")[0] == 404


def test_dispatcher_picks_binary_from_version(srv):
    disp = "/usr/lib/google-cloud-sdk/bin/kubectl"
    if not os.access(disp, os.X_OK):
        pytest.skip("the kubectl dispatcher is not installed")
    r = subprocess.run([disp, "--kubeconfig", str(srv.kubeconfig), "--cache-dir",
                        str(srv.cache_dir), "get", "namespaces", "-o", "name"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=str(srv.dir)))
    assert r.returncode == 0, r.stderr
    assert "namespace/default" in r.stdout.split()
    first = srv.requests()[0]
    assert first["path"] == "/version" and "dispatcher" in first["userAgent"]


def test_https_and_token(tmp_path):
    s = F.start(tmp_path, tls=True, token="s3cret-token")
    try:
        s.kubectl("create", "-f", "-", input=SECRET)
        assert "tls1" in s.kubectl("get", "secrets").stdout_text
        cfg = yaml.safe_load(s.kubeconfig.read_text())
        cfg["users"][0]["user"]["token"] = "wrong"
        bad = tmp_path / "bad-kubeconfig"
        bad.write_text(yaml.safe_dump(cfg))
        r = s.kubectl("--kubeconfig", str(bad), "get", "secrets", check=False)
        assert r.returncode != 0 and "Unauthorized" in r.stderr_text
    finally:
        s.stop()


def test_client_certificate(tmp_path):
    s = F.start(tmp_path, tls=True, client_cert=True)
    try:
        assert "namespace/default" in s.kubectl("get", "ns", "-o", "name").stdout_text.split()
        cfg = yaml.safe_load(s.kubeconfig.read_text())
        del cfg["users"][0]["user"]["client-certificate"]
        del cfg["users"][0]["user"]["client-key"]
        # (an empty user would make kubectl prompt for basic auth before sending anything)
        cfg["users"][0]["user"]["token"] = "not-a-valid-token"
        anon = tmp_path / "nocert-kubeconfig"
        anon.write_text(yaml.safe_dump(cfg))
        r = s.kubectl("--kubeconfig", str(anon), "get", "ns", check=False)
        assert r.returncode != 0 and "Unauthorized" in r.stderr_text
        assert any(q["status"] == 401 for q in s.requests())
    finally:
        s.stop()
