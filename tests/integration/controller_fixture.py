"""Processes for the controller end-to-end tests: `edgecert controller` and `edgecert terminator`
(Kubernetes sources) against fakekube, each a separate process with its own log, stopped by PID.
Logs are checked for key material on stop."""
import base64
import json
import os
import signal
import subprocess
import time
import urllib.request

from cryptography import x509

from terminator_fixture import BIN, free_port

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CRDS = os.path.join(REPO, "deploy", "crds")


class Proc:
    def __init__(self, args, log_path, env=None):
        self.args, self.log_path = args, log_path
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=20):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        text = open(self.log_path).read()
        assert "PRIVATE KEY" not in text, f"key material in {self.log_path}"
        return self.proc.returncode


def http_get(port, path, timeout=5):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def wait_until(pred, timeout, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Controller(Proc):
    def __init__(self, srv, workdir, *extra, name="controller", kubeconfig=None, cluster_ns="default"):
        self.admin_port = free_port()
        args = [BIN, "controller", "--kubeconfig", str(kubeconfig or srv.kubeconfig),
                "--admin", f"127.0.0.1:{self.admin_port}",
                "--cluster-resource-namespace", cluster_ns, "--failure-backoff-base", "2s", *extra]
        super().__init__(args, os.path.join(workdir, f"{name}-{self.admin_port}.log"),
                         env={"EDGECERT_LOG_LEVEL": "debug"})

    def wait_ready(self, timeout=30):
        def ready():
            if not self.alive():
                raise AssertionError(f"controller exited {self.proc.returncode}:\n{self.logs()}")
            return http_get(self.admin_port, "/readyz")[0] == 200
        wait_until(ready, timeout, what="controller /readyz")
        return self

    def metrics(self):
        return http_get(self.admin_port, "/metrics")[1]


class K8sTerminator(Proc):
    """Terminator fed by Secrets and Challenges; its HTTP/TLS ports are where the CA validates."""

    def __init__(self, srv, workdir, upstream_port, tls_port, http_port):
        self.tls_port, self.http_port, self.admin_port = tls_port, http_port, free_port()
        args = [BIN, "terminator", "--listen", f"127.0.0.1:{tls_port}", "--http-listen", f"127.0.0.1:{http_port}",
                "--upstream", f"127.0.0.1:{upstream_port}", "--admin", f"127.0.0.1:{self.admin_port}",
                "--workers", "1", "--proxy-protocol", "v2", "--kubeconfig", str(srv.kubeconfig), "--cert-source", "kubernetes",
                "--challenge-source", "kubernetes"]
        super().__init__(args, os.path.join(workdir, f"terminator-{tls_port}.log"))

    def wait_ready(self, timeout=30):
        def ready():
            if not self.alive():
                raise AssertionError(f"terminator exited {self.proc.returncode}:\n{self.logs()}")
            return http_get(self.admin_port, "/readyz")[0] == 200
        wait_until(ready, timeout, what="terminator /readyz")
        return self

    def metrics(self):
        return http_get(self.admin_port, "/metrics")[1]


def apply(srv, obj):
    srv.kubectl("apply", "-f", "-", input=json.dumps(obj) if not isinstance(obj, str) else obj)


def get_json(srv, *what):
    r = srv.kubectl("get", *what, "-o", "json", check=False)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def secret_cert(srv, name, ns="default"):
    """The leaf certificate in a kubernetes.io/tls Secret, or None."""
    s = get_json(srv, "secret", name, "-n", ns)
    if not s or "tls.crt" not in s.get("data", {}):
        return None
    pem = base64.b64decode(s["data"]["tls.crt"])
    return x509.load_pem_x509_certificate(pem)


def condition(obj, ctype):
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c.get("type") == ctype:
            return c
    return None


def issuer(name, server, ca_pem, solvers=None, ns="default"):
    return {"apiVersion": "edgecert.io/v1alpha1", "kind": "Issuer", "metadata": {"name": name, "namespace": ns},
            "spec": {"acme": {"server": server, "caBundle": base64.b64encode(ca_pem.encode()).decode(),
                              "email": "e2e@example.test", "privateKeySecretRef": {"name": name + "-account"},
                              "solvers": solvers or [{"http01": {}}]}}}


def certificate(name, dns, issuer_name, ns="default", **spec):
    s = {"secretName": name, "dnsNames": dns, "issuerRef": {"name": issuer_name, "kind": "Issuer"}}
    s.update(spec)
    return {"apiVersion": "edgecert.io/v1alpha1", "kind": "Certificate", "metadata": {"name": name, "namespace": ns},
            "spec": s}
