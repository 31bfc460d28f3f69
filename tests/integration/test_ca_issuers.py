"""selfSigned and ca issuers with real components: the in-repo API server driven by kubectl, a
separate `edgecert controller`, a separate `edgecert terminator --cert-source kubernetes` serving
what it signs, openssl as the client; and `edgecert run` with the same issuers from a file.

cert-manager's CA bootstrap recipe (selfSigned ClusterIssuer → isCA Certificate → ca issuer →
leaf Certificates, one from an annotated Ingress) is applied as a user would, translated to
edgecert.io/v1alpha1; leaves and CAs are short-lived here so renewals happen during the test.
Bad CA Secrets (missing, no tls.key, a key that does not match, not a CA, expired, expiring before
the leaf) each get their condition and Event, no retry storm, and nothing stored is touched.
CA material the user brings is made with python3-cryptography."""
import base64
import datetime
import json
import os
import re
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import apiserver_fixture
from controller_fixture import CRDS, Controller, K8sTerminator, apply, condition, get_json, http_get, wait_until
from edgecert_helpers import BIN, openssl
from terminator_fixture import Upstream, free_port, tls_probe

pytestmark = pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")

NS = "default"  # also the controller's --cluster-resource-namespace (controller_fixture)

RECIPE = """
apiVersion: edgecert.io/v1alpha1
kind: ClusterIssuer
metadata:
  name: selfsigned-issuer
spec:
  selfSigned: {}
---
apiVersion: edgecert.io/v1alpha1
kind: Certificate
metadata:
  name: my-selfsigned-ca
  namespace: default
spec:
  isCA: true
  commonName: my-selfsigned-ca
  secretName: root-secret
  privateKey:
    algorithm: ECDSA
    size: 256
  issuerRef:
    name: selfsigned-issuer
    kind: ClusterIssuer
    group: edgecert.io
---
apiVersion: edgecert.io/v1alpha1
kind: ClusterIssuer
metadata:
  name: my-ca-issuer
spec:
  ca:
    secretName: root-secret
---
apiVersion: edgecert.io/v1alpha1
kind: Issuer
metadata:
  name: ca-issuer
  namespace: default
spec:
  ca:
    secretName: root-secret
---
apiVersion: edgecert.io/v1alpha1
kind: Certificate
metadata:
  name: app
  namespace: default
spec:
  secretName: app-tls
  dnsNames: [app.ca.test]
  usages: [digital signature, server auth, client auth]
  subject:
    organizations: [Example]
  duration: 1h
  renewBefore: 59m48s
  issuerRef:
    name: my-ca-issuer
    kind: ClusterIssuer
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: default
  annotations:
    edgecert.io/issuer: ca-issuer
spec:
  tls:
    - hosts: [web.ca.test]
      secretName: web-ca-tls
  rules:
    - host: web.ca.test
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service: {name: web, port: {number: 80}}
---
# A CA renewed during the test (rotationPolicy Always: a new key), and the leaf it signs.
apiVersion: edgecert.io/v1alpha1
kind: Certificate
metadata:
  name: rotating-ca
  namespace: default
spec:
  isCA: true
  commonName: rotating-ca
  secretName: rotating-ca
  duration: 1h
  renewBefore: 59m45s
  issuerRef:
    name: selfsigned-issuer
    kind: ClusterIssuer
---
apiVersion: edgecert.io/v1alpha1
kind: Issuer
metadata:
  name: rotating
  namespace: default
spec:
  ca:
    secretName: rotating-ca
---
apiVersion: edgecert.io/v1alpha1
kind: Certificate
metadata:
  name: rot-leaf
  namespace: default
spec:
  secretName: rot-leaf
  dnsNames: [rot.ca.test]
  issuerRef:
    name: rotating
"""


# ---- certificates a user brings --------------------------------------------------------------

def now():
    return datetime.datetime.now(datetime.timezone.utc)


def pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()).decode()


def make_ca(cn, ca=True, not_before=None, not_after=None):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before or now() - datetime.timedelta(hours=1))
         .not_valid_after(not_after or now() + datetime.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    cert = b.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key(key)


def secret(name, data, type_="kubernetes.io/tls"):
    return {"apiVersion": "v1", "kind": "Secret", "type": type_, "metadata": {"name": name, "namespace": NS},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def ca_issuer(name, secret_name):
    return {"apiVersion": "edgecert.io/v1alpha1", "kind": "Issuer", "metadata": {"name": name, "namespace": NS},
            "spec": {"ca": {"secretName": secret_name}}}


def leaf(name, issuer, dns, **spec):
    s = {"secretName": name, "dnsNames": dns, "issuerRef": {"name": issuer}}
    s.update(spec)
    return {"apiVersion": "edgecert.io/v1alpha1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": NS}, "spec": s}


# ---- reading what the controller did -----------------------------------------------------------

def secret_data(srv, name):
    s = get_json(srv, "secret", name, "-n", NS)
    if not s:
        return None
    return {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}


def pem_cert(text):
    return x509.load_pem_x509_certificate(text.encode())


def ready(srv, kind, name, status="True"):
    obj = get_json(srv, kind, name, "-n", NS)
    c = condition(obj, "Ready")
    return obj if c and c.get("status") == status else None


def events(srv, name):
    items = (get_json(srv, "events", "-A") or {}).get("items", [])
    return [(e["type"], e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


def wait_event(srv, name, reason, timeout=15):
    return wait_until(lambda: [e for e in events(srv, name) if e[1] == reason], timeout,
                      what=f"{reason} Event on {name}")


def verify(tmp, data):
    """openssl verify of the Secret's tls.crt against its own ca.crt."""
    ca, crt = os.path.join(tmp, "ca.crt"), os.path.join(tmp, "tls.crt")
    open(ca, "w").write(data["ca.crt"])
    open(crt, "w").write(data["tls.crt"])
    return openssl("verify", "-CAfile", ca, crt)


def s_client(port, name, cafile):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
                        "-CAfile", cafile, "-verify_return_error", "-verify_hostname", name],
                       input=b"", capture_output=True, timeout=15)
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def ski(cert):
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def aki(cert):
    return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("ca")
    srv = apiserver_fixture.start(d / "api")
    up = Upstream()
    procs = []
    try:
        srv.kubectl("apply", "-f", CRDS)
        term = K8sTerminator(srv, str(d), up.port, free_port(), free_port()).wait_ready()
        procs.append(term)
        ctl = Controller(srv, str(d), "--leader-elect=false").wait_ready()
        procs.append(ctl)
        yield dict(srv=srv, term=term, ctl=ctl, dir=d)
    finally:
        for p in procs:
            p.stop()
        up.close()
        srv.stop()


def test_bootstrap_recipe_served_and_renewed(env, tmp_path):
    srv, term, ctl = env["srv"], env["term"], env["ctl"]
    srv.kubectl("apply", "-f", "-", input=RECIPE)

    iss = wait_until(lambda: ready(srv, "clusterissuer", "selfsigned-issuer"), 15, what="selfSigned Ready")
    assert condition(iss, "Ready")["reason"] == "IsReady"
    ca_secret = wait_until(lambda: secret_data(srv, "root-secret"), 15, what="root-secret")
    ca = pem_cert(ca_secret["tls.crt"])
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.subject.rfc4514_string() == "CN=my-selfsigned-ca" == ca.issuer.rfc4514_string()
    assert ca_secret["ca.crt"] == ca_secret["tls.crt"]  # selfSigned: ca.crt is the certificate
    assert ca.serial_number.bit_length() > 64

    for kind, name in (("clusterissuer", "my-ca-issuer"), ("issuer", "ca-issuer")):
        obj = wait_until(lambda: ready(srv, kind, name), 20, what=f"{name} Ready")
        c = condition(obj, "Ready")
        assert (c["reason"], c["message"]) == ("KeyPairVerified", "Signing CA verified"), c

    # The leaf of the ClusterIssuer, and the one the annotated Ingress asked for.
    app = wait_until(lambda: secret_data(srv, "app-tls"), 20, what="app-tls")
    web = wait_until(lambda: secret_data(srv, "web-ca-tls"), 20, what="web-ca-tls")
    for data in (app, web):
        assert data["ca.crt"] == ca_secret["tls.crt"]
        r = verify(str(tmp_path), data)
        assert r.returncode == 0, r.stdout + r.stderr
        assert aki(pem_cert(data["tls.crt"])) == ski(ca)
    a = pem_cert(app["tls.crt"])
    assert a.issuer == ca.subject
    assert a.subject.rfc4514_string() == "O=Example"
    assert set(a.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not a.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (a.not_valid_after - a.not_valid_before) == datetime.timedelta(hours=1)

    # The terminator serves the Ingress's leaf, and it verifies against the CA.
    cafile = str(tmp_path / "root.pem")
    open(cafile, "w").write(web["ca.crt"])
    w = pem_cert(web["tls.crt"])
    wait_until(lambda: tls_probe(term.tls_port, "web.ca.test")[0] == format(w.serial_number, "x"), 15,
               what="web.ca.test served")
    out = s_client(term.tls_port, "web.ca.test", cafile)
    assert "Verify return code: 0 (ok)" in out, out

    # Status, Events and metrics as for ACME certificates.
    cert = wait_until(lambda: ready(srv, "certificate", "web-ca-tls"), 15, what="web-ca-tls Ready")
    assert cert["status"]["notAfter"] and cert["status"]["renewalTime"]
    wait_event(srv, "web-ca-tls", "Issued")
    assert any("Issued" == e[1] and "Certificate web-ca-tls" in e[2] for e in events(srv, "web"))  # the Ingress
    wait_until(lambda: re.search(r'^edgecert_certificate_expiration_timestamp_seconds\{issuer_kind="ClusterIssuer",'
                                 r'issuer_name="my-ca-issuer",name="app",namespace="default"[,}]', ctl.metrics(), re.M),
               10, what="expiration metric")

    # Renewals: the leaf (renewBefore 59m48s of 1h) gets a new certificate from the same CA; the
    # rotating CA renews with a new key and the leaf it signed is re-signed with it.
    rot_ca0 = pem_cert(wait_until(lambda: secret_data(srv, "rotating-ca"), 15, what="rotating-ca")["tls.crt"])
    rot_leaf0 = pem_cert(wait_until(lambda: secret_data(srv, "rot-leaf"), 20, what="rot-leaf")["tls.crt"])
    # Its 90-day default was cut to the CA's own notAfter, and the Event said so.
    assert rot_leaf0.not_valid_after == rot_ca0.not_valid_after
    assert any("clamped to the CA certificate's notAfter" in e[2] for e in wait_event(srv, "rot-leaf", "Issued"))
    renewed = wait_until(lambda: (lambda d: d if d and pem_cert(d["tls.crt"]).serial_number != a.serial_number
                                  else None)(secret_data(srv, "app-tls")), 30, what="app-tls renewed")
    r = verify(str(tmp_path), renewed)
    assert r.returncode == 0 and renewed["ca.crt"] == ca_secret["tls.crt"], r.stdout + r.stderr
    wait_event(srv, "app", "Renewed")

    def rotated():
        c = secret_data(srv, "rotating-ca")
        lf = secret_data(srv, "rot-leaf")
        if not c or not lf or pem_cert(c["tls.crt"]).serial_number == rot_ca0.serial_number:
            return None
        return (c, lf) if lf["ca.crt"] == c["tls.crt"] else None
    rot_ca, rot_leaf = wait_until(rotated, 40, what="rotating CA renewed and its leaf re-signed")
    assert ski(pem_cert(rot_ca["tls.crt"])) != ski(rot_ca0)  # rotationPolicy Always: a new key
    assert verify(str(tmp_path), rot_leaf).returncode == 0
    stale = dict(rot_leaf, **{"tls.crt": rot_leaf0.public_bytes(serialization.Encoding.PEM).decode()})
    assert verify(str(tmp_path), stale).returncode != 0  # the old leaf does not chain to the new CA
    assert ready(srv, "issuer", "rotating")  # the issuer stayed Ready throughout


def test_bad_ca_secrets_get_a_condition_and_an_event(env):
    srv = env["srv"]
    good_crt, good_key = make_ca("good-ca")
    leaf_crt, leaf_key = make_ca("not-a-ca", ca=False)
    old_crt, old_key = make_ca("old-ca", not_before=now() - datetime.timedelta(days=30),
                               not_after=now() - datetime.timedelta(days=1))
    short_crt, short_key = make_ca("short-ca", not_after=now() + datetime.timedelta(hours=2))
    _, other_key = make_ca("other")
    for obj in (secret("nokey-ca", {"tls.crt": good_crt}, type_="Opaque"),
                secret("mismatch-ca", {"tls.crt": good_crt, "tls.key": other_key}),
                secret("leaf-ca", {"tls.crt": leaf_crt, "tls.key": leaf_key}),
                secret("old-ca", {"tls.crt": old_crt, "tls.key": old_key}),
                secret("short-ca", {"tls.crt": short_crt, "tls.key": short_key})):
        apply(srv, obj)
    versions = {n: get_json(srv, "secret", n)["metadata"]["resourceVersion"]
                for n in ("nokey-ca", "mismatch-ca", "leaf-ca", "old-ca")}
    cases = {  # issuer → (its Secret, reason, what the message says)
        "missing": ("missing-ca", "ErrGetKeyPair", "Secret default/missing-ca not found"),
        "nokey": ("nokey-ca", "ErrGetKeyPair", "Secret default/nokey-ca has no tls.key"),
        "mismatch": ("mismatch-ca", "ErrInvalidKeyPair", "does not match the CA certificate"),
        "notca": ("leaf-ca", "ErrInvalidKeyPair", "is not a CA"),
        "expired": ("old-ca", "ErrInvalidKeyPair", "the CA certificate expired at"),
    }
    for name, (sec, _, _) in cases.items():
        apply(srv, ca_issuer(name, sec))
        apply(srv, leaf(f"{name}-leaf", name, [f"{name}.ca.test"]))
    for name, (sec, reason, needle) in cases.items():
        obj = wait_until(lambda: ready(srv, "issuer", name, "False"), 15, what=f"{name} Ready=False")
        c = condition(obj, "Ready")
        assert c["reason"] == reason and needle in c["message"], c
        ev = wait_event(srv, name, reason)
        assert ev[0][0] == "Warning" and needle in ev[0][2], ev
        # The Certificate says why it waits, once, and nothing is written.
        cert = wait_until(lambda: ready(srv, "certificate", f"{name}-leaf", "False"), 15, what=f"{name}-leaf")
        rc = condition(cert, "Ready")
        assert rc["reason"] == "IssuerNotReady" and needle in rc["message"], rc
        assert "failedIssuanceAttempts" not in cert["status"]
        bad = wait_event(srv, f"{name}-leaf", "BadConfig")
        assert bad[0][0] == "Warning" and needle in bad[0][2], bad
        assert get_json(srv, "secret", f"{name}-leaf") is None

    # No retry storm: over a few seconds, the broken issuers are looked at a bounded number of times.
    srv.requests(clear=True)
    time.sleep(3)  # a window to count requests in, not a wait for a condition
    gets = [r for r in srv.requests() if r["method"] == "GET" and r["path"].endswith("/secrets/missing-ca")]
    assert len(gets) <= 3, gets
    assert len([e for e in events(srv, "missing") if e[1] == "ErrGetKeyPair"]) == 1
    # The CA Secrets were never written.
    for n, rv in versions.items():
        assert get_json(srv, "secret", n)["metadata"]["resourceVersion"] == rv, n

    # Nothing lost: once the Secret exists the issuer turns Ready and the waiting leaf is issued.
    apply(srv, secret("missing-ca", {"tls.crt": good_crt, "tls.key": good_key}))
    wait_until(lambda: ready(srv, "issuer", "missing"), 30, what="missing Ready after the Secret appeared")
    issued = wait_until(lambda: secret_data(srv, "missing-leaf"), 15, what="missing-leaf issued")
    assert issued["ca.crt"] == good_crt

    # A CA that expires before the leaf would: the leaf's notAfter is the CA's, and both say so.
    apply(srv, ca_issuer("short", "short-ca"))
    apply(srv, leaf("short-leaf", "short", ["short.ca.test"]))
    data = wait_until(lambda: secret_data(srv, "short-leaf"), 20, what="short-leaf")
    assert pem_cert(data["tls.crt"]).not_valid_after == pem_cert(short_crt).not_valid_after
    ev = wait_event(srv, "short-leaf", "Issued")
    assert "clamped to the CA certificate's notAfter" in ev[0][2], ev
    cert = wait_until(lambda: ready(srv, "certificate", "short-leaf"), 15, what="short-leaf Ready")
    assert "CA certificate's notAfter" in condition(cert, "Ready")["message"]

    # A Certificate pointed at a broken issuer keeps its valid Secret as it is (and stays Ready).
    rv = get_json(srv, "secret", "short-leaf")["metadata"]["resourceVersion"]
    srv.kubectl("patch", "certificate", "short-leaf", "--type=merge", "-p",
                json.dumps({"spec": {"issuerRef": {"name": "mismatch"}}}))
    # The controller has reconciled the new spec once the condition carries its generation.
    wait_until(lambda: (condition(get_json(srv, "certificate", "short-leaf"), "Ready") or {}).get(
        "observedGeneration") == 2, 15, what="the new spec reconciled")
    assert get_json(srv, "secret", "short-leaf")["metadata"]["resourceVersion"] == rv
    assert ready(srv, "certificate", "short-leaf")


# ---- edgecert run ------------------------------------------------------------------------------

def test_run_with_selfsigned_and_ca_issuers(tmp_path):
    ext_crt, ext_key = make_ca("ext-ca")
    (tmp_path / "ext-ca.crt").write_text(ext_crt)
    (tmp_path / "ext-ca.key").write_text(ext_key)
    os.chmod(tmp_path / "ext-ca.key", 0o600)
    up = Upstream(proxy="none")
    tls_port, admin_port = free_port(), free_port()
    doc = {"store": "store",
           "issuers": [{"name": "selfsigned", "selfSigned": {}},
                       {"name": "internal-ca", "ca": {"secretName": "root"}},
                       {"name": "ext-ca", "ca": {"certFile": "ext-ca.crt", "keyFile": "ext-ca.key"}}],
           "certificates": [{"name": "root", "isCA": True, "commonName": "run-root",
                             "issuerRef": {"name": "selfsigned"}},
                            {"name": "web", "dnsNames": ["web.run.test"], "duration": "1h",
                             "renewBefore": "59m50s", "issuerRef": {"name": "internal-ca"}},
                            {"name": "ext", "dnsNames": ["ext.run.test"], "usages": ["server auth"],
                             "issuerRef": {"name": "ext-ca"}}],
           "terminator": {"listen": f"127.0.0.1:{tls_port}", "httpListen": "off",
                          "upstream": f"127.0.0.1:{up.port}", "admin": f"127.0.0.1:{admin_port}",
                          "drainTimeout": "1s"}}
    cfg = tmp_path / "run.yaml"
    cfg.write_text(json.dumps(doc))
    log_path = tmp_path / "run.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([BIN, "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    store = tmp_path / "store" / "certs"
    try:
        def served(name, folder):
            crt = store / folder / "tls.crt"
            if not crt.exists() or proc.poll() is not None:
                return None
            c = pem_cert(crt.read_text())
            try:
                return c if tls_probe(tls_port, name)[0] == format(c.serial_number, "x") else None
            except OSError:
                return None
        web0 = wait_until(lambda: served("web.run.test", "web"), 20, what="web served")
        ext0 = wait_until(lambda: served("ext.run.test", "ext"), 20, what="ext served")
        assert (store / "web" / "ca.crt").read_text() == (store / "root" / "tls.crt").read_text()
        assert (store / "ext" / "ca.crt").read_text() == ext_crt
        assert ext0.issuer.rfc4514_string() == "CN=ext-ca"
        for name, folder in (("web.run.test", "web"), ("ext.run.test", "ext")):
            out = s_client(tls_port, name, str(store / folder / "ca.crt"))
            assert "Verify return code: 0 (ok)" in out, out
        assert oct((store / "root" / "tls.key").stat().st_mode & 0o777) == "0o600"
        # Renewal of the short-lived leaf from the same CA, served at once.
        web1 = wait_until(lambda: (lambda c: c if c and c.serial_number != web0.serial_number else None)(
            served("web.run.test", "web")), 30, what="web renewed")
        assert aki(web1) == ski(pem_cert((store / "root" / "tls.crt").read_text()))
        assert "edgecert_certificate_ready_status" in http_get(admin_port, "/metrics")[1]
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
        up.close()
    text = log_path.read_text()
    assert "PRIVATE KEY" not in text
    assert re.search(r"certificate web: renewed serial", text), text[-3000:]

    # A key file that does not match its certificate stops the start (exit 2), naming the entry.
    (tmp_path / "ext-ca.key").write_text(make_ca("other")[1])
    r = subprocess.run([BIN, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "issuers[2] (ext-ca): Invalid signing key pair" in r.stderr and "does not match" in r.stderr, r.stderr
    assert "PRIVATE KEY" not in r.stderr
