"""Starts a real BIND (`named -g`) on 127.0.0.1 for dns-01 tests: one primary zone that takes
RFC 2136 updates signed with a TSIG key generated per test by tsig-keygen. Runs as the current
user from a temp directory, on a port the test picked, and is stopped by PID.
"""
import os
import re
import subprocess
import time

from pebble_fixture import free_tcp_udp_port, stop

NAMED = "/usr/sbin/named"


def tsig_keygen(name, algorithm="hmac-sha256"):
    """BIND's key clause text: key "name" { algorithm ...; secret "..."; };"""
    return subprocess.run(["tsig-keygen", "-a", algorithm, name], check=True, capture_output=True,
                          text=True).stdout


def key_secret(key_clause):
    return re.search(r'secret "([^"]+)"', key_clause).group(1)


class Bind:
    """A running named. Attributes: port, zone, key_name, key_file (the tsig-keygen clause),
    secret_file (just the base64 secret), workdir."""

    def __init__(self, workdir, zone="example.test", key_name="edgecert-test", algorithm="hmac-sha256",
                 extra_records=""):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_tcp_udp_port()
        self.zone = zone
        self.key_name = key_name
        self.algorithm = algorithm
        self.key_clause = tsig_keygen(key_name, algorithm)
        self.key_file = os.path.join(workdir, "tsig.key")
        with open(self.key_file, "w") as f:
            f.write(self.key_clause)
        os.chmod(self.key_file, 0o600)
        self.secret_file = os.path.join(workdir, "tsig.secret")
        with open(self.secret_file, "w") as f:
            f.write(key_secret(self.key_clause) + "\n")
        os.chmod(self.secret_file, 0o600)
        zone_file = os.path.join(workdir, f"{zone}.db")
        # Negative TTL 1 s (RFC 2308 §5): nothing may cache "no such TXT" for long.
        with open(zone_file, "w") as f:
            f.write(f"""$TTL 60
@       IN SOA ns1.{zone}. hostmaster.{zone}. 1 60 60 600 1
@       IN NS  ns1.{zone}.
ns1     IN A   127.0.0.1
@       IN A   127.0.0.1
*       IN A   127.0.0.1
{extra_records}
""")
        conf = os.path.join(workdir, "named.conf")
        with open(conf, "w") as f:
            f.write(f"""{self.key_clause}
options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    managed-keys-directory "{workdir}";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
    allow-transfer {{ none; }};
}};
controls {{ }};
zone "{zone}" {{
    type primary;
    file "{zone_file}";
    allow-update {{ key "{key_name}"; }};
}};
""")
        self.log_path = os.path.join(workdir, "named.log")
        self.proc = subprocess.Popen([NAMED, "-g", "-n", "1", "-c", conf],
                                     stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                     cwd=workdir)
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"named exited early ({self.proc.returncode}):\n{self.log()}")
            r = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(self.port),
                                "@127.0.0.1", "SOA", self.zone], capture_output=True, text=True)
            if r.returncode == 0 and "hostmaster" in r.stdout:
                return
            time.sleep(0.1)
        raise RuntimeError(f"named not answering on {self.port}:\n{self.log()}")

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def txt(self, name):
        """The TXT values the server answers for name (asked directly, no recursion)."""
        r = subprocess.run(["dig", "+short", "+norecurse", "+time=2", "+tries=1", "-p", str(self.port),
                            "@127.0.0.1", "TXT", name], capture_output=True, text=True, check=True)
        return sorted(line.strip().strip('"') for line in r.stdout.splitlines() if line.strip())

    def nsupdate(self, commands):
        """Runs nsupdate with the TSIG key against this server; commands: list of update lines."""
        script = f"server 127.0.0.1 {self.port}\nzone {self.zone}\n" + "\n".join(commands) + "\nsend\n"
        return subprocess.run(["nsupdate", "-k", self.key_file], input=script, capture_output=True,
                              text=True, timeout=20)

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        stop(self.proc)
