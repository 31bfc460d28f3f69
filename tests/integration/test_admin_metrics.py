"""The admin server as the real binary serves it (here: `edgecert terminator`): endpoints, status
codes and headers over real HTTP, the whole /metrics exposition through Prometheus' own
`promtool check metrics`, and process_* values checked against /proc/<pid> of that process."""
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from terminator_fixture import Terminator, Upstream, make_cert, tls_probe, wait_for


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    d = tmp_path_factory.mktemp("admin")
    certs = str(d / "certs")
    make_cert(certs + "/web", ["web.test"], "ec")
    up = Upstream("v2")
    t = Terminator(certs, up.port, workdir=str(d))
    yield t
    rc = t.stop()
    up.close()
    assert rc == 0, t.logs()


def request(t, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{t.admin_port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_endpoints(term):
    assert request(term, "/healthz")[0::2] == (200, "ok")
    assert request(term, "/readyz")[0::2] == (200, "ready")
    status, headers, body = request(term, "/version")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body.startswith('{"version":"')
    assert request(term, "/nope")[0] == 404
    status, headers, _ = request(term, "/metrics", "POST")
    assert status == 405 and headers["Allow"] == "GET"


def test_listens_on_the_given_address_only(term):
    want = "0100007F:%04X" % term.admin_port
    listening = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[1].endswith(":%04X" % term.admin_port):
                listening.append(fields[1])
    assert listening == [want]


def test_promtool_accepts_the_real_exposition(term, tmp_path):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package 'prometheus', listed in scripts/setup.sh)")
    tls_probe(term.tls_port, "web.test")  # some traffic, so counters are not all zero
    status, headers, body = request(term, "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "edgecert_served_certificate_not_after_timestamp_seconds{" in body
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
        f"promtool rc={r.returncode}\n{r.stdout}{r.stderr}\n--- exposition ---\n{body}"


def test_output_is_stable(term):
    """Two scrapes differ only in values that really change (process_*), never in order or names."""
    def shape():
        lines = request(term, "/metrics")[2].splitlines()
        return [l.rsplit(" ", 1)[0] for l in lines]
    first = shape()
    assert first == shape()
    names = [l.split(" ")[2] for l in first if l.startswith("# TYPE ")]
    assert names == sorted(names)


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def test_process_metrics_match_proc(term):
    pid = term.proc.pid
    m = term.metrics()
    # Start time: the same computation from /proc/<pid>/stat and /proc/stat btime.
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
    start = btime + int(proc_stat(pid)[19]) / ticks  # field 22
    assert abs(m["process_start_time_seconds"] - start) < 0.02
    assert time.time() - 600 < m["process_start_time_seconds"] <= time.time()
    # Open fds: the scrape itself holds one or two more (the admin connection), so allow slack.
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    assert abs(m["process_open_fds"] - fds) <= 3, (m["process_open_fds"], fds)
    with open(f"/proc/{pid}/limits") as f:
        soft = next(l.split()[3] for l in f if l.startswith("Max open files"))
    assert m["process_max_fds"] == float(soft)
    # RSS within 20% of VmRSS (it moves a little between the two reads).
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    assert abs(m["process_resident_memory_bytes"] - rss) < 0.2 * rss
    # CPU time only grows.
    cpu = m["process_cpu_seconds_total"]
    for _ in range(20):
        tls_probe(term.tls_port, "web.test")
    assert wait_for(lambda: term.metrics()["process_cpu_seconds_total"] >= cpu, timeout=3)

