"""`edgecert status` and the admin status page (docs/status.md) against real components.

Kubernetes: the in-repo API server (objects created with kubectl), real Pebble, a separate
`edgecert controller` and `edgecert terminator --cert-source kubernetes`, and a second terminator
serving an older copy of one certificate from --cert-dir. Five Certificates: Ready (prod/web),
failing (an Issuer whose server is a closed port), expired (an expired Secret that cannot be
renewed), one renewed while the --cert-dir terminator still serves the old serial, and one whose
issuerRef name is an HTML-injection attempt. The controller's status page is loaded in headless
Chromium (DOM + screenshot; UPDATE_SCREENSHOT=1 rewrites docs/img/status-page.png).

edgecert run: Pebble issues one certificate, another fails; `edgecert status --store/--config`
reads the store while it runs and after it stopped, and run's admin port serves the same data.
"""
import base64
import datetime
import html.parser
import json
import os
import pty
import shutil
import struct
import subprocess
import tempfile
import urllib.request
import zlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import apiserver_fixture
import pebble_fixture
from controller_fixture import CRDS, Controller, K8sTerminator, apply, certificate, condition, get_json, issuer, wait_until
from edgecert_helpers import BIN, openssl
from terminator_fixture import Terminator, Upstream, free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
INJECT = "<img src=x onerror=alert(1)>"
DAY = 86400

pytestmark = pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")


def status(*args, env=None, timeout=60):
    e = dict(os.environ, EDGECERT_LOG_LEVEL="warn")
    e.pop("NO_COLOR", None)
    e.update(env or {})
    p = subprocess.run([BIN, "status", *args], capture_output=True, text=True, timeout=timeout, env=e)
    assert "PRIVATE KEY" not in p.stdout + p.stderr
    return p


def status_json(*args):
    p = status(*args, "-o", "json")
    try:
        return p.returncode, json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (rc={p.returncode}):\n{p.stdout}\n{p.stderr}")


def expired_secret(name, dns):
    """A kubernetes.io/tls Secret edgecert manages, holding a certificate that expired 10 days ago."""
    k = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, dns)])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(k.public_key())
         .serial_number(0x0e5e71ed).not_valid_before(now - datetime.timedelta(days=100))
         .not_valid_after(now - datetime.timedelta(days=10))
         .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False).sign(k, hashes.SHA256()))
    crt = c.public_bytes(serialization.Encoding.PEM)
    key = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "default", "labels": {"edgecert.io/managed": "true"},
                         "annotations": {"edgecert.io/certificate-name": name, "edgecert.io/issuer-name": "closed",
                                         "edgecert.io/issuer-kind": "Issuer"}},
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}


def secret_pair(srv, name, ns="default"):
    s = get_json(srv, "secret", name, "-n", ns)
    if not s or "tls.crt" not in s.get("data", {}):
        return None
    return base64.b64decode(s["data"]["tls.crt"]), base64.b64decode(s["data"]["tls.key"])


def serial_of(pem):
    return format(x509.load_pem_x509_certificate(pem).serial_number, "x")


def admin_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def admin_text(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def served(port, name):
    for e in admin_json(port, "/certificates")["certificates"]:
        if e["name"] == name:
            return e
    return None


@pytest.fixture(scope="module")
def k8s(tmp_path_factory):
    d = tmp_path_factory.mktemp("status")
    tls_port, http_port = free_port(), free_port()
    # 90-day certificates, as a public CA issues them: the timeline then looks like production.
    pebble = pebble_fixture.Pebble(str(d / "pebble"), http_port=http_port, tls_port=tls_port, validity=90 * DAY)
    srv = apiserver_fixture.start(d / "api", tls=True, token="status-t0k3n")
    up = Upstream()
    procs = []
    try:
        srv.kubectl("apply", "-f", CRDS)
        srv.kubectl("create", "namespace", "prod", check=False)
        ca_pem = open(pebble.ca_file).read()
        closed = f"https://127.0.0.1:{free_port()}/dir"  # nothing listens there
        apply(srv, issuer("pebble", pebble.dir_url, ca_pem))
        apply(srv, issuer("pebble", pebble.dir_url, ca_pem, ns="prod"))
        apply(srv, issuer("closed", closed, ca_pem))
        apply(srv, expired_secret("expired", "expired.status.test"))
        term = K8sTerminator(srv, str(d), up.port, tls_port, http_port).wait_ready()
        procs.append(term)
        # One failed attempt, then an hour's wait: the failing Certificates hold still for the test.
        ctl = Controller(srv, str(d), "--leader-elect=false", "--failure-backoff-base", "1h").wait_ready()
        procs.append(ctl)
        apply(srv, certificate("web", ["web.status.test", "www.status.test"], "pebble", ns="prod"))
        apply(srv, certificate("mismatch", ["mismatch.status.test"], "pebble"))
        apply(srv, certificate("failing", ["failing.status.test"], "closed"))
        apply(srv, certificate("expired", ["expired.status.test"], "closed"))
        apply(srv, certificate("inject", ["inject.status.test"], INJECT))

        # The --cert-dir terminator gets the first certificate of "mismatch"; then the Secret is
        # deleted and the controller issues a new one, which only the Kubernetes terminator loads.
        old = wait_until(lambda: secret_pair(srv, "mismatch"), 90, interval=0.2, what="Secret mismatch")
        old_dir = d / "old-certs" / "mismatch"
        old_dir.mkdir(parents=True)
        (old_dir / "tls.crt").write_bytes(old[0])
        fd = os.open(old_dir / "tls.key", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, old[1])
        os.close(fd)
        old_term = Terminator(str(d / "old-certs"), up.port, "--http-listen", "off", workdir=str(d))
        procs.append(old_term)
        srv.kubectl("delete", "secret", "mismatch")
        new = wait_until(lambda: (lambda p: p if p and p[0] != old[0] else None)(secret_pair(srv, "mismatch")), 90,
                         interval=0.2, what="a renewed Secret mismatch")
        old_serial, new_serial = serial_of(old[0]), serial_of(new[0])

        def settled():
            certs = {c["metadata"]["name"]: c for c in (get_json(srv, "certificates") or {}).get("items", [])}
            certs.update({"web": c for c in (get_json(srv, "certificates", "-n", "prod") or {}).get("items", [])})
            if set(certs) != {"mismatch", "failing", "expired", "inject", "web"}:
                return None
            ready = lambda c: (condition(c, "Ready") or {}).get("status")
            attempts = lambda c: c.get("status", {}).get("failedIssuanceAttempts", 0)
            web = secret_pair(srv, "web", "prod")
            return (ready(certs["web"]) == "True" and ready(certs["mismatch"]) == "True"
                    and attempts(certs["failing"]) >= 1 and attempts(certs["expired"]) >= 1
                    and (condition(certs["inject"], "Ready") or {}).get("reason") == "IssuerNotFound"
                    and (served(term.admin_port, "default/mismatch") or {}).get("serial") == new_serial
                    and web and (served(term.admin_port, "prod/web") or {}).get("serial") == serial_of(web[0]))
        wait_until(settled, 120, interval=0.3, what="every Certificate in its state")
        yield dict(srv=srv, pebble=pebble, term=term, old_term=old_term, ctl=ctl, dir=d, old_serial=old_serial,
                   new_serial=new_serial, closed=closed,
                   terminators=[f"http://127.0.0.1:{term.admin_port}", f"http://127.0.0.1:{old_term.admin_port}"])
    finally:
        for p in procs:
            p.stop()
        up.close()
        srv.stop()
        pebble.stop()


def terminator_args(env):
    return [a for t in env["terminators"] for a in ("--terminator", t)]


def test_table_when_piped_lists_problems_first_and_exits_with_the_worst(k8s):
    p = status("--kubeconfig", str(k8s["srv"].kubeconfig), "-A", *terminator_args(k8s))
    assert p.returncode == 6, p.stdout + p.stderr  # something expired
    print(p.stdout)
    assert "\x1b" not in p.stdout, "no colour when stdout is not a terminal"
    lines = p.stdout.splitlines()
    header = lines[0]
    for col in ("NAME", "DNS NAMES", "ISSUER", "READY", "NOT AFTER", "RENEWAL", "SERVED", "STATUS"):
        assert col in header, header
    rows = lines[1:6]
    assert [r.split()[0] for r in rows] == ["default/expired", "default/mismatch", "default/failing",
                                            "default/inject", "prod/web"], p.stdout
    # Columns line up: every row has its READY/SERVED value where the header says.
    for col in ("READY", "NOT AFTER", "SERVED", "STATUS"):
        at = header.index(col)
        assert all(r[at - 1] == " " and r[at] != " " for r in rows), (col, p.stdout)
    expired, mismatch, failing, inject, web = rows
    assert "Expired,RenewalOverdue,NotReady,Failing" in expired and "ago)" in expired
    assert "MISMATCH 1/2" in mismatch and "ServedMismatch" in mismatch
    assert "Failing" in failing and "Failed" in failing and " False " in failing
    assert "IssuerNotFound" in inject and INJECT in inject, inject  # plain text in a terminal
    assert web.split()[-1] == "OK" and " ok " in web and "web.status.test +1" in web
    assert lines[-1] == "5 certificates, 4 with problems (exit 6)"
    assert any(l.startswith("Issuer default/closed is not Ready") for l in lines[6:]), p.stdout


def test_json_field_by_field(k8s):
    srv = k8s["srv"]
    attempts_before = get_json(srv, "certificate", "failing")["status"]["failedIssuanceAttempts"]
    rc, doc = status_json("--kubeconfig", str(srv.kubeconfig), "--all-namespaces", *terminator_args(k8s))
    assert rc == 6
    assert doc["schemaVersion"] == 1 and doc["source"] == {"kind": "kubernetes", "location": srv.url}
    assert doc["summary"] == {"certificates": 5, "withProblems": 4, "worstProblem": "Expired", "exitCode": 6}
    assert [t["url"] for t in doc["terminators"]] == k8s["terminators"]
    assert all(t["reachable"] and t["error"] is None for t in doc["terminators"])
    assert [t["certificates"] for t in doc["terminators"]] == [2, 1]  # the expired one is refused by both
    certs = {f'{c["namespace"]}/{c["name"]}': c for c in doc["certificates"]}
    assert list(certs) == ["default/expired", "default/mismatch", "default/failing", "default/inject", "prod/web"]

    web = certs["prod/web"]
    crt, _ = secret_pair(srv, "web", "prod")
    leaf = x509.load_pem_x509_certificate(crt)
    st = get_json(srv, "certificate", "web", "-n", "prod")["status"]
    assert web["secretName"] == "web" and web["dnsNames"] == ["web.status.test", "www.status.test"]
    assert web["issuerRef"] == {"name": "pebble", "kind": "Issuer"}
    assert web["serial"] == format(leaf.serial_number, "x")
    assert web["issuerDN"] == leaf.issuer.rfc4514_string()
    assert web["notBefore"] == st["notBefore"] and web["notAfter"] == st["notAfter"]
    assert web["notAfter"] == leaf.not_valid_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert web["renewalTime"] == st["renewalTime"]
    assert web["ready"] == {"status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired"}
    assert web["failedIssuanceAttempts"] == 0 and web["lastFailure"] is None and web["nextAttemptTime"] is None
    assert web["servedState"] == "ok" and web["problems"] == []
    assert web["served"][0] == {"terminator": k8s["terminators"][0], "state": "ok", "entry": "prod/web",
                                "serial": web["serial"], "notAfter": web["notAfter"], "error": None}
    assert web["served"][1]["state"] == "not-served" and web["served"][1]["serial"] is None

    mm = certs["default/mismatch"]
    assert mm["serial"] == k8s["new_serial"] and mm["ready"]["status"] == "True"
    assert [(s["state"], s["entry"], s["serial"]) for s in mm["served"]] == [
        ("ok", "default/mismatch", k8s["new_serial"]), ("mismatch", "mismatch", k8s["old_serial"])]
    assert mm["servedState"] == "mismatch" and mm["problems"] == ["ServedMismatch"]

    fl = certs["default/failing"]
    after = get_json(srv, "certificate", "failing")
    assert fl["serial"] is None and fl["notAfter"] is None and fl["ready"]["status"] == "False"
    # The controller retries meanwhile (2 s doubling): compare with the status it had then.
    assert attempts_before <= fl["failedIssuanceAttempts"] <= after["status"]["failedIssuanceAttempts"]
    if fl["failedIssuanceAttempts"] == after["status"]["failedIssuanceAttempts"]:
        assert fl["lastFailure"]["time"] == after["status"]["lastFailureTime"]
        assert fl["lastFailure"]["message"] == condition(after, "Issuing")["message"]
    assert fl["lastFailure"]["reason"] == "Failed" and fl["lastFailure"]["time"]
    assert "127.0.0.1" in fl["lastFailure"]["message"]  # names the server it could not reach
    assert fl["servedState"] == "none" and fl["problems"] == ["NotReady", "Failing"]

    ex = certs["default/expired"]
    assert ex["serial"] == "e5e71ed" and ex["problems"][:2] == ["Expired", "RenewalOverdue"]
    now = datetime.datetime.now(datetime.timezone.utc)
    na = datetime.datetime.strptime(ex["notAfter"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert datetime.timedelta(days=9) < now - na < datetime.timedelta(days=11)
    assert ex["issuerDN"] == "CN=expired.status.test"

    inj = certs["default/inject"]
    assert inj["issuerRef"]["name"] == INJECT and inj["ready"]["reason"] == "IssuerNotFound"
    assert inj["problems"] == ["NotReady"]
    issuers = {(i["namespace"], i["name"]): i for i in doc["issuers"]}
    assert issuers[("default", "pebble")]["ready"]["status"] == "True"
    assert issuers[("default", "closed")]["ready"]["status"] == "False"


def test_namespace_scope_exit_codes_and_unreachable_terminator(k8s):
    kc = str(k8s["srv"].kubeconfig)
    p = status("--kubeconfig", kc, "-n", "prod", *terminator_args(k8s))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[-1] == "1 certificate, 0 with problems"
    # The kubeconfig's namespace (default) when none is given; no terminators: no SERVED column.
    rc, doc = status_json("--kubeconfig", kc)
    assert rc == 6 and {c["namespace"] for c in doc["certificates"]} == {"default"}
    assert all(c["served"] == [] and c["servedState"] is None for c in doc["certificates"])
    # Secrets that cannot be read (RBAC, or here a failing API server): a warning; expiry still
    # comes from the status, and what is served cannot be compared, so it is not a mismatch.
    k8s["srv"].fault("error_500", path_prefix="/api/v1/namespaces/prod/secrets", count=1)
    rc, doc = status_json("--kubeconfig", kc, "-n", "prod", *terminator_args(k8s))
    assert rc == 0 and len(doc["warnings"]) == 1 and "cannot list Secrets" in doc["warnings"][0], doc["warnings"]
    (web,) = doc["certificates"]
    assert web["serial"] is None and web["notAfter"] and web["servedState"] == "unknown" and web["problems"] == []
    # A terminator that cannot be asked is a problem of its own (exit 4), not a crash.
    dead = f"http://127.0.0.1:{free_port()}"
    p = status("--kubeconfig", kc, "-n", "prod", "--terminator", dead)
    assert p.returncode == 4, p.stdout + p.stderr
    assert "TerminatorUnreachable" in p.stdout and f"terminator {dead}:" in p.stdout
    # Usage errors are 2, an API server that is gone is 1.
    assert status("--kubeconfig", kc, "-o", "yaml").returncode == 2
    assert status("--kubeconfig", kc, "--store", "/tmp").returncode == 2
    bad = Path(k8s["dir"]) / "gone.kubeconfig"
    bad.write_text(Path(kc).read_text().replace(f":{k8s['srv'].port}", f":{free_port()}"))
    p = status("--kubeconfig", str(bad), "--timeout", "3s")
    assert p.returncode == 1 and "listing Certificates" in p.stderr, p.stderr


def run_in_pty(args, env):
    """Runs edgecert with stdout on a pseudo-terminal (what --color auto looks at)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([BIN, *args], stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    p.wait(30)
    return p.returncode, out.decode(errors="replace")


def test_colour_in_a_terminal_unless_no_color(k8s):
    args = ["status", "--kubeconfig", str(k8s["srv"].kubeconfig), "-A"]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm", EDGECERT_LOG_LEVEL="warn")
    rc, out = run_in_pty(args, env)
    assert rc == 6 and "\x1b[31m" in out and "\x1b[32m" in out, out
    rc, out = run_in_pty(args, dict(env, NO_COLOR="1"))
    assert rc == 6 and "\x1b" not in out and "default/expired" in out, out
    p = status("--kubeconfig", str(k8s["srv"].kubeconfig), "-A", "--color", "always")
    assert "\x1b[1mNAME" in p.stdout


class Dom(html.parser.HTMLParser):
    """Tags with attributes, in document order, and every text node."""

    def __init__(self):
        super().__init__()
        self.tags, self.texts = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.texts.append(data)

    def find(self, tag, cls=None):
        return [a for t, a in self.tags if t == tag and (cls is None or cls in (a.get("class") or "").split())]


def chromium(url, profile, *mode):
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}", *mode, url]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def png_pixels_vary(data):
    """A PNG (signature, IHDR, IDAT...) whose decoded scanlines are not all one value."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert ihdr and ihdr[0] >= 800 and ihdr[1] >= 600, ihdr
    raw = zlib.decompress(idat)
    return len(set(raw[::7])) > 32  # many distinct byte values: text, bars, colours


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (see scripts/setup.sh)")
def test_controller_status_page_in_chromium(k8s):
    port = k8s["ctl"].admin_port
    url = f"http://127.0.0.1:{port}/"
    # The same data as JSON, from the controller's informer cache.
    doc = admin_json(port, "/status.json")
    assert doc["source"]["kind"] == "controller" and doc["summary"]["certificates"] == 5
    keys = [f'{c["namespace"]}/{c["name"]}' for c in doc["certificates"]]
    # The controller does not know what terminators serve: the renewed one is fine here.
    assert keys[:3] == ["default/expired", "default/failing", "default/inject"]
    assert sorted(keys[3:]) == ["default/mismatch", "prod/web"]
    assert {(i["namespace"], i["name"], i["ready"]["status"]) for i in doc["issuers"]} == {
        ("default", "pebble", "True"), ("prod", "pebble", "True"), ("default", "closed", "False")}
    code, ctype, body = admin_text(port, "/status")
    assert code == 200 and ctype.startswith("text/html") and INJECT not in body

    with tempfile.TemporaryDirectory() as profile:
        p = chromium(url, profile, "--dump-dom")
    dom = Dom()
    dom.feed(p.stdout)
    rows = [a["data-key"] for a in dom.find("tr") if "data-key" in a]
    assert rows == keys, f"rc={p.returncode}\n{p.stdout[:3000]}\n{p.stderr[-2000:]}"
    classes = [a["class"] for a in dom.find("tr") if "data-key" in a]
    assert classes == ["problem"] * 3 + ["ok"] * 2, classes  # failures first
    bars = [a["data-key"] for a in dom.find("div", "tl-bar")]
    assert bars == keys
    assert len(dom.find("div", "tl-renew")) == 3  # failing and inject have no certificate
    # The injection attempt is text on the page, not an element; nothing was loaded or run.
    assert dom.find("img") == [] and dom.find("script") == []
    assert any(INJECT in t for t in dom.texts), "the issuer name is shown as text"
    assert "3 with problems" in "".join(dom.texts)

    shot_dir = tempfile.mkdtemp(dir=k8s["dir"])
    shot = Path(shot_dir) / "status-page.png"
    with tempfile.TemporaryDirectory() as profile:
        p = chromium(url, profile, f"--screenshot={shot}", "--window-size=1440,1240")
    assert shot.exists(), p.stderr[-3000:]
    data = shot.read_bytes()
    assert png_pixels_vary(data), "blank screenshot"
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        dest = REPO / "docs" / "img" / "status-page.png"
        dest.parent.mkdir(exist_ok=True)
        shutil.copy(shot, dest)


# ---- edgecert run --------------------------------------------------------------------------------


def test_status_of_an_edgecert_run_store_while_running_and_after(tmp_path):
    tls_port, http_port, admin_port, backend = free_port(), free_port(), free_port(), Upstream()
    pebble = pebble_fixture.Pebble(str(tmp_path / "pebble"), http_port=http_port, tls_port=tls_port, validity=90 * DAY)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(json.dumps({
        "store": "store",
        "issuers": [{"name": "pebble", "acme": {"server": pebble.dir_url, "caBundleFile": pebble.ca_file}},
                    {"name": "closed", "acme": {"server": f"https://127.0.0.1:{free_port()}/dir",
                                                "caBundleFile": pebble.ca_file}}],
        "certificates": [{"name": "site", "dnsNames": ["site.run.test"], "issuerRef": {"name": "pebble"}},
                         {"name": "broken", "dnsNames": ["broken.run.test"], "issuerRef": {"name": "closed"}}],
        "terminator": {"listen": f"127.0.0.1:{tls_port}", "httpListen": f"127.0.0.1:{http_port}",
                       "upstream": f"127.0.0.1:{backend.port}", "admin": f"127.0.0.1:{admin_port}",
                       "drainTimeout": "1s"}}))
    store = tmp_path / "store"
    log = open(tmp_path / "run.log", "w")
    run = subprocess.Popen([BIN, "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        def ready():
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            try:
                doc = admin_json(admin_port, "/status.json")
            except OSError:
                return None
            c = {x["name"]: x for x in doc["certificates"]}
            return doc if (c["site"]["servedState"] == "ok" and c["broken"]["failedIssuanceAttempts"] >= 1) else None
        doc = wait_until(ready, 60, interval=0.2, what="site served and broken failed")
        site_crt = store / "certs" / "site" / "tls.crt"
        serial = openssl("x509", "-in", str(site_crt), "-noout", "-serial").stdout.strip().split("=")[1].lower()
        serial = serial.lstrip("0")
        fp = openssl("x509", "-in", str(site_crt), "-noout", "-fingerprint", "-sha256").stdout.strip().split("=")[1]

        # run's admin port: /status.json (built-in terminator as "served"), /certificates, the page.
        assert doc["source"]["kind"] == "run" and [c["name"] for c in doc["certificates"]] == ["broken", "site"]
        site = doc["certificates"][1]
        assert site["serial"] == serial and site["served"][0]["terminator"] == "built-in"
        assert site["ready"]["status"] == "True" and site["renewalTime"] is not None
        (entry,) = admin_json(admin_port, "/certificates")["certificates"]
        assert entry["name"] == "site" and entry["serial"] == serial and entry["sha256Fingerprint"] == fp
        assert entry["dnsNames"] == ["site.run.test"] and entry["issuer"].startswith("CN=Pebble Intermediate")
        assert "key" not in json.dumps(entry).lower()
        code, ctype, page = admin_text(admin_port, "/")
        assert code == 200 and ctype.startswith("text/html")
        dom = Dom()
        dom.feed(page)
        assert [a["data-key"] for a in dom.find("tr") if "data-key" in a] == ["broken", "site"]

        # The CLI on the same store, compared with run's own admin port.
        term = f"http://127.0.0.1:{admin_port}"
        p = status("--store", str(store), "--terminator", term)
        assert p.returncode == 3, p.stdout + p.stderr  # broken: not Ready, failing
        lines = p.stdout.splitlines()
        assert lines[1].split()[0] == "broken" and lines[2].split()[0] == "site", p.stdout
        assert "NotReady,Failing: Failed" in lines[1] and " ok " in lines[2] and lines[2].endswith("OK")
        rc, j = status_json("--config", str(cfg), "--terminator", term)
        assert rc == 3 and j["source"] == {"kind": "store", "location": str(store)}
        by = {c["name"]: c for c in j["certificates"]}
        assert by["site"]["serial"] == serial and by["site"]["servedState"] == "ok"
        assert by["site"]["renewalTime"] == site["renewalTime"] and by["site"]["issuerRef"]["name"] == "pebble"
        assert by["broken"]["dnsNames"] == ["broken.run.test"] and by["broken"]["nextAttemptTime"] is not None
    finally:
        pebble_fixture.stop(run)  # SIGTERM, then SIGKILL after 5 s
        log.close()
        backend.close()
        pebble.stop()
    assert run.returncode == 0, (tmp_path / "run.log").read_text()
    assert "PRIVATE KEY" not in (tmp_path / "run.log").read_text()

    # After the fact: failures and the next renewal are in the store, not only in run's memory.
    status_file = store / "certs" / "broken" / "status.json"
    assert oct(os.stat(status_file).st_mode & 0o777) == "0o644"
    rc, j = status_json("--store", str(store))
    assert rc == 3
    by = {c["name"]: c for c in j["certificates"]}
    b = by["broken"]
    assert b["failedIssuanceAttempts"] >= 1 and b["lastFailure"]["reason"] == "Failed"
    assert b["lastFailure"]["message"] and b["lastFailure"]["time"] and b["ready"]["status"] == "False"
    assert b["issuerRef"]["name"] == "closed" and b["serial"] is None
    assert by["site"]["ready"]["status"] == "True" and by["site"]["renewalTime"] is not None
    assert by["site"]["problems"] == [] and by["site"]["failedIssuanceAttempts"] == 0
