"""Start the in-repo test Kubernetes API server (tests/apiserver/run) for a test.

    srv = apiserver_fixture.start(tmp_path, tls=True, token="t0k3n")
    srv.url, srv.port, srv.kubeconfig, srv.ca (PEM path when tls), srv.token_file,
    srv.client_cert/srv.client_key (start(..., tls=True, client_cert=True))
    srv.fault("conflict_next_put", path_prefix="/apis/coordination.k8s.io")
    srv.requests()            # GET /_debug/requests
    srv.http("GET", "/api/v1/namespaces")   # -> (status, headers, parsed body)
    srv.kubectl("get", "secrets", "-o", "json")   # subprocess.CompletedProcess
    srv.stop()

kubectl: $KUBECTL if set, else /usr/lib/google-cloud-sdk/bin/kubectl.1.32 (the real binary the
/usr/bin/kubectl dispatcher would pick for the server's minor 32, called directly so a command
costs one process and no extra /version probe), else `kubectl` from PATH; None when absent.
Each server gets its own kubeconfig and kubectl --cache-dir (discovery is cached per host:port).
"""
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "tests" / "apiserver" / "run"
KUBECTL_132 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"


def kubectl_path():
    if os.environ.get("KUBECTL"):  # an override that is not executable means "no kubectl"
        k = shutil.which(os.environ["KUBECTL"])
        return k if k and os.access(k, os.X_OK) else None
    if os.access(KUBECTL_132, os.X_OK):
        return KUBECTL_132
    return shutil.which("kubectl")


def make_certs(d):
    """A CA and a server certificate for 127.0.0.1/localhost (SANs: Go rejects CN-only certs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = Path(d)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fakekube-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fakekube")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ckey = ec.generate_private_key(ec.SECP256R1())
    client = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tester"),
                                       x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                          "system:masters")]))
              .issuer_name(ca_name).public_key(ckey.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (d / "ca.crt").write_bytes(ca.public_bytes(pem))
    (d / "server.crt").write_bytes(cert.public_bytes(pem))
    (d / "client.crt").write_bytes(client.public_bytes(pem))
    for name, k in (("server.key", key), ("client.key", ckey)):
        fd = os.open(str(d / name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(k.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return d / "ca.crt", d / "server.crt", d / "server.key"


class ApiServer:
    def __init__(self, tmpdir, tls=False, token=None, args=(), client_cert=False):
        self.dir = Path(tmpdir) / ("apiserver-%d" % time.monotonic_ns())
        self.dir.mkdir(parents=True)
        self.token = token
        self.ca = None
        self.token_file = None
        cmd = [str(RUN), "--port", "0"] + list(args)
        if tls:
            self.ca, crt, key = make_certs(self.dir)
            cmd += ["--tls-cert", str(crt), "--tls-key", str(key)]
        self.client_cert = self.client_key = None
        if client_cert:
            if not tls:
                raise ValueError("client_cert needs tls=True")
            self.client_cert, self.client_key = self.dir / "client.crt", self.dir / "client.key"
            cmd += ["--client-ca", str(self.ca)]
        self._extra_tokens = []
        if token is not None:
            self.token_file = self.dir / "token"
            self.set_token(token)
            cmd += ["--token-file", str(self.token_file)]
        self.log = open(self.dir / "apiserver.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("ready port="):
            self.proc.kill()
            raise RuntimeError("apiserver did not start: %r (log %s)" % (line, self.log.name))
        self.port = int(line.split("=", 1)[1])
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.kubeconfig = self.dir / "kubeconfig"
        self.cache_dir = self.dir / "kube-cache"
        self._write_kubeconfig()

    def _write_kubeconfig(self, path=None, token=None):
        cluster = {"server": self.url}
        if self.ca:
            cluster["certificate-authority"] = str(self.ca)
        token = token if token is not None else self.token
        user = {"token": token} if token is not None else {}
        if self.client_cert and path is None:
            user["client-certificate"] = str(self.client_cert)
            user["client-key"] = str(self.client_key)
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
               "clusters": [{"name": "fake", "cluster": cluster}],
               "users": [{"name": "fake", "user": user}],
               "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                         "namespace": "default"}}]}
        (path or self.kubeconfig).write_text(json.dumps(cfg, indent=1))

    def set_token(self, token):
        """Rotate the accepted token (atomic rename; the server re-reads the file)."""
        self._file_token = token
        tmp = self.token_file.with_suffix(".tmp")
        tmp.write_text("\n".join([token] + self._extra_tokens) + "\n")
        os.replace(tmp, self.token_file)

    def add_user(self, user, token, groups=()):
        """Another identity (needs token=...): a --token-file line in kube-apiserver's CSV form
        (token,user,uid,"groups"; a ServiceAccount user system:serviceaccount:NS:NAME gets its
        groups by default) and a kubeconfig of its own, which is returned. client-go sends
        bearer tokens over TLS only: start the server with tls=True for kubectl."""
        line = "%s,%s,uid-%s" % (token, user, user.replace(":", "-"))
        if groups:
            line += ',"%s"' % ",".join(groups)
        self._extra_tokens.append(line)
        self.set_token(self._file_token)
        kc = self.dir / ("kubeconfig-%d" % len(self._extra_tokens))
        self._write_kubeconfig(kc, token)
        return kc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    # ---- HTTP helpers ------------------------------------------------------------------------

    def _ctx(self, use_client_cert=True):
        if not self.ca:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if self.client_cert and use_client_cert:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx

    def http(self, method, path, body=None, headers=None, token=None, timeout=30,
             client_cert=True):
        """Plain request; returns (status, headers, decoded JSON or raw bytes)."""
        h = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        tok = token if token is not None else self.token
        if tok is not None and not path.startswith("/_"):
            h.setdefault("Authorization", "Bearer " + tok)
        req = urllib.request.Request(self.url + path, data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, context=self._ctx(client_cert),
                                        timeout=timeout) as r:
                status, hdrs, raw = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, dict(e.headers), e.read()
        try:
            return status, hdrs, json.loads(raw)
        except ValueError:
            return status, hdrs, raw

    def fault(self, kind, **kw):
        st, _, body = self.http("POST", "/_fault", dict(kw, kind=kind))
        assert st == 200, body
        return body

    def clear_faults(self):
        self.http("DELETE", "/_fault")

    def requests(self, clear=False):
        return self.http("GET", "/_debug/requests" + ("?clear=1" if clear else ""))[2]["requests"]

    def stats(self):
        return self.http("GET", "/_debug/stats")[2]

    def kubectl(self, *args, input=None, check=True, timeout=60):
        kc = kubectl_path()
        if kc is None:
            raise RuntimeError("kubectl is not installed")
        cmd = [kc, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir)]
        cmd += list(args)
        env = dict(os.environ, HOME=str(self.dir), KUBECONFIG=str(self.kubeconfig))
        r = subprocess.run(cmd, input=input.encode() if isinstance(input, str) else input,
                           capture_output=True, timeout=timeout, env=env)
        r.stdout_text = r.stdout.decode(errors="replace")
        r.stderr_text = r.stderr.decode(errors="replace")
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s failed (rc=%d): %s%s" % (
                " ".join(args), r.returncode, r.stdout_text, r.stderr_text))
        return r


def start(tmpdir, tls=False, token=None, args=(), client_cert=False):
    """client_cert=True (needs tls): the server trusts client certificates of the test CA and
    the kubeconfig authenticates with one (client-certificate/client-key files)."""
    return ApiServer(tmpdir, tls=tls, token=token, args=args, client_cert=client_cert)
